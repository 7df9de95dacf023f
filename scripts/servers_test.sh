#!/usr/bin/env bash
# Three independent servers and a hot standby of the first, each with a node range of its own,
# draw snowflake IDs concurrently: no ID may repeat across them, and every ID's node lies in its
# server's range. Prints one line per check.
source "$(dirname "$0")/lib.sh"

IDS_PER_CLIENT=50000
CLIENTS_PER_SERVER=2
# name, port, node_min, node_max
SERVERS=("one 25451 0 255" "two 25452 256 511" "three 25453 512 767" "standby 25454 768 1023")
WORK=$PROJECT_DIR/target/servers_test

cleanup() {
    local server name
    for server in "${SERVERS[@]}"; do
        read -r name _ <<<"$server"
        cluster_remove "servers-$name"
    done
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK"

start() {
    local name=$1 port=$2 node_min=$3 node_max=$4
    cluster_start "servers-$name" "$port" "snowlink.node_min=$node_min" "snowlink.node_max=$node_max"
}

for server in "${SERVERS[@]::3}"; do
    # shellcheck disable=SC2086 # name, port and range
    start $server
    psql -X -q -d postgres -c 'CREATE EXTENSION snowlink' >/dev/null
done

# The standby: a base backup of server one, streaming from it.
read -r _ primary_port _ <<<"${SERVERS[0]}"
primary_socket=$(cluster_root)/servers-one/socket
standby_dir=$(cluster_root)/servers-standby
mkdir -p "$standby_dir"
[ "$(id -u)" -ne 0 ] || chown postgres: "$standby_dir"
as_pg_owner "$PG_BIN/pg_basebackup" --host="$primary_socket" --port="$primary_port" --username=postgres \
    --pgdata="$standby_dir/data" --write-recovery-conf --checkpoint=fast
as_pg_owner mkdir -p "$standby_dir/socket"
# shellcheck disable=SC2086
start ${SERVERS[3]}
until [ "$(psql -X -At -d postgres -c 'SELECT pg_is_in_recovery()')" = t ]; do sleep 0.1; done

# Every client of every server at once.
for server in "${SERVERS[@]}"; do
    read -r name port _ <<<"$server"
    for client in $(seq "$CLIENTS_PER_SERVER"); do
        psql -X -At -h "$(cluster_root)/servers-$name/socket" -p "$port" -d postgres \
            -c "SELECT snowflake_next() FROM generate_series(1, $IDS_PER_CLIENT)" \
            >"$WORK/$name-$client.ids" &
    done
done
wait

total=$((${#SERVERS[@]} * CLIENTS_PER_SERVER * IDS_PER_CLIENT))
check_equal "IDs drawn" "$(cat "$WORK"/*.ids | wc -l)" "$total"
check_equal "no ID repeats across the servers" "$(sort "$WORK"/*.ids | uniq -d | wc -l)" 0
read -r _ one_port _ <<<"${SERVERS[0]}"
for server in "${SERVERS[@]}"; do
    read -r name _ node_min node_max <<<"$server"
    range=$(cat "$WORK/$name"-*.ids | psql -X -q -At -h "$primary_socket" -p "$one_port" -d postgres -c "
        CREATE TEMP TABLE drawn (id bigint);
        COPY drawn FROM STDIN;
        SELECT min(snowflake_node(id)) >= $node_min AND max(snowflake_node(id)) <= $node_max FROM drawn;" \
        2>&1 | tail -1)
    check_equal "every ID of server $name has a node in $node_min..$node_max" "$range" t
done

# Each server checks its range against the others': a misconfiguration would show here.
for server in "${SERVERS[@]}"; do
    read -r name port node_min node_max <<<"$server"
    peers=$(for other in "${SERVERS[@]}"; do
        read -r other_name _ other_min other_max <<<"$other"
        [ "$other_name" = "$name" ] || printf '"[%s,%s]",' "$other_min" "$other_max"
    done)
    conflicts=$(psql -X -q -At -h "$(cluster_root)/servers-$name/socket" -p "$port" -d postgres \
        -c "SELECT count(*) FROM snowflake_node_range_conflicts('{${peers%,}}')")
    check_equal "server $name's range overlaps no other" "$conflicts" 0
done

# A hot standby resolves links, but cannot count the visit of a link with max_visits, which must
# be committed before the link is served: it says so.
read -r _ standby_port _ <<<"${SERVERS[3]}"
on_standby() { psql -X -q -At -v VERBOSITY=verbose -h "$(cluster_root)/servers-standby/socket" -p "$standby_port" -d postgres -c "$1" 2>&1; }
psql -X -q -At -h "$primary_socket" -p "$one_port" -d postgres -c "
    SELECT shorten('https://example.com/plain', code => 'plain'),
           shorten('https://example.com/limited', code => 'limited', max_visits => 5)" >/dev/null
until [ "$(on_standby "SELECT count(*) FROM shortlinks WHERE code IN ('plain', 'limited')")" = 2 ]; do sleep 0.1; done
check_equal "the standby resolves a link" "$(on_standby "SELECT resolve('plain')")" "https://example.com/plain"
check_equal "the standby refuses a link with max_visits, with 25006" \
    "$(on_standby "SELECT resolve('limited')" | head -1)" \
    'ERROR:  25006: link "limited" has max_visits, so its visits can only be counted on the primary'
# A link edited on the primary: the standby goes to the new target once the change is replayed.
psql -X -q -At -h "$primary_socket" -p "$one_port" -d postgres \
    -c "SELECT shortlink_update('plain', url => 'https://example.com/edited')" >/dev/null
for _ in $(seq 100); do
    [ "$(on_standby "SELECT url FROM shortlinks WHERE code = 'plain'")" = https://example.com/edited ] && break
    sleep 0.1
done
check_equal "the standby follows an edited link to its new target" \
    "$(on_standby "SELECT resolve('plain')")" "https://example.com/edited"

checks_summary "several servers"
