#!/usr/bin/env bash
# snowflake_next() beside the IDs users would pick instead, on one PostgreSQL version: pgEdge's
# snowflake.nextval() (built from ../shared/vendor/pgedge-snowflake/, see its README), nextval(),
# gen_random_uuid() and, from PostgreSQL 18, uuidv7(). Each measure runs the candidates in turn,
# ROUNDS times, every other round in reverse order, and takes the median: streamed IDs (one
# statement), pgbench with 1 and 2 clients, pgbench --connect (a new connection per ID, neither
# library preloaded, then snowlink's preloaded), an INSERT of 1M rows with the ID as the primary
# key's DEFAULT and the size of that index; and it checks that no ID repeats. pgEdge's extension is
# installed into that PostgreSQL when missing. Writes target/bench/peers-pgMAJOR.tsv, which
# bench/peers_report.py turns into tables in BENCHMARKS.md and docs/choosing-an-id.md.
# Usage: bench/peers.sh [MAJOR]   (default 15)
source "$(dirname "$0")/../scripts/lib.sh"
source "$PROJECT_DIR/bench/lib.sh"

use_postgres "${1:-$DEBIAN_PG_MAJOR}"
ROWS=${PEERS_ROWS:-1000000}
SECONDS_PER_RUN=${PEERS_SECONDS:-5}
ROUNDS=${PEERS_ROUNDS:-5}
DB=snowlink_peers
PORT=$((${SNOWLINK_BENCH_PORT:-25435} + 30))
PGEDGE_SOURCE=${PGEDGE_SOURCE:-$PROJECT_DIR/../shared/vendor/pgedge-snowflake}
PGEDGE_TARBALL=snowflake-2.6.0-ebbdae8.tar.gz
RESULTS=$PROJECT_DIR/target/bench/peers-pg$PG_MAJOR.tsv

# Each candidate: its name in the tables, and the SQL expression of one ID.
declare -A ID_SQL=(
    [snowflake_next]="snowflake_next()"
    [pgedge]="snowflake.nextval()"
    [nextval]="nextval('peers_seq')"
    [gen_random_uuid]="gen_random_uuid()"
    [uuidv7]="uuidv7()"
)
CANDIDATES=(snowflake_next pgedge nextval gen_random_uuid)
((PG_MAJOR < 18)) || CANDIDATES+=(uuidv7)

if [ ! -f "$("$PG_CONFIG" --pkglibdir)/snowflake.so" ]; then
    [ -f "$PGEDGE_SOURCE/$PGEDGE_TARBALL" ] || {
        echo "pgEdge snowflake's source is not in $PGEDGE_SOURCE" >&2
        exit 1
    }
    ensure_debian_packages build-essential
    say "building pgEdge snowflake for PostgreSQL $PG_MAJOR"
    build=$PROJECT_DIR/target/bench/pgedge-pg$PG_MAJOR
    rm -rf "$build"
    mkdir -p "$build"
    tar -xzf "$PGEDGE_SOURCE/$PGEDGE_TARBALL" -C "$build" --strip-components=1
    make -C "$build" USE_PGXS=1 PG_CONFIG="$PG_CONFIG" >"$build/make.log" 2>&1
    as_root make -C "$build" USE_PGXS=1 PG_CONFIG="$PG_CONFIG" install >>"$build/make.log" 2>&1
fi
ensure_tools
say "building and installing snowlink (release) for PostgreSQL $PG_MAJOR"
install_extension --release >/dev/null
cluster_start "peers-$PG_MAJOR" "$PORT"
trap 'cluster_remove "peers-$PG_MAJOR"' EXIT
mkdir -p "$(dirname "$RESULTS")"
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
# pgEdge's node is set by hand per server; snowlink's backends claim theirs.
psql -X -q -d postgres -c "ALTER DATABASE $DB SET snowflake.node = 1"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" >/dev/null <<SQL
CREATE EXTENSION snowlink;
CREATE EXTENSION snowflake;
CREATE SEQUENCE peers_seq;
SQL
for name in "${CANDIDATES[@]}"; do
    type=bigint
    [[ $name != *uuid* ]] || type=uuid
    psql -X -q -v ON_ERROR_STOP=1 -d "$DB" \
        -c "CREATE TABLE keyed_$name (id $type PRIMARY KEY DEFAULT ${ID_SQL[$name]}, payload text)"
    echo "SELECT ${ID_SQL[$name]};" >"$PROJECT_DIR/target/bench/peers-$name.sql"
