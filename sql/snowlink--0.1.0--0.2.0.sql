-- snowlink 0.1.0 to 0.2.0, run by ALTER EXTENSION snowlink UPDATE in one transaction.
--
-- Every change to the extension's SQL objects in 0.2.0 goes into this script as well as into the
-- install script, so that an updated database cannot be told apart from a fresh install:
-- scripts/upgrade_test.sh compares the two object by object. Change objects in place (CREATE OR
-- REPLACE, ALTER) rather than dropping them: a drop loses grants and the application objects that
-- depend on them, and breaks the plans of sessions that are calling them at that moment.
\echo Use "ALTER EXTENSION snowlink UPDATE TO '0.2.0'" to load this file. \quit

-- The functions that only the extension's own code calls move into snowlink_internal, where no
-- other role can add a function that makes a call by name ambiguous (sql/internal_schema.sql).
-- Those of 0.1.0 that remain keep their OIDs, privileges and comments; the public functions that
-- the extension's SQL calls are declared there a second time.
CREATE SCHEMA snowlink_internal;
GRANT USAGE ON SCHEMA snowlink_internal TO PUBLIC;
COMMENT ON SCHEMA snowlink_internal IS
    'functions of the snowlink extension that only its own code calls';
ALTER FUNCTION _shortlink_key() SET SCHEMA snowlink_internal;
ALTER FUNCTION _shortlinks_flush_visits() SET SCHEMA snowlink_internal;
ALTER FUNCTION _shortlink_keyed_code(bigint, bytea) SET SCHEMA snowlink_internal;
CREATE FUNCTION snowlink_internal.snowflake_next() RETURNS bigint
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'snowflake_next_wrapper';
CREATE FUNCTION snowlink_internal.snowflake_node_range() RETURNS int4range
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'snowflake_node_range_wrapper';
CREATE FUNCTION snowlink_internal.snowflake_min(at timestamptz) RETURNS bigint
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'snowflake_min_wrapper';
CREATE FUNCTION snowlink_internal.shortlink_normalize_url(url text) RETURNS text
LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'shortlink_normalize_url_wrapper';
CREATE FUNCTION snowlink_internal.base62_encode(value bigint) RETURNS text
LANGUAGE c STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'base62_encode_wrapper';
COMMENT ON FUNCTION snowlink_internal.snowflake_next() IS 'internal: snowflake_next(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.snowflake_node_range() IS 'internal: snowflake_node_range(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.snowflake_min(timestamptz) IS 'internal: snowflake_min(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.base62_encode(bigint) IS 'internal: base62_encode(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.shortlink_normalize_url(text) IS 'internal: shortlink_normalize_url(), for the extension''s SQL';

-- shortlink_target(): what an HTTP front answers for a code, in one call. shortlink_redirect() takes
-- its answer from it, so a permanent link with expires_at = 'infinity' gets a cache lifetime
-- instead of an error, and it needs no privilege of the extension's owner any more.
CREATE FUNCTION shortlink_target(code text)
RETURNS TABLE (url text, status int, cache_control text)
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE ROWS 1
AS 'MODULE_PATHNAME', 'shortlink_target_wrapper';
COMMENT ON FUNCTION shortlink_target(text) IS
    'URL, redirect status and Cache-Control of a live short link, for an HTTP front; counts the visit';
CREATE FUNCTION snowlink_internal.shortlink_target(code text)
RETURNS TABLE (url text, status int, cache_control text)
LANGUAGE c STRICT VOLATILE PARALLEL UNSAFE ROWS 1
AS 'MODULE_PATHNAME', 'shortlink_target_wrapper';
COMMENT ON FUNCTION snowlink_internal.shortlink_target(text) IS 'internal: shortlink_target(), for the extension''s SQL';

CREATE OR REPLACE FUNCTION shortlink_redirect(code text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
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

-- Paths of snowlink-http that a custom code would shadow.
INSERT INTO shortlink_reserved_codes (code, builtin)
VALUES ('healthz', true), ('ids', true), ('links', true)
ON CONFLICT (code) DO UPDATE SET builtin = true;

-- Node claims: the library holds the one definition of their lock tag and of the node range's
-- defaults. What is bound at creation names its operators and functions with their schema, so the
-- view and the SQL function that an operator planted in the extension's schema could have bound
-- are made again.
CREATE FUNCTION snowlink_internal."_snowflake_lock_tag"() RETURNS TABLE (
	"classid" oid,  /* pg_sys :: Oid */
	"objsubid" smallint  /* i16 */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_snowflake_lock_tag_wrapper';
COMMENT ON FUNCTION snowlink_internal._snowflake_lock_tag() IS 'internal: the advisory lock tag of node claims';
CREATE OR REPLACE FUNCTION "snowflake_node_range"() RETURNS int4range /* Range < i32 > */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'snowflake_node_range_wrapper';
CREATE OR REPLACE VIEW snowflake_nodes AS
SELECT l.objid::pg_catalog.int4 AS node_id,
       l.pid,
       a.datname,
       a.usename,
       a.application_name,
       a.client_addr,
       a.backend_start
FROM pg_catalog.pg_locks AS l
CROSS JOIN snowlink_internal._snowflake_lock_tag() AS tag
LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid OPERATOR(pg_catalog.=) l.pid
WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'::pg_catalog.text
  AND l.database OPERATOR(pg_catalog.=) 0::pg_catalog.oid
  AND l.classid OPERATOR(pg_catalog.=) tag.classid
  AND l.objsubid OPERATOR(pg_catalog.=) tag.objsubid
  AND l.granted;
CREATE OR REPLACE FUNCTION snowflake_node_range_conflicts(peer_ranges int4range[])
RETURNS TABLE (peer_range int4range, shared_nodes int4range)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT peer, peer OPERATOR(pg_catalog.*) @extschema@.snowflake_node_range()
    FROM pg_catalog.unnest(peer_ranges) AS peer
    WHERE peer OPERATOR(pg_catalog.&&) @extschema@.snowflake_node_range();
END;

-- shorten(): concurrent calls for one URL wait on a row of shortlink_url_locks, which no other role
-- can lock, instead of an advisory lock that any role can take, and agree on one link at every
-- isolation level. _shortlink_key() loses a branch for a case that cannot happen.
CREATE TABLE shortlink_url_locks (
    bucket int PRIMARY KEY,
    updates bigint NOT NULL DEFAULT 0,
    -- On Citus, the code of the last link made under this lock (see shorten()).
    last_code text COLLATE "C"
);
INSERT INTO shortlink_url_locks (bucket) SELECT pg_catalog.generate_series(0, 65535);
COMMENT ON TABLE shortlink_url_locks IS 'rows on which concurrent shorten() calls for one URL wait for each other';
CREATE OR REPLACE FUNCTION snowlink_internal._shortlink_key() RETURNS bytea
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
CREATE OR REPLACE FUNCTION shorten(
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

-- resolve() and shortlink_target() count visits themselves (src/visits/): a visit of a plain link
-- is written just before a commit, in a subtransaction of its own, and one of a link with
-- max_visits is counted and committed by the visit writer before the link is served. Where they
-- read the link with a query, _shortlink_live() finds it.
DROP FUNCTION _shortlink_visit(text);
DROP FUNCTION _shortlink_record_visit(bigint);
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
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_live(text),
    snowlink_internal._shortlink_count_visit(text, bigint)
FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_live(text) IS 'internal: live link of a code, read with a query';
COMMENT ON FUNCTION snowlink_internal._shortlink_count_visit(text, bigint) IS 'internal: counts a visit of a link with max_visits, for the visit writer';

-- Visits: one row per link and day (UTC) instead of one per link and backend, so that the rows
-- grow with links and days, never with backends, and shortlink_daily_visits() can draw a link's
-- clicks over time. The per-backend rows, which have no day, are first folded into their links,
-- whose totals keep them. Backends that write visits meanwhile wait for the lock: a row written
-- between the fold and the DELETE would be lost.
LOCK TABLE shortlink_visits IN EXCLUSIVE MODE;
UPDATE shortlinks AS s
SET visits = s.visits + f.visits,
    first_visit_at = least(s.first_visit_at, f.first_at),
    last_visit_at = greatest(s.last_visit_at, f.last_at)
FROM (SELECT link_id, sum(visits) AS visits, min(first_at) AS first_at, max(last_at) AS last_at
      FROM shortlink_visits GROUP BY link_id) AS f
WHERE s.id = f.link_id;
DELETE FROM shortlink_visits;
ALTER TABLE shortlink_visits
    DROP CONSTRAINT shortlink_visits_pkey,
    DROP COLUMN backend_pid,
    ADD COLUMN day date NOT NULL,
    ADD PRIMARY KEY (link_id, day);
CREATE FUNCTION snowlink_internal."_shortlink_take_daily_visits"() RETURNS TABLE (
	"link_id" bigint,  /* i64 */
	"day" date,  /* Date */
	"visits" bigint,  /* i64 */
	"first_at" timestamp with time zone,  /* TimestampWithTimeZone */
	"last_at" timestamp with time zone  /* TimestampWithTimeZone */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_shortlink_take_daily_visits_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_take_daily_visits() FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_take_daily_visits() IS 'internal: the visits this process counted or gathered, per link and day, for writing';
COMMENT ON FUNCTION snowlink_internal._shortlinks_flush_visits() IS 'internal: writes the visits this process counted or gathered';
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
DROP FUNCTION _shortlink_take_visits();
CREATE OR REPLACE FUNCTION shortlinks_purge_expired() RETURNS bigint
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
REVOKE ALL ON FUNCTION shortlink_daily_visits(text, date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_daily_visits(text, date, date) TO snowlink_user;
COMMENT ON FUNCTION shortlink_daily_visits(text, date, date) IS
    'visits of a short link per day (UTC), 0 for days without, from the day it was made to today by default';
COMMENT ON FUNCTION shortlinks_purge_expired() IS
    'deletes expired and used-up short links with their visit rows, and returns how many';
COMMENT ON TABLE shortlink_visits IS 'visits of links without max_visits, one row per link and day (UTC)';

-- Importing existing links with their own codes.
CREATE FUNCTION snowlink_internal."_shortlink_import_url"(
	"code" TEXT, /* Option < & str > */
	"url" TEXT /* Option < & str > */
) RETURNS TEXT /* Option < String > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_shortlink_import_url_wrapper';
COMMENT ON FUNCTION snowlink_internal._shortlink_import_url(text, text) IS 'internal: the URL of a row to import as stored, or NULL when refused';
CREATE FUNCTION snowlink_internal."_shortlink_import_refusal"(
	"code" TEXT, /* Option < & str > */
	"url" TEXT /* Option < & str > */
) RETURNS TEXT /* Option < String > */
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_shortlink_import_refusal_wrapper';
COMMENT ON FUNCTION snowlink_internal._shortlink_import_refusal(text, text) IS 'internal: why a row to import is refused, or NULL';
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
REVOKE ALL ON FUNCTION shortlinks_import(regclass, int),
    snowlink_internal._shortlinks_import(text[], text[], timestamptz[]),
    snowlink_internal._shortlink_import_url(text, text), snowlink_internal._shortlink_import_refusal(text, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_import(regclass, int),
    snowlink_internal._shortlinks_import(text[], text[], timestamptz[])
TO snowlink_user;
COMMENT ON FUNCTION shortlinks_import(regclass, integer) IS
    'makes short links of the rows (code, url, created_at) of a table; returns the rows refused, with the reason';
COMMENT ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[]) IS 'internal: imports one batch of links';

-- Citus: shortlinks_distribute() makes the extension's tables Citus tables. Functions that read or
-- change a link by its code are PL/pgSQL, whose queries Citus can send to one shard (it cannot plan
-- the parameters of an SQL function); each server makes its generated codes from a counter block of
-- its own, so that the nodes of a cluster never make the same code.
CREATE FUNCTION snowlink_internal."_shortlink_server_counter"(
	"local" bigint /* i64 */
) RETURNS bigint /* i64 */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_shortlink_server_counter_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_server_counter(bigint) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_server_counter(bigint) IS 'internal: counter value of this server''s n-th generated code';
CREATE OR REPLACE FUNCTION shortlink_stats(
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
-- shortlink_enable() is bound when it is created, so that nothing made later stands in for
-- shortlink_disable().
CREATE OR REPLACE FUNCTION shortlink_enable(code text) RETURNS boolean
LANGUAGE sql VOLATILE STRICT
BEGIN ATOMIC
    SELECT @extschema@.shortlink_disable(code, false);
END;
CREATE OR REPLACE FUNCTION shortlink_disable(code text, disabled boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.shortlinks AS s SET disabled = shortlink_disable.disabled
    WHERE s.code = shortlink_disable.code;
    RETURN FOUND;
END
$$;
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

REVOKE ALL ON FUNCTION shortlinks_distribute(int) FROM PUBLIC;
COMMENT ON FUNCTION shortlinks_distribute(integer) IS
    'on a Citus coordinator: distributes shortlinks by code and makes the other tables of the extension Citus tables';

-- URLs are stored as browsers serialize them: those stored with characters outside printable ASCII
-- are written that way now (a URL refused by this server's settings keeps its text, with a notice).
DO $$
DECLARE
    link record;
BEGIN
    FOR link IN SELECT s.id, s.url FROM @extschema@.shortlinks AS s WHERE s.url ~ '[^!-~]' LOOP
        BEGIN
            UPDATE @extschema@.shortlinks AS s
            SET url = snowlink_internal.shortlink_normalize_url(link.url)
            WHERE s.id = link.id;
        EXCEPTION WHEN invalid_parameter_value OR invalid_text_representation THEN
            RAISE NOTICE 'short link % keeps its URL: %', link.id, SQLERRM;
        END;
    END LOOP;
END
$$;
