#!/usr/bin/env bash
# The benchmark suite: snowlink against what users would use instead, on one scratch cluster, each
# comparison a ratio against a baseline measured in the same run. Writes BENCHMARKS.md and
# bench/benchmarks.png.
# Usage: bench/run.sh [--short]   (--short: smaller sizes, 3 rounds of 3 s pgbench runs, a few
# minutes; full: 5 rounds of 6 s)
source "$(dirname "$0")/../scripts/lib.sh"
source "$PROJECT_DIR/bench/lib.sh"

if [ "${1:-}" = --short ]; then
    MODE=short BULK=1000000 INSERT_ROWS=100000 CODEC_VALUES=200000 IMPORT_ROWS=100000 SCALE_LINKS=1000000
    SECONDS_PER_RUN=3 ROUNDS=3
else
    MODE=full BULK=10000000 INSERT_ROWS=1000000 CODEC_VALUES=1000000 IMPORT_ROWS=1000000 SCALE_LINKS=10000000
    SECONDS_PER_RUN=6 ROUNDS=5
fi
CLIENTS=(1 2 4)
BENCH_PORT=${SNOWLINK_BENCH_PORT:-25435}
BENCH_DIR=$PROJECT_DIR/bench
RESULTS=$PROJECT_DIR/target/bench/results.tsv
DB=snowlink_bench

ensure_tools
ensure_debian_packages wrk
say "building and installing snowlink (release)"
install_extension --release
cluster_start bench "$BENCH_PORT"
trap 'cluster_remove bench' EXIT
mkdir -p "$(dirname "$RESULTS")"
printf 'section\tname\tvalue\tunit\n' >"$RESULTS"

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f "$BENCH_DIR/setup.sql" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" >/dev/null <<'SQL'
SELECT shorten('https://example.com/page/' || i, code => 'c' || i) FROM generate_series(1, 10000) AS i;
INSERT INTO plain_links (code, url) SELECT code, url FROM shortlinks;
-- For section 5b: a link with max_visits, whose every visit the visit writer counts and commits.
SELECT shorten('https://example.com/limited', code => 'limited', max_visits => 1000000000000);
VACUUM ANALYZE;
SQL

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }

