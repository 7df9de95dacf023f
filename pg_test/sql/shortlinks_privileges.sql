-- Who may do what. Anyone may follow a link (resolve, shortlink_redirect); an application role
-- gets everything else with one GRANT of snowlink_user. The tables, the counter and the code key
-- are reached only through the functions.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
CREATE ROLE shortener_app LOGIN;
GRANT snowlink_user TO shortener_app;
CREATE ROLE web_visitor LOGIN;

SET ROLE shortener_app;
SET snowlink.visit_write_mode = transaction;
SELECT code, url FROM shorten('https://example.com/from-the-app', code => 'from-app');
SELECT resolve('from-app') AS resolved;
SELECT visits FROM shortlink_stats('from-app');
SELECT visits FROM shortlink_daily_visits('from-app');
SELECT shortlink_disable('from-app') AS disabled, shortlink_enable('from-app') AS enabled;
SELECT count(*) AS links_visible FROM shortlinks WHERE code = 'from-app';
-- ... but it cannot write the tables, read the key, or reach the internals.
UPDATE shortlinks SET url = 'https://evil.example/' WHERE code = 'from-app';
\echo :LAST_ERROR_SQLSTATE
INSERT INTO shortlinks (code, url) VALUES ('direct', 'javascript:alert(1)');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM shortlinks;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shortlink_key;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shortlink_visits;
\echo :LAST_ERROR_SQLSTATE
SELECT nextval('shortlink_code_seq');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO shortlink_reserved_codes (code) VALUES ('mine');
\echo :LAST_ERROR_SQLSTATE
SELECT _shortlink_key();
\echo :LAST_ERROR_SQLSTATE
SELECT _shortlink_record_visit(1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM _shortlink_take_daily_visits();
\echo :LAST_ERROR_SQLSTATE
SELECT _shortlink_visit('from-app');
\echo :LAST_ERROR_SQLSTATE

-- A caller's search_path cannot slip its own objects into the extension's functions.
RESET ROLE;
CREATE SCHEMA app_schema AUTHORIZATION shortener_app;
SET ROLE shortener_app;
CREATE FUNCTION app_schema.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'hijacked' $$;
CREATE FUNCTION app_schema.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT 'epoch'::timestamptz $$;
CREATE FUNCTION app_schema.texteq_hijacked(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hijacked';
END $$;
CREATE OPERATOR app_schema.= (LEFTARG = text, RIGHTARG = text, FUNCTION = app_schema.texteq_hijacked);
SET search_path = app_schema, pg_catalog, public;
SELECT 'a'::text = 'b'::text AS hijacked_here;
SELECT shorten('https://example.com/', code => 'ADMIN');
\echo :LAST_ERROR_SQLSTATE
SELECT resolve('from-app') AS resolved_despite_search_path;
SELECT shortlink_redirect('from-app') AS redirected_despite_search_path;
RESET search_path;
RESET ROLE;

-- Visitors without the grant follow links, but cannot shorten or read statistics.
SET ROLE web_visitor;
SELECT resolve('from-app') AS visitor_resolves;
SELECT shortlink_redirect('from-app') AS visitor_redirects;
SELECT shorten('https://example.com/by-a-visitor');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_stats('from-app');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM shortlinks;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Every SECURITY DEFINER function of the extension pins its search_path.
SELECT p.oid::regprocedure AS security_definer_function, p.proconfig
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'snowlink'
WHERE p.prosecdef
ORDER BY p.oid::regprocedure::text COLLATE "C";

DROP SCHEMA app_schema CASCADE;
DROP ROLE shortener_app;
DROP ROLE web_visitor;
