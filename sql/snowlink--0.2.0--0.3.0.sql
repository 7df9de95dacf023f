-- snowlink 0.2.0 to 0.3.0, run by ALTER EXTENSION snowlink UPDATE in one transaction.
--
-- Every change to the extension's SQL objects in 0.3.0 goes into this script as well as into the
-- install script, so that an updated database cannot be told apart from a fresh install:
-- scripts/upgrade_test.sh compares the two object by object. Change objects in place (CREATE OR
-- REPLACE, ALTER) rather than dropping them: a drop loses grants and the application objects that
-- depend on them, and breaks the plans of sessions that are calling them at that moment.
\echo Use "ALTER EXTENSION snowlink UPDATE TO '0.3.0'" to load this file. \quit

-- Each rule of a link is defined once, in Rust (src/shortlinks/), and the SQL calls it: the shape
-- of a custom code and the endpoints of snowlink-http (code_rule.rs), the redirect statuses
-- (redirect_status.rs), whether a link resolves or can never resolve again (link_state.rs), and
-- the code style.
CREATE FUNCTION snowlink_internal._shortlink_checked_url(url text, code text, redirect_status int)
RETURNS text
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_checked_url_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) IS
    'internal: the URL as shorten() stores it, once the URL, the custom code and the redirect status pass';
CREATE FUNCTION snowlink_internal._shortlink_keyed_codes() RETURNS boolean
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_keyed_codes_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_keyed_codes() FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_keyed_codes() IS
    'internal: whether shorten() generates keyed codes (snowlink.code_style)';
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
COMMENT ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) IS
    'internal: whether a link with these columns can never resolve again after the given time';

-- Why a custom code is refused because shortlink_reserved_codes lists it, or NULL: for shorten()
-- and the import. Bound when it is created.
CREATE FUNCTION snowlink_internal._shortlink_reserved_refusal(code text) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT pg_catalog.format('custom code "%s" is reserved', _shortlink_reserved_refusal.code)
    WHERE EXISTS (SELECT FROM @extschema@.shortlink_reserved_codes AS r
                  WHERE r.code OPERATOR(pg_catalog.=) pg_catalog.lower(_shortlink_reserved_refusal.code));
END;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) IS
    'internal: why shortlink_reserved_codes refuses a custom code, or NULL';

-- The endpoints of snowlink-http are refused by code_rule.rs now, and no longer listed.
DELETE FROM @extschema@.shortlink_reserved_codes WHERE builtin AND code IN ('healthz', 'ids', 'links');

