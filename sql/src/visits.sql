-- Visits: how the visits that src/visits/ counts are written, a link with max_visits is counted,
-- and an application reads them back.

-- The visits this process counted or gathered (src/visits/mod.rs), taken for writing.
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_take_daily_visits() FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_take_daily_visits() IS 'internal: the visits this process counted or gathered, per link and day, for writing';

-- Writes the visits this process counted or gathered into the rows of their links and days, in
-- that order, each row with its link's code, by which Citus places it beside the link. Visits of a
-- link that is not there are left out, and logged: it was deleted or purged. A link made in the
-- last minute may be one that a transaction has not committed yet (resolved in the transaction
-- that made it): its visits wait in shortlink_visits_unseen for the next write.
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

-- Counts a visit of a link with max_visits, if it is live and has visits left; false when not.
-- The visit writer calls it, in a transaction of its own that commits before the link is served
-- (src/visits/limited.rs), so that no caller can have it served more often than it allows. The
-- row lock orders concurrent visits, so that the last one goes to one visitor only; one that
-- another transaction holds for long fails with 55P03 rather than holding up the writer (on
-- Citus, where the lock_timeout does not reach the row's worker, after the writer's own limit:
-- src/visits/writer.rs). The code picks the row, so that Citus sends the UPDATE to the link's
-- shard; a code too long for the writer to be handed is looked up by the link's ID.
CREATE FUNCTION snowlink_internal._shortlink_count_visit(code text, link_id bigint) RETURNS boolean
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
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_count_visit(text, bigint) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_count_visit(text, bigint) IS 'internal: counts a visit of a link with max_visits, for the visit writer';

-- The visits of a link (of a domain; NULL: the default domain), with the first and last visit
-- time; NULLs for an unknown code, or one the caller may not see (owners.sql).
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

-- The visits of a link (of a domain; NULL: the default domain) per day (UTC), from from_day (by
-- default the day it was made) to to_day (by default today), with 0 for a day without visits; no
-- row for an unknown code, or one the caller may not see. Links with max_visits count their
-- visits in their row only, and have no days here. A range has at most 36,600 days (100 years),
-- so that a mistyped year is an error rather than millions of rows.
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
