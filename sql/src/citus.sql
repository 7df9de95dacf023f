-- Citus: making the extension's tables Citus tables. Only a superuser or the extension's owner
-- (who can run Citus's functions on these tables) calls it.
--
-- Plans on Citus. In the cached plan of a query that gives a Citus table's key as a parameter (a
-- PL/pgSQL function's, or one of src/shortlinks/kept_statement.rs), Citus keeps a plan of the
-- query for the node's own shard, and then never finds it again: it makes another at each run,
-- and the backend's memory grows (by about 21 kB a call of _shortlink_by_code() on a worker: 850
-- MB after 40,000 calls). So on Citus the extension's queries by key are planned at each run
-- (plan_cache_mode = force_custom_plan): always in the functions that one server does not call
-- for every shorten() or visit, and only on Citus, through set_config(), in those it does. Only
-- where the node holds shards: resolve() sets the mode of _shortlink_by_code() for each call
-- (src/shortlinks/link_query.rs), and keeps its plan on a node without shards of shortlinks (a
-- coordinator, as a rule), where a kept plan ran about a tenth faster.

-- Makes the extension's tables Citus tables; called once, on the coordinator of a Citus cluster.
-- shortlinks is distributed by code, so that the functions that take a code reach one shard. A
-- Citus key must be part of every unique constraint, so the primary key on id gives way to a
-- unique index on (id, code), which also serves as the replica identity (the unique code of a
-- domain cannot: the domain may be NULL). The
-- visits are distributed by code too, in the shards of their links, so that a link's statistics
-- are one shard's and a join of links with their visits runs on the shards; the URL locks by bucket, and the
-- list of each URL's links with them, so that shorten() finds a URL's link in one shard; the key
-- and the reserved codes, which every shorten() reads, are reference tables, a copy on every node.
-- Tables that Citus already manages are left as they are, so a second call does nothing. It
-- refuses a cluster whose nodes' snowflake ranges overlap.
CREATE FUNCTION shortlinks_distribute(shard_count int DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- Not Citus's notices that it copies each table, and how to free the local copy: it does that.
SET client_min_messages = warning
AS $$
DECLARE
    links regclass := '@extschema@.shortlinks';
    links_key text;
    unreadable text;
    shared_nodes text;
    stranded text;
    referencing text;
    citus_table regclass;
    key_column text;
    colocated_with text;
BEGIN
    IF shard_count < 1 THEN
        RAISE EXCEPTION 'shard_count must be positive, not %', shard_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'shortlinks_distribute() needs the citus extension in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run CREATE EXTENSION citus and add the workers first.';
    END IF;
    IF NOT pg_catalog.citus_is_coordinator() THEN
        RAISE EXCEPTION 'shortlinks_distribute() must be called on the coordinator, not on a worker'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- Nodes whose snowflake ranges overlap can make the same IDs and the same codes.
    WITH ranges AS MATERIALIZED (
        SELECT r.nodeid, r.success, r.result, CASE WHEN r.success THEN r.result::int4range END AS node_range
        FROM pg_catalog.run_command_on_all_nodes('SELECT snowlink_internal.snowflake_node_range()') AS r
    )
    SELECT (SELECT string_agg(format('node %s: %s', f.nodeid, f.result), ', ') FROM ranges AS f
            WHERE NOT f.success),
           (SELECT string_agg(format('nodes %s and %s share %s', a.nodeid, b.nodeid, a.node_range * b.node_range), ', ')
            FROM ranges AS a JOIN ranges AS b ON a.nodeid < b.nodeid AND a.node_range && b.node_range)
    INTO unreadable, shared_nodes;
    IF unreadable IS NOT NULL THEN
        RAISE EXCEPTION 'could not read the snowflake node range of every node: %', unreadable
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF shared_nodes IS NOT NULL THEN
        RAISE EXCEPTION 'the snowflake node ranges of the cluster overlap: %', shared_nodes
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Give every node a range of its own with snowlink.node_min and snowlink.node_max.';
    END IF;

    SELECT coalesce(pg_catalog.column_to_column_name(p.logicalrelid, p.partkey), '') INTO links_key
    FROM pg_dist_partition AS p
    WHERE p.logicalrelid = links;
    IF links_key IS DISTINCT FROM 'code' AND links_key IS NOT NULL THEN
        RAISE EXCEPTION 'shortlinks is already a Citus table, but not one distributed by code'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Only a local shortlinks can be distributed, and Citus cannot make a table of an extension local again.';
    END IF;
    IF links_key IS NULL THEN
        SELECT string_agg(format('%s (%I)', c.conrelid::regclass, c.conname), ', ') INTO referencing
        FROM pg_constraint AS c
        WHERE c.contype = 'f' AND c.confrelid = links;
        IF referencing IS NOT NULL THEN
            RAISE EXCEPTION 'shortlinks cannot be distributed while foreign keys reference it: %', referencing
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Drop them first. A table distributed by code with colocate_with => ''shortlinks'' can then reference shortlinks (code).';
        END IF;
        -- Links made on a worker before now are in that worker's own table, which the shards
        -- would hide for good.
        SELECT string_agg(format('%s:%s has %s', w.nodename, w.nodeport, w.result), ', ') INTO stranded
        FROM pg_catalog.run_command_on_workers('SELECT count(*) FROM @extschema@.shortlinks') AS w
        WHERE NOT w.success OR w.result <> '0';
        IF stranded IS NOT NULL THEN
            RAISE EXCEPTION 'workers hold links of their own, which distribution would hide: %', stranded
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Bring them to the coordinator (shortlinks_import() keeps their codes) and delete them on the workers first.';
        END IF;
        ALTER TABLE @extschema@.shortlinks DROP CONSTRAINT shortlinks_pkey;
        CREATE UNIQUE INDEX shortlinks_id ON @extschema@.shortlinks (id, code);
        ALTER TABLE @extschema@.shortlinks REPLICA IDENTITY USING INDEX shortlinks_id;
        PERFORM pg_catalog.create_distributed_table(links, 'code',
                                                    shard_count => shortlinks_distribute.shard_count);
        PERFORM pg_catalog.truncate_local_data_after_distributing_table(links);
    END IF;

    -- Each with its distribution column (NULL for a reference table) and the table it goes with.
    FOR citus_table, key_column, colocated_with IN
        VALUES ('@extschema@.shortlink_visits'::regclass, 'code', '@extschema@.shortlinks'),
               ('@extschema@.shortlink_url_locks'::regclass, 'bucket', 'none'),
               ('@extschema@.shortlink_url_links'::regclass, 'bucket', '@extschema@.shortlink_url_locks'),
               ('@extschema@.shortlink_key'::regclass, NULL, NULL),
               ('@extschema@.shortlink_reserved_codes'::regclass, NULL, NULL)
    LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_dist_partition AS p WHERE p.logicalrelid = citus_table);
        IF citus_table = '@extschema@.shortlink_visits'::regclass THEN
            -- Citus wants the code in the key too.
            ALTER TABLE @extschema@.shortlink_visits
                DROP CONSTRAINT shortlink_visits_pkey,
                ADD CONSTRAINT shortlink_visits_pkey PRIMARY KEY (code, link_id, day);
        END IF;
        IF key_column IS NULL THEN
            -- Citus refuses triggers on reference tables; without them, backends read these
            -- tables at every call instead of keeping them (tables.sql).
            EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s',
                                      (SELECT c.relname FROM pg_catalog.pg_class AS c
                                       WHERE c.oid OPERATOR(pg_catalog.=) citus_table) || '_changed',
                                      citus_table);
            PERFORM pg_catalog.create_reference_table(citus_table);
        ELSE
            -- A table placed with another has that one's shards.
            PERFORM pg_catalog.create_distributed_table(
                citus_table, key_column, colocate_with => colocated_with,
                shard_count => CASE WHEN colocated_with = 'none' THEN shortlinks_distribute.shard_count END);
        END IF;
        PERFORM pg_catalog.truncate_local_data_after_distributing_table(citus_table);
    END LOOP;
    -- Citus runs each call of these where the shards of its code are, so that the policy on
    -- shortlink_visits may ask there for the link of each row (owners.sql).
    PERFORM pg_catalog.create_distributed_function(f, '$1', colocate_with => '@extschema@.shortlinks',
                                                   force_delegation => true)
    FROM unnest(ARRAY['@extschema@.shortlink_stats(text, text)'::regprocedure,
                      '@extschema@.shortlink_daily_visits(text, date, date, text)'::regprocedure]) AS f;
    -- Every link listed under its URL, for shorten() (shorten.sql); from now on the functions
    -- that make, change and delete links keep the list. Links already listed stay as they are.
    INSERT INTO @extschema@.shortlink_url_links AS u (bucket, url, domain, code, link_id)
    SELECT snowlink_internal._shortlink_url_bucket(s.url), s.url, s.domain, s.code, s.id
    FROM @extschema@.shortlinks AS s
    ON CONFLICT DO NOTHING;
END
$$;
REVOKE ALL ON FUNCTION shortlinks_distribute(int) FROM PUBLIC;
COMMENT ON FUNCTION shortlinks_distribute(integer) IS
    'on a Citus coordinator: distributes shortlinks by code and makes the other tables of the extension Citus tables';
