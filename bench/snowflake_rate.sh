#!/usr/bin/env bash
# Bulk rate of snowflake_next() in one backend, against the ceiling of 4096 IDs per millisecond
# (4,096,000 per second), with nextval() measured in the same run as a baseline.
# Usage: bench/snowflake_rate.sh [IDS]   (default 10000000)
source "$(dirname "$0")/../scripts/lib.sh"

IDS=${1:-10000000}
BENCH_PORT=${SNOWLINK_BENCH_PORT:-54335}
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
snowflake_ms=$(best_ms "SELECT count(snowflake_next()) FROM generate_series(1, $IDS)")
nextval_ms=$(best_ms "SELECT count(nextval('bench_seq')) FROM generate_series(1, $IDS)")

say "results ($IDS IDs, best of 3)"
awk -v ids="$IDS" -v s="$snowflake_ms" -v n="$nextval_ms" -v ceiling="$CEILING_PER_SECOND" 'BEGIN {
    rate = ids / (s / 1000)
    printf "snowflake_next(): %.3f s, %.0f IDs/s, %.3f of the ceiling (goal: at least 0.9)\n", s / 1000, rate, rate / ceiling
    printf "nextval():        %.3f s, %.0f IDs/s; snowflake_next() takes %.2fx its time\n", n / 1000, ids / (n / 1000), s / n
}'
