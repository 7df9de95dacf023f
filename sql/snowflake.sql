-- A snowflake ID taken apart in one call.
CREATE FUNCTION snowflake_parse(id bigint, OUT ts timestamptz, OUT node int, OUT seq int)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT snowflake_timestamp(id), snowflake_node(id), snowflake_sequence(id);
END;

-- The claimed nodes of the whole server, read from the lock table itself so that it cannot be stale.
-- A claim is a session advisory lock on database 0, classid 1936616555 ('snlk'), objsubid 1,
-- objid = node (src/snowflake/registry.rs).
CREATE VIEW snowflake_nodes AS
SELECT l.objid::int AS node_id,
       l.pid,
       a.datname,
       a.usename,
       a.application_name,
       a.client_addr,
       a.backend_start
FROM pg_catalog.pg_locks AS l
LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'advisory'
  AND l.database = 0
  AND l.classid = 1936616555
  AND l.objsubid = 1
  AND l.granted;
GRANT SELECT ON snowflake_nodes TO PUBLIC;

-- This server's node range, as the settings give it (defaults when the library is not loaded).
CREATE FUNCTION snowflake_node_range() RETURNS int4range
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT int4range(coalesce(current_setting('snowlink.node_min', true), '0')::int,
                     coalesce(current_setting('snowlink.node_max', true), '1023')::int, '[]');
END;

-- The peers' node ranges that overlap this server's: none when the ranges are disjoint. Servers
-- whose ranges overlap can issue the same ID.
CREATE FUNCTION snowflake_node_range_conflicts(peer_ranges int4range[])
RETURNS TABLE (peer_range int4range, shared_nodes int4range)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT peer, peer * snowflake_node_range()
    FROM unnest(peer_ranges) AS peer
    WHERE peer && snowflake_node_range();
END;
