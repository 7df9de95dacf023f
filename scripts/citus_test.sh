#!/usr/bin/env bash
# snowlink on a Citus cluster: a coordinator and two workers on this machine (ports 25491 to 25493),
# each with a snowflake node range of its own. CREATE EXTENSION on the coordinator reaches every
# node; one query on the coordinator checks the ranges for overlaps; clients on every node at once
# insert into a distributed table keyed by DEFAULT snowflake_next(), and no ID may repeat. Then
# shortlinks_distribute(), and clients on every node at once shorten and resolve links: every link
# is found and every visit counted from every node, and each function works on every node. Needs
# Citus (scripts/tools.sh ensure_citus). Prints one line per check.
source "$(dirname "$0")/lib.sh"

CLIENTS_PER_NODE=2
SECONDS_OF_LOAD=5
EARLIER_LINKS=5000
FIRST_PORT=25491
WORK=$PROJECT_DIR/target/citus_test

trap 'citus_cluster_remove citus' EXIT
citus_cluster_remove citus
rm -rf "$WORK"
mkdir -p "$WORK"

# psql_on NODE ARGUMENT...: psql, unaligned, against NODE's (coordinator, worker1, ...) database
# postgres.
psql_on() {
    local socket port
    read -r socket port <<<"$(citus_node citus "$FIRST_PORT" "$1")"
    psql -X -q -At -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -d postgres "${@:2}"
}
# sql NODE QUERY: runs QUERY on NODE.
sql() { psql_on "$1" -c "$2"; }

# pgbench_on NODE ARGUMENT...: pgbench against NODE's database postgres.
pgbench_on() {
    local socket port
    read -r socket port <<<"$(citus_node citus "$FIRST_PORT" "$1")"
    pgbench -n -h "$socket" -p "$port" "${@:2}" postgres
}
NODE_NAMES=("${CITUS_NODES[@]%% *}")

citus_cluster_start citus "$FIRST_PORT"
check_equal "the coordinator sees two workers" \
    "$(sql coordinator "SELECT count(*) FROM citus_get_active_worker_nodes()")" 2

check_equal "CREATE EXTENSION on the coordinator installs snowlink on every node" \
    "$(sql coordinator "SELECT string_agg(DISTINCT result, ',') FROM run_command_on_all_nodes(
        \$\$SELECT extversion FROM pg_extension WHERE extname = 'snowlink'\$\$)")" \
    "$(sql coordinator "SELECT default_version FROM pg_available_extensions WHERE name = 'snowlink'")"

# The check of docs/ids.md: every node's range, and the pairs that share a node (none).
check_equal "no two nodes' snowflake ranges overlap (one query on the coordinator)" \
    "$(sql coordinator "WITH ranges AS (
            SELECT nodeid, result::int4range AS node_range
            FROM run_command_on_all_nodes('SELECT snowflake_node_range()'))
        SELECT count(*) FROM ranges AS a JOIN ranges AS b ON a.nodeid < b.nodeid
        WHERE a.node_range && b.node_range")" 0

# A user's distributed table keyed by snowflake IDs, written by clients of every node at once.
sql coordinator "CREATE TABLE events (tenant int NOT NULL, id bigint NOT NULL DEFAULT snowflake_next(),
                     PRIMARY KEY (tenant, id));
                 SELECT create_distributed_table('events', 'tenant')" >/dev/null
cat >"$WORK/insert.sql" <<'SQL'
\set tenant random(1, 1000)
INSERT INTO events (tenant) VALUES (:tenant);
SQL
for name in "${NODE_NAMES[@]}"; do
    pgbench_on "$name" -c "$CLIENTS_PER_NODE" -T "$SECONDS_OF_LOAD" -f "$WORK/insert.sql" \
        >"$WORK/pgbench-$name.out" 2>&1 &
done
failed_clients=0
for job in $(jobs -p); do wait "$job" || failed_clients=$((failed_clients + 1)); done
check_equal "clients on the coordinator and both workers insert without an error" "$failed_clients" 0
echo "   ($(sql coordinator "SELECT count(*) FROM events") rows)"
check_equal "no snowflake ID repeats across the cluster" \
    "$(sql coordinator "SELECT count(*) - count(DISTINCT id) FROM events")" 0
check_equal "each ID's node lies in the range of a node of the cluster" \
    "$(sql coordinator "SELECT count(*) FROM events WHERE snowflake_node(id) > 767")" 0

# sql_all QUERY: QUERY's result on every node, one line each.
sql_all() {
    local name
    for name in "${NODE_NAMES[@]}"; do sql "$name" "$1"; done
}
# nodes_sum QUERY: the sum of QUERY's (numeric) results on every node.
nodes_sum() { sql_all "$1" | awk '{ sum += $1 } END { print sum + 0 }'; }
# wait_for NODE QUERY VALUE: waits up to 10 s for QUERY on NODE to give VALUE (visit writers
# write about once a second), and prints what it gave last.
wait_for() {
    local value
    for _ in $(seq 100); do
        value=$(sql "$1" "$2")
        [ "$value" = "$3" ] && break
        sleep 0.1
    done
    printf '%s' "$value"
}

# Links made before the tables are distributed, each visited once, are carried over.
sql coordinator "SELECT count(shorten('https://example.com/before/' || i, code => 'before-' || i))
                 FROM generate_series(1, $EARLIER_LINKS) AS i" >/dev/null
