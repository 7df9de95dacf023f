-- The node registry: each backend claims the lowest free node in
-- [snowlink.node_min, snowlink.node_max] as a server-wide session advisory lock.
SELECT snowflake_node_id() AS my_node \gset
-- The settings exist once a snowlink function has loaded the library in the session (or from the
-- start, with session_preload_libraries = 'snowlink').
SHOW snowlink.node_min;
SHOW snowlink.node_max;
SHOW snowlink.max_clock_backward_ms;

-- snowflake_nodes lists every claim on the server, read from pg_locks, so it cannot be stale.
SELECT node_id = :my_node AS my_node,
       datname = current_database() AS datname,
       usename = current_user AS usename,
       application_name,
       client_addr IS NULL AS over_a_socket,
       backend_start = (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()) AS backend_start
FROM snowflake_nodes WHERE pid = pg_backend_pid();

-- The claims are locks of their own: database 0 (server-wide) and classid 'snlk'. They are not
-- pg_advisory_lock() keys, so an application's advisory locks never collide with them.
SELECT locktype, database, classid, objsubid, mode, granted
FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory';
-- The view finds them by that tag, which the library defines.
SELECT * FROM snowlink_internal._snowflake_lock_tag();
SELECT pg_try_advisory_lock(:my_node) AS application_lock_on_same_number;
SELECT pg_advisory_unlock(:my_node);

-- Narrowing the range moves this backend to a node inside it, at once, and frees the old one.
SET snowlink.node_min = 900;
SET snowlink.node_max = 909;
SELECT snowflake_node_id() AS node_after_narrowing;
SELECT snowflake_node(snowflake_next()) AS node_of_next_id;
SELECT array_agg(node_id) AS my_claims FROM snowflake_nodes WHERE pid = pg_backend_pid();

-- Servers that make IDs for the same tables need disjoint ranges. snowflake_node_range() is this
-- server's; snowflake_node_range_conflicts(peers) lists the peers' ranges that overlap it.
SELECT snowflake_node_range();
SELECT * FROM snowflake_node_range_conflicts('{"[0,511]", "[910,1023]", "[905,905]"}');
SELECT count(*) AS conflicts FROM snowflake_node_range_conflicts('{"[0,899]", "[910,1023]"}');

-- Settings errors. Each is followed by its SQLSTATE.
SET snowlink.node_min = 950;
SELECT snowflake_next();
\echo :LAST_ERROR_SQLSTATE
SELECT snowflake_node_range();
\echo :LAST_ERROR_SQLSTATE
SET snowlink.node_max = 1024;
\echo :LAST_ERROR_SQLSTATE
SET snowlink.node_min = -1;
\echo :LAST_ERROR_SQLSTATE
SET snowlink.max_clock_backward_ms = 10001;
\echo :LAST_ERROR_SQLSTATE
RESET snowlink.node_min;
RESET snowlink.node_max;

-- Only superusers may change the settings: a wrong range on one server can repeat another's IDs.
CREATE ROLE snowlink_app;
SET ROLE snowlink_app;
SET snowlink.node_min = 5;
\echo :LAST_ERROR_SQLSTATE
SET snowlink.max_clock_backward_ms = 100;
\echo :LAST_ERROR_SQLSTATE
-- ... while any role may draw IDs and read the view.
SELECT snowflake_next() > 0 AS app_can_draw,
       (SELECT count(*) FROM snowflake_nodes WHERE pid = pg_backend_pid()) AS app_sees_its_claim;
RESET ROLE;
DROP ROLE snowlink_app;

-- snowflake_node_status: the server's range, the nodes claimed in it (this session holds one),
-- and its high-water marks; with the clock where it is, no node's mark is ahead of it
-- (t/clock.pl steps the clock back and sees nodes refuse IDs).
SELECT node_range, nodes, claimed >= 1 AS claimed, nodes_ahead_of_clock, nodes_refusing, furthest_ahead_ms,
       last_lease_at BETWEEN now() - interval '1 hour' AND clock_timestamp() + interval '1 minute' AS recent_lease
FROM snowflake_node_status;
-- Readable by snowlink_user, for monitoring, not by every role.
SELECT has_table_privilege('snowlink_user', 'snowflake_node_status', 'SELECT') AS users,
       has_table_privilege('public', 'snowflake_node_status', 'SELECT') AS everyone;
