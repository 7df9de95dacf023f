-- shortlinks_distribute(shard_count): on the coordinator of a Citus cluster, makes the extension's
-- tables Citus tables (t/citus.pl runs it on a cluster). And what keeps the generated
-- codes of several servers apart, which works the same on one server.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never

-- Without Citus in the database it refuses, and changes nothing.
SELECT shortlinks_distribute();
\echo :LAST_ERROR_SQLSTATE
SELECT shortlinks_distribute(shard_count => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT conname, contype FROM pg_constraint
WHERE conrelid = 'shortlinks'::regclass AND contype IN ('p', 'u') ORDER BY conname;

-- Only the extension's owner may call it.
CREATE ROLE link_maker;
GRANT snowlink_user TO link_maker;
SET ROLE link_maker;
SELECT shortlinks_distribute();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE link_maker;

-- Each server makes its generated codes from a block of 2^32 counter values per snowflake node of
-- its range, starting at snowlink.node_min × 2^32. Servers with disjoint node ranges, like the
-- nodes of a Citus cluster, never make the same code; a server whose range starts at 0 counts
-- from 0.
SELECT snowflake_node_range();
SELECT snowlink_internal._shortlink_server_counter(0) AS first, snowlink_internal._shortlink_server_counter(41) AS forty_second;
SET snowlink.node_min = 256;
SET snowlink.node_max = 511;
SELECT snowlink_internal._shortlink_server_counter(0) = 256::bigint << 32 AS starts_at_its_block,
       snowlink_internal._shortlink_server_counter((256::bigint << 32) - 1) = (512::bigint << 32) - 1
       AS ends_below_the_next_block;
SELECT code = snowlink_internal._shortlink_keyed_code((256::bigint << 32) + currval('shortlink_code_seq'), snowlink_internal._shortlink_key())
       AS code_from_this_servers_block,
       length(code)
FROM shorten('https://example.com/made-on-a-worker');
-- A server that used up its block (2^32 codes per node) says so.
SELECT snowlink_internal._shortlink_server_counter(256::bigint << 32);
\echo :LAST_ERROR_SQLSTATE
SET snowlink.node_min = 600;
SELECT snowlink_internal._shortlink_server_counter(0);
\echo :LAST_ERROR_SQLSTATE
RESET snowlink.node_min;
RESET snowlink.node_max;
