-- Owners. Every link belongs to the role that made it (owner_role) and, within that role, to the
-- owner that the application names with SET LOCAL snowlink.owner (owner; the role's name when the
-- setting is empty). Row-level security lets a session see, change, disable, delete, count and
-- reuse only the links of its role and owner, through every function and through the tables
-- themselves; snowlink_admin sees and manages every link. Following a link is open to anyone.
SET snowlink.visit_write_mode = transaction;
CREATE ROLE tenant_a;
CREATE ROLE tenant_b;
CREATE ROLE owners_app;
CREATE ROLE owners_admin;
CREATE ROLE owners_stranger;
GRANT snowlink_user TO tenant_a, tenant_b, owners_app;
GRANT snowlink_admin TO owners_admin;
CREATE TABLE owners_import (code text, url text);
GRANT SELECT ON owners_import TO tenant_b;
INSERT INTO owners_import VALUES ('owned-a', 'https://example.com/taken'), ('imported-b', 'https://example.com/imported');

-- The first way of working: a role per tenant. The owner is the role.
SET ROLE tenant_a;
SELECT code, owner_role, owner
FROM shorten('https://example.com/a', code => 'owned-a', tags => ARRAY['shared-tag']);
SELECT code FROM shorten('https://example.com/a-limited', code => 'a-limited', max_visits => 1);
SELECT resolve('owned-a') AS a_visits_its_link, resolve('a-limited') AS a_uses_up_its_limited_link;
SET ROLE tenant_b;
SELECT code, owner_role, owner
FROM shorten('https://example.com/b', code => 'owned-b', tags => ARRAY['shared-tag']);

-- B sees its links only: in the table, the visits, the listings and the statistics.
SELECT code FROM shortlinks ORDER BY code;
SELECT count(*) AS visit_rows_b_sees FROM shortlink_visits;
SELECT code FROM shortlinks_tagged('shared-tag');
SELECT * FROM shortlink_stats('owned-a');
SELECT * FROM shortlink_daily_visits('owned-a');
-- B can change nothing of A's: the functions find no such link, the table no such row.
SELECT shortlink_disable('owned-a') AS disabled, shortlink_enable('owned-a') AS enabled,
       shortlink_delete('owned-a') AS deleted;
UPDATE shortlinks SET url = 'https://attacker.example/' WHERE code = 'owned-a';
DELETE FROM shortlinks WHERE code = 'owned-a';
SELECT shortlinks_purge_expired() AS purged_by_b;
-- shorten() of A's URL gives B a link of its own, never A's.
SELECT code <> 'owned-a' AS a_new_link, owner_role FROM shorten('https://example.com/a');
-- A's codes stay A's: the import refuses them as taken, and makes B's.
SELECT * FROM shortlinks_import('owners_import');
SELECT code, owner_role FROM shortlinks WHERE code = 'imported-b';
-- Following a link works for both, whoever asks.
SELECT resolve('owned-a') AS a_for_b, resolve('owned-b') AS b_for_b;
SELECT url, status FROM shortlink_target('owned-a');
-- snowlink.owner narrows what a role sees, never widens it: B naming A finds nothing.
SET snowlink.owner = 'tenant_a';
SELECT count(*) AS links_b_sees_as_tenant_a FROM shortlinks;
RESET snowlink.owner;

-- A sees its own, with the visits counted, and purges its used-up link.
SET ROLE tenant_a;
SELECT code FROM shortlinks ORDER BY code;
SELECT visits FROM shortlink_stats('owned-a');
SELECT sum(visits) AS daily_visits FROM shortlink_daily_visits('owned-a');
SELECT shortlinks_purge_expired() AS purged_by_a;

-- The second way of working: one application role for many users, each request naming its user.
SET ROLE owners_app;
BEGIN;
SET LOCAL snowlink.owner = 'user-42';
SELECT code, owner_role, owner FROM shorten('https://example.com/42', code => 'of-user-42');
COMMIT;
BEGIN;
SET LOCAL snowlink.owner = 'user-43';
SELECT count(*) AS links_user_43_sees FROM shortlinks;
SELECT code <> 'of-user-42' AS a_new_link, owner FROM shorten('https://example.com/42');
SELECT shortlink_delete('of-user-42') AS deleted, shortlink_disable('of-user-42') AS disabled;
SELECT * FROM shortlink_stats('of-user-42');
ROLLBACK;
BEGIN;
SET LOCAL snowlink.owner = 'user-42';
SELECT code, owner FROM shortlinks;
ROLLBACK;
-- Without the setting the application is an owner of its own, the role.
SELECT count(*) AS links_without_owner FROM shortlinks;
SELECT owner_role, owner FROM shorten('https://example.com/app');
-- Another role naming the same user sees nothing of it.
SET ROLE tenant_a;
SET snowlink.owner = 'user-42';
SELECT count(*) AS links_a_sees_as_user_42 FROM shortlinks;
RESET snowlink.owner;

