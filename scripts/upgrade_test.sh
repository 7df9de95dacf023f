#!/usr/bin/env bash
# ALTER EXTENSION snowlink UPDATE from every released version (sql/snowlink--VERSION.sql) to the
# current one. The updated database must be indistinguishable from a fresh install, keep every
# link, visit (written or still counted in a backend), custom code, the code key, the counter and
# the node claims, and applications that call resolve(), shorten() and snowflake_next() while the
# update runs must get right answers only. Runs against the server in PGHOST/PGPORT (the test
# command's scratch cluster) and prints one line per check.
source "$(dirname "$0")/lib.sh"

UPDATED_DB=snowlink_updated
FRESH_DB=snowlink_fresh
# Not public, so that an update script that names public where it means @extschema@ fails.
SCHEMA=links
LOAD_SECONDS=8
LOAD_CLIENTS=4
WORK=$PROJECT_DIR/target/upgrade_test

rm -rf "$WORK"
mkdir -p "$WORK"

sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# A new database whose sessions find the extension's objects in $SCHEMA and create their own in
# public.
recreate_database() {
    sql postgres "DROP DATABASE IF EXISTS $1 WITH (FORCE)" 2>/dev/null
    sql postgres "CREATE DATABASE $1"
    sql postgres "ALTER DATABASE $1 SET search_path = public, $SCHEMA"
    sql "$1" "CREATE SCHEMA $SCHEMA"
}

# The extension's C functions as "SYMBOL<TAB>argument and result types", sorted.
c_functions() {
    sql "$1" "SELECT p.prosrc || E'\t' || coalesce(p.proallargtypes, p.proargtypes::oid[])::regtype[]::text
                     || coalesce(' ' || p.proargmodes::text, '') || ' returns '
                     || CASE WHEN p.proretset THEN 'setof ' ELSE '' END || p.prorettype::regtype
              FROM pg_proc AS p
              JOIN pg_depend AS d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
              JOIN pg_extension AS e ON e.oid = d.refobjid AND e.extname = 'snowlink'
              WHERE p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')" | LC_ALL=C sort
}

catalog() {
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -f "$PROJECT_DIR/scripts/extension_catalog.sql" | LC_ALL=C sort
}

# compare FILE_A FILE_B LABEL_A LABEL_B: the lines "KEY<TAB>VALUE" whose KEY has another VALUE (or
# none) on the other side, as "KEY" followed by both values.
compare() {
    LC_ALL=C join -t $'\t' -a 1 -a 2 -e '(absent)' -o 0,1.2,2.2 "$1" "$2" |
        awk -F'\t' -v a="$3" -v b="$4" '$2 != $3 { printf "%s\n    %s: %s\n    %s: %s\n", $1, a, $2, b, $3 }'
}

# wait_for_other_backends DB: until every other client backend of DB has exited (and so written
# the visits it held).
wait_for_other_backends() {
    sql "$1" "DO \$\$ BEGIN
                  WHILE EXISTS (SELECT FROM pg_stat_activity
                                WHERE datname = current_database() AND pid <> pg_backend_pid()
                                  AND backend_type = 'client backend') LOOP
                      PERFORM pg_sleep(0.01);
                      PERFORM pg_stat_clear_snapshot();
                  END LOOP;
              END \$\$"
}

current_version=$(sql postgres "SELECT default_version FROM pg_available_extensions WHERE name = 'snowlink'")

test_update_from() {
    local from=$1 db=$UPDATED_DB
    echo "# from $from to $current_version"
    recreate_database "$db"
    recreate_database "$FRESH_DB"
    sql "$FRESH_DB" "CREATE EXTENSION snowlink SCHEMA $SCHEMA"
    sql "$db" "CREATE EXTENSION snowlink SCHEMA $SCHEMA VERSION '$from'"

    # Data of every kind, made by the new library with the old version's SQL objects, and an
    # application's own objects that depend on the extension's.
    psql -X -q -d "$db" -f "$PROJECT_DIR/scripts/sample_links.sql" >/dev/null
    # As 0.1.0 stored a URL with non-ASCII characters in its path; 0.2.0's update rewrites it.
    [ "$from" != 0.1.0 ] ||
        sql "$db" "INSERT INTO shortlinks (code, url) VALUES ('unicode', 'https://example.com/straße?q=ä')"
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
SELECT shorten('https://example.com/load-limited', code => 'load-limited', max_visits => 1000000000);
CREATE TABLE orders (
    id bigint PRIMARY KEY DEFAULT snowflake_next(),
    link_id bigint REFERENCES shortlinks (id),
    item text
);
CREATE INDEX orders_by_code ON orders (base62_encode(id));
CREATE VIEW live_links AS SELECT code, url FROM shortlinks WHERE NOT disabled;
INSERT INTO orders (link_id, item) SELECT id, 'order for ' || code FROM shortlinks;
-- A code the user reserved that 0.2.0 reserves for snowlink-http, and 0.3.0's rule refuses (a
-- database made at 0.2.0 has it already).
INSERT INTO shortlink_reserved_codes (code) VALUES ('ids') ON CONFLICT DO NOTHING;

