-- Everything a user can see of the snowlink extension in the current database, one property per
-- line: "OBJECT | PROPERTY<TAB>VALUE". t/upgrade.pl compares an updated
-- database with a fresh install through it, so objects are named as pg_identify_object() names
-- them (no OIDs), every value is escaped onto one line, and properties that do not apply (NULL or
-- empty) are left out.
--
-- It covers the extension itself and the tables that pg_extension_config_dump() registered; every
-- member object (functions, tables, views, sequences, types, and any other kind at least by name);
-- what hangs off its relations (columns, defaults, constraints, indexes, triggers, policies,
-- rules); privileges, both effective (a default ACL spelled out) and initial (what pg_dump
-- compares with); owners and comments.
WITH extension AS (
    SELECT e.* FROM pg_extension AS e WHERE e.extname = 'snowlink'
),
member AS (
    SELECT d.classid, d.objid, d.objsubid
    FROM extension AS e
    JOIN pg_depend AS d
      ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid AND d.deptype = 'e'
),
relation AS (
    SELECT c.*
    FROM member AS m JOIN pg_class AS c ON c.oid = m.objid
    WHERE m.classid = 'pg_class'::regclass
),
-- What belongs to a member relation without being a member: columns (objsubid > 0), indexes,
-- constraints, triggers, policies and rules.
part AS (
    SELECT 'pg_class'::regclass AS classid, r.oid AS objid, a.attnum::int AS objsubid
    FROM relation AS r JOIN pg_attribute AS a ON a.attrelid = r.oid
    WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'pg_class'::regclass, i.indexrelid, 0
    FROM relation AS r JOIN pg_index AS i ON i.indrelid = r.oid
    UNION ALL
    SELECT 'pg_constraint'::regclass, k.oid, 0
    FROM relation AS r JOIN pg_constraint AS k ON k.conrelid = r.oid
    UNION ALL
    SELECT 'pg_trigger'::regclass, t.oid, 0
    FROM relation AS r JOIN pg_trigger AS t ON t.tgrelid = r.oid
    WHERE NOT t.tgisinternal
    UNION ALL
    SELECT 'pg_policy'::regclass, p.oid, 0
    FROM relation AS r JOIN pg_policy AS p ON p.polrelid = r.oid
    UNION ALL
    SELECT 'pg_rewrite'::regclass, w.oid, 0
    FROM relation AS r JOIN pg_rewrite AS w ON w.ev_class = r.oid
    WHERE w.rulename <> '_RETURN'
),
object AS (
    SELECT o.classid, o.objid, o.objsubid, i.type || ' ' || i.identity AS name
    FROM (SELECT * FROM member UNION ALL SELECT * FROM part) AS o
    CROSS JOIN LATERAL pg_identify_object(o.classid, o.objid, o.objsubid) AS i
),
property (name, property, value) AS (
    SELECT 'extension ' || e.extname, v.property, v.value
    FROM extension AS e
    CROSS JOIN LATERAL (VALUES
        ('version', e.extversion),
        ('schema', e.extnamespace::regnamespace::text),
        ('relocatable', e.extrelocatable::text),
        ('tables pg_dump dumps', (
            SELECT string_agg(c.config::regclass::text || ' ' || quote_literal(c.condition), ', '
                              ORDER BY c.config::regclass::text)
            FROM unnest(e.extconfig, e.extcondition) AS c (config, condition)))
    ) AS v (property, value)

    UNION ALL
    SELECT o.name, 'exists', 'yes' FROM object AS o
    UNION ALL
    SELECT o.name, 'comment', d.description
    FROM object AS o
    JOIN pg_description AS d
      ON (d.classoid, d.objoid, d.objsubid) = (o.classid, o.objid, o.objsubid)
    UNION ALL
    SELECT o.name, 'initial privileges (' || i.privtype::text || ')',
           (SELECT string_agg(a::text, ', ' ORDER BY a::text) FROM unnest(i.initprivs) AS a)
    FROM object AS o
    JOIN pg_init_privs AS i
      ON (i.classoid, i.objoid, i.objsubid) = (o.classid, o.objid, o.objsubid)

    -- Functions: pg_get_functiondef() spells out the arguments with their defaults, the result,
    -- language, volatility, strictness, parallel safety, SECURITY DEFINER, cost, SET options and
    -- the body.
    UNION ALL
    SELECT o.name, v.property, v.value
    FROM object AS o
    JOIN pg_proc AS f ON o.classid = 'pg_proc'::regclass AND f.oid = o.objid
    CROSS JOIN LATERAL (VALUES
        ('definition', CASE WHEN f.prokind IN ('f', 'p') THEN pg_get_functiondef(f.oid)
                            ELSE f.prokind::text END),
        ('owner', f.proowner::regrole::text),
        ('privileges', (SELECT string_agg(a::text, ', ' ORDER BY a::text)
                        FROM unnest(coalesce(f.proacl, acldefault('f', f.proowner))) AS a))
    ) AS v (property, value)

    -- Relations: tables, views, sequences and composite types.
    UNION ALL
    SELECT o.name, v.property, v.value
    FROM object AS o
    JOIN relation AS r ON o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND r.oid = o.objid
    LEFT JOIN pg_am AS am ON am.oid = r.relam
    LEFT JOIN pg_sequence AS s ON s.seqrelid = r.oid
    CROSS JOIN LATERAL (VALUES
        ('kind and persistence', r.relkind::text || r.relpersistence::text),
        ('access method', am.amname::text),
        ('options', (SELECT string_agg(x, ', ' ORDER BY x) FROM unnest(r.reloptions) AS x)),
        ('owner', r.relowner::regrole::text),
        ('privileges', (SELECT string_agg(a::text, ', ' ORDER BY a::text)
                        FROM unnest(coalesce(r.relacl, acldefault(
                            CASE r.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", r.relowner))) AS a)),
        ('row security and forced', r.relrowsecurity::text || ' ' || r.relforcerowsecurity::text),
        ('replica identity', r.relreplident::text),
        ('inherits', (SELECT string_agg(h.inhparent::regclass::text, ', ' ORDER BY h.inhseqno)
                      FROM pg_inherits AS h WHERE h.inhrelid = r.oid)),
        ('view definition', CASE WHEN r.relkind IN ('v', 'm') THEN pg_get_viewdef(r.oid) END),
        ('sequence', CASE WHEN s.seqrelid IS NOT NULL THEN concat_ws(' ',
            s.seqtypid::regtype, 'start', s.seqstart, 'increment', s.seqincrement, 'min', s.seqmin,
            'max', s.seqmax, 'cache', s.seqcache, 'cycle', s.seqcycle) END),
        ('owned by', (SELECT string_agg(pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), ', ')
                      FROM pg_depend AS d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid AND d.deptype = 'a'
                        AND r.relkind = 'S'))
    ) AS v (property, value)

    -- Columns: their place in the row as SELECT * shows it, type, default and the rest.
    UNION ALL
    SELECT o.name, v.property, v.value
    FROM object AS o
    JOIN pg_attribute AS a
      ON o.classid = 'pg_class'::regclass AND o.objsubid > 0
     AND a.attrelid = o.objid AND a.attnum = o.objsubid
    LEFT JOIN pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    LEFT JOIN pg_collation AS co ON co.oid = a.attcollation
    CROSS JOIN LATERAL (VALUES
        ('position', (SELECT count(*)::text FROM pg_attribute AS b
                      WHERE b.attrelid = a.attrelid AND b.attnum BETWEEN 1 AND a.attnum
                        AND NOT b.attisdropped)),
        ('type', format_type(a.atttypid, a.atttypmod)),
        ('not null', a.attnotnull::text),
        ('default', pg_get_expr(ad.adbin, ad.adrelid)),
        ('collation', co.collname::text),
        ('identity and generated', a.attidentity::text || a.attgenerated::text),
        ('storage and compression', a.attstorage::text || a.attcompression::text),
        ('privileges', (SELECT string_agg(x::text, ', ' ORDER BY x::text) FROM unnest(a.attacl) AS x))
    ) AS v (property, value)

    UNION ALL
    SELECT o.name, 'definition', pg_get_indexdef(i.indexrelid)
           || CASE WHEN i.indisclustered THEN ' CLUSTERED' ELSE '' END
           || CASE WHEN i.indisreplident THEN ' REPLICA IDENTITY' ELSE '' END
           || CASE WHEN NOT i.indisvalid THEN ' INVALID' ELSE '' END
    FROM object AS o
    JOIN pg_index AS i ON o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND i.indexrelid = o.objid

    UNION ALL
    SELECT o.name, 'definition', pg_get_constraintdef(k.oid)
           || CASE WHEN k.condeferrable THEN ' DEFERRABLE' ELSE '' END
           || CASE WHEN k.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END
    FROM object AS o
    JOIN pg_constraint AS k ON o.classid = 'pg_constraint'::regclass AND k.oid = o.objid

    UNION ALL
    SELECT o.name, 'definition', pg_get_triggerdef(t.oid) || ' ENABLED ' || t.tgenabled::text
    FROM object AS o
    JOIN pg_trigger AS t ON o.classid = 'pg_trigger'::regclass AND t.oid = o.objid

    UNION ALL
    SELECT o.name, 'definition', concat_ws(' ', p.polcmd, p.polpermissive, p.polroles::regrole[],
           pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
    FROM object AS o
    JOIN pg_policy AS p ON o.classid = 'pg_policy'::regclass AND p.oid = o.objid

    UNION ALL
    SELECT o.name, 'definition', pg_get_ruledef(o.objid)
    FROM object AS o
    WHERE o.classid = 'pg_rewrite'::regclass

    -- Types of their own: enum labels and domain definitions (a composite type is a relation).
    UNION ALL
    SELECT o.name, 'definition', concat_ws(' ', t.typtype, format_type(t.typbasetype, t.typtypmod),
           t.typnotnull, t.typdefault,
           (SELECT string_agg(l.enumlabel::text, ', ' ORDER BY l.enumsortorder)
            FROM pg_enum AS l WHERE l.enumtypid = t.oid),
           (SELECT string_agg(k.conname || ' ' || pg_get_constraintdef(k.oid), ', ' ORDER BY k.conname)
            FROM pg_constraint AS k WHERE k.contypid = t.oid))
    FROM object AS o
    JOIN pg_type AS t ON o.classid = 'pg_type'::regclass AND t.oid = o.objid
)
SELECT name || ' | ' || property || E'\t'
       || replace(replace(replace(value, E'\\', E'\\\\'), E'\n', E'\\n'), E'\t', E'\\t')
FROM property
WHERE value <> '';
