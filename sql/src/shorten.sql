-- Making a short link: shorten(), and what it needs to generate codes.

-- The public function that shorten() calls, declared again where no other role can add a function
-- (internal_schema.sql): the same C function, with the same properties.
CREATE FUNCTION snowlink_internal.base62_encode(value bigint) RETURNS text
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'base62_encode_wrapper';
COMMENT ON FUNCTION snowlink_internal.base62_encode(bigint) IS 'internal: base62_encode(), for the extension''s SQL';

-- The URL as shorten() stores it (src/shortlinks/urls.rs), for applications that check a URL
-- before they shorten it.
COMMENT ON FUNCTION shortlink_normalize_url(text) IS
    'URL as shorten() stores it, or an error saying why shorten() refuses it';

-- The checks of shorten()'s arguments that need no table (src/shortlinks/mod.rs), and the code
-- style (snowlink.code_style).
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) IS
    'internal: the URL as shorten() stores it, once the URL, the custom code and the redirect status pass';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_keyed_codes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_keyed_codes() TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_keyed_codes() IS
    'internal: whether shorten() generates keyed codes (snowlink.code_style)';

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

-- Why a custom code is refused because shortlink_reserved_codes lists it, or NULL: for shorten(),
-- the import and the policies of owners.sql. PL/pgSQL, whose query is planned once per session: an
-- SQL function with a query is never inlined, and parsed and planned again at every call from
-- PL/pgSQL or a policy, which cost shorten() a fifth of its rate as an application role.
CREATE FUNCTION snowlink_internal._shortlink_reserved_refusal(code text) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM @extschema@.shortlink_reserved_codes AS r
               WHERE r.code = lower(_shortlink_reserved_refusal.code)) THEN
        RETURN format('custom code "%s" is reserved', _shortlink_reserved_refusal.code);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) IS
    'internal: why shortlink_reserved_codes refuses a custom code, or NULL';

-- Generated codes (src/shortlinks/codes.rs): a keyed permutation of this server's share of
-- shortlink_code_seq.
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_keyed_code(bigint, bytea) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_keyed_code(bigint, bytea) IS 'internal: generated code of a counter value';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_server_counter(bigint) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_server_counter(bigint) IS 'internal: counter value of this server''s n-th generated code';

-- The key is made on first use, not here: a restore then loads the dumped key instead of meeting
-- a second one, and codes made after the restore never repeat codes made before.
CREATE FUNCTION snowlink_internal._shortlink_key() RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    code_key bytea;
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

-- A new generated code: the next value of this server's share of the counter, permuted with the
-- key. shorten() runs as its caller, who can neither read the key nor move the counter; calling
-- this directly only uses up a code.
CREATE FUNCTION snowlink_internal._shortlink_generated_code() RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN snowlink_internal._shortlink_keyed_code(
        snowlink_internal._shortlink_server_counter(nextval('@extschema@.shortlink_code_seq')),
        snowlink_internal._shortlink_key());
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_generated_code() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_generated_code() TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_generated_code() IS 'internal: a new generated code';

