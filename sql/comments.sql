-- Descriptions for \df+ and \dx+.
COMMENT ON SCHEMA snowlink_internal IS
    'functions of the snowlink extension that only its own code calls';
COMMENT ON FUNCTION base62_encode(bigint) IS
    'base 62 code (0-9a-zA-Z) of a non-negative bigint';
COMMENT ON FUNCTION base62_encode(bigint, integer) IS
    'base 62 code of a non-negative bigint, left-padded with 0 to min_length characters';
COMMENT ON FUNCTION base62_decode(text) IS
    'bigint that a base 62 code stands for';
COMMENT ON FUNCTION base_encode(bigint, text) IS
    'code of a non-negative bigint in the given alphabet (its first character is zero)';
COMMENT ON FUNCTION base_decode(text, text) IS
    'bigint that a code in the given alphabet stands for';
COMMENT ON FUNCTION snowflake_next() IS
    'new unique, time-ordered bigint ID from this backend''s node; not given back on rollback';
COMMENT ON FUNCTION snowflake_node_id() IS
    'node number this backend issues IDs from, claimed now if it holds none';
COMMENT ON FUNCTION snowflake_timestamp(bigint) IS
    'millisecond a snowflake ID was made in';
COMMENT ON FUNCTION snowflake_node(bigint) IS
    'node that made a snowflake ID';
COMMENT ON FUNCTION snowflake_sequence(bigint) IS
    'position of a snowflake ID within its node''s millisecond (0 to 4095)';
COMMENT ON FUNCTION snowflake_parse(bigint) IS
    'time, node and sequence of a snowflake ID';
COMMENT ON FUNCTION snowflake_min(timestamptz) IS
    'smallest snowflake ID made at or after the given time, for range scans of an ID key';
COMMENT ON FUNCTION snowlink_internal._snowflake_lock_tag() IS 'internal: the advisory lock tag of node claims';
COMMENT ON VIEW snowflake_nodes IS
    'snowflake nodes claimed on this server, with the backends that hold them';
COMMENT ON FUNCTION shorten(text, text, timestamptz, bigint, integer, boolean, timestamptz) IS
    'short link for a URL: a new one, or the live link with the same URL and options';
COMMENT ON FUNCTION resolve(text) IS
    'target URL of a live short link, with the visit counted; NULL for unknown, disabled, expired or used-up codes';
COMMENT ON FUNCTION shortlink_target(text) IS
    'URL, redirect status and Cache-Control of a live short link, for an HTTP front; counts the visit';
COMMENT ON FUNCTION shortlink_redirect(text) IS
    'for PostgREST: resolves a code and sets response.status and response.headers (Location, Cache-Control)';
COMMENT ON FUNCTION shortlink_stats(text) IS
    'visits of a short link, with the first and last visit time';
COMMENT ON FUNCTION shortlink_daily_visits(text, date, date) IS
    'visits of a short link per day (UTC), 0 for days without, from the day it was made to today by default';
COMMENT ON FUNCTION shortlink_disable(text, boolean) IS
    'stops a short link from resolving (disabled => false: lets it resolve again); false when the code is unknown';
COMMENT ON FUNCTION shortlink_enable(text) IS
    'lets a disabled short link resolve again; false when the code is unknown';
COMMENT ON FUNCTION shortlinks_purge_expired() IS
    'deletes expired and used-up short links with their visit rows, and returns how many';
COMMENT ON FUNCTION shortlinks_import(regclass, integer) IS
    'makes short links of the rows (code, url, created_at) of a table; returns the rows refused, with the reason';
COMMENT ON FUNCTION snowlink_internal._shortlinks_import(text[], text[], timestamptz[]) IS 'internal: imports one batch of links';
COMMENT ON FUNCTION snowlink_internal._shortlink_import_url(text, text) IS 'internal: the URL of a row to import as stored, or NULL when refused';
COMMENT ON FUNCTION snowlink_internal._shortlink_import_refusal(text, text) IS 'internal: why a row to import is refused, or NULL';
COMMENT ON FUNCTION shortlink_normalize_url(text) IS
    'URL as shorten() stores it, or an error saying why shorten() refuses it';
COMMENT ON FUNCTION snowlink_internal._shortlink_key() IS 'internal: the code key, made on first use';
COMMENT ON FUNCTION snowlink_internal._shortlink_keyed_code(bigint, bytea) IS 'internal: generated code of a counter value';
COMMENT ON FUNCTION snowlink_internal._shortlink_server_counter(bigint) IS 'internal: counter value of this server''s n-th generated code';
COMMENT ON FUNCTION shortlinks_distribute(integer) IS
    'on a Citus coordinator: distributes shortlinks by code and makes the other tables of the extension Citus tables';
COMMENT ON FUNCTION snowlink_internal._shortlink_take_daily_visits() IS 'internal: the visits this process counted or gathered, per link and day, for writing';
COMMENT ON FUNCTION snowlink_internal._shortlinks_flush_visits() IS 'internal: writes the visits this process counted or gathered';
COMMENT ON FUNCTION snowlink_internal._shortlink_live(text) IS 'internal: live link of a code, read with a query';
COMMENT ON FUNCTION snowlink_internal._shortlink_count_visit(text, bigint) IS 'internal: counts a visit of a link with max_visits, for the visit writer';
COMMENT ON TABLE shortlinks IS 'short links; change them through the snowlink functions';
COMMENT ON TABLE shortlink_visits IS 'visits of links without max_visits, one row per link and day (UTC)';
COMMENT ON TABLE shortlink_key IS 'secret key of generated codes; readable by no ordinary role';
COMMENT ON TABLE shortlink_url_locks IS 'rows on which concurrent shorten() calls for one URL wait for each other';
COMMENT ON TABLE shortlink_reserved_codes IS 'custom codes shorten() refuses (lower case)';
COMMENT ON FUNCTION snowflake_node_range() IS
    'this server''s snowflake node range, from snowlink.node_min and snowlink.node_max';
COMMENT ON FUNCTION snowflake_node_range_conflicts(int4range[]) IS
    'peer node ranges that overlap this server''s (none when servers cannot repeat each other''s IDs)';
COMMENT ON FUNCTION snowlink_internal.snowflake_next() IS 'internal: snowflake_next(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.snowflake_node_range() IS 'internal: snowflake_node_range(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.snowflake_min(timestamptz) IS 'internal: snowflake_min(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.base62_encode(bigint) IS 'internal: base62_encode(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.shortlink_normalize_url(text) IS 'internal: shortlink_normalize_url(), for the extension''s SQL';
COMMENT ON FUNCTION snowlink_internal.shortlink_target(text) IS 'internal: shortlink_target(), for the extension''s SQL';
