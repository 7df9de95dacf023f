-- Objects the benchmarks compare snowlink with: what users write by hand instead.
CREATE EXTENSION IF NOT EXISTS snowlink;

CREATE SEQUENCE bench_seq;
CREATE SEQUENCE bench_seq_cached CACHE 100;

-- The Instagram-style PL/pgSQL snowflake that people copy: milliseconds since an epoch, a shard
-- id, and nextval() % 1024.
CREATE SEQUENCE instagram_seq;
CREATE FUNCTION instagram_id(shard_id int DEFAULT 5) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    our_epoch bigint := 1262332800000;
    seq_id bigint;
    now_millis bigint;
BEGIN
    SELECT nextval('instagram_seq') % 1024 INTO seq_id;
    SELECT floor(extract(epoch FROM clock_timestamp()) * 1000) INTO now_millis;
    RETURN ((now_millis - our_epoch) << 23) | (shard_id << 10) | seq_id;
END
$$;

-- A typical hand-written PL/pgSQL base62 pair.
CREATE FUNCTION plpgsql_base62_encode(n bigint) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    alphabet text := '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
    result text := '';
BEGIN
    IF n = 0 THEN RETURN '0'; END IF;
    WHILE n > 0 LOOP
        result := substr(alphabet, (n % 62)::int + 1, 1) || result;
        n := n / 62;
    END LOOP;
    RETURN result;
END
$$;
CREATE FUNCTION plpgsql_base62_decode(code text) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    alphabet text := '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
    result bigint := 0;
    i int;
BEGIN
    FOR i IN 1 .. length(code) LOOP
        result := result * 62 + strpos(alphabet, substr(code, i, 1)) - 1;
    END LOOP;
    RETURN result;
END
$$;

-- Tables keyed four ways, for the insert benchmarks.
CREATE TABLE keyed_snowflake (id bigint PRIMARY KEY DEFAULT snowflake_next(), payload text);
CREATE TABLE keyed_bigserial (id bigserial PRIMARY KEY, payload text);
CREATE TABLE keyed_uuid (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), payload text);
CREATE TABLE keyed_instagram (id bigint PRIMARY KEY DEFAULT instagram_id(), payload text);

-- A hand-written shortener: a table with a nextval()-based code.
CREATE SEQUENCE plain_code_seq START 56800235584;
CREATE TABLE plain_links (
    code text COLLATE "C" PRIMARY KEY,
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- The same, written by hand for many tenants as shortlinks keeps them: each link belongs to the
-- role that made it, and row-level security lets a role see and write only its own; tags are
-- GIN-indexed; a role's links are listed through an index on the owner.
CREATE TABLE plain_tenant_links (
    code text COLLATE "C" PRIMARY KEY,
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    owner text COLLATE "C" NOT NULL DEFAULT CURRENT_USER,
    tags text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX plain_tenant_links_owner ON plain_tenant_links (owner, created_at);
CREATE INDEX plain_tenant_links_tags ON plain_tenant_links USING gin (tags);
ALTER TABLE plain_tenant_links ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_links ON plain_tenant_links USING (owner = CURRENT_USER);
-- The same shape, for the links of section 7 (millions of them).
CREATE TABLE plain_scale (
    code text COLLATE "C" PRIMARY KEY,
    url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
