-- shortlink_target(code) -> (url, status, cache_control): everything an HTTP front answers for a
-- code, in one call, with the visit counted; no row when the code does not resolve. resolve() and
-- shortlink_redirect() give the same answers from the same logic.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
SET snowlink.visit_write_mode = transaction;

SELECT (shorten('https://example.com/found', code => 'found')).code;
SELECT (shorten('https://example.com/moved', code => 'moved', redirect_status => 301)).code;
SELECT (shorten('https://example.com/same-method', code => 'same-method', redirect_status => 307)).code;
SELECT (shorten('https://example.com/moved-for-an-hour', code => 'moved-hour', redirect_status => 308,
                expires_at => now() + interval '1 hour')).code;
SELECT (shorten('https://example.com/forever', code => 'forever', redirect_status => 308,
                expires_at => 'infinity')).code;
SELECT (shorten('https://example.com/twice', code => 'twice', redirect_status => 301,
                max_visits => 2)).code;

-- Temporary redirects (302, 307) are not cached: every visit comes back and counts.
SELECT * FROM shortlink_target('found');
SELECT * FROM shortlink_target('same-method');
-- Permanent ones (301, 308) may be cached for a day, or until the link expires if sooner.
SELECT * FROM shortlink_target('moved');
SELECT url, status, substring(cache_control FROM '\d+$')::int BETWEEN 3590 AND 3600 AS about_an_hour
FROM shortlink_target('moved-hour');
SELECT * FROM shortlink_target('forever');
-- A link with max_visits is never cached, and gives its last visit to one caller only.
SELECT * FROM shortlink_target('twice');
SELECT * FROM shortlink_target('twice');
SELECT count(*) AS used_up FROM shortlink_target('twice');

-- Unknown, disabled and not yet valid codes give no row; so does NULL.
SELECT (shorten('https://example.com/later', code => 'later', valid_from => now() + interval '1 day')).code;
SELECT (shorten('https://example.com/disabled', code => 'disabled')).code;
SELECT shortlink_disable('disabled');
SELECT count(*) AS rows FROM shortlink_target('unknown');
SELECT count(*) AS rows FROM shortlink_target('later');
SELECT count(*) AS rows FROM shortlink_target('disabled');
SELECT count(*) AS rows FROM shortlink_target(NULL);

-- Every call counts a visit, as resolve() does.
SELECT visits FROM shortlink_stats('found');
SELECT resolve('found');
SELECT visits FROM shortlink_stats('found');

-- shortlink_is_live(code [, domain]): whether a code resolves, without counting a visit, for an
-- HTTP front that shows a link's QR code only while the link lives.
SELECT c.code, shortlink_is_live(c.code) AS live
FROM (VALUES ('found'), ('twice'), ('later'), ('disabled'), ('unknown'), (NULL)) AS c (code);
SELECT visits AS still FROM shortlink_stats('found');

-- In a read-only transaction (PostgREST's GET) every link resolves, one with max_visits too: the
-- visit writer counts its visit in a transaction of its own.
SELECT (shorten('https://example.com/limited', code => 'limited', max_visits => 5)).code;
BEGIN TRANSACTION READ ONLY;
SELECT url, status FROM shortlink_target('found');
SELECT * FROM shortlink_target('limited');
ROLLBACK;
SELECT visits FROM shortlinks WHERE code = 'limited';

-- The planner knows that it gives one row at most.
EXPLAIN (COSTS ON) SELECT * FROM shortlink_target('found');

-- Any role may call it, as any role may call resolve(): it reveals nothing that following the
-- link would not.
CREATE ROLE target_visitor;
SET ROLE target_visitor;
SELECT url, status FROM shortlink_target('found');
SELECT shortlink_is_live('found') AS live;
RESET ROLE;
DROP ROLE target_visitor;

-- snowlink-http serves /healthz, /ids and /links itself: no custom code may shadow them.
SELECT shorten('https://example.com/', code => 'ids');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', code => 'Links');
\echo :LAST_ERROR_SQLSTATE
-- A rule of the library refuses them (src/shortlinks/code_rule.rs, from which snowlink-http takes
-- its routes); they are not rows of shortlink_reserved_codes, which an installation may change.
SELECT code FROM shortlink_reserved_codes WHERE code IN ('healthz', 'ids', 'links') ORDER BY code;

-- Once per row of a query (LATERAL, where it is scanned again for each row), and in the select
-- list, as a composite value.
SELECT c.code, t.status, t.cache_control
FROM (VALUES (1, 'found'), (2, 'moved'), (3, 'unknown'), (4, 'found')) AS c(n, code)
CROSS JOIN LATERAL shortlink_target(c.code) AS t
ORDER BY c.n;
SELECT shortlink_target('moved');
SELECT (SELECT status FROM shortlink_target(c.code)) AS status
FROM (VALUES ('found'), ('unknown')) AS c(code);
