-- Descriptions for \df+ and \dx+.
COMMENT ON FUNCTION base62_encode(bigint) IS
    'base 62 code (0-9a-zA-Z) of a non-negative bigint';
COMMENT ON FUNCTION base62_encode(bigint, integer) IS
    'base 62 code of a non-negative bigint, left-padded with 0 to min_length characters';
COMMENT ON FUNCTION base62_decode(text) IS
    'bigint that a base 62 code stands for';
COMMENT ON FUNCTION base_encode(bigint, text) IS
    'code of a non-negative bigint in the given alphabet (its first character is zero)';
COMMENT ON FUNCTION base_decode(text, text) IS
    'bigint that a code in the given alphabet stands for';
COMMENT ON FUNCTION snowflake_next() IS
    'new unique, time-ordered bigint ID from this backend''s node; not given back on rollback';
COMMENT ON FUNCTION snowflake_node_id() IS
    'node number this backend issues IDs from, claimed now if it holds none';
COMMENT ON FUNCTION snowflake_timestamp(bigint) IS
    'millisecond a snowflake ID was made in';
COMMENT ON FUNCTION snowflake_node(bigint) IS
    'node that made a snowflake ID';
COMMENT ON FUNCTION snowflake_sequence(bigint) IS
    'position of a snowflake ID within its node''s millisecond (0 to 4095)';
COMMENT ON FUNCTION snowflake_parse(bigint) IS
    'time, node and sequence of a snowflake ID';
COMMENT ON FUNCTION snowflake_min(timestamptz) IS
    'smallest snowflake ID made at or after the given time, for range scans of an ID key';
COMMENT ON VIEW snowflake_nodes IS
    'snowflake nodes claimed on this server, with the backends that hold them';