-- The lock on which shorten() calls for one URL wait for each other (shortlink_url_locks), taken
-- until the end of the transaction; returns the code of the last link made under it, noted on
-- Citus only. The next function notes it (NULL forgets it). Whoever calls them directly can only
-- make other calls for URLs of the same bucket wait, as an open transaction in shorten() does, or
-- make such a call look for a link that it does not find.
CREATE FUNCTION snowlink_internal._shortlink_lock_url(url text) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    last_code text;
BEGIN
    UPDATE @extschema@.shortlink_url_locks AS l
    SET updates = l.updates + 1
    WHERE l.bucket = hashtext(_shortlink_lock_url.url) & 65535
    RETURNING l.last_code INTO last_code;
    RETURN last_code;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_lock_url(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_lock_url(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_lock_url(text) IS
    'internal: waits for and takes the lock of shorten() calls for a URL; returns the last code noted';

CREATE FUNCTION snowlink_internal._shortlink_note_url_code(url text, code text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.shortlink_url_locks AS l
    SET last_code = _shortlink_note_url_code.code
    WHERE l.bucket = hashtext(_shortlink_note_url_code.url) & 65535;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_note_url_code(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_note_url_code(text, text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_note_url_code(text, text) IS
    'internal: notes the code of the link made under a URL''s lock (NULL: forgets it)';

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
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- The URL, the code and the status, by the rules of src/shortlinks/.
    target text := snowlink_internal._shortlink_checked_url(shorten.url, shorten.code,
                                                            shorten.redirect_status);
    link_title text := snowlink_internal._shortlink_title(shorten.title);
    link_tags text[] := coalesce(snowlink_internal._shortlink_tags(shorten.tags), '{}');
    link_domain text := snowlink_internal._shortlink_domain(shorten.domain);
    refusal text;
    link @extschema@.shortlinks;
    new_id bigint;
    new_code text;
    locked boolean := false;
    bucket_last_code text;
    -- Only on Citus can a lock be free before the link made under it shows (see below); elsewhere
    -- the lock's row does not note the link, which would cost each new link a second update.
    notes_last_code boolean := current_setting('citus.version', true) IS NOT NULL;
BEGIN
    IF shorten.max_visits <= 0 THEN
        RAISE EXCEPTION 'max_visits must be positive, not %', shorten.max_visits
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF shorten.expires_at <= now() THEN
        RAISE EXCEPTION 'expires_at % is not in the future', shorten.expires_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF shorten.valid_from >= shorten.expires_at THEN
        RAISE EXCEPTION 'valid_from % is not before expires_at %', shorten.valid_from, shorten.expires_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    refusal := snowlink_internal._shortlink_reserved_refusal(shorten.code);
    IF refusal IS NOT NULL THEN
        RAISE EXCEPTION '%', refusal
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The table shortlink_reserved_codes lists the reserved codes.';
    END IF;

    -- The same URL with the same options gets its live link back. A link with max_visits is
    -- never shared: its visits belong to whoever asked for it.
    IF NOT coalesce(shorten.force_new, false) AND shorten.max_visits IS NULL THEN
        -- Concurrent shortens of one URL wait for each other here, and so agree on one link. Each
        -- sees only the links of its own owner (owners.sql).
        bucket_last_code := snowlink_internal._shortlink_lock_url(target);
        locked := true;
        LOOP
            SELECT * INTO link
            FROM @extschema@.shortlinks AS s
            WHERE s.url = target
              AND s.domain IS NOT DISTINCT FROM link_domain
              AND (shorten.code IS NULL OR s.code = shorten.code)
              AND s.redirect_status = shorten.redirect_status
              AND s.expires_at IS NOT DISTINCT FROM shorten.expires_at
              AND s.valid_from IS NOT DISTINCT FROM shorten.valid_from
              AND s.title IS NOT DISTINCT FROM link_title
              AND s.tags = link_tags
              AND s.max_visits IS NULL
              AND NOT s.disabled
            ORDER BY s.id
            LIMIT 1;
            IF FOUND THEN
                RETURN link;
            END IF;
            -- On Citus, the link that the lock's previous holder made can be on another node, whose
            -- part of that commit may not show yet when the lock is free. Inserting its code waits
            -- for that commit and finds the code taken; then look again. When the link is gone
            -- (purged), or of another domain, the insert is undone.
            EXIT WHEN bucket_last_code IS NULL
                   OR EXISTS (SELECT FROM @extschema@.shortlinks AS s
                              WHERE s.code = bucket_last_code AND s.domain IS NOT DISTINCT FROM link_domain);
            BEGIN
                INSERT INTO @extschema@.shortlinks (code, url, domain)
                VALUES (bucket_last_code, target, link_domain)
                ON CONFLICT ON CONSTRAINT shortlinks_code_key DO NOTHING;
                IF FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'no_data_found';
                END IF;
            EXCEPTION WHEN no_data_found THEN
                PERFORM snowlink_internal._shortlink_note_url_code(target, NULL);
            END;
            bucket_last_code := NULL;
        END LOOP;
    END IF;

    -- Generated codes never repeat one another, in any domain; the loop goes round again only when
    -- a custom code of the domain already took the one generated, or it is reserved.
    LOOP
        new_id := snowlink_internal.snowflake_next();
        new_code := CASE
            WHEN shorten.code IS NOT NULL THEN shorten.code
            WHEN snowlink_internal._shortlink_keyed_codes() THEN snowlink_internal._shortlink_generated_code()
            ELSE snowlink_internal.base62_encode(new_id)
        END;
        -- A generated code can spell a reserved word ('SiteMap'), as rarely as that is.
        CONTINUE WHEN shorten.code IS NULL
                  AND snowlink_internal._shortlink_reserved_refusal(new_code) IS NOT NULL;
        INSERT INTO @extschema@.shortlinks
            (id, code, url, valid_from, expires_at, max_visits, redirect_status, title, tags, domain)
        VALUES (new_id, new_code, target, shorten.valid_from, shorten.expires_at,
                shorten.max_visits, shorten.redirect_status, link_title, link_tags, link_domain)
        ON CONFLICT ON CONSTRAINT shortlinks_code_key DO NOTHING
        RETURNING * INTO link;
        EXIT WHEN FOUND;
        IF shorten.code IS NOT NULL THEN
            RAISE EXCEPTION 'custom code "%" is already taken%', shorten.code,
                            coalesce(' on ' || link_domain, '')
                USING ERRCODE = 'unique_violation';
        END IF;
    END LOOP;
    IF locked AND notes_last_code THEN
        PERFORM snowlink_internal._shortlink_note_url_code(target, link.code);
    END IF;
    RETURN link;
END
$$;
REVOKE ALL ON FUNCTION shorten(text, text, timestamptz, bigint, int, boolean, timestamptz, text, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shorten(text, text, timestamptz, bigint, int, boolean, timestamptz, text, text[], text) TO snowlink_user;
COMMENT ON FUNCTION shorten(text, text, timestamptz, bigint, integer, boolean, timestamptz, text, text[], text) IS
    'short link for a URL (in a domain; NULL: the default): a new one, or the live link with the same URL and options';