done
printf 'measure\tcandidate\tvalue\n' >"$RESULTS"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }
record server_version "" "$(psql -X -q -At -d "$DB" -c 'SHOW server_version')"

# The measures, as tps_in_turn (bench/lib.sh) calls them: MEASURE CANDIDATE CLIENTS.
statement_ms() {
    psql -X -q -d "$DB" -c '\timing on' -c "SELECT count(${ID_SQL[$1]}) FROM generate_series(1, $ROWS)" |
        sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p'
}
pgbench_tps() {
    "$PG_BIN/pgbench" -n -M prepared "${PGBENCH_OPTIONS[@]}" -c "$2" -j "$2" -T "$SECONDS_PER_RUN" \
        -f "$PROJECT_DIR/target/bench/peers-$1.sql" "$DB" 2>/dev/null | sed -nE 's/^tps = ([0-9.]+).*/\1/p'
}
insert_s() {
    psql -X -q -d "$DB" -c "TRUNCATE keyed_$1" -c "CHECKPOINT" >/dev/null
    psql -X -q -d "$DB" -c '\timing on' -c "INSERT INTO keyed_$1 (payload) SELECT 'x' FROM generate_series(1, $ROWS)" |
        sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | awk '{ printf "%.3f\n", $1 / 1000 }'
}
# in_turn MEASURE_NAME FUNCTION CLIENTS CANDIDATE...: records the median of each candidate.
in_turn() {
    local measure=$1 clients=$3
    MEASURE=$2
    shift 3
    tps_in_turn "$clients" "$@" | while read -r name median; do
        record "$measure" "$name" "$median"
        echo "$measure $name: $median"
    done
    MEASURE=tps
}

say "PostgreSQL $PG_MAJOR: $ROWS IDs in one statement, ms"
in_turn statement_ms statement_ms 1 "${CANDIDATES[@]}"
say "PostgreSQL $PG_MAJOR: pgbench SELECT of one ID, tps"
in_turn pgbench_c1 pgbench_tps 1 "${CANDIDATES[@]}"
in_turn pgbench_c2 pgbench_tps 2 "${CANDIDATES[@]}"
say "PostgreSQL $PG_MAJOR: pgbench --connect, a new connection per ID, tps"
# The UUID functions are in core, as nextval() is: a new connection costs them what it costs it.
PGBENCH_OPTIONS=(--connect)
in_turn connect_c1 pgbench_tps 1 snowflake_next pgedge nextval
in_turn connect_c2 pgbench_tps 2 snowflake_next pgedge nextval
# The same with snowlink's library loaded by the postmaster: what preloading saves a connection.
cluster_start "peers-$PG_MAJOR" "$PORT" shared_preload_libraries=snowlink >/dev/null
in_turn connect_preloaded_c1 pgbench_tps 1 snowflake_next nextval
cluster_start "peers-$PG_MAJOR" "$PORT" >/dev/null
PGBENCH_OPTIONS=()
say "PostgreSQL $PG_MAJOR: INSERT of $ROWS rows with the ID as the primary key's DEFAULT, s"
ROUNDS=3 in_turn insert_s insert_s 1 "${CANDIDATES[@]}"

say "PostgreSQL $PG_MAJOR: index sizes, and no ID repeats"
for name in "${CANDIDATES[@]}"; do
    record pkey_bytes "$name" "$(psql -X -q -At -d "$DB" -c "SELECT pg_relation_size('keyed_${name}_pkey')")"
    # The primary key refused any repeat within each INSERT; these are the IDs of one statement.
    distinct=$(psql -X -q -At -d "$DB" -c "SELECT count(DISTINCT id) FROM (SELECT ${ID_SQL[$name]} AS id FROM generate_series(1, $ROWS)) AS ids")
    [ "$distinct" = "$ROWS" ] || {
        echo "$name: $distinct distinct IDs of $ROWS" >&2
        exit 1
    }
    record distinct_of_statement "$name" "$distinct"
done
echo "wrote $RESULTS"