-- Titles and tags (src/shortlinks/labels.rs). The columns come last, as ADD COLUMN puts them.
CREATE FUNCTION snowlink_internal._shortlink_title(title text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_title_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_title(text) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_title(text) IS
    'internal: a link''s title as stored: trimmed, NULL when empty';
CREATE FUNCTION snowlink_internal._shortlink_tags(tags text[]) RETURNS text[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_tags_wrapper';
COMMENT ON FUNCTION snowlink_internal._shortlink_tags(text[]) IS
    'internal: a link''s tags as stored: trimmed, lower-cased, sorted, once each';
ALTER TABLE @extschema@.shortlinks ADD COLUMN title text, ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
CREATE INDEX shortlinks_tags ON @extschema@.shortlinks USING gin (tags);

-- The links with a tag, newest first, through the GIN index on tags. It runs as its caller, who
-- reads only the links the caller may read. Its body is not bound at creation, so that it does not
-- hold every column of shortlinks against an ALTER TABLE; its search_path is pinned instead.
CREATE FUNCTION shortlinks_tagged(tag text) RETURNS SETOF shortlinks
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT *
    FROM @extschema@.shortlinks AS s
    WHERE s.tags OPERATOR(pg_catalog.@>) snowlink_internal._shortlink_tags(ARRAY[tag])
    ORDER BY s.id DESC;
$$;
REVOKE ALL ON FUNCTION shortlinks_tagged(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_tagged(text) TO snowlink_user;
COMMENT ON FUNCTION shortlinks_tagged(text) IS
    'short links with a tag (compared as stored: trimmed, lower case), newest first';

-- Deletes a link and its visit rows; false when the code is unknown. The code resolves to nothing
-- from the commit on. A custom code can then be made again; a generated code never comes back
-- (the counter and the IDs only go forward).
CREATE FUNCTION shortlink_delete(code text) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    deleted_id bigint;
BEGIN
    DELETE FROM @extschema@.shortlinks AS s
    WHERE s.code = shortlink_delete.code
    RETURNING s.id INTO deleted_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- By the link's ID: on Citus, the shard of its visits.
    DELETE FROM @extschema@.shortlink_visits AS v WHERE v.link_id = deleted_id;
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION shortlink_delete(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_delete(text) TO snowlink_user;
COMMENT ON FUNCTION shortlink_delete(text) IS
    'deletes a short link and its visits; false when the code is unknown';

-- The functions that now call the rules.
-- shorten() takes a title and tags: a new signature, so the old one goes first (an application's
-- SQL-standard function or view that calls it must be dropped before the update, and made again).
DROP FUNCTION @extschema@.shorten(text, text, timestamptz, bigint, int, boolean, timestamptz);
CREATE FUNCTION shorten(
    url text,
    code text DEFAULT NULL,
    expires_at timestamptz DEFAULT NULL,
    max_visits bigint DEFAULT NULL,
    redirect_status int DEFAULT 302,
    force_new boolean DEFAULT false,
    valid_from timestamptz DEFAULT NULL,
    title text DEFAULT NULL,
    tags text[] DEFAULT NULL
) RETURNS shortlinks
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- The URL, the code and the status, by the rules of src/shortlinks/.
    target text := snowlink_internal._shortlink_checked_url(shorten.url, shorten.code,
                                                            shorten.redirect_status);
    link_title text := snowlink_internal._shortlink_title(shorten.title);
    link_tags text[] := coalesce(snowlink_internal._shortlink_tags(shorten.tags), '{}');
    refusal text;
    link @extschema@.shortlinks;
    new_id bigint;
    new_code text;
    locked_bucket int;
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
        -- Concurrent shortens of one URL wait for each other here, and so agree on one link.
        locked_bucket := hashtext(target) & 65535;
        UPDATE @extschema@.shortlink_url_locks AS l
        SET updates = l.updates + 1
        WHERE l.bucket = locked_bucket
        RETURNING l.last_code INTO bucket_last_code;
        LOOP
            SELECT * INTO link
            FROM @extschema@.shortlinks AS s
            WHERE s.url = target
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
            -- (purged), the insert is undone.
            EXIT WHEN bucket_last_code IS NULL
                   OR EXISTS (SELECT FROM @extschema@.shortlinks AS s WHERE s.code = bucket_last_code);
            BEGIN
                INSERT INTO @extschema@.shortlinks (code, url) VALUES (bucket_last_code, target)
                ON CONFLICT ON CONSTRAINT shortlinks_code_key DO NOTHING;
                IF FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'no_data_found';
                END IF;
            EXCEPTION WHEN no_data_found THEN
                UPDATE @extschema@.shortlink_url_locks AS l SET last_code = NULL
                WHERE l.bucket = locked_bucket;
            END;
            bucket_last_code := NULL;
        END LOOP;
    END IF;

    -- Generated codes never repeat one another; the loop goes round again only when a custom code
    -- already took the one generated.
    LOOP
        new_id := snowlink_internal.snowflake_next();
        new_code := CASE
            WHEN shorten.code IS NOT NULL THEN shorten.code
            WHEN snowlink_internal._shortlink_keyed_codes() THEN snowlink_internal._shortlink_keyed_code(
                     snowlink_internal._shortlink_server_counter(nextval('@extschema@.shortlink_code_seq')),
                     snowlink_internal._shortlink_key())
            ELSE snowlink_internal.base62_encode(new_id)
        END;
        INSERT INTO @extschema@.shortlinks
            (id, code, url, valid_from, expires_at, max_visits, redirect_status, title, tags)
        VALUES (new_id, new_code, target, shorten.valid_from, shorten.expires_at,
                shorten.max_visits, shorten.redirect_status, link_title, link_tags)
        ON CONFLICT ON CONSTRAINT shortlinks_code_key DO NOTHING
        RETURNING * INTO link;
        EXIT WHEN FOUND;
        IF shorten.code IS NOT NULL THEN
            RAISE EXCEPTION 'custom code "%" is already taken', shorten.code
                USING ERRCODE = 'unique_violation';
        END IF;
    END LOOP;
    IF locked_bucket IS NOT NULL AND notes_last_code THEN
        UPDATE @extschema@.shortlink_url_locks AS l SET last_code = link.code
        WHERE l.bucket = locked_bucket;
    END IF;
    RETURN link;
END
$$;
REVOKE ALL ON FUNCTION shorten(text, text, timestamptz, bigint, int, boolean, timestamptz, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shorten(text, text, timestamptz, bigint, int, boolean, timestamptz, text, text[]) TO snowlink_user;
COMMENT ON FUNCTION shorten(text, text, timestamptz, bigint, integer, boolean, timestamptz, text, text[]) IS
    'short link for a URL: a new one, or the live link with the same URL and options';

CREATE OR REPLACE FUNCTION snowlink_internal._shortlinks_import(codes text[], urls text[], created timestamptz[])
RETURNS TABLE (code text, url text, error text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    WITH checked AS (
        SELECT g.code, g.url, g.created_at, g.n, t.target,
               CASE
                   WHEN t.target IS NULL THEN snowlink_internal._shortlink_import_refusal(g.code, g.url)
                   ELSE snowlink_internal._shortlink_reserved_refusal(g.code)
               END AS problem
        FROM unnest(_shortlinks_import.codes, _shortlinks_import.urls, _shortlinks_import.created)
             WITH ORDINALITY AS g (code, url, created_at, n)
        CROSS JOIN LATERAL (SELECT snowlink_internal._shortlink_import_url(g.code, g.url) AS target) AS t
    ),
    -- A code that comes twice is imported from its first row that passes the checks.
    judged AS (
        SELECT c.code, c.url, c.created_at, c.target,
               coalesce(c.problem,
                        CASE WHEN row_number() OVER (PARTITION BY c.code, c.problem IS NULL ORDER BY c.n) > 1
                             THEN 'code is taken' END) AS problem
        FROM checked AS c
    ),
    inserted AS (
        INSERT INTO @extschema@.shortlinks (code, url, created_at)
        SELECT j.code, j.target, coalesce(j.created_at, now())
        FROM judged AS j
        WHERE j.problem IS NULL
        ON CONFLICT ON CONSTRAINT shortlinks_code_key DO NOTHING
        RETURNING shortlinks.code
    )
    SELECT j.code, j.url, coalesce(j.problem, 'code is taken')
    FROM judged AS j
    WHERE j.problem IS NOT NULL
       OR NOT EXISTS (SELECT FROM inserted AS i WHERE i.code = j.code);
END
$$;

CREATE OR REPLACE FUNCTION snowlink_internal._shortlink_live(code text) RETURNS @extschema@.shortlinks
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link @extschema@.shortlinks;
BEGIN
    SELECT * INTO link
    FROM @extschema@.shortlinks AS s
    WHERE s.code = _shortlink_live.code
      AND snowlink_internal._shortlink_is_live(s.disabled, s.valid_from, s.expires_at, s.max_visits,
                                               s.visits, now());
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN link;
END
$$;

CREATE OR REPLACE FUNCTION snowlink_internal._shortlink_count_visit(code text, link_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = 1000
AS $$
DECLARE
    visited_code text := _shortlink_count_visit.code;
    visited_at timestamptz := clock_timestamp();
BEGIN
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
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    purged bigint;
BEGIN
    WITH gone AS (
        DELETE FROM @extschema@.shortlinks AS s
        WHERE snowlink_internal._shortlink_is_spent(s.expires_at, s.max_visits, s.visits, now())
        RETURNING s.id
    ), gone_visits AS (
        DELETE FROM @extschema@.shortlink_visits AS v USING gone WHERE v.link_id = gone.id
    )
    SELECT count(*) INTO purged FROM gone;
    RETURN purged;
END
$$;

-- shorten() normalizes the URL through _shortlink_checked_url().
DROP FUNCTION snowlink_internal.shortlink_normalize_url(text);
