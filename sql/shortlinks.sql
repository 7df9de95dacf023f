-- URL short links: the table, its bookkeeping, and the functions applications call.
--
-- Functions that touch the tables run as the extension's owner (SECURITY DEFINER) with
-- search_path pinned to pg_catalog, pg_temp, and name every object of the extension by schema, so
-- a caller's search_path cannot redirect them. The functions they call are those of
-- snowlink_internal (sql/internal_schema.sql), where no other role can add one that would make
-- the call ambiguous. Ordinary roles reach the tables only through them.
--
-- Those that query the tables with their arguments are PL/pgSQL, not SQL: on Citus (see
-- shortlinks_distribute()) only PL/pgSQL's queries can be sent to the shard that a code picks.

-- Defaults and CHECK constraints are bound when they are created: they name their operators and
-- functions with their schema, so that nothing in the extension's schema can be chosen instead.
CREATE TABLE shortlinks (
    id bigint PRIMARY KEY DEFAULT @extschema@.snowflake_next(),
    code text COLLATE "C" NOT NULL UNIQUE,
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    valid_from timestamptz,
    expires_at timestamptz,
    max_visits bigint CHECK (max_visits OPERATOR(pg_catalog.>) 0),
    redirect_status smallint NOT NULL DEFAULT 302
        CHECK (redirect_status OPERATOR(pg_catalog.=) ANY (ARRAY[301, 302, 307, 308])),
    disabled boolean NOT NULL DEFAULT false,
    -- Visits folded into the row: every visit of a link with max_visits, and for other links
    -- those that shortlinks_purge_expired() folded in. shortlink_stats() gives the total.
    visits bigint NOT NULL DEFAULT 0,
    first_visit_at timestamptz,
    last_visit_at timestamptz,
    CHECK (valid_from OPERATOR(pg_catalog.<) expires_at)
) WITH (fillfactor = 90);

-- Finds the live link of a URL without a b-tree on the URL, whose entries are limited to 2.7 kB.
CREATE INDEX shortlinks_url_hash ON shortlinks USING hash (url);
CREATE INDEX shortlinks_expires_at ON shortlinks (expires_at) WHERE expires_at IS NOT NULL;

