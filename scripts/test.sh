#!/usr/bin/env bash
# Command 2: every test. Style checks and snowlink-http's unit tests, then for each PostgreSQL
# version: clippy, the Rust unit and #[pg_test] tests, the pg_regress suite in pg_test/, the TAP
# tests in t/ (pg_dump/pg_restore round trips, updates from every released version under load,
# visits through the visit writer and crashes, a full disk, three servers and a hot standby, IDs
# under clock steps, clients through PgBouncer, snowlink-http with curl and Chromium, and on 15 a
# Citus cluster), the snippets of docs/applications.md, the SQL examples of README.md and
# docs/, and (on 15) the packages in a clean Debian 12. A test that fails is reported, and the
# others still run; the command then exits non-zero.
# Usage: scripts/test.sh [MAJOR... | all]   (default 15; all: 15 16 17 18)
#        scripts/test.sh --only NAME... [-- MAJOR...]   the TAP tests t/NAME.pl alone
source "$(dirname "$0")/lib.sh"

REGRESS_PORT=${SNOWLINK_REGRESS_PORT:-25425}
only=()
if [ "${1:-}" = --only ]; then
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        only+=("$1")
        shift
    done
    [ "${1:-}" != -- ] || shift
    ((${#only[@]})) || { echo "--only needs the name of a test in t/" >&2; exit 2; }
fi
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=("$DEBIAN_PG_MAJOR")
[ "${versions[*]}" != all ] || versions=("${SUPPORTED_PG_MAJORS[@]}")
cd "$PROJECT_DIR"

# The tests that failed, by version and name: the run goes on past them.
FAILED=()
# scripted LOG COMMAND...: runs a test script, its output also into LOG.
scripted() {
    local log=$1
    shift
    "$@" 2>&1 | tee -a "$log" || FAILED+=("PostgreSQL $PG_MAJOR: $(basename "$log" .log)")
}

test_version() {
    use_postgres "$1"
    ensure_tools
    local logs=$PROJECT_DIR/target/test-logs/pg$PG_MAJOR
    local features=(--no-default-features --features "pg$PG_MAJOR")
    rm -rf "$logs"
    mkdir -p "$logs"

    say "PostgreSQL $PG_MAJOR: cargo clippy (warnings are errors)"
    cargo clippy --all-targets --no-default-features --features "pg$PG_MAJOR pg_test" -- -D warnings

    say "PostgreSQL $PG_MAJOR: Rust unit and property tests (no server)"
    cargo test --lib "${features[@]}" -- --skip tests::pg_ 2>&1 | tee "$logs/unit-tests.log"

    say "PostgreSQL $PG_MAJOR: #[pg_test]s in a temporary server"
    local runas=()
    if [ "$(id -u)" -eq 0 ]; then
        runas=(--runas postgres --pgdata "$(cluster_root)/pg_test")
        mkdir -p "$(cluster_root)/pg_test"
        chown postgres: "$(cluster_root)/pg_test"
    fi
    cargo pgrx test "pg$PG_MAJOR" tests::pg_ "${runas[@]}" 2>&1 | tee "$logs/pg-tests.log"

    install_extension
    # The TAP tests start their own servers on free ports: they run meanwhile, their output in
    # their log until they end.
    ensure_tap_tools
    prove_tests "$logs/tap.log" >/dev/null &
    local tap=$!

    say "PostgreSQL $PG_MAJOR: pg_regress"
    # With Rust backtraces on, as some servers have them: errors must read the same.
    CLUSTER_ENV=(RUST_BACKTRACE=1)
    # Each backend writes its own visits, so that every file reads its counts at once; the visit
    # writer, the default, has its cases in shortlinks_visits and t/visits.pl.
    cluster_start "regress-$PG_MAJOR" "$REGRESS_PORT" max_prepared_transactions=2 \
        snowlink.visit_write_mode=transaction
    CLUSTER_ENV=()
    trap 'cluster_remove "regress-$PG_MAJOR"' EXIT
    local tests
    tests=$(cd pg_test/sql && ls ./*.sql | sed 's|^\./||; s|\.sql$||')
    local results=$PROJECT_DIR/target/pg_regress/pg$PG_MAJOR
    mkdir -p "$results"
    # shellcheck disable=SC2086 # one argument per test name
    "$($PG_CONFIG --pkglibdir)/pgxs/src/test/regress/pg_regress" --bindir="$PG_BIN" \
        --host="$PGHOST" --port="$PGPORT" --user=postgres --inputdir=pg_test --outputdir="$results" \
        --dbname=snowlink_regress --load-extension=snowlink $tests 2>&1 | tee "$logs/pg_regress.log" || {
        cat "$results/regression.diffs" 2>/dev/null
        FAILED+=("PostgreSQL $PG_MAJOR: pg_regress")
    }

    cluster_remove "regress-$PG_MAJOR"
    trap - EXIT

    say "PostgreSQL $PG_MAJOR: the snippets of docs/applications.md (Python, Node.js, Rust)"
    scripted "$logs/clients.log" scripts/clients_test.sh

    say "PostgreSQL $PG_MAJOR: the SQL examples of README.md and docs/"
    scripted "$logs/docs.log" scripts/doc_test.sh

    # The packages, built and installed into a clean Debian 12, whose server is PostgreSQL 15.
    if [ "$PG_MAJOR" = "$DEBIAN_PG_MAJOR" ]; then
        say "PostgreSQL $PG_MAJOR: the packages in a clean Debian 12"
        scripted "$logs/packages.log" scripts/package_test.sh
    fi

    say "PostgreSQL $PG_MAJOR: the TAP tests in t/ (started before pg_regress)"
    wait "$tap" || FAILED+=("PostgreSQL $PG_MAJOR: TAP tests (their logs: target/tap/pg$PG_MAJOR/tmp_check/log)")
    cat "$logs/tap.log"
}

if ((${#only[@]})); then
    for version in "${versions[@]}"; do
        use_postgres "$version"
        ensure_tools
        ensure_tap_tools
        install_extension
        prove_tests "$PROJECT_DIR/target/tap-pg$PG_MAJOR.log" "${only[@]}" ||
            FAILED+=("PostgreSQL $PG_MAJOR: ${only[*]}")
    done
    ((${#FAILED[@]} == 0)) || { printf 'FAILED: %s\n' "${FAILED[@]}"; exit 1; }
    exit 0
fi


say "cargo fmt --check"
cargo fmt --all --check
say "snowlink-http: cargo clippy (warnings are errors) and unit tests"
mkdir -p "$PROJECT_DIR/target/test-logs"
HTTP_UNIT_LOG=$PROJECT_DIR/target/test-logs/http-unit-tests.log
cargo clippy -p snowlink-http --all-targets -- -D warnings
cargo test -p snowlink-http 2>&1 | tee "$HTTP_UNIT_LOG"
say "released SQL scripts are unchanged (sql/SHA256SUMS)"
(cd sql && sha256sum --check --strict SHA256SUMS)
say "no Rust code changes the user id (SECURITY DEFINER functions do)"
if grep -rn 'SetUserId\|SetSessionUserId' src/; then exit 1; fi
for version in "${versions[@]}"; do
    test_version "$version"
done

# The logs of the scripted tests that ran for a version (the packages are tested on one).
scripted_logs() {
    ls "$1"/{clients,docs,packages}.log 2>/dev/null
}

# tap_passed LOG: how many checks of the TAP tests passed, from prove's output in LOG.
tap_passed() {
    awk '/^Files=[0-9]+, Tests=/ { sub(/,$/, "", $2); sub(/Tests=/, "", $2); run = $2 }
         /Failed [0-9]+\/[0-9]+ subtests/ { split($2, n, "/"); failed += n[1] }
         END { print run - failed }' "$1"
}

say "summary"
echo "snowlink-http:"
grep -h '^test result:' "$HTTP_UNIT_LOG"
total=$(grep -h '^test result:' "$HTTP_UNIT_LOG" | awk '{ total += $4 } END { print total }')
for version in "${versions[@]}"; do
    logs=$PROJECT_DIR/target/test-logs/pg$version
    echo "PostgreSQL $version:"
    # A part that failed has no summary line: its failure is listed at the end.
    grep -h '^test result:' "$logs/unit-tests.log" "$logs/pg-tests.log" || true
    grep -h -E '^(# )? *All [0-9]+ tests passed' "$logs/pg_regress.log" || true
    # shellcheck disable=SC2046 # one argument per log
    grep -h -E '^(clients|docs|packages)[^:]*: [0-9]+ passed' \
        $(scripted_logs "$logs") || true
    grep -h -E '^(Files=|Result:)' "$logs/tap.log" || true
    total=$((total + $(
        {
            grep -h '^test result:' "$logs/unit-tests.log" "$logs/pg-tests.log" | awk '{ print $4 }'
            sed -nE 's/^(# )? *All ([0-9]+) tests passed.*/\2/p' "$logs/pg_regress.log"
            sed -nE 's/^(clients|docs|packages)[^:]*: ([0-9]+) passed.*/\2/p' \
                $(scripted_logs "$logs")
            tap_passed "$logs/tap.log"
        } | awk '{ total += $1 } END { print total }'
    )))
done
if ((${#FAILED[@]})); then
    echo "snowlink: $total passed; these failed (their output is above):"
    printf '  %s\n' "${FAILED[@]}"
    exit 1
fi
echo "snowlink: $total passed, 0 failed"
