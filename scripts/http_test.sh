#!/usr/bin/env bash
# snowlink-http against a scratch server, checked with curl: every status and header of the
# redirects, HEAD, the 404 page, codes that cannot be codes, /ids, POST /links with and without the
# token and with a user's mistakes, /healthz, start-up errors, a database restart, SIGTERM. Then a
# real browser, headless Chromium, follows a short link to a page served on localhost.
# Prints one line per check.
source "$(dirname "$0")/lib.sh"

PG_PORT=25501
HTTP_PORT=25502
PAGE_PORT=25503
TOKEN_HTTP_PORT=25504
EDGE_HTTP_PORT=25505
DB=http
TOKEN=test-token-0123456789
WORK=$PROJECT_DIR/target/http_test
SERVER=$(snowlink_http_binary)

cleanup() {
    stop_http
    [ -z "${PAGE_PID:-}" ] || kill "$PAGE_PID" 2>/dev/null || true
    cluster_remove "http-$PG_MAJOR"
}
trap cleanup EXIT
cluster_remove "http-$PG_MAJOR"
rm -rf "$WORK"
mkdir -p "$WORK"
cluster_start "http-$PG_MAJOR" "$PG_PORT"

sql() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

sql postgres "CREATE DATABASE $DB" >/dev/null
# The redirecting role may log in and nothing more: anyone may follow a link. The role behind
# POST /links makes links as the extension's role for applications.
sql "$DB" "CREATE EXTENSION snowlink;
    CREATE ROLE redirects LOGIN;
    CREATE ROLE link_maker LOGIN IN ROLE snowlink_user;
    SELECT count(*) FROM (
        SELECT shorten('http://127.0.0.1:$PAGE_PORT/landed.html', code => 'browser')
        UNION ALL SELECT shorten('https://example.com/found', code => 'found')
        UNION ALL SELECT shorten('https://example.com/moved', code => 'moved', redirect_status => 301)
        UNION ALL SELECT shorten('https://example.com/same-method', code => 'same-method', redirect_status => 307)
        UNION ALL SELECT shorten('https://example.com/moved-308', code => 'moved-308', redirect_status => 308,
                                 expires_at => now() + interval '1 hour')
        UNION ALL SELECT shorten('https://example.com/once', code => 'once', max_visits => 1)
        UNION ALL SELECT shorten('https://example.com/off', code => 'off')
        UNION ALL SELECT shorten('https://example.com/a?q=1&r=%C3%A4', code => 'query')) AS made;
    SELECT shortlink_disable('off')" >/dev/null
database_url() { echo "host=$PGHOST port=$PGPORT dbname=$DB user=$1"; }

# start_http LOG PORT ROLE [VARIABLE=VALUE...]: starts snowlink-http (through the command in
# HTTP_LAUNCHER, if any) and waits until it listens.
HTTP_PIDS=()
HTTP_LAUNCHER=()
start_http() {
    local log=$1 port=$2 role=$3
    shift 3
    "${HTTP_LAUNCHER[@]}" env DATABASE_URL="$(database_url "$role")" LISTEN="127.0.0.1:$port" "$@" "$SERVER" 2>"$log" &
    HTTP_PIDS+=($!)
    local tries
    for tries in $(seq 100); do
        grep -q "listening on" "$log" && return
        sleep 0.05
    done
    echo "snowlink-http did not start:" >&2
    cat "$log" >&2
    return 1
}
stop_http() {
    local pid
    for pid in "${HTTP_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${HTTP_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    HTTP_PIDS=()
}

# status_and PATH HEADER [curl options...]: "STATUS VALUE" of one response header.
status_and() {
    local path=$1 header=$2
    shift 2
    curl -s -o /dev/null -D "$WORK/headers" "$@" "http://127.0.0.1:$HTTP_PORT$path" >/dev/null || true
    local status value
    status=$(head -1 "$WORK/headers" | cut -d' ' -f2)
    value=$(grep -i "^$header:" "$WORK/headers" | cut -d' ' -f2- | tr -d '\r')
    echo "$status $value"
}
status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
visits_of() { sql "$DB" "SELECT visits FROM shortlink_stats('$1')"; }
# Waits for the visit writer (a visit shows within about a second) until code $1 has $2 visits.
wait_for_visits() {
    local tries
    for tries in $(seq 100); do
        [ "$(visits_of "$1")" = "$2" ] && break
        sleep 0.05
    done
    visits_of "$1"
}

