-- shorten(url, code, expires_at, max_visits, redirect_status, force_new, valid_from)
-- RETURNS shortlinks
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET DateStyle = 'ISO';
\d shortlinks

-- A generated code: 7 characters of 0-9a-zA-Z. Only the scheme and host of the URL are normalised.
SELECT code ~ '^[0-9a-zA-Z]{7}$' AS seven_characters, url, redirect_status, disabled, visits,
       valid_from, expires_at, max_visits, created_at = now() AS created_now,
       snowflake_timestamp(id) <= clock_timestamp() AS id_is_a_snowflake
FROM shorten('HTTPS://Example.COM/Docs/Page?Lang=EN#Intro');

-- The same URL with the same options returns the same live link...
SELECT (shorten('https://example.com/Docs/Page?Lang=EN#Intro')).code =
       (shorten('HTTPS://EXAMPLE.com/Docs/Page?Lang=EN#Intro')).code AS same_link;
SELECT count(*) AS links FROM shortlinks;
-- ... while a different path, other options or force_new make a new one.
SELECT count(DISTINCT code) AS distinct_codes
FROM (VALUES ((shorten('https://example.com/docs/page?Lang=EN#Intro')).code),
             ((shorten('https://example.com/Docs/Page?Lang=EN#Intro', redirect_status => 301)).code),
             ((shorten('https://example.com/Docs/Page?Lang=EN#Intro', force_new => true)).code),
             ((shorten('https://example.com/Docs/Page?Lang=EN#Intro')).code)) AS v(code);
-- A link with max_visits is never shared.
SELECT (shorten('https://example.com/once', max_visits => 1)).code <>
       (shorten('https://example.com/once', max_visits => 1)).code AS limited_links_are_never_shared;

-- Finding the live link of a URL uses the hash index on the URL, never a b-tree on the URL.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM shortlinks WHERE url = 'https://example.com/';
RESET enable_seqscan;

-- Options.
SELECT redirect_status, max_visits, expires_at - now() AS expires_in, valid_from - now() AS valid_in
FROM shorten('https://example.com/sale', redirect_status => 308, max_visits => 1000,
             expires_at => now() + interval '7 days', valid_from => now() + interval '1 day');

-- Generated codes never repeat and do not follow their order of creation.
CREATE TEMP TABLE generated AS
SELECT n, (shorten('https://example.com/item/' || n)).code FROM generate_series(1, 2000) AS n;
SELECT count(*) AS links, count(DISTINCT code) AS distinct_codes,
       bool_and(code ~ '^[0-9a-zA-Z]{7}$') AS all_seven_characters
FROM generated;
SELECT count(*) FILTER (WHERE code > previous) BETWEEN 800 AND 1200 AS about_half_ascend,
       count(*) FILTER (WHERE left(code, 2) = left(previous, 2)) < 10 AS neighbours_share_no_prefix
FROM (SELECT code, lag(code) OVER (ORDER BY n) AS previous FROM generated) AS pairs
WHERE previous IS NOT NULL;

-- The snowflake style: base62 of the link's ID, chosen per call (SET LOCAL) or per installation
-- (ALTER SYSTEM / ALTER DATABASE SET snowlink.code_style = 'snowflake').
BEGIN;
SET LOCAL snowlink.code_style = 'snowflake';
SELECT code = base62_encode(id) AS code_is_base62_of_id, length(code) AS length
FROM shorten('https://example.com/snowflake-style');
COMMIT;
SHOW snowlink.code_style;
SET snowlink.code_style = 'sequential';
\echo :LAST_ERROR_SQLSTATE

-- Custom codes: 1 to 64 characters of 0-9, A-Z, a-z, _ and -. Case matters.
SELECT code, url FROM shorten('https://example.com/spring', code => 'Spring-2026_sale');
SELECT code FROM shorten('https://example.com/x', code => 'x');
SELECT code FROM shorten('https://example.com/X', code => 'X');
SELECT length(code) FROM shorten('https://example.com/long', code => repeat('a', 64));
-- Asking again for the same code, URL and options is not an error.
SELECT code FROM shorten('https://example.com/spring', code => 'Spring-2026_sale');