sql coordinator "SELECT count(resolve('before-' || i)) FROM generate_series(1, $EARLIER_LINKS) AS i" >/dev/null
wait_for coordinator "SELECT sum(visits) FROM shortlink_visits" $EARLIER_LINKS >/dev/null

check_equal "shortlinks_distribute() on a worker says it belongs on the coordinator" \
    "$(sql worker1 "SELECT shortlinks_distribute()" 2>&1 | grep -c 'must be called on the coordinator')" 1
# A shortlinks that Citus manages in another way (made a reference table by hand, in a transaction
# that is then rolled back) is refused.
check_equal "shortlinks_distribute() refuses a shortlinks that is a Citus table of another kind" \
    "$(sql coordinator "BEGIN; SELECT create_reference_table('shortlinks'); SELECT shortlinks_distribute(); ROLLBACK" 2>&1 |
        grep -o 'already a Citus table, but not one distributed by code')" \
    "already a Citus table, but not one distributed by code"
sql worker1 "SELECT shorten('https://example.com/made-on-a-worker', code => 'made-on-a-worker')" >/dev/null
check_equal "shortlinks_distribute() refuses while a worker holds links of its own, and names it" \
    "$(sql coordinator "SELECT shortlinks_distribute()" 2>&1 | grep -o 'which distribution would hide: .*')" \
    "which distribution would hide: 127.0.0.1:$((FIRST_PORT + 1)) has 1"
sql worker1 "DELETE FROM shortlinks" >/dev/null
sql coordinator "CREATE TABLE link_notes (link_id bigint REFERENCES shortlinks (id), note text)" >/dev/null
check_equal "shortlinks_distribute() refuses while a foreign key references shortlinks, and names it" \
    "$(sql coordinator "SELECT shortlinks_distribute()" 2>&1 | grep -o 'while foreign keys reference it: .*')" \
    "while foreign keys reference it: public.link_notes (link_notes_link_id_fkey)"
sql coordinator "DROP TABLE link_notes" >/dev/null
# A node that cannot tell its range (here, stopped) is named, not skipped.
as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$(cluster_root)/citus-worker2/data" stop --mode=fast >/dev/null
check_equal "shortlinks_distribute() refuses while a node cannot tell its snowflake range, and names it" \
    "$(sql coordinator "SELECT shortlinks_distribute()" 2>&1 | grep -o 'could not read the snowflake node range of every node: node 3:')" \
    "could not read the snowflake node range of every node: node 3:"
citus_node_start citus "$FIRST_PORT" worker2 snowlink.node_min=500
check_equal "shortlinks_distribute() refuses nodes whose snowflake ranges overlap" \
    "$(sql coordinator "SELECT shortlinks_distribute()" 2>&1 | grep -o 'ranges of the cluster overlap: .*')" \
    "ranges of the cluster overlap: nodes 2 and 3 share [500,512)"
citus_node_start citus "$FIRST_PORT" worker2
# The distribution, with a session on a worker open across it (through dblink, from one session on
# the coordinator): before, the worker's own table has none of the coordinator's links; after, the
# same session finds them through Citus.
read -r worker1_socket worker1_port <<<"$(citus_node citus "$FIRST_PORT" worker1)"
read -r coordinator_socket coordinator_port <<<"$(citus_node citus "$FIRST_PORT" coordinator)"
across=$(psql -X -q -At -v ON_ERROR_STOP=1 -h "$coordinator_socket" -p "$coordinator_port" -d postgres <<SQL
CREATE EXTENSION dblink;
SELECT dblink_connect('worker1', 'host=$worker1_socket port=$worker1_port dbname=postgres user=postgres') \g /dev/null
SELECT coalesce(r, 'NULL') FROM dblink('worker1', \$\$SELECT resolve('before-$EARLIER_LINKS')\$\$) AS t (r text);
SELECT shortlinks_distribute(shard_count => 8) \g /dev/null
SELECT coalesce(r, 'NULL') FROM dblink('worker1', \$\$SELECT resolve('before-$EARLIER_LINKS')\$\$) AS t (r text);
SQL
)
check_equal "a worker's session open across shortlinks_distribute() finds the links after it, not before" \
    "$(tr '\n' ' ' <<<"$across")" "NULL https://example.com/before/$EARLIER_LINKS "
# Each earlier link was visited once, and the last one once more just now (outside the sample that
# the next checks count).
earlier_visits=$((EARLIER_LINKS + 1))
sql coordinator "SELECT shortlinks_distribute()" >/dev/null
check_equal "shortlinks_distribute() distributes shortlinks and the visits by code, the URL locks and lists by bucket; a second call changes nothing" \
    "$(sql coordinator "SELECT string_agg(format('%s:%s:%s:%s', logicalrelid, partmethod,
                                   column_to_column_name(logicalrelid, partkey),
                                   (SELECT count(*) FROM pg_dist_shard AS s WHERE s.logicalrelid = p.logicalrelid)),
                            ' ' ORDER BY logicalrelid::text)
                        FROM pg_dist_partition AS p WHERE logicalrelid::text LIKE 'shortlink%'")" \
    "shortlink_key:n::1 shortlink_reserved_codes:n::1 shortlink_url_links:h:bucket:8 shortlink_url_locks:h:bucket:8 shortlink_visits:h:code:8 shortlinks:h:code:8"
