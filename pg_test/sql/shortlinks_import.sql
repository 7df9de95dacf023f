-- shortlinks_import(links regclass, batch_size) -> (code, url, error): existing links with their
-- own codes (and created_at, title, tags and domain when the table has them), exported from
-- another shortener for example, become short links. The rows refused come back with the reason;
-- the others are imported, with the checks and normal form of shorten().
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SELECT (shorten('https://example.com/already-here', code => 'taken')).code;
SELECT now() AS before_import \gset

-- From a CSV file, say: \copy exported FROM 'links.csv' WITH (FORMAT csv, HEADER)
CREATE TEMP TABLE exported (code text, url text, created_at timestamptz);
INSERT INTO exported VALUES
    ('launch', 'HTTPS://Example.COM/launch', '2019-05-01 12:00+00'),
    ('docs', 'https://example.com/docs?lang=ä', NULL),
    ('bad url', 'https://example.com/', NULL),
    ('script', 'javascript:alert(1)', NULL),
    ('relative', 'example.com/page', NULL),
    ('no-url', NULL, NULL),
    (NULL, 'https://example.com/no-code', NULL),
    ('Admin', 'https://example.com/admin', NULL),
    ('launch', 'https://example.com/launch-again', NULL),
    ('docs', 'https://example.com/docs?lang=ä', NULL),
    ('fixed', 'ftp://example.com/fixed', NULL),
    ('fixed', 'https://example.com/fixed', NULL),
    ('taken', 'https://example.com/other', NULL),
    ('aZl8N0y', 'https://example.com/looks-generated', NULL);
-- A code that comes twice is imported from its first row that passes the checks; the later
-- rows find it taken, even with the same URL.
SELECT * FROM shortlinks_import('exported') ORDER BY code, url;
SELECT code, url, CASE WHEN created_at >= :'before_import' THEN 'at the import' ELSE created_at::text END AS created
FROM shortlinks WHERE code <> 'taken' ORDER BY code;
SELECT resolve('launch') AS resolves;

-- Batches of any size give the same outcome; without a created_at column, links are made now.
CREATE TEMP TABLE more_links AS
    SELECT 'more-' || n AS code, 'https://example.com/more/' || n AS url FROM generate_series(1, 25) AS n;
INSERT INTO more_links VALUES ('more-1', 'https://example.com/duplicate');
SELECT * FROM shortlinks_import('more_links', batch_size => 10);
SELECT count(*) AS imported, bool_and(created_at >= :'before_import') AS made_at_the_import
FROM shortlinks WHERE code LIKE 'more-%';

-- Titles, tags and domains come along when the table has those columns (tags as an array), in
-- shorten()'s normal form; a row with one refused comes back with the reason. A code is unique
-- within its domain.
CREATE TEMP TABLE labelled (code text, url text, title text, tags text[], domain text);
INSERT INTO labelled VALUES
    ('spring', 'https://example.com/spring', '  Spring sale ', ARRAY['Sale', ' sale', 'Spring'], NULL),
    ('spring', 'https://example.com/s-spring', NULL, NULL, 'S.Example.com'),
    ('spring', 'https://example.com/s-spring-again', NULL, NULL, 's.example.com'),
    ('books', 'https://example.com/books', 'Books', '{}', 'bücher.example:8080'),
    ('long-title', 'https://example.com/long', repeat('t', 501), NULL, NULL),
    ('empty-tag', 'https://example.com/tag', NULL, ARRAY[''], NULL),
    ('bad-domain', 'https://example.com/domain', NULL, NULL, 'https://s.example.com');
SELECT * FROM shortlinks_import('labelled') ORDER BY code, url;
SELECT code, domain, url, title, tags FROM shortlinks
WHERE code IN ('spring', 'books') ORDER BY code, domain NULLS FIRST;
SELECT resolve('spring', 's.example.com') AS s_domain, resolve('books', 'xn--bcher-kva.example:8080') AS books;

-- A generated code never takes an imported one: here the next generated code was imported
-- first, and shorten() goes on to the counter's next value.
SELECT snowlink_internal._shortlink_keyed_code(snowlink_internal._shortlink_server_counter(CASE WHEN is_called THEN last_value + 1 ELSE last_value END),
                             snowlink_internal._shortlink_key())
       AS next_code
FROM shortlink_code_seq \gset
CREATE TEMP TABLE lookalike AS SELECT :'next_code' AS code, 'https://example.com/imported' AS url;
SELECT * FROM shortlinks_import('lookalike');
SELECT code <> :'next_code' AS another_code, url FROM shorten('https://example.com/generated');

-- It reads the table as the caller: a role must be able to read it, and needs snowlink_user.
CREATE ROLE importer LOGIN;
GRANT snowlink_user TO importer;
SET ROLE importer;
SELECT * FROM shortlinks_import('exported') ORDER BY code, url;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM shortlinks_import('exported', batch_size => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shortlinks_import(NULL);
\echo :LAST_ERROR_SQLSTATE
DROP ROLE importer;
