-- The tables of short links, and the role through which applications reach them.
--
-- The functions of sql/src/ that touch these tables pin search_path to pg_catalog, pg_temp and
-- name every object of the extension by schema, so a caller's search_path cannot redirect them.
-- The functions they call are those of snowlink_internal (internal_schema.sql), where no other
-- role can add one that would make the call ambiguous. Those that manage links run as their
-- caller, under the row-level security of owners.sql; those that write visits and the counter run
-- as the extension's owner (SECURITY DEFINER).
--
-- Those that query the tables with their arguments are PL/pgSQL, not SQL: on Citus (see
-- shortlinks_distribute() in citus.sql) only PL/pgSQL's queries can be sent to the shard that a
-- code picks.

-- Whose request this is, for the links it makes and may see (owners.sql): the owner that the
-- application names with SET LOCAL snowlink.owner = 'user-42', or else the current role
-- (src/shortlinks/mod.rs). The owner counts only together with the role (column owner_role), so
-- that the setting, which any role may set, narrows what a role sees but never widens it.
COMMENT ON FUNCTION snowlink_internal._shortlink_owner() IS
    'internal: the owner of the current request: snowlink.owner, or else the current role';

-- Whether a link may redirect with an HTTP status (src/shortlinks/redirect_status.rs): the CHECK of
-- shortlinks.redirect_status below, which every role that writes the table runs.
COMMENT ON FUNCTION snowlink_internal._shortlink_is_redirect_status(smallint) IS
    'internal: whether a link may redirect with this HTTP status (301, 302, 307 or 308)';

-- Defaults and CHECK constraints are bound when they are created: they name their operators and
-- functions with their schema, so that nothing in the extension's schema can be chosen instead.
CREATE TABLE shortlinks (
    id bigint PRIMARY KEY DEFAULT @extschema@.snowflake_next(),
    code text COLLATE "C" NOT NULL,
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    valid_from timestamptz,
    expires_at timestamptz,
    max_visits bigint CHECK (max_visits OPERATOR(pg_catalog.>) 0),
    -- The statuses are those of src/shortlinks/redirect_status.rs.
    redirect_status smallint NOT NULL DEFAULT 302
        CONSTRAINT shortlinks_redirect_status_check CHECK (snowlink_internal._shortlink_is_redirect_status(redirect_status)),
    disabled boolean NOT NULL DEFAULT false,
    -- Visits folded into the row: every visit of a link with max_visits, and for other links
    -- those that shortlinks_purge_expired() folded in. shortlink_stats() gives the total.
    visits bigint NOT NULL DEFAULT 0,
    first_visit_at timestamptz,
    last_visit_at timestamptz,
    -- For the application's users: shorten() stores both in the normal form of
    -- src/shortlinks/labels.rs.
    title text,
    tags text[] NOT NULL DEFAULT '{}',
    -- Who made the link: the role, and the owner within it (see _shortlink_owner() above).
    owner_role text COLLATE "C" NOT NULL DEFAULT CURRENT_USER,
    owner text COLLATE "C" NOT NULL DEFAULT snowlink_internal._shortlink_owner(),
    -- The host (and port) that serves the link, in the normal form of src/shortlinks/domains.rs;
    -- NULL: the default domain.
    domain text COLLATE "C",
    -- A code is unique within its domain; the default domain is one domain, not a NULL each.
    -- resolve() reads this index itself (src/shortlinks/link_lookup.rs).
    CONSTRAINT shortlinks_code_key UNIQUE NULLS NOT DISTINCT (code, domain),
    CHECK (valid_from OPERATOR(pg_catalog.<) expires_at)
) WITH (fillfactor = 90);

COMMENT ON TABLE shortlinks IS 'short links; change them through the snowlink functions';

