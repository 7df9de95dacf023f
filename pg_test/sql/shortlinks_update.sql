-- shortlink_update(code, url, title, tags, expires_at, max_visits, redirect_status, valid_from,
-- clear): changes only what it is given (clear names the columns to set to NULL); the ID, the
-- code, the owner and the visits stay; a URL gets the checks and the normal form of shorten(). The
-- next resolve() in any session sees the change. Each test file starts from no links.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET snowlink.visit_write_mode = transaction;
SELECT id AS sale_id, created_at AS sale_created_at
FROM shorten('https://example.com/spring', code => 'sale', title => 'Spring sale',
             tags => ARRAY['sale'], expires_at => '2100-01-01') \gset
SELECT resolve('sale') AS before_the_change;

-- Another session that has followed the link before.
CREATE EXTENSION dblink;
SELECT format('host=%s port=%s dbname=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database()) AS server \gset
SELECT dblink_connect('other', :'server');
SELECT * FROM dblink('other', $$SELECT resolve('sale')$$) AS t (url text);

-- A new target, in the normal form of shorten(): nothing else changes.
SELECT code, url, title, tags, expires_at, redirect_status, id = :sale_id AS same_id,
       created_at = :'sale_created_at' AS same_created_at
FROM shortlink_update('sale', url => 'HTTPS://Example.COM/summer');
SELECT resolve('sale') AS here;
SELECT * FROM dblink('other', $$SELECT resolve('sale')$$) AS t (url text);
SELECT visits FROM shortlink_stats('sale') AS visits_stay;

-- Title, tags, the window and the status; clear sets columns to NULL.
SELECT title, tags, valid_from, expires_at, redirect_status
FROM shortlink_update('sale', title => '  Summer sale ', tags => ARRAY['Summer', 'sale ', 'summer'],
                      valid_from => '2020-01-01', redirect_status => 301);
SELECT url, status, cache_control FROM shortlink_target('sale');
SELECT title, tags, valid_from, expires_at
FROM shortlink_update('sale', tags => '{}', clear => ARRAY['title', 'valid_from', 'expires_at']);
SELECT title FROM shortlink_update('sale', title => '   ') AS blank_title_is_none;

-- max_visits counts the visits from the change on (the visits before stay in the statistics).
SELECT max_visits, visits FROM shortlink_update('sale', max_visits => 2);
SELECT resolve('sale') IS NOT NULL AS first, resolve('sale') IS NOT NULL AS second,
       resolve('sale') IS NULL AS used_up;
SELECT max_visits FROM shortlink_update('sale', clear => ARRAY['max_visits']);
SELECT resolve('sale') IS NOT NULL AS resolves_again;

-- An unknown code: NULL, nothing changes.
SELECT (shortlink_update('no-such-code', url => 'https://example.com/')).code IS NULL AS unknown;
SELECT code, url FROM shortlink_update('sale') AS nothing_given_changes_nothing;

-- Errors: the link stays as it was.
SELECT shortlink_update('sale', url => 'javascript:alert(1)');
SELECT shortlink_update('sale', url => 'not a url');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_update('sale', redirect_status => 200);
SELECT shortlink_update('sale', max_visits => 0);
SELECT shortlink_update('sale', expires_at => '2020-01-01');
SELECT shortlink_update('sale', valid_from => '2100-01-01', expires_at => '2099-01-01');
SELECT shortlink_update('sale', tags => ARRAY['ok', '']);
SELECT shortlink_update('sale', clear => ARRAY['url', 'code']);
SELECT shortlink_update('sale', clear => ARRAY[NULL]);
SELECT shortlink_update('sale', title => 'Both', clear => ARRAY['title']);
SELECT shortlink_update(NULL, url => 'https://example.com/');
\echo :LAST_ERROR_SQLSTATE
SELECT url, title, max_visits FROM shortlinks WHERE code = 'sale';

-- Another owner's link is not found; its owner and snowlink_admin change it.
CREATE ROLE update_owner;
CREATE ROLE update_other;
CREATE ROLE update_admin;
GRANT snowlink_user TO update_owner, update_other;
GRANT snowlink_admin TO update_admin;
SET ROLE update_owner;
SELECT code FROM shorten('https://example.com/mine', code => 'mine');
SET ROLE update_other;
SELECT (shortlink_update('mine', url => 'https://attacker.example/')).code IS NULL AS not_found;
SET ROLE update_owner;
SELECT url FROM shortlink_update('mine', url => 'https://example.com/still-mine');
SET ROLE update_admin;
SELECT url FROM shortlink_update('mine', url => 'https://example.com/by-admin');
RESET ROLE;
-- A link whose code became an endpoint of snowlink-http after it was made (as 'metrics' did in
-- 0.3.0) keeps its code, and its owner may still change it; a new link cannot take the code.
INSERT INTO shortlinks (code, url, owner_role, owner)
VALUES ('metrics', 'https://example.com/old-metrics', 'update_owner', 'update_owner');
SET ROLE update_owner;
SELECT code, url FROM shortlink_update('metrics', url => 'https://example.com/new-metrics');
SELECT shortlink_disable('metrics') AS disabled;
SELECT shorten('https://example.com/', code => 'ReadyZ');
RESET ROLE;
DELETE FROM shortlinks WHERE owner_role LIKE 'update\_%';
DROP ROLE update_owner, update_other, update_admin;

-- What a browser does after a permanent link's target changes is in docs/links.md ("Editing links").
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proisstrict AS strict,
       p.proparallel AS parallel, p.prosecdef AS security_definer, p.proconfig
FROM pg_proc AS p
WHERE p.proname = 'shortlink_update';
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;
