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

-- On Citus, the link that the URL lock's previous holder made (its code noted in the lock's row)
-- can be on another node, whose part of that commit may not show yet when the lock is free.
-- Inserting its code waits for that commit and finds the code taken: then shorten() looks for the
-- link again (true). When the code shows already, or the link is gone (purged), or of another
-- domain, the insert is undone and the note forgotten: there is nothing to wait for (false).
CREATE FUNCTION snowlink_internal._shortlink_await_code(code text, url text, domain text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM @extschema@.shortlinks AS s
               WHERE s.code = _shortlink_await_code.code
                 AND s.domain IS NOT DISTINCT FROM _shortlink_await_code.domain) THEN
        RETURN false;
    END IF;
    BEGIN
        INSERT INTO @extschema@.shortlinks (code, url, domain)
        VALUES (_shortlink_await_code.code, _shortlink_await_code.url, _shortlink_await_code.domain)
        ON CONFLICT ON CONSTRAINT shortlinks_code_key DO NOTHING;
        IF FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'no_data_found';
        END IF;
        RETURN true;
    EXCEPTION WHEN no_data_found THEN
        PERFORM snowlink_internal._shortlink_note_url_code(_shortlink_await_code.url, NULL);
    END;
    RETURN false;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_await_code(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_await_code(text, text, text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_await_code(text, text, text) IS
    'internal: waits on Citus for the link noted in a URL''s lock to show; whether to look for it again';

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
