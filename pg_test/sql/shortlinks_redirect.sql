-- shortlink_redirect(code) -> text, for PostgREST: it sets response.status and response.headers
-- (Location and Cache-Control, built with json functions) and returns the target URL.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
SELECT (shorten('https://example.com/temporary', code => 'temp')).code;
SELECT (shorten('https://example.com/moved', code => 'moved', redirect_status => 301)).code;
SELECT (shorten('https://example.com/moved-for-an-hour', code => 'moved-hour', redirect_status => 308,
                expires_at => now() + interval '1 hour')).code;
SELECT (shorten('https://example.com/same-method', code => 'same-method', redirect_status => 307)).code;
SELECT (shorten('https://example.com/limited', code => 'moved-limited', redirect_status => 301,
                max_visits => 10)).code;
SELECT (shorten('https://example.com/a"quote\and\nmore', code => 'quoting')).code;
-- Links that never expire, or were always valid.
SELECT (shorten('https://example.com/forever', code => 'forever', redirect_status => 301,
                expires_at => 'infinity', valid_from => '-infinity')).code;
SELECT (shorten('https://example.com/forever-308', code => 'forever-308', redirect_status => 308,
                expires_at => 'infinity')).code;

CREATE FUNCTION pg_temp.redirect(code text)
RETURNS TABLE (body text, status text, headers json) LANGUAGE sql AS $$
    SELECT shortlink_redirect(code),
           current_setting('response.status', true),
           current_setting('response.headers', true)::json
$$;

-- Temporary redirects (302, 307) come back on every visit, so every visit counts.
SELECT * FROM pg_temp.redirect('temp');
SELECT * FROM pg_temp.redirect('same-method');
-- Permanent ones (301, 308) may be cached for a day, or until the link expires if sooner.
SELECT * FROM pg_temp.redirect('moved');
SELECT status, headers -> 0 AS location,
       regexp_replace(headers -> 1 ->> 'Cache-Control', '\d+$', '') AS cache_control,
       substring(headers -> 1 ->> 'Cache-Control' FROM '\d+$')::int BETWEEN 3590 AND 3600 AS about_an_hour
FROM pg_temp.redirect('moved-hour');
-- A permanent link that never expires is cached for a day too.
SELECT * FROM pg_temp.redirect('forever');
SELECT status, headers FROM pg_temp.redirect('forever-308');
-- A limited link is never cached.
SELECT * FROM pg_temp.redirect('moved-limited');
-- Quotes in the URL are percent-encoded, and a backslash is a slash, as browsers read them.
SELECT headers -> 0 ->> 'Location' AS location FROM pg_temp.redirect('quoting');
-- Unknown (or disabled, expired, used up) codes answer 404.
SELECT * FROM pg_temp.redirect('unknown');
SELECT * FROM pg_temp.redirect(NULL);