check_equal "the visits share the shards of their links" \
    "$(sql coordinator "SELECT count(DISTINCT colocationid) FROM pg_dist_partition
                        WHERE logicalrelid IN ('shortlinks'::regclass, 'shortlink_visits'::regclass)")" 1
check_equal "the list of each URL's links shares the shards of the URL locks, and lists the links made before" \
    "$(sql coordinator "SELECT count(DISTINCT colocationid) FROM pg_dist_partition
                        WHERE logicalrelid IN ('shortlink_url_locks'::regclass, 'shortlink_url_links'::regclass)
                       ")/$(sql coordinator "SELECT count(*) FROM shortlink_url_links")" "1/$EARLIER_LINKS"
for name in "${NODE_NAMES[@]}"; do
    check_equal "the $name finds the links and visits made before distribution (a sample of 100)" \
        "$(sql "$name" "SELECT count(*) FROM generate_series(1, 100) AS i
                        WHERE (shortlink_stats('before-' || i)).visits = 1")" 100
done

# Clients on every node at once shorten URLs of one pool, so that nodes ask for the same URL, and
# resolve the code they get and one of the earlier links; a wrong URL fails the client (division by
# zero). A link with max_visits takes visits from every node, which each node notes in a table of
# its own.
sql coordinator "SELECT shorten('https://example.com/limited', code => 'limited', max_visits => 50)" >/dev/null
sql_all "CREATE TABLE limited_served (n int)" >/dev/null
code_counters() { nodes_sum "SELECT CASE WHEN is_called THEN last_value + 1 ELSE 0 END FROM shortlink_code_seq"; }
counters_before=$(code_counters)
cat >"$WORK/links.sql" <<'SQL'
\set n random(1, 3000)
\set earlier random(1, EARLIER_LINKS)
SELECT 1 / (resolve(code) IS NOT DISTINCT FROM url)::int
FROM shorten('https://example.com/pool/' || :n);
SELECT 1 / (resolve('before-' || :earlier) IS NOT DISTINCT FROM 'https://example.com/before/' || :earlier)::int;
INSERT INTO limited_served SELECT 1 WHERE resolve('limited') IS NOT NULL;
SQL
sed -i "s/EARLIER_LINKS/$EARLIER_LINKS/" "$WORK/links.sql"
for name in "${NODE_NAMES[@]}"; do
    pgbench_on "$name" -c "$CLIENTS_PER_NODE" -T "$SECONDS_OF_LOAD" -f "$WORK/links.sql" \
        >"$WORK/links-$name.out" 2>&1 &
done
failed_clients=0
for job in $(jobs -p); do wait "$job" || failed_clients=$((failed_clients + 1)); done
check_equal "clients on every node shorten and resolve without an error or a wrong URL" "$failed_clients" 0
rounds=$(cat "$WORK"/links-*.out | awk '/number of transactions actually processed/ { sum += $6 } END { print sum + 0 }')
pool_links=$(sql coordinator "SELECT count(*) FROM shortlinks WHERE url LIKE 'https://example.com/pool/%'")
echo "   ($rounds rounds of shorten() and two resolve(); $pool_links new links)"
check_equal "a URL asked for on several nodes has one link" \
    "$(sql coordinator "SELECT count(*) - count(DISTINCT url) FROM shortlinks WHERE url LIKE 'https://example.com/pool/%'")" 0
check_equal "every generated code came from its node's counter without a retry" \
    "$(($(code_counters) - counters_before))" "$pool_links"
check_equal "a link with max_visits 50 served exactly 50 visits across the nodes" \
    "$(nodes_sum "SELECT count(*) FROM limited_served")" 50
# with_links QUERY: QUERY, run where a temporary table links holds the code and URL of every link
# made by the clients or before distribution. (A query that both reads shortlinks and calls a
# function of the extension for each row would run that function on the shards, where it cannot
# reach other shards.)
with_links() {
    printf "CREATE TEMP TABLE links AS SELECT code, url FROM shortlinks WHERE url ~ '^https://example.com/(pool|before|moving)/'; %s" "$1"
}
check_equal "shortlink_stats() counts each client's visit of its new link, from every node" \
    "$(wait_for worker2 "$(with_links "SELECT sum((shortlink_stats(code)).visits) FROM links
                                       WHERE url LIKE 'https://example.com/pool/%'")" "$rounds")" "$rounds"
# Set-based use: the statistics of many links at once, in one query that each shard answers for its
# own links and their visits (docs/citus.md).
check_equal "shortlinks_stats() of every new link's code counts each client's visit, in one query" \
    "$(sql coordinator "SELECT sum(visits) FROM shortlinks_stats((
                            SELECT array_agg(code) FROM shortlinks WHERE url LIKE 'https://example.com/pool/%'))")" "$rounds"
dashboard="SELECT sum(s.visits + coalesce(v.visits, 0))
           FROM shortlinks AS s LEFT JOIN shortlink_visits AS v ON v.code = s.code AND v.link_id = s.id
           WHERE s.url LIKE 'https://example.com/pool/%'"
