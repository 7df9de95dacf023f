#!/usr/bin/env bash
# A full disk gives errors, never a crash. The data directory is a small tmpfs, its WAL elsewhere
# (PostgreSQL itself stops when it cannot write WAL). Sessions shorten URLs and resolve links while
# a file fills the disk, one of them starting when it is full already; then the file goes. The
# postmaster must live on, no process may end by a signal, and every link whose shorten() returned
# and every visit whose resolve() returned must be there once there is space again. Needs root (to
# mount the tmpfs). Prints one line per check.
source "$(dirname "$0")/lib.sh"

PORT=25485
NAME=diskfull-$PG_MAJOR
SIZE_MB=96
ROUNDS=400
WORK=$PROJECT_DIR/target/disk_full_test

dir=$(cluster_root)/$NAME
data=$dir/data
cleanup() {
    if [ -f "$data/PG_VERSION" ]; then
        as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$data" stop --mode=immediate >/dev/null 2>&1 || true
    fi
    ! mountpoint -q "$data" || umount "$data"
    cluster_remove "$NAME"
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK" "$data"
[ "$(id -u)" -ne 0 ] || chown postgres: "$dir" "$data"
if ! as_root mount -t tmpfs -o "size=${SIZE_MB}m,mode=0700" tmpfs "$data"; then
    echo "FAILED: cannot mount a tmpfs for the data directory (this test needs root)"
    exit 1
fi
[ "$(id -u)" -ne 0 ] || chown postgres: "$data"
as_pg_owner "$PG_BIN/initdb" --pgdata="$data" --waldir="$dir/wal" --username=postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
as_pg_owner mkdir -p "$dir/socket"
cluster_start "$NAME" "$PORT"
postmaster=$(head -1 "$data/postmaster.pid")

sql() { psql -X -At -v ON_ERROR_STOP=1 -d postgres -c "$1"; }
sql "CREATE EXTENSION snowlink;
     SELECT count(shorten('https://example.com/d/' || i, code => 'd' || i)) FROM generate_series(1, 100) AS i" >/dev/null

# A session's SQL: ROUNDS of shorten() and resolve(), then it waits (alive, with whatever visits
# it holds) until the disk has space again, and does a few more.
session_sql() {
    local session=$1 rounds=$2 from=$3 to=$4 i
    echo '\set ON_ERROR_STOP off'
    for i in $(seq "$rounds"); do
        echo "SELECT 'made ' || code || ' ' || url FROM shorten('https://example.com/full/$session/$i');"
        echo "SELECT 'resolved ' || resolve('d' || $((RANDOM % 100 + 1)));"
    done
    echo "\\! touch $WORK/$session.waiting; while [ ! -e $WORK/freed ]; do sleep 0.1; done"
    for i in $(seq "$from" "$to"); do
        echo "SELECT 'made ' || code || ' ' || url FROM shorten('https://example.com/full/$session/$i');"
        echo "SELECT 'resolved ' || resolve('d' || $((RANDOM % 100 + 1)));"
    done
}
run_session() {
    session_sql "$1" "$2" $(($2 + 1)) $(($2 + 20)) >"$WORK/$1.sql"
    psql -X -At -d postgres -f "$WORK/$1.sql" >"$WORK/$1.out" 2>&1 &
}
run_session one "$ROUNDS"
run_session two "$ROUNDS"
until [ "$(grep -c '^made ' "$WORK/one.out")" -gt 50 ]; do sleep 0.05; done
dd if=/dev/zero of="$data/filler" bs=1M >/dev/null 2>&1 || true
# A session that starts on the full disk: its visit ring cannot get its space.
run_session three $((ROUNDS / 4))
for session in one two three; do
    for tries in $(seq 1200); do
        [ -e "$WORK/$session.waiting" ] && break
        sleep 0.1
    done
done
rm -f "$data/filler"
touch "$WORK/freed"
wait

check_equal "the disk filled: shorten() failed for want of space" \
    "$(cat "$WORK"/*.out | grep -c 'No space left on device' | awk '$1 > 0 { print "yes" }')" yes
check_equal "the postmaster lives on" \
    "$([ "$(head -1 "$data/postmaster.pid")" = "$postmaster" ] && kill -0 "$postmaster" && pg_isready -q && echo yes)" yes
check_equal "no process ended by a signal" \
    "$(grep -cE 'terminated by signal|was terminated by' "$dir/server.log")" 0
grep -h '^made ' "$WORK"/*.out | cut -d' ' -f2- | tr ' ' '\t' >"$WORK/made.tsv"
check_equal "every link whose shorten() returned is there, with its URL" \
    "$(psql -X -q -At -d postgres <<SQL
CREATE TEMP TABLE made (code text, url text);
\\copy made FROM '$WORK/made.tsv'
SELECT count(*) > 0 AND count(*) = count(s.code) FROM made LEFT JOIN shortlinks AS s USING (code, url);
SQL
)" t
served=$(grep -h -c '^resolved https://' "$WORK"/*.out | awk '{ s += $1 } END { print s }')
counted=-1 previous=-2
for tries in $(seq 20); do
    previous=$counted
    counted=$(sql "SELECT sum((shortlink_stats(code)).visits) FROM shortlinks WHERE code LIKE 'd%'")
    [ "$counted" = "$previous" ] && [ "$counted" -ge "$served" ] && break
    sleep 1
done
echo "   ($(wc -l <"$WORK/made.tsv") links made, $served resolves returned, $counted visits counted)"
check_equal "every visit whose resolve() returned is counted, once" "$counted" "$served"
check_equal "the visit ring without space was said in the log" \
    "$(grep -c 'its visit ring has no disk space' "$dir/server.log" | awk '$1 > 0 { print "yes" }')" yes

checks_summary "disk full"
