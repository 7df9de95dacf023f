-- API keys: how a service that reaches the database as one role (snowlink-http) acts for many
-- owners. A role in snowlink_admin makes a key for an owner and hands it to a client once; the
-- table keeps only the key's SHA-256. For each request the service passes the client's key to
-- snowlink_api_key_use(), which makes the key's owner the owner of the transaction
-- (snowlink.owner), and a read-only key's transaction read-only, so that the row-level security
-- of owners.sql and PostgreSQL itself hold the request to what the key may do. Keys are checked
-- at every use: a revoked key is refused from the commit of its revocation on.
CREATE TABLE snowlink_api_keys (
    id bigint PRIMARY KEY DEFAULT @extschema@.snowflake_next(),
    owner text COLLATE "C" NOT NULL CHECK (owner OPERATOR(pg_catalog.<>) ''),
    read_only boolean NOT NULL DEFAULT false,
    note text,
    key_sha256 bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    revoked_at timestamptz
);
COMMENT ON TABLE snowlink_api_keys IS
    'API keys, each acting for an owner; only a hash of each key is kept';
-- Administrators list the keys, without their hashes; the functions below make and revoke them.
GRANT SELECT (id, owner, read_only, note, created_at, revoked_at) ON snowlink_api_keys TO snowlink_admin;
-- pg_dump keeps the keys.
SELECT pg_catalog.pg_extension_config_dump('snowlink_api_keys', '');

-- A new key for an owner, returned once: "sl_" and 64 hexadecimal digits (244 random bits, from
-- two version-4 UUIDs). A read-only key may read its owner's links and statistics, not change them.
CREATE FUNCTION snowlink_api_key_create(owner text, read_only boolean DEFAULT false, note text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    api_key text := 'sl_' OPERATOR(pg_catalog.||) pg_catalog.encode(
        pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
            OPERATOR(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 'hex');
BEGIN
    IF snowlink_api_key_create.owner IS NULL OR snowlink_api_key_create.owner OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'owner must not be NULL or empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.snowlink_api_keys (owner, read_only, note, key_sha256)
    VALUES (snowlink_api_key_create.owner, coalesce(snowlink_api_key_create.read_only, false),
            snowlink_api_key_create.note, pg_catalog.sha256(pg_catalog.convert_to(api_key, 'UTF8')));
    RETURN api_key;
END
$$;
REVOKE ALL ON FUNCTION snowlink_api_key_create(text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_api_key_create(text, boolean, text) TO snowlink_admin;
COMMENT ON FUNCTION snowlink_api_key_create(text, boolean, text) IS
    'a new API key acting for an owner, shown this once';

-- Revokes a key: false when there is no such key, or it was revoked already.
CREATE FUNCTION snowlink_api_key_revoke(id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.snowlink_api_keys AS k
    SET revoked_at = pg_catalog.now()
    WHERE k.id OPERATOR(pg_catalog.=) snowlink_api_key_revoke.id AND k.revoked_at IS NULL;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION snowlink_api_key_revoke(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_api_key_revoke(bigint) TO snowlink_admin;
COMMENT ON FUNCTION snowlink_api_key_revoke(bigint) IS 'revokes an API key; false when unknown or revoked already';

-- For the service, at the start of each request's transaction: the key's owner becomes the owner
-- of the transaction, and a read-only key's transaction becomes read-only. An unknown or revoked
-- key is refused with 28000, without saying which. Outside a transaction block the settings end
-- with the statement, so the service calls it in the transaction of the request.
CREATE FUNCTION snowlink_api_key_use(api_key text, OUT owner text, OUT read_only boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT k.owner, k.read_only INTO owner, read_only
    FROM @extschema@.snowlink_api_keys AS k
    WHERE k.key_sha256 OPERATOR(pg_catalog.=) pg_catalog.sha256(pg_catalog.convert_to(api_key, 'UTF8'))
      AND k.revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'API key is unknown or revoked' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    PERFORM pg_catalog.set_config('snowlink.owner', owner, true);
    IF read_only THEN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION snowlink_api_key_use(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_api_key_use(text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_api_key_use(text) IS
    'makes an API key''s owner that of the transaction (read-only for a read-only key); 28000 when unknown or revoked';