echo "# start-up"
check_equal "--version names the version; --help lists every setting, and starts nothing" \
    "$(env -u DATABASE_URL "$SERVER" --version) $(env -u DATABASE_URL "$SERVER" --help | grep -cE '^  [A-Z_]+ ')" \
    "snowlink-http $(sed -nE 's/^version = "([^"]+)"$/\1/p' "$PROJECT_DIR/http/Cargo.toml") 4"
"$SERVER" --port 80 2>"$WORK/argument.log" && code=0 || code=$?
check_equal "an argument: exit code 2, and where settings come from" \
    "$code $(grep -c 'settings come from the environment, see --help' "$WORK/argument.log")" "2 1"
env -u DATABASE_URL "$SERVER" 2>"$WORK/no-url.log" && code=0 || code=$?
check_equal "without DATABASE_URL: exit code 2 and what is missing" \
    "$code $(grep -c 'DATABASE_URL is not set' "$WORK/no-url.log")" "2 1"
DATABASE_URL="host=127.0.0.1 port=1 dbname=$DB user=redirects" "$SERVER" 2>"$WORK/no-db.log" && code=0 || code=$?
check_equal "database unreachable: exit code 3 and a clear error" \
    "$code $(grep -c 'cannot connect to the database of DATABASE_URL' "$WORK/no-db.log")" "3 1"
DATABASE_URL="$(database_url redirects | sed "s/dbname=$DB/dbname=postgres/")" "$SERVER" 2>"$WORK/no-extension.log" && code=0 || code=$?
check_equal "no extension in the database: exit code 3, and how to fix it" \
    "$code $(grep -c 'run CREATE EXTENSION snowlink' "$WORK/no-extension.log")" "3 1"
DATABASE_URL="$(database_url redirects)" SNOWLINK_HTTP_TOKEN=$TOKEN "$SERVER" 2>"$WORK/no-grant.log" && code=0 || code=$?
check_equal "a token for a role that may not shorten: exit code 3, and the grant it needs" \
    "$code $(grep -c 'GRANT snowlink_user TO that role' "$WORK/no-grant.log")" "3 1"
DATABASE_URL="$(database_url redirects)" LISTEN=8080 "$SERVER" 2>"$WORK/bad-listen.log" && code=0 || code=$?
check_equal "LISTEN without a port: exit code 2" "$code" 2

start_http "$WORK/http.log" "$HTTP_PORT" redirects

echo "# redirects"
check_equal "302: Location" "$(status_and /found Location)" "302 https://example.com/found"
check_equal "302: not cached" "$(status_and /found Cache-Control)" "302 no-store"
check_equal "301: cached for a day" "$(status_and /moved Cache-Control)" "301 public, max-age=86400"
check_equal "307: Location" "$(status_and /same-method Location)" "307 https://example.com/same-method"
cache=$(status_and /moved-308 Cache-Control)
check_equal "308: cached until the link expires, within the hour" \
    "$(echo "$cache" | sed -E 's/[0-9]+$//') $(($(echo "$cache" | grep -oE '[0-9]+$') <= 3600))" \
    "308 public, max-age= 1"
check_equal "the URL as stored, query and percent-encoding kept" \
    "$(status_and /query Location)" "302 https://example.com/a?q=1&r=%C3%A4"
check_equal "HEAD: the same status and Location" "$(status_and /found Location --head)" "302 https://example.com/found"
check_equal "HEAD: no body" \
    "$(curl -s --head -o /dev/null -w '%{size_download}' "http://127.0.0.1:$HTTP_PORT/found")" 0
check_equal "every GET and HEAD counts a visit" "$(wait_for_visits found 4)" 4
check_equal "max_visits 1: the first visit redirects" "$(status_and /once Location)" "302 https://example.com/once"
check_equal "max_visits 1: then 404" "$(status_of "http://127.0.0.1:$HTTP_PORT/once")" 404

echo "# not found"
check_equal "unknown code: 404, HTML, not cached" \
    "$(status_and /unknown Content-Type) $(grep -i '^cache-control:' "$WORK/headers" | tr -d '\r')" \
    "404 text/html; charset=utf-8 cache-control: no-store"
check_equal "the 404 page says so" \
    "$(curl -s "http://127.0.0.1:$HTTP_PORT/unknown" | grep -c '<h1>Link not found</h1>')" 1
check_equal "disabled link: 404" "$(status_of "http://127.0.0.1:$HTTP_PORT/off")" 404
check_equal "the root: 404" "$(status_of "http://127.0.0.1:$HTTP_PORT/")" 404
check_equal "a path deeper than a code: 404" "$(status_of "http://127.0.0.1:$HTTP_PORT/found/more")" 404

echo "# /ids"
ids=$(curl -s "http://127.0.0.1:$HTTP_PORT/ids?n=1000")
check_equal "n=1000: a JSON array of 1000 distinct IDs as strings" \
    "$(python3 -c 'import json, sys; ids = json.loads(sys.argv[1]); print(len(set(ids)), all(isinstance(i, str) and int(i) > 2**53 for i in ids))' "$ids")" \
    "1000 True"
check_equal "IDs are snowflake IDs of this server" \
    "$(sql "$DB" "SELECT count(*) FROM json_array_elements_text('$ids') AS id
                  WHERE snowflake_timestamp(id::bigint) BETWEEN now() - interval '1 minute' AND clock_timestamp()")" 1000
check_equal "no n: one ID" "$(curl -s "http://127.0.0.1:$HTTP_PORT/ids" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')" 1
for n in 0 1001 -1 abc 1.5; do
    check_equal "n=$n: 400 with the rule" \
        "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$HTTP_PORT/ids?n=$n")" \
        "{\"error\":\"n must be a whole number from 1 to 1000, not \\\"$n\\\"\"} 400"
done
check_equal "POST /links without a token configured does not exist: 404" \
    "$(status_of -X POST -d '{"url": "https://example.com/"}' "http://127.0.0.1:$HTTP_PORT/links")" 404

echo "# /healthz"
check_equal "healthy: 200" "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$HTTP_PORT/healthz")" "ok
 200"

echo "# codes that cannot be codes are not looked up"
# With the database stopped, a code that could exist gets 503, and one that cannot still 404.
as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$(cluster_root)/http-$PG_MAJOR/data" stop --mode=fast >/dev/null
for path in "/$(printf 'a%.0s' $(seq 65))" /a.b /caf%C3%A9 /a%20b /%FF; do
    check_equal "$path: 404" "$(status_of "http://127.0.0.1:$HTTP_PORT$path")" 404
done

echo "# the database goes away and comes back"
check_equal "a code while the database is down: 503, Retry-After" "$(status_and /found Retry-After)" "503 1"
check_equal "/healthz while the database is down: 503" "$(status_of "http://127.0.0.1:$HTTP_PORT/healthz")" 503
cluster_start "http-$PG_MAJOR" "$PG_PORT"
for tries in $(seq 50); do
    [ "$(status_of "http://127.0.0.1:$HTTP_PORT/found")" = 302 ] && break
    sleep 0.1
done
check_equal "after the restart it redirects again" "$(status_and /found Location)" "302 https://example.com/found"
check_equal "requests are logged on stderr" \
    "$(grep -cE '^GET /found 302 [0-9.]+ ms$' "$WORK/http.log" | awk '$1 > 0 { print "yes" }')" yes

echo "# POST /links"
start_http "$WORK/http-token.log" "$TOKEN_HTTP_PORT" link_maker SNOWLINK_HTTP_TOKEN=$TOKEN
links=http://127.0.0.1:$TOKEN_HTTP_PORT/links
post() { curl -s -w ' %{http_code}' -X POST -H "Content-Type: application/json" "$@"; }
check_equal "no token: 401, WWW-Authenticate: Bearer" \
    "$(curl -s -o /dev/null -D - -X POST -d '{"url": "https://example.com/"}' "$links" | grep -i -e '^HTTP' -e '^www-authenticate' | cut -d' ' -f2 | tr -d '\r' | paste -sd' ')" \
    "401 Bearer"
check_equal "a wrong token: 401" \
    "$(status_of -X POST -H "Authorization: Bearer ${TOKEN}x" -d '{"url": "https://example.com/"}' "$links")" 401
check_equal "the token as Basic: 401" \
    "$(status_of -X POST -H "Authorization: Basic $TOKEN" -d '{"url": "https://example.com/"}' "$links")" 401
made=$(post -H "Authorization: Bearer $TOKEN" -d '{"url": "https://example.com/new", "code": "new-link", "redirect_status": 308}' "$links")
check_equal "201 with the link, id as a string" \
    "$(echo "${made% *}" | python3 -c 'import json, sys; l = json.load(sys.stdin); print(type(l["id"]).__name__, l["code"], l["url"], l["redirect_status"], l["expires_at"])') ${made##* }" \
    "str new-link https://example.com/new 308 None 201"
check_equal "the id is the link's" \
    "$(sql "$DB" "SELECT id FROM shortlinks WHERE code = 'new-link'")" \
    "$(echo "${made% *}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
check_equal "the new link redirects" "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$TOKEN_HTTP_PORT/new-link")" \
    "308 https://example.com/new"
generated=$(post -H "Authorization: Bearer $TOKEN" -d '{"url": "https://example.com/generated", "expires_at": "2100-01-01T00:00:00Z", "max_visits": 3}' "$links")
check_equal "a generated code, expires_at and max_visits" \
    "$(echo "${generated% *}" | python3 -c 'import json, sys; l = json.load(sys.stdin); print(len(l["code"]), l["expires_at"], l["max_visits"])') ${generated##* }" \
    "7 2100-01-01T00:00:00+00:00 3 201"
refused() { post -H "Authorization: Bearer $TOKEN" -d "$1" "$links"; }
check_equal "a refused URL: 400 with shorten()'s message and SQLSTATE" \
    "$(refused '{"url": "javascript:alert(1)"}')" \
    '{"error":"URL scheme \"javascript\" is not allowed","sqlstate":"22023"} 400'
check_equal "a taken code: 409" \
    "$(refused '{"url": "https://example.com/other", "code": "new-link"}')" \
    '{"error":"custom code \"new-link\" is already taken","sqlstate":"23505"} 409'
check_equal "a code that is an endpoint: 400" \
    "$(refused '{"url": "https://example.com/", "code": "ids"}')" \
    '{"error":"custom code \"ids\" is an endpoint of snowlink-http","sqlstate":"22023"} 400'
check_equal "a reserved code: 400" \
    "$(refused '{"url": "https://example.com/", "code": "Admin"}')" \
    '{"error":"custom code \"Admin\" is reserved","sqlstate":"22023"} 400'
check_equal "a bad status: 400" \
    "$(refused '{"url": "https://example.com/", "redirect_status": 303}')" \
    '{"error":"redirect_status must be 301, 302, 307 or 308, not 303","sqlstate":"22023"} 400'
check_equal "a bad time: 400" \
    "$(refused '{"url": "https://example.com/", "expires_at": "tomorrow-ish"}')" \
    '{"error":"invalid input syntax for type timestamp with time zone: \"tomorrow-ish\"","sqlstate":"22007"} 400'
check_equal "not JSON: 400" \
    "$(refused 'url=https://example.com/' | sed -E 's/: expected .*"\}/"}/')" \
    '{"error":"the body is not a link request"} 400'
