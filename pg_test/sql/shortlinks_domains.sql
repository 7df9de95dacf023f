-- Domains: a link may belong to a domain, the host (and port) that serves it, and the same code
-- may exist once per domain. shorten(..., domain => ...) makes a link of a domain; resolve(code,
-- domain), shortlink_target(code, domain) and shortlink_redirect(code, domain) follow it; every
-- function that takes a code takes the domain too. NULL is the default domain, and the calls
-- without a domain mean it. Domains are stored in lower-case ASCII (IDNA), with the port if any.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
SET snowlink.visit_write_mode = transaction;

-- One code, three domains: the default one, and two others written as a browser might send them.
SELECT code, domain, url FROM shorten('https://example.com/default-sale', code => 'sale');
SELECT code, domain, url FROM shorten('https://example.com/s-sale', code => 'sale', domain => 'S.Example.COM');
SELECT code, domain, url
FROM shorten('https://example.com/books-sale', code => 'sale', domain => 'Bücher.example:8080');
-- Once per domain: the same code again in a domain is taken, whatever the spelling.
SELECT shorten('https://example.com/other', code => 'sale', domain => 's.example.com.');
SELECT shorten('https://example.com/other', code => 'sale', domain => 's.EXAMPLE.com');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/other', code => 'sale');
\echo :LAST_ERROR_SQLSTATE
SELECT code, domain FROM shortlinks ORDER BY domain NULLS FIRST;

-- Each domain resolves to its own link; the one-argument calls and a NULL domain mean the default
-- domain; a domain without the code resolves to nothing.
SELECT resolve('sale') AS default_domain, resolve('sale', NULL) AS null_domain,
       resolve('sale', 's.example.com') AS s_domain, resolve('sale', 'xn--bcher-kva.example:8080') AS books,
       resolve('sale', 'other.example') AS unknown_domain, resolve(NULL, 's.example.com') AS null_code;
SELECT * FROM shortlink_target('sale', 'S.example.com');
SELECT * FROM shortlink_target('sale', NULL);
SELECT count(*) AS rows FROM shortlink_target(NULL, 's.example.com');
SELECT count(*) AS rows FROM shortlink_target('sale', 'other.example');
SELECT shortlink_is_live('sale', 'S.example.com') AS s_domain, shortlink_is_live('sale', 'other.example') AS other,
       shortlink_is_live('sale') AS default_domain;
SELECT shortlink_is_live('sale', 'https://s.example.com');
SELECT shortlink_redirect('sale', 'bücher.example:8080'), current_setting('response.status') AS status,
       current_setting('response.headers') AS headers;
SELECT shortlink_redirect('sale', 'other.example'), current_setting('response.status') AS status;

-- Without a domain, shorten() reuses a live link of the default domain only, and with one, a live
-- link of that domain only.
SELECT code = 'sale' AS reused FROM shorten('https://example.com/default-sale');
SELECT code = 'sale' AS reused FROM shorten('https://example.com/s-sale', domain => 's.example.com');
SELECT code <> 'sale' AND domain IS NULL AS new_default_link FROM shorten('https://example.com/s-sale');
-- A generated code is unique in every domain.
SELECT count(DISTINCT code) AS codes
FROM (SELECT (shorten('https://example.com/g', force_new => true, domain => d)).code
      FROM unnest(ARRAY['a.example', 'b.example', NULL]) AS d) AS g;

-- What is not a host with an optional port is refused, with the reason.
SELECT shorten('https://example.com/', domain => '');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', domain => 'https://s.example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT shorten('https://example.com/', domain => 's.example.com/path');
SELECT shorten('https://example.com/', domain => 's example.com');
SELECT shorten('https://example.com/', domain => 's.example.com:0');
SELECT shorten('https://example.com/', domain => 's.example.com:99999');
SELECT resolve('sale', 'bad host');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM shortlink_target('sale', 'a/b');
\echo :LAST_ERROR_SQLSTATE

-- Statistics, daily visits, disabling, editing and deleting take the domain too.
SELECT (shortlink_stats('sale', 's.example.com')).visits AS s_visits, (shortlink_stats('sale')).visits AS default_visits;
SELECT day = (now() AT TIME ZONE 'UTC')::date AS today, visits FROM shortlink_daily_visits('sale', domain => 'S.example.com');
SELECT shortlink_disable('sale', domain => 's.example.com') AS disabled,
       resolve('sale', 's.example.com') AS s_domain, resolve('sale') AS default_domain;
SELECT shortlink_enable('sale', 's.example.com') AS enabled, resolve('sale', 's.example.com') AS s_domain;
SELECT url, domain FROM shortlink_update('sale', url => 'https://example.com/s-sale-2', domain => 's.example.com');
SELECT resolve('sale', 's.example.com') AS s_domain, resolve('sale') AS default_domain;
SELECT shortlink_update('sale', title => 'x', domain => 'other.example') IS NULL AS unknown_in_domain;
SELECT shortlink_delete('sale', 'other.example') AS deleted_elsewhere;
SELECT shortlink_delete('sale', 's.example.com') AS deleted,
       resolve('sale', 's.example.com') AS s_domain, resolve('sale') AS default_domain;
-- The code is free in that domain again.
SELECT code, domain FROM shorten('https://example.com/s-sale-3', code => 'sale', domain => 's.example.com');

-- The table holds domains in their normal form only: a role in snowlink_user cannot write another.
CREATE ROLE domains_app;
GRANT snowlink_user TO domains_app;
SET ROLE domains_app;
INSERT INTO shortlinks (code, url, domain) VALUES ('direct', 'https://example.com/', 'S.Example.com');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO shortlinks (code, url, domain) VALUES ('direct', 'https://example.com/', 's.example.com')
RETURNING code, domain;
UPDATE shortlinks SET domain = 'other.example' WHERE code = 'direct';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP OWNED BY domains_app;
DELETE FROM shortlinks WHERE owner_role = 'domains_app';
DROP ROLE domains_app;

-- The default domain's lookups use the unique index on (code, domain), which holds one default
-- domain, not a NULL each.
EXPLAIN (COSTS OFF) SELECT url FROM shortlinks WHERE code = 'sale' AND domain IS NULL;
INSERT INTO shortlinks (code, url) VALUES ('sale', 'https://example.com/second-default');
\echo :LAST_ERROR_SQLSTATE

-- Properties of the calls with a domain.
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proisstrict AS strict,
       p.proparallel AS parallel, p.prosecdef AS security_definer
FROM pg_proc AS p
WHERE p.oid IN ('resolve(text, text)'::regprocedure, 'shortlink_target(text, text)'::regprocedure,
                'shortlink_redirect(text, text)'::regprocedure,
                'snowlink_internal._shortlink_domain(text)'::regprocedure)
ORDER BY p.oid::regprocedure::text COLLATE "C";