check_equal "a join of the links with their visits runs on the shards, without a subplan, and agrees" \
    "$(sql coordinator "EXPLAIN (COSTS OFF) $dashboard" | grep -c -E 'Distributed Subplan|Repartition')/$(
       sql coordinator "$dashboard")" "0/$rounds"
expected=$((earlier_visits + 2 * rounds))
check_equal "the visits table holds every visit of every node" \
    "$(wait_for coordinator "SELECT sum(visits) FROM shortlink_visits" "$expected")" "$expected"

# Every node finds every link (resolve() of a Citus table goes to the link's shard), and its
# visits are counted.
for name in "${NODE_NAMES[@]}"; do
    check_equal "resolve() on the $name finds every one of the $((EARLIER_LINKS + pool_links)) links" \
        "$(sql "$name" "$(with_links "SELECT count(*) FROM links WHERE resolve(code) IS DISTINCT FROM url")")" 0
done
expected=$((earlier_visits + 2 * rounds + 3 * (EARLIER_LINKS + pool_links)))
check_equal "the visits of those three rounds are counted too" \
    "$(wait_for coordinator "SELECT sum(visits) FROM shortlink_visits" "$expected")" "$expected"

# The other functions, each from a node other than the one that made the link.
sql worker1 "SELECT shorten('https://example.com/everywhere', code => 'everywhere')" >/dev/null
check_equal "shorten() on another node gives back the same link" \
    "$(sql worker2 "SELECT code FROM shorten('https://example.com/everywhere')")" everywhere
check_equal "the URL lists the link, in the shard of its lock" \
    "$(sql coordinator "SELECT string_agg(code, ',') FROM shortlink_url_links
                        WHERE bucket = snowlink_internal._shortlink_url_bucket('https://example.com/everywhere')
                          AND url = 'https://example.com/everywhere'")" everywhere
check_equal "shortlink_target() on a worker" \
    "$(sql worker2 "SELECT concat_ws(' ', url, status, cache_control) FROM shortlink_target('everywhere')")" \
    "https://example.com/everywhere 302 no-store"
check_equal "shortlink_redirect() on the coordinator" \
    "$(sql coordinator "SELECT shortlink_redirect('everywhere') || ' ' || current_setting('response.status')")" \
    "https://example.com/everywhere 302"
check_equal "shortlink_disable() on a worker stops the link on every node" \
    "$(sql worker1 "SELECT shortlink_disable('everywhere')")$(sql_all "SELECT resolve('everywhere') IS NULL" | tr -d '\n')" tttt
check_equal "shortlink_enable() on another node lets it resolve again" \
    "$(sql worker2 "SELECT shortlink_enable('everywhere')")$(sql coordinator "SELECT resolve('everywhere')")" \
    "thttps://example.com/everywhere"
sql worker1 "SELECT shorten('https://example.com/s-everywhere', code => 'everywhere', domain => 'S.Example.com')" >/dev/null
check_equal "the same code in another domain, made on a worker, resolves in its domain from every node" \
    "$(sql_all "SELECT resolve('everywhere', 's.example.com')" | sort -u)$(sql coordinator "SELECT count(*) FROM shortlinks WHERE code = 'everywhere'")" \
    "https://example.com/s-everywhere2"
check_equal "the distributed shortlinks has a replica identity: its unique index on (id, code)" \
    "$(sql coordinator "SELECT c.relreplident::text || ' ' || i.indexrelid::regclass::text FROM pg_class AS c
                        JOIN pg_index AS i ON i.indrelid = c.oid AND i.indisreplident
                        WHERE c.oid = 'shortlinks'::regclass")" "i shortlinks_id"
check_equal "shortlink_daily_visits() on a worker" \
    "$(wait_for worker1 "SELECT visits FROM shortlink_daily_visits('everywhere', current_date)" 3)" 3
sql worker2 "SELECT shorten('https://example.com/short-lived', code => 'short-lived', expires_at => now() + interval '1 second')" >/dev/null
sleep 1.1
check_equal "shortlinks_purge_expired() on a worker deletes the expired link and the used-up one" \
    "$(sql worker2 "SELECT shortlinks_purge_expired()")$(sql coordinator "SELECT count(*) FROM shortlinks WHERE code IN ('short-lived', 'limited')")" 20
sql worker1 "CREATE TABLE exported (code text, url text);
             INSERT INTO exported VALUES ('imported-1', 'https://example.com/imported'), ('imported-2', 'ftp://example.com/'),
                                         ('everywhere', 'https://example.com/taken')" >/dev/null
check_equal "shortlinks_import() on a worker imports one row and reports the other two" \
    "$(sql worker1 "SELECT string_agg(code || ': ' || error, ', ' ORDER BY code) FROM shortlinks_import('exported')")$(sql worker2 "SELECT ' ' || resolve('imported-1')")" \
    "everywhere: code is taken, imported-2: URL scheme \"ftp\" is not allowed https://example.com/imported"

# Every call that names a link touches one shard (or the shards of one row each, co-located):
# with citus.multi_task_query_log_level = error, Citus refuses any query of theirs that would
# touch more, on every node.
sql coordinator "SELECT shorten('https://example.com/routed', code => 'routed');
                 SELECT shorten('https://example.com/routed-gone', code => 'routed-gone')" >/dev/null
