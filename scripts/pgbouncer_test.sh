#!/usr/bin/env bash
# Many more clients than server connections draw IDs and shorten links through PgBouncer, in
# transaction pooling and in session pooling (whose reset query, DISCARD ALL, drops the node locks).
# Nothing may repeat and no client may get an error. Prints one line per check.
source "$(dirname "$0")/lib.sh"

SERVER_PORT=25461
BOUNCER_PORT=25462
CLIENTS=30
TRANSACTIONS_PER_CLIENT=200
WORK=$(reachable_dir cluster)/pgbouncer

command -v pgbouncer >/dev/null ||
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null

stop_bouncer() {
    [ -f "$WORK/pgbouncer.pid" ] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true
    rm -f "$WORK/pgbouncer.pid"
}
trap 'stop_bouncer; cluster_remove pgbouncer-server' EXIT
rm -rf "$WORK"
mkdir -p "$WORK"

cluster_start pgbouncer-server "$SERVER_PORT"
server_socket=$PGHOST
psql -X -q -v ON_ERROR_STOP=1 -d postgres >/dev/null <<'SQL'
CREATE EXTENSION snowlink;
CREATE TABLE drawn_ids (id bigint PRIMARY KEY);
SQL
cat >"$WORK/clients.sql" <<'SQL'
INSERT INTO drawn_ids VALUES (snowflake_next());
SELECT shorten('https://example.com/' || random());
SQL

# run_through_bouncer MODE [PGBENCH_OPTION...]: $CLIENTS clients on 3 server connections.
run_through_bouncer() {
    local mode=$1
    shift
    cat >"$WORK/pgbouncer.ini" <<INI
[databases]
postgres = host=$server_socket port=$SERVER_PORT dbname=postgres
[pgbouncer]
listen_addr =
listen_port = $BOUNCER_PORT
unix_socket_dir = $WORK
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = $mode
default_pool_size = 3
max_client_conn = 200
server_reset_query = DISCARD ALL
logfile = $WORK/pgbouncer-$mode.log
pidfile = $WORK/pgbouncer.pid
INI
    echo '"postgres" ""' >"$WORK/userlist.txt"
    [ "$(id -u)" -ne 0 ] || chown -R postgres: "$WORK"
    as_pg_owner pgbouncer --daemon "$WORK/pgbouncer.ini"
    until psql -X -q -h "$WORK" -p "$BOUNCER_PORT" -d postgres -c 'SELECT 1' >/dev/null 2>&1; do
        sleep 0.1
    done

    local before output status=0
    before=$(psql -X -At -d postgres -c 'SELECT count(*) FROM drawn_ids')
    output=$("$PG_BIN/pgbench" -n -M simple -h "$WORK" -p "$BOUNCER_PORT" -U postgres \
        -c "$CLIENTS" -j 2 -t "$TRANSACTIONS_PER_CLIENT" "$@" -f "$WORK/clients.sql" postgres 2>&1) ||
        status=$?
    check_equal "$mode pooling: pgbench ran to the end" "$status" 0
    check_equal "$mode pooling: no client got an error" \
        "$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' <<<"$output")" 0
    check_equal "$mode pooling: every ID stored once" \
        "$(psql -X -At -d postgres -c 'SELECT count(*) FROM drawn_ids')" \
        "$((before + CLIENTS * TRANSACTIONS_PER_CLIENT))"
    stop_bouncer
    sleep 0.5
}

run_through_bouncer transaction
# A new connection for every transaction: PgBouncer runs DISCARD ALL between its clients.
run_through_bouncer session --connect
check_equal "short links: every code unique" \
    "$(psql -X -At -d postgres -c 'SELECT count(*) = count(DISTINCT code) FROM shortlinks')" t
check_equal "short links: one per transaction" \
    "$(psql -X -At -d postgres -c 'SELECT count(*) FROM shortlinks')" "$((2 * CLIENTS * TRANSACTIONS_PER_CLIENT))"

checks_summary "pgbouncer"
