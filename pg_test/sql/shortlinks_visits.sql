-- Clicks on one popular link from many backends: each backend counts in memory and writes its own
-- row of shortlink_visits, so no click waits for another's row lock, and no visit is lost.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
CREATE EXTENSION dblink;
SELECT format('host=%s port=%s dbname=%s options=''-c snowlink.visit_flush_interval_ms=0''',
              current_setting('unix_socket_directories'), current_setting('port'),
              current_database()) AS server \gset
SELECT (shorten('https://example.com/popular', code => 'popular')).code;

SELECT dblink_connect('visitor' || v, :'server') FROM generate_series(1, 4) AS v;
SELECT dblink_send_query('visitor' || v,
           'SELECT count(resolve(''popular'')) FROM generate_series(1, 500)')
FROM generate_series(1, 4) AS v;
SELECT sum(resolved) AS resolved
FROM generate_series(1, 4) AS v,
     LATERAL dblink_get_result('visitor' || v) AS t(resolved bigint);

SELECT visits AS counted FROM shortlink_stats('popular');
SELECT count(*) AS rows_one_per_backend, sum(visits) AS visits
FROM shortlink_visits v JOIN shortlinks s ON s.id = v.link_id WHERE s.code = 'popular';
-- No visit waits in the link's own row: it is not touched.
SELECT visits AS in_the_link_row FROM shortlinks WHERE code = 'popular';

-- Once those backends have exited, shortlinks_purge_expired() folds their rows into the link.
SELECT dblink_disconnect('visitor' || v) FROM generate_series(1, 4) AS v;
DO $$
BEGIN
    WHILE (SELECT count(*) FROM pg_stat_activity
           WHERE backend_type = 'client backend' AND datname = current_database()) > 1 LOOP
        PERFORM pg_sleep(0.01);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END
$$;
SELECT shortlinks_purge_expired() AS purged;
SELECT visits AS in_the_link_row FROM shortlinks WHERE code = 'popular';
SELECT count(*) AS rows_left FROM shortlink_visits v JOIN shortlinks s ON s.id = v.link_id
WHERE s.code = 'popular';
SELECT visits AS counted FROM shortlink_stats('popular');
DROP EXTENSION dblink;
