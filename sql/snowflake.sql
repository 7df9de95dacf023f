-- Everything here is bound when it is created, so it names its operators and functions with their
-- schema: nothing a user puts in the extension's schema or search_path can be chosen instead.

-- A snowflake ID taken apart in one call.
CREATE FUNCTION snowflake_parse(id bigint, OUT ts timestamptz, OUT node int, OUT seq int)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT @extschema@.snowflake_timestamp(id), @extschema@.snowflake_node(id),
           @extschema@.snowflake_sequence(id);
END;

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

-- The public functions that the extension's SQL calls, declared again where no other role can add
-- a function (sql/internal_schema.sql): the same C functions, with the same properties.
CREATE FUNCTION snowlink_internal.snowflake_next() RETURNS bigint
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'snowflake_next_wrapper';
CREATE FUNCTION snowlink_internal.snowflake_node_range() RETURNS int4range
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'snowflake_node_range_wrapper';
CREATE FUNCTION snowlink_internal.snowflake_min(at timestamptz) RETURNS bigint
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'snowflake_min_wrapper';
