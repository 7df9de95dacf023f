-- Finding links: by tag, and the caller's links page by page.

-- The links with a tag, newest first, through the GIN index on tags, whose condition (tags not
-- empty) it repeats so that the planner may use it. It runs as its caller, who reads only the
-- links the caller may read. Its body is not bound at creation, so that it does not hold every
-- column of shortlinks against an ALTER TABLE; its search_path is pinned instead.
CREATE FUNCTION shortlinks_tagged(tag text) RETURNS SETOF shortlinks
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT *
    FROM @extschema@.shortlinks AS s
    WHERE s.tags OPERATOR(pg_catalog.@>) snowlink_internal._shortlink_tags(ARRAY[tag])
      AND s.tags OPERATOR(pg_catalog.<>) '{}'
    ORDER BY s.id DESC;
$$;
REVOKE ALL ON FUNCTION shortlinks_tagged(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_tagged(text) TO snowlink_user;
COMMENT ON FUNCTION shortlinks_tagged(text) IS
    'short links with a tag (compared as stored: trimmed, lower case), newest first';

-- The caller's links (for a role in snowlink_admin, every link), newest first, a page at a time:
-- those whose code, URL or title holds `search` (as plain text, in any case), that have `tag`, and
-- that are in `domain` (NULL: in any domain). The next page starts after the last ID of this one
-- (after_id): each page costs the same however deep, and a link made meanwhile does not shift the
-- pages. An owner's links are read from the index shortlinks_owner, newest first, until the page
-- is full.
CREATE FUNCTION shortlinks_list(search text DEFAULT NULL, tag text DEFAULT NULL, domain text DEFAULT NULL,
                                after_id bigint DEFAULT NULL, page_size int DEFAULT 50)
RETURNS SETOF shortlinks
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    max_page_size constant int := 1000;
    -- LIKE's wildcards and escape character, in the search, stand for themselves.
    pattern text := '%' || replace(replace(replace(shortlinks_list.search, '\', '\\'), '%', '\%'), '_', '\_')
                    || '%';
    wanted_tags text[] := CASE WHEN shortlinks_list.tag IS NOT NULL
                               THEN snowlink_internal._shortlink_tags(ARRAY[shortlinks_list.tag]) END;
    link_domain text := snowlink_internal._shortlink_domain(shortlinks_list.domain);
    -- Always a bound, so that every page starts from the index, not from the newest link.
    below_id bigint := coalesce(shortlinks_list.after_id, 9223372036854775807);
BEGIN
    IF page_size IS NULL OR page_size < 1 OR page_size > max_page_size THEN
        RAISE EXCEPTION 'page_size must be from 1 to %, not %', max_page_size, coalesce(page_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT *
    FROM @extschema@.shortlinks AS s
    WHERE s.id < below_id
      AND (pattern IS NULL OR s.code ILIKE pattern OR s.url ILIKE pattern OR s.title ILIKE pattern)
      AND (wanted_tags IS NULL OR s.tags @> wanted_tags)
      AND (link_domain IS NULL OR s.domain = link_domain)
    ORDER BY s.id DESC
    LIMIT page_size;
END
$$;
REVOKE ALL ON FUNCTION shortlinks_list(text, text, text, bigint, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_list(text, text, text, bigint, int) TO snowlink_user;
COMMENT ON FUNCTION shortlinks_list(text, text, text, bigint, integer) IS
    'the caller''s short links, newest first, a page at a time after after_id; search matches code, URL and title';