-- Finds the live link of a URL without a b-tree on the URL, whose entries are limited to 2.7 kB.
CREATE INDEX shortlinks_url_hash ON shortlinks USING hash (url);
CREATE INDEX shortlinks_expires_at ON shortlinks (expires_at) WHERE expires_at IS NOT NULL;
-- Finds the links with a tag (shortlinks_tagged()). Links without tags, most of them, have no
-- entry: each would cost an insert into the index and its write-ahead log.
CREATE INDEX shortlinks_tags ON shortlinks USING gin (tags) WHERE tags OPERATOR(pg_catalog.<>) '{}';
-- Finds an owner's links, newest first.
CREATE INDEX shortlinks_owner ON shortlinks (owner_role, owner, id);

-- Visits of links without max_visits, one row per link and day (UTC): rows grow with links and
-- days, never with backends. The visit writer (or a backend that writes its own visits) writes
-- batches, each in the order of link and day, so that two batches never wait for each other in a
-- cycle. Half of each page stays free, so that a batch, which updates many rows of a page at
-- once, writes the new versions beside the old (HOT) instead of into new pages and new index
-- entries. Each row has its link's code, by which shortlinks_distribute() places it in the shard
-- of its link on Citus (where the key takes the code too). (The day and the code come last because
-- updates add them.)
CREATE TABLE shortlink_visits (
    link_id bigint NOT NULL,
    visits bigint NOT NULL,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    day date NOT NULL,
    code text COLLATE "C" NOT NULL,
    CONSTRAINT shortlink_visits_pkey PRIMARY KEY (link_id, day)
) WITH (fillfactor = 50);

COMMENT ON TABLE shortlink_visits IS 'visits of links without max_visits, one row per link and day (UTC)';

-- Visits whose link a write did not find in a link made in the last minute, which may be one that
-- a transaction had not committed yet (resolved in the transaction that made it): the next write
-- takes them again. On Citus every node keeps its own.
CREATE TABLE shortlink_visits_unseen (
    link_id bigint NOT NULL,
    day date NOT NULL,
    visits bigint NOT NULL,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (link_id, day)
);

COMMENT ON TABLE shortlink_visits_unseen IS 'visits of links made in the last minute that a write did not see yet';

-- The dense counter behind generated codes, and the key that permutes it.
CREATE SEQUENCE shortlink_code_seq AS bigint MINVALUE 0 START 0;
CREATE TABLE shortlink_key (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    key bytea NOT NULL CHECK (pg_catalog.length(key) OPERATOR(pg_catalog.=) 16)
);

COMMENT ON TABLE shortlink_key IS 'secret key of generated codes; readable by no ordinary role';

-- The bucket of a URL: its row of shortlink_url_locks, and on Citus its shard of
-- shortlink_url_links.
CREATE FUNCTION snowlink_internal._shortlink_url_bucket(url text) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.hashtext(url) OPERATOR(pg_catalog.&) 65535;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_url_bucket(text) FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_url_bucket(text) IS
    'internal: the bucket of a URL, for its row of shortlink_url_locks';

-- shorten() calls for one URL (and options) wait for each other on one of these rows, so that they
-- agree on one link. Only shorten() can lock a row here (through _shortlink_lock_url()), unlike
-- an advisory lock, which any role can take. And a row's update, unlike a lock, makes a
-- REPEATABLE READ or SERIALIZABLE caller whose snapshot cannot see the link the other call made
-- fail with 40001, instead of making a second link. URLs share the rows by bucket: two URLs that
-- share one only wait for each other.
CREATE TABLE shortlink_url_locks (
    bucket int PRIMARY KEY,
    updates bigint NOT NULL DEFAULT 0
);
-- Every value of _shortlink_url_bucket().
INSERT INTO shortlink_url_locks (bucket) SELECT pg_catalog.generate_series(0, 65535);

COMMENT ON TABLE shortlink_url_locks IS 'rows on which concurrent shorten() calls for one URL wait for each other';

