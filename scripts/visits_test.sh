#!/usr/bin/env bash
# Visit counting with the visit writer, on a scratch server with the default settings: a visit
# shows in shortlink_stats() whatever the backend that counted it does next (within a bound no busy
# machine breaks; bench/ measures the lag); a crash of a backend or of the whole server under load
# loses no visit and counts none twice; visit rows do not grow with backends; the writer stops when
# idle, so that DROP DATABASE can proceed, and comes back with the next visit; a lock on
# shortlink_visits holds up no redirect; a full ring is drained; databases without a free worker
# slot count their visits all the same; DROP EXTENSION and DROP DATABASE leave no visit row or
# rings file behind; snowlink_visit_writers shows the writer running, stopped, behind a locked
# table and dropping visits. Prints one line per check.
source "$(dirname "$0")/lib.sh"

PORT=25481
DB=visits
LINKS=1000
CLIENTS=4
# A visit shows within about a second (snowlink.visit_flush_interval_ms); this bound is one that a
# busy machine does not break. The lag itself is a figure of the benchmarks (bench/run.sh).
SHOWS_WITHIN_MS=15000
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
# The visits of the database once the count stops changing.
settled() {
    local counted previous=-1
    counted=$(total_visits)
    while [ "$counted" != "$previous" ]; do
        sleep 2
        previous=$counted
        counted=$(total_visits)
    done
    echo "$counted"
}
visits_of() { sql "$DB" "SELECT visits FROM shortlink_stats('$1')"; }
writers() { sql "$DB" "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'snowlink visit writer'"; }
now_ms() { date +%s%3N; }