routed_calls=(
    "SELECT resolve('routed')"
    "SELECT resolve('routed', 'routed.example.com')"
    "SELECT url FROM shortlink_target('routed')"
    "SELECT shortlink_redirect('routed')"
    "SELECT shortlink_is_live('routed')"
    "SELECT visits FROM shortlink_stats('routed')"
    "SELECT count(*) FROM shortlink_daily_visits('routed')"
    "SELECT shortlink_update('routed', title => 'Routed') IS NOT NULL"
    "SELECT shortlink_disable('routed')"
    "SELECT shortlink_enable('routed')"
    "SELECT code FROM shorten('https://example.com/routed/' || random(), force_new => true)"
    "SELECT code FROM shorten('https://example.com/routed')"
    "SELECT code FROM shorten('https://example.com/routed/' || random())"
    "SELECT shortlink_update('routed', url => 'https://example.com/routed/' || random()) IS NOT NULL"
    "SELECT count(*) FROM shortlinks_stats(ARRAY['routed'])"
    "SELECT shortlink_delete('routed-gone')"
)
check_equal "every call that names a link is a router query, on every node" \
    "$(for node in "${NODE_NAMES[@]}"; do
           for call in "${routed_calls[@]}"; do
               sql "$node" "SET citus.multi_task_query_log_level = error; $call" >/dev/null 2>&1 ||
                   printf '%s on the %s; ' "$call" "$node"
           done
       done)" ""

# In the cached plan of a query by key, Citus keeps a plan for the node's own shard and never finds
# it again (sql/src/citus.sql): a worker's backend grew by about 21 kB a call of resolve().
check_equal "a worker's backend does not grow with its calls: 3,000 resolve() and shortlink_stats() leave it under 32 MB" \
    "$(sql worker1 "SELECT count(resolve('before-' || i)) FROM generate_series(1, 3000) AS i;
                    SELECT count(*) FROM generate_series(1, 3000) AS i, LATERAL shortlink_stats('before-' || i) AS s;
                    SELECT sum(total_bytes) < 32 * 1024 * 1024 FROM pg_backend_memory_contexts" | tail -n 1)" t

# A link listed under its URL (shortlink_url_links, in the shard of the URL's lock) reaches the
# shard of its code in the same two-phase commit, possibly a moment after the lock is free: then
# shorten() waits for it rather than make a second link. A transaction prepared on the code's
# worker holds such a link back here.
pending_url=https://example.com/pending
pending_id=$(sql coordinator "SELECT snowflake_next()")
pending_shard=$(sql coordinator "SELECT get_shard_id_for_distribution_column('shortlinks', 'pending')")
pending_node=$(sql coordinator "SELECT n.nodeport - $FIRST_PORT FROM pg_dist_placement AS p
                                JOIN pg_dist_node AS n USING (groupid) WHERE p.shardid = $pending_shard")
pending_node=${NODE_NAMES[$pending_node]}
sql "$pending_node" "BEGIN;
                     INSERT INTO shortlinks_$pending_shard (id, code, url) VALUES ($pending_id, 'pending', '$pending_url');
                     PREPARE TRANSACTION 'pending link'" >/dev/null
sql coordinator "INSERT INTO shortlink_url_links (bucket, url, code, link_id)
                 VALUES (snowlink_internal._shortlink_url_bucket('$pending_url'), '$pending_url', 'pending', $pending_id)" >/dev/null
sql coordinator "SELECT code FROM shorten('$pending_url')" >"$WORK/pending.out" 2>&1 &
shorten_pid=$!
sleep 1
check_equal "shorten() of a URL whose listed link is not committed on its shard yet waits for it" \
    "$(kill -0 "$shorten_pid" 2>/dev/null && echo waits)" waits
sql "$pending_node" "COMMIT PREPARED 'pending link'" >/dev/null
wait "$shorten_pid"
check_equal "and then hands that link back" "$(cat "$WORK/pending.out")" pending
# A listed link deleted behind the extension's back holds nothing up: shorten() makes a new link,
# makes no link of the gone code, and the gone code's row goes.
sql coordinator "DELETE FROM shortlinks WHERE code = 'pending'" >/dev/null
check_equal "a listed link that is gone: a new link, and the URL lists it alone" \
    "$(sql coordinator "SELECT code <> 'pending' FROM shorten('$pending_url')")$(
       sql coordinator "SELECT count(*) FROM shortlinks WHERE code = 'pending'")$(
       sql coordinator "SELECT count(*) FILTER (WHERE code <> 'pending') || '/' || count(*) FROM shortlink_url_links
                        WHERE url = '$pending_url'")" \
    "t01/1"

# Citus reaches the shards as the session's role, which must therefore be able to log in. (The
# visit rows of a link are not yet readable by such a role on Citus: docs/links.md, "Owners".)
echo "## owners on Citus: a role per tenant"
sql coordinator "CREATE ROLE citus_tenant_a LOGIN IN ROLE snowlink_user; CREATE ROLE citus_tenant_b LOGIN IN ROLE snowlink_user" >/dev/null
check_equal "a tenant's link, made on a worker, is its own" \
    "$(sql worker1 "SET ROLE citus_tenant_a; SELECT owner_role FROM shorten('https://example.com/tenant-a', code => 'tenant-a')")" \
    citus_tenant_a
check_equal "another tenant sees none of it on any node, and cannot change it, but follows it" \
    "$(for node in "${NODE_NAMES[@]}"; do
           for query in "SELECT count(*) FROM shortlinks WHERE code = 'tenant-a'" \
                        "SELECT shortlink_disable('tenant-a') OR shortlink_delete('tenant-a')" \
                        "SELECT resolve('tenant-a')"; do
               sql "$node" "SET ROLE citus_tenant_b; $query"
           done
       done | tr '\n' ' ')" \
    "$(printf '0 f https://example.com/tenant-a %.0s' "${NODE_NAMES[@]}")"