# Best of three runs of one query, in milliseconds.
best_ms() {
    local best= run ms
    for run in 1 2 3; do
        ms=$(psql -X -q -d "$DB" -c '\timing on' -c "$1" | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p')
        if [ -z "$best" ] || awk -v a="$ms" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$ms; fi
    done
    printf '%s' "$best"
}

# Records the median tps of pgbench scripts run in turn (bench/lib.sh).
record_in_turn() {
    local section=$1 clients=$2 script median_tps
    shift 2
    tps_in_turn "$clients" "$@" | while read -r script median_tps; do
        record "$section" "$script c=$clients" "$median_tps" tps
    done
}

say "1. IDs in bulk, one backend ($BULK IDs)"
psql -X -q -d "$DB" -c 'SELECT snowflake_next()' >/dev/null
for id in "snowflake_next()" "nextval('bench_seq')" "nextval('bench_seq_cached')" \
    "gen_random_uuid()" "instagram_id()"; do
    ms=$(best_ms "SELECT count($id) FROM generate_series(1, $BULK)")
    record bulk "$id" "$(awk -v n="$BULK" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')" ids_per_s
    echo "$id: $ms ms"
done
ms=$(best_ms "SELECT count(*) FROM generate_series(1, $BULK)")
record bulk "floor: count(*)" "$(awk -v n="$BULK" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')" rows_per_s
ms=$(best_ms "SELECT count(snowflake_next()) FROM (SELECT generate_series(1, $BULK)) AS s")
record bulk "snowflake_next(), streaming series" \
    "$(awk -v n="$BULK" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')" ids_per_s

say "2. IDs from concurrent clients (pgbench, median of $ROUNDS runs of $SECONDS_PER_RUN s in turn)"
for clients in "${CLIENTS[@]}"; do
    record_in_turn concurrent "$clients" snowflake_next nextval
done

say "2b. The first ID of a new connection (pgbench --connect, median of $ROUNDS runs in turn)"
PGBENCH_OPTIONS=(--connect)
for clients in 1 2; do
    record_in_turn new_connection "$clients" snowflake_next nextval
done
# The same with the library loaded by the postmaster, so that a new backend does not load it.
cluster_start bench "$BENCH_PORT" shared_preload_libraries=snowlink >/dev/null
for clients in 1 2; do
    record_in_turn new_connection_preloaded "$clients" snowflake_next nextval
done
cluster_start bench "$BENCH_PORT" >/dev/null
PGBENCH_OPTIONS=()

say "3. Inserts ($INSERT_ROWS rows in one INSERT ... SELECT, then pgbench single-row inserts)"
for key in snowflake bigserial uuid instagram; do
    psql -X -q -d "$DB" -c "TRUNCATE keyed_$key" >/dev/null
    ms=$(psql -X -q -d "$DB" -c '\timing on' \
        -c "INSERT INTO keyed_$key (payload) SELECT 'x' FROM generate_series(1, $INSERT_ROWS)" |
        sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p')
    record insert "$key" "$(awk -v n="$INSERT_ROWS" -v ms="$ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')" rows_per_s
    record index_size "$key" "$(psql -X -q -At -d "$DB" -c "SELECT pg_relation_size('keyed_${key}_pkey')")" bytes
    record insert_concurrent "$key c=4" "$(tps "insert_$key" 4)" tps
done

say "4. base62 over $CODEC_VALUES values"
codec_ns() {
    local ms
    ms=$(best_ms "SELECT count($1) FROM generate_series(1, $CODEC_VALUES) AS i")
    awk -v n="$CODEC_VALUES" -v ms="$ms" 'BEGIN { printf "%.0f", ms * 1e6 / n }'
}
record base62 "floor: count(i)" "$(codec_ns "i")" ns_per_call
record base62 "to_hex(i)" "$(codec_ns "to_hex(i)")" ns_per_call
record base62 "base62_encode(i)" "$(codec_ns "base62_encode(i)")" ns_per_call
record base62 "plpgsql_base62_encode(i)" "$(codec_ns "plpgsql_base62_encode(i)")" ns_per_call
record base62 "base62_decode(base62_encode(i))" "$(codec_ns "base62_decode(base62_encode(i))")" ns_per_call
record base62 "plpgsql_base62_decode(base62_encode(i))" "$(codec_ns "plpgsql_base62_decode(base62_encode(i))")" ns_per_call

say "5. Short links (pgbench, median of $ROUNDS runs of $SECONDS_PER_RUN s in turn)"
# As an application does: a role in snowlink_user, under the row-level security of shortlinks,
# against the hand-written tables (one plain, one for many tenants) with the same role. Then shorten() as the extension's owner,
# whom row-level security does not apply to, in turn with the application role: its cost.
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" >/dev/null <<'SQL'
DROP ROLE IF EXISTS bench_app;
CREATE ROLE bench_app LOGIN IN ROLE snowlink_user;
GRANT SELECT, INSERT ON plain_links, plain_tenant_links TO bench_app;
GRANT USAGE ON SEQUENCE plain_code_seq TO bench_app;
SQL
PGBENCH_OPTIONS=(-U bench_app)
record_in_turn shorten 2 shorten plain_shorten plain_tenant_shorten
for clients in "${CLIENTS[@]}"; do
    record_in_turn resolve "$clients" plain_distinct resolve_distinct plain_hot resolve_hot
done
PGBENCH_OPTIONS=()
# SCRIPT%ROLE: tps of SCRIPT run as ROLE.
tps_as_role() { local PGBENCH_OPTIONS=(-U "${1#*%}"); tps "${1%\%*}" "$2"; }
MEASURE=tps_as_role
tps_in_turn 2 "shorten%bench_app" "shorten%$PGUSER" | while read -r script median_tps; do
    [ "$script" = "shorten%bench_app" ] && name="shorten, row-level security c=2" || name="shorten, owner c=2"
    record shorten "$name" "$median_tps" tps
done
MEASURE=tps

say "5b. Visits: how soon one shows, and what counting a limited link's costs"
# Milliseconds from a resolve() to its visit showing in shortlink_stats(), polled every 10 ms, in a
# new session each time (the writer is running, as under load): the median of 20.
for round in $(seq 20); do
    psql -X -q -At -d "$DB" <<'SQL'
SELECT set_config('bench.before', visits::text, false) FROM shortlink_stats('c2') \g /dev/null
SELECT clock_timestamp() AS resolved_at, resolve('c2') IS NOT NULL AS resolved \gset
DO $$
BEGIN
    WHILE (SELECT visits FROM shortlink_stats('c2')) = current_setting('bench.before')::bigint LOOP
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
SELECT round(extract(epoch FROM clock_timestamp() - :'resolved_at'::timestamptz) * 1000);
SQL
done | sort -n | awk '{ ms[NR] = $1 } END { print ms[int((NR + 1) / 2)] }' | {
    read -r lag
    record visits "lag c=1" "$lag" ms
    echo "a visit shows after $lag ms (median of 20)"
}
record_in_turn visits 2 resolve_hot resolve_limited

say "6. Importing $IMPORT_ROWS links with their own codes"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -c "CREATE TABLE import_staging AS
    SELECT 'import-' || n AS code, 'https://example.com/imported/' || n || '?ref=csv' AS url,
           now() - n * interval '1 minute' AS created_at
    FROM generate_series(1, $IMPORT_ROWS) AS n" >/dev/null
timed_ms() {
    psql -X -q -d "$DB" -c '\timing on' -c "$1" | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p'
}
ms=$(timed_ms "SELECT count(*) FROM shortlinks_import('import_staging')")
record import "shortlinks_import()" "$ms" ms
ms=$(timed_ms "INSERT INTO plain_links (code, url, created_at) SELECT code, url, created_at FROM import_staging")
record import "plain INSERT ... SELECT" "$ms" ms

say "7. Redirects over HTTP (wrk, median of $ROUNDS runs of $SECONDS_PER_RUN s in turn)"
# snowlink-http, and the same server answering from a plain SELECT on plain_links: both redirect
# the 10,000 codes c1 ... c10000, drawn at random. Both serve the default domain on their public
# URL's host and another domain besides, log each request as JSON and keep their metrics, and the
# database has API keys, as a service would.
(cd "$PROJECT_DIR" && cargo build --release --quiet -p snowlink-http --bin snowlink-http --example plain_redirects)
declare -A HTTP_PORTS=([http_snowlink]=$((BENCH_PORT + 1)) [http_plain]=$((BENCH_PORT + 2)))
psql -X -q -d "$DB" -c "SELECT count(snowlink_api_key_create('owner-' || i)) FROM generate_series(1, 100) AS i" >/dev/null
# http_server PORT COMMAND...: starts a server of the benchmark on PORT.
http_server() {
    local port=$1
    shift
    DATABASE_URL="host=$PGHOST port=$PGPORT user=postgres dbname=$DB" LISTEN=127.0.0.1:$port \
        SNOWLINK_HTTP_PUBLIC_URL=http://127.0.0.1:$port SNOWLINK_HTTP_DOMAINS=shop.example \
        SNOWLINK_HTTP_LOG_FORMAT=json \
        "$@" 2>/dev/null &
    http_pids+=($!)
}
http_pids=()
http_server "${HTTP_PORTS[http_snowlink]}" "$PROJECT_DIR/target/release/snowlink-http"
http_server "${HTTP_PORTS[http_plain]}" "$PROJECT_DIR/target/release/examples/plain_redirects" plain_links
trap 'kill "${http_pids[@]}" 2>/dev/null; cluster_remove bench' EXIT
for server in "${!HTTP_PORTS[@]}"; do
    until curl -s -o /dev/null "http://127.0.0.1:${HTTP_PORTS[$server]}/healthz"; do sleep 0.1; done
done
# Requests per second of one wrk run with N connections, on two threads; fails on any answer but a
# redirect, which would measure something else.
rps() {
    local output
    output=$(wrk -t 2 -c "$2" -d "${SECONDS_PER_RUN}s" -s "$BENCH_DIR/wrk/random_codes.lua" \
        "http://127.0.0.1:${HTTP_PORTS[$1]}")
    if grep -q 'Non-2xx or 3xx' <<<"$output"; then
        echo "$1: answers that are not redirects:" >&2
        echo "$output" >&2
        return 1
    fi
    sed -nE 's/^Requests\/sec: +([0-9.]+).*/\1/p' <<<"$output"
}
MEASURE=rps
for connections in 8 32; do
    tps_in_turn "$connections" http_plain http_snowlink | while read -r server median_rps; do
        record http "$server c=$connections" "$median_rps" requests_per_s
    done
done
MEASURE=tps

say "8. At $SCALE_LINKS links (pgbench, median of $ROUNDS runs of $SECONDS_PER_RUN s in turn)"
# Loaded in one statement, as a migration would; the rows are those shorten() makes. They belong
# to the application role of section 5, whose listings are timed below; one in a hundred has a tag.
# Their codes have a '-', which no generated code of the sections before has.
ms=$(timed_ms "INSERT INTO shortlinks (code, url, tags, owner_role, owner)
    SELECT 'z-' || i, 'https://example.com/scale/' || i,
           CASE WHEN i % 100 = 0 THEN '{promo}' ELSE '{}' END::text[], 'bench_app', 'bench_app'
    FROM generate_series(1, $SCALE_LINKS) AS i")
record scale_load "shortlinks" "$ms" ms
ms=$(timed_ms "INSERT INTO plain_scale (code, url) SELECT code, url FROM shortlinks WHERE code LIKE 'z-%'")
record scale_load "plain table" "$ms" ms
psql -X -q -d "$DB" -c 'VACUUM ANALYZE shortlinks, plain_scale' >/dev/null
for table in shortlinks plain_scale; do
    psql -X -q -At -F ' ' -d "$DB" -c "SELECT pg_table_size('$table') / count(*), pg_indexes_size('$table') / count(*)
        FROM $table" | {
        read -r table_bytes index_bytes
        record scale_bytes "$table table" "$table_bytes" bytes_per_link
        record scale_bytes "$table indexes" "$index_bytes" bytes_per_link
    }
done
# shortlinks_list() as that role, which owns every one of these links: pages from the newest,
# from the middle (keyset), of a tag, of a search that fills the page at once, and of a search
# that matches nothing and so reads every link of the owner. The best of three calls in one
# session, as an application makes them: the first call of a session also compiles the function.
middle_id=$(psql -X -q -At -d "$DB" -c "SELECT id FROM shortlinks WHERE code = 'z-$((SCALE_LINKS / 2))'")
for listing in "newest page|" "middle page|after_id => $middle_id" "tag|tag => 'promo'" \
    "search, frequent|search => '7'" "search, no match|search => 'no-such-link'"; do
    query="SELECT count(*) FROM shortlinks_list(${listing#*|})"
    ms=$(psql -X -q -d "$DB" -c 'SET ROLE bench_app' -c '\timing on' -c "$query" -c "$query" -c "$query" |
        sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | sort -g | head -1)
    record list "${listing%%|*}" "$ms" ms
done
PGBENCH_OPTIONS=(-D "links=$SCALE_LINKS")
for clients in "${CLIENTS[@]}"; do
    record_in_turn scale "$clients" scale_plain_uniform scale_resolve_uniform scale_plain_zipf scale_resolve_zipf
done
PGBENCH_OPTIONS=()
# shorten() beside these links and, in turn with it, in a database with 10,000 links, so that a
# slower stretch of the machine cannot pass for a cost of size.
SMALL_DB=${DB}_small
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $SMALL_DB" -c "CREATE DATABASE $SMALL_DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$SMALL_DB" >/dev/null <<'SQL'
CREATE EXTENSION snowlink;
SELECT shorten('https://example.com/page/' || i, code => 'c' || i) FROM generate_series(1, 10000) AS i;
VACUUM ANALYZE;
SQL
# SCRIPT@DATABASE: tps of SCRIPT in DATABASE.
tps_in_database() { DB=${1#*@} tps "${1%@*}" "$2"; }
MEASURE=tps_in_database
tps_in_turn 2 "shorten@$DB" "shorten@$SMALL_DB" | while read -r script median_tps; do
    [ "$script" = "shorten@$DB" ] && name="shorten c=2" || name="shorten_10000 c=2"
    record scale "$name" "$median_tps" tps
done
MEASURE=tps

say "9. On Citus: through the coordinator and a worker (pgbench, median of $ROUNDS runs of $SECONDS_PER_RUN s in turn)"
# A coordinator and two workers (scripts/lib.sh) with the 10,000 links of section 5, made before
# shortlinks_distribute(); in turn with the same scripts on the database of 10,000 links above.
if citus_available; then
    ensure_citus
    CITUS_PORT=$((BENCH_PORT + 10))
    citus_cluster_start bench-citus "$CITUS_PORT"
    trap 'kill "${http_pids[@]}" 2>/dev/null; citus_cluster_remove bench-citus; cluster_remove bench' EXIT
    read -r coordinator_socket coordinator_port <<<"$(citus_node bench-citus "$CITUS_PORT" coordinator)"
    psql -X -q -v ON_ERROR_STOP=1 -h "$coordinator_socket" -p "$coordinator_port" -d postgres >/dev/null <<'SQL'
SELECT shorten('https://example.com/page/' || i, code => 'c' || i) FROM generate_series(1, 10000) AS i;
SELECT shortlinks_distribute();
SQL
    # SCRIPT@NODE: tps of SCRIPT on a Citus node, or on the database of 10,000 links (one_server).
    tps_on_node() {
        local script=${1%@*} node=${1#*@} socket port
        if [ "$node" = one_server ]; then
            DB=$SMALL_DB tps "$script" "$2"
        else
            read -r socket port <<<"$(citus_node bench-citus "$CITUS_PORT" "$node")"
            PGHOST=$socket PGPORT=$port DB=postgres tps "$script" "$2"
        fi
    }
    MEASURE=tps_on_node
    # Each node's reads in turn with each other, and its writes, so that a ratio on a node comes
    # from the same rounds.
    for node in one_server coordinator worker1; do
        for group in "plain_shortlinks_distinct plain_shortlinks_columns resolve_distinct" "shorten shorten_shared"; do
            runs=()
            for script in $group; do runs+=("$script@$node"); done
            tps_in_turn 2 "${runs[@]}" | while read -r run median_tps; do
                record citus "$run c=2" "$median_tps" tps
            done
        done
    done
    MEASURE=tps
else
    echo "skipped: Citus is not installed, and its source is not in $CITUS_SOURCE"
fi

NEWEST_PG_MAJOR=${SUPPORTED_PG_MAJORS[-1]}
say "2c. The first ID of a new connection on PostgreSQL $NEWEST_PG_MAJOR (pgbench --connect, median of $ROUNDS runs in turn)"
# Section 2b again on the newest PostgreSQL, whose settings live in a hash table (15 sorts all of
# its settings for each one a library registers). Last, as it builds snowlink once more; a machine
# that cannot fetch that PostgreSQL still gets the rest of the report.
if "$PROJECT_DIR/scripts/fetch_postgres.sh" "$NEWEST_PG_MAJOR" >/dev/null; then
    bench_host=$PGHOST bench_port=$PGPORT
    use_postgres "$NEWEST_PG_MAJOR"
    ensure_tools
    install_extension --release >/dev/null
    trap 'kill "${http_pids[@]}" 2>/dev/null; citus_cluster_remove bench-citus; cluster_remove bench; cluster_remove bench-newest' EXIT
    cluster_start bench-newest $((BENCH_PORT + 20))
    psql -X -q -d postgres -c "CREATE DATABASE $DB"
    psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f "$BENCH_DIR/setup.sql" >/dev/null
    record new_connection_newest server_version_num "$(psql -X -q -At -d "$DB" -c 'SHOW server_version_num')" number
    PGBENCH_OPTIONS=(--connect)
    for clients in 1 2; do
        record_in_turn new_connection_newest "$clients" snowflake_next nextval
    done
    PGBENCH_OPTIONS=()
    cluster_remove bench-newest
    use_postgres "$DEBIAN_PG_MAJOR"
    export PGHOST=$bench_host PGPORT=$bench_port
else
    echo "skipped: PostgreSQL $NEWEST_PG_MAJOR could not be fetched"
fi

say "beside the peers: bench/peers.sh on PostgreSQL $DEBIAN_PG_MAJOR and $NEWEST_PG_MAJOR"
peers=("$DEBIAN_PG_MAJOR")
[ ! -x "$(reachable_dir pg)/$NEWEST_PG_MAJOR/bin/pg_config" ] || peers+=("$NEWEST_PG_MAJOR")
rm -f "$PROJECT_DIR"/target/bench/peers-pg*.tsv
for major in "${peers[@]}"; do
    (unset PGHOST PGPORT; "$BENCH_DIR/peers.sh" "$major")
done

say "writing BENCHMARKS.md and bench/benchmarks.png"
venv=$PROJECT_DIR/target/bench-venv
if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    python3 -c 'import ensurepip' 2>/dev/null || ensure_debian_packages python3-venv
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q matplotlib
fi
settings=$(psql -X -q -At -d "$DB" -c "SELECT string_agg(name || ' = ' || setting || coalesce(' ' || unit, ''), '; ' ORDER BY name)
    FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'synchronous_commit', 'fsync', 'max_wal_size', 'jit')")
version=$(psql -X -q -At -d "$DB" -c 'SHOW server_version')
"$venv/bin/python" "$BENCH_DIR/report.py" "$RESULTS" "$PROJECT_DIR/BENCHMARKS.md" "$BENCH_DIR/benchmarks.png" \
    "$MODE" "$(nproc)" "$(lscpu | sed -nE 's/^Model name: +//p')" "$version" "$settings" \
    "BULK=$BULK INSERT_ROWS=$INSERT_ROWS CODEC_VALUES=$CODEC_VALUES IMPORT_ROWS=$IMPORT_ROWS SCALE_LINKS=$SCALE_LINKS SECONDS_PER_RUN=$SECONDS_PER_RUN"
"$venv/bin/python" "$BENCH_DIR/peers_report.py" "$PROJECT_DIR/target/bench" "$PROJECT_DIR/BENCHMARKS.md" \
    "$PROJECT_DIR/docs/choosing-an-id.md"
echo "wrote $PROJECT_DIR/BENCHMARKS.md"
