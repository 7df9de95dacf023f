#!/usr/bin/env bash
# Command 2: every test. Style checks and snowlink-http's unit tests, then for each PostgreSQL
# version: clippy, the Rust unit and #[pg_test] tests, the pg_regress suite in pg_test/,
# pg_dump/pg_restore round trips, updates from every released version, visits through the visit
# writer, a full disk, IDs under clock steps,
# three servers with a hot standby, clients through PgBouncer, snowlink-http with curl and
# Chromium, the Python snippets of docs/applications.md, the SQL examples of README.md and docs/,
# and (on 15) the packages in a clean Debian 12 and a
# Citus cluster.
# Exits non-zero when anything fails.
# Usage: scripts/test.sh [MAJOR... | all]   (default 15; all: 15 16 17 18)
source "$(dirname "$0")/lib.sh"

REGRESS_PORT=${SNOWLINK_REGRESS_PORT:-25425}
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=("$DEBIAN_PG_MAJOR")
[ "${versions[*]}" != all ] || versions=("${SUPPORTED_PG_MAJORS[@]}")
cd "$PROJECT_DIR"

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

    say "PostgreSQL $PG_MAJOR: pg_regress"
    install_extension
    # With Rust backtraces on, as some servers have them: errors must read the same.
    CLUSTER_ENV=(RUST_BACKTRACE=1)
    # Each backend writes its own visits, so that every file reads its counts at once; the visit
    # writer, the default, has its cases in shortlinks_visits and scripts/visits_test.sh.
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
        exit 1
    }

    say "PostgreSQL $PG_MAJOR: pg_dump and pg_restore round trips"
    "$PROJECT_DIR/scripts/dump_restore_test.sh" 2>&1 | tee "$logs/dump_restore.log"
    local version
    for version in $(released_versions); do
        "$PROJECT_DIR/scripts/dump_restore_test.sh" --updated-from "$version" 2>&1 | tee -a "$logs/dump_restore.log"
        "$PROJECT_DIR/scripts/dump_restore_test.sh" --dumped-at "$version" 2>&1 | tee -a "$logs/dump_restore.log"
    done

    say "PostgreSQL $PG_MAJOR: ALTER EXTENSION UPDATE from every released version"
    "$PROJECT_DIR/scripts/upgrade_test.sh" 2>&1 | tee "$logs/upgrade.log"
    cluster_remove "regress-$PG_MAJOR"
    trap - EXIT

    say "PostgreSQL $PG_MAJOR: visits through the visit writer, crashes under load"
    "$PROJECT_DIR/scripts/visits_test.sh" 2>&1 | tee "$logs/visits.log"

    say "PostgreSQL $PG_MAJOR: a full disk (the data directory on a small tmpfs)"
    "$PROJECT_DIR/scripts/disk_full_test.sh" 2>&1 | tee "$logs/disk_full.log"

    say "PostgreSQL $PG_MAJOR: snowflake IDs under clock steps (libfaketime)"
    "$PROJECT_DIR/scripts/clock_test.sh" 2>&1 | tee "$logs/clock.log"

    say "PostgreSQL $PG_MAJOR: three servers and a hot standby"
    "$PROJECT_DIR/scripts/servers_test.sh" 2>&1 | tee "$logs/servers.log"

    say "PostgreSQL $PG_MAJOR: clients through PgBouncer"
    "$PROJECT_DIR/scripts/pgbouncer_test.sh" 2>&1 | tee "$logs/pgbouncer.log"

    say "PostgreSQL $PG_MAJOR: snowlink-http with curl and headless Chromium"
    ensure_debian_packages chromium zbar-tools prometheus python3-yaml
    "$PROJECT_DIR/scripts/http_test.sh" 2>&1 | tee "$logs/http.log"

    say "PostgreSQL $PG_MAJOR: the Python snippets of docs/applications.md (psycopg 3, SQLAlchemy 2)"
    "$PROJECT_DIR/scripts/clients_test.sh" 2>&1 | tee "$logs/clients.log"

    say "PostgreSQL $PG_MAJOR: the SQL examples of README.md and docs/"
    "$PROJECT_DIR/scripts/doc_test.sh" 2>&1 | tee "$logs/docs.log"

    # The packages, built and installed into a clean Debian 12, whose server is PostgreSQL 15.
    if [ "$PG_MAJOR" = "$DEBIAN_PG_MAJOR" ]; then
        say "PostgreSQL $PG_MAJOR: the packages in a clean Debian 12"
        "$PROJECT_DIR/scripts/package_test.sh" 2>&1 | tee "$logs/packages.log"
    fi

    # Citus 13, the newest for PostgreSQL 15, is not built for the other versions.
    if [ "$PG_MAJOR" = "$DEBIAN_PG_MAJOR" ]; then
        say "PostgreSQL $PG_MAJOR: a Citus coordinator and two workers"
        if citus_available; then
            ensure_citus
            "$PROJECT_DIR/scripts/citus_test.sh" 2>&1 | tee "$logs/citus.log"
        else
            echo "skipped: Citus is not installed and its source is not in $CITUS_SOURCE" |
                tee "$logs/citus.log"
        fi
    fi
}

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

# The logs of the scripted tests that ran for a version (Citus runs on one).
scripted_logs() {
    ls "$1"/{dump_restore,upgrade,visits,disk_full,clock,servers,pgbouncer,http,clients,docs,packages,citus}.log 2>/dev/null
}

say "summary"
echo "snowlink-http:"
grep -h '^test result:' "$HTTP_UNIT_LOG"
total=$(grep -h '^test result:' "$HTTP_UNIT_LOG" | awk '{ total += $4 } END { print total }')
for version in "${versions[@]}"; do
    logs=$PROJECT_DIR/target/test-logs/pg$version
    echo "PostgreSQL $version:"
    grep -h '^test result:' "$logs/unit-tests.log" "$logs/pg-tests.log"
    grep -h -E '^(# )? *All [0-9]+ tests passed' "$logs/pg_regress.log"
    # shellcheck disable=SC2046 # one argument per log
    grep -h -E '^(dump and restore|upgrade|visits|disk full|clock steps|several servers|pgbouncer|http|clients|docs|packages|citus)[^:]*: [0-9]+ passed' \
        $(scripted_logs "$logs")
    total=$((total + $(
        {
            grep -h '^test result:' "$logs/unit-tests.log" "$logs/pg-tests.log" | awk '{ print $4 }'
            sed -nE 's/^(# )? *All ([0-9]+) tests passed.*/\2/p' "$logs/pg_regress.log"
            sed -nE 's/^(dump and restore|upgrade|visits|disk full|clock steps|several servers|pgbouncer|http|clients|docs|packages|citus)[^:]*: ([0-9]+) passed.*/\2/p' \
                $(scripted_logs "$logs")
        } | awk '{ total += $1 } END { print total }'
    )))
done
echo "snowlink: $total passed, 0 failed"
