-- resolve() reads a link straight from the unique index on shortlinks.code, without running a
-- query, and keeps what it learned about the table (which relations, which columns) until
-- PostgreSQL invalidates it. It follows changes to the table, and when the table or index is not
-- as the extension made it, it reads the link with a query instead (PL/pgSQL _shortlink_by_code).
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
SET snowlink.visit_write_mode = transaction;
-- resolve_by(code) -> (url, way): resolve(code), and which way it read the link, told by the calls
-- of _shortlink_by_code that pg_stat_xact_user_functions counts.
SET track_functions = 'pl';
CREATE FUNCTION pg_temp.resolve_by(code text, OUT url text, OUT way text) LANGUAGE plpgsql AS $$
DECLARE
    calls_before bigint := (SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions
                            WHERE funcname = '_shortlink_by_code');
BEGIN
    url := resolve(code);
    way := CASE WHEN (SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions
                      WHERE funcname = '_shortlink_by_code') > calls_before
                THEN 'query' ELSE 'index' END;
END
$$;

SELECT (shorten('https://example.com/target', code => 'live')).code;
SELECT (shorten('https://example.com/limited', code => 'limited', max_visits => 10)).code;

-- A link is read from the index, one with max_visits too (the visit writer counts its visits).
SELECT * FROM pg_temp.resolve_by('live');
SELECT * FROM pg_temp.resolve_by('unknown');
SELECT * FROM pg_temp.resolve_by('limited');

-- The columns move: the url column is replaced by a new one, at another position.
SELECT resolve('live') AS before_the_change;
ALTER TABLE shortlinks RENAME COLUMN url TO url_before;
ALTER TABLE shortlinks ADD COLUMN url text;
UPDATE shortlinks SET url = 'https://example.com/moved' WHERE code = 'live';
SELECT * FROM pg_temp.resolve_by('live');
ALTER TABLE shortlinks DROP COLUMN url;
ALTER TABLE shortlinks RENAME COLUMN url_before TO url;
SELECT * FROM pg_temp.resolve_by('live');
-- shorten() returns the whole row of a table with a dropped column as well.
SELECT code, url, redirect_status, tags, domain
FROM shorten('https://example.com/after-a-dropped-column', code => 'after-drop');

-- A column of another type, or no code index under the expected name: the link is read by query.
-- (The row-level security policies and the status CHECK of shortlinks hold the column's type;
-- they come back with the rollback.)
BEGIN;
DROP POLICY well_formed_new_links ON shortlinks;
DROP POLICY well_formed_links ON shortlinks;
ALTER TABLE shortlinks DROP CONSTRAINT shortlinks_redirect_status_check;
ALTER TABLE shortlinks ALTER COLUMN redirect_status TYPE int;
SELECT * FROM pg_temp.resolve_by('live');
ROLLBACK;
SELECT * FROM pg_temp.resolve_by('live');
-- Codes with links in several domains. Read by query (the index renamed below), a code resolves
-- in its domain: to its default domain's link also when it has links in other domains, whichever
-- row the query finds first, and to nothing when only other domains have it.
SELECT (shorten('https://example.com/other-first', code => 'other-first', domain => 'other.example.com')).code;
SELECT (shorten('https://example.com/default-second', code => 'other-first')).code;
SELECT (shorten('https://example.com/default-first', code => 'default-first')).code;
SELECT (shorten('https://example.com/other-second', code => 'default-first', domain => 'other.example.com')).code;
SELECT (shorten('https://example.com/other-only', code => 'other-only', domain => 'other.example.com')).code;
ALTER INDEX shortlinks_code_key RENAME TO shortlinks_code_key_renamed;
SELECT * FROM pg_temp.resolve_by('live');
SELECT * FROM pg_temp.resolve_by('other-first');
SELECT * FROM pg_temp.resolve_by('default-first');
SELECT * FROM pg_temp.resolve_by('other-only');
SELECT resolve('other-first', 'other.example.com') AS in_its_domain,
       resolve('other-only', 'other.example.com') AS only_in_its_domain;
-- Something that is not an index under the index's name.
CREATE TABLE shortlinks_code_key (code text COLLATE "C");
SELECT * FROM pg_temp.resolve_by('live');
DROP TABLE shortlinks_code_key;
ALTER INDEX shortlinks_code_key_renamed RENAME TO shortlinks_code_key;
SELECT * FROM pg_temp.resolve_by('live');

-- The extension dropped and created again in another schema, within one session.
\set regress_database :DBNAME
CREATE DATABASE snowlink_reinstall;
\c snowlink_reinstall
CREATE EXTENSION snowlink;
SELECT (shorten('https://example.com/first', code => 'first')).code;
SELECT resolve('first') AS in_public;
DROP EXTENSION snowlink;
CREATE SCHEMA links;
CREATE EXTENSION snowlink SCHEMA links;
SELECT (links.shorten('https://example.com/second', code => 'second')).code;
SELECT links.resolve('second') AS in_links;

-- The extension's owner changes (REASSIGN OWNED) after this session has resolved links: visits are
-- still written, and links with max_visits counted, as the owner, now the new one.
DROP EXTENSION snowlink;
CREATE ROLE snowlink_first_owner SUPERUSER;
SET ROLE snowlink_first_owner;
CREATE EXTENSION snowlink SCHEMA links;
RESET ROLE;
SET snowlink.visit_write_mode = transaction;
SELECT (links.shorten('https://example.com/third', code => 'third')).code;
SELECT (links.shorten('https://example.com/limited', code => 'limited', max_visits => 5)).code;
SELECT links.resolve('third') AS before, links.resolve('limited') AS limited_before;
REASSIGN OWNED BY snowlink_first_owner TO CURRENT_USER;
DROP ROLE snowlink_first_owner;
SELECT links.resolve('third') AS after, links.resolve('limited') AS limited_after;
SELECT visits FROM links.shortlink_stats('third');
SELECT visits FROM links.shortlink_stats('limited');
\c :regress_database
DROP DATABASE snowlink_reinstall;
