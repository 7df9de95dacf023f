-- The versions this build can install, and how a database moves between them. 0.1.0 and 0.2.0 are
-- released; a database made with either moves on with ALTER EXTENSION snowlink UPDATE, which keeps
-- its data (t/upgrade.pl). There is no way back to an older version.
SELECT version, installed, superuser, relocatable
FROM pg_available_extension_versions
WHERE name = 'snowlink'
ORDER BY string_to_array(version, '.')::int[];
SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'snowlink';
SELECT source, target, path
FROM pg_extension_update_paths('snowlink')
WHERE path IS NOT NULL
ORDER BY string_to_array(source, '.')::int[], string_to_array(target, '.')::int[];

-- Updating to the version installed does nothing; downgrading and unknown versions are refused.
ALTER EXTENSION snowlink UPDATE;
ALTER EXTENSION snowlink UPDATE TO '0.1.0';
ALTER EXTENSION snowlink UPDATE TO '9.9.9';
SELECT extversion FROM pg_extension WHERE extname = 'snowlink';

-- Only a superuser may create the extension (superuser = true above: its functions are C, its
-- library keeps files in the data directory and starts background workers), and only its owner,
-- a superuser, may update or drop it. A database owner gets PostgreSQL's refusal.
\set regress_database :DBNAME
\set regress_user :USER
CREATE ROLE database_owner LOGIN;
CREATE DATABASE snowlink_owned OWNER database_owner;
\c snowlink_owned database_owner
CREATE EXTENSION snowlink;
\c :regress_database :regress_user
DROP DATABASE snowlink_owned;
SET ROLE database_owner;
ALTER EXTENSION snowlink UPDATE;
DROP EXTENSION snowlink;
-- Once it exists, every role may use the functions for everyone; a superuser lets the owner hand
-- snowlink_user, which the functions that write need, on to application roles.
SELECT snowflake_next() > 0 AS id, base62_encode(125, 7) AS code;
RESET ROLE;
GRANT snowlink_user TO database_owner WITH ADMIN OPTION;
CREATE ROLE owners_app LOGIN;
SET ROLE database_owner;
GRANT snowlink_user TO owners_app;
SET ROLE owners_app;
SELECT code FROM shorten('https://example.com/owned', code => 'owned');
RESET ROLE;
DELETE FROM shortlinks WHERE code = 'owned';
DROP ROLE owners_app;
DROP ROLE database_owner;