# The visits of the link, one per node above, as its tenant and only its tenant reads them: Citus
# runs shortlink_stats() and shortlink_daily_visits() on the code's shard, where the policy on the
# visit rows may ask for their link.
for _ in $(seq 100); do
    [ "$(sql coordinator "SELECT visits FROM shortlink_stats('tenant-a')")" = "${#NODE_NAMES[@]}" ] && break
    sleep 0.1
done
check_equal "the tenant reads its link's statistics and daily visits from every node" \
    "$(for node in "${NODE_NAMES[@]}"; do
           sql "$node" "SET ROLE citus_tenant_a; SELECT visits FROM shortlink_stats('tenant-a')"
           sql "$node" "SET ROLE citus_tenant_a; SELECT sum(visits) FROM shortlink_daily_visits('tenant-a')"
       done | sort -u)" "${#NODE_NAMES[@]}"
check_equal "another tenant reads neither, from any node" \
    "$(for node in "${NODE_NAMES[@]}"; do
           sql "$node" "SET ROLE citus_tenant_b; SELECT coalesce(visits, -1) FROM shortlink_stats('tenant-a')"
           sql "$node" "SET ROLE citus_tenant_b; SELECT count(*) FROM shortlink_daily_visits('tenant-a')"
       done | sort -u | tr '\n' ' ')" "-1 0 "
check_equal "the tenant deletes its link on another node" \
    "$(sql worker2 "SET ROLE citus_tenant_a; SELECT shortlink_delete('tenant-a')")" t
sql coordinator "DROP ROLE citus_tenant_a, citus_tenant_b" >/dev/null

# Rebalancing: a third worker joins, citus_rebalance_start() spreads the shards over the three, and
# citus_move_shard_placement() moves a shard of shortlinks (with the shards that share its place:
# visits, and for the URL locks' shards their lists) back, while clients on the coordinator and a
# worker resolve earlier links and shorten URLs of a pool. Moves block writes to the shards they
# copy (shard_transfer_mode block_writes: no logical replication needed), so clients wait rather
# than fail, and nothing may be lost or doubled.
echo "## rebalancing under load"
CITUS_NODES+=("worker3 3 768 1023")
NODE_NAMES+=(worker3)
citus_node_start citus "$FIRST_PORT" worker3
sql worker3 "CREATE EXTENSION citus" >/dev/null
sql coordinator "SELECT citus_add_node('127.0.0.1', $((FIRST_PORT + 3)))" >/dev/null
check_equal "the third worker has snowlink, added with it" \
    "$(sql worker3 "SELECT extversion FROM pg_extension WHERE extname = 'snowlink'")" \
    "$(sql coordinator "SELECT extversion FROM pg_extension WHERE extname = 'snowlink'")"
# What the writers wrote of the visits above, once two reads 1.5 s apart agree.
visits_before=$(sql coordinator "SELECT sum(visits) FROM shortlink_visits")
for _ in $(seq 20); do
    sleep 1.5
    visits_now=$(sql coordinator "SELECT sum(visits) FROM shortlink_visits")
    [ "$visits_now" = "$visits_before" ] && break
    visits_before=$visits_now
done
links_before=$(sql coordinator "SELECT count(*) FROM shortlinks")
cat >"$WORK/moving.sql" <<'SQL'
\set n random(1, 500)
\set earlier random(1, EARLIER_LINKS)
SELECT 1 / (resolve(code) IS NOT DISTINCT FROM url)::int FROM shorten('https://example.com/moving/' || :n);
SELECT 1 / (resolve('before-' || :earlier) IS NOT DISTINCT FROM 'https://example.com/before/' || :earlier)::int;
SQL
sed -i "s/EARLIER_LINKS/$EARLIER_LINKS/" "$WORK/moving.sql"
for name in coordinator worker1; do
    pgbench_on "$name" -c 1 -T 30 -f "$WORK/moving.sql" >"$WORK/moving-$name.out" 2>&1 &
done
sleep 1
sql coordinator "SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')" >/dev/null
sql coordinator "SELECT citus_rebalance_wait()" >/dev/null
check_equal "citus_rebalance_start() under load gives the third worker shards of every table" \
    "$(sql coordinator "SELECT string_agg(DISTINCT s.logicalrelid::text, ' ' ORDER BY s.logicalrelid::text)
                        FROM pg_dist_shard AS s JOIN pg_dist_placement AS p USING (shardid)
                        JOIN pg_dist_node AS n USING (groupid)
                        WHERE n.nodeport = $((FIRST_PORT + 3)) AND s.logicalrelid::text LIKE 'shortlink%'")" \
    "shortlink_key shortlink_reserved_codes shortlink_url_links shortlink_url_locks shortlink_visits shortlinks"
