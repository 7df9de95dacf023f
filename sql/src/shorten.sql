-- Making a short link: shorten(), and what it needs to generate codes.

-- The URL as shorten() stores it (src/shortlinks/urls.rs), for applications that check a URL
-- before they shorten it.
COMMENT ON FUNCTION shortlink_normalize_url(text) IS
    'URL as shorten() stores it, or an error saying why shorten() refuses it';

-- The checks of shorten()'s arguments that need no table (src/shortlinks/mod.rs).
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) IS
    'internal: the URL as shorten() stores it, once the URL, the custom code and the redirect status pass';

-- A link's domain in its normal form (src/shortlinks/domains.rs).
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_domain(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_domain(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_domain(text) IS
    'internal: a link''s domain as stored: lower-case ASCII (IDNA), with its port if any';

-- A link's title and tags in their normal form (src/shortlinks/labels.rs).
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_title(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_title(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_title(text) IS
    'internal: a link''s title as stored: trimmed, NULL when empty';
COMMENT ON FUNCTION snowlink_internal._shortlink_tags(text[]) IS
    'internal: a link''s tags as stored: trimmed, lower-cased, sorted, once each';

-- Why a custom code is refused because shortlink_reserved_codes lists it, or NULL
-- (src/shortlinks/reserved.rs): for shorten(), the import and the policies of owners.sql.
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) IS
    'internal: why shortlink_reserved_codes refuses a custom code, or NULL';

-- Generated codes (src/shortlinks/codes.rs): a keyed permutation of this server's share of
-- shortlink_code_seq. What _shortlink_generated_code() does, one step at a time.
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_keyed_code(bigint, bytea) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_keyed_code(bigint, bytea) IS 'internal: generated code of a counter value';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_server_counter(bigint) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_server_counter(bigint) IS 'internal: counter value of this server''s n-th generated code';

-- The key is made on first use, not here: a restore then loads the dumped key instead of meeting
-- a second one, and codes made after the restore never repeat codes made before. Called by
-- _shortlink_generated_code() as the extension's owner with the caller's search_path, so it names
-- every object, types included, with its schema.
CREATE FUNCTION snowlink_internal._shortlink_key() RETURNS bytea
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
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_key() FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_key() IS 'internal: the code key, made on first use';

-- A new generated code (src/shortlinks/mod.rs): the ID in base 62, or a keyed permutation of this
-- server's share of shortlink_code_seq (snowlink.code_style). Calling it directly only uses up a
-- code.
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_generated_code(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_generated_code(bigint) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_generated_code(bigint) IS
    'internal: the code of a new link with this ID, in the style snowlink.code_style sets';

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

-- Whether Citus manages the links (src/shortlinks/link_lookup.rs).
REVOKE ALL ON FUNCTION snowlink_internal._shortlinks_distributed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlinks_distributed() TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlinks_distributed() IS 'internal: whether Citus manages the links';

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
