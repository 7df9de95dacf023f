-- Snowflake IDs: the SQL around the functions of src/snowflake/.
--
-- Everything here is bound when it is created, so it names its operators and functions with their
-- schema: nothing a user puts in the extension's schema or search_path can be chosen instead.

-- The functions of src/snowflake/.
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
COMMENT ON FUNCTION snowflake_min(timestamptz) IS
    'smallest snowflake ID made at or after the given time, for range scans of an ID key';
COMMENT ON FUNCTION snowflake_node_range() IS
    'this server''s snowflake node range, from snowlink.node_min and snowlink.node_max';
COMMENT ON FUNCTION snowlink_internal._snowflake_lock_tag() IS 'internal: the advisory lock tag of node claims';
COMMENT ON FUNCTION snowlink_internal._snowflake_issued_here(bigint) IS
    'internal: whether no backend but this one can ever issue the ID';

-- A snowflake ID taken apart in one call.
CREATE FUNCTION snowflake_parse(id bigint, OUT ts timestamptz, OUT node int, OUT seq int)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT @extschema@.snowflake_timestamp(id), @extschema@.snowflake_node(id),
           @extschema@.snowflake_sequence(id);
END;
COMMENT ON FUNCTION snowflake_parse(bigint) IS
    'time, node and sequence of a snowflake ID';

-- The claimed nodes of the whole server, read from the lock table itself so that it cannot be stale.
-- A claim is a session advisory lock on database 0 with the tag of _snowflake_lock_tag()
-- (src/locks.rs), objid = node.
CREATE VIEW snowflake_nodes AS
SELECT l.objid::pg_catalog.int4 AS node_id,
       l.pid,
       a.datname,
       a.usename,
       a.application_name,
       a.client_addr,
       a.backend_start
FROM pg_catalog.pg_locks AS l
CROSS JOIN snowlink_internal._snowflake_lock_tag() AS tag
LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid OPERATOR(pg_catalog.=) l.pid
WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'::pg_catalog.text
  AND l.database OPERATOR(pg_catalog.=) 0::pg_catalog.oid
  AND l.classid OPERATOR(pg_catalog.=) tag.classid
  AND l.objsubid OPERATOR(pg_catalog.=) tag.objsubid
  AND l.granted;
GRANT SELECT ON snowflake_nodes TO PUBLIC;
COMMENT ON VIEW snowflake_nodes IS
    'snowflake nodes claimed on this server, with the backends that hold them';

-- The peers' node ranges that overlap this server's: none when the ranges are disjoint. Servers
-- whose ranges overlap can issue the same ID.
CREATE FUNCTION snowflake_node_range_conflicts(peer_ranges int4range[])
RETURNS TABLE (peer_range int4range, shared_nodes int4range)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT peer, peer OPERATOR(pg_catalog.*) @extschema@.snowflake_node_range()
    FROM pg_catalog.unnest(peer_ranges) AS peer
    WHERE peer OPERATOR(pg_catalog.&&) @extschema@.snowflake_node_range();
END;
COMMENT ON FUNCTION snowflake_node_range_conflicts(int4range[]) IS
    'peer node ranges that overlap this server''s (none when servers cannot repeat each other''s IDs)';

-- The public functions that the extension's SQL calls, declared again where no other role can add
-- a function (internal_schema.sql): the same C functions, with the same properties.
CREATE FUNCTION snowlink_internal.snowflake_next() RETURNS bigint
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'snowflake_next_wrapper';
CREATE FUNCTION snowlink_internal.snowflake_node_range() RETURNS int4range
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'snowflake_node_range_wrapper';
CREATE FUNCTION snowlink_internal.snowflake_min(at timestamptz) RETURNS bigint
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'snowflake_min_wrapper';
COMMENT ON FUNCTION snowlink_internal.snowflake_next() IS 'internal: snowflake_next(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.snowflake_node_range() IS 'internal: snowflake_node_range(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.snowflake_min(timestamptz) IS 'internal: snowflake_min(), for the extension''s SQL';
