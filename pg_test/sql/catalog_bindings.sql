-- Everything PostgreSQL binds when the extension is created (views, defaults, CHECK constraints,
-- index expressions, SQL function bodies) names its operators and functions with their schema.
-- Here an untrusted role owns the schema the extension goes into, and plants operators and
-- functions there, before CREATE EXTENSION, for every operand types that PostgreSQL's own have
-- only through a cast or a polymorphic type: none of them may be bound by an extension object.
CREATE EXTENSION dblink;
CREATE DATABASE snowlink_planted;
SELECT format('host=%s port=%s dbname=snowlink_planted',
              current_setting('unix_socket_directories'), current_setting('port')) AS planted \gset
SELECT dblink_connect('planted', :'planted');
CREATE ROLE planter;
SELECT dblink_exec('planted', $sql$
    CREATE SCHEMA planted AUTHORIZATION planter;
    SET ROLE planter;
    CREATE FUNCTION planted.oid_int(oid, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
    CREATE OPERATOR planted.= (LEFTARG = oid, RIGHTARG = integer, FUNCTION = planted.oid_int);
    CREATE FUNCTION planted.ranges(int4range, int4range) RETURNS boolean LANGUAGE sql AS 'SELECT true';
    CREATE OPERATOR planted.&& (LEFTARG = int4range, RIGHTARG = int4range, FUNCTION = planted.ranges);
    CREATE FUNCTION planted.range_product(int4range, int4range) RETURNS int4range
        LANGUAGE sql AS 'SELECT int4range(0, 1)';
    CREATE OPERATOR planted.* (LEFTARG = int4range, RIGHTARG = int4range, FUNCTION = planted.range_product);
    CREATE FUNCTION planted.unnest(int4range[]) RETURNS SETOF int4range
        LANGUAGE sql AS 'SELECT int4range(0, 1)';
    CREATE FUNCTION planted.text_text(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
    CREATE OPERATOR planted.= (LEFTARG = text, RIGHTARG = text, FUNCTION = planted.text_text);
    CREATE FUNCTION planted.smallint_int(smallint, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
    CREATE OPERATOR planted.= (LEFTARG = smallint, RIGHTARG = integer, FUNCTION = planted.smallint_int);
    CREATE FUNCTION planted.bigint_int(bigint, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
    CREATE OPERATOR planted.> (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = planted.bigint_int);
    CREATE FUNCTION planted.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT 'epoch'::timestamptz$$;
    CREATE FUNCTION planted.lower(text) RETURNS text LANGUAGE sql AS 'SELECT $1';
    CREATE FUNCTION planted.length(bytea) RETURNS integer LANGUAGE sql AS 'SELECT 16';
    RESET ROLE;
    CREATE EXTENSION snowlink SCHEMA planted
$sql$);

-- What the extension's objects were bound to, outside pg_catalog and the extension itself: nothing.
SELECT * FROM dblink('planted', $sql$
    WITH member AS (
        SELECT d.classid, d.objid
        FROM pg_depend AS d JOIN pg_extension AS e ON d.refobjid = e.oid
        WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'snowlink' AND d.deptype = 'e'
    ),
    bound AS (
        -- Members, and what belongs to member relations: rules (views), defaults, constraints,
        -- indexes.
        SELECT classid, objid FROM member
        UNION ALL
        SELECT 'pg_rewrite'::regclass, w.oid FROM pg_rewrite AS w JOIN member AS m ON w.ev_class = m.objid
        UNION ALL
        SELECT 'pg_attrdef'::regclass, a.oid FROM pg_attrdef AS a JOIN member AS m ON a.adrelid = m.objid
        UNION ALL
        SELECT 'pg_constraint'::regclass, c.oid FROM pg_constraint AS c JOIN member AS m ON c.conrelid = m.objid
        UNION ALL
        SELECT 'pg_class'::regclass, i.indexrelid FROM pg_index AS i JOIN member AS m ON i.indrelid = m.objid
    )
    SELECT pg_describe_object(b.classid, b.objid, 0) AS object,
           pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) AS bound_to
    FROM bound AS b
    JOIN pg_depend AS d ON d.classid = b.classid AND d.objid = b.objid
    JOIN pg_namespace AS n ON n.nspname = 'planted'
    WHERE d.refclassid IN ('pg_operator'::regclass, 'pg_proc'::regclass)
      AND NOT EXISTS (SELECT FROM member AS m WHERE m.classid = d.refclassid AND m.objid = d.refobjid)
      AND n.oid IN ((SELECT oprnamespace FROM pg_operator WHERE oid = d.refobjid),
                    (SELECT pronamespace FROM pg_proc WHERE oid = d.refobjid))
    ORDER BY 1, 2
$sql$) AS t(object text, bound_to text);

-- The objects still work, with the planted ones in place.
SELECT * FROM dblink('planted', $sql$
    SET search_path = planted;
    SELECT count(*) FROM planted.snowflake_nodes
$sql$) AS t(claims_seen bigint);
SELECT * FROM dblink('planted', $sql$
    SELECT * FROM planted.snowflake_node_range_conflicts('{"[0,3]", "[2000,3000]"}')
$sql$) AS t(peer_range int4range, shared_nodes int4range);

SELECT dblink_disconnect('planted');
DROP DATABASE snowlink_planted WITH (FORCE);
DROP ROLE planter;
DROP EXTENSION dblink;
