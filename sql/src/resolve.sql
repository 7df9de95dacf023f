-- Following a link: resolve() and shortlink_target() (src/shortlinks/resolve.rs), what they ask
-- of SQL, and shortlink_redirect() for PostgREST. Anyone may follow a link.

COMMENT ON FUNCTION resolve(text) IS
    'target URL of a live short link, with the visit counted; NULL for unknown, disabled, expired or used-up codes';
COMMENT ON FUNCTION resolve(text, text) IS
    'target URL of a live short link of a domain (NULL: the default domain), with the visit counted';

-- Whether a link resolves (src/shortlinks/link_state.rs, which resolve() uses when it reads the
-- code index itself), for the SQL that reads links with a query.
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_live(boolean, timestamptz, timestamptz, bigint, bigint, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_live(boolean, timestamptz, timestamptz, bigint, bigint, timestamptz) IS
    'internal: whether a link with these columns resolves at the given time';

-- The columns of the link of a code in a domain (in normal form; NULL: the default domain) that
-- decide where and whether it redirects, or no row: for resolve() and shortlink_target()
-- (src/shortlinks/resolve.rs) where they cannot read the code index themselves, as for a table
-- that Citus manages. They apply the rule of src/shortlinks/link_state.rs to the row, so that the
-- query asks the link's shard for nothing but the row. VOLATILE, so that it sees a link made
-- earlier in the same statement, as resolve(code) FROM shorten(url) needs. Its plan_cache_mode is
-- its caller's (src/shortlinks/link_query.rs, sql/src/citus.sql).
CREATE FUNCTION snowlink_internal._shortlink_by_code(
    code text,
    domain text,
    OUT id bigint,
    OUT url text,
    OUT redirect_status smallint,
    OUT disabled boolean,
    OUT valid_from timestamptz,
    OUT expires_at timestamptz,
    OUT max_visits bigint,
    OUT visits bigint
)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link_domain text;
BEGIN
    -- Citus plans a test of the domain at a cost of several percent of resolve()'s throughput,
    -- more than reading the column costs. Most codes have one link, in the default domain: a
    -- first read without the test finds it, and only a code with links in other domains, one of
    -- which came first, is read again with the test.
    IF _shortlink_by_code.domain IS NULL THEN
        SELECT s.id, s.url, s.redirect_status, s.disabled, s.valid_from, s.expires_at, s.max_visits, s.visits, s.domain
        INTO id, url, redirect_status, disabled, valid_from, expires_at, max_visits, visits, link_domain
        FROM @extschema@.shortlinks AS s
        WHERE s.code = _shortlink_by_code.code;
        IF link_domain IS NULL THEN
            RETURN;
        END IF;
    END IF;
    SELECT s.id, s.url, s.redirect_status, s.disabled, s.valid_from, s.expires_at, s.max_visits, s.visits
    INTO id, url, redirect_status, disabled, valid_from, expires_at, max_visits, visits
    FROM @extschema@.shortlinks AS s
    WHERE s.code = _shortlink_by_code.code
      AND s.domain IS NOT DISTINCT FROM _shortlink_by_code.domain;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_by_code(text, text) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_by_code(text, text) IS
    'internal: the columns that decide where and whether the link of a code in a domain redirects, read with a query';

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
COMMENT ON FUNCTION shortlink_target(text) IS
    'URL, redirect status and Cache-Control of a live short link, for an HTTP front; counts the visit';
COMMENT ON FUNCTION snowlink_internal.shortlink_target(text) IS 'internal: shortlink_target(), for the extension''s SQL';
-- The same for a link of a domain (NULL: the default domain): not STRICT, so that a NULL domain
-- is the default one.
CREATE FUNCTION shortlink_target(code text, domain text)
RETURNS TABLE (url text, status int, cache_control text)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 1
AS 'MODULE_PATHNAME', 'shortlink_target_in_domain_wrapper';
CREATE FUNCTION snowlink_internal.shortlink_target(code text, domain text)
RETURNS TABLE (url text, status int, cache_control text)
LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 1
AS 'MODULE_PATHNAME', 'shortlink_target_in_domain_wrapper';
COMMENT ON FUNCTION shortlink_target(text, text) IS
    'URL, redirect status and Cache-Control of a live short link of a domain (NULL: the default), for an HTTP front; counts the visit';
COMMENT ON FUNCTION snowlink_internal.shortlink_target(text, text) IS 'internal: shortlink_target(), for the extension''s SQL';

-- For PostgREST: the link's status, Location and Cache-Control from shortlink_target(), or 404;
-- for a link of a domain, or of the default domain.
CREATE FUNCTION shortlink_redirect(code text, domain text) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target record;
BEGIN
    SELECT * INTO target FROM snowlink_internal.shortlink_target(shortlink_redirect.code, shortlink_redirect.domain);
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
COMMENT ON FUNCTION shortlink_redirect(text, text) IS
    'for PostgREST: resolves a code of a domain (NULL: the default) and sets response.status and response.headers';

-- The default domain's. Bound when it is created: nothing made later can take the place of the
-- function it calls.
CREATE FUNCTION shortlink_redirect(code text) RETURNS text
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    SELECT @extschema@.shortlink_redirect(code, NULL::text);
END;
COMMENT ON FUNCTION shortlink_redirect(text) IS
    'for PostgREST: resolves a code and sets response.status and response.headers (Location, Cache-Control)';

-- Whether a code resolves (in a domain; NULL: the default domain), without counting a visit: for
-- an HTTP front that shows a link's QR code only while the link lives. Anyone may ask, as anyone
-- may follow a link; it reads the link as the extension's owner.
CREATE FUNCTION shortlink_is_live(code text, domain text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    -- PL/pgSQL, whose query Citus sends to the code's shard (it cannot plan an SQL function's).
    RETURN EXISTS (
        SELECT FROM @extschema@.shortlinks AS s
        WHERE s.code = shortlink_is_live.code
          AND s.domain IS NOT DISTINCT FROM snowlink_internal._shortlink_domain(shortlink_is_live.domain)
          AND snowlink_internal._shortlink_is_live(s.disabled, s.valid_from, s.expires_at, s.max_visits,
                                                   s.visits, now()));
END
$$;
COMMENT ON FUNCTION shortlink_is_live(text, text) IS
    'whether a code resolves (in a domain; NULL: the default), without counting a visit';