-- Writing the table directly is held to what the functions write.
SET ROLE tenant_b;
-- The owner is the writer's, and a new link has no visits; the owner, the code and the counted
-- visits of a link cannot be changed.
INSERT INTO shortlinks (code, url, owner_role) VALUES ('forged-owner', 'https://example.com/', 'tenant_a');
INSERT INTO shortlinks (code, url, owner) VALUES ('forged-owner', 'https://example.com/', 'user-42');
INSERT INTO shortlinks (code, url, visits) VALUES ('forged-visits', 'https://example.com/', 1000000);
UPDATE shortlinks SET owner = 'tenant_a' WHERE code = 'owned-b';
UPDATE shortlinks SET code = 'renamed' WHERE code = 'owned-b';
UPDATE shortlinks SET visits = 1000000 WHERE code = 'owned-b';
-- An ID that another backend issued or may issue, or that this one may issue later, is refused:
-- the generator would meet it again.
INSERT INTO shortlinks (id, code, url) VALUES (1, 'forged-id', 'https://example.com/');
INSERT INTO shortlinks (id, code, url)
VALUES (snowflake_next() + 4096, 'next-node-id', 'https://example.com/');
INSERT INTO shortlinks (id, code, url)
VALUES (snowflake_next() + (1::bigint << 22), 'next-millisecond-id', 'https://example.com/');
-- An ID of this backend's snowflake_next(), or the column's default, is the writer's to use.
INSERT INTO shortlinks (id, code, url) VALUES (snowflake_next(), 'direct-id', 'https://example.com/direct');
INSERT INTO shortlinks (code, url) VALUES ('direct-default', 'https://example.com/direct');
-- Codes, URLs, titles and tags must be as shorten() stores them.
INSERT INTO shortlinks (code, url) VALUES ('admin', 'https://example.com/');
INSERT INTO shortlinks (code, url) VALUES ('has space', 'https://example.com/');
INSERT INTO shortlinks (code, url) VALUES ('script', 'javascript:alert(1)');
INSERT INTO shortlinks (code, url) VALUES ('not-normal', 'HTTPS://Example.COM/');
UPDATE shortlinks SET url = 'https://Example.com/' WHERE code = 'owned-b';
UPDATE shortlinks SET tags = ARRAY['Upper'] WHERE code = 'owned-b';
UPDATE shortlinks SET title = ' padded ' WHERE code = 'owned-b';
UPDATE shortlinks SET url = 'https://example.com/b2', tags = ARRAY['upper'], title = 'Fine'
WHERE code = 'owned-b';
SELECT code, url, tags, title FROM shortlinks WHERE code = 'owned-b';

-- snowlink_admin sees and manages every link, and hands links to another owner.
SET ROLE owners_admin;
SELECT code, owner_role, owner FROM shortlinks
WHERE code IN ('owned-a', 'owned-b', 'of-user-42') ORDER BY code;
SELECT visits FROM shortlink_stats('owned-a');
SELECT shortlink_disable('owned-a') AS admin_disables, shortlink_enable('owned-a') AS admin_enables;
UPDATE shortlinks SET owner_role = 'tenant_b', owner = 'tenant_b' WHERE code = 'owned-a';
SET ROLE tenant_b;
SELECT visits FROM shortlink_stats('owned-a') AS handed_over;
-- shortlinks_stats() of many codes answers for the caller's links only.
SELECT code, visits FROM shortlinks_stats(ARRAY['owned-a', 'owned-b', 'of-user-42']);
SELECT shortlink_delete('owned-a') AS b_deletes_what_it_was_given;

-- The internal helpers granted to snowlink_user give nothing away: deleting visit rows of a link
-- that still exists deletes none, a generated code only uses one up, and bringing the list of a
-- URL's links in line with the links (on Citus; on one server there is nothing to do) writes only
-- what the links say. Those that lock a URL and find its links, whose arguments could name
-- another owner's URL, are shorten()'s alone.
SET ROLE tenant_b;
SELECT snowlink_internal._shortlinks_forget_visits(ARRAY(SELECT code FROM shortlinks), ARRAY(SELECT id FROM shortlinks));
SELECT length(snowlink_internal._shortlink_generated_code(1)) AS generated_code_length;
SELECT snowlink_internal._shortlinks_sync_url_links(ARRAY['of-user-42'], ARRAY['https://example.com/b']);
SELECT snowlink_internal._shortlink_lock_url('https://example.com/b', NULL, true);
SELECT snowlink_internal._shortlink_note_url_link('https://example.com/b', NULL, 'of-user-42', 1);
SELECT snowlink_internal._shortlink_await_codes(ARRAY['of-user-42'], 'https://example.com/b', NULL);
SET ROLE owners_admin;
SELECT count(*) > 0 AS b_visit_rows_stay FROM shortlink_visits
WHERE link_id = (SELECT id FROM shortlinks WHERE code = 'owned-b');

-- A role outside snowlink_user reads no link and no visit, and still follows links.
SET ROLE owners_stranger;
SELECT count(*) FROM shortlinks;
SELECT count(*) FROM shortlink_visits;
SELECT resolve('owned-b') AS b_for_a_stranger;
RESET ROLE;

-- What each piece is: the setting, the policies and the helpers' properties.
SELECT name, setting, context, short_desc FROM pg_settings WHERE name = 'snowlink.owner';
SELECT polname, polrelid::regclass AS "table", polpermissive AS permissive, polcmd AS command,
       polroles::regrole[] AS roles
FROM pg_policy
WHERE polrelid IN ('shortlinks'::regclass, 'shortlink_visits'::regclass)
ORDER BY 2, 1;
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proisstrict AS strict,
       p.proparallel AS parallel, p.prosecdef AS security_definer
FROM pg_proc AS p
WHERE p.proname IN ('_shortlink_owner', '_shortlink_is_well_formed', '_shortlink_is_visible',
                    '_snowflake_issued_here', '_shortlink_generated_code', '_shortlink_lock_url',
                    '_shortlink_note_url_link', '_shortlink_await_codes', '_shortlinks_sync_url_links',
                    '_shortlinks_forget_visits')
ORDER BY p.oid::regprocedure::text COLLATE "C";

DELETE FROM shortlinks WHERE owner_role IN ('tenant_a', 'tenant_b', 'owners_app');
DROP TABLE owners_import;
DROP ROLE tenant_a, tenant_b, owners_app, owners_admin, owners_stranger;
