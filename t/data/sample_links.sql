-- Short links of every kind, with their bookkeeping: what t/dump_restore.pl and
-- t/upgrade.pl expect to survive a dump or an update. It uses only what snowlink 0.1.0
-- already had, so that it runs against every released version. Run it with psql in a database
-- where snowlink is installed.
\set ON_ERROR_STOP on

-- Counter values far from where a new counter starts, so that a counter that was reset shows.
SELECT setval('shortlink_code_seq', 5000000);
SET snowlink.visit_write_mode = transaction;

-- Generated codes (keyed, which makes the code key, and snowflake style), custom codes with
-- every status, a validity window, limits, a disabled link.
SELECT shorten('https://example.com/page/' || n) FROM generate_series(1, 50) AS n;
SELECT shorten('https://example.com/permanent', code => 'permanent', redirect_status => 301);
SELECT shorten('https://example.com/temporary', code => 'temporary', redirect_status => 307);
SELECT shorten('https://example.com/permanent-308', code => 'permanent-308', redirect_status => 308);
SELECT shorten('https://example.com/expiring', code => 'expiring', expires_at => now() + interval '1 day',
               valid_from => now() - interval '1 hour');
SELECT shorten('https://example.com/not-yet', code => 'not-yet', valid_from => now() + interval '1 day');
SELECT shorten('https://example.com/limited', code => 'limited', max_visits => 100);
SELECT shorten('https://example.com/used-up', code => 'used-up', max_visits => 1);
SELECT shorten('https://example.com/disabled', code => 'disabled');
SELECT shortlink_disable('disabled');
SET snowlink.code_style = 'snowflake';
SELECT shorten('https://example.com/snowflake-style');
RESET snowlink.code_style;
INSERT INTO shortlink_reserved_codes (code) VALUES ('pricing');

-- Visits of every kind: counted in the row of a limited link, written to shortlink_visits by a
-- backend that has exited and folded into the links by the purge, and written by a live backend.
SELECT resolve('limited'), resolve('limited');
SELECT resolve('permanent') FROM generate_series(1, 7);
SELECT resolve('temporary') FROM generate_series(1, 3);
SELECT pg_backend_pid() AS exited_pid \gset
\connect
SET snowlink.visit_write_mode = transaction;
SELECT set_config('snowlink_sample.exited_pid', :'exited_pid', false);
DO $$
BEGIN
    WHILE EXISTS (SELECT FROM pg_stat_activity
                  WHERE pid = current_setting('snowlink_sample.exited_pid')::int) LOOP
        PERFORM pg_sleep(0.01);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END
$$;
SELECT shortlinks_purge_expired();
SELECT resolve('used-up');
SELECT resolve('permanent') FROM generate_series(1, 4);
SELECT resolve('permanent-308') FROM generate_series(1, 2);
