-- Owners: which links a role sees and changes, enforced by row-level security.
--
-- Every link has an owner: the role that made it, and within that role the owner its application
-- named with SET LOCAL snowlink.owner (_shortlink_owner() in tables.sql). A role in snowlink_user
-- sees, changes and deletes only the links of its own role and current owner, through the
-- functions and through the table itself; a role in snowlink_admin, every link. Following a link
-- is not filtered: resolve() and shortlink_target() read the code index as the extension's owner.
--
-- The functions that manage links therefore run as their caller, so that these policies see who
-- calls; they reach the counter, the code key and the URL locks only through the narrow SECURITY
-- DEFINER helpers of shorten.sql and manage.sql. What a caller may write, directly or through
-- them, is limited by column grants, and what a row may hold by the policies: only IDs that no
-- backend but the caller's can ever issue, and code, URL, title and tags in the form shorten()
-- stores them.

-- Whether a link's code, URL, redirect status, title, tags and domain are as shorten() would store
-- them (src/shortlinks/mod.rs): what the policies below ask of every row a role writes.
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_well_formed(text, text, smallint, text, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_is_well_formed(text, text, smallint, text, text[], text) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_well_formed(text, text, smallint, text, text[], text) IS
    'internal: whether a link''s code, URL, redirect status, title, tags and domain are as shorten() stores them';

-- What a role in snowlink_user may do with the tables themselves; the policies pick the rows.
-- Neither the owner, the code or domain of an existing link nor its counted visits can be
-- changed. (INSERT is granted on every column: Citus sends the shards every column, the defaults
-- filled in; the policies hold a new row's owner and visits to what they must be.)
GRANT SELECT ON shortlink_reserved_codes TO snowlink_user;
GRANT SELECT, INSERT, DELETE ON shortlinks TO snowlink_user;
GRANT UPDATE (url, valid_from, expires_at, max_visits, redirect_status, disabled, title, tags)
    ON shortlinks TO snowlink_user;
-- Links are handed to another owner with a plain UPDATE.
GRANT UPDATE (owner_role, owner) ON shortlinks TO snowlink_admin;

ALTER TABLE shortlinks ENABLE ROW LEVEL SECURITY;

-- A role's links of the current owner, for reading and writing.
CREATE POLICY owner_links ON shortlinks
    USING (owner_role OPERATOR(pg_catalog.=) CURRENT_USER::text
           AND owner OPERATOR(pg_catalog.=) snowlink_internal._shortlink_owner());
CREATE POLICY every_link ON shortlinks TO snowlink_admin
    USING (true);

-- Every row a role writes, whoever may read it, is well formed. A new link's ID is one that the
-- generator can never issue again (snowflake_next() of the same backend, called directly or as
-- the column's default), its code is not reserved, and it has no visits yet. No role may change
-- a link's code, so an update is not held to the code rule: a code reserved later, or that became
-- an endpoint of snowlink-http, stays with the link that has it, whose owner may still edit it.
CREATE POLICY well_formed_new_links ON shortlinks AS RESTRICTIVE FOR INSERT
    WITH CHECK (snowlink_internal._snowflake_issued_here(id)
                AND snowlink_internal._shortlink_reserved_refusal(code) IS NULL
                AND visits OPERATOR(pg_catalog.=) 0 AND first_visit_at IS NULL AND last_visit_at IS NULL
                AND snowlink_internal._shortlink_is_well_formed(code, url, redirect_status, title, tags, domain));
CREATE POLICY well_formed_links ON shortlinks AS RESTRICTIVE FOR UPDATE
    USING (true)
    WITH CHECK (snowlink_internal._shortlink_is_well_formed(NULL, url, redirect_status, title, tags, domain));

-- Whether the caller sees the link of a code and ID: the visit rows of shortlink_visits are seen
-- with their link. A function rather than a subquery in the policy, which Citus refuses. On Citus
-- the policy runs on the shard of the visit rows, which may query another shard only inside a
-- call that Citus runs on the node of a code's shard, and only that code's shards: the calls of
-- shortlink_stats() and shortlink_daily_visits() (shortlinks_distribute(), citus.sql). Citus
-- compares this query's code with the call's, collation included: hence PL/pgSQL, whose
-- parameters Citus can plan (a SQL function's it cannot), and the policy's code in the default
-- collation, which a call's literal has.
CREATE FUNCTION snowlink_internal._shortlink_is_visible(code text, link_id bigint) RETURNS boolean
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = auto
AS $$
BEGIN
    IF snowlink_internal._shortlinks_distributed() THEN
        PERFORM pg_catalog.set_config('plan_cache_mode', 'force_custom_plan', true); -- citus.sql
    END IF;
    PERFORM FROM @extschema@.shortlinks AS s
    WHERE s.code = _shortlink_is_visible.code AND s.id = _shortlink_is_visible.link_id;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION snowlink_internal._shortlink_is_visible(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snowlink_internal._shortlink_is_visible(text, bigint) TO snowlink_user;
COMMENT ON FUNCTION snowlink_internal._shortlink_is_visible(text, bigint) IS
    'internal: whether the caller sees the link of a code and ID';

-- Visit rows are written by the visit writer and the extension's functions only. A role in
-- snowlink_admin reads every one without asking for its link: on Citus, a query on a shard cannot
-- ask another (the one policy true, PostgreSQL calls no function for its rows).
GRANT SELECT ON shortlink_visits TO snowlink_user;
ALTER TABLE shortlink_visits ENABLE ROW LEVEL SECURITY;
CREATE POLICY visits_of_visible_links ON shortlink_visits FOR SELECT
    USING (snowlink_internal._shortlink_is_visible(code COLLATE "default", link_id));
CREATE POLICY every_visit ON shortlink_visits FOR SELECT TO snowlink_admin
    USING (true);
