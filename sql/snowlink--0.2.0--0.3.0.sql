-- snowlink 0.2.0 to 0.3.0, run by ALTER EXTENSION snowlink UPDATE in one transaction.
--
-- Every change to the extension's SQL objects in 0.3.0 goes into this script as well as into the
-- install script, so that an updated database cannot be told apart from a fresh install:
-- t/upgrade.pl compares the two object by object. Change objects in place (CREATE OR
-- REPLACE, ALTER) rather than dropping them: a drop loses grants and the application objects that
-- depend on them, and breaks the plans of sessions that are calling them at that moment.
\echo Use "ALTER EXTENSION snowlink UPDATE TO '0.3.0'" to load this file. \quit

-- A cluster that shortlinks_distribute() laid out at 0.2.0: Citus does not carry the changes of an
-- extension's script to the shards of its tables, and 0.3.0 lays the tables out anew (visits by
-- code, beside their links). So the update first makes them the local tables on the coordinator
-- that they were before shortlinks_distribute(), rows and all; the rest of this script runs as on
-- one server, and SELECT shortlinks_distribute() afterwards distributes them again. The workers'
-- own tables, which Citus leaves to the extension, stay empty; the workers run this script too,
-- once the coordinator has taken the tables back.
DO $$
DECLARE
    citus_table regclass;
    table_schema name;
    table_name name;
    trigger_name name;
    referencing text;
BEGIN
    -- Two tests: a query that names pg_dist_partition fails to plan where Citus is not installed.
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition AS p
                   WHERE p.logicalrelid OPERATOR(pg_catalog.=) '@extschema@.shortlinks'::pg_catalog.regclass) THEN
        RETURN;
    END IF;
    IF NOT pg_catalog.citus_is_coordinator() THEN
        RAISE EXCEPTION 'snowlink must be updated on the coordinator of this Citus cluster'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- Citus drops shards with CASCADE: the foreign keys of the shards of a user's table would go
    -- without a word.
    SELECT pg_catalog.string_agg(pg_catalog.format('%s (%I)', c.conrelid::pg_catalog.regclass, c.conname), ', ')
    INTO referencing
    FROM pg_catalog.pg_constraint AS c
    WHERE c.contype OPERATOR(pg_catalog.=) 'f'
      AND c.confrelid OPERATOR(pg_catalog.=) ANY (ARRAY['@extschema@.shortlinks'::pg_catalog.regclass,
                                                        '@extschema@.shortlink_visits', '@extschema@.shortlink_url_locks',
                                                        '@extschema@.shortlink_key', '@extschema@.shortlink_reserved_codes'])
      AND c.conrelid OPERATOR(pg_catalog.<>) c.confrelid;
    IF referencing IS NOT NULL THEN
        RAISE EXCEPTION 'snowlink cannot take its tables back from Citus while foreign keys reference them: %', referencing
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Drop them, update, run SELECT shortlinks_distribute(), and make them again.';
    END IF;
    FOR citus_table IN
        SELECT t.citus_table
        FROM (VALUES ('@extschema@.shortlinks'::pg_catalog.regclass), ('@extschema@.shortlink_visits'),
                     ('@extschema@.shortlink_url_locks'), ('@extschema@.shortlink_key'),
                     ('@extschema@.shortlink_reserved_codes')) AS t (citus_table)
        JOIN pg_catalog.pg_dist_partition AS p ON p.logicalrelid OPERATOR(pg_catalog.=) t.citus_table
    LOOP
        EXECUTE pg_catalog.format('CREATE TEMPORARY TABLE snowlink_update_rows AS SELECT * FROM %s', citus_table);
        -- What Citus's own DROP TABLE trigger does, but for a table that stays.
        SELECT n.nspname, c.relname INTO table_schema, table_name
        FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
        WHERE c.oid OPERATOR(pg_catalog.=) citus_table;
        PERFORM pg_catalog.master_remove_distributed_table_metadata_from_workers(citus_table, table_schema, table_name);
        PERFORM pg_catalog.citus_drop_all_shards(citus_table, table_schema, table_name);
        PERFORM pg_catalog.master_remove_partition_metadata(citus_table, table_schema, table_name);
        FOR trigger_name IN
            SELECT t.tgname FROM pg_catalog.pg_trigger AS t
            WHERE t.tgrelid OPERATOR(pg_catalog.=) citus_table
              AND t.tgfoid OPERATOR(pg_catalog.=) 'pg_catalog.citus_truncate_trigger()'::pg_catalog.regprocedure
        LOOP
            EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', trigger_name, citus_table);
        END LOOP;
        EXECUTE pg_catalog.format('INSERT INTO %s SELECT * FROM snowlink_update_rows', citus_table);
        DROP TABLE snowlink_update_rows;
    END LOOP;
    -- shortlinks as 0.2.0 made it, before shortlinks_distribute() replaced its primary key.
    DROP INDEX @extschema@.shortlinks_id;
    ALTER TABLE @extschema@.shortlinks ADD CONSTRAINT shortlinks_pkey PRIMARY KEY (id),
        REPLICA IDENTITY DEFAULT;
    -- A warning: ALTER EXTENSION shows no notice of its script.
    RAISE WARNING 'the tables of snowlink are local to the coordinator until SELECT shortlinks_distribute() distributes them again'
        USING DETAIL = 'Until then the workers see no links, and links made on a worker stay there.';
END
$$;

-- Each rule of a link is defined once, in Rust (src/shortlinks/), and the SQL calls it: the shape
-- of a custom code and the endpoints of snowlink-http (code_rule.rs), the redirect statuses
-- (redirect_status.rs), whether a link resolves or can never resolve again (link_state.rs), and
-- the code of a new link in the style snowlink.code_style sets.
CREATE FUNCTION snowlink_internal._shortlink_checked_url(url text, code text, redirect_status int)
RETURNS text
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_checked_url_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) IS
    'internal: the URL as shorten() stores it, once the URL, the custom code and the redirect status pass';
CREATE FUNCTION snowlink_internal._shortlink_is_live(disabled boolean, valid_from timestamptz,
    expires_at timestamptz, max_visits bigint, visits bigint, at timestamptz) RETURNS boolean
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_is_live_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_live(boolean, timestamptz, timestamptz, bigint, bigint, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_live(boolean, timestamptz, timestamptz, bigint, bigint, timestamptz) IS
    'internal: whether a link with these columns resolves at the given time';
CREATE FUNCTION snowlink_internal._shortlink_is_spent(expires_at timestamptz, max_visits bigint,
    visits bigint, at timestamptz) RETURNS boolean
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_is_spent_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) IS
    'internal: whether a link with these columns can never resolve again after the given time';
CREATE FUNCTION snowlink_internal._shortlink_is_redirect_status(status smallint) RETURNS boolean
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_is_redirect_status_wrapper';
COMMENT ON FUNCTION snowlink_internal._shortlink_is_redirect_status(smallint) IS
    'internal: whether a link may redirect with this HTTP status (301, 302, 307 or 308)';

-- Why a custom code is refused because shortlink_reserved_codes lists it, or NULL
-- (src/shortlinks/reserved.rs): for shorten(), the import and the policies of owners.sql.
CREATE FUNCTION snowlink_internal._shortlink_reserved_refusal(code text) RETURNS text
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_reserved_refusal_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) IS
    'internal: why shortlink_reserved_codes refuses a custom code, or NULL';

-- Backends keep the rows of shortlink_key and shortlink_reserved_codes in memory
-- (src/shortlinks/table_cache.rs); this trigger makes every backend forget them when they change.
-- ENABLE ALWAYS: also when logical replication or session_replication_role = replica writes them.
-- (On Citus, which refuses triggers on reference tables, shortlinks_distribute() drops them, and
-- backends read the tables at every call.)
CREATE FUNCTION snowlink_internal._shortlink_table_changed() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', '_shortlink_table_changed_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_table_changed() FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_table_changed() IS
    'internal: tells every backend that a table it keeps in memory changed';
DO $$
DECLARE
    distributed boolean := false;
BEGIN
    -- Tables that a cluster distributed under 0.2.0 made reference tables take no trigger.
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)'
            INTO distributed USING '@extschema@.shortlink_key'::regclass;
    END IF;
    IF distributed THEN
        RETURN;
    END IF;
    CREATE TRIGGER shortlink_key_changed
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.shortlink_key
        FOR EACH STATEMENT EXECUTE FUNCTION snowlink_internal._shortlink_table_changed();
    ALTER TABLE @extschema@.shortlink_key ENABLE ALWAYS TRIGGER shortlink_key_changed;
    CREATE TRIGGER shortlink_reserved_codes_changed
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.shortlink_reserved_codes
        FOR EACH STATEMENT EXECUTE FUNCTION snowlink_internal._shortlink_table_changed();
    ALTER TABLE @extschema@.shortlink_reserved_codes ENABLE ALWAYS TRIGGER shortlink_reserved_codes_changed;
END
$$;

-- The endpoints of snowlink-http are refused by code_rule.rs now, and no longer listed.
DELETE FROM @extschema@.shortlink_reserved_codes WHERE builtin AND code IN ('healthz', 'ids', 'links');

