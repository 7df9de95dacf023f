-- Clicks on one popular link from many backends go into one row per link and day (UTC), so no
-- click waits for another's row lock, no visit is lost, and the rows grow with links and days,
-- never with backends. By default the database's visit writer writes the visits (the end of this
-- file); this file first shows the transaction write mode, in which each backend counts in memory
-- and writes its counts in batches itself.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
CREATE EXTENSION dblink;
SELECT format('host=%s port=%s dbname=%s options=''-c snowlink.visit_write_mode=transaction''',
              current_setting('unix_socket_directories'), current_setting('port'),
              current_database()) AS server \gset
SELECT (shorten('https://example.com/popular', code => 'popular')).code;
-- Backends exit a moment after their client disconnects; this waits for that.
CREATE FUNCTION pg_temp.wait_for_visitors_to_exit() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WHILE (SELECT count(*) FROM pg_stat_activity
           WHERE backend_type = 'client backend' AND datname = current_database()) > 1 LOOP
        PERFORM pg_sleep(0.01);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END
$$;

-- Four visitors that write their visits with every read-write transaction.
SELECT dblink_connect('visitor' || v, :'server') FROM generate_series(1, 4) AS v;
SELECT dblink_send_query('visitor' || v,
           'SELECT count(resolve(''popular'')) FROM generate_series(1, 500)')
FROM generate_series(1, 4) AS v;
SELECT sum(resolved) AS resolved
FROM generate_series(1, 4) AS v,
     LATERAL dblink_get_result('visitor' || v) AS t(resolved bigint);

SELECT visits AS counted FROM shortlink_stats('popular');
SELECT count(*) AS rows_one_per_day, sum(v.visits) AS visits,
       v.day = (now() AT TIME ZONE 'UTC')::date AS today_in_utc
FROM shortlink_visits v JOIN shortlinks s ON s.id = v.link_id WHERE s.code = 'popular'
GROUP BY v.day;
-- No visit waits in the link's own row: it is not touched.
SELECT visits AS in_the_link_row FROM shortlinks WHERE code = 'popular';
SELECT dblink_disconnect('visitor' || v) FROM generate_series(1, 4) AS v;

-- Twenty more backends come, visit and go: still one row.
SELECT count(*) AS visited
FROM generate_series(1, 20) AS n,
     LATERAL dblink(:'server', format('SELECT resolve(%L) -- visitor %s', 'popular', n)) AS t(url text);
SELECT pg_temp.wait_for_visitors_to_exit();
SELECT count(*) AS rows_still_one FROM shortlink_visits v JOIN shortlinks s ON s.id = v.link_id
WHERE s.code = 'popular';
SELECT visits AS counted FROM shortlink_stats('popular');
-- The purge deletes only links that can never resolve again, with their visit rows.
SELECT shortlinks_purge_expired() AS purged;

-- A backend writes the visits it still holds when it exits. Here they were counted in read-only
-- transactions, which cannot write them.
SELECT dblink_connect('reader', :'server');
SELECT dblink_exec('reader', 'BEGIN TRANSACTION READ ONLY');
SELECT * FROM dblink('reader', 'SELECT count(resolve(''popular'')) FROM generate_series(1, 300)')
    AS t(resolved bigint);
SELECT dblink_exec('reader', 'COMMIT');
SELECT visits AS counted_while_connected FROM shortlink_stats('popular');
SELECT dblink_disconnect('reader');
SELECT pg_temp.wait_for_visitors_to_exit();
SELECT visits AS counted_after_exit FROM shortlink_stats('popular');

-- A read-write transaction writes the visits of every link it counted, here 10,100 at once. No
-- visit is dropped.
SELECT count(shorten('https://example.com/many/' || i, code => 'many-' || i)) AS links
FROM generate_series(1, 10100) AS i;
SELECT dblink_connect('reader', :'server');
SELECT * FROM dblink('reader', 'SELECT count(resolve(''many-'' || i)) FROM generate_series(1, 10100) AS i')
    AS t(resolved bigint);
SELECT count(*) AS links_with_written_visits FROM shortlinks AS s
WHERE s.code LIKE 'many-%' AND EXISTS (SELECT FROM shortlink_visits AS v WHERE v.link_id = s.id);
SELECT dblink_disconnect('reader');
SELECT pg_temp.wait_for_visitors_to_exit();
SELECT sum(st.visits) AS all_counted
FROM shortlinks AS s, LATERAL shortlink_stats(s.code) AS st WHERE s.code LIKE 'many-%';

-- A visit that resolve() counted is written exactly once, whatever happens to the transactions
-- around it: savepoints and exception blocks that roll back, two-phase commit, an error while
-- writing. Visits are written just before a read-write transaction commits.
SET snowlink.visit_write_mode = transaction;
SELECT (shorten('https://example.com/exactly-once', code => 'once')).code;
BEGIN;
SELECT resolve('once');
SAVEPOINT before_the_second;
SELECT resolve('once');
ROLLBACK TO SAVEPOINT before_the_second;
SAVEPOINT before_the_third;
SELECT resolve('once');
RELEASE SAVEPOINT before_the_third;
DO $$
BEGIN
    PERFORM resolve('once');
    RAISE EXCEPTION 'rolled back';
