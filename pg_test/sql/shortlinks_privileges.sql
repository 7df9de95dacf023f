-- Who may do what. Anyone may follow a link (resolve, shortlink_redirect); an application role
-- gets everything else with one GRANT of snowlink_user, and with it its own links (see
-- shortlinks_owners). The counter, the code key and the visit rows are written only by the
-- extension's functions.
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
-- It writes the table itself only as the functions do (shortlinks_owners): its own links, in the
-- form shorten() stores them, never their counted visits; it reads its own visit rows, writes
-- none, and cannot read the key or reach the internals.
UPDATE shortlinks SET url = 'javascript:alert(1)' WHERE code = 'from-app';
\echo :LAST_ERROR_SQLSTATE
INSERT INTO shortlinks (code, url) VALUES ('direct', 'javascript:alert(1)');
\echo :LAST_ERROR_SQLSTATE
UPDATE shortlinks SET visits = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS own_visit_rows FROM shortlink_visits;
DELETE FROM shortlink_visits;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shortlink_key;
\echo :LAST_ERROR_SQLSTATE
SELECT nextval('shortlink_code_seq');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO shortlink_reserved_codes (code) VALUES ('mine');
\echo :LAST_ERROR_SQLSTATE
SELECT snowlink_internal._shortlink_key();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM snowlink_internal._shortlink_take_daily_visits();
\echo :LAST_ERROR_SQLSTATE
SELECT snowlink_internal._shortlinks_flush_visits();
\echo :LAST_ERROR_SQLSTATE
SELECT snowlink_internal._shortlink_by_code('from-app', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT snowlink_internal._shortlink_count_visit('from-app', 1);
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

-- A role that may create objects in the extension's schema (every role could in public before
-- PostgreSQL 15) adds functions with the names of those the extension calls, and more arguments
-- with defaults, which would make a call by name ambiguous even with the schema named. The
-- extension's SQL calls only functions of snowlink_internal, where no such role can create
-- anything, and those bound when they were created.
GRANT CREATE ON SCHEMA public TO shortener_app;
SET ROLE shortener_app;
CREATE FUNCTION public.snowflake_next(node int DEFAULT 0) RETURNS bigint LANGUAGE sql AS $$ SELECT 0::bigint $$;
CREATE FUNCTION public.base62_encode(value bigint, pad text DEFAULT '') RETURNS text LANGUAGE sql AS $$ SELECT 'planted' $$;
CREATE FUNCTION public.shortlink_normalize_url(url text, strict boolean DEFAULT true) RETURNS text LANGUAGE sql AS $$ SELECT url $$;
CREATE FUNCTION public.shortlink_disable(code text, disabled boolean DEFAULT true, domain text DEFAULT NULL, why text DEFAULT NULL) RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
CREATE FUNCTION public.shortlink_target(code text, extra int DEFAULT 0) RETURNS TABLE (url text, status int, cache_control text) LANGUAGE sql AS $$ SELECT 'https://evil.example/', 302, 'no-store' $$;
CREATE FUNCTION public.snowflake_node_range(extra int DEFAULT 0) RETURNS int4range LANGUAGE sql AS $$ SELECT '[0,1]'::int4range $$;
CREATE TABLE app_links AS SELECT 'imported-despite' AS code, 'https://example.com/imported' AS url;
SELECT url FROM shorten('https://example.com/despite-planted-functions', code => 'despite');
SELECT length(code) AS generated_code_length FROM shorten('https://example.com/generated-despite');
SET snowlink.code_style = snowflake;
SELECT base62_decode(code) = id AS snowflake_code FROM shorten('https://example.com/snowflake-despite');
RESET snowlink.code_style;
SELECT shortlink_enable('despite') AS enabled;
SELECT shortlink_redirect('despite') AS redirected_despite_planted_functions;
SELECT count(*) AS refused FROM shortlinks_import('app_links');
SELECT count(*) AS made_by_every_call FROM shortlinks
WHERE code IN ('despite', 'imported-despite') OR url LIKE '%-despite';
DROP TABLE app_links;
DROP FUNCTION public.snowflake_next(int), public.base62_encode(bigint, text),
    public.shortlink_normalize_url(text, boolean), public.shortlink_disable(text, boolean, text, text),
    public.shortlink_target(text, int), public.snowflake_node_range(int);
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM shortener_app;

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

-- Every SECURITY DEFINER function of the extension in SQL or PL/pgSQL pins its search_path. A C
-- one parses no query text: it finds what it uses by OID (_shortlink_generated_code(), in
-- src/shortlinks/mod.rs, the sequence and _shortlink_key(), whose body names everything with its
-- schema).
SELECT p.oid::regprocedure AS security_definer_function, l.lanname AS language, p.proconfig
FROM pg_proc p
JOIN pg_language l ON l.oid = p.prolang
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'snowlink'
WHERE p.prosecdef
ORDER BY p.oid::regprocedure::text COLLATE "C";

-- What a role without any grant may call, and what snowlink_user adds: every other function of
-- the extension is revoked from PUBLIC. (A new function shows up here, to be judged.)
SELECT p.oid::regprocedure AS function,
       has_function_privilege('web_visitor', p.oid, 'EXECUTE') AS everyone,
       has_function_privilege('shortener_app', p.oid, 'EXECUTE') AS snowlink_user
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'snowlink'
WHERE has_function_privilege('shortener_app', p.oid, 'EXECUTE')
ORDER BY p.oid::regprocedure::text COLLATE "C";

DROP SCHEMA app_schema CASCADE;
DROP ROLE shortener_app;
DROP ROLE web_visitor;
