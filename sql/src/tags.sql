-- Finding links by tag.

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
