-- shortlinks_list(search, tag, domain, after_id, page_size) -> SETOF shortlinks: the caller's
-- links, newest first, a page at a time. The next page starts after the last ID of the one before
-- (keyset paging, not OFFSET), so that a link made meanwhile does not shift the pages. search
-- finds its text, as plain text in any case, in the code, the URL or the title; tag and domain
-- are compared in their normal form; NULL arguments do not filter.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never

CREATE ROLE list_app;
CREATE ROLE list_other;
GRANT snowlink_user TO list_app, list_other;
SET ROLE list_other;
SELECT code FROM shorten('https://example.com/other-tenant', code => 'other-1', tags => ARRAY['sale']);
SET ROLE list_app;
SELECT count(*) AS made FROM (
    SELECT shorten('https://example.com/item-' || i, code => 'item-' || i,
                   title => CASE WHEN i % 3 = 0 THEN 'Spring 100% off' END,
                   tags => CASE WHEN i % 2 = 0 THEN ARRAY['Sale'] ELSE '{}' END,
                   domain => CASE WHEN i % 4 = 0 THEN 's.example.com' END)
    FROM generate_series(1, 12) AS i) AS made;

-- The caller's links only, newest first, five a page; each page starts after the last ID shown.
SELECT code FROM shortlinks_list(page_size => 5);
SELECT max(id) AS newest FROM shortlinks \gset
SELECT id AS page_end FROM shortlinks_list(page_size => 5) ORDER BY id LIMIT 1 \gset
SELECT code FROM shortlinks_list(after_id => :page_end, page_size => 5);
-- A link made meanwhile does not shift the next pages: it comes first, before any after_id.
SELECT code FROM shorten('https://example.com/new', code => 'made-meanwhile');
SELECT code FROM shortlinks_list(after_id => :page_end, page_size => 5);
SELECT code FROM shortlinks_list(page_size => 1);
-- After the oldest, nothing.
SELECT count(*) AS past_the_end FROM shortlinks_list(after_id => (SELECT min(id) FROM shortlinks));

-- Search in the code, the URL and the title, as plain text in any case: % and _ are themselves.
SELECT code FROM shortlinks_list(search => 'ITEM-1');
SELECT code FROM shortlinks_list(search => 'example.com/item-1');
SELECT code FROM shortlinks_list(search => '100%');
SELECT count(*) AS underscore_matches_nothing FROM shortlinks_list(search => 'item_1');
-- Tag and domain, in their normal form; together with a search.
SELECT code, tags FROM shortlinks_list(tag => ' SALE ');
SELECT code, domain FROM shortlinks_list(domain => 'S.Example.com');
SELECT code FROM shortlinks_list(search => 'spring', tag => 'sale', domain => 's.example.com');
SELECT count(*) AS none FROM shortlinks_list(tag => 'never-used');

-- Refused arguments.
SELECT shortlinks_list(page_size => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT shortlinks_list(page_size => 1001);
SELECT shortlinks_list(page_size => NULL);
SELECT shortlinks_list(tag => '');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlinks_list(domain => 'a/b');
\echo :LAST_ERROR_SQLSTATE

-- An owner of the application sees its own links only; snowlink_admin sees every link.
BEGIN;
SET LOCAL snowlink.owner = 'user-42';
SELECT count(*) AS user_42_links FROM shortlinks_list();
SELECT code, owner FROM shorten('https://example.com/u42', code => 'u42');
SELECT code FROM shortlinks_list();
COMMIT;
RESET ROLE;
CREATE ROLE list_admin;
GRANT snowlink_admin TO list_admin;
SET ROLE list_admin;
SELECT count(*) AS every_link FROM shortlinks_list(page_size => 1000);
RESET ROLE;

-- A page of an owner's links is read from the index of owners, newest first, whatever the depth.
SET enable_seqscan = off;
SET ROLE list_app;
EXPLAIN (COSTS OFF)
SELECT * FROM shortlinks
WHERE id < 1000 ORDER BY id DESC LIMIT 50;
RESET ROLE;
RESET enable_seqscan;

-- Properties, and who may call it.
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proisstrict AS strict,
       p.proparallel AS parallel, p.prosecdef AS security_definer
FROM pg_proc AS p
WHERE p.oid = 'shortlinks_list(text, text, text, bigint, int)'::regprocedure;
CREATE ROLE list_stranger;
SET ROLE list_stranger;
SELECT shortlinks_list();
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

DROP OWNED BY list_app, list_other, list_admin, list_stranger;
TRUNCATE shortlinks;
DROP ROLE list_app, list_other, list_admin, list_stranger;