check_equal "an unknown field: 400 that names it" \
    "$(refused '{"url": "https://example.com/", "colour": "red"}' | grep -o 'unknown field `colour`' )" \
    'unknown field `colour`'
check_equal "no url: 400" \
    "$(refused '{"code": "x"}' | grep -o 'missing field `url`')" 'missing field `url`'

echo "# at the edge: requests that a browser never sends"
edge() { python3 "$PROJECT_DIR/scripts/http_edge.py" "$@"; }
check_equal "Content-Length and Transfer-Encoding: 400, and nothing after it on the connection is served" \
    "$(edge smuggle "$TOKEN_HTTP_PORT")" "1 400 closed"
check_equal "a chunked body: 400 that says to send Content-Length" \
    "$(curl -s -w ' %{http_code}' -X POST -H "Authorization: Bearer $TOKEN" -H 'Transfer-Encoding: chunked' \
        -d '{"url": "https://example.com/chunked"}' "http://127.0.0.1:$TOKEN_HTTP_PORT/links")" \
    '{"error":"Transfer-Encoding is not accepted: send the body with Content-Length"} 400'
check_equal "300 uploads without the token that stall: 401 at once, none of their bodies kept" \
    "$(edge stalled-uploads "$TOKEN_HTTP_PORT" 300 "${HTTP_PIDS[1]}" | sed -E 's/ \([0-9-]+ MB\)$//')" \
    "401s 300, growth under 100 MB: yes"