-- On Citus, where shorten() finds the links of a URL: a row per link, under its URL's bucket, in
-- the shard of the bucket's lock row (shortlinks_distribute() co-locates them), so that the lock,
-- this lookup and the note of a new link reach one shard, and the link itself its code's. Kept by
-- the extension's functions that make, change and delete links, from shortlinks_distribute() on,
-- which fills it. Empty on one server, where the hash index on shortlinks.url finds them.
CREATE TABLE shortlink_url_links (
    bucket int NOT NULL,
    url text NOT NULL,
    domain text COLLATE "C",
    code text COLLATE "C" NOT NULL,
    link_id bigint NOT NULL,
    PRIMARY KEY (bucket, link_id)
);
CREATE INDEX shortlink_url_links_url ON shortlink_url_links USING hash (url);

COMMENT ON TABLE shortlink_url_links IS 'on Citus, the links of each URL, for shorten() to find them in one shard';

-- Custom codes that would shadow an application's own paths, compared in lower case. The endpoints
-- of snowlink-http are refused by the rule of src/shortlinks/code_rule.rs, not listed here.
CREATE TABLE shortlink_reserved_codes (
    code text COLLATE "C" PRIMARY KEY CHECK (code OPERATOR(pg_catalog.=) pg_catalog.lower(code)),
    builtin boolean NOT NULL DEFAULT false
);
INSERT INTO shortlink_reserved_codes (code, builtin)
SELECT reserved, true
FROM unnest(ARRAY['admin', 'api', 'app', 'assets', 'auth', 'dashboard', 'favicon', 'health',
                  'help', 'login', 'logout', 'robots', 'rpc', 'settings', 'signin', 'signup',
                  'sitemap', 'static', 'stats', 'www']) AS reserved;

COMMENT ON TABLE shortlink_reserved_codes IS 'custom codes shorten() refuses (lower case)';

-- Backends keep the rows of shortlink_key and shortlink_reserved_codes in memory
-- (src/shortlinks/table_cache.rs); this trigger makes every backend forget them when they change.
-- ENABLE ALWAYS: also when logical replication or session_replication_role = replica writes them.
-- (On Citus, which refuses triggers on reference tables, shortlinks_distribute() drops them, and
-- backends read the tables at every call.)
CREATE FUNCTION snowlink_internal._shortlink_table_changed() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', '_shortlink_table_changed_wrapper';
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_table_changed() FROM PUBLIC;
COMMENT ON FUNCTION snowlink_internal._shortlink_table_changed() IS
    'internal: tells every backend that a table it keeps in memory changed';
CREATE TRIGGER shortlink_key_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON shortlink_key
    FOR EACH STATEMENT EXECUTE FUNCTION snowlink_internal._shortlink_table_changed();
ALTER TABLE shortlink_key ENABLE ALWAYS TRIGGER shortlink_key_changed;
CREATE TRIGGER shortlink_reserved_codes_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON shortlink_reserved_codes
    FOR EACH STATEMENT EXECUTE FUNCTION snowlink_internal._shortlink_table_changed();
ALTER TABLE shortlink_reserved_codes ENABLE ALWAYS TRIGGER shortlink_reserved_codes_changed;

-- pg_dump keeps every link, visit, the counter and the key; of the reserved codes, those added.
SELECT pg_catalog.pg_extension_config_dump('shortlinks', '');
SELECT pg_catalog.pg_extension_config_dump('shortlink_visits', '');
SELECT pg_catalog.pg_extension_config_dump('shortlink_visits_unseen', '');
SELECT pg_catalog.pg_extension_config_dump('shortlink_code_seq', '');
SELECT pg_catalog.pg_extension_config_dump('shortlink_key', '');
SELECT pg_catalog.pg_extension_config_dump('shortlink_reserved_codes', 'WHERE NOT builtin');

-- Who may do what. Anyone may follow a link; applications get the rest through snowlink_user,
-- granted each function beside it, and see and change only their own links (owners.sql);
-- snowlink_admin sees and manages every link.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'snowlink_user') THEN
        CREATE ROLE snowlink_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'snowlink_admin') THEN
        CREATE ROLE snowlink_admin NOLOGIN IN ROLE snowlink_user;
    END IF;
END
$$;
