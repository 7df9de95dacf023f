-- Concurrent shorten() calls for one URL agree on one link, at every isolation level: under READ
-- COMMITTED they wait for each other, under REPEATABLE READ and SERIALIZABLE a call that cannot
-- see the link another transaction made fails with 40001, to be retried. Sessions are opened
-- with dblink; each test file starts from no links.
TRUNCATE shortlinks, shortlink_visits;
CREATE EXTENSION dblink;
SELECT format('host=%s port=%s dbname=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database()) AS server \gset
SELECT dblink_connect('s' || n, :'server') FROM generate_series(1, 4) AS n;

-- shorten_at_once(isolation level, url): the first session shortens the URL and keeps its
-- transaction open; the three others, whose snapshots were taken before, shorten it too and wait;
-- then the first commits. Each of the others ends its transaction as soon as its call returns
-- (under READ COMMITTED it holds up the rest until then). Returns what each session got.
CREATE FUNCTION pg_temp.shorten_at_once(isolation text, url text)
RETURNS TABLE (session text, outcome text) LANGUAGE plpgsql AS $$
DECLARE
    waiting text[] := ARRAY['s2', 's3', 's4'];
    n int;
BEGIN
    FOR n IN 1..4 LOOP
        PERFORM dblink_exec('s' || n, 'BEGIN ISOLATION LEVEL ' || isolation);
        -- Takes the snapshot now.
        PERFORM * FROM dblink('s' || n, 'SELECT count(*) FROM shortlinks') AS t(links bigint);
    END LOOP;
    PERFORM * FROM dblink('s1', format('SELECT code FROM shorten(%L)', url)) AS t(code text);
    FOREACH session IN ARRAY waiting LOOP
        PERFORM dblink_send_query(session, format('SELECT code FROM shorten(%L)', url));
    END LOOP;
    PERFORM pg_sleep(0.2);
    PERFORM dblink_exec('s1', 'COMMIT');
    session := 's1';
    outcome := 'made the link';
    RETURN NEXT;
    WHILE cardinality(waiting) > 0 LOOP
        FOREACH session IN ARRAY waiting LOOP
            CONTINUE WHEN dblink_is_busy(session) = 1;
            BEGIN
                PERFORM * FROM dblink_get_result(session) AS t(code text);
                outcome := 'got the same link';
            EXCEPTION WHEN OTHERS THEN
                outcome := SQLSTATE || ': ' || SQLERRM;
            END;
            -- The end of the asynchronous result.
            PERFORM * FROM dblink_get_result(session, false) AS t(code text);
            PERFORM dblink_exec(session, 'ROLLBACK');
            waiting := array_remove(waiting, session);
            RETURN NEXT;
        END LOOP;
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;

SELECT * FROM pg_temp.shorten_at_once('READ COMMITTED', 'https://example.com/read-committed') ORDER BY session;
SELECT * FROM pg_temp.shorten_at_once('REPEATABLE READ', 'https://example.com/repeatable-read') ORDER BY session;
SELECT * FROM pg_temp.shorten_at_once('SERIALIZABLE', 'https://example.com/serializable') ORDER BY session;
SELECT url, count(*) AS links FROM shortlinks GROUP BY url ORDER BY url;

-- A role without snowlink's grants cannot hold up shorten(): the calls for one URL wait on a row
-- of a table that no other role can lock, not on an advisory lock that any role can take.
CREATE ROLE snowlink_stranger LOGIN;
SELECT dblink_connect('stranger', :'server' || ' user=snowlink_stranger');
SELECT * FROM dblink('stranger', $$SELECT pg_advisory_lock(1936616555, hashtext('https://example.com/blocked'))$$)
    AS t(locked text);
SELECT * FROM dblink('stranger', 'SELECT bucket FROM shortlink_url_locks LIMIT 1 FOR UPDATE') AS t(bucket int);
SET lock_timeout = '2s';
SELECT url FROM shorten('https://example.com/blocked');
RESET lock_timeout;
SELECT dblink_disconnect('stranger');
DROP ROLE snowlink_stranger;

-- On one server shorten() finds a URL's links through the hash index on shortlinks.url; the list
-- of each URL's links in shortlink_url_links, and the wait for a link listed there that does not
-- show yet, are for Citus (t/citus.pl), and nothing writes the list here.
SELECT count(*) AS url_links_on_one_server FROM shortlink_url_links;

SELECT dblink_disconnect('s' || n) FROM generate_series(1, 4) AS n;
DROP EXTENSION dblink;
