-- shortlink_delete(code, domain) -> boolean: the link and its visit rows go, and its code resolves to
-- nothing at once; false for an unknown code. A custom code can be made again; a generated code
-- is never handed out again.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never

SELECT code FROM shorten('https://example.com/old-sale', code => 'sale');
SELECT resolve('sale'), resolve('sale');
SELECT (shortlink_stats('sale')).visits;
SELECT count(*) AS visit_rows FROM shortlink_visits AS v JOIN shortlinks AS s ON s.id = v.link_id
WHERE s.code = 'sale';
SELECT id AS deleted_id FROM shortlinks WHERE code = 'sale' \gset

SELECT shortlink_delete('sale') AS deleted;
SELECT resolve('sale') AS resolves_to, (SELECT count(*) FROM shortlink_target('sale')) AS targets;
SELECT count(*) AS stats_rows FROM shortlink_stats('sale') WHERE visits IS NOT NULL;
SELECT count(*) AS visit_rows_left FROM shortlink_visits WHERE link_id = :deleted_id;
-- Unknown, or deleted already: false. NULL: NULL.
SELECT shortlink_delete('sale') AS deleted_again, shortlink_delete('never-made') AS unknown,
       shortlink_delete(NULL) IS NULL AS null_code;

-- The custom code can be made again, for another URL.
SELECT code, url FROM shorten('https://example.com/new-sale', code => 'sale');
SELECT resolve('sale');

-- A generated code, deleted, is not handed out again, in either code style.
CREATE TEMP TABLE generated AS
    SELECT 'keyed' AS style, code FROM shorten('https://example.com/generated', force_new => true);
SET snowlink.code_style = snowflake;
INSERT INTO generated
    SELECT 'snowflake', code FROM shorten('https://example.com/generated-id', force_new => true);
RESET snowlink.code_style;
SELECT style, shortlink_delete(code) FROM generated ORDER BY style;
SELECT count(*) AS codes_again
FROM generated AS g
JOIN (SELECT (shorten('https://example.com/generated-' || i, force_new => true)).code
      FROM generate_series(1, 200) AS i) AS n USING (code);
SET snowlink.code_style = snowflake;
SELECT count(*) AS codes_again
FROM generated AS g
JOIN (SELECT (shorten('https://example.com/generated-id-' || i, force_new => true)).code
      FROM generate_series(1, 200) AS i) AS n USING (code);
RESET snowlink.code_style;

-- Properties, and who may call it: snowlink_user, not everyone.
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proisstrict AS strict,
       p.proparallel AS parallel, p.prosecdef AS security_definer
FROM pg_proc AS p
WHERE p.oid = 'shortlink_delete(text, text)'::regprocedure;
CREATE ROLE delete_app;
CREATE ROLE delete_stranger;
GRANT snowlink_user TO delete_app;
SET ROLE delete_app;
SELECT code FROM shorten('https://example.com/by-app', code => 'by-app');
SET ROLE delete_stranger;
SELECT shortlink_delete('by-app');
\echo :LAST_ERROR_SQLSTATE
SET ROLE delete_app;
SELECT shortlink_delete('by-app');
RESET ROLE;
DROP ROLE delete_app;
DROP ROLE delete_stranger;
