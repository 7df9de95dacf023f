#!/usr/bin/env bash
# Bulk rate of snowflake_next() in one backend, against the ceiling of 4096 IDs per millisecond
# (4,096,000 per second). Measured in the same run: the query's floor (count(*) over the same
# generate_series, no ID at all) and nextval() as a baseline.
# Usage: bench/snowflake_rate.sh [IDS]   (default 10000000)
source "$(dirname "$0")/../scripts/lib.sh"

IDS=${1:-10000000}
BENCH_PORT=${SNOWLINK_BENCH_PORT:-25435}
CEILING_PER_SECOND=4096000

ensure_tools
say "building and installing snowlink (release)"
install_extension --release
cluster_start bench "$BENCH_PORT"
trap 'cluster_remove bench' EXIT
psql -X -q -d postgres -c 'CREATE EXTENSION IF NOT EXISTS snowlink' -c 'CREATE SEQUENCE IF NOT EXISTS bench_seq'

# Best of three runs, in milliseconds, of one query.
best_ms() {
    local query=$1 best= run ms
    for run in 1 2 3; do
        ms=$(psql -X -q -d postgres -c '\timing on' -c "$query" | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p')
        if [ -z "$best" ] || awk -v a="$ms" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$ms; fi
    done
    printf '%s' "$best"
}

# Claim the node and warm up before timing.
psql -X -q -d postgres -c 'SELECT snowflake_next()' >/dev/null

# generate_series() in FROM is materialized into a tuplestore before the scan calls
# snowflake_next(), so that query's time is the materialization plus the IDs. In the SELECT list
# the series streams, and the time is that of the IDs with the per-row cost overlapping.
materialized="FROM generate_series(1, $IDS)"
streaming="FROM (SELECT generate_series(1, $IDS)) AS series"
snowflake_ms=$(best_ms "SELECT count(snowflake_next()) $materialized")
floor_ms=$(best_ms "SELECT count(*) $materialized")
streaming_ms=$(best_ms "SELECT count(snowflake_next()) $streaming")
streaming_floor_ms=$(best_ms "SELECT count(*) $streaming")
nextval_ms=$(best_ms "SELECT count(nextval('bench_seq')) $streaming")

say "results ($IDS IDs, best of 3)"
awk -v ids="$IDS" -v ceiling="$CEILING_PER_SECOND" -v m="$snowflake_ms" -v mf="$floor_ms" \
    -v s="$streaming_ms" -v sf="$streaming_floor_ms" -v n="$nextval_ms" '
function line(label, ms, with_rate) {
    printf "%-68s %7.3f s", label, ms / 1000
    if (with_rate) printf "  %9.0f IDs/s  %.3f of the ceiling", ids / (ms / 1000), ids / (ms / 1000) / ceiling
    printf "\n"
}
BEGIN {
    printf "ceiling: %d IDs/s per backend, %.3f s for %d IDs; goal: at most 1.1 times that, %.3f s\n\n", ceiling, ids / ceiling, ids, 1.1 * ids / ceiling
    line("SELECT count(snowflake_next()) FROM generate_series(1, N)", m, 1)
    line("  its floor: SELECT count(*) FROM generate_series(1, N)", mf, 0)
    line("SELECT count(snowflake_next()) FROM (SELECT generate_series(1, N))", s, 1)
    line("  its floor: count(*)", sf, 0)
    line("SELECT count(nextval(...)) FROM (SELECT generate_series(1, N))", n, 1)
}'