EXCEPTION WHEN OTHERS THEN
END
$$;
SELECT shortlink_redirect('once') IS NOT NULL AS redirected;
SELECT resolve('once');
COMMIT;
SELECT visits AS six FROM shortlink_stats('once');
-- A prepared transaction writes none (this backend would not learn whether it commits); a later
-- transaction writes them, whether the prepared one commits or rolls back.
BEGIN;
SELECT resolve('once');
PREPARE TRANSACTION 'counted';
COMMIT PREPARED 'counted';
BEGIN;
SELECT resolve('once');
PREPARE TRANSACTION 'counted';
ROLLBACK PREPARED 'counted';
SELECT visits AS still_six FROM shortlink_stats('once');
SELECT resolve('once');
SELECT visits AS nine FROM shortlink_stats('once');
-- While another session locks shortlink_visits (an ALTER TABLE, VACUUM FULL or LOCK), counting
-- holds up no caller: the visits wait in the backend, and a later transaction writes them. (The
-- lock_timeout only turns a wait, which must not come, into an error.)
SELECT dblink_connect('locker', :'server');
SELECT dblink_exec('locker', 'BEGIN');
SELECT dblink_exec('locker', 'LOCK TABLE shortlink_visits IN EXCLUSIVE MODE');
SET lock_timeout = '5s';
SELECT resolve('once');
RESET lock_timeout;
SELECT visits AS still_nine FROM shortlink_stats('once');
SELECT dblink_exec('locker', 'COMMIT');
SELECT dblink_disconnect('locker');
SELECT resolve('once');
SELECT visits AS eleven FROM shortlink_stats('once');
-- Visits written inside a transaction through the internal functions (here as a superuser) cannot
-- go into a prepared transaction; the visits stay counted.
BEGIN;
SELECT resolve('once');
SELECT snowlink_internal._shortlinks_flush_visits();
PREPARE TRANSACTION 'counted';
\echo :LAST_ERROR_SQLSTATE
SELECT resolve('once');
SELECT visits AS thirteen FROM shortlink_stats('once');
RESET snowlink.visit_write_mode;

-- By default (snowlink.visit_write_mode = background) a backend hands each visit to the
-- database's visit writer, a background worker started on demand, which writes what it gathered
-- every snowlink.visit_flush_interval_ms: a visit shows about a second later, whatever its
-- backend does next. This one shows while its transaction is still open, and stays counted after
-- a rollback: the link was resolved. (This test server's default is the transaction mode.)
SET snowlink.visit_write_mode = background;
SHOW snowlink.visit_flush_interval_ms;
CREATE FUNCTION pg_temp.shows_within_10s(code text, visits bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    FOR attempt IN 1..200 LOOP
        IF (SELECT s.visits FROM shortlink_stats(code) AS s) = visits THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END
$$;
SELECT (shorten('https://example.com/background', code => 'background')).code;
BEGIN;
SELECT resolve('background');
SELECT pg_temp.shows_within_10s('background', 1) AS shows_before_the_transaction_ends;
ROLLBACK;
SELECT count(resolve('background')) FROM generate_series(1, 3);
SELECT pg_temp.shows_within_10s('background', 4) AS shows_all_four;
SELECT datname = current_database() AS in_this_database
FROM pg_stat_activity WHERE backend_type = 'snowlink visit writer';
-- A link resolved in the transaction that makes it: the writer may write the visit before the
-- link is committed, and keeps it all the same.
BEGIN;
SELECT (shorten('https://example.com/made-and-visited', code => 'made-and-visited')).code;
SELECT resolve('made-and-visited') IS NOT NULL AS resolved;
SELECT pg_sleep(1.5);
COMMIT;
SELECT pg_temp.shows_within_10s('made-and-visited', 1) AS kept;
-- Visits of a link that is gone by the time they are written (deleted, here straight from the
-- table, as only the extension's owner can) are left out, and logged: no visit row without its
-- link. A link made in the last minute is taken for one not committed yet, so this one is older.
SELECT (shorten('https://example.com/gone', code => 'gone')).code;
UPDATE shortlinks SET id = snowflake_min(now() - interval '1 hour') WHERE code = 'gone'
RETURNING id AS gone_id \gset
BEGIN;
SET LOCAL snowlink.visit_write_mode = transaction;
SELECT resolve('gone') IS NOT NULL AS resolved;
DELETE FROM shortlinks WHERE code = 'gone';
COMMIT;
SELECT count(*) AS rows_of_the_gone_link FROM shortlink_visits WHERE link_id = :gone_id;
-- The interval is the server's, for its writers: set it in postgresql.conf or with ALTER SYSTEM.
SET snowlink.visit_flush_interval_ms = 0;
\echo :LAST_ERROR_SQLSTATE
SET snowlink.visit_write_mode = sometimes;
\echo :LAST_ERROR_SQLSTATE
DROP EXTENSION dblink;

-- snowlink_visit_writers: each database's visit writer, as its rings file shows it
-- (t/visits.pl watches one run, stop, fall behind a locked table and drop visits).
-- This database's backends counted visits through the writer above, so it has a row.
SELECT running IN (true, false) AS known, pending_visits >= 0 AS pending, written_visits > 0 AS wrote,
       dropped_visits, rings > 0 AS has_rings, ring_capacity
FROM snowlink_visit_writers
WHERE database = current_database();
-- Readable by snowlink_user, not by every role.
SELECT has_table_privilege('snowlink_user', 'snowlink_visit_writers', 'SELECT') AS users,
       has_table_privilege('public', 'snowlink_visit_writers', 'SELECT') AS everyone;
