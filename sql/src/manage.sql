-- Managing links: disabling, enabling and purging them.

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
REVOKE ALL ON FUNCTION shortlink_disable(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_disable(text, boolean) TO snowlink_user;
COMMENT ON FUNCTION shortlink_disable(text, boolean) IS
    'stops a short link from resolving (disabled => false: lets it resolve again); false when the code is unknown';

-- Bound when it is created, as the SQL standard's function bodies are: nothing made later can take
-- the place of shortlink_disable().
CREATE FUNCTION shortlink_enable(code text) RETURNS boolean
LANGUAGE sql VOLATILE STRICT
BEGIN ATOMIC
    SELECT @extschema@.shortlink_disable(code, false);
END;
REVOKE ALL ON FUNCTION shortlink_enable(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlink_enable(text) TO snowlink_user;
COMMENT ON FUNCTION shortlink_enable(text) IS
    'lets a disabled short link resolve again; false when the code is unknown';

-- Whether a link can never resolve again (src/shortlinks/link_state.rs).
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) IS
    'internal: whether a link with these columns can never resolve again after the given time';

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
        WHERE snowlink_internal._shortlink_is_spent(s.expires_at, s.max_visits, s.visits, now())
        RETURNING s.id
    ), gone_visits AS (
        DELETE FROM @extschema@.shortlink_visits AS v USING gone WHERE v.link_id = gone.id
    )
    SELECT count(*) INTO purged FROM gone;
    RETURN purged;
END
$$;
REVOKE ALL ON FUNCTION shortlinks_purge_expired() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_purge_expired() TO snowlink_user;
COMMENT ON FUNCTION shortlinks_purge_expired() IS
    'deletes expired and used-up short links with their visit rows, and returns how many';

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
