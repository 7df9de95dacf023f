-- Uniqueness across real backends, opened with dblink against this same server.
CREATE EXTENSION dblink;
SELECT format('host=%s port=%s dbname=%s',
              current_setting('unix_socket_directories'), current_setting('port'),
              current_database()) AS server \gset
-- Connections that may claim node 7 only.
SELECT :'server' || ' options=''-c snowlink.node_min=7 -c snowlink.node_max=7''' AS node7 \gset

-- Waits until no backend holds node 7 (a closed connection's backend exits a moment later).
CREATE FUNCTION pg_temp.wait_until_node_7_is_free() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WHILE EXISTS (SELECT FROM snowflake_nodes WHERE node_id = 7) LOOP
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;

-- 1. Concurrency: 4 backends draw 100,000 IDs each at the same time. No ID repeats, each
--    backend's IDs strictly increase, and each backend has a node of its own.
SELECT dblink_connect('worker' || w, :'server') FROM generate_series(1, 4) AS w;
SELECT dblink_send_query('worker' || w,
           'SELECT n, snowflake_next() FROM generate_series(1, 100000) AS n')
FROM generate_series(1, 4) AS w;
CREATE TEMP TABLE drawn (worker int, n int, id bigint);
INSERT INTO drawn SELECT 1, * FROM dblink_get_result('worker1') AS t(n int, id bigint);
INSERT INTO drawn SELECT 2, * FROM dblink_get_result('worker2') AS t(n int, id bigint);
INSERT INTO drawn SELECT 3, * FROM dblink_get_result('worker3') AS t(n int, id bigint);
INSERT INTO drawn SELECT 4, * FROM dblink_get_result('worker4') AS t(n int, id bigint);
SELECT count(*) AS ids, count(DISTINCT id) AS distinct_ids,
       count(DISTINCT snowflake_node(id)) AS nodes
FROM drawn;
SELECT worker, bool_and(id > previous) AS strictly_increasing
FROM (SELECT worker, id, lag(id) OVER (PARTITION BY worker ORDER BY n) AS previous FROM drawn) AS d
WHERE previous IS NOT NULL GROUP BY worker ORDER BY worker;
SELECT dblink_disconnect('worker' || w) FROM generate_series(1, 4) AS w;

-- 2. Node reuse: a backend that claims a node another backend released starts after that
--    backend's last ID.
SELECT dblink_connect('first', :'node7');
SELECT max(id) AS first_last_id FROM dblink('first',
    'SELECT snowflake_next() FROM generate_series(1, 10000)') AS t(id bigint) \gset
SELECT dblink_disconnect('first');
SELECT pg_temp.wait_until_node_7_is_free();
SELECT dblink_connect('second', :'node7');
SELECT node, min(id) > :first_last_id AS starts_after_the_previous_holder
FROM dblink('second', 'SELECT snowflake_node_id(), snowflake_next() FROM generate_series(1, 10000)')
     AS t(node int, id bigint)
GROUP BY node;

-- With one node and it taken, a claim fails and says where to look.
SELECT dblink_connect('third', :'node7');
SELECT * FROM dblink('third', 'SELECT snowflake_next()') AS t(id bigint);
\echo :LAST_ERROR_SQLSTATE
SELECT dblink_disconnect('second');
SELECT pg_temp.wait_until_node_7_is_free();

-- 3. Lost claims: pg_advisory_unlock_all() and DISCARD ALL (PgBouncer's reset query) drop the
--    node lock. The backend notices before its next ID: it claims again, or fails when another
--    backend took the node in between.
SELECT * FROM dblink('third', 'SELECT snowflake_node_id()') AS t(node int);
SELECT * FROM dblink('third', 'SELECT pg_advisory_unlock_all()') AS t(done text);
SELECT dblink_connect('thief', :'node7');
SELECT * FROM dblink('thief', 'SELECT snowflake_node_id()') AS t(node int);
SELECT * FROM dblink('third', 'SELECT snowflake_next()') AS t(id bigint);
\echo :LAST_ERROR_SQLSTATE
SELECT dblink_disconnect('thief');
SELECT pg_temp.wait_until_node_7_is_free();
SELECT * FROM dblink('third', 'SELECT snowflake_node_id()') AS t(node int);

SELECT dblink_exec('third', 'DISCARD ALL');
SELECT dblink_connect('thief', :'node7');
SELECT * FROM dblink('thief', 'SELECT snowflake_node_id()') AS t(node int);
SELECT * FROM dblink('third', 'SELECT snowflake_next()') AS t(id bigint);
\echo :LAST_ERROR_SQLSTATE
SELECT dblink_disconnect('thief');
SELECT pg_temp.wait_until_node_7_is_free();
-- After DISCARD ALL with the node free again, the backend simply claims it again.
SELECT dblink_exec('third', 'DISCARD ALL');
SELECT snowflake_node(id) AS node FROM dblink('third', 'SELECT snowflake_next()') AS t(id bigint);
SELECT dblink_disconnect('third');
SELECT pg_temp.wait_until_node_7_is_free();

-- 4. Two databases of one server: claims are server-wide, so a backend in another database
--    cannot take a node held from this one.
SET snowlink.node_min = 7;
SET snowlink.node_max = 7;
SELECT snowflake_node_id() AS node_held_here;
CREATE DATABASE snowlink_other_db;
SELECT dblink_connect('other_db',
    replace(:'node7', 'dbname=' || current_database(), 'dbname=snowlink_other_db'));
SELECT dblink_exec('other_db', 'CREATE EXTENSION snowlink');
SELECT * FROM dblink('other_db', 'SELECT snowflake_next()') AS t(id bigint);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dblink('other_db', 'SELECT count(*) FROM snowflake_nodes WHERE node_id = 7')
     AS t(claims_seen_from_other_db bigint);
-- Moving this backend off node 7 frees it for the other database.
SET snowlink.node_min = 8;
SET snowlink.node_max = 8;
SELECT snowflake_node_id() AS node_held_here;
SELECT * FROM dblink('other_db', 'SELECT snowflake_node_id()') AS t(node_in_other_db int);
SELECT dblink_disconnect('other_db');
DROP DATABASE snowlink_other_db WITH (FORCE);
RESET snowlink.node_min;
RESET snowlink.node_max;
DROP EXTENSION dblink;
