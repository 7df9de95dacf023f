SELECT snowflake_next();
