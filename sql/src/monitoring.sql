-- What whoever runs the server watches (docs/operations.md): each database's visit writer, and
-- the snowflake nodes' range and high-water marks. Readable by snowlink_user, the role a
-- postgres_exporter connects as (docs/monitoring/postgres_exporter-queries.yaml).

-- Each database's visit writer, for whoever watches the server (src/visits/status.rs): whether it
-- runs and as which process, when it last wrote, the visits counted and not yet written, those
-- written and those dropped (for want of room while they could not be written) since the server's
-- boot, and the rings: one per backend slot, each holding ring_capacity visits between two writes.
-- A database whose backends counted no visit since the boot has no row.
REVOKE ALL ON FUNCTION snowlink_internal._visit_writers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._visit_writers() TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._visit_writers() IS 'internal: the rows of snowlink_visit_writers';
CREATE VIEW snowlink_visit_writers AS
    SELECT * FROM snowlink_internal._visit_writers();
REVOKE ALL ON snowlink_visit_writers FROM PUBLIC;
GRANT SELECT ON snowlink_visit_writers TO snowlink_user;
COMMENT ON VIEW snowlink_visit_writers IS
    'each database''s visit writer: running or not, its last write, visits pending, written and dropped since the boot';

-- This server's node range, how much of it backends hold, and its high-water marks
-- (src/snowflake/highwater.rs), for whoever watches the server (docs/operations.md): nodes whose
-- mark is ahead of the clock make their IDs wait for it, and those ahead by more than
-- snowlink.max_clock_backward_ms refuse IDs with 58000 until the clock passes their mark.
REVOKE ALL ON FUNCTION snowlink_internal._snowflake_marks() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._snowflake_marks() TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._snowflake_marks() IS 'internal: the high-water marks of snowflake_node_status';
CREATE VIEW snowflake_node_status AS
SELECT @extschema@.snowflake_node_range() AS node_range,
       m.nodes,
       (SELECT pg_catalog.count(*)::pg_catalog.int4 FROM @extschema@.snowflake_nodes AS n
        WHERE n.node_id OPERATOR(pg_catalog.<@) @extschema@.snowflake_node_range()) AS claimed,
       m.nodes_ahead_of_clock,
       m.nodes_refusing,
       m.furthest_ahead_ms,
       m.last_lease_at
FROM snowlink_internal._snowflake_marks() AS m;
REVOKE ALL ON snowflake_node_status FROM PUBLIC;
GRANT SELECT ON snowflake_node_status TO snowlink_user;
COMMENT ON VIEW snowflake_node_status IS
    'this server''s snowflake node range, the nodes claimed, and the high-water marks ahead of the clock';