# Milliseconds until code $1 shows $2 visits (polled), or "never" after 20 s.
wait_for_visits() {
    local start
    start=$(now_ms)
    while [ "$(visits_of "$1")" != "$2" ]; do
        if [ $(($(now_ms) - start)) -gt 20000 ]; then
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
check_equal "... and snowlink_visit_writers shows it stopped, with the visits it wrote" \
    "$(sql "$DB" "SELECT running, writer_pid IS NULL, pending_visits, written_visits > 0, last_write_at < now(), rings > current_setting('max_connections')::int, ring_capacity FROM snowlink_visit_writers WHERE database = '$DB'")" \
    "f|t|0|t|t|t|65536"
sql "$DB" "SELECT resolve('c4')" >/dev/null
check_shows "is the first one after the writer stopped" c4
check_equal "one visit writer per database" "$(writers)" 1
check_equal "snowlink_visit_writers shows it running, as its process" \
    "$(sql "$DB" "SELECT w.running, w.writer_pid = a.pid FROM snowlink_visit_writers AS w, pg_stat_activity AS a WHERE w.database = '$DB' AND a.backend_type = 'snowlink visit writer'")" \
    "t|t"

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
    local counted
    counted=$(($(settled) - before))
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

# --- A lock on shortlink_visits (ALTER TABLE, VACUUM FULL, LOCK) holds up no redirect. One
# session holds it while clients resolve: the rings fill, the backends hold the rest of their
# visits in memory and do not wait. Then the writer is stopped, with a full ring, and the session
# whose ring is full asks for a new one with its next visit. Every visit is counted, but those
# that a client's backend still held when it exited, the table still locked, which the server log
# reports.
sql "$DB" "SELECT shorten('https://example.com/ring', code => 'ring');
    CREATE TABLE dropped_links AS
        SELECT 'd' || i AS code, 'https://example.com/d/' || i AS url FROM generate_series(1, 10100) AS i;
    SELECT count(*) FROM shortlinks_import('dropped_links')" >/dev/null
before=$(settled)
log_lines=$(wc -l <"$(cluster_root)/visits-$PG_MAJOR/server.log")
mkfifo "$WORK/filler.sql"
psql -X -q -At -d "$DB" <"$WORK/filler.sql" >"$WORK/filler.out" 2>&1 &
filler=$!
exec 4>"$WORK/filler.sql"
psql -X -q -d "$DB" -c "BEGIN; LOCK TABLE shortlink_visits IN EXCLUSIVE MODE; SELECT pg_sleep(25); COMMIT" \
    >/dev/null 2>&1 &
locker=$!
until [ "$(sql "$DB" "SELECT count(*) FROM pg_locks WHERE relation = 'shortlink_visits'::regclass AND mode = 'ExclusiveLock' AND granted")" = 1 ]; do
    sleep 0.05
done
locked_at=$(sql "$DB" "SELECT clock_timestamp()")
# More visits than a ring holds, from the session whose ring it is; then, its ring still full, the
# visits of 10,100 links in a read-only transaction, more than a backend holds for want of a
# writable one (10,000 links and days): the rest are dropped.
echo "SELECT count(resolve('ring')) FROM generate_series(1, 80000);" >&4
echo "BEGIN READ ONLY; SELECT count(resolve('d' || i)) FROM generate_series(1, 10100) AS i; COMMIT;" >&4
pgbench -n -M prepared -c "$CLIENTS" -T 10 -f "$WORK/resolve.sql" -l --log-prefix="$WORK/locked" "$DB" \
    >"$WORK/pgbench.out" 2>&1
served=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$WORK/pgbench.out")
slowest_ms=$(cat "$WORK"/locked.* | awk '{ if ($3 > max) max = $3 } END { printf "%d", max / 1000 }')
rm -f "$WORK"/locked.*
echo "   ($served resolves while shortlink_visits was locked; the slowest took $slowest_ms ms)"
check_equal "shortlink_visits locked for 25 s: no resolve() waits for it (slowest under 5 s)" \
    "$([ "$slowest_ms" -lt 5000 ] && echo yes)" yes
check_equal "... and the visits held back are logged" \
    "$(grep -c 'counted visits that it could not write yet' "$(cluster_root)/visits-$PG_MAJOR/server.log" | awk '$1 > 0 { print "yes" }')" yes
# The filler session's two statements are done.
for tries in $(seq 300); do
    [ "$(grep -cE '^(80000|10100)$' "$WORK/filler.out")" = 2 ] && break
    sleep 0.1
done
check_equal "snowlink_visit_writers shows the writer behind: visits pending, no write since the lock, visits dropped" \
    "$(sql "$DB" "SELECT running, pending_visits >= 65536, last_write_at < '$locked_at', dropped_visits >= 100 FROM snowlink_visit_writers WHERE database = '$DB'")" \
    "t|t|t|t"
dropped=$(sql "$DB" "SELECT dropped_visits FROM snowlink_visit_writers WHERE database = '$DB'")
check_equal "... and the lock was held all along" \
    "$(sql "$DB" "SELECT count(*) FROM pg_locks WHERE relation = 'shortlink_visits'::regclass AND mode = 'ExclusiveLock' AND granted")" 1
sql "$DB" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'snowlink visit writer'" >/dev/null
wait "$locker"
echo "SELECT resolve('ring');" >&4
check_equal "the writer stopped with a full ring: the ring's own session brings a new one, and every visit is counted" \
    "$(wait_for_visits ring 80001 | grep -c never)" 0
exec 4>&-
wait "$filler"
lost=$(tail -n +"$((log_lines + 1))" "$(cluster_root)/visits-$PG_MAJOR/server.log" |
    sed -nE 's/.*snowlink: ([0-9]+) visits counted by this backend are lost at its exit.*/\1/p' |
    awk '{ s += $1 } END { print s + 0 }')
echo "   ($lost visits held by clients that exited while the table was locked, reported lost)"
check_equal "every visit of the locked time is counted once, or reported lost, or dropped" \
    "$(($(settled) - before + lost + dropped))" "$((served + 80000 + 1 + 10100))"

# --- With fewer worker slots than databases that count visits, those without a writer write
# their visits themselves: every one is counted, and no client sees a warning.
cluster_start "visits-$PG_MAJOR" "$PORT" max_worker_processes=3
cat >"$WORK/resolve_slots.sql" <<'EOF2'
\set n random(1, 100)
SELECT resolve('c' || :n);
EOF2
for n in 1 2 3 4; do
    sql postgres "CREATE DATABASE slots_$n" >/dev/null
    sql "slots_$n" "CREATE EXTENSION snowlink;
        CREATE TABLE exported AS SELECT 'c' || i AS code, 'https://example.com/' || i AS url FROM generate_series(1, 100) AS i;
        SELECT count(*) FROM shortlinks_import('exported')" >/dev/null
done
slot_jobs=()
for n in 1 2 3 4; do
    pgbench -n -M prepared -c 2 -T 5 -f "$WORK/resolve_slots.sql" "slots_$n" >"$WORK/slots-$n.out" 2>&1 &
    slot_jobs+=($!)
done
jobs_failed=0
for job in "${slot_jobs[@]}"; do wait "$job" || jobs_failed=$((jobs_failed + 1)); done
missing=0
for n in 1 2 3 4; do
    served=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$WORK/slots-$n.out")
    counted=-1
    for tries in $(seq 100); do
        counted=$(sql "slots_$n" "SELECT coalesce(sum(visits), 0) FROM shortlink_visits")
        [ "$counted" -ge "${served:-1}" ] && break
        sleep 0.2
    done
    echo "   (database slots_$n: $served resolves, $counted visits counted)"
    [ "$counted" = "${served:-none}" ] || missing=$((missing + 1))
done
check_equal "4 databases, 2 worker slots for writers: every database counts every visit within 20 s" \
    "$jobs_failed $missing" "0 0"
check_equal "... and no client saw a warning" "$(cat "$WORK"/slots-*.out | grep -c WARNING)" 0

writers() { sql postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'snowlink visit writer'"; }
until_writers() {
    local tries
    for tries in $(seq 100); do
        [ "$(writers)" = "$1" ] && return
        sleep 0.2
    done
}
until_no_writer() { until_writers 0; }

# --- A full ring whose writer is gone is drained: a backend asks for a writer before it puts a
# visit into its ring, not only after. Two databases keep both writer slots busy while one session
# of a third counts more visits than its ring holds; once the slots are free, the next visit of
# that same session (whose ring it is) brings a writer.
until_no_writer
slot_jobs=()
for n in 1 2; do
    pgbench -n -M prepared -c 2 -T 20 -f "$WORK/resolve_slots.sql" "slots_$n" >/dev/null 2>&1 &
    slot_jobs+=($!)
done
until_writers 2
before=$(sql slots_3 "SELECT coalesce(sum(visits), 0) FROM shortlink_visits")
mkfifo "$WORK/full_ring.sql"
psql -X -q -At -d slots_3 <"$WORK/full_ring.sql" >"$WORK/full_ring.out" 2>&1 &
full_ring=$!
exec 5>"$WORK/full_ring.sql"
echo "SELECT count(resolve('c1')) FROM generate_series(1, 80000);" >&5
until grep -q 80000 "$WORK/full_ring.out" || ! kill -0 "$full_ring" 2>/dev/null; do sleep 0.1; done
busy_until_done=$(writers)
for job in "${slot_jobs[@]}"; do wait "$job" || true; done
until_no_writer
echo "SELECT resolve('c1');" >&5
counted=-1
for tries in $(seq 100); do
    counted=$(($(sql slots_3 "SELECT coalesce(sum(visits), 0) FROM shortlink_visits") - before))
    [ "$counted" -ge 80001 ] && break
    sleep 0.2
done
exec 5>&-
wait "$full_ring" || true
echo "   (80,001 visits in one session of a database without a writer slot: $counted counted)"
check_equal "both writer slots were taken while the session counted its visits" "$busy_until_done" 2
check_equal "a session that filled its ring without a writer: every visit counted within 20 s once a slot is free" \
    "$counted" 80001
check_equal "... and it saw no warning" "$(grep -c WARNING "$WORK/full_ring.out")" 0
cluster_start "visits-$PG_MAJOR" "$PORT"

# --- DROP EXTENSION and CREATE EXTENSION again under load: the visits counted for the dropped
# installation never reach the new one's tables. DROP DATABASE: its rings files go.
sql postgres "CREATE DATABASE reinstalled" >/dev/null
sql reinstalled "CREATE TABLE exported AS
    SELECT 'c' || i AS code, 'https://example.com/' || i AS url FROM generate_series(1, $LINKS) AS i" >/dev/null
install_with_links() {
    sql reinstalled "CREATE EXTENSION snowlink; SELECT count(*) FROM shortlinks_import('exported')" >/dev/null
}
install_with_links
pgbench -n -M prepared -c "$CLIENTS" -T 6 -f "$WORK/resolve.sql" reinstalled >/dev/null 2>&1 &
bench=$!
sleep 2
sql reinstalled "DROP EXTENSION snowlink CASCADE" >/dev/null
install_with_links
sql reinstalled "SELECT count(resolve('c' || i)) FROM generate_series(1, 100) AS i" >/dev/null
wait "$bench" || true
# Once the backends of the load have gone, the next writer of the database removes the rings file
# of the dropped installation; the next writer of any database, those of dropped databases.
dropped_oids=$(sql postgres "SELECT string_agg(oid::text, ' ') FROM pg_database WHERE datname LIKE 'slots_%'")
for n in 1 2 3 4; do sql postgres "DROP DATABASE slots_$n WITH (FORCE)" >/dev/null; done
until_no_writer
sql reinstalled "SELECT resolve('c1')" >/dev/null
counted=0
for tries in $(seq 100); do
    counted=$(sql reinstalled "SELECT coalesce(sum(visits), 0) FROM shortlink_visits")
    [ "$counted" -ge 101 ] && break
    sleep 0.2
done
sleep 2
check_equal "after DROP EXTENSION under load and CREATE again: no visit row without its link" \
    "$(sql reinstalled "SELECT count(*) FROM shortlink_visits AS v WHERE NOT EXISTS (SELECT FROM shortlinks AS s WHERE s.id = v.link_id)")" 0
check_equal "... and the new installation counts its own visits, all of them" \
    "$(sql reinstalled "SELECT coalesce(sum(visits), 0) FROM shortlink_visits")" 101
rings_dir=$(cluster_root)/visits-$PG_MAJOR/data/snowlink_visits
left=0
for oid in $dropped_oids; do left=$((left + $(find "$rings_dir" -name "${oid}_*" | wc -l))); done
check_equal "the rings files of dropped databases are removed by the next writer" "$left" 0
check_equal "... and that of the dropped installation, once no backend has it open" \
    "$(ls "$rings_dir" | awk -F_ -v db="$(sql postgres "SELECT oid FROM pg_database WHERE datname = 'reinstalled'")" \
        -v table="$(sql reinstalled "SELECT 'shortlink_visits'::regclass::oid")" '$1 == db && $2 != table' | wc -l)" 0

checks_summary "visits"