-- What the update must keep. Resolving counts a visit: write each at once, then read the counts.
SET snowlink.visit_write_mode = transaction;
CREATE TABLE before_resolved AS SELECT code, resolve(code) AS url FROM shortlinks;
CREATE TABLE before_links AS
    SELECT id, code, url, created_at, valid_from, expires_at, max_visits, redirect_status, disabled
    FROM shortlinks;
CREATE TABLE before_visits AS SELECT code, (shortlink_stats(code)).visits FROM shortlinks;
CREATE TABLE before_bookkeeping AS
    SELECT (SELECT last_value FROM shortlink_code_seq) AS counter,
           (SELECT key FROM shortlink_key) AS key,
           (SELECT string_agg(code || ':' || builtin, ',' ORDER BY code) FROM shortlink_reserved_codes
            WHERE code NOT IN ('healthz', 'ids', 'links')) AS reserved;

-- What the clients below do while the update runs, and what they get.
CREATE TABLE load_codes AS
    SELECT row_number() OVER (ORDER BY code) AS i, code, url
    FROM before_resolved AS r
    WHERE url IS NOT NULL AND code <> 'unicode'
      AND NOT EXISTS (SELECT FROM shortlinks AS s WHERE s.code = r.code AND s.max_visits IS NOT NULL);