-- Visits of links without max_visits, one row per link and day (UTC): rows grow with links and
-- days, never with backends. The visit writer (or a backend that writes its own visits) writes
-- batches, each in the order of link and day, so that two batches never wait for each other in a
-- cycle. Half of each page stays free, so that a batch, which updates many rows of a page at
-- once, writes the new versions beside the old (HOT) instead of into new pages and new index
-- entries. (The day comes last because an update from 0.1.0 adds it to the table that had a
-- backend's pid there.)
CREATE TABLE shortlink_visits (
    link_id bigint NOT NULL,
    visits bigint NOT NULL,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    day date NOT NULL,
    PRIMARY KEY (link_id, day)
) WITH (fillfactor = 50);

-- The dense counter behind generated codes, and the key that permutes it.
CREATE SEQUENCE shortlink_code_seq AS bigint MINVALUE 0 START 0;
CREATE TABLE shortlink_key (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    key bytea NOT NULL CHECK (pg_catalog.length(key) OPERATOR(pg_catalog.=) 16)
);

-- shorten() calls for one URL (and options) wait for each other on one of these rows, so that they
-- agree on one link. No role but the extension's owner can lock a row here, unlike an advisory
-- lock, which any role can take. And a row's update, unlike a lock, makes a REPEATABLE READ or
-- SERIALIZABLE caller whose snapshot cannot see the link the other call made fail with 40001,
-- instead of making a second link. URLs share the rows by hash: two URLs that share one only wait
-- for each other.
CREATE TABLE shortlink_url_locks (
    bucket int PRIMARY KEY,
    updates bigint NOT NULL DEFAULT 0,
    -- On Citus, the code of the last link made under this lock (see shorten()).
    last_code text COLLATE "C"
);
INSERT INTO shortlink_url_locks (bucket) SELECT pg_catalog.generate_series(0, 65535);

-- Custom codes that would shadow an application's own paths, or snowlink-http's (healthz, ids,
-- links). Compared in lower case.
CREATE TABLE shortlink_reserved_codes (
    code text COLLATE "C" PRIMARY KEY CHECK (code OPERATOR(pg_catalog.=) pg_catalog.lower(code)),
    builtin boolean NOT NULL DEFAULT false
);
INSERT INTO shortlink_reserved_codes (code, builtin)
SELECT reserved, true
FROM unnest(ARRAY['admin', 'api', 'app', 'assets', 'auth', 'dashboard', 'favicon', 'health',
                  'healthz', 'help', 'ids', 'links', 'login', 'logout', 'robots', 'rpc', 'settings',
                  'signin', 'signup', 'sitemap', 'static', 'stats', 'www']) AS reserved;

-- pg_dump keeps every link, visit, the counter and the key; of the reserved codes, those added.
SELECT pg_catalog.pg_extension_config_dump('shortlinks', '');
SELECT pg_catalog.pg_extension_config_dump('shortlink_visits', '');
SELECT pg_catalog.pg_extension_config_dump('shortlink_code_seq', '');
SELECT pg_catalog.pg_extension_config_dump('shortlink_key', '');
SELECT pg_catalog.pg_extension_config_dump('shortlink_reserved_codes', 'WHERE NOT builtin');

-- The public functions that shorten() calls, declared again where no other role can add a function
-- (sql/internal_schema.sql): the same C functions, with the same properties.
CREATE FUNCTION snowlink_internal.shortlink_normalize_url(url text) RETURNS text
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'shortlink_normalize_url_wrapper';
CREATE FUNCTION snowlink_internal.base62_encode(value bigint) RETURNS text
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'base62_encode_wrapper';

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

CREATE FUNCTION shorten(
    url text,
    code text DEFAULT NULL,
    expires_at timestamptz DEFAULT NULL,
    max_visits bigint DEFAULT NULL,
    redirect_status int DEFAULT 302,
    force_new boolean DEFAULT false,
    valid_from timestamptz DEFAULT NULL
) RETURNS shortlinks
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target text := snowlink_internal.shortlink_normalize_url(shorten.url);
    link @extschema@.shortlinks;
    new_id bigint;
    new_code text;
    locked_bucket int;
    bucket_last_code text;
    -- Only on Citus can a lock be free before the link made under it shows (see below); elsewhere
    -- the lock's row does not note the link, which would cost each new link a second update.
    notes_last_code boolean := current_setting('citus.version', true) IS NOT NULL;
BEGIN
    IF shorten.url IS NULL THEN
        RAISE EXCEPTION 'url must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF shorten.redirect_status IS NULL OR shorten.redirect_status NOT IN (301, 302, 307, 308) THEN
        RAISE EXCEPTION 'redirect_status must be 301, 302, 307 or 308, not %',
            coalesce(shorten.redirect_status::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
    IF shorten.code IS NOT NULL THEN
        -- The rule of is_custom_code() in src/shortlinks/codes.rs.
        IF shorten.code !~ '^[0-9A-Za-z_-]{1,64}$' THEN
            RAISE EXCEPTION 'custom code "%" is not 1 to 64 characters of 0-9, A-Z, a-z, _ and -',
                shorten.code
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF EXISTS (SELECT FROM @extschema@.shortlink_reserved_codes AS r
                   WHERE r.code = lower(shorten.code)) THEN
            RAISE EXCEPTION 'custom code "%" is reserved', shorten.code
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'The table shortlink_reserved_codes lists the reserved codes.';
        END IF;
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
            WHEN current_setting('snowlink.code_style') = 'snowflake' THEN snowlink_internal.base62_encode(new_id)
            ELSE snowlink_internal._shortlink_keyed_code(
                     snowlink_internal._shortlink_server_counter(nextval('@extschema@.shortlink_code_seq')),
                     snowlink_internal._shortlink_key())
        END;
        INSERT INTO @extschema@.shortlinks
            (id, code, url, valid_from, expires_at, max_visits, redirect_status)
        VALUES (new_id, new_code, target, shorten.valid_from, shorten.expires_at,
                shorten.max_visits, shorten.redirect_status)
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

-- Writes the visits this process counted or gathered into the rows of their links and days, in
-- that order. Visits of a link that is not there are left out, and logged: it was deleted or
-- purged. A link made in the last minute may be one that a transaction has not committed yet
-- (resolved in the transaction that made it): its visits are written.
CREATE FUNCTION snowlink_internal._shortlinks_flush_visits() RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link_ids bigint[];
    days date[];
    counts bigint[];
    firsts timestamptz[];
    lasts timestamptz[];
    live_ids bigint[];
    recent_ids constant bigint := snowlink_internal.snowflake_min(now() - interval '1 minute');
    left_out bigint;
BEGIN
    SELECT array_agg(t.link_id), array_agg(t.day), array_agg(t.visits), array_agg(t.first_at),
           array_agg(t.last_at)
    INTO link_ids, days, counts, firsts, lasts
    FROM snowlink_internal._shortlink_take_daily_visits() AS t;
    IF link_ids IS NULL THEN
        RETURN;
    END IF;
    -- One query for the links of the whole batch: on Citus, one round to the shards.
    live_ids := ARRAY(SELECT s.id FROM @extschema@.shortlinks AS s WHERE s.id = ANY (link_ids));
    INSERT INTO @extschema@.shortlink_visits AS v (link_id, day, visits, first_at, last_at)
    SELECT b.link_id, b.day, b.visits, b.first_at, b.last_at
    FROM unnest(link_ids, days, counts, firsts, lasts) AS b (link_id, day, visits, first_at, last_at)
    WHERE b.link_id IN (SELECT unnest(live_ids)) OR b.link_id >= recent_ids
    ORDER BY b.link_id, b.day
    ON CONFLICT (link_id, day) DO UPDATE
    SET visits = v.visits + excluded.visits,
        first_at = least(v.first_at, excluded.first_at),
        last_at = greatest(v.last_at, excluded.last_at);
    IF cardinality(live_ids) < cardinality(link_ids) THEN
        SELECT sum(b.visits) INTO left_out
        FROM unnest(link_ids, counts) AS b (link_id, visits)
        WHERE NOT (b.link_id IN (SELECT unnest(live_ids)) OR b.link_id >= recent_ids);
        IF left_out > 0 THEN
            RAISE LOG 'snowlink: % visits of links that no longer exist are not written', left_out;
        END IF;
    END IF;
END
$$;

-- The live link of a code, or NULL: for resolve() and shortlink_target() (src/shortlinks/
-- resolve.rs) where they cannot read the code index themselves, as for a table that Citus manages.
-- Live as LinkState::is_live() in src/shortlinks/link_lookup.rs has it. VOLATILE, so that it sees
-- a link made earlier in the same statement, as resolve(code) FROM shorten(url) needs.
CREATE FUNCTION snowlink_internal._shortlink_live(code text) RETURNS @extschema@.shortlinks
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link @extschema@.shortlinks;
BEGIN
    SELECT * INTO link
    FROM @extschema@.shortlinks AS s
    WHERE s.code = _shortlink_live.code
      AND NOT s.disabled
      AND (s.valid_from IS NULL OR s.valid_from <= now())
      AND (s.expires_at IS NULL OR s.expires_at > now())
      AND (s.max_visits IS NULL OR s.visits < s.max_visits);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN link;
END
$$;

-- Counts a visit of a link with max_visits, if it is live and has visits left; false when not.
-- The visit writer calls it, in a transaction of its own that commits before the link is served
-- (src/visits/limited.rs), so that no caller can have it served more often than it allows. The
-- row lock orders concurrent visits, so that the last one goes to one visitor only; one that
-- another transaction holds for long fails with 55P03 rather than holding up the writer. The code
-- picks the row, so that Citus sends the UPDATE to the link's shard; a code too long for the
-- writer to be handed is looked up by the link's ID.
CREATE FUNCTION snowlink_internal._shortlink_count_visit(code text, link_id bigint) RETURNS boolean
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
      AND NOT s.disabled
      AND (s.valid_from IS NULL OR s.valid_from <= visited_at)
      AND (s.expires_at IS NULL OR s.expires_at > visited_at)
      AND s.visits < s.max_visits;
    RETURN FOUND;
END
$$;

-- What an HTTP front answers for a code, with the visit counted; at most one row. In Rust
-- (src/shortlinks/resolve.rs), written against the function manager, hence declared here.
CREATE FUNCTION shortlink_target(code text)
RETURNS TABLE (url text, status int, cache_control text)
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE ROWS 1
AS 'MODULE_PATHNAME', 'shortlink_target_wrapper';
CREATE FUNCTION snowlink_internal.shortlink_target(code text)
RETURNS TABLE (url text, status int, cache_control text)
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE ROWS 1
AS 'MODULE_PATHNAME', 'shortlink_target_wrapper';

-- For PostgREST: the link's status, Location and Cache-Control from shortlink_target(), or 404.
CREATE FUNCTION shortlink_redirect(code text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target record;
BEGIN
    SELECT * INTO target FROM snowlink_internal.shortlink_target(shortlink_redirect.code);
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

CREATE FUNCTION shortlink_stats(
    code text,
    OUT visits bigint,
    OUT first_visit_at timestamptz,
    OUT last_visit_at timestamptz
)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
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

-- The visits of a link per day (UTC), from from_day (by default the day it was made) to to_day
-- (by default today), with 0 for a day without visits; no row for an unknown code. Links with
-- max_visits count their visits in their row only, and have no days here. A range has at most
-- 36,600 days (100 years), so that a mistyped year is an error rather than millions of rows.
CREATE FUNCTION shortlink_daily_visits(code text, from_day date DEFAULT NULL, to_day date DEFAULT NULL)
RETURNS TABLE (day date, visits bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
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

-- Brings in existing links with their own codes, a batch at a time, for shortlinks_import(): rows
-- with a refused code or URL, or a code already taken, are returned with the reason instead of
-- stopping the load. URLs get the checks and the normal form of shorten().
CREATE FUNCTION snowlink_internal._shortlinks_import(codes text[], urls text[], created timestamptz[])
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
                   WHEN lower(g.code) IN (SELECT r.code FROM @extschema@.shortlink_reserved_codes AS r)
                       THEN 'code is reserved'
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

-- Brings in existing links, exported from another shortener for example: the rows of `links`, a
-- table or view the caller can read, with the columns code and url (and created_at, if it has
-- one). Returns the rows it refused, with the reason; the others become short links. It runs as
-- the caller, so it reads only what the caller may read.
CREATE FUNCTION shortlinks_import(links regclass, batch_size int DEFAULT 10000)
RETURNS TABLE (code text, url text, error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    has_created_at boolean := EXISTS (
        SELECT FROM pg_attribute AS a
        WHERE a.attrelid = shortlinks_import.links AND a.attname = 'created_at'
          AND a.attnum > 0 AND NOT a.attisdropped);
    link record;
    codes text[] := '{}';
    urls text[] := '{}';
    created timestamptz[] := '{}';
BEGIN
    IF links IS NULL THEN
        RAISE EXCEPTION 'links must not be NULL' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Name the table or view to import, as in shortlinks_import(''old_links'').';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be positive, not %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR link IN EXECUTE format('SELECT l.code::text AS code, l.url::text AS url, %s AS created_at FROM %s AS l',
                               CASE WHEN has_created_at THEN 'l.created_at::timestamptz'
                                    ELSE 'NULL::timestamptz' END,
                               links) LOOP
        codes := codes || link.code;
        urls := urls || link.url;
        created := created || link.created_at;
        IF cardinality(codes) >= batch_size THEN
            RETURN QUERY SELECT * FROM snowlink_internal._shortlinks_import(codes, urls, created);
            codes := '{}';
            urls := '{}';
            created := '{}';
        END IF;
    END LOOP;
    RETURN QUERY SELECT * FROM snowlink_internal._shortlinks_import(codes, urls, created);
END
$$;

-- Stops a link from resolving (or, with disabled => false, lets it resolve again). False when the
-- code is unknown.
CREATE FUNCTION shortlink_disable(code text, disabled boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.shortlinks AS s SET disabled = shortlink_disable.disabled
    WHERE s.code = shortlink_disable.code;
    RETURN FOUND;
END
$$;

-- Bound when it is created, as the SQL standard's function bodies are: nothing made later can take
-- the place of shortlink_disable().
CREATE FUNCTION shortlink_enable(code text) RETURNS boolean
LANGUAGE sql VOLATILE STRICT
BEGIN ATOMIC
    SELECT @extschema@.shortlink_disable(code, false);
END;

-- Deletes the links that can never resolve again (expired, or every visit used), with their visit
-- rows, and returns how many.
CREATE FUNCTION shortlinks_purge_expired() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    purged bigint;
BEGIN
    WITH gone AS (
        DELETE FROM @extschema@.shortlinks AS s
        WHERE s.expires_at <= now() OR s.visits >= s.max_visits
        RETURNING s.id
    ), gone_visits AS (
        DELETE FROM @extschema@.shortlink_visits AS v USING gone WHERE v.link_id = gone.id
    )
    SELECT count(*) INTO purged FROM gone;
    RETURN purged;
END
$$;

-- Makes the extension's tables Citus tables; called once, on the coordinator of a Citus cluster.
-- shortlinks is distributed by code, so that the functions that take a code reach one shard. A
-- Citus key must be part of every unique constraint, so the primary key on id gives way to an
-- index (IDs are unique by construction) and the unique code becomes the replica identity. The
-- visits are distributed by link ID, which is what every node's visit writer writes by, so that a
-- flush sends each row to its shard without looking its code up; the URL locks by bucket; the key
-- and the reserved codes, which every shorten() reads, are reference tables, a copy on every node.
-- Tables that Citus already manages are left as they are, so a second call does nothing. It
-- refuses a cluster whose nodes' snowflake ranges overlap.
CREATE FUNCTION shortlinks_distribute(shard_count int DEFAULT NULL) RETURNS void
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
        CREATE INDEX shortlinks_id ON @extschema@.shortlinks (id);
        ALTER TABLE @extschema@.shortlinks REPLICA IDENTITY USING INDEX shortlinks_code_key;
        PERFORM pg_catalog.create_distributed_table(links, 'code',
                                                    shard_count => shortlinks_distribute.shard_count);
        PERFORM pg_catalog.truncate_local_data_after_distributing_table(links);
    END IF;

    -- Each with its distribution column, or NULL for a reference table.
    FOR citus_table, key_column IN
        VALUES ('@extschema@.shortlink_visits'::regclass, 'link_id'),
               ('@extschema@.shortlink_url_locks'::regclass, 'bucket'),
               ('@extschema@.shortlink_key'::regclass, NULL),
               ('@extschema@.shortlink_reserved_codes'::regclass, NULL)
    LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_dist_partition AS p WHERE p.logicalrelid = citus_table);
        IF key_column IS NULL THEN
            PERFORM pg_catalog.create_reference_table(citus_table);
        ELSE
            PERFORM pg_catalog.create_distributed_table(citus_table, key_column, colocate_with => 'none',
                                                        shard_count => shortlinks_distribute.shard_count);
        END IF;
        PERFORM pg_catalog.truncate_local_data_after_distributing_table(citus_table);
    END LOOP;
END
$$;

-- Who may do what. Anyone may follow a link; applications get the rest through one role.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'snowlink_user') THEN
        CREATE ROLE snowlink_user NOLOGIN;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION
    snowlink_internal._shortlink_keyed_code(bigint, bytea),
    snowlink_internal._shortlink_server_counter(bigint),
    snowlink_internal._shortlink_take_daily_visits(), snowlink_internal._shortlink_key(),
    snowlink_internal._shortlinks_flush_visits(), snowlink_internal._shortlink_live(text),
    snowlink_internal._shortlink_count_visit(text, bigint),
    snowlink_internal._shortlinks_import(text[], text[], timestamptz[]),
    snowlink_internal._shortlink_import_url(text, text),
    snowlink_internal._shortlink_import_refusal(text, text),
    shorten(text, text, timestamptz, bigint, int, boolean, timestamptz),
    shortlink_stats(text), shortlink_daily_visits(text, date, date),
    shortlink_disable(text, boolean), shortlink_enable(text), shortlinks_purge_expired(),
    shortlinks_import(regclass, int), shortlinks_distribute(int)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    shorten(text, text, timestamptz, bigint, int, boolean, timestamptz),
    shortlink_stats(text), shortlink_daily_visits(text, date, date),
    shortlink_disable(text, boolean), shortlink_enable(text), shortlinks_purge_expired(),
    shortlinks_import(regclass, int), snowlink_internal._shortlinks_import(text[], text[], timestamptz[])
TO snowlink_user;
GRANT SELECT ON shortlinks TO snowlink_user;
