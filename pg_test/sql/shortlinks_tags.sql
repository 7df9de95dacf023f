-- A link's title and tags: shorten(url, ..., title => text, tags => text[]) stores them in one
-- normal form (titles trimmed, empty as NULL; tags trimmed, lower case, sorted, once each), and
-- shortlinks_tagged(tag) finds the links with a tag, newest first, through a GIN index.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never

SELECT code, title, tags
FROM shorten('https://example.com/spring', code => 'spring', title => '  Spring sale 2026 ',
             tags => ARRAY[' Sale', 'spring', 'SALE', 'Été']);
-- Without them: no title, no tags. A title of white space only is no title.
SELECT title, tags FROM shorten('https://example.com/plain', code => 'plain');
SELECT title, tags FROM shorten('https://example.com/blank', code => 'blank', title => '   ', tags => '{}');

-- The same URL with the same title and tags (in any spelling of the same tags) gets its live
-- link back; another title or other tags make a new link.
SELECT code FROM shorten('https://example.com/spring', title => 'Spring sale 2026',
                         tags => ARRAY['été', 'sale', 'Spring']);
SELECT code = 'spring' AS same_link
FROM shorten('https://example.com/spring', title => 'Spring sale 2026', tags => ARRAY['sale']);
SELECT code = 'spring' AS same_link
FROM shorten('https://example.com/spring', title => 'Summer sale', tags => ARRAY['sale', 'spring', 'été']);
-- (Two more, with codes of their own for this file's output.)
SELECT code FROM shorten('https://example.com/spring', code => 'sale-only', title => 'Spring sale 2026',
                         tags => ARRAY['sale']);
SELECT code FROM shorten('https://example.com/spring', code => 'summer', title => 'Summer sale',
                         tags => ARRAY['sale', 'spring', 'été']);

-- Refused tags and titles, with the tag named.
SELECT shorten('https://example.com/', tags => ARRAY['ok', NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', tags => ARRAY['ok', '  ']);
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', tags => ARRAY[repeat('t', 65)]);
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', tags => ARRAY[E'two\nlines']);
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', title => repeat('t', 501));
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', title => E'a\u0007bell');
\echo :LAST_ERROR_SQLSTATE
-- The longest tag and title pass, counted in characters.
SELECT length(tags[1]) AS tag_length, length(title) AS title_length
FROM shorten('https://example.com/long', tags => ARRAY[repeat('é', 64)], title => repeat('é', 500));

-- shortlinks_tagged(tag): the tag is compared as stored, so any spelling finds it.
SELECT code, title FROM shortlinks_tagged(' SALE ') WHERE code IN ('spring', 'sale-only', 'summer');
SELECT count(*) FROM shortlinks_tagged('nothing-has-this');
SELECT count(*) FROM shortlinks_tagged(NULL);
SELECT * FROM shortlinks_tagged('');
\echo :LAST_ERROR_SQLSTATE

-- The query it runs reads the GIN index on tags (the planner takes it once the table is big; here
-- it is made to). Only links with tags are in that index, so the query says that it wants those.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT * FROM shortlinks WHERE tags @> ARRAY['sale'] AND tags <> '{}' ORDER BY id DESC;
SELECT pg_get_indexdef('shortlinks_tags'::regclass);
RESET enable_seqscan;

-- Properties, and who may call it: snowlink_user, not everyone.
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proisstrict AS strict,
       p.proparallel AS parallel, p.proretset AS returns_set
FROM pg_proc AS p
WHERE p.oid = 'shortlinks_tagged(text)'::regprocedure;
CREATE ROLE tags_app;
CREATE ROLE tags_stranger;
GRANT snowlink_user TO tags_app;
SET ROLE tags_app;
-- A role finds its own links only (shortlinks_owners has the rest).
SELECT code FROM shorten('https://example.com/app-spring', code => 'app-spring', tags => ARRAY['Spring']);
SELECT code FROM shortlinks_tagged('spring');
SET ROLE tags_stranger;
SELECT code FROM shortlinks_tagged('spring');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE tags_app;
DROP ROLE tags_stranger;