moved_shard=$(sql coordinator "SELECT s.shardid FROM pg_dist_shard AS s JOIN pg_dist_placement AS p USING (shardid)
                               JOIN pg_dist_node AS n USING (groupid)
                               WHERE s.logicalrelid = 'shortlinks'::regclass AND n.nodeport = $((FIRST_PORT + 3))
                               ORDER BY s.shardid LIMIT 1")
sql coordinator "SELECT citus_move_shard_placement($moved_shard, '127.0.0.1', $((FIRST_PORT + 3)),
                                                   '127.0.0.1', $((FIRST_PORT + 1)), shard_transfer_mode => 'block_writes')" >/dev/null
check_equal "citus_move_shard_placement() under load moves a shard of shortlinks with its visits" \
    "$(sql coordinator "SELECT count(DISTINCT n.nodeport) || ' ' || min(n.nodeport) - $FIRST_PORT
                        FROM pg_dist_placement AS p JOIN pg_dist_node AS n USING (groupid)
                        WHERE p.shardid IN (SELECT shardid FROM pg_dist_shard
                                            WHERE logicalrelid IN ('shortlinks'::regclass, 'shortlink_visits'::regclass)
                                              AND shardminvalue = (SELECT shardminvalue FROM pg_dist_shard WHERE shardid = $moved_shard))")" \
    "1 1"
failed_clients=0
for job in $(jobs -p); do wait "$job" || failed_clients=$((failed_clients + 1)); done
check_equal "the clients resolve and shorten through the moves without an error or a wrong URL" "$failed_clients" 0
moving_rounds=$(cat "$WORK"/moving-*.out | awk '/number of transactions actually processed/ { sum += $6 } END { print sum + 0 }')
moving_links=$(sql coordinator "SELECT count(*) FROM shortlinks WHERE url LIKE 'https://example.com/moving/%'")
echo "   ($moving_rounds rounds of shorten() and two resolve(); $moving_links new links)"
check_equal "through the moves, a URL of the pool has one link, and no link is lost" \
    "$(sql coordinator "SELECT count(*) - count(DISTINCT url) FROM shortlinks WHERE url LIKE 'https://example.com/moving/%'")/$(sql coordinator "SELECT count(*) FROM shortlinks")" \
    "0/$((links_before + moving_links))"
expected=$((visits_before + 2 * moving_rounds))
check_equal "every visit of the clients is counted once" \
    "$(wait_for coordinator "SELECT sum(visits) FROM shortlink_visits" "$expected")" "$expected"
for name in "${NODE_NAMES[@]}"; do
    check_equal "after the moves, the $name finds every link of the pool and of before" \
        "$(sql "$name" "$(with_links "SELECT count(*) FROM links WHERE resolve(code) IS DISTINCT FROM url")")" 0
done

# Whatever made, changed and deleted links above (shorten() from every node under load, updates,
# deletes, the purge, the import), each link is listed once under its URL, and nothing else is.
check_equal "shortlink_url_links lists every link under its URL and bucket, and nothing else" \
    "$(sql coordinator "CREATE TEMP TABLE links AS SELECT id, code, url, domain FROM shortlinks;
                        CREATE TEMP TABLE listed AS SELECT link_id, code, url, domain, bucket FROM shortlink_url_links;
                        SELECT (SELECT count(*) FROM links)
                               || ' ' || (SELECT count(*) FROM listed)
                               || ' ' || (SELECT count(*) FROM links AS l JOIN listed AS u
                                          ON u.link_id = l.id AND u.code = l.code AND u.url = l.url
                                         AND u.domain IS NOT DISTINCT FROM l.domain
                                         AND u.bucket = snowlink_internal._shortlink_url_bucket(l.url))")" \
    "$(sql coordinator "SELECT count(*) || ' ' || count(*) || ' ' || count(*) FROM shortlinks")"

# A cluster distributed at 0.2.0, updated: ALTER EXTENSION UPDATE takes the tables back to the
# coordinator, shortlinks_distribute() lays them out anew, and the cluster is then the one a fresh
# install distributes (the same objects, the same layout), with every link and visit it had.
# (Each in a transaction of its own: shortlinks_distribute() asks the workers for links of their
# own, which they cannot tell while the transaction that made the extension there is open.)
layout_query="SELECT string_agg(format('%s by %s with %s', p.logicalrelid,
                                       coalesce(column_to_column_name(p.logicalrelid, p.partkey), 'nothing'),
                                       (SELECT string_agg(o.logicalrelid::text, ' ' ORDER BY o.logicalrelid::text)
                                        FROM pg_dist_partition AS o
                                        WHERE o.colocationid = p.colocationid AND o.logicalrelid <> p.logicalrelid)),
                              ', ' ORDER BY p.logicalrelid::text)
              FROM pg_dist_partition AS p WHERE p.logicalrelid::text LIKE 'shortlink%'"
