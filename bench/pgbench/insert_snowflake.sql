INSERT INTO keyed_snowflake (payload) VALUES ('x');
