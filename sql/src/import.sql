-- Bringing in links from elsewhere: shortlinks_import(), batch by batch.

-- The checks of a row to import (src/shortlinks/mod.rs): the URL as stored, or why it is refused.
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_import_url(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_import_url(text, text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_import_url(text, text) IS 'internal: the URL of a row to import as stored, or NULL when refused';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_import_refusal(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_import_refusal(text, text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_import_refusal(text, text) IS 'internal: why a row to import is refused, or NULL';

-- Brings in existing links with their own codes, a batch at a time, for shortlinks_import(): rows
-- with a refused code or URL, or a code already taken, are returned with the reason instead of
-- stopping the load. URLs get the checks and the normal form of shorten().
CREATE FUNCTION snowlink_internal._shortlinks_import(codes text[], urls text[], created timestamptz[])
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
-- shortlinks_import() calls this for each batch. Both run as the caller, whose links they make.
REVOKE ALL ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[]) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[]) IS 'internal: imports one batch of links';

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
REVOKE ALL ON FUNCTION shortlinks_import(regclass, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shortlinks_import(regclass, int) TO snowlink_user;
COMMENT ON FUNCTION shortlinks_import(regclass, integer) IS
    'makes short links of the rows (code, url, created_at) of a table; returns the rows refused, with the reason';
