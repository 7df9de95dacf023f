-- Managing links: disabling, enabling, deleting and purging them. Each runs as its caller, and
-- so reaches only the links the caller may change (owners.sql).

-- Stops a link from resolving (or, with disabled => false, lets it resolve again). False when the
-- code is unknown, or not the caller's.
CREATE FUNCTION shortlink_disable(code text, disabled boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT
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
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_spent(timestamptz, bigint, bigint, timestamptz) IS
    'internal: whether a link with these columns can never resolve again after the given time';

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

-- Deletes the caller's links that can never resolve again (expired, or every visit used), with
-- their visit rows, and returns how many. A role in snowlink_admin purges every owner's.
CREATE FUNCTION shortlinks_purge_expired() RETURNS bigint
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
REVOKE ALL ON FUNCTION shortlinks_purge_expired() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_purge_expired() TO snowlink_user;
COMMENT ON FUNCTION shortlinks_purge_expired() IS
    'deletes the caller''s expired and used-up short links with their visit rows, and returns how many';

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
