-- The extension's advisory locks (node claims, each database's visit writer) carry database 0,
-- which no database has, while every SQL form of pg_advisory_lock() puts the current database's
-- OID into its tag (src/locks.rs). So no role can take them: here a session holds, as a role with
-- no privilege but CONNECT, every advisory lock that SQL can make from the extension's lock class
-- and objects (node 7, this database's OID, and 0), and node claims and the visit writer go on.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s options=''-c snowlink.node_min=7 -c snowlink.node_max=7''',
              current_setting('unix_socket_directories'), current_setting('port'),
              current_database()) AS node7 \gset
SELECT oid AS database_oid FROM pg_database WHERE datname = current_database() \gset
CREATE ROLE lock_taker LOGIN;
SELECT x'736e6c6b'::int AS lock_class \gset
CREATE TEMP TABLE objects AS SELECT unnest(ARRAY[7, :database_oid, 0]::int[]) AS object;
GRANT SELECT ON objects TO lock_taker;

SELECT (shorten('https://example.com/locks', code => 'locks')).code;

SET ROLE lock_taker;
SELECT count(*) FILTER (WHERE pg_advisory_lock(:lock_class, object) IS NOT NULL) AS two_keys,
       count(*) FILTER (WHERE pg_advisory_lock_shared(:lock_class, object) IS NOT NULL) AS two_keys_shared,
       count(*) FILTER (WHERE pg_try_advisory_lock(:lock_class, object)) AS try_two_keys,
       count(*) FILTER (WHERE pg_advisory_lock((:lock_class::bigint << 32) | object) IS NOT NULL) AS one_key,
       count(*) FILTER (WHERE pg_advisory_lock_shared((:lock_class::bigint << 32) | object) IS NOT NULL) AS one_key_shared,
       count(*) FILTER (WHERE pg_try_advisory_lock((:lock_class::bigint << 32) | object)) AS try_one_key
FROM objects;
-- The transaction forms too, held while the checks below run.
BEGIN;
SELECT count(*) FILTER (WHERE pg_advisory_xact_lock(:lock_class, object) IS NOT NULL) AS xact_two_keys,
       count(*) FILTER (WHERE pg_advisory_xact_lock((:lock_class::bigint << 32) | object) IS NOT NULL) AS xact_one_key,
       count(*) FILTER (WHERE pg_try_advisory_xact_lock_shared(:lock_class, object)) AS try_xact_shared
FROM objects;
RESET ROLE;
SELECT count(*) AS advisory_locks_held FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted;

-- Another backend claims node 7.
SELECT node FROM dblink(:'node7', 'SELECT snowflake_node_id()') AS t(node int);
-- The visit writer of this database starts and writes a visit.
SET snowlink.visit_write_mode = background;
SELECT resolve('locks') IS NOT NULL AS resolved;
CREATE FUNCTION pg_temp.shows_within_15s(code text, visits bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    FOR attempt IN 1..300 LOOP
        IF (SELECT s.visits FROM shortlink_stats(code) AS s) = visits THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END
$$;
SELECT pg_temp.shows_within_15s('locks', 1) AS written_by_the_visit_writer;
COMMIT;
SELECT pg_advisory_unlock_all();
RESET snowlink.visit_write_mode;
DROP TABLE objects;
DROP ROLE lock_taker;
DROP EXTENSION dblink;
