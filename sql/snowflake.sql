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
