-- Managing links: disabling, enabling, deleting and purging them. Each runs as its caller, and
-- so reaches only the links the caller may change (owners.sql).

-- Every function here that takes a code takes the link's domain too: NULL, the default, is the
-- default domain. They are not STRICT for that reason, and give NULL for a NULL code, as a STRICT
-- function would.

-- Stops a link from resolving (or, with disabled => false, lets it resolve again). False when the
-- code is unknown, or not the caller's.
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

-- Bound when it is created, as the SQL standard's function bodies are: nothing made later can take
-- the place of shortlink_disable().
CREATE FUNCTION shortlink_enable(code text, domain text DEFAULT NULL) RETURNS boolean
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    SELECT @extschema@.shortlink_disable(code, false, domain);
END;
REVOKE ALL ON FUNCTION shortlink_enable(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_enable(text, text) TO snowlink_user;
COMMENT ON FUNCTION shortlink_enable(text, text) IS
    'lets a disabled short link resolve again; false when the code is unknown';

-- Whether a link can never resolve again (src/shortlinks/link_state.rs).
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) IS
    'internal: whether a link with these columns can never resolve again after the given time';

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

-- Deletes the caller's links that can never resolve again (expired, or every visit used), with
-- their visit rows, and returns how many. A role in snowlink_admin purges every owner's.
CREATE FUNCTION shortlinks_purge_expired() RETURNS bigint
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
REVOKE ALL ON FUNCTION shortlinks_purge_expired() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_purge_expired() TO snowlink_user;
COMMENT ON FUNCTION shortlinks_purge_expired() IS
    'deletes the caller''s expired and used-up short links with their visit rows, and returns how many';

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