-- Titles and tags (src/shortlinks/labels.rs). The columns come last, as ADD COLUMN puts them.
CREATE FUNCTION snowlink_internal._shortlink_title(title text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_title_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_title(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_title(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_title(text) IS
    'internal: a link''s title as stored: trimmed, NULL when empty';
CREATE FUNCTION snowlink_internal._shortlink_tags(tags text[]) RETURNS text[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_tags_wrapper';
COMMENT ON FUNCTION snowlink_internal._shortlink_tags(text[]) IS
    'internal: a link''s tags as stored: trimmed, lower-cased, sorted, once each';

-- Domains (src/shortlinks/domains.rs): the same code may exist once per domain. The column comes
-- last, as ADD COLUMN puts it.
CREATE FUNCTION snowlink_internal._shortlink_domain(domain text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_domain_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_domain(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_domain(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_domain(text) IS
    'internal: a link''s domain as stored: lower-case ASCII (IDNA), with its port if any';
CREATE FUNCTION resolve(code text, domain text) RETURNS text
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'resolve_in_domain_wrapper';
COMMENT ON FUNCTION resolve(text, text) IS
    'target URL of a live short link of a domain (NULL: the default domain), with the visit counted';

-- Owners (owners.sql): every link has one, row-level security lets a role see and change only its
-- own, and the functions that manage links run as their caller.
CREATE FUNCTION snowlink_internal._snowflake_issued_here(id bigint) RETURNS boolean
LANGUAGE c STRICT VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', '_snowflake_issued_here_wrapper';
COMMENT ON FUNCTION snowlink_internal._snowflake_issued_here(bigint) IS
    'internal: whether no backend but this one can ever issue the ID';
CREATE FUNCTION snowlink_internal._shortlink_owner() RETURNS text
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_owner_wrapper';
COMMENT ON FUNCTION snowlink_internal._shortlink_owner() IS
    'internal: the owner of the current request: snowlink.owner, or else the current role';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'snowlink_admin') THEN
        CREATE ROLE snowlink_admin NOLOGIN IN ROLE snowlink_user;
    END IF;
END
$$;

-- A new generated code (src/shortlinks/mod.rs): the ID in base 62, or a keyed permutation of this
-- server's share of shortlink_code_seq (snowlink.code_style). Calling it directly only uses up a
-- code. It calls _shortlink_key() as the extension's owner with the caller's search_path, so that
-- function now names every object, types included, with its schema.
CREATE FUNCTION snowlink_internal._shortlink_generated_code(id bigint) RETURNS text
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE SECURITY DEFINER
AS 'MODULE_PATHNAME', '_shortlink_generated_code_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_generated_code(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_generated_code(bigint) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_generated_code(bigint) IS
    'internal: the code of a new link with this ID, in the style snowlink.code_style sets';
CREATE OR REPLACE FUNCTION snowlink_internal._shortlink_key() RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    code_key pg_catalog.bytea;
BEGIN
    SELECT k.key INTO code_key FROM @extschema@.shortlink_key AS k;
    IF NOT FOUND THEN
        -- Two first shorten() calls may make a key at once. Under READ COMMITTED the second
        -- insert waits for the first and the read after it sees the first key; under REPEATABLE
        -- READ and SERIALIZABLE the second insert fails with 40001.
        INSERT INTO @extschema@.shortlink_key (key)
        VALUES (pg_catalog.uuid_send(pg_catalog.gen_random_uuid()))
        ON CONFLICT DO NOTHING;
        SELECT k.key INTO code_key FROM @extschema@.shortlink_key AS k;
    END IF;
    RETURN code_key;
END
$$;

-- The bucket of a URL: its row of shortlink_url_locks, and on Citus its shard of
-- shortlink_url_links.
CREATE FUNCTION snowlink_internal._shortlink_url_bucket(url text) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.hashtext(url) OPERATOR(pg_catalog.&) 65535;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_url_bucket(text) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_url_bucket(text) IS
    'internal: the bucket of a URL, for its row of shortlink_url_locks';

-- The lock rows no longer note the last link made under them: on Citus, shortlink_url_links lists
-- every link of a URL in the lock's shard.
ALTER TABLE shortlink_url_locks DROP COLUMN last_code;

-- On Citus, where shorten() finds the links of a URL: a row per link, under its URL's bucket, in
-- the shard of the bucket's lock row (shortlinks_distribute() co-locates them), so that the lock,
-- this lookup and the note of a new link reach one shard, and the link itself its code's. Kept by
-- the extension's functions that make, change and delete links, from shortlinks_distribute() on,
-- which fills it. Empty on one server, where the hash index on shortlinks.url finds them.
CREATE TABLE shortlink_url_links (
    bucket int NOT NULL,
    url text NOT NULL,
    domain text COLLATE "C",
    code text COLLATE "C" NOT NULL,
    link_id bigint NOT NULL,
    PRIMARY KEY (bucket, link_id)
);
CREATE INDEX shortlink_url_links_url ON shortlink_url_links USING hash (url);

COMMENT ON TABLE shortlink_url_links IS 'on Citus, the links of each URL, for shorten() to find them in one shard';

-- Whether Citus manages the links (src/shortlinks/link_lookup.rs).
CREATE FUNCTION snowlink_internal._shortlinks_distributed() RETURNS boolean
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlinks_distributed_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlinks_distributed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlinks_distributed() TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlinks_distributed() IS 'internal: whether Citus manages the links';

-- What shorten() (src/shortlinks/shorten.rs) calls to find the live link of a URL, as the
-- extension's owner. It calls them through the function manager, which checks no grant: no other
-- role may call them, as their arguments could name another owner's URL.

-- Takes the lock on which shorten() calls for one URL wait for each other (shortlink_url_locks),
-- until the end of the transaction. On Citus (distributed), returns the codes of the URL's links
-- in the domain (NULL: the default domain), oldest first, from the lock's shard; NULL elsewhere.
CREATE FUNCTION snowlink_internal._shortlink_lock_url(url text, domain text, distributed boolean)
RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = auto
AS $$
DECLARE
    url_bucket constant int := snowlink_internal._shortlink_url_bucket(_shortlink_lock_url.url);
    codes text[];
BEGIN
    IF distributed THEN
        PERFORM pg_catalog.set_config('plan_cache_mode', 'force_custom_plan', true); -- citus.sql
    END IF;
    UPDATE @extschema@.shortlink_url_locks AS l
    SET updates = l.updates + 1
    WHERE l.bucket = url_bucket;
    -- A statement of its own, whose snapshot is taken once the lock is held: it sees the links
    -- that the lock's previous holder listed. (Within the UPDATE's statement, it would not.)
    IF distributed THEN
        SELECT array_agg(u.code ORDER BY u.link_id) INTO codes
        FROM @extschema@.shortlink_url_links AS u
        WHERE u.bucket = url_bucket
          AND u.url = _shortlink_lock_url.url
          AND u.domain IS NOT DISTINCT FROM _shortlink_lock_url.domain;
    END IF;
    RETURN codes;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_lock_url(text, text, boolean) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_lock_url(text, text, boolean) IS
    'internal: takes the lock of shorten() calls for a URL; on Citus, returns the codes of its links';

-- On Citus, lists a new link under its URL.
CREATE FUNCTION snowlink_internal._shortlink_note_url_link(url text, domain text, code text, link_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    INSERT INTO @extschema@.shortlink_url_links AS u (bucket, url, domain, code, link_id)
    VALUES (snowlink_internal._shortlink_url_bucket(_shortlink_note_url_link.url),
            _shortlink_note_url_link.url, _shortlink_note_url_link.domain, _shortlink_note_url_link.code,
            _shortlink_note_url_link.link_id)
    ON CONFLICT DO NOTHING;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_note_url_link(text, text, text, bigint) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_note_url_link(text, text, text, bigint) IS
    'internal: on Citus, lists a new link under its URL';

-- On Citus, a link listed under a URL may be one whose commit has reached the URL's shard but not
-- yet its code's: the lock is free before the link shows. For each listed code that no link of
-- the domain has yet, as this transaction sees, inserting the code waits for such a commit and
-- finds the code taken: then shorten() looks for the link again (true). A code still free is that
-- of a link deleted without the extension's functions: its row goes.
CREATE FUNCTION snowlink_internal._shortlink_await_codes(codes text[], url text, domain text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    unseen text[];
    unseen_code text;
    look_again boolean := false;
BEGIN
    unseen := ARRAY(SELECT unnest(_shortlink_await_codes.codes)
                    EXCEPT
                    SELECT s.code FROM @extschema@.shortlinks AS s
                    WHERE s.code = ANY (_shortlink_await_codes.codes)
                      AND s.domain IS NOT DISTINCT FROM _shortlink_await_codes.domain);
    FOREACH unseen_code IN ARRAY unseen LOOP
        BEGIN
            INSERT INTO @extschema@.shortlinks (code, url, domain)
            VALUES (unseen_code, _shortlink_await_codes.url, _shortlink_await_codes.domain)
            ON CONFLICT ON CONSTRAINT shortlinks_code_key DO NOTHING;
            IF FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'no_data_found';
            END IF;
            look_again := true;
        EXCEPTION WHEN no_data_found THEN
            DELETE FROM @extschema@.shortlink_url_links AS u
            WHERE u.bucket = snowlink_internal._shortlink_url_bucket(_shortlink_await_codes.url)
              AND u.url = _shortlink_await_codes.url
              AND u.code = unseen_code;
        END;
    END LOOP;
    RETURN look_again;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_await_codes(text[], text, text) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_await_codes(text[], text, text) IS
    'internal: on Citus, waits for the links listed under a URL to show; whether to look for them again';

-- On Citus, brings shortlink_url_links in line with shortlinks for the links of these codes: each
-- listed under its URL, and the rows under the URLs they had (old_urls) gone unless they still
-- hold. For the functions that change and delete links as their caller, who cannot write the
-- table; a direct call can only bring it closer to the links. Does nothing on one server.
CREATE FUNCTION snowlink_internal._shortlinks_sync_url_links(codes text[], old_urls text[])
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    -- Computed first: Citus sends a query to the shards of a bucket it is given, not to those of
    -- buckets that a subquery of the query computes.
    old_buckets constant int[] := ARRAY(SELECT snowlink_internal._shortlink_url_bucket(o.url)
                                        FROM unnest(_shortlinks_sync_url_links.old_urls) AS o (url));
    link_ids bigint[];
    link_codes text[];
    link_urls text[];
    link_domains text[];
BEGIN
    IF NOT snowlink_internal._shortlinks_distributed() THEN
        RETURN;
    END IF;
    SELECT array_agg(s.id), array_agg(s.code), array_agg(s.url), array_agg(s.domain)
    INTO link_ids, link_codes, link_urls, link_domains
    FROM @extschema@.shortlinks AS s
    WHERE s.code = ANY (_shortlinks_sync_url_links.codes);
    DELETE FROM @extschema@.shortlink_url_links AS u
    WHERE u.bucket = ANY (old_buckets)
      AND u.code = ANY (_shortlinks_sync_url_links.codes)
      AND NOT EXISTS (SELECT FROM unnest(link_ids, link_urls) AS l (id, url)
                      WHERE l.id = u.link_id AND l.url = u.url);
    IF link_ids IS NOT NULL THEN
        INSERT INTO @extschema@.shortlink_url_links AS u (bucket, url, domain, code, link_id)
        SELECT snowlink_internal._shortlink_url_bucket(l.url), l.url, l.domain, l.code, l.id
        FROM unnest(link_ids, link_codes, link_urls, link_domains) AS l (id, code, url, domain)
        ON CONFLICT DO NOTHING;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlinks_sync_url_links(text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlinks_sync_url_links(text[], text[]) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlinks_sync_url_links(text[], text[]) IS
    'internal: on Citus, lists the links of these codes under their URLs, and no longer under the URLs they had';

-- Whether a link's code, URL, redirect status, title, tags and domain are as shorten() would store
-- them (src/shortlinks/mod.rs): what the policies below ask of every row a role writes.
CREATE FUNCTION snowlink_internal._shortlink_is_well_formed(code text, url text, redirect_status smallint,
                                                            title text, tags text[], domain text)
RETURNS boolean
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_is_well_formed_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_well_formed(text, text, smallint, text, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_is_well_formed(text, text, smallint, text, text[], text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_well_formed(text, text, smallint, text, text[], text) IS
    'internal: whether a link''s code, URL, redirect status, title, tags and domain are as shorten() stores them';

-- Whether the caller sees the link of a code and ID: the visit rows of shortlink_visits are seen
-- with their link. A function rather than a subquery in the policy, which Citus refuses. On Citus
-- the policy runs on the shard of the visit rows, which may query another shard only inside a
-- call that Citus runs on the node of a code's shard, and only that code's shards: the calls of
-- shortlink_stats() and shortlink_daily_visits() (shortlinks_distribute(), citus.sql). Citus
-- compares this query's code with the call's, collation included: hence PL/pgSQL, whose
-- parameters Citus can plan (a SQL function's it cannot), and the policy's code in the default
-- collation, which a call's literal has.
CREATE FUNCTION snowlink_internal._shortlink_is_visible(code text, link_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = auto
AS $$
BEGIN
    IF snowlink_internal._shortlinks_distributed() THEN
        PERFORM pg_catalog.set_config('plan_cache_mode', 'force_custom_plan', true); -- citus.sql
    END IF;
    PERFORM FROM @extschema@.shortlinks AS s
    WHERE s.code = _shortlink_is_visible.code AND s.id = _shortlink_is_visible.link_id;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_visible(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_is_visible(text, bigint) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_visible(text, bigint) IS
    'internal: whether the caller sees the link of a code and ID';

-- Each visit row gets its link's code, by which Citus places it beside its link
-- (shortlinks_distribute()). Rows of links that no longer exist, which nothing could read, go.
ALTER TABLE shortlink_visits ADD COLUMN code text COLLATE "C";
UPDATE shortlink_visits AS v SET code = s.code FROM shortlinks AS s WHERE s.id = v.link_id;
DELETE FROM shortlink_visits WHERE code IS NULL;
ALTER TABLE shortlink_visits ALTER COLUMN code SET NOT NULL;

-- Visits whose link a write did not find in a link made in the last minute, which may be one that
-- a transaction had not committed yet (resolved in the transaction that made it): the next write
-- takes them again. On Citus every node keeps its own.
CREATE TABLE shortlink_visits_unseen (
    link_id bigint NOT NULL,
    day date NOT NULL,
    visits bigint NOT NULL,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (link_id, day)
);

COMMENT ON TABLE shortlink_visits_unseen IS 'visits of links made in the last minute that a write did not see yet';
SELECT pg_catalog.pg_extension_config_dump('shortlink_visits_unseen', '');

-- How many visits wait in shortlink_visits_unseen: the visit writer writes again while some do,
-- though it counts no new visit. VOLATILE, so that it sees what the write just before it, in the
-- same transaction, put there.
CREATE FUNCTION snowlink_internal._shortlinks_unseen_visits() RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL SAFE
BEGIN ATOMIC
    SELECT COALESCE(pg_catalog.sum(u.visits), 0)::bigint
    FROM @extschema@.shortlink_visits_unseen AS u;
END;
REVOKE ALL ON FUNCTION snowlink_internal._shortlinks_unseen_visits() FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlinks_unseen_visits() IS
    'internal: how many visits wait for their links to show';

-- Deletes the visit rows of links that no longer exist, for the functions below: they delete the
-- links as their caller, who can write no visit row. Rows of a link that still exists stay, so a
-- direct call changes nothing.
CREATE FUNCTION snowlink_internal._shortlinks_forget_visits(codes text[], link_ids bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    gone bigint[];
BEGIN
    -- By code as well as ID: on Citus, the codes' shards.
    gone := ARRAY(SELECT unnest(_shortlinks_forget_visits.link_ids)
                  EXCEPT
                  SELECT s.id FROM @extschema@.shortlinks AS s
                  WHERE s.code = ANY (_shortlinks_forget_visits.codes));
    DELETE FROM @extschema@.shortlink_visits AS v
    WHERE v.code = ANY (_shortlinks_forget_visits.codes) AND v.link_id = ANY (gone);
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlinks_forget_visits(text[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlinks_forget_visits(text[], bigint[]) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlinks_forget_visits(text[], bigint[]) IS
    'internal: deletes the visit rows of links (codes and IDs) that no longer exist';

-- Deletes a link and its visit rows; false when the code is unknown, or not the caller's. The
-- code resolves to nothing from the commit on. A custom code can then be made again; a generated
-- code never comes back (the counter and the IDs only go forward).
CREATE FUNCTION shortlink_delete(code text, domain text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    deleted_id bigint;
    deleted_url text;
BEGIN
    IF shortlink_delete.code IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM @extschema@.shortlinks AS s
    WHERE s.code = shortlink_delete.code
      AND s.domain IS NOT DISTINCT FROM snowlink_internal._shortlink_domain(shortlink_delete.domain)
    RETURNING s.id, s.url INTO deleted_id, deleted_url;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM snowlink_internal._shortlinks_forget_visits(ARRAY[shortlink_delete.code], ARRAY[deleted_id]);
    PERFORM snowlink_internal._shortlinks_sync_url_links(ARRAY[shortlink_delete.code], ARRAY[deleted_url]);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION shortlink_delete(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_delete(text, text) TO snowlink_user;
COMMENT ON FUNCTION shortlink_delete(text, text) IS
    'deletes a short link and its visits; false when the code is unknown or not the caller''s';

-- The functions that now call the rules.
-- shorten() takes a title, tags and a domain: a new signature, so the old one goes first (an
-- application's SQL-standard function or view that calls it must be dropped before the update, and
-- made again).
DROP FUNCTION @extschema@.shorten(text, text, timestamptz, bigint, int, boolean, timestamptz);
-- A short link for a URL (src/shortlinks/shorten.rs): the live link of the caller's owner with
-- the same URL and options, or a new one.
CREATE FUNCTION shorten(
    url text,
    code text DEFAULT NULL,
    expires_at timestamptz DEFAULT NULL,
    max_visits bigint DEFAULT NULL,
    redirect_status int DEFAULT 302,
    force_new boolean DEFAULT false,
    valid_from timestamptz DEFAULT NULL,
    title text DEFAULT NULL,
    tags text[] DEFAULT NULL,
    domain text DEFAULT NULL
) RETURNS shortlinks
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'shorten_wrapper';
REVOKE ALL ON FUNCTION shorten(text, text, timestamptz, bigint, int, boolean, timestamptz, text, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shorten(text, text, timestamptz, bigint, int, boolean, timestamptz, text, text[], text) TO snowlink_user;
COMMENT ON FUNCTION shorten(text, text, timestamptz, bigint, integer, boolean, timestamptz, text, text[], text) IS
    'short link for a URL (in a domain; NULL: the default): a new one, or the live link with the same URL and options';

-- What 0.2.0's shorten() called to generate a code in the snowflake style, which nothing calls now.
DROP FUNCTION snowlink_internal.base62_encode(bigint);

-- The import runs as its caller, who makes the links.
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_import_url(text, text) TO snowlink_user;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_import_refusal(text, text) TO snowlink_user;
-- Imports take titles, tags and domains, each checked as shorten() checks it.
CREATE FUNCTION snowlink_internal._shortlink_labels_refusal(title text, tags text[], domain text) RETURNS text
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_labels_refusal_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_labels_refusal(text, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_labels_refusal(text, text[], text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_labels_refusal(text, text[], text) IS 'internal: why the title, tags or domain of a row to import are refused, or NULL';
DROP FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[]);
-- Brings in existing links with their own codes, a batch at a time, for shortlinks_import(): rows
-- with a refused code, URL, title, tags or domain, or a code already taken in the domain, are
-- returned with the reason instead of stopping the load. Everything gets the checks and the normal
-- form of shorten(). Each row's tags come as the text of an array, as arrays of arrays cannot
-- differ in length.
CREATE FUNCTION snowlink_internal._shortlinks_import(codes text[], urls text[], created timestamptz[],
                                                     titles text[], tag_lists text[], domains text[])
RETURNS TABLE (code text, url text, error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    -- Each step materialized: inlined, each would compute the checks of the step before again.
    WITH given AS MATERIALIZED (
        SELECT g.code, g.url, g.created_at, g.title, g.tags::text[] AS tags, g.domain, g.n,
               snowlink_internal._shortlink_import_url(g.code, g.url) AS target
        FROM unnest(_shortlinks_import.codes, _shortlinks_import.urls, _shortlinks_import.created,
                    _shortlinks_import.titles, _shortlinks_import.tag_lists, _shortlinks_import.domains)
             WITH ORDINALITY AS g (code, url, created_at, title, tags, domain, n)
    ),
    checked AS MATERIALIZED (
        SELECT r.*,
               CASE
                   WHEN r.target IS NULL THEN snowlink_internal._shortlink_import_refusal(r.code, r.url)
                   ELSE coalesce(snowlink_internal._shortlink_labels_refusal(r.title, r.tags, r.domain),
                                 snowlink_internal._shortlink_reserved_refusal(r.code))
               END AS problem
        FROM given AS r
    ),
    normal AS MATERIALIZED (
        SELECT c.*,
               CASE WHEN c.problem IS NULL THEN snowlink_internal._shortlink_domain(c.domain) END AS link_domain
        FROM checked AS c
    ),
    -- A code that comes twice in a domain is imported from its first row that passes the checks.
    judged AS (
        SELECT o.*,
               coalesce(o.problem,
                        CASE WHEN row_number() OVER (PARTITION BY o.code, o.link_domain, o.problem IS NULL
                                                     ORDER BY o.n) > 1
                             THEN 'code is taken' END) AS verdict
        FROM normal AS o
    ),
    inserted AS (
        INSERT INTO @extschema@.shortlinks (code, url, created_at, title, tags, domain)
        SELECT j.code, j.target, coalesce(j.created_at, now()),
               snowlink_internal._shortlink_title(j.title),
               coalesce(snowlink_internal._shortlink_tags(j.tags), '{}'), j.link_domain
        FROM judged AS j
        WHERE j.verdict IS NULL
        ON CONFLICT ON CONSTRAINT shortlinks_code_key DO NOTHING
        RETURNING shortlinks.code, shortlinks.domain
    )
    -- A join rather than NOT EXISTS beside an OR, which PostgreSQL runs as a scan of the inserted
    -- rows for every row of the batch.
    SELECT j.code, j.url, coalesce(j.verdict, 'code is taken')
    FROM judged AS j
    LEFT JOIN inserted AS i ON i.code = j.code AND i.domain IS NOT DISTINCT FROM j.link_domain
    WHERE j.verdict IS NOT NULL OR i.code IS NULL
    ORDER BY j.n;
    PERFORM snowlink_internal._shortlinks_sync_url_links(_shortlinks_import.codes, NULL);
END
$$;
-- shortlinks_import() calls this for each batch. Both run as the caller, whose links they make.
REVOKE ALL ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[], text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[], text[], text[], text[]) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[], text[], text[], text[]) IS 'internal: imports one batch of links';
CREATE OR REPLACE FUNCTION shortlinks_import(links regclass, batch_size int DEFAULT 10000)
RETURNS TABLE (code text, url text, error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    optional_columns constant text[] := ARRAY['created_at', 'title', 'tags', 'domain'];
    present text[];
    link record;
    codes text[] := '{}';
    urls text[] := '{}';
    created timestamptz[] := '{}';
    titles text[] := '{}';
    tag_lists text[] := '{}';
    domains text[] := '{}';
BEGIN
    IF links IS NULL THEN
        RAISE EXCEPTION 'links must not be NULL' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Name the table or view to import, as in shortlinks_import(''old_links'').';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be positive, not %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    present := ARRAY(SELECT a.attname::text FROM pg_attribute AS a
                     WHERE a.attrelid = shortlinks_import.links AND a.attname::text = ANY (optional_columns)
                       AND a.attnum > 0 AND NOT a.attisdropped);
    FOR link IN EXECUTE format(
        'SELECT l.code::text AS code, l.url::text AS url, %s AS created_at, %s AS title, %s AS tags, '
        '%s AS domain FROM %s AS l',
        CASE WHEN 'created_at' = ANY (present) THEN 'l.created_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'title' = ANY (present) THEN 'l.title::text' ELSE 'NULL::text' END,
        CASE WHEN 'tags' = ANY (present) THEN 'l.tags::text[]::text' ELSE 'NULL::text' END,
        CASE WHEN 'domain' = ANY (present) THEN 'l.domain::text' ELSE 'NULL::text' END,
        links) LOOP
        codes := codes || link.code;
        urls := urls || link.url;
        created := created || link.created_at;
        titles := titles || link.title;
        tag_lists := tag_lists || link.tags;
        domains := domains || link.domain;
        IF cardinality(codes) >= batch_size THEN
            RETURN QUERY SELECT * FROM snowlink_internal._shortlinks_import(codes, urls, created, titles,
                                                                           tag_lists, domains);
            codes := '{}';
            urls := '{}';
            created := '{}';
            titles := '{}';
            tag_lists := '{}';
            domains := '{}';
        END IF;
    END LOOP;
    RETURN QUERY SELECT * FROM snowlink_internal._shortlinks_import(codes, urls, created, titles, tag_lists,
                                                                   domains);
END
$$;
COMMENT ON FUNCTION shortlinks_import(regclass, integer) IS
    'makes short links of the rows (code, url[, created_at, title, tags, domain]) of a table; returns the rows refused, with the reason';

-- The columns of the link of a code in a domain (NULL: the default domain) that decide where and
-- whether it redirects; resolve() decides whether it is live (src/shortlinks/link_state.rs).
DROP FUNCTION snowlink_internal._shortlink_live(text);
CREATE FUNCTION snowlink_internal._shortlink_by_code(
    code text,
    domain text,
    OUT id bigint,
    OUT url text,
    OUT redirect_status smallint,
    OUT disabled boolean,
    OUT valid_from timestamptz,
    OUT expires_at timestamptz,
    OUT max_visits bigint,
    OUT visits bigint
)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link_domain text;
BEGIN
    -- Citus plans a test of the domain at a cost of several percent of resolve()'s throughput,
    -- more than reading the column costs. Most codes have one link, in the default domain: a
    -- first read without the test finds it, and only a code with links in other domains, one of
    -- which came first, is read again with the test.
    IF _shortlink_by_code.domain IS NULL THEN
        SELECT s.id, s.url, s.redirect_status, s.disabled, s.valid_from, s.expires_at, s.max_visits, s.visits, s.domain
        INTO id, url, redirect_status, disabled, valid_from, expires_at, max_visits, visits, link_domain
        FROM @extschema@.shortlinks AS s
        WHERE s.code = _shortlink_by_code.code;
        IF link_domain IS NULL THEN
            RETURN;
        END IF;
    END IF;
    SELECT s.id, s.url, s.redirect_status, s.disabled, s.valid_from, s.expires_at, s.max_visits, s.visits
    INTO id, url, redirect_status, disabled, valid_from, expires_at, max_visits, visits
    FROM @extschema@.shortlinks AS s
    WHERE s.code = _shortlink_by_code.code
      AND s.domain IS NOT DISTINCT FROM _shortlink_by_code.domain;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_by_code(text, text) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_by_code(text, text) IS
    'internal: the columns that decide where and whether the link of a code in a domain redirects, read with a query';

CREATE OR REPLACE FUNCTION snowlink_internal._shortlink_count_visit(code text, link_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = auto
SET lock_timeout = 1000
AS $$
DECLARE
    visited_code text := _shortlink_count_visit.code;
    visited_at timestamptz := clock_timestamp();
BEGIN
    IF snowlink_internal._shortlinks_distributed() THEN
        PERFORM pg_catalog.set_config('plan_cache_mode', 'force_custom_plan', true); -- citus.sql
    END IF;
    IF visited_code IS NULL THEN
        SELECT s.code INTO visited_code FROM @extschema@.shortlinks AS s WHERE s.id = link_id;
    END IF;
    UPDATE @extschema@.shortlinks AS s
    SET visits = s.visits + 1,
        first_visit_at = coalesce(s.first_visit_at, visited_at),
        last_visit_at = visited_at
    WHERE s.code = visited_code
      AND s.id = link_id
      AND s.max_visits IS NOT NULL
      AND snowlink_internal._shortlink_is_live(s.disabled, s.valid_from, s.expires_at, s.max_visits,
                                               s.visits, visited_at);
    RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION shortlinks_purge_expired() RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    purged bigint[];
    purged_codes text[];
    purged_urls text[];
BEGIN
    WITH gone AS (
        DELETE FROM @extschema@.shortlinks AS s
        WHERE snowlink_internal._shortlink_is_spent(s.expires_at, s.max_visits, s.visits, now())
        RETURNING s.id, s.code, s.url
    )
    SELECT coalesce(array_agg(gone.id), '{}'), array_agg(gone.code), array_agg(gone.url)
    INTO purged, purged_codes, purged_urls
    FROM gone;
    PERFORM snowlink_internal._shortlinks_forget_visits(coalesce(purged_codes, '{}'), purged);
    PERFORM snowlink_internal._shortlinks_sync_url_links(purged_codes, purged_urls)
    WHERE purged_codes IS NOT NULL;
    RETURN cardinality(purged);
END
$$;
COMMENT ON FUNCTION shortlinks_purge_expired() IS
    'deletes the caller''s expired and used-up short links with their visit rows, and returns how many';

-- Following a link of a domain.
-- The same for a link of a domain (NULL: the default domain): not STRICT, so that a NULL domain
-- is the default one.
CREATE FUNCTION shortlink_target(code text, domain text)
RETURNS TABLE (url text, status int, cache_control text)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 1
AS 'MODULE_PATHNAME', 'shortlink_target_in_domain_wrapper';
CREATE FUNCTION snowlink_internal.shortlink_target(code text, domain text)
RETURNS TABLE (url text, status int, cache_control text)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 1
AS 'MODULE_PATHNAME', 'shortlink_target_in_domain_wrapper';
COMMENT ON FUNCTION shortlink_target(text, text) IS
    'URL, redirect status and Cache-Control of a live short link of a domain (NULL: the default), for an HTTP front; counts the visit';
COMMENT ON FUNCTION snowlink_internal.shortlink_target(text, text) IS 'internal: shortlink_target(), for the extension''s SQL';

-- For PostgREST: the link's status, Location and Cache-Control from shortlink_target(), or 404;
-- for a link of a domain, or of the default domain.
CREATE FUNCTION shortlink_redirect(code text, domain text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target record;
BEGIN
    SELECT * INTO target FROM snowlink_internal.shortlink_target(shortlink_redirect.code, shortlink_redirect.domain);
    IF NOT FOUND THEN
        PERFORM set_config('response.status', '404', true);
        PERFORM set_config('response.headers',
                           json_build_array(json_build_object('Cache-Control', 'no-store'))::text, true);
        RETURN NULL;
    END IF;
    PERFORM set_config('response.status', target.status::text, true);
    PERFORM set_config('response.headers',
                       json_build_array(json_build_object('Location', target.url),
                                        json_build_object('Cache-Control', target.cache_control))::text,
                       true);
    RETURN target.url;
END
$$;
COMMENT ON FUNCTION shortlink_redirect(text, text) IS
    'for PostgREST: resolves a code of a domain (NULL: the default) and sets response.status and response.headers';

-- The default domain's. Bound when it is created: nothing made later can take the place of the
-- function it calls.
CREATE OR REPLACE FUNCTION shortlink_redirect(code text) RETURNS text
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    SELECT @extschema@.shortlink_redirect(code, NULL::text);
END;
COMMENT ON FUNCTION shortlink_redirect(text) IS
    'for PostgREST: resolves a code and sets response.status and response.headers (Location, Cache-Control)';

-- Whether a code resolves (in a domain; NULL: the default domain), without counting a visit: for
-- an HTTP front that shows a link's QR code only while the link lives. Anyone may ask, as anyone
-- may follow a link; it reads the link as the extension's owner.
CREATE FUNCTION shortlink_is_live(code text, domain text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    -- PL/pgSQL, whose query Citus sends to the code's shard (it cannot plan an SQL function's).
    RETURN EXISTS (
        SELECT FROM @extschema@.shortlinks AS s
        WHERE s.code = shortlink_is_live.code
          AND s.domain IS NOT DISTINCT FROM snowlink_internal._shortlink_domain(shortlink_is_live.domain)
          AND snowlink_internal._shortlink_is_live(s.disabled, s.valid_from, s.expires_at, s.max_visits,
                                                   s.visits, now()));
END
$$;
COMMENT ON FUNCTION shortlink_is_live(text, text) IS
    'whether a code resolves (in a domain; NULL: the default), without counting a visit';

-- Makes the extension's tables Citus tables; called once, on the coordinator of a Citus cluster.
-- shortlinks is distributed by code, so that the functions that take a code reach one shard. A
-- Citus key must be part of every unique constraint, so the primary key on id gives way to a
-- unique index on (id, code), which also serves as the replica identity (the unique code of a
-- domain cannot: the domain may be NULL). The
-- visits are distributed by link ID, which is what every node's visit writer writes by, so that a
-- flush sends each row to its shard without looking its code up; the URL locks by bucket; the key
-- and the reserved codes, which every shorten() reads, are reference tables, a copy on every node.
-- Tables that Citus already manages are left as they are, so a second call does nothing. It
-- refuses a cluster whose nodes' snowflake ranges overlap.
CREATE OR REPLACE FUNCTION shortlinks_distribute(shard_count int DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- Not Citus's notices that it copies each table, and how to free the local copy: it does that.
SET client_min_messages = warning
AS $$
DECLARE
    links regclass := '@extschema@.shortlinks';
    links_key text;
    unreadable text;
    shared_nodes text;
    stranded text;
    referencing text;
    citus_table regclass;
    key_column text;
    colocated_with text;
BEGIN
    IF shard_count < 1 THEN
        RAISE EXCEPTION 'shard_count must be positive, not %', shard_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'shortlinks_distribute() needs the citus extension in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run CREATE EXTENSION citus and add the workers first.';
    END IF;
    IF NOT pg_catalog.citus_is_coordinator() THEN
        RAISE EXCEPTION 'shortlinks_distribute() must be called on the coordinator, not on a worker'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- Nodes whose snowflake ranges overlap can make the same IDs and the same codes.
    WITH ranges AS MATERIALIZED (
        SELECT r.nodeid, r.success, r.result, CASE WHEN r.success THEN r.result::int4range END AS node_range
        FROM pg_catalog.run_command_on_all_nodes('SELECT snowlink_internal.snowflake_node_range()') AS r
    )
    SELECT (SELECT string_agg(format('node %s: %s', f.nodeid, f.result), ', ') FROM ranges AS f
            WHERE NOT f.success),
           (SELECT string_agg(format('nodes %s and %s share %s', a.nodeid, b.nodeid, a.node_range * b.node_range), ', ')
            FROM ranges AS a JOIN ranges AS b ON a.nodeid < b.nodeid AND a.node_range && b.node_range)
    INTO unreadable, shared_nodes;
    IF unreadable IS NOT NULL THEN
        RAISE EXCEPTION 'could not read the snowflake node range of every node: %', unreadable
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF shared_nodes IS NOT NULL THEN
        RAISE EXCEPTION 'the snowflake node ranges of the cluster overlap: %', shared_nodes
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Give every node a range of its own with snowlink.node_min and snowlink.node_max.';
    END IF;

    SELECT coalesce(pg_catalog.column_to_column_name(p.logicalrelid, p.partkey), '') INTO links_key
    FROM pg_dist_partition AS p
    WHERE p.logicalrelid = links;
    IF links_key IS DISTINCT FROM 'code' AND links_key IS NOT NULL THEN
        RAISE EXCEPTION 'shortlinks is already a Citus table, but not one distributed by code'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Only a local shortlinks can be distributed, and Citus cannot make a table of an extension local again.';
    END IF;
    IF links_key IS NULL THEN
        SELECT string_agg(format('%s (%I)', c.conrelid::regclass, c.conname), ', ') INTO referencing
        FROM pg_constraint AS c
        WHERE c.contype = 'f' AND c.confrelid = links;
        IF referencing IS NOT NULL THEN
            RAISE EXCEPTION 'shortlinks cannot be distributed while foreign keys reference it: %', referencing
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Drop them first. A table distributed by code with colocate_with => ''shortlinks'' can then reference shortlinks (code).';
        END IF;
        -- Links made on a worker before now are in that worker's own table, which the shards
        -- would hide for good.
        SELECT string_agg(format('%s:%s has %s', w.nodename, w.nodeport, w.result), ', ') INTO stranded
        FROM pg_catalog.run_command_on_workers('SELECT count(*) FROM @extschema@.shortlinks') AS w
        WHERE NOT w.success OR w.result <> '0';
        IF stranded IS NOT NULL THEN
            RAISE EXCEPTION 'workers hold links of their own, which distribution would hide: %', stranded
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Bring them to the coordinator (shortlinks_import() keeps their codes) and delete them on the workers first.';
        END IF;
        ALTER TABLE @extschema@.shortlinks DROP CONSTRAINT shortlinks_pkey;
        CREATE UNIQUE INDEX shortlinks_id ON @extschema@.shortlinks (id, code);
        ALTER TABLE @extschema@.shortlinks REPLICA IDENTITY USING INDEX shortlinks_id;
        PERFORM pg_catalog.create_distributed_table(links, 'code',
                                                    shard_count => shortlinks_distribute.shard_count);
        PERFORM pg_catalog.truncate_local_data_after_distributing_table(links);
    END IF;

    -- Each with its distribution column (NULL for a reference table) and the table it goes with.
    FOR citus_table, key_column, colocated_with IN
        VALUES ('@extschema@.shortlink_visits'::regclass, 'code', '@extschema@.shortlinks'),
               ('@extschema@.shortlink_url_locks'::regclass, 'bucket', 'none'),
               ('@extschema@.shortlink_url_links'::regclass, 'bucket', '@extschema@.shortlink_url_locks'),
               ('@extschema@.shortlink_key'::regclass, NULL, NULL),
               ('@extschema@.shortlink_reserved_codes'::regclass, NULL, NULL)
    LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_dist_partition AS p WHERE p.logicalrelid = citus_table);
        IF citus_table = '@extschema@.shortlink_visits'::regclass THEN
            -- Citus wants the code in the key too.
            ALTER TABLE @extschema@.shortlink_visits
                DROP CONSTRAINT shortlink_visits_pkey,
                ADD CONSTRAINT shortlink_visits_pkey PRIMARY KEY (code, link_id, day);
        END IF;
        IF key_column IS NULL THEN
            -- Citus refuses triggers on reference tables; without them, backends read these
            -- tables at every call instead of keeping them (tables.sql).
            EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s',
                                      (SELECT c.relname FROM pg_catalog.pg_class AS c
                                       WHERE c.oid OPERATOR(pg_catalog.=) citus_table) || '_changed',
                                      citus_table);
            PERFORM pg_catalog.create_reference_table(citus_table);
        ELSE
            -- A table placed with another has that one's shards.
            PERFORM pg_catalog.create_distributed_table(
                citus_table, key_column, colocate_with => colocated_with,
                shard_count => CASE WHEN colocated_with = 'none' THEN shortlinks_distribute.shard_count END);
        END IF;
        PERFORM pg_catalog.truncate_local_data_after_distributing_table(citus_table);
    END LOOP;
    -- Citus runs each call of these where the shards of its code are, so that the policy on
    -- shortlink_visits may ask there for the link of each row (owners.sql).
    PERFORM pg_catalog.create_distributed_function(f, '$1', colocate_with => '@extschema@.shortlinks',
                                                   force_delegation => true)
    FROM unnest(ARRAY['@extschema@.shortlink_stats(text, text)'::regprocedure,
                      '@extschema@.shortlink_daily_visits(text, date, date, text)'::regprocedure]) AS f;
    -- Every link listed under its URL, for shorten() (shorten.sql); from now on the functions
    -- that make, change and delete links keep the list. Links already listed stay as they are.
    INSERT INTO @extschema@.shortlink_url_links AS u (bucket, url, domain, code, link_id)
    SELECT snowlink_internal._shortlink_url_bucket(s.url), s.url, s.domain, s.code, s.id
    FROM @extschema@.shortlinks AS s
    ON CONFLICT DO NOTHING;
END
$$;

-- The functions that manage links run as their caller now, under the policies of owners.sql, and
-- take the link's domain: a new signature, so the old one goes first (an application's SQL-standard
-- function or view that calls one must be dropped before the update, and made again).
DROP FUNCTION @extschema@.shortlink_enable(text);
DROP FUNCTION @extschema@.shortlink_disable(text, boolean);
CREATE FUNCTION shortlink_disable(code text, disabled boolean DEFAULT true, domain text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    IF shortlink_disable.code IS NULL OR shortlink_disable.disabled IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE @extschema@.shortlinks AS s SET disabled = shortlink_disable.disabled
    WHERE s.code = shortlink_disable.code
      AND s.domain IS NOT DISTINCT FROM snowlink_internal._shortlink_domain(shortlink_disable.domain);
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION shortlink_disable(text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_disable(text, boolean, text) TO snowlink_user;
COMMENT ON FUNCTION shortlink_disable(text, boolean, text) IS
    'stops a short link from resolving (disabled => false: lets it resolve again); false when the code is unknown';
CREATE FUNCTION shortlink_enable(code text, domain text DEFAULT NULL) RETURNS boolean
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    SELECT @extschema@.shortlink_disable(code, false, domain);
END;
REVOKE ALL ON FUNCTION shortlink_enable(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_enable(text, text) TO snowlink_user;
COMMENT ON FUNCTION shortlink_enable(text, text) IS
    'lets a disabled short link resolve again; false when the code is unknown';

DROP FUNCTION @extschema@.shortlink_stats(text);
CREATE FUNCTION shortlink_stats(
    code text,
    domain text DEFAULT NULL,
    OUT visits bigint,
    OUT first_visit_at timestamptz,
    OUT last_visit_at timestamptz
)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    link record;
BEGIN
    -- Two queries by key: on Citus both go to the code's shard, on whose node Citus runs the call
    -- (citus.sql), checking that each names the call's own code.
    SELECT s.id, s.code, s.visits, s.first_visit_at, s.last_visit_at INTO link
    FROM @extschema@.shortlinks AS s
    WHERE s.code = shortlink_stats.code
      AND s.domain IS NOT DISTINCT FROM snowlink_internal._shortlink_domain(shortlink_stats.domain);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT link.visits + coalesce(sum(v.visits), 0),
           least(link.first_visit_at, min(v.first_at)),
           greatest(link.last_visit_at, max(v.last_at))
    INTO visits, first_visit_at, last_visit_at
    FROM @extschema@.shortlink_visits AS v
    WHERE v.code = shortlink_stats.code AND v.link_id = link.id;
END
$$;
REVOKE ALL ON FUNCTION shortlink_stats(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_stats(text, text) TO snowlink_user;
COMMENT ON FUNCTION shortlink_stats(text, text) IS
    'visits of a short link, with the first and last visit time';

DROP FUNCTION @extschema@.shortlink_daily_visits(text, date, date);
CREATE FUNCTION shortlink_daily_visits(code text, from_day date DEFAULT NULL, to_day date DEFAULT NULL,
                                       domain text DEFAULT NULL)
RETURNS TABLE (day date, visits bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    max_days constant int := 36600;
    visited_link bigint;
    created_on date;
    first_day date;
    last_day date;
BEGIN
    SELECT s.id, (s.created_at AT TIME ZONE 'UTC')::date INTO visited_link, created_on
    FROM @extschema@.shortlinks AS s
    WHERE s.code = shortlink_daily_visits.code
      AND s.domain IS NOT DISTINCT FROM snowlink_internal._shortlink_domain(shortlink_daily_visits.domain);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- An open bound, NULL or infinite, is the day the link was made, or today (UTC).
    first_day := CASE WHEN from_day IS NULL OR from_day = '-infinity' THEN created_on ELSE from_day END;
    last_day := CASE WHEN to_day IS NULL OR to_day = 'infinity' THEN (now() AT TIME ZONE 'UTC')::date
                     ELSE to_day END;
    IF NOT isfinite(first_day) OR NOT isfinite(last_day) OR last_day < first_day THEN
        RETURN; -- from 'infinity', to '-infinity', or to a day before the first: no day
    END IF;
    IF last_day - first_day >= max_days THEN
        RAISE EXCEPTION 'the range from % to % has % days, more than shortlink_daily_visits() returns (%)',
            first_day, last_day, last_day - first_day + 1, max_days
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Ask for a shorter range, or for one range after the other.';
    END IF;
    -- Days as offsets from the first: the day after the last is never computed, so that a range
    -- ending on the last day a date can hold works too.
    RETURN QUERY
    SELECT first_day + d.offset_days, coalesce(v.visits, 0)
    FROM generate_series(0, last_day - first_day) AS d (offset_days)
    LEFT JOIN @extschema@.shortlink_visits AS v
      ON v.code = shortlink_daily_visits.code AND v.link_id = visited_link
     AND v.day = first_day + d.offset_days
    ORDER BY d.offset_days;
END
$$;
REVOKE ALL ON FUNCTION shortlink_daily_visits(text, date, date, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_daily_visits(text, date, date, text) TO snowlink_user;
COMMENT ON FUNCTION shortlink_daily_visits(text, date, date, text) IS
    'visits of a short link per day (UTC), 0 for days without, from the day it was made to today by default';

-- This server's node range, how much of it backends hold, and its high-water marks
-- (src/snowflake/highwater.rs), for whoever watches the server (docs/operations.md): nodes whose
-- mark is ahead of the clock make their IDs wait for it, and those ahead by more than
-- snowlink.max_clock_backward_ms refuse IDs with 58000 until the clock passes their mark.
CREATE FUNCTION snowlink_internal._snowflake_marks()
RETURNS TABLE (nodes int, nodes_ahead_of_clock int, nodes_refusing int, furthest_ahead_ms bigint,
               last_lease_at timestamptz)
LANGUAGE c VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', '_snowflake_marks_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._snowflake_marks() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._snowflake_marks() TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._snowflake_marks() IS 'internal: the high-water marks of snowflake_node_status';
CREATE VIEW snowflake_node_status AS
SELECT @extschema@.snowflake_node_range() AS node_range,
       m.nodes,
       (SELECT pg_catalog.count(*)::pg_catalog.int4 FROM @extschema@.snowflake_nodes AS n
        WHERE n.node_id OPERATOR(pg_catalog.<@) @extschema@.snowflake_node_range()) AS claimed,
       m.nodes_ahead_of_clock,
       m.nodes_refusing,
       m.furthest_ahead_ms,
       m.last_lease_at
FROM snowlink_internal._snowflake_marks() AS m;
REVOKE ALL ON snowflake_node_status FROM PUBLIC;
GRANT SELECT ON snowflake_node_status TO snowlink_user;
COMMENT ON VIEW snowflake_node_status IS
    'this server''s snowflake node range, the nodes claimed, and the high-water marks ahead of the clock';

-- Each database's visit writer, for whoever watches the server (src/visits/status.rs): whether it
-- runs and as which process, when it last wrote, the visits counted and not yet written, those
-- written and those dropped (for want of room while they could not be written) since the server's
-- boot, and the rings: one per backend slot, each holding ring_capacity visits between two writes.
-- A database whose backends counted no visit since the boot has no row.
CREATE FUNCTION snowlink_internal._visit_writers()
RETURNS TABLE (database text, writer_pid int, running boolean, last_write_at timestamptz,
               pending_visits bigint, written_visits bigint, dropped_visits bigint, rings int,
               ring_capacity bigint)
LANGUAGE c VOLATILE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', '_visit_writers_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._visit_writers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._visit_writers() TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._visit_writers() IS 'internal: the rows of snowlink_visit_writers';
CREATE VIEW snowlink_visit_writers AS
    SELECT * FROM snowlink_internal._visit_writers();
REVOKE ALL ON snowlink_visit_writers FROM PUBLIC;
GRANT SELECT ON snowlink_visit_writers TO snowlink_user;
COMMENT ON VIEW snowlink_visit_writers IS
    'each database''s visit writer: running or not, its last write, visits pending, written and dropped since the boot';

-- Changes a link: each argument given (not NULL) replaces its column, and the columns that `clear`
-- names ('title', 'valid_from', 'expires_at', 'max_visits') become NULL; the ID, the code, the
-- owner and the visits stay. The URL, title and tags get the checks and the normal form of
-- shorten(). Returns the link as it is now, or NULL when the code is unknown or not the caller's.
-- A resolve() of the code in any session sees the change from the commit on: it reads the link,
-- never a copy.
CREATE FUNCTION shortlink_update(
    code text,
    url text DEFAULT NULL,
    title text DEFAULT NULL,
    tags text[] DEFAULT NULL,
    expires_at timestamptz DEFAULT NULL,
    max_visits bigint DEFAULT NULL,
    redirect_status int DEFAULT NULL,
    valid_from timestamptz DEFAULT NULL,
    domain text DEFAULT NULL,
    clear text[] DEFAULT '{}'
) RETURNS shortlinks
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    cleared text[] := coalesce(shortlink_update.clear, '{}');
    link_domain text := snowlink_internal._shortlink_domain(shortlink_update.domain);
    refused text;
    link @extschema@.shortlinks;
    old_url text;
BEGIN
    IF shortlink_update.code IS NULL THEN
        RAISE EXCEPTION 'code must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT string_agg(coalesce(quote_literal(c), 'NULL'), ', ') INTO refused
    FROM unnest(cleared) AS c
    WHERE c IS NULL OR c <> ALL (ARRAY['title', 'valid_from', 'expires_at', 'max_visits']);
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION 'clear names columns that cannot be cleared: %', refused
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'clear may name title, valid_from, expires_at and max_visits.';
    END IF;
    SELECT string_agg(c, ', ') INTO refused
    FROM unnest(cleared) AS c
    WHERE CASE c WHEN 'title' THEN shortlink_update.title IS NOT NULL
                 WHEN 'valid_from' THEN shortlink_update.valid_from IS NOT NULL
                 WHEN 'expires_at' THEN shortlink_update.expires_at IS NOT NULL
                 WHEN 'max_visits' THEN shortlink_update.max_visits IS NOT NULL END;
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION 'both given and cleared: %', refused USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF shortlink_update.max_visits <= 0 THEN
        RAISE EXCEPTION 'max_visits must be positive, not %', shortlink_update.max_visits
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF shortlink_update.expires_at <= now() THEN
        RAISE EXCEPTION 'expires_at % is not in the future', shortlink_update.expires_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- The link as it is, locked: a concurrent update waits, then applies its own arguments to this
    -- one's result.
    SELECT * INTO link
    FROM @extschema@.shortlinks AS s
    WHERE s.code = shortlink_update.code AND s.domain IS NOT DISTINCT FROM link_domain
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    old_url := link.url;
    link.redirect_status := coalesce(shortlink_update.redirect_status, link.redirect_status);
    link.url := snowlink_internal._shortlink_checked_url(coalesce(shortlink_update.url, link.url), NULL,
                                                         link.redirect_status);
    link.title := CASE WHEN 'title' = ANY (cleared) THEN NULL
                       WHEN shortlink_update.title IS NOT NULL
                       THEN snowlink_internal._shortlink_title(shortlink_update.title)
                       ELSE link.title END;
    link.tags := coalesce(snowlink_internal._shortlink_tags(shortlink_update.tags), link.tags);
    link.valid_from := CASE WHEN 'valid_from' = ANY (cleared) THEN NULL
                            ELSE coalesce(shortlink_update.valid_from, link.valid_from) END;
    link.expires_at := CASE WHEN 'expires_at' = ANY (cleared) THEN NULL
                            ELSE coalesce(shortlink_update.expires_at, link.expires_at) END;
    link.max_visits := CASE WHEN 'max_visits' = ANY (cleared) THEN NULL
                            ELSE coalesce(shortlink_update.max_visits, link.max_visits) END;
    IF link.valid_from >= link.expires_at THEN
        RAISE EXCEPTION 'valid_from % is not before expires_at %', link.valid_from, link.expires_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- By code as well as ID: on Citus, the code's shard.
    UPDATE @extschema@.shortlinks AS s
    SET url = link.url, redirect_status = link.redirect_status, title = link.title, tags = link.tags,
        valid_from = link.valid_from, expires_at = link.expires_at, max_visits = link.max_visits
    WHERE s.code = shortlink_update.code AND s.id = link.id
    RETURNING * INTO link;
    IF link.url IS DISTINCT FROM old_url THEN
        PERFORM snowlink_internal._shortlinks_sync_url_links(ARRAY[link.code], ARRAY[old_url]);
    END IF;
    RETURN link;
END
$$;
REVOKE ALL ON FUNCTION shortlink_update(text, text, text, text[], timestamptz, bigint, int, timestamptz, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_update(text, text, text, text[], timestamptz, bigint, int, timestamptz, text, text[]) TO snowlink_user;
COMMENT ON FUNCTION shortlink_update(text, text, text, text[], timestamptz, bigint, integer, timestamptz, text, text[]) IS
    'changes the given columns of a short link (clear: those to set to NULL); NULL when the code is unknown or not the caller''s';

-- API keys: how a service that reaches the database as one role (snowlink-http) acts for many
-- owners. A role in snowlink_admin makes a key for an owner and hands it to a client once; the
-- table keeps only the key's SHA-256. For each request the service passes the client's key to
-- snowlink_api_key_use(), which makes the key's owner the owner of the transaction
-- (snowlink.owner), and a read-only key's transaction read-only, so that the row-level security
-- of owners.sql and PostgreSQL itself hold the request to what the key may do. Keys are checked
-- at every use: a revoked key is refused from the commit of its revocation on.
CREATE TABLE snowlink_api_keys (
    id bigint PRIMARY KEY DEFAULT @extschema@.snowflake_next(),
    owner text COLLATE "C" NOT NULL CHECK (owner OPERATOR(pg_catalog.<>) ''),
    read_only boolean NOT NULL DEFAULT false,
    note text,
    key_sha256 bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    revoked_at timestamptz
);
COMMENT ON TABLE snowlink_api_keys IS
    'API keys, each acting for an owner; only a hash of each key is kept';
-- Administrators list the keys, without their hashes; the functions below make and revoke them.
GRANT SELECT (id, owner, read_only, note, created_at, revoked_at) ON snowlink_api_keys TO snowlink_admin;
-- pg_dump keeps the keys.
SELECT pg_catalog.pg_extension_config_dump('snowlink_api_keys', '');

-- A new key for an owner, returned once: "sl_" and 64 hexadecimal digits (244 random bits, from
-- two version-4 UUIDs). A read-only key may read its owner's links and statistics, not change them.
CREATE FUNCTION snowlink_api_key_create(owner text, read_only boolean DEFAULT false, note text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    api_key text := 'sl_' OPERATOR(pg_catalog.||) pg_catalog.encode(
        pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
            OPERATOR(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 'hex');
BEGIN
    IF snowlink_api_key_create.owner IS NULL OR snowlink_api_key_create.owner OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'owner must not be NULL or empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.snowlink_api_keys (owner, read_only, note, key_sha256)
    VALUES (snowlink_api_key_create.owner, coalesce(snowlink_api_key_create.read_only, false),
            snowlink_api_key_create.note, pg_catalog.sha256(pg_catalog.convert_to(api_key, 'UTF8')));
    RETURN api_key;
END
$$;
REVOKE ALL ON FUNCTION snowlink_api_key_create(text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_api_key_create(text, boolean, text) TO snowlink_admin;
COMMENT ON FUNCTION snowlink_api_key_create(text, boolean, text) IS
    'a new API key acting for an owner, shown this once';

-- Revokes a key: false when there is no such key, or it was revoked already.
CREATE FUNCTION snowlink_api_key_revoke(id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.snowlink_api_keys AS k
    SET revoked_at = pg_catalog.now()
    WHERE k.id OPERATOR(pg_catalog.=) snowlink_api_key_revoke.id AND k.revoked_at IS NULL;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION snowlink_api_key_revoke(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_api_key_revoke(bigint) TO snowlink_admin;
COMMENT ON FUNCTION snowlink_api_key_revoke(bigint) IS 'revokes an API key; false when unknown or revoked already';

-- For the service, at the start of each request's transaction: the key's owner becomes the owner
-- of the transaction, and a read-only key's transaction becomes read-only. An unknown or revoked
-- key is refused with 28000, without saying which. Outside a transaction block the settings end
-- with the statement, so the service calls it in the transaction of the request.
CREATE FUNCTION snowlink_api_key_use(api_key text, OUT owner text, OUT read_only boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT k.owner, k.read_only INTO owner, read_only
    FROM @extschema@.snowlink_api_keys AS k
    WHERE k.key_sha256 OPERATOR(pg_catalog.=) pg_catalog.sha256(pg_catalog.convert_to(api_key, 'UTF8'))
      AND k.revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'API key is unknown or revoked' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    PERFORM pg_catalog.set_config('snowlink.owner', owner, true);
    IF read_only THEN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION snowlink_api_key_use(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_api_key_use(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_api_key_use(text) IS
    'makes an API key''s owner that of the transaction (read-only for a read-only key); 28000 when unknown or revoked';

-- shorten() (src/shortlinks/shorten.rs) normalizes the URL itself; nothing calls this any more.
DROP FUNCTION snowlink_internal.shortlink_normalize_url(text);

-- The tables, last: ADD COLUMN, CREATE INDEX and the row-level security of shortlinks lock it until
-- the update commits, and the resolve() calls of the moment wait for that (those of links with
-- max_visits give up after a second, with 55P03). Every function above is made before that lock.
-- The redirect statuses of the table are those of redirect_status.rs.
ALTER TABLE @extschema@.shortlinks
    DROP CONSTRAINT shortlinks_redirect_status_check,
    ADD CONSTRAINT shortlinks_redirect_status_check
        CHECK (snowlink_internal._shortlink_is_redirect_status(redirect_status));
ALTER TABLE @extschema@.shortlinks ADD COLUMN title text, ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
CREATE INDEX shortlinks_tags ON @extschema@.shortlinks USING gin (tags)
    WHERE tags OPERATOR(pg_catalog.<>) '{}';

-- The links with a tag, newest first, through the GIN index on tags, whose condition (tags not
-- empty) it repeats so that the planner may use it. It runs as its caller, who reads only the
-- links the caller may read. Its body is not bound at creation, so that it does not hold every
-- column of shortlinks against an ALTER TABLE; its search_path is pinned instead.
CREATE FUNCTION shortlinks_tagged(tag text) RETURNS SETOF shortlinks
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT *
    FROM @extschema@.shortlinks AS s
    WHERE s.tags OPERATOR(pg_catalog.@>) snowlink_internal._shortlink_tags(ARRAY[tag])
      AND s.tags OPERATOR(pg_catalog.<>) '{}'
    ORDER BY s.id DESC;
$$;
REVOKE ALL ON FUNCTION shortlinks_tagged(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_tagged(text) TO snowlink_user;
COMMENT ON FUNCTION shortlinks_tagged(text) IS
    'short links with a tag (compared as stored: trimmed, lower case), newest first';

-- The caller's links (for a role in snowlink_admin, every link), newest first, a page at a time:
-- those whose code, URL or title holds `search` (as plain text, in any case), that have `tag`, and
-- that are in `domain` (NULL: in any domain). The next page starts after the last ID of this one
-- (after_id): each page costs the same however deep, and a link made meanwhile does not shift the
-- pages. An owner's links are read from the index shortlinks_owner, newest first, until the page
-- is full.
CREATE FUNCTION shortlinks_list(search text DEFAULT NULL, tag text DEFAULT NULL, domain text DEFAULT NULL,
                                after_id bigint DEFAULT NULL, page_size int DEFAULT 50)
RETURNS SETOF shortlinks
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    max_page_size constant int := 1000;
    -- LIKE's wildcards and escape character, in the search, stand for themselves.
    pattern text := '%' || replace(replace(replace(shortlinks_list.search, '\', '\\'), '%', '\%'), '_', '\_')
                    || '%';
    wanted_tags text[] := CASE WHEN shortlinks_list.tag IS NOT NULL
                               THEN snowlink_internal._shortlink_tags(ARRAY[shortlinks_list.tag]) END;
    link_domain text := snowlink_internal._shortlink_domain(shortlinks_list.domain);
    -- Always a bound, so that every page starts from the index, not from the newest link.
    below_id bigint := coalesce(shortlinks_list.after_id, 9223372036854775807);
BEGIN
    IF page_size IS NULL OR page_size < 1 OR page_size > max_page_size THEN
        RAISE EXCEPTION 'page_size must be from 1 to %, not %', max_page_size, coalesce(page_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT *
    FROM @extschema@.shortlinks AS s
    WHERE s.id < below_id
      AND (pattern IS NULL OR s.code ILIKE pattern OR s.url ILIKE pattern OR s.title ILIKE pattern)
      AND (wanted_tags IS NULL OR s.tags @> wanted_tags)
      AND (link_domain IS NULL OR s.domain = link_domain)
    ORDER BY s.id DESC
    LIMIT page_size;
END
$$;
REVOKE ALL ON FUNCTION shortlinks_list(text, text, text, bigint, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_list(text, text, text, bigint, int) TO snowlink_user;
COMMENT ON FUNCTION shortlinks_list(text, text, text, bigint, integer) IS
    'the caller''s short links, newest first, a page at a time after after_id; search matches code, URL and title';

-- The links made so far belong to the extension's owner, whom only snowlink_admin and superusers
-- see until they hand them to others (UPDATE shortlinks SET owner_role = ..., owner = ...).
DO $$
DECLARE
    extension_owner text := (SELECT r.rolname FROM pg_catalog.pg_extension AS e
                             JOIN pg_catalog.pg_roles AS r ON r.oid OPERATOR(pg_catalog.=) e.extowner
                             WHERE e.extname OPERATOR(pg_catalog.=) 'snowlink');
BEGIN
    EXECUTE pg_catalog.format(
        'ALTER TABLE @extschema@.shortlinks ADD COLUMN owner_role text COLLATE "C" NOT NULL DEFAULT %1$L, '
        'ADD COLUMN owner text COLLATE "C" NOT NULL DEFAULT %1$L', extension_owner);
END
$$;
ALTER TABLE @extschema@.shortlinks
    ALTER COLUMN owner_role SET DEFAULT CURRENT_USER,
    ALTER COLUMN owner SET DEFAULT snowlink_internal._shortlink_owner();
CREATE INDEX shortlinks_owner ON @extschema@.shortlinks (owner_role, owner, id);

-- The same code may exist once per domain (NULL: the default domain, one domain, not a NULL each).
-- resolve() reads this index itself (src/shortlinks/link_lookup.rs).
ALTER TABLE @extschema@.shortlinks
    ADD COLUMN domain text COLLATE "C",
    DROP CONSTRAINT shortlinks_code_key,
    ADD CONSTRAINT shortlinks_code_key UNIQUE NULLS NOT DISTINCT (code, domain);

-- What a role in snowlink_user may do with the tables themselves; the policies pick the rows.
-- Neither the owner, the code or domain of an existing link nor its counted visits can be
-- changed. (INSERT is granted on every column: Citus sends the shards every column, the defaults
-- filled in; the policies hold a new row's owner and visits to what they must be.)
GRANT SELECT ON shortlink_reserved_codes TO snowlink_user;
GRANT SELECT, INSERT, DELETE ON shortlinks TO snowlink_user;
GRANT UPDATE (url, valid_from, expires_at, max_visits, redirect_status, disabled, title, tags)
    ON shortlinks TO snowlink_user;
-- Links are handed to another owner with a plain UPDATE.
GRANT UPDATE (owner_role, owner) ON shortlinks TO snowlink_admin;

ALTER TABLE shortlinks ENABLE ROW LEVEL SECURITY;

-- A role's links of the current owner, for reading and writing.
CREATE POLICY owner_links ON shortlinks
    USING (owner_role OPERATOR(pg_catalog.=) CURRENT_USER::text
           AND owner OPERATOR(pg_catalog.=) snowlink_internal._shortlink_owner());
CREATE POLICY every_link ON shortlinks TO snowlink_admin
    USING (true);

-- Every row a role writes, whoever may read it, is well formed. A new link's ID is one that the
-- generator can never issue again (snowflake_next() of the same backend, called directly or as
-- the column's default), its code is not reserved, and it has no visits yet. No role may change
-- a link's code, so an update is not held to the code rule: a code reserved later, or that became
-- an endpoint of snowlink-http, stays with the link that has it, whose owner may still edit it.
CREATE POLICY well_formed_new_links ON shortlinks AS RESTRICTIVE FOR INSERT
    WITH CHECK (snowlink_internal._snowflake_issued_here(id)
                AND snowlink_internal._shortlink_reserved_refusal(code) IS NULL
                AND visits OPERATOR(pg_catalog.=) 0 AND first_visit_at IS NULL AND last_visit_at IS NULL
                AND snowlink_internal._shortlink_is_well_formed(code, url, redirect_status, title, tags, domain));
CREATE POLICY well_formed_links ON shortlinks AS RESTRICTIVE FOR UPDATE
    USING (true)
    WITH CHECK (snowlink_internal._shortlink_is_well_formed(NULL, url, redirect_status, title, tags, domain));

-- Visit rows are written by the visit writer and the extension's functions only. A role in
-- snowlink_admin reads every one without asking for its link: on Citus, a query on a shard cannot
-- ask another (the one policy true, PostgreSQL calls no function for its rows).
GRANT SELECT ON shortlink_visits TO snowlink_user;
ALTER TABLE shortlink_visits ENABLE ROW LEVEL SECURITY;
CREATE POLICY visits_of_visible_links ON shortlink_visits FOR SELECT
    USING (snowlink_internal._shortlink_is_visible(code COLLATE "default", link_id));
CREATE POLICY every_visit ON shortlink_visits FOR SELECT TO snowlink_admin
    USING (true);

-- Writes the visits this process counted or gathered into the rows of their links and days, in
-- that order, each row with its link's code, by which Citus places it beside the link. Visits of a
-- link that is not there are left out, and logged: it was deleted or purged. A link made in the
-- last minute may be one that a transaction has not committed yet (resolved in the transaction
-- that made it): its visits wait in shortlink_visits_unseen for the next write.
CREATE OR REPLACE FUNCTION snowlink_internal._shortlinks_flush_visits() RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link_ids bigint[];
    days date[];
    counts bigint[];
    firsts timestamptz[];
    lasts timestamptz[];
    found_ids bigint[];
    found_codes text[];
    recent_ids constant bigint := snowlink_internal.snowflake_min(now() - interval '1 minute');
    left_out bigint;
BEGIN
    -- Rows that another flush holds (a backend's, in its own transaction) are left to it.
    WITH unseen AS (
        DELETE FROM @extschema@.shortlink_visits_unseen AS u
        WHERE (u.link_id, u.day) IN (SELECT w.link_id, w.day FROM @extschema@.shortlink_visits_unseen AS w
                                     FOR UPDATE SKIP LOCKED)
        RETURNING u.*
    ),
    batch AS (
        SELECT t.link_id, t.day, t.visits, t.first_at, t.last_at
        FROM snowlink_internal._shortlink_take_daily_visits() AS t
        UNION ALL
        SELECT u.link_id, u.day, u.visits, u.first_at, u.last_at FROM unseen AS u
    )
    SELECT array_agg(b.link_id), array_agg(b.day), array_agg(b.visits), array_agg(b.first_at),
           array_agg(b.last_at)
    INTO link_ids, days, counts, firsts, lasts
    FROM (SELECT b.link_id, b.day, sum(b.visits)::bigint AS visits, min(b.first_at) AS first_at,
                 max(b.last_at) AS last_at
          FROM batch AS b GROUP BY b.link_id, b.day) AS b;
    IF link_ids IS NULL THEN
        RETURN;
    END IF;
    -- The codes of the batch's links in one query: on Citus, one round to the shards.
    SELECT array_agg(s.id), array_agg(s.code) INTO found_ids, found_codes
    FROM @extschema@.shortlinks AS s
    WHERE s.id = ANY (link_ids);
    INSERT INTO @extschema@.shortlink_visits AS v (link_id, day, visits, first_at, last_at, code)
    SELECT b.link_id, b.day, b.visits, b.first_at, b.last_at, f.code
    FROM unnest(link_ids, days, counts, firsts, lasts) AS b (link_id, day, visits, first_at, last_at)
    JOIN unnest(found_ids, found_codes) AS f (id, code) ON f.id = b.link_id
    ORDER BY b.link_id, b.day
    ON CONFLICT ON CONSTRAINT shortlink_visits_pkey DO UPDATE
    SET visits = v.visits + excluded.visits,
        first_at = least(v.first_at, excluded.first_at),
        last_at = greatest(v.last_at, excluded.last_at);
    IF cardinality(found_ids) IS DISTINCT FROM cardinality(link_ids) THEN
        INSERT INTO @extschema@.shortlink_visits_unseen AS u (link_id, day, visits, first_at, last_at)
        SELECT b.link_id, b.day, b.visits, b.first_at, b.last_at
        FROM unnest(link_ids, days, counts, firsts, lasts) AS b (link_id, day, visits, first_at, last_at)
        WHERE b.link_id >= recent_ids
          AND b.link_id NOT IN (SELECT unnest(found_ids))
        ON CONFLICT (link_id, day) DO UPDATE
        SET visits = u.visits + excluded.visits,
            first_at = least(u.first_at, excluded.first_at),
            last_at = greatest(u.last_at, excluded.last_at);
        SELECT sum(b.visits) INTO left_out
        FROM unnest(link_ids, counts) AS b (link_id, visits)
        WHERE b.link_id < recent_ids
          AND b.link_id NOT IN (SELECT unnest(found_ids));
        IF left_out > 0 THEN
            RAISE LOG 'snowlink: % visits of links that no longer exist are not written', left_out;
        END IF;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlinks_flush_visits() FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlinks_flush_visits() IS 'internal: writes the visits this process counted or gathered';

-- The visits of many links at once, for a dashboard: a row for each code of `codes` whose link
-- (of a domain; NULL: the default domain) the caller sees, as shortlink_stats() gives it. On Citus
-- one query, which each shard answers for its own links, beside which their visits are.
CREATE FUNCTION shortlinks_stats(codes text[], domain text DEFAULT NULL)
RETURNS TABLE (code text, visits bigint, first_visit_at timestamptz, last_visit_at timestamptz)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN QUERY
    SELECT s.code, s.visits + coalesce(sum(v.visits), 0)::bigint,
           least(s.first_visit_at, min(v.first_at)), greatest(s.last_visit_at, max(v.last_at))
    FROM @extschema@.shortlinks AS s
    LEFT JOIN @extschema@.shortlink_visits AS v ON v.code = s.code AND v.link_id = s.id
    WHERE s.code = ANY (shortlinks_stats.codes)
      AND s.domain IS NOT DISTINCT FROM snowlink_internal._shortlink_domain(shortlinks_stats.domain)
    GROUP BY s.code, s.id, s.visits, s.first_visit_at, s.last_visit_at
    ORDER BY s.code;
END
$$;
REVOKE ALL ON FUNCTION shortlinks_stats(text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_stats(text[], text) TO snowlink_user;
COMMENT ON FUNCTION shortlinks_stats(text[], text) IS
    'visits of many short links at once, with the first and last visit time: a row per code the caller sees';