check_equal "an upload with the token whose body stops coming: 408" \
    "$(edge slow-body "$TOKEN_HTTP_PORT" "$TOKEN")" 408
# A server with 1024 file descriptors, and more half-open connections than that.
HTTP_LAUNCHER=(prlimit --nofile=1024:1024 --)
start_http "$WORK/http-edge.log" "$EDGE_HTTP_PORT" redirects
HTTP_LAUNCHER=()
check_equal "1,100 connections that never finish their head are closed, then a client is served" \
    "$(edge half-open "$EDGE_HTTP_PORT" 1100)" "all 302"
# With shortlinks locked, no request waits longer than the database timeout, and the pool's
# connections are free again afterwards.
psql -X -q -d "$DB" -c "BEGIN; LOCK TABLE shortlinks IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(12); COMMIT" \
    >/dev/null 2>&1 &
locker=$!
until [ "$(sql "$DB" "SELECT count(*) FROM pg_locks WHERE relation = 'shortlinks'::regclass AND mode = 'AccessExclusiveLock' AND granted" 2>/dev/null)" = 1 ]; do
    sleep 0.05
done
check_equal "shortlinks locked: 12 requests at once all get 503, within 15 s" \
    "$(edge parallel "$EDGE_HTTP_PORT" 12 /found)" \
    "$(printf '503 %.0s' $(seq 12))within 15 s"