-- NULL options are the defaults; a NULL URL is an error.
SELECT code ~ '^[0-9a-zA-Z]{7}$' AS force_new_null_is_false
FROM shorten('https://example.com/null-options', code => NULL, force_new => NULL);

-- Errors. Each is followed by its SQLSTATE.
SELECT shorten('https://example.com/taken', code => 'Spring-2026_sale');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', code => 'has space');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', code => 'ünïcode');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', code => '');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', code => repeat('a', 65));
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', code => 'Admin');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', redirect_status => 200);
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', redirect_status => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', max_visits => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', expires_at => '2020-01-01 00:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', valid_from => '2100-01-01 00:00+00',
               expires_at => '2099-01-01 00:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('javascript:alert(document.cookie)');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten(NULL);
\echo :LAST_ERROR_SQLSTATE

-- The table holds every writer to the same statuses and limits, the superuser too (whom
-- row-level security lets through). (Terse: the failing row's ID and time differ in each run.)
\set VERBOSITY terse
INSERT INTO shortlinks (code, url, redirect_status) VALUES ('see-other', 'https://example.com/', 303);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO shortlinks (code, url, max_visits) VALUES ('no-visits', 'https://example.com/', 0);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO shortlinks (code, url, redirect_status) VALUES ('permanent', 'https://example.com/', 308)
RETURNING code, redirect_status;
UPDATE shortlinks SET redirect_status = 200 WHERE code = 'permanent';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM shortlinks WHERE code = 'permanent';
\set VERBOSITY default

-- Reserved codes can be added (and the additions survive pg_dump).
INSERT INTO shortlink_reserved_codes (code) VALUES ('pricing');
SELECT shorten('https://example.com/', code => 'Pricing');
\echo :LAST_ERROR_SQLSTATE

-- Each backend keeps the reserved codes and the code key in memory, and forgets them when another
-- session's change to them commits, when its own transaction changes them, and when it rolls
-- that change back.
CREATE EXTENSION dblink;
SELECT format('host=%s port=%s dbname=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database()) AS server \gset
SELECT dblink_connect('other', :'server');
SELECT dblink_exec('other', $$INSERT INTO shortlink_reserved_codes (code) VALUES ('careers')$$);
SELECT shorten('https://example.com/', code => 'Careers');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
DELETE FROM shortlink_reserved_codes WHERE code = 'careers';
SELECT code FROM shorten('https://example.com/careers', code => 'Careers');
ROLLBACK;
SELECT shorten('https://example.com/', code => 'careers');
\echo :LAST_ERROR_SQLSTATE
SELECT dblink_exec('other', $$DELETE FROM shortlink_reserved_codes WHERE code = 'careers'$$);
SELECT code FROM shorten('https://example.com/careers', code => 'careers');
-- The key (never to be changed by hand: codes made with two keys can repeat), changed and put
-- back by another session: generated codes follow it.
SELECT key AS original_key FROM shortlink_key \gset
SELECT dblink_exec('other', $$UPDATE shortlink_key SET key = '\x000102030405060708090a0b0c0d0e0f'$$);
SELECT code = snowlink_internal._shortlink_keyed_code(
           snowlink_internal._shortlink_server_counter(currval('shortlink_code_seq')),
           '\x000102030405060708090a0b0c0d0e0f') AS keyed_with_the_new_key
FROM shorten('https://example.com/after-a-key-change', force_new => true);
SELECT dblink_exec('other', format('UPDATE shortlink_key SET key = %L', :'original_key'));
SELECT code = snowlink_internal._shortlink_keyed_code(
           snowlink_internal._shortlink_server_counter(currval('shortlink_code_seq')),
           :'original_key') AS keyed_with_the_original_key
FROM shorten('https://example.com/after-the-key-is-back', force_new => true);
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;
