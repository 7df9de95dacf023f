#!/usr/bin/env bash
# Command 2: every test. Style checks, the Rust unit and #[pg_test] tests, the pg_regress suite in
# pg_test/ and a pg_dump/pg_restore round trip against a scratch server. Exits non-zero when
# anything fails.
source "$(dirname "$0")/lib.sh"

REGRESS_PORT=${SNOWLINK_REGRESS_PORT:-54325}
LOG_DIR=$PROJECT_DIR/target/test-logs
PG_REGRESS=$($PG_CONFIG --pkglibdir)/pgxs/src/test/regress/pg_regress

ensure_tools
cd "$PROJECT_DIR"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

say "cargo fmt --check"
cargo fmt --check

say "cargo clippy (warnings are errors)"
cargo clippy --all-targets --no-default-features --features "pg$PG_MAJOR pg_test" -- -D warnings

say "Rust unit and property tests (no server)"
cargo test --lib -- --skip tests::pg_ 2>&1 | tee "$LOG_DIR/unit-tests.log"

say "#[pg_test]s in a temporary server"
runas=()
if [ "$(id -u)" -eq 0 ]; then
    pg_test_data=$(cluster_root)/pg_test
    mkdir -p "$pg_test_data"
    chown postgres: "$pg_test_data"
    runas=(--runas postgres --pgdata "$pg_test_data")
fi
cargo pgrx test "pg$PG_MAJOR" tests::pg_ "${runas[@]}" 2>&1 | tee "$LOG_DIR/pg-tests.log"

say "pg_regress"
install_extension
cluster_start regress "$REGRESS_PORT"
trap 'cluster_remove regress' EXIT
tests=$(cd pg_test/sql && ls ./*.sql | sed 's|^\./||; s|\.sql$||')
# shellcheck disable=SC2086 # one argument per test name
"$PG_REGRESS" --bindir="$PG_BIN" --host="$PGHOST" --port="$PGPORT" --user=postgres \
    --inputdir=pg_test --outputdir="$PROJECT_DIR/target/pg_regress" \
    --dbname=snowlink_regress --load-extension=snowlink $tests 2>&1 |
    tee "$LOG_DIR/pg_regress.log" || {
    cat "$PROJECT_DIR/target/pg_regress/regression.diffs" 2>/dev/null
    exit 1
}

say "pg_dump and pg_restore round trip"
"$PROJECT_DIR/scripts/dump_restore_test.sh" 2>&1 | tee "$LOG_DIR/dump_restore.log"

say "summary"
grep -h '^test result:' "$LOG_DIR/unit-tests.log" "$LOG_DIR/pg-tests.log"
grep -h -E '^ *All [0-9]+ tests passed' "$LOG_DIR/pg_regress.log"
rust_passed=$(grep -h '^test result:' "$LOG_DIR/unit-tests.log" "$LOG_DIR/pg-tests.log" |
    awk '{ total += $4 } END { print total }')
regress_passed=$(sed -nE 's/^ *All ([0-9]+) tests passed.*/\1/p' "$LOG_DIR/pg_regress.log")
grep -h '^dump and restore:' "$LOG_DIR/dump_restore.log"
dump_passed=$(sed -nE 's/^dump and restore: ([0-9]+) passed.*/\1/p' "$LOG_DIR/dump_restore.log")
echo "snowlink: $((rust_passed + regress_passed + dump_passed)) passed, 0 failed"
