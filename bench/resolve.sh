#!/usr/bin/env bash
# resolve() against a plain SELECT on a hand-written table, with N clients on distinct codes and
# N clients on one hot code. Ratios are taken within this run, on the same cluster, from the median
# of runs taken in turn.
# Usage: bench/resolve.sh [SECONDS_PER_RUN] [CLIENTS...]   (default: 5 rounds of 6 s; 1 2 4 clients)
source "$(dirname "$0")/../scripts/lib.sh"
source "$PROJECT_DIR/bench/lib.sh"

SECONDS_PER_RUN=${1:-6}
ROUNDS=${SNOWLINK_BENCH_ROUNDS:-5}
DB=snowlink_bench
shift || true
CLIENTS=("${@:-1}")
[ $# -gt 0 ] || CLIENTS=(1 2 4)
BENCH_PORT=${SNOWLINK_BENCH_PORT:-25435}

ensure_tools
say "building and installing snowlink (release)"
install_extension --release
cluster_start bench "$BENCH_PORT"
trap 'cluster_remove bench' EXIT
psql -X -q -d postgres -c 'DROP DATABASE IF EXISTS snowlink_bench' -c 'CREATE DATABASE snowlink_bench'
psql -X -q -v ON_ERROR_STOP=1 -d snowlink_bench <<'SQL' >/dev/null
CREATE EXTENSION snowlink;
SELECT shorten('https://example.com/page/' || i, code => 'c' || i) FROM generate_series(1, 10000) AS i;
CREATE TABLE plain_links (code text COLLATE "C" PRIMARY KEY, url text NOT NULL);
INSERT INTO plain_links SELECT code, url FROM shortlinks;
VACUUM ANALYZE;
SQL

say "results (median tps of $ROUNDS rounds, $SECONDS_PER_RUN s per run)"
printf '%-8s %14s %14s %14s %14s %10s %10s\n' clients plain_distinct resolve_distinct plain_hot resolve_hot \
    "distinct" "hot/dist"
for clients in "${CLIENTS[@]}"; do
    tps_in_turn "$clients" plain_distinct resolve_distinct plain_hot resolve_hot |
        awk -v c="$clients" '{ tps[$1] = $2 } END {
            printf "%-8s %14.0f %14.0f %14.0f %14.0f %10.2f %10.2f\n", c, tps["plain_distinct"],
                tps["resolve_distinct"], tps["plain_hot"], tps["resolve_hot"],
                tps["resolve_distinct"] / tps["plain_distinct"], tps["resolve_hot"] / tps["resolve_distinct"]
        }'
done
echo "distinct: resolve() on distinct codes / plain SELECT on distinct codes (goal: at least 0.8)"
echo "hot/dist: resolve() on one code / resolve() on distinct codes (close to 1: no queueing)"
