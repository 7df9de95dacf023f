#!/usr/bin/env bash
# snowlink on a Citus cluster: a coordinator and two workers on this machine (ports 25491 to 25493),
# each with a snowflake node range of its own. CREATE EXTENSION on the coordinator reaches every
# node; one query on the coordinator checks the ranges for overlaps; clients on every node at once
# insert into a distributed table keyed by DEFAULT snowflake_next(), and no ID may repeat. Needs
# Citus (scripts/lib.sh ensure_citus). Prints one line per check.
source "$(dirname "$0")/lib.sh"

# name, port, node_min, node_max
NODES=("coordinator 25491 0 255" "worker1 25492 256 511" "worker2 25493 512 767")
CLIENTS_PER_NODE=2
SECONDS_OF_LOAD=5
WORK=$PROJECT_DIR/target/citus_test

cleanup() {
    local node name
    for node in "${NODES[@]}"; do
        read -r name _ <<<"$node"
        cluster_remove "citus-$name"
    done
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK"

socket() { printf '%s' "$(cluster_root)/citus-$1/socket"; }
# sql NODE QUERY: runs QUERY on NODE (coordinator, worker1, worker2).
sql() {
    local name port
    for node in "${NODES[@]}"; do
        read -r name port _ <<<"$node"
        [ "$name" = "$1" ] || continue
        psql -X -At -v ON_ERROR_STOP=1 -h "$(socket "$name")" -p "$port" -d postgres -c "$2"
    done
}

for node in "${NODES[@]}"; do
    read -r name port node_min node_max <<<"$node"
    # Citus first among the preloaded libraries; two-phase commit for multi-shard writes.
    cluster_start "citus-$name" "$port" shared_preload_libraries=citus max_prepared_transactions=100 \
        "snowlink.node_min=$node_min" "snowlink.node_max=$node_max"
    sql "$name" "CREATE EXTENSION citus" >/dev/null
done
sql coordinator "SELECT citus_set_coordinator_host('127.0.0.1', 25491)" >/dev/null
for node in "${NODES[@]:1}"; do
    read -r _ port _ <<<"$node"
    sql coordinator "SELECT citus_add_node('127.0.0.1', $port)" >/dev/null
done
check_equal "the coordinator sees two workers" \
    "$(sql coordinator "SELECT count(*) FROM citus_get_active_worker_nodes()")" 2

sql coordinator "CREATE EXTENSION snowlink" >/dev/null
check_equal "CREATE EXTENSION on the coordinator installs snowlink on every node" \
    "$(sql coordinator "SELECT string_agg(DISTINCT result, ',') FROM run_command_on_all_nodes(
        \$\$SELECT extversion FROM pg_extension WHERE extname = 'snowlink'\$\$)")" \
    "$(sql coordinator "SELECT default_version FROM pg_available_extensions WHERE name = 'snowlink'")"

# The README's check: every node's range, and the pairs that share a node (none).
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
for node in "${NODES[@]}"; do
    read -r name port _ <<<"$node"
    pgbench -n -h "$(socket "$name")" -p "$port" -c "$CLIENTS_PER_NODE" -T "$SECONDS_OF_LOAD" \
        -f "$WORK/insert.sql" postgres >"$WORK/pgbench-$name.out" 2>&1 &
done
failed_clients=0
for job in $(jobs -p); do wait "$job" || failed_clients=$((failed_clients + 1)); done
check_equal "clients on the coordinator and both workers insert without an error" "$failed_clients" 0
echo "   ($(sql coordinator "SELECT count(*) FROM events") rows)"
check_equal "no snowflake ID repeats across the cluster" \
    "$(sql coordinator "SELECT count(*) - count(DISTINCT id) FROM events")" 0
check_equal "each ID's node lies in the range of a node of the cluster" \
    "$(sql coordinator "SELECT count(*) FROM events WHERE snowflake_node(id) > 767")" 0

# Links in reference tables (a copy on every node): resolve() on any node finds every link, by a
# query that Citus routes, since the extension's own tables there are empty shells, and counts
# its visit.
sql coordinator "SELECT create_reference_table('shortlinks'); SELECT create_reference_table('shortlink_visits')" >/dev/null
sql coordinator "SELECT count(shorten('https://example.com/cluster/' || i, code => 'cluster-' || i))
                 FROM generate_series(1, 100) AS i" >/dev/null
for node in "${NODES[@]}"; do
    read -r name _ <<<"$node"
    check_equal "resolve() on the $name finds every link of a reference table" \
        "$(sql "$name" "SELECT count(*) FROM generate_series(1, 100) AS i
                        WHERE resolve('cluster-' || i) IS DISTINCT FROM 'https://example.com/cluster/' || i")" 0
done

# Each node's visit writer writes that node's visits into the reference table.
for attempt in $(seq 100); do
    [ "$(sql coordinator "SELECT coalesce(sum(visits), 0) FROM shortlink_visits")" = 300 ] && break
    sleep 0.1
done
check_equal "the visits of every node are counted once, in one table" \
    "$(sql coordinator "SELECT coalesce(sum(visits), 0) FROM shortlink_visits")" 300
check_equal "shortlink_stats() on a worker" "$(sql worker1 "SELECT visits FROM shortlink_stats('cluster-7')")" 3

checks_summary "citus"