fresh_layout=$(sql coordinator "$layout_query")
fresh_catalog=$(psql_on coordinator -f "$PROJECT_DIR/t/data/extension_catalog.sql" | LC_ALL=C sort)
# DROP EXTENSION leaves the shards on the nodes (Citus drops their metadata only): docs/citus.md's
# statements drop them.
drop_shards=$(sql coordinator "SELECT 'DROP TABLE IF EXISTS ' || string_agg(shard_name(logicalrelid, shardid), ', ')
                               FROM pg_dist_shard WHERE logicalrelid::text LIKE 'shortlink%'")
sql coordinator "DROP EXTENSION snowlink CASCADE" >/dev/null 2>&1 &&
    drop_errors=$(sql coordinator "SELECT string_agg(result, ', ')
                                   FROM run_command_on_all_nodes(\$\$$drop_shards\$\$) WHERE NOT success")
check_equal "after DROP EXTENSION and the DROP TABLE of docs/citus.md of its shards, no node keeps a table of snowlink" \
    "$drop_errors $(sql_all "SELECT string_agg(relname, ' ') FROM pg_class WHERE relname LIKE 'shortlink%' AND relkind = 'r'" | sort -u)" " "
sql coordinator "CREATE EXTENSION snowlink VERSION '0.2.0'" >/dev/null
sql coordinator "SELECT count(shorten('https://example.com/old/' || i, code => 'old-' || i)) FROM generate_series(1, 100) AS i" >/dev/null
sql coordinator "SELECT shortlinks_distribute()" >/dev/null
sql worker1 "SELECT count(shorten('https://example.com/old/' || i, code => 'old-' || i)) FROM generate_series(101, 150) AS i" >/dev/null
sql worker2 "SELECT count(resolve('old-' || i)) FROM generate_series(1, 150, 3) AS i" >/dev/null
sql coordinator "SELECT count(resolve('old-' || i)) FROM generate_series(1, 150, 5) AS i" >/dev/null
links_query="SELECT count(*) || ' ' || md5(string_agg(id || ' ' || code || ' ' || url, ',' ORDER BY id)) FROM shortlinks"
visits_query="SELECT sum(visits) || ' ' || md5(string_agg(link_id || ' ' || day || ' ' || visits, ',' ORDER BY link_id, day))
              FROM shortlink_visits"
expected_visits=$(( (150 + 2) / 3 + (150 + 4) / 5 ))
for _ in $(seq 100); do
    [ "$(sql coordinator "SELECT sum(visits) FROM shortlink_visits")" = "$expected_visits" ] && break
    sleep 0.1
done
links_before=$(sql coordinator "$links_query")
visits_before=$(sql coordinator "$visits_query")
check_equal "a cluster distributed at 0.2.0 holds 150 links and $expected_visits visits" \
    "${links_before%% *} ${visits_before%% *}" "150 $expected_visits"

# A table of the user's beside the links, with a foreign key to them: the update would lose the
# key on the shards, and refuses.
sql coordinator "CREATE TABLE campaign_links (code text COLLATE \"C\" NOT NULL REFERENCES shortlinks (code));
                 SELECT create_distributed_table('campaign_links', 'code', colocate_with => 'shortlinks')" >/dev/null
check_equal "its ALTER EXTENSION UPDATE refuses while a foreign key references shortlinks, and names it" \
    "$(sql coordinator "ALTER EXTENSION snowlink UPDATE" 2>&1 | grep -o 'while foreign keys reference them: .*')" \
    "while foreign keys reference them: campaign_links (campaign_links_code_fkey)"
sql coordinator "DROP TABLE campaign_links" >/dev/null
check_equal "without it, ALTER EXTENSION UPDATE takes the tables back to the coordinator, and says so" \
    "$(sql coordinator "ALTER EXTENSION snowlink UPDATE" 2>&1 | grep -o 'local to the coordinator until SELECT shortlinks_distribute()')" \
    "local to the coordinator until SELECT shortlinks_distribute()"
check_equal "... updates every node, and leaves no table distributed and no link on a worker" \
    "$(sql_all "SELECT extversion FROM pg_extension WHERE extname = 'snowlink'" | sort -u)
$(sql coordinator "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'shortlink%'")
$(sql coordinator "SELECT string_agg(DISTINCT result, ',') FROM run_command_on_workers('SELECT count(*) FROM shortlinks')")" \
    "$(sql coordinator "SELECT default_version FROM pg_available_extensions WHERE name = 'snowlink'")
0
0"
check_equal "... and keeps every link and every visit" \
    "$(sql coordinator "$links_query") $(sql coordinator "$visits_query")" "$links_before $visits_before"

sql coordinator "SELECT shortlinks_distribute()" >/dev/null
check_equal "shortlinks_distribute() then lays the tables out as on a fresh install" \
    "$(sql coordinator "$layout_query")" "$fresh_layout"
check_equal "... with the objects of a fresh install (t/data/extension_catalog.sql)" \
    "$(diff <(echo "$fresh_catalog") <(psql_on coordinator -f "$PROJECT_DIR/t/data/extension_catalog.sql" | LC_ALL=C sort))" ""
check_equal "... and every link and visit, found from every node" \
    "$(sql coordinator "$links_query") $(sql coordinator "$visits_query")
$(sql_all "SELECT count(*) FROM generate_series(1, 150) AS i
           WHERE resolve('old-' || i) = 'https://example.com/old/' || i" | sort -u)" \
    "$links_before $visits_before
150"
check_equal "... where a worker shortens and the coordinator resolves" \
    "$(sql coordinator "SELECT resolve('$(sql worker2 "SELECT code FROM shorten('https://example.com/new/after-update')")')")" \
    "https://example.com/new/after-update"

checks_summary "citus"
