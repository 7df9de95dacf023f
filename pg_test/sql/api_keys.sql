-- API keys: a service that reaches the database as one role (snowlink-http) acts for many owners.
-- A role in snowlink_admin makes a key for an owner, shown once; the service hands each request's
-- key to snowlink_api_key_use() in the request's transaction, and from then on the transaction is
-- that owner's (snowlink.owner), read-only for a read-only key.
SET snowlink.visit_write_mode = transaction;
\set SHOW_CONTEXT never
CREATE ROLE keys_admin IN ROLE snowlink_admin;
CREATE ROLE keys_service IN ROLE snowlink_user;
CREATE ROLE keys_other_service IN ROLE snowlink_user;

SET ROLE keys_admin;
SELECT snowlink_api_key_create('user-1') AS key_1 \gset
SELECT snowlink_api_key_create('user-2', note => 'the second user''s phone') AS key_2 \gset
SELECT snowlink_api_key_create('user-1', read_only => true) AS key_1_read \gset
-- "sl_" and 64 hexadecimal digits; every key differs.
SELECT :'key_1' ~ '^sl_[0-9a-f]{64}$' AS key_shape,
       :'key_1' <> :'key_2' AND :'key_1' <> :'key_1_read' AS keys_differ;
-- Keys are listed without their secret; only a hash of each is kept, and not shown.
SELECT owner, read_only, note, created_at <= now() AS created, revoked_at
FROM snowlink_api_keys ORDER BY id;
SELECT key_sha256 FROM snowlink_api_keys;
\echo :LAST_ERROR_SQLSTATE
SELECT snowlink_api_key_create('');
\echo :LAST_ERROR_SQLSTATE
SELECT snowlink_api_key_create(NULL);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS stored_as_its_hash FROM snowlink_api_keys WHERE key_sha256 = sha256(convert_to(:'key_1', 'UTF8'));

-- A role in snowlink_user can use keys, not make, list or revoke them.
SET ROLE keys_service;
SELECT snowlink_api_key_create('user-3');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM snowlink_api_keys;
\echo :LAST_ERROR_SQLSTATE
SELECT snowlink_api_key_revoke(1);
\echo :LAST_ERROR_SQLSTATE

-- A request with the key of user-1 makes user-1's link...
BEGIN;
SELECT * FROM snowlink_api_key_use(:'key_1');
SELECT current_setting('snowlink.owner') AS owner_of_the_transaction;
SELECT code, owner_role, owner FROM shorten('https://example.com/user-1', code => 'key-one');
COMMIT;
-- ... which a request with the key of user-2 neither sees nor changes, but follows.
BEGIN;
SELECT owner FROM snowlink_api_key_use(:'key_2');
SELECT count(*) AS user_2_sees FROM shortlinks WHERE code = 'key-one';
SELECT shortlink_delete('key-one') AS user_2_deletes;
SELECT resolve('key-one') AS user_2_follows;
COMMIT;
-- A read-only key reads its owner's links and cannot write.
BEGIN;
SELECT * FROM snowlink_api_key_use(:'key_1_read');
SELECT code FROM shortlinks ORDER BY code;
SELECT visits FROM shortlink_stats('key-one');
SELECT shorten('https://example.com/read-only');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT read_only FROM snowlink_api_key_use(:'key_1_read');
SELECT shortlink_delete('key-one');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- An unknown key, or none, is refused without saying more.
SELECT snowlink_api_key_use('sl_' || repeat('0', 64));
\echo :LAST_ERROR_SQLSTATE
SELECT snowlink_api_key_use(NULL);
\echo :LAST_ERROR_SQLSTATE
-- Outside a transaction block the owner ends with the statement: a service must use one.
SELECT owner FROM snowlink_api_key_use(:'key_1');
SELECT current_setting('snowlink.owner') = '' AS owner_ended_with_the_statement;

-- A key names an owner within the role that uses it: another service's role, with the same key,
-- sees none of the first service's links of that owner.
SET ROLE keys_other_service;
BEGIN;
SELECT owner FROM snowlink_api_key_use(:'key_1');
SELECT count(*) AS other_service_sees FROM shortlinks;
COMMIT;
SET ROLE keys_service;

-- A revoked key is refused from the revocation's commit on: every use reads the table.
SET ROLE keys_admin;
SELECT snowlink_api_key_revoke(id) AS revoked FROM snowlink_api_keys WHERE owner = 'user-2';
SELECT snowlink_api_key_revoke(id) AS revoked_again FROM snowlink_api_keys WHERE owner = 'user-2';
SELECT snowlink_api_key_revoke(0) AS unknown_key;
SELECT owner FROM snowlink_api_keys WHERE revoked_at IS NOT NULL;
SET ROLE keys_service;
SELECT snowlink_api_key_use(:'key_2');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT owner FROM snowlink_api_key_use(:'key_1');
SELECT count(*) AS user_1_still_sees FROM shortlinks WHERE code = 'key-one';
COMMIT;
RESET ROLE;

-- Properties, and who may call what.
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proisstrict AS strict,
       p.proparallel AS parallel, p.prosecdef AS security_definer, p.proconfig AS settings,
       has_function_privilege('keys_service', p.oid, 'EXECUTE') AS snowlink_user_may,
       has_function_privilege('keys_admin', p.oid, 'EXECUTE') AS snowlink_admin_may,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may
FROM pg_proc AS p
WHERE p.proname LIKE 'snowlink\_api\_key\_%'
ORDER BY p.proname;

DELETE FROM shortlinks WHERE code = 'key-one';
DELETE FROM snowlink_api_keys;
DROP ROLE keys_admin, keys_service, keys_other_service;
\set SHOW_CONTEXT errors
