# Shared by the benchmark scripts: pgbench runs on the scratch cluster that scripts/lib.sh starts.
# Needs DB, SECONDS_PER_RUN and ROUNDS set.

# Options for every pgbench run, such as --connect.
PGBENCH_OPTIONS=()

# Transactions per second of one run of bench/pgbench/SCRIPT.sql with N clients.
tps() {
    "$PG_BIN/pgbench" -n -M prepared "${PGBENCH_OPTIONS[@]}" -c "$2" -j "$2" -T "$SECONDS_PER_RUN" \
        -f "$PROJECT_DIR/bench/pgbench/$1.sql" "$DB" 2>/dev/null | sed -nE 's/^tps = ([0-9.]+).*/\1/p'
}

median() {
    printf '%s\n' "$@" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# What tps_in_turn measures a script with: `MEASURE SCRIPT CLIENTS` prints a rate.
MEASURE=tps

# Runs the scripts with N clients one after the other, ROUNDS times, every other round in reverse
# order, so that a noisy stretch of a shared machine falls on each of them alike; prints
# "script median_tps" lines.
tps_in_turn() {
    local clients=$1 round script
    shift
    local order=("$@") reversed=()
    for script in "$@"; do reversed=("$script" "${reversed[@]}"); done
    declare -A runs=()
    for round in $(seq "$ROUNDS"); do
        [ $((round % 2)) -eq 1 ] && order=("$@") || order=("${reversed[@]}")
        for script in "${order[@]}"; do runs[$script]+="$("$MEASURE" "$script" "$clients") "; done
    done
    for script in "$@"; do
        # shellcheck disable=SC2086 # one argument per run
        echo "$script $(median ${runs[$script]})"
    done
}
