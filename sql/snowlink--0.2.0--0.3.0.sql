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
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_checked_url(text, text, int) IS
    'internal: the URL as shorten() stores it, once the URL, the custom code and the redirect status pass';
CREATE FUNCTION snowlink_internal._shortlink_keyed_codes() RETURNS boolean
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', '_shortlink_keyed_codes_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_keyed_codes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_keyed_codes() TO snowlink_user;
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
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) TO snowlink_user;
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
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_reserved_refusal(text) IS
    'internal: why shortlink_reserved_codes refuses a custom code, or NULL';

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

-- Owners (owners.sql): every link has one, row-level security lets a role see and change only its
-- own, and the functions that manage links run as their caller.
CREATE FUNCTION snowlink_internal._snowflake_issued_here(id bigint) RETURNS boolean
LANGUAGE c STRICT VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', '_snowflake_issued_here_wrapper';
COMMENT ON FUNCTION snowlink_internal._snowflake_issued_here(bigint) IS
    'internal: whether no backend but this one can ever issue the ID';
CREATE FUNCTION snowlink_internal._shortlink_owner() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT CASE
               WHEN pg_catalog.length(pg_catalog.current_setting('snowlink.owner', true)) OPERATOR(pg_catalog.>) 0
               THEN pg_catalog.current_setting('snowlink.owner', true)
               ELSE CURRENT_USER::text
           END;
END;
COMMENT ON FUNCTION snowlink_internal._shortlink_owner() IS
    'internal: the owner of the current request: snowlink.owner, or else the current role';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'snowlink_admin') THEN
        CREATE ROLE snowlink_admin NOLOGIN IN ROLE snowlink_user;
    END IF;
END
$$;

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

-- Whether a link's code, URL, redirect status, title and tags are as shorten() would store them
-- (src/shortlinks/): what the policies below ask of every row a role writes.
CREATE FUNCTION snowlink_internal._shortlink_is_well_formed(code text, url text, redirect_status int,
                                                            title text, tags text[])
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT snowlink_internal._shortlink_checked_url(url, code, redirect_status) OPERATOR(pg_catalog.=) url
       AND (title IS NULL OR snowlink_internal._shortlink_title(title) OPERATOR(pg_catalog.=) title)
       AND snowlink_internal._shortlink_tags(tags) OPERATOR(pg_catalog.=) tags;