CREATE TABLE load_resolved (code text, url text, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE load_shortened (code text, url text, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE load_ids (id bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE update_window (started timestamptz, finished timestamptz);
SQL
    c_functions "$db" >"$WORK/c-functions-$from"

    # A session that holds a node and visits counted in memory across the update.
    psql -X -q -At -v ON_ERROR_STOP=1 -v version="$current_version" -d "$db" >"$WORK/held-$from" 2>&1 <<'SQL' &
SET snowlink.visit_write_mode = transaction;
SELECT snowflake_node_id() AS node_before, snowflake_next() AS id_before \gset
BEGIN READ ONLY;
SELECT resolve('permanent') FROM generate_series(1, 3) \g /dev/null
COMMIT;
SELECT set_config('snowlink_test.version', :'version', false) \g /dev/null
SET application_name = 'snowlink-held-session';
DO $$
BEGIN
    WHILE (SELECT extversion FROM pg_extension WHERE extname = 'snowlink')
          <> current_setting('snowlink_test.version') LOOP
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
SELECT snowflake_node_id() = :node_before AS same_node,
       EXISTS (SELECT FROM snowflake_nodes WHERE pid = pg_backend_pid() AND node_id = :node_before) AS listed,
       snowflake_next() > :id_before AS later_id;
BEGIN READ ONLY;
SELECT resolve('permanent') FROM generate_series(1, 2) \g /dev/null
COMMIT;
SQL
    local held=$!
    until [ "$(sql "$db" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'snowlink-held-session'")" = 1 ]; do
        sleep 0.05
    done

    # Clients resolving, shortening and drawing IDs before, during and after the update.
    cat >"$WORK/resolve.sql" <<'SQL'
\set i random(1, :codes)
INSERT INTO load_resolved (code, url) SELECT code, resolve(code) FROM load_codes WHERE i = :i;
SQL
    cat >"$WORK/ids.sql" <<'SQL'
INSERT INTO load_ids (id) SELECT snowflake_next() FROM generate_series(1, 10);
SQL
    local codes load_status=0
    codes=$(sql "$db" "SELECT count(*) FROM load_codes")
    "$PG_BIN/pgbench" -n -M prepared -c "$LOAD_CLIENTS" -j 2 -T "$LOAD_SECONDS" -D codes="$codes" \
        -f "$WORK/resolve.sql@5" -f "$WORK/ids.sql@2" "$db" \
        >"$WORK/load-$from" 2>&1 &
    local load=$!
    # shorten() from a session of its own that goes on after an error. The call that is running
    # when the update commits may fail, as any call of a function that an update drops or whose
    # row type it changes: it returns a row of shortlinks' new shape to a query made for the old
    # one (42804), its body, planned again, names a function the update moved (42883), or it was
    # planned with the dropped function (XX000, cache lookup failed). Checked below: one call at
    # most, the session's one running at the commit; every call that returned is right.
    {
        echo '\set VERBOSITY sqlstate'
        local end=$((SECONDS + LOAD_SECONDS))
        while [ $SECONDS -lt $end ]; do
            echo "INSERT INTO load_shortened (code, url)
                  SELECT code, url FROM shorten('https://load.example/' || (random() * 1e9)::bigint);"
            sleep 0.005
        done
    } | psql -X -q -d "$db" >/dev/null 2>"$WORK/shorten-errors-$from" &
    local shortening=$!
    # A link with max_visits from a session of its own too: its visit is counted by the visit
    # writer while the caller holds its lock on shortlinks. When the update queues for the table
    # then, the writer's lock waits behind the update, which waits for the caller: after the
    # writer's lock_timeout, that call fails with 55P03 and the update goes on. One call at most.
    {
        echo '\set VERBOSITY sqlstate'
        local end=$((SECONDS + LOAD_SECONDS))
        while [ $SECONDS -lt $end ]; do
            echo "INSERT INTO load_resolved (code, url) SELECT 'load-limited', resolve('load-limited');"
            sleep 0.002
        done
    } | psql -X -q -d "$db" >/dev/null 2>"$WORK/limited-errors-$from" &
    local limited=$!
    sleep $((LOAD_SECONDS / 3))
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
INSERT INTO update_window (started) VALUES (clock_timestamp());
ALTER EXTENSION snowlink UPDATE;
UPDATE update_window SET finished = clock_timestamp();
SQL
    wait "$load" || load_status=$?
    wait "$shortening"
    wait "$limited"
    wait "$held"
    check_equal "updated to $current_version" \
        "$(sql "$db" "SELECT extversion FROM pg_extension WHERE extname = 'snowlink'")" "$current_version"

    echo "## clients during the update"
    check_equal "pgbench ran to the end" "$load_status" 0
    # What stopped a client.
    [ "$load_status" -eq 0 ] || grep -E 'aborted|error' "$WORK/load-$from" | sed 's/^/   /' | head -20
    check_equal "no client got an error" \
        "$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$WORK/load-$from")" 0
    echo "   (shorten() errors: $(tr '\n' ' ' <"$WORK/shorten-errors-$from"))"
    check_equal "shorten(): no error but, at most, of the one call running when the update committed" \
        "$(($(grep -c '^ERROR:' "$WORK/shorten-errors-$from") <= 1))" 1
    echo "   (resolve() errors of the limited link: $(tr '\n' ' ' <"$WORK/limited-errors-$from"))"
    check_equal "resolve() of a limited link: no error but, at most, a 55P03 of the call the update waited for" \
        "$(grep -v '^ERROR:  55P03$' "$WORK/limited-errors-$from" | wc -l):$(($(wc -l <"$WORK/limited-errors-$from") <= 1))" 0:1
    check_equal "clients worked before, during and after the update" \
        "$(sql "$db" "SELECT bool_and(before) AND bool_and(after)
                      FROM (SELECT bool_or(at < started) AS before, bool_or(at > finished) AS after
                            FROM update_window,
                                 (SELECT at FROM load_resolved UNION ALL SELECT at FROM load_shortened
                                  UNION ALL SELECT at FROM load_ids) AS calls
                            GROUP BY started, finished) AS seen")" t
    check_equal "every resolve() gave the link's URL" \
        "$(sql "$db" "SELECT count(*) FROM load_resolved AS r JOIN before_resolved AS c USING (code)
                      WHERE r.url IS DISTINCT FROM c.url")" 0
    check_equal "every shorten() gave a link of its own URL, new codes only" \
        "$(sql "$db" "SELECT count(DISTINCT code) = count(DISTINCT url)
                         AND NOT EXISTS (SELECT FROM load_shortened AS l JOIN before_links USING (code))
                         AND NOT EXISTS (SELECT FROM load_shortened AS l JOIN shortlinks AS s USING (code)
                                         WHERE s.url IS DISTINCT FROM l.url)
                      FROM load_shortened")" t
    check_equal "the held session kept its node and its IDs went on rising" "$(cat "$WORK/held-$from")" "t|t|t"

    echo "## data"
    check_equal "every link as it was" \
        "$(sql "$db" "SELECT count(*) FROM (
                          SELECT * FROM before_links WHERE code <> 'unicode'
                          EXCEPT
                          SELECT id, code, url, created_at, valid_from, expires_at, max_visits,
                                 redirect_status, disabled
                          FROM shortlinks) AS changed")" 0
    check_equal "links made before belong to the extension's owner, whom only snowlink_admin sees" \
        "$(sql "$db" "SELECT count(*) FROM before_links AS b JOIN shortlinks AS s USING (code)
                      JOIN pg_extension AS e ON e.extname = 'snowlink'
                      WHERE s.owner_role <> e.extowner::regrole::text OR s.owner <> s.owner_role;
                      CREATE ROLE snowlink_update_tenant IN ROLE snowlink_user;
                      CREATE ROLE snowlink_update_admin IN ROLE snowlink_admin;
                      GRANT USAGE ON SCHEMA $SCHEMA TO snowlink_update_tenant, snowlink_update_admin;
                      SELECT set_config('snowlink_test.links', count(*)::text, false) FROM shortlinks;
                      SET ROLE snowlink_update_tenant;
                      SELECT count(*) FROM shortlinks;
                      SET ROLE snowlink_update_admin;
                      SELECT count(*) = current_setting('snowlink_test.links')::bigint FROM shortlinks;
                      RESET ROLE;
                      REVOKE USAGE ON SCHEMA $SCHEMA FROM snowlink_update_tenant, snowlink_update_admin;
                      DROP ROLE snowlink_update_tenant, snowlink_update_admin" | sed 2d | tr '\n' ' ')" "0 0 t "
    if [ "$from" = 0.1.0 ]; then
        check_equal "a URL stored with non-ASCII characters is now as a browser writes it" \
            "$(sql "$db" "SELECT url FROM shortlinks WHERE code = 'unicode'")" \
            "https://example.com/stra%C3%9Fe?q=%C3%A4"
    fi
    check_equal "every code resolves as before" \
        "$(sql "$db" "SET snowlink.visit_write_mode = transaction;
                      SELECT string_agg(code, ', ') FROM before_resolved
                      WHERE code <> 'unicode' AND resolve(code) IS DISTINCT FROM url")" ""
    check_equal "the code key, the reserved codes" \
        "$(sql "$db" "SELECT b.key = (SELECT key FROM shortlink_key)
                         AND b.reserved = (SELECT string_agg(code || ':' || builtin, ',' ORDER BY code)
                                           FROM shortlink_reserved_codes
                                           WHERE code NOT IN ('healthz', 'ids', 'links'))
                      FROM before_bookkeeping AS b")" t
    check_equal "snowlink-http's endpoints are refused by the library's rule, and no longer listed" \
        "$(sql "$db" "SELECT count(*) FROM shortlink_reserved_codes WHERE code IN ('healthz', 'ids', 'links')"):$(
            sql "$db" "SELECT shorten('https://example.com/', code => 'ids')" 2>&1 |
                grep -c 'custom code "ids" is an endpoint of snowlink-http')" "0:1"
    check_equal "the code counter went on from where it was" \
        "$(sql "$db" "SELECT (SELECT last_value FROM shortlink_code_seq)
                             >= b.counter + (SELECT count(DISTINCT code) FROM load_shortened)
                      FROM before_bookkeeping AS b")" t
    check_equal "no ID issued twice" \
        "$(sql "$db" "SELECT count(*) - count(DISTINCT id) FROM (
                          SELECT id FROM before_links UNION ALL SELECT id FROM load_ids
                          UNION ALL SELECT id FROM orders
                          UNION ALL SELECT id FROM shortlinks WHERE id NOT IN (SELECT id FROM before_links)) AS ids")" 0
    check_equal "the application's default, index and view on the extension's objects" \
        "$(sql "$db" "INSERT INTO orders (item) VALUES ('after the update');
                      SELECT (SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef
                              WHERE adrelid = 'orders'::regclass) = 'snowflake_next()'
                         AND EXISTS (SELECT FROM pg_indexes WHERE indexname = 'orders_by_code')
                         AND (SELECT count(*) FROM live_links) > 0")" t
    wait_for_other_backends "$db"
    # Visits before the update, the one of "every code resolves as before" (not for the link
    # whose URL the update rewrote), those of the held session (written when it exited) and
    # those of the clients.
    check_equal "visits add up" \
        "$(sql "$db" "SELECT string_agg(format('%s: %s, not %s', code, visits, expected), '; ')
                      FROM (SELECT b.code, (shortlink_stats(b.code)).visits,
                                   b.visits + (r.url IS NOT NULL AND b.code <> 'unicode')::int
                                   + CASE b.code WHEN 'permanent' THEN 5 ELSE 0 END
                                   + (SELECT count(*) FROM load_resolved AS l WHERE l.code = b.code) AS expected
                            FROM before_visits AS b JOIN before_resolved AS r USING (code)) AS counts
                      WHERE visits IS DISTINCT FROM expected")" ""

    echo "## the updated database against a fresh install"
    local symbols
    symbols=$(LC_ALL=C join -t $'\t' "$WORK/c-functions-$from" <(c_functions "$FRESH_DB") |
        awk -F'\t' '$2 != $3 { print $1 ": " $2 " in '"$from"', " $3 " now" }')
    check_equal "C functions of $from that remain keep their argument and result types" "$symbols" ""
    catalog "$db" >"$WORK/updated-$from"
    catalog "$FRESH_DB" >"$WORK/fresh"
    local differences
    differences=$(compare "$WORK/fresh" "$WORK/updated-$from" fresh updated)
    check_equal "the catalog lists the extension's objects" \
        "$(grep -cE "^(function $SCHEMA.resolve\\(pg_catalog.text\\)|table column $SCHEMA.shortlinks.code) \\| exists" "$WORK/fresh")" 2
    check_equal "the catalog of the updated database is that of a fresh install" "$differences" ""

    # The comparison itself notices each kind of difference.
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" >"$WORK/altered-$from" <<SQL
BEGIN;
\o /dev/null
ALTER FUNCTION snowflake_min(timestamptz) STABLE;
GRANT DELETE ON shortlink_visits TO snowlink_user;
ALTER TABLE shortlinks ALTER COLUMN redirect_status SET DEFAULT 301;
ALTER TABLE shortlink_key ADD COLUMN note text;
ALTER TABLE shortlink_visits SET (fillfactor = 100);
DROP INDEX shortlinks_expires_at;
COMMENT ON VIEW snowflake_nodes IS NULL;
UPDATE pg_extension SET extcondition = array_replace(extcondition, 'WHERE NOT builtin', '')
WHERE extname = 'snowlink';
\o
\i $PROJECT_DIR/scripts/extension_catalog.sql
ROLLBACK;
SQL
    differences=$(compare "$WORK/fresh" <(LC_ALL=C sort "$WORK/altered-$from") fresh altered | grep -v '^ ')
    local expected
    for expected in \
        "function $SCHEMA.snowflake_min(timestamp with time zone) | definition" \
        "table $SCHEMA.shortlink_visits | privileges" \
        "table column $SCHEMA.shortlinks.redirect_status | default" \
        "table column $SCHEMA.shortlink_key.note | exists" \
        "table $SCHEMA.shortlink_visits | options" \
        "index $SCHEMA.shortlinks_expires_at | exists" \
        "view $SCHEMA.snowflake_nodes | comment" \
        "extension snowlink | tables pg_dump dumps"; do
        check_equal "the comparison notices: $expected" "$(grep -cxF "$expected" <<<"$differences")" 1
    done
}

for version in $(released_versions); do
    test_update_from "$version"
done
sql postgres "DROP DATABASE $UPDATED_DB WITH (FORCE)"
sql postgres "DROP DATABASE $FRESH_DB WITH (FORCE)"
checks_summary "upgrade"
