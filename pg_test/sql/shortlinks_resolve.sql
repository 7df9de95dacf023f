-- resolve(code) -> text: the target URL of a live link, with the visit counted; NULL otherwise.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
-- Write counted visits with every read-write resolve (by default the visit writer writes them).
SET snowlink.visit_write_mode = transaction;

SELECT (shorten('https://example.com/target', code => 'live')).code;
SELECT resolve('live') AS live, resolve('unknown') AS unknown, resolve(NULL) AS null_code;
-- Codes are compared byte-wise: case matters.
SELECT resolve('LIVE') AS other_case;

-- Disabled, not yet valid, expired, and used-up links resolve to NULL.
SELECT (shorten('https://example.com/disabled', code => 'disabled')).code;
SELECT shortlink_disable('disabled') AS disabled, resolve('disabled') AS resolves_to;
SELECT shortlink_enable('disabled') AS enabled, resolve('disabled') AS resolves_to;
SELECT shortlink_disable('disabled', disabled => true) AS disabled, resolve('disabled') AS resolves_to;
SELECT shortlink_disable('disabled', disabled => false) AS enabled, resolve('disabled') AS resolves_to;
SELECT shortlink_disable('no-such-code') AS disabled_unknown;
SELECT (shorten('https://example.com/later', code => 'later',
                valid_from => now() + interval '1 hour')).code;
SELECT resolve('later') AS not_yet_valid;
SELECT (shorten('https://example.com/soon-gone', code => 'expired',
                expires_at => now() + interval '1 hour')).code;
SELECT resolve('expired') AS before_expiry;
UPDATE shortlinks SET expires_at = now() - interval '1 second', valid_from = NULL WHERE code = 'expired';
SELECT resolve('expired') AS after_expiry;

-- max_visits: each visit is counted, and committed, by the database's visit writer before the link
-- is served, under the link's row lock; the last one goes to one caller, then NULL.
SELECT (shorten('https://example.com/twice', code => 'twice', max_visits => 2)).code;
SELECT resolve('twice') AS first, resolve('twice') AS second, resolve('twice') AS third;
SELECT visits, max_visits FROM shortlinks WHERE code = 'twice';
-- So a link is served at most max_visits times whatever the caller's transaction does: a visit
-- stays counted when the transaction rolls back, is read only (as PostgREST's GET is), or undoes
-- the call in an exception block.
SELECT (shorten('https://example.com/thrice', code => 'thrice', max_visits => 3)).code;
BEGIN;
SELECT resolve('thrice') AS rolled_back;
ROLLBACK;
BEGIN TRANSACTION READ ONLY;
SELECT resolve('thrice') AS read_only;
ROLLBACK;
DO $$
BEGIN
    PERFORM resolve('thrice');
    RAISE EXCEPTION 'undone';
EXCEPTION WHEN raise_exception THEN
END
$$;
SELECT resolve('thrice') AS no_visit_left;
SELECT visits, max_visits FROM shortlinks WHERE code = 'thrice';
-- A row that a transaction holds (this one's own, here) is waited for a second, then refused.
SELECT (shorten('https://example.com/held', code => 'held', max_visits => 5)).code;
BEGIN;
SELECT shortlink_disable('held', false) AS holds_the_row;
SELECT resolve('held');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT resolve('held') AS once_released;
SELECT visits FROM shortlinks WHERE code = 'held';

-- Visit statistics: shortlink_stats(code) -> (visits, first_visit_at, last_visit_at).
SELECT visits, first_visit_at <= last_visit_at AS ordered, last_visit_at <= clock_timestamp() AS past
FROM shortlink_stats('live');
SELECT resolve('live') IS NOT NULL AS resolved;
SELECT visits FROM shortlink_stats('live');
SELECT * FROM shortlink_stats('unknown');

-- Read-only transactions (PostgREST runs GET this way) resolve too. Their visits wait in the
-- backend and are written by its next read-write resolve.
BEGIN TRANSACTION READ ONLY;
SELECT resolve('live') AS read_only_1, resolve('live') AS read_only_2;
SELECT visits AS written_so_far FROM shortlink_stats('live');
COMMIT;
SELECT resolve('live') IS NOT NULL AS read_write;
SELECT visits AS all_counted FROM shortlink_stats('live');
-- A rolled-back transaction gives its written visits back to the buffer: none is lost.
BEGIN;
SELECT resolve('live') IS NOT NULL AS in_rolled_back_transaction;
ROLLBACK;
SELECT resolve('live') IS NOT NULL AS read_write;
SELECT visits AS still_all_counted FROM shortlink_stats('live');

-- shortlinks_purge_expired() deletes the links that can never resolve again (expired, or every
-- visit used) and returns how many.
SELECT shortlinks_purge_expired() AS purged;
SELECT code FROM shortlinks WHERE code IN ('expired', 'twice', 'live', 'later', 'disabled') ORDER BY code;
SELECT shortlinks_purge_expired() AS purged_again;
