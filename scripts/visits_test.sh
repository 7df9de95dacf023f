#!/usr/bin/env bash
# Visit counting with the visit writer, on a scratch server with the default settings: a visit
# shows in shortlink_stats() within 2 s whatever the backend that counted it does next; a crash of
# a backend or of the whole server under load loses no visit and counts none twice; visit rows do not grow with backends; the writer stops when idle,
# so that DROP DATABASE can proceed, and comes back with the next visit. Prints one line per check.
source "$(dirname "$0")/lib.sh"

PORT=25481
DB=visits
LINKS=1000
CLIENTS=4
# The promise of the README, with the default snowlink.visit_flush_interval_ms (1 s).
SHOWS_WITHIN_MS=2000
WORK=$PROJECT_DIR/target/visits_test

trap 'cluster_remove "visits-$PG_MAJOR"' EXIT
cluster_remove "visits-$PG_MAJOR"
rm -rf "$WORK"
mkdir -p "$WORK"
cluster_start "visits-$PG_MAJOR" "$PORT"

sql() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

sql postgres "CREATE DATABASE $DB" >/dev/null
sql "$DB" "CREATE EXTENSION snowlink;
    CREATE TABLE exported AS
        SELECT 'c' || i AS code, 'https://example.com/' || i AS url FROM generate_series(1, $LINKS) AS i;
    SELECT count(*) FROM shortlinks_import('exported')" >/dev/null

total_visits() { sql "$DB" "SELECT coalesce(sum(visits), 0) FROM shortlink_visits"; }
visits_of() { sql "$DB" "SELECT visits FROM shortlink_stats('$1')"; }
writers() { sql "$DB" "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'snowlink visit writer'"; }
now_ms() { date +%s%3N; }

# Milliseconds until code $1 shows $2 visits (polled), or "never" after 10 s.
wait_for_visits() {
    local start
    start=$(now_ms)
    while [ "$(visits_of "$1")" != "$2" ]; do
        if [ $(($(now_ms) - start)) -gt 10000 ]; then
            echo never
            return
        fi
        sleep 0.05
    done
    echo $(($(now_ms) - start))
}

# Checks that a visit of code $2 counted by a backend that then $1 shows in time.
check_shows() {
    local lag
    lag=$(wait_for_visits "$2" 1)
    echo "   (shown after ${lag} ms)"
    check_equal "a visit shows within $SHOWS_WITHIN_MS ms while its backend $1" \
        "$([ "$lag" != never ] && [ "$lag" -le "$SHOWS_WITHIN_MS" ] && echo yes)" yes
}

# --- Timely: the backend that served the visit stays idle, stays busy, or exits.
mkfifo "$WORK/idle.sql"
psql -X -q -d "$DB" <"$WORK/idle.sql" >/dev/null &
exec 3>"$WORK/idle.sql"
echo "SELECT resolve('c1');" >&3
check_shows "stays idle in its session" c1
psql -X -q -d "$DB" -c "SELECT resolve('c2'), pg_sleep(30)" >/dev/null 2>&1 &
busy=$!
check_shows "is still running the statement that counted it" c2
psql -X -q -d "$DB" -c "SELECT resolve('c3')" >/dev/null
check_shows "has exited" c3
kill "$busy" 2>/dev/null || true
exec 3>&-
wait

# --- The writer stops when there is nothing to write, and comes back with the next visit.
sleep 4
check_equal "the visit writer stops after a few idle seconds" "$(writers)" 0
sql "$DB" "SELECT resolve('c4')" >/dev/null
check_shows "is the first one after the writer stopped" c4
check_equal "one visit writer per database" "$(writers)" 1

# --- DROP DATABASE (which waits 5 s for other sessions) is not blocked by an idle writer.
sql postgres "CREATE DATABASE visits_drop" >/dev/null
sql visits_drop "CREATE EXTENSION snowlink; SELECT resolve(code) FROM shorten('https://example.com/drop')" >/dev/null
sleep 1.5
check_equal "DROP DATABASE after visits waits for the writer to stop, then drops" \
    "$(sql postgres "DROP DATABASE visits_drop" 2>&1)" "DROP DATABASE"

sql postgres "CREATE DATABASE visits_drop" >/dev/null
sql visits_drop "CREATE EXTENSION snowlink; SELECT resolve(code) FROM shorten('https://example.com/drop')" >/dev/null
check_equal "DROP DATABASE WITH (FORCE) stops a running writer" \
    "$(sql postgres "DROP DATABASE visits_drop WITH (FORCE)" 2>&1)" "DROP DATABASE"

# --- No loss: a crash under load loses no visit whose resolve() returned.
cat >"$WORK/resolve.sql" <<EOF
\set n random(1, $LINKS)
SELECT resolve('c' || :n);
EOF

# Runs pgbench for 6 s, does "$@" after 3 s, and checks what was counted against the
# transactions that pgbench saw succeed.
crash_under_load() {
    local what=$1
    shift
    local before
    before=$(total_visits)
    pgbench -n -M prepared -c "$CLIENTS" -T 6 -f "$WORK/resolve.sql" "$DB" >"$WORK/pgbench.out" 2>&1 &
    local bench=$!
    sleep 3
    "$@"
    wait "$bench" || true
    local served
    served=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$WORK/pgbench.out")
    until pg_isready -q; do sleep 0.1; done
    # After a restart, the first visit starts a writer, which writes what the rings kept too.
    sql "$DB" "SELECT resolve('c1')" >/dev/null
    served=$((served + 1))
    # Wait until the count settles.
    local counted previous=-1
    counted=$(total_visits)
    while [ "$counted" != "$previous" ]; do
        sleep 2
        previous=$counted
        counted=$(total_visits)
    done
    counted=$((counted - before))
    echo "   ($what: $served resolves returned, $counted visits counted)"
    check_equal "$what: no visit whose resolve() returned is lost" "$([ "$counted" -ge "$served" ] && echo yes)" yes
    # A resolve() that counted its visit but whose answer the crash cut off: one per client.
    check_equal "$what: no visit is counted twice" "$([ "$counted" -le $((served + CLIENTS)) ] && echo yes)" yes
}

kill_a_backend() {
    local pid
    pid=$(sql "$DB" "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' LIMIT 1")
    kill -9 "$pid"
}
crash_under_load "kill -9 of one backend" kill_a_backend

stop_immediately() {
    as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$(cluster_root)/visits-$PG_MAJOR/data" stop --mode=immediate >/dev/null
    cluster_start "visits-$PG_MAJOR" "$PORT"
}
crash_under_load "the server stopped in immediate mode" stop_immediately

# --- Bounded storage: 100 short-lived backends that visit one link leave one row for it.
echo "SELECT resolve('c5');" >"$WORK/resolve_one.sql"
before=$(visits_of c5)
pgbench -n -C -c 2 -t 50 -f "$WORK/resolve_one.sql" "$DB" >/dev/null
check_equal "100 backends' visits of one link are counted" "$(wait_for_visits c5 $((before + 100)) | grep -c never)" 0
check_equal "... in one row per day" \
    "$(sql "$DB" "SELECT count(*) = count(DISTINCT v.day) FROM shortlink_visits AS v JOIN shortlinks AS l ON l.id = v.link_id WHERE l.code = 'c5'")" t

checks_summary "visits"
