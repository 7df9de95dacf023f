-- Clicks on one popular link from many backends: each backend counts in memory and writes its
-- counts in batches into one row per link and day (UTC), so no click waits for another's row lock,
-- no visit is lost, and the rows grow with links and days, never with backends.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
CREATE EXTENSION dblink;
SELECT format('host=%s port=%s dbname=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database()) AS server \gset
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
SELECT dblink_connect('visitor' || v,
                      :'server' || ' options=''-c snowlink.visit_flush_interval_ms=0''')
FROM generate_series(1, 4) AS v;
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
-- transactions, which cannot write them, under the default flush interval.
SELECT dblink_connect('reader', :'server');
SELECT dblink_exec('reader', 'BEGIN TRANSACTION READ ONLY');
SELECT * FROM dblink('reader', 'SELECT count(resolve(''popular'')) FROM generate_series(1, 300)')
    AS t(resolved bigint);
SELECT dblink_exec('reader', 'COMMIT');
SELECT visits AS counted_while_connected FROM shortlink_stats('popular');
SELECT dblink_disconnect('reader');
SELECT pg_temp.wait_for_visitors_to_exit();
SELECT visits AS counted_after_exit FROM shortlink_stats('popular');

-- A backend holds visits of at most 10,000 distinct links; one more makes the transaction write
-- them when it commits, whatever the flush interval. No visit is dropped.
SELECT count(shorten('https://example.com/many/' || i, code => 'many-' || i)) AS links
FROM generate_series(1, 10100) AS i;
SELECT dblink_connect('reader', :'server' || ' options=''-c snowlink.visit_flush_interval_ms=1h''');
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
SET snowlink.visit_flush_interval_ms = 0;
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
-- An error while writing (a lock timeout here: another session holds shortlink_visits) leaves the
-- visits to a later transaction, and the caller's transaction commits.
SELECT dblink_connect('locker', :'server');
SELECT dblink_exec('locker', 'BEGIN');
SELECT dblink_exec('locker', 'LOCK TABLE shortlink_visits IN EXCLUSIVE MODE');
SET lock_timeout = '100ms';
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
SELECT _shortlinks_flush_visits();
PREPARE TRANSACTION 'counted';
\echo :LAST_ERROR_SQLSTATE
SELECT resolve('once');
SELECT visits AS thirteen FROM shortlink_stats('once');
RESET snowlink.visit_flush_interval_ms;
DROP EXTENSION dblink;