END;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_well_formed(text, text, int, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_is_well_formed(text, text, int, text, text[]) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_well_formed(text, text, int, text, text[]) IS
    'internal: whether a link''s code, URL, redirect status, title and tags are as shorten() stores them';

-- Whether the caller sees the link of an ID: the visit rows of shortlink_visits are seen with
-- their link. A function rather than a subquery in the policy, which Citus refuses.
CREATE FUNCTION snowlink_internal._shortlink_is_visible(link_id bigint) RETURNS boolean
LANGUAGE sql STABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT EXISTS (SELECT FROM @extschema@.shortlinks AS s WHERE s.id OPERATOR(pg_catalog.=) link_id);
END;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_visible(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_is_visible(bigint) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_visible(bigint) IS
    'internal: whether the caller sees the link of an ID';

-- Deletes the visit rows of links that no longer exist, for the functions below: they delete the
-- links as their caller, who can write no visit row. Rows of a link that still exists stay, so a
-- direct call changes nothing.
CREATE FUNCTION snowlink_internal._shortlinks_forget_visits(link_ids bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone bigint[];
BEGIN
    -- Two queries rather than a join, which Citus refuses between tables distributed by other
    -- columns; the delete goes by the links' IDs, to the shards of their visits.
    gone := ARRAY(SELECT unnest(_shortlinks_forget_visits.link_ids)
                  EXCEPT
                  SELECT s.id FROM @extschema@.shortlinks AS s
                  WHERE s.id = ANY (_shortlinks_forget_visits.link_ids));
    DELETE FROM @extschema@.shortlink_visits AS v WHERE v.link_id = ANY (gone);
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlinks_forget_visits(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlinks_forget_visits(bigint[]) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlinks_forget_visits(bigint[]) IS
    'internal: deletes the visit rows of links that no longer exist';

-- Deletes a link and its visit rows; false when the code is unknown, or not the caller's. The
-- code resolves to nothing from the commit on. A custom code can then be made again; a generated
-- code never comes back (the counter and the IDs only go forward).
CREATE FUNCTION shortlink_delete(code text) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT
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
    PERFORM snowlink_internal._shortlinks_forget_visits(ARRAY[deleted_id]);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION shortlink_delete(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_delete(text) TO snowlink_user;
COMMENT ON FUNCTION shortlink_delete(text) IS
    'deletes a short link and its visits; false when the code is unknown or not the caller''s';

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
LANGUAGE plpgsql VOLATILE
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
                PERFORM snowlink_internal._shortlink_note_url_code(target, NULL);
            END;
            bucket_last_code := NULL;
        END LOOP;
    END IF;

    -- Generated codes never repeat one another; the loop goes round again only when a custom code
    -- already took the one generated, or it is reserved.
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
    IF locked AND notes_last_code THEN
        PERFORM snowlink_internal._shortlink_note_url_code(target, link.code);
    END IF;
    RETURN link;
END
$$;
REVOKE ALL ON FUNCTION shorten(text, text, timestamptz, bigint, int, boolean, timestamptz, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shorten(text, text, timestamptz, bigint, int, boolean, timestamptz, text, text[]) TO snowlink_user;
COMMENT ON FUNCTION shorten(text, text, timestamptz, bigint, integer, boolean, timestamptz, text, text[]) IS
    'short link for a URL: a new one, or the live link with the same URL and options';

-- The import runs as its caller, who makes the links.
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_import_url(text, text) TO snowlink_user;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_import_refusal(text, text) TO snowlink_user;
CREATE OR REPLACE FUNCTION snowlink_internal._shortlinks_import(codes text[], urls text[], created timestamptz[])
RETURNS TABLE (code text, url text, error text)
LANGUAGE plpgsql VOLATILE
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
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    purged bigint[];
BEGIN
    WITH gone AS (
        DELETE FROM @extschema@.shortlinks AS s
        WHERE snowlink_internal._shortlink_is_spent(s.expires_at, s.max_visits, s.visits, now())
        RETURNING s.id
    )
    SELECT coalesce(array_agg(gone.id), '{}') INTO purged FROM gone;
    PERFORM snowlink_internal._shortlinks_forget_visits(purged);
    RETURN cardinality(purged);
END
$$;
COMMENT ON FUNCTION shortlinks_purge_expired() IS
    'deletes the caller''s expired and used-up short links with their visit rows, and returns how many';

-- The functions that manage links run as their caller now, under the policies of owners.sql.
CREATE OR REPLACE FUNCTION shortlink_disable(code text, disabled boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.shortlinks AS s SET disabled = shortlink_disable.disabled
    WHERE s.code = shortlink_disable.code;
    RETURN FOUND;
END
$$;

CREATE OR REPLACE FUNCTION shortlink_stats(
    code text,
    OUT visits bigint,
    OUT first_visit_at timestamptz,
    OUT last_visit_at timestamptz
)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link record;
BEGIN
    -- Two queries by key rather than a join: on Citus each goes to one shard.
    SELECT s.id, s.visits, s.first_visit_at, s.last_visit_at INTO link
    FROM @extschema@.shortlinks AS s
    WHERE s.code = shortlink_stats.code;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT link.visits + coalesce(sum(v.visits), 0),
           least(link.first_visit_at, min(v.first_at)),
           greatest(link.last_visit_at, max(v.last_at))
    INTO visits, first_visit_at, last_visit_at
    FROM @extschema@.shortlink_visits AS v
    WHERE v.link_id = link.id;
END
$$;

CREATE OR REPLACE FUNCTION shortlink_daily_visits(code text, from_day date DEFAULT NULL, to_day date DEFAULT NULL)
RETURNS TABLE (day date, visits bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
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
    WHERE s.code = shortlink_daily_visits.code;
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
      ON v.link_id = visited_link AND v.day = first_day + d.offset_days
    ORDER BY d.offset_days;
END
$$;

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
    clear text[] DEFAULT '{}'
) RETURNS shortlinks
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cleared text[] := coalesce(shortlink_update.clear, '{}');
    refused text;
    link @extschema@.shortlinks;
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
    SELECT * INTO link FROM @extschema@.shortlinks AS s WHERE s.code = shortlink_update.code FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
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
    RETURN link;
END
$$;
REVOKE ALL ON FUNCTION shortlink_update(text, text, text, text[], timestamptz, bigint, int, timestamptz, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_update(text, text, text, text[], timestamptz, bigint, int, timestamptz, text[]) TO snowlink_user;
COMMENT ON FUNCTION shortlink_update(text, text, text, text[], timestamptz, bigint, integer, timestamptz, text[]) IS
    'changes the given columns of a short link (clear: those to set to NULL); NULL when the code is unknown or not the caller''s';

-- shorten() normalizes the URL through _shortlink_checked_url().
DROP FUNCTION snowlink_internal.shortlink_normalize_url(text);

-- The tables, last: ADD COLUMN, CREATE INDEX and the row-level security of shortlinks lock it until
-- the update commits, and the resolve() calls of the moment wait for that (those of links with
-- max_visits give up after a second, with 55P03). Every function above is made before that lock.
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

-- What a role in snowlink_user may do with the tables themselves; the policies pick the rows.
-- Neither the owner, the code of an existing link nor its counted visits can be changed. (INSERT
-- is granted on every column: Citus sends the shards every column, the defaults filled in; the
-- policies hold a new row's owner and visits to what they must be.)
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
-- the column's default), its code is not reserved, and it has no visits yet. A code reserved
-- later stays with the link that has it.
CREATE POLICY well_formed_new_links ON shortlinks AS RESTRICTIVE FOR INSERT
    WITH CHECK (snowlink_internal._snowflake_issued_here(id)
                AND snowlink_internal._shortlink_reserved_refusal(code) IS NULL
                AND visits OPERATOR(pg_catalog.=) 0 AND first_visit_at IS NULL AND last_visit_at IS NULL
                AND snowlink_internal._shortlink_is_well_formed(code, url, redirect_status, title, tags));
CREATE POLICY well_formed_links ON shortlinks AS RESTRICTIVE FOR UPDATE
    USING (true)
    WITH CHECK (snowlink_internal._shortlink_is_well_formed(code, url, redirect_status, title, tags));

-- Visit rows are written by the visit writer and the extension's functions only.
GRANT SELECT ON shortlink_visits TO snowlink_user;
ALTER TABLE shortlink_visits ENABLE ROW LEVEL SECURITY;
CREATE POLICY visits_of_visible_links ON shortlink_visits FOR SELECT
    USING (snowlink_internal._shortlink_is_visible(link_id));