wait "$locker" || true
check_equal "the lock gone, it redirects again" \
    "$(status_of "http://127.0.0.1:$EDGE_HTTP_PORT/found")" 302
# SIGTERM while an upload stalls: the server stops once the request's time is up.
edge slow-body "$TOKEN_HTTP_PORT" "$TOKEN" >/dev/null &
uploader=$!
sleep 0.5
started=$(date +%s)
kill -TERM "${HTTP_PIDS[1]}"
wait "${HTTP_PIDS[1]}" && code=0 || code=$?
check_equal "SIGTERM with a request in flight: exit code 0 within 20 s" \
    "$code $(($(date +%s) - started <= 20))" "0 1"
wait "$uploader" || true

echo "# a browser follows a short link"
mkdir -p "$WORK/pages"
cat >"$WORK/pages/landed.html" <<'HTML'
<!doctype html>
<html><head><title>landed</title></head>
<body><p id="where"></p><script>document.getElementById('where').textContent = 'landed on ' + location.href;</script></body></html>
HTML
python3 -m http.server "$PAGE_PORT" --bind 127.0.0.1 --directory "$WORK/pages" >"$WORK/pages.log" 2>&1 &
PAGE_PID=$!
for tries in $(seq 50); do
    [ "$(status_of "http://127.0.0.1:$PAGE_PORT/landed.html")" = 200 ] && break
    sleep 0.1
done
before=$(visits_of browser)
# As root Chromium needs --no-sandbox; the other flags keep it off the network it cannot reach.
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$WORK/chromium-profile" --virtual-time-budget=5000 \
    --dump-dom "http://127.0.0.1:$HTTP_PORT/browser" >"$WORK/dom.html" 2>"$WORK/chromium.log" || true
check_equal "Chromium lands on the target page" \
    "$(sed -n 's|.*<p id="where">\([^<]*\)</p>.*|\1|p' "$WORK/dom.html")" \
    "landed on http://127.0.0.1:$PAGE_PORT/landed.html"
check_equal "the browser's visit is counted" "$(wait_for_visits browser $((before + 1)))" $((before + 1))

echo "# shutdown"
kill -TERM "${HTTP_PIDS[0]}"
wait "${HTTP_PIDS[0]}" && code=0 || code=$?
check_equal "SIGTERM: exit code 0 after shutting down" \
    "$code $(grep -c -e 'shutting down' -e 'stopped' "$WORK/http.log")" "0 2"
HTTP_PIDS=("${HTTP_PIDS[@]:1}")

checks_summary "http"
