-- snowflake_next(): unique, time-ordered bigint IDs, made by this backend's node.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO';

-- Positive, strictly increasing within a backend, and carrying the current time and our node.
CREATE TEMP TABLE drawn AS
SELECT n, snowflake_next() AS id FROM generate_series(1, 20000) AS n;
SELECT count(*) AS ids,
       count(DISTINCT id) AS distinct_ids,
       bool_and(id > 0) AS all_positive,
       count(DISTINCT snowflake_node(id)) AS nodes,
       bool_and(snowflake_node(id) = snowflake_node_id()) AS from_our_node,
       bool_and(snowflake_timestamp(id) BETWEEN now() - interval '1 minute'
                                            AND clock_timestamp()) AS made_now
FROM drawn;
SELECT bool_and(id > previous) AS strictly_increasing
FROM (SELECT id, lag(id) OVER (ORDER BY n) AS previous FROM drawn) AS ordered
WHERE previous IS NOT NULL;

-- Within each millisecond the sequence counts 0, 1, 2, ... and never passes 4095: once a
-- millisecond's 4096 IDs are used up, the next ID waits for the next millisecond.
SELECT bool_and(ids <= 4096) AS at_most_4096_per_millisecond,
       bool_and(first_sequence = 0 AND last_sequence = ids - 1) AS sequences_are_dense
FROM (SELECT snowflake_timestamp(id) AS ms, count(*) AS ids,
             min(snowflake_sequence(id)) AS first_sequence, max(snowflake_sequence(id)) AS last_sequence
      FROM drawn GROUP BY 1) AS per_millisecond;

-- As a primary key default. Like nextval(), an ID is not given back when its transaction rolls
-- back: the next ID is still larger.
CREATE TABLE orders (
    id bigint PRIMARY KEY DEFAULT snowflake_next(),
    item text NOT NULL
);
INSERT INTO orders (item) VALUES ('first');
BEGIN;
INSERT INTO orders (item) VALUES ('rolled back') RETURNING id AS rolled_back_id \gset
ROLLBACK;
INSERT INTO orders (item) VALUES ('second');
SELECT item, id > :rolled_back_id AS after_the_rolled_back_id FROM orders ORDER BY id;

-- No table is written, so IDs come in read-only transactions too (PostgREST GET, hot standbys).
BEGIN TRANSACTION READ ONLY;
SELECT snowflake_next() > :rolled_back_id AS works_read_only;
COMMIT;

-- The ID key doubles as a time index: snowflake_min() turns a time range into an ID range,
-- which is a range scan of the primary key.
INSERT INTO orders (item) SELECT 'bulk ' || n FROM generate_series(1, 1000) AS n;
ANALYZE orders;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM orders
WHERE id >= snowflake_min('2026-01-01 00:00+00') AND id < snowflake_min('2026-02-01 00:00+00');
SELECT count(*) = (SELECT count(*) FROM orders
                   WHERE snowflake_timestamp(id) >= now() - interval '1 hour') AS range_matches_timestamps
FROM orders
WHERE id >= snowflake_min(now() - interval '1 hour') AND id < snowflake_min(now() + interval '1 hour');

-- Parallel workers cannot hold the node lock: snowflake_next() is PARALLEL UNSAFE, so a query
-- that calls it stays in the leader.
SET max_parallel_workers_per_gather = 4;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF) SELECT snowflake_next() FROM orders;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;

DROP TABLE orders;
