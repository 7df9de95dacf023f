-- Bringing in links from elsewhere: shortlinks_import(), batch by batch.

-- The checks of a row to import (src/shortlinks/mod.rs): the URL as stored, or why it is refused.
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_import_url(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_import_url(text, text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_import_url(text, text) IS 'internal: the URL of a row to import as stored, or NULL when refused';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_import_refusal(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_import_refusal(text, text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_import_refusal(text, text) IS 'internal: why a row to import is refused, or NULL';

-- Why a row's title, tags or domain are refused, or NULL (src/shortlinks/mod.rs).
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_labels_refusal(text, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_labels_refusal(text, text[], text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_labels_refusal(text, text[], text) IS 'internal: why the title, tags or domain of a row to import are refused, or NULL';

-- Brings in existing links with their own codes, a batch at a time, for shortlinks_import(): rows
-- with a refused code, URL, title, tags or domain, or a code already taken in the domain, are
-- returned with the reason instead of stopping the load. Everything gets the checks and the normal
-- form of shorten(). Each row's tags come as the text of an array, as arrays of arrays cannot
-- differ in length.
CREATE FUNCTION snowlink_internal._shortlinks_import(codes text[], urls text[], created timestamptz[],
                                                     titles text[], tag_lists text[], domains text[])
RETURNS TABLE (code text, url text, error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    -- Each step materialized: inlined, each would compute the checks of the step before again.
    WITH given AS MATERIALIZED (
        SELECT g.code, g.url, g.created_at, g.title, g.tags::text[] AS tags, g.domain, g.n,
               snowlink_internal._shortlink_import_url(g.code, g.url) AS target
        FROM unnest(_shortlinks_import.codes, _shortlinks_import.urls, _shortlinks_import.created,
                    _shortlinks_import.titles, _shortlinks_import.tag_lists, _shortlinks_import.domains)
             WITH ORDINALITY AS g (code, url, created_at, title, tags, domain, n)
    ),
    checked AS MATERIALIZED (
        SELECT r.*,
               CASE
                   WHEN r.target IS NULL THEN snowlink_internal._shortlink_import_refusal(r.code, r.url)
                   ELSE coalesce(snowlink_internal._shortlink_labels_refusal(r.title, r.tags, r.domain),
                                 snowlink_internal._shortlink_reserved_refusal(r.code))
               END AS problem
        FROM given AS r
    ),
    normal AS MATERIALIZED (
        SELECT c.*,
               CASE WHEN c.problem IS NULL THEN snowlink_internal._shortlink_domain(c.domain) END AS link_domain
        FROM checked AS c
    ),
    -- A code that comes twice in a domain is imported from its first row that passes the checks.
    judged AS (
        SELECT o.*,
               coalesce(o.problem,
                        CASE WHEN row_number() OVER (PARTITION BY o.code, o.link_domain, o.problem IS NULL
                                                     ORDER BY o.n) > 1
                             THEN 'code is taken' END) AS verdict
        FROM normal AS o
    ),
    inserted AS (
        INSERT INTO @extschema@.shortlinks (code, url, created_at, title, tags, domain)
        SELECT j.code, j.target, coalesce(j.created_at, now()),
               snowlink_internal._shortlink_title(j.title),
               coalesce(snowlink_internal._shortlink_tags(j.tags), '{}'), j.link_domain
        FROM judged AS j
        WHERE j.verdict IS NULL
        ON CONFLICT ON CONSTRAINT shortlinks_code_key DO NOTHING
        RETURNING shortlinks.code, shortlinks.domain
    )
    -- A join rather than NOT EXISTS beside an OR, which PostgreSQL runs as a scan of the inserted
    -- rows for every row of the batch.
    SELECT j.code, j.url, coalesce(j.verdict, 'code is taken')
    FROM judged AS j
    LEFT JOIN inserted AS i ON i.code = j.code AND i.domain IS NOT DISTINCT FROM j.link_domain
    WHERE j.verdict IS NOT NULL OR i.code IS NULL
    ORDER BY j.n;
    PERFORM snowlink_internal._shortlinks_sync_url_links(_shortlinks_import.codes, NULL);
END
$$;
-- shortlinks_import() calls this for each batch. Both run as the caller, whose links they make.
REVOKE ALL ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[], text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[], text[], text[], text[]) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[], text[], text[], text[]) IS 'internal: imports one batch of links';

-- Brings in existing links, exported from another shortener for example: the rows of `links`, a
-- table or view the caller can read, with the columns code and url, and any of created_at, title,
-- tags (an array) and domain. Returns the rows it refused, with the reason; the others become
-- short links. It runs as the caller, so it reads only what the caller may read.
CREATE FUNCTION shortlinks_import(links regclass, batch_size int DEFAULT 10000)
RETURNS TABLE (code text, url text, error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    optional_columns constant text[] := ARRAY['created_at', 'title', 'tags', 'domain'];
    present text[];
    link record;
    codes text[] := '{}';
    urls text[] := '{}';
    created timestamptz[] := '{}';
    titles text[] := '{}';
    tag_lists text[] := '{}';
    domains text[] := '{}';
BEGIN
    IF links IS NULL THEN
        RAISE EXCEPTION 'links must not be NULL' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Name the table or view to import, as in shortlinks_import(''old_links'').';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be positive, not %', coalesce(batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    present := ARRAY(SELECT a.attname::text FROM pg_attribute AS a
                     WHERE a.attrelid = shortlinks_import.links AND a.attname::text = ANY (optional_columns)
                       AND a.attnum > 0 AND NOT a.attisdropped);
    FOR link IN EXECUTE format(
        'SELECT l.code::text AS code, l.url::text AS url, %s AS created_at, %s AS title, %s AS tags, '
        '%s AS domain FROM %s AS l',
        CASE WHEN 'created_at' = ANY (present) THEN 'l.created_at::timestamptz' ELSE 'NULL::timestamptz' END,
        CASE WHEN 'title' = ANY (present) THEN 'l.title::text' ELSE 'NULL::text' END,
        CASE WHEN 'tags' = ANY (present) THEN 'l.tags::text[]::text' ELSE 'NULL::text' END,
        CASE WHEN 'domain' = ANY (present) THEN 'l.domain::text' ELSE 'NULL::text' END,
        links) LOOP
        codes := codes || link.code;
        urls := urls || link.url;
        created := created || link.created_at;
        titles := titles || link.title;
        tag_lists := tag_lists || link.tags;
        domains := domains || link.domain;
        IF cardinality(codes) >= batch_size THEN
            RETURN QUERY SELECT * FROM snowlink_internal._shortlinks_import(codes, urls, created, titles,
                                                                           tag_lists, domains);
            codes := '{}';
            urls := '{}';
            created := '{}';
            titles := '{}';
            tag_lists := '{}';
            domains := '{}';
        END IF;
    END LOOP;
    RETURN QUERY SELECT * FROM snowlink_internal._shortlinks_import(codes, urls, created, titles, tag_lists,
                                                                   domains);
END
$$;
REVOKE ALL ON FUNCTION shortlinks_import(regclass, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_import(regclass, int) TO snowlink_user;
COMMENT ON FUNCTION shortlinks_import(regclass, integer) IS
    'makes short links of the rows (code, url[, created_at, title, tags, domain]) of a table; returns the rows refused, with the reason';
