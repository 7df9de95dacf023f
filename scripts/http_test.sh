#!/usr/bin/env bash
# snowlink-http against a scratch server, checked with curl: every status and header of the
# redirects, HEAD, the 404 page, codes that cannot be codes, the API with the keys of two owners,
# a read-only key and a revoked one (every route, status and error), the deprecated token, /ids,
# QR codes read back by zbarimg, domains by Host, rate limits, the OpenAPI document checked by
# openapi-spec-validator, JSON logs with request IDs, /metrics checked by promtool, /healthz and
# /readyz, start-up errors, a database restart, SIGTERM. Then a real
# browser, headless Chromium, opens the 404 page and follows a short link to a page served on
# localhost. Prints one line per check.
source "$(dirname "$0")/lib.sh"

PG_PORT=25501
HTTP_PORT=25502
PAGE_PORT=25503
TOKEN_HTTP_PORT=25504
EDGE_HTTP_PORT=25505
DOMAINS_HTTP_PORT=25506
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
sql postgres "CREATE DATABASE http_old" >/dev/null
# The redirecting role may log in and nothing more: anyone may follow a link. The role behind
# the API makes links as the extension's role for applications, for the owners of its keys.
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
    "$(env -u DATABASE_URL "$SERVER" --version) $(env -u DATABASE_URL "$SERVER" --help | grep -cE '^  [A-Z_]+( |$)')" \
    "snowlink-http $(sed -nE 's/^version = "([^"]+)"$/\1/p' "$PROJECT_DIR/http/Cargo.toml") 11"
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
DATABASE_URL="$(database_url redirects)" SNOWLINK_HTTP_PUBLIC_URL=s.example.com "$SERVER" 2>"$WORK/bad-url.log" && code=0 || code=$?
check_equal "a public URL without a scheme: exit code 2, and what it must be" \
    "$code $(grep -c 'not an http or https URL of a host without a path' "$WORK/bad-url.log")" "2 1"
sql http_old "CREATE EXTENSION snowlink VERSION '0.2.0'"
DATABASE_URL="$(database_url redirects | sed "s/dbname=$DB/dbname=http_old/")" "$SERVER" 2>"$WORK/old.log" && code=0 || code=$?
check_equal "a database at snowlink 0.2.0: exit code 3, and the update to run" \
    "$code $(grep -c 'needs 0.3.0 or later: run ALTER EXTENSION snowlink UPDATE' "$WORK/old.log")" "3 1"

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

check_equal "the page fits a phone's screen and loads nothing else" \
    "$(curl -s "http://127.0.0.1:$HTTP_PORT/unknown" | grep -c 'name="viewport" content="width=device-width') $(status_and /unknown Content-Security-Policy)" \
    "1 404 default-src 'none'; style-src 'unsafe-inline'"

echo "# a server whose role is not in snowlink_user only redirects"
check_equal "GET /ids: 404 in JSON" \
    "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$HTTP_PORT/ids")" \
    '{"error":{"code":"not_found","message":"this server only redirects: its database role is not in snowlink_user","sqlstate":null}} 404'
check_equal "POST /links: 404" \
    "$(status_of -X POST -d '{"url": "https://example.com/"}' "http://127.0.0.1:$HTTP_PORT/links")" 404

echo "# /healthz and /readyz"
check_equal "healthz: 200" "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$HTTP_PORT/healthz")" "ok
 200"
check_equal "readyz: 200" "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$HTTP_PORT/readyz")" "ready
 200"

echo "# codes that cannot be codes are not looked up"
# With the database stopped, a code that could exist gets 503, and one that cannot still 404.
as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$(cluster_root)/http-$PG_MAJOR/data" stop --mode=fast >/dev/null
for path in "/$(printf 'a%.0s' $(seq 65))" /a.b /caf%C3%A9 /a%20b /%FF; do
    check_equal "$path: 404" "$(status_of "http://127.0.0.1:$HTTP_PORT$path")" 404
done

echo "# the database goes away and comes back"
check_equal "a code while the database is down: 503, Retry-After" "$(status_and /found Retry-After)" "503 1"
check_equal "while the database is down, /healthz: 200 (the process answers), /readyz: 503 and why" \
    "$(status_of "http://127.0.0.1:$HTTP_PORT/healthz") $(curl -s -w ' %{http_code}' "http://127.0.0.1:$HTTP_PORT/readyz" | tr -d '\n' | sed -E 's/(no database connection).* 503$/\1 503/')" \
    "200 not ready: no database connection 503"
cluster_start "http-$PG_MAJOR" "$PG_PORT"
for tries in $(seq 50); do
    [ "$(status_of "http://127.0.0.1:$HTTP_PORT/found")" = 302 ] && break
    sleep 0.1
done
check_equal "after the restart it redirects again" "$(status_and /found Location)" "302 https://example.com/found"
check_equal "requests are logged on stderr, with their ID" \
    "$(grep -cE ' INFO request\{id=[0-9a-f-]{36} method=GET path=/found\}: snowlink_http::routes: answered status=302 ms=[0-9.]+$' "$WORK/http.log" | awk '$1 > 0 { print "yes" }')" yes

echo "# the API: keys of two owners, a read-only key, a revoked one"
# Keys as an administrator makes them; each is shown once.
key_of() { sql "$DB" "SELECT snowlink_api_key_create($1)"; }
ALICE=$(key_of "'alice', note => 'alice''s app'")
BOB=$(key_of "'bob'")
ALICE_READS=$(key_of "'alice', read_only => true")
REVOKED=$(key_of "'carol'")
start_http "$WORK/http-api.log" "$TOKEN_HTTP_PORT" link_maker SNOWLINK_HTTP_TOKEN=$TOKEN \
    SNOWLINK_HTTP_PUBLIC_URL="http://127.0.0.1:$TOKEN_HTTP_PORT"
API=http://127.0.0.1:$TOKEN_HTTP_PORT
# api KEY METHOD PATH [BODY]: the body of the response, a space and its status.
api() {
    local key=$1 method=$2 path=$3
    shift 3
    curl -s -w ' %{http_code}' -X "$method" -H "Authorization: Bearer $key" \
        ${1:+-H 'Content-Type: application/json' -d "$1"} "$API$path"
}
# field NAME...: the fields of the JSON object before the status, and the status.
field() {
    python3 -c 'import json, sys
text = sys.stdin.read()
body, status = text.rsplit(" ", 1)
value = json.loads(body) if body else None
print(*[value.get(name) if isinstance(value, dict) else value for name in sys.argv[1:]], status)' "$@"
}
check_equal "the server says the API is on, and that the token is deprecated" \
    "$(grep -c -e ', API on' -e 'SNOWLINK_HTTP_TOKEN is deprecated and goes in 0.4.0' "$WORK/http-api.log")" 2
check_equal "no key: 401, WWW-Authenticate: Bearer, in the one error shape" \
    "$(curl -s -D "$WORK/headers" -w ' %{http_code}' "$API/links") $(grep -i '^www-authenticate' "$WORK/headers" | cut -d' ' -f2 | tr -d '\r')" \
    '{"error":{"code":"unauthorized","message":"send Authorization: Bearer with an API key","sqlstate":null}} 401 Bearer'
check_equal "an unknown key: 401 with the database's SQLSTATE" \
    "$(api sl_0000 GET /links)" \
    '{"error":{"code":"unauthorized","message":"API key is unknown or revoked","sqlstate":"28000"}} 401'
check_equal "the key as Basic: 401" "$(status_of -H "Authorization: Basic $ALICE" "$API/links")" 401
made=$(api "$ALICE" POST /links '{"url": "https://example.com/alice", "code": "alice-link", "title": "Spring sale", "tags": ["Sale", "spring"]}')
check_equal "POST /links: 201, the link with its ID as a string, its owner and its public short URL" \
    "$(echo "$made" | field code url title tags owner short_url redirect_status disabled) $(python3 -c 'import json, sys; print(type(json.loads(sys.argv[1].rsplit(" ", 1)[0])["id"]).__name__)' "$made")" \
    "alice-link https://example.com/alice Spring sale ['sale', 'spring'] alice http://127.0.0.1:$TOKEN_HTTP_PORT/alice-link 302 False 201 str"
check_equal "the ID is the link's" \
    "$(sql "$DB" "SELECT id FROM shortlinks WHERE code = 'alice-link'")" \
    "$(echo "${made% *}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
check_equal "201 has the link's place in the API" \
    "$(curl -s -o /dev/null -D - -X POST -H "Authorization: Bearer $ALICE" -d '{"url": "https://example.com/alice"}' "$API/links" | grep -i '^location:' | tr -d '\r' | cut -d' ' -f2 | sed -E 's|/links/[0-9A-Za-z]{7}$|/links/CODE|')" \
    /links/CODE
check_equal "the new link redirects" \
    "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$API/alice-link")" "302 https://example.com/alice"
check_equal "bob's link, with every option" \
    "$(api "$BOB" POST /links '{"url": "https://example.com/bob", "code": "bob-link", "expires_at": "2100-01-01T00:00:00Z", "valid_from": "2000-01-01T00:00:00Z", "max_visits": 3, "redirect_status": 308, "force_new": true}' | field owner expires_at valid_from max_visits redirect_status)" \
    "bob 2100-01-01T00:00:00Z 2000-01-01T00:00:00Z 3 308 201"
check_equal "GET /links: alice's links only, newest first" \
    "$(api "$ALICE" GET /links | python3 -c 'import json, sys; page = json.loads(sys.stdin.read().rsplit(" ", 1)[0]); print(sorted({l["owner"] for l in page["links"]}), page["links"][-1]["code"], page["next"])')" \
    "['alice'] alice-link None"
check_equal "bob does not see alice's link: 404 for GET, PATCH, DELETE and its visits" \
    "$(for method in GET PATCH DELETE; do status_of -X "$method" -H "Authorization: Bearer $BOB" -d '{}' "$API/links/alice-link"; echo -n ' '; done; status_of -H "Authorization: Bearer $BOB" "$API/links/alice-link/visits")" \
    "404 404 404 404"
check_equal "nor in his list" "$(api "$BOB" GET '/links?search=alice' | field links next)" "[] None 200"
for n in 1 2 3; do api "$ALICE" POST /links "{\"url\": \"https://example.com/page-$n\", \"code\": \"page-$n\", \"tags\": [\"pages\"]}" >/dev/null; done
check_equal "pages: limit, and next as the cursor of the following page" \
    "$(page=$(api "$ALICE" GET '/links?tag=pages&limit=2'); echo "$page" | python3 -c 'import json, sys; p = json.loads(sys.stdin.read().rsplit(" ", 1)[0]); print(*[l["code"] for l in p["links"]])'; next=$(echo "${page% *}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["next"])'); api "$ALICE" GET "/links?tag=pages&limit=2&after=$next" | python3 -c 'import json, sys; p = json.loads(sys.stdin.read().rsplit(" ", 1)[0]); print(*[l["code"] for l in p["links"]], p["next"])')" \
    "page-3 page-2
page-1 None"
check_equal "search matches code, URL or title in any case" \
    "$(api "$ALICE" GET '/links?search=SPRING' | python3 -c 'import json, sys; print(*[l["code"] for l in json.loads(sys.stdin.read().rsplit(" ", 1)[0])["links"]])')" "alice-link"
check_equal "GET /links/{code}" "$(api "$ALICE" GET /links/alice-link | field code owner)" "alice-link alice 200"
check_equal "PATCH: the fields given change, null clears, the rest stays" \
    "$(api "$ALICE" PATCH /links/alice-link '{"url": "https://example.com/changed", "title": null, "max_visits": 10}' | field url title max_visits tags)" \
    "https://example.com/changed None 10 ['sale', 'spring'] 200"
check_equal "the redirect follows the change" \
    "$(curl -s -o /dev/null -w '%{redirect_url}' "$API/alice-link")" "https://example.com/changed"
check_equal "PATCH disabled: the link stops, and starts again" \
    "$(api "$ALICE" PATCH /links/alice-link '{"disabled": true}' | field disabled) $(status_of "$API/alice-link") $(api "$ALICE" PATCH /links/alice-link '{"disabled": false}' | field disabled)" \
    "True 200 404 False 200"
check_equal "PATCH with null for a field that cannot be cleared: 400 from shortlink_update()" \
    "$(api "$ALICE" PATCH /links/alice-link '{"url": null}')" \
    "{\"error\":{\"code\":\"bad_request\",\"message\":\"clear names columns that cannot be cleared: 'url'\",\"sqlstate\":\"22023\"}} 400"
check_equal "PATCH with an unknown field: 400 that names it" \
    "$(api "$ALICE" PATCH /links/alice-link '{"code": "other"}' | grep -o 'unknown field `code`')" 'unknown field `code`'
check_equal "the visits: in all, and per day from the day asked" \
    "$(api "$ALICE" GET "/links/alice-link/visits?from=$(date -u -d yesterday +%F)" | python3 -c 'import json, sys; v = json.loads(sys.stdin.read().rsplit(" ", 1)[0]); print(v["visits"] >= 2, [d["visits"] for d in v["days"]][0], len(v["days"]))')" \
    "True 0 2"
check_equal "visits from a day that is not a date: 400" \
    "$(api "$ALICE" GET '/links/alice-link/visits?from=yesterday-ish')" \
    '{"error":{"code":"bad_request","message":"invalid input syntax for type date: \"yesterday-ish\"","sqlstate":"22007"}} 400'
check_equal "the read-only key reads alice's links" "$(api "$ALICE_READS" GET /links/alice-link | field owner)" "alice 200"
check_equal "the read-only key cannot write: 403 for POST, PATCH and DELETE" \
    "$(api "$ALICE_READS" POST /links '{"url": "https://example.com/"}') $(status_of -X PATCH -H "Authorization: Bearer $ALICE_READS" -d '{"title": "x"}' "$API/links/alice-link") $(status_of -X DELETE -H "Authorization: Bearer $ALICE_READS" "$API/links/alice-link")" \
    '{"error":{"code":"forbidden","message":"this API key is read-only","sqlstate":null}} 403 403 403'
check_equal "a key works until it is revoked, and is refused at once after" \
    "$(status_of -H "Authorization: Bearer $REVOKED" "$API/links") $(sql "$DB" "SELECT snowlink_api_key_revoke(id) FROM snowlink_api_keys WHERE owner = 'carol'") $(status_of -H "Authorization: Bearer $REVOKED" "$API/links")" \
    "200 t 401"
check_equal "DELETE: 204, then the code does not resolve, and the link is gone" \
    "$(api "$ALICE" DELETE /links/page-1) $(status_of "$API/page-1") $(status_of -H "Authorization: Bearer $ALICE" "$API/links/page-1")" \
    " 204 404 404"
check_equal "a path no route takes under /links: 404 in JSON" \
    "$(api "$ALICE" GET /links/page-2/more/still)" \
    '{"error":{"code":"not_found","message":"no route /links/page-2/more/still","sqlstate":null}} 404'
check_equal "a method a route does not take: 405 in JSON" \
    "$(api "$ALICE" PUT /links)" \
    '{"error":{"code":"method_not_allowed","message":"this path does not take this method","sqlstate":null}} 405'
check_equal "a body over 64 KiB: 413" \
    "$(api "$ALICE" POST /links "{\"url\": \"https://example.com/$(head -c 70000 /dev/zero | tr '\0' a)\"}" | field error | cut -c1-200)" \
    "{'code': 'payload_too_large', 'message': 'the body is larger than 65536 bytes, or was cut off', 'sqlstate': None} 413"

echo "# /ids"
ids=$(curl -s -H "Authorization: Bearer $ALICE" "$API/ids?n=1000")
check_equal "n=1000: a JSON array of 1000 distinct IDs as strings" \
    "$(python3 -c 'import json, sys; ids = json.loads(sys.argv[1]); print(len(set(ids)), all(isinstance(i, str) and int(i) > 2**53 for i in ids))' "$ids")" \
    "1000 True"
check_equal "IDs are snowflake IDs of this server" \
    "$(sql "$DB" "SELECT count(*) FROM json_array_elements_text('$ids') AS id
                  WHERE snowflake_timestamp(id::bigint) BETWEEN now() - interval '1 minute' AND clock_timestamp()")" 1000
check_equal "no n: one ID" "$(curl -s -H "Authorization: Bearer $ALICE" "$API/ids" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')" 1
check_equal "a read-only key gets IDs too" "$(status_of -H "Authorization: Bearer $ALICE_READS" "$API/ids")" 200
check_equal "no key: 401" "$(status_of "$API/ids")" 401
for n in 0 1001 -1 abc 1.5; do
    check_equal "n=$n: 400 with the rule" \
        "$(api "$ALICE" GET "/ids?n=$n")" \
        "{\"error\":{\"code\":\"bad_request\",\"message\":\"n must be a whole number from 1 to 1000, not \\\"$n\\\"\",\"sqlstate\":null}} 400"
done

echo "# QR codes"
qr() { curl -s -o "$WORK/qr.$2" -w '%{http_code} %{content_type}' "$API/$1/qr.$2${3:-}"; }
check_equal "SVG: 200, and zbarimg reads the link's short URL" \
    "$(qr page-2 svg) $(zbarimg -q --raw "$WORK/qr.svg" 2>/dev/null)" \
    "200 image/svg+xml http://127.0.0.1:$TOKEN_HTTP_PORT/page-2"
check_equal "PNG of the size asked: 200, and zbarimg reads it" \
    "$(qr page-2 png '?size=400') $(zbarimg -q --raw "$WORK/qr.png" 2>/dev/null) $(python3 -c 'import struct, sys; d = open(sys.argv[1], "rb").read(24); print(d[:8] == b"\x89PNG\r\n\x1a\n", struct.unpack(">II", d[16:24])[0] <= 400)' "$WORK/qr.png")" \
    "200 image/png http://127.0.0.1:$TOKEN_HTTP_PORT/page-2 True True"
check_equal "a QR code counts no visit" "$(visits_of page-2)" 0
check_equal "a size out of range: 400" \
    "$(curl -s -w ' %{http_code}' "$API/page-2/qr.png?size=10000")" \
    '{"error":{"code":"bad_request","message":"size must be from 64 to 2048 pixels, not 10000","sqlstate":null}} 400'
check_equal "codes that do not resolve (unknown, deleted, disabled): 404" \
    "$(status_of "$API/unknown/qr.svg") $(status_of "$API/page-1/qr.png") $(status_of "$API/off/qr.svg")" "404 404 404"
check_equal "without SNOWLINK_HTTP_PUBLIC_URL, the default domain's links have no QR code: 404 that says what to set" \
    "$(curl -s -w ' %{http_code}' "http://127.0.0.1:$HTTP_PORT/found/qr.svg")" \
    '{"error":{"code":"not_found","message":"links of the default domain have no public URL: set SNOWLINK_HTTP_PUBLIC_URL","sqlstate":null}} 404'

echo "# domains, and a rate limit"
api "$ALICE" POST /links '{"url": "https://example.com/shop-sale", "code": "sale", "domain": "Shop.Example"}' >/dev/null
api "$ALICE" POST /links '{"url": "https://example.com/default-sale", "code": "sale"}' >/dev/null
echo '<!doctype html><title>Gone</title><p>Our own page' >"$WORK/custom-404.html"
start_http "$WORK/http-domains.log" "$DOMAINS_HTTP_PORT" link_maker SNOWLINK_HTTP_PUBLIC_URL=https://go.example \
    SNOWLINK_HTTP_DOMAINS=shop.example,other.example SNOWLINK_HTTP_RATE_LIMIT=3 \
    SNOWLINK_HTTP_NOT_FOUND_PAGE="$WORK/custom-404.html"
DOMAINS=http://127.0.0.1:$DOMAINS_HTTP_PORT
check_equal "a listed host: the link of its domain" \
    "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: SHOP.example' "$DOMAINS/sale")" "302 https://example.com/shop-sale"
check_equal "the public URL's host: the link of the default domain" \
    "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: go.example' "$DOMAINS/sale")" "302 https://example.com/default-sale"
check_equal "a listed host without the code: 404" "$(status_of -H 'Host: other.example' "$DOMAINS/sale")" 404
check_equal "a host not listed: 421 with the page" \
    "$(status_of -H 'Host: elsewhere.example' "$DOMAINS/sale") $(curl -s -H 'Host: elsewhere.example' "$DOMAINS/sale")" \
    "421 <!doctype html><title>Gone</title><p>Our own page"
check_equal "SNOWLINK_HTTP_NOT_FOUND_PAGE: the page of links that do not resolve, as it is" \
    "$(curl -s -H 'Host: go.example' "$DOMAINS/unknown" -w ' %{http_code}')" \
    "<!doctype html><title>Gone</title><p>Our own page
 404"
check_equal "without SNOWLINK_HTTP_DOMAINS every host is the default domain" \
    "$(curl -s -o /dev/null -w '%{redirect_url}' -H 'Host: shop.example' "$API/sale")" "https://example.com/default-sale"
check_equal "the QR code of a domain's link has the domain's URL" \
    "$(curl -s -o "$WORK/qr-domain.svg" -H 'Host: shop.example' "$DOMAINS/sale/qr.svg"; zbarimg -q --raw "$WORK/qr-domain.svg" 2>/dev/null)" \
    "https://shop.example/sale"
check_equal "a domain's link in the API: ?domain=, and its short URL" \
    "$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $ALICE" "$DOMAINS/links/sale?domain=shop.example" | field domain short_url)" \
    "shop.example https://shop.example/sale 200"
check_equal "a domain that is not a host: 400 from the database" \
    "$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $ALICE" "$DOMAINS/links?domain=a/b")" \
    '{"error":{"code":"bad_request","message":"domain \"a/b\" is not a host with an optional port, such as s.example.com or localhost:8080","sqlstate":"22023"}} 400'
check_equal "3 writes a minute: the fourth gets 429 with Retry-After, and reads go on" \
    "$(for n in 1 2 3 4; do curl -s -o /dev/null -D "$WORK/headers" -w '%{http_code} ' -X POST -H "Authorization: Bearer $BOB" -d '{"url": "https://example.com/limited"}' "$DOMAINS/links"; done; grep -i '^retry-after:' "$WORK/headers" | tr -d '\r' | awk '{ print ($2 >= 1 && $2 <= 60) }'; status_of -H "Authorization: Bearer $BOB" "$DOMAINS/links")" \
    "201 201 201 429 1
200"
check_equal "the limit is per key: another key writes" \
    "$(status_of -X POST -H "Authorization: Bearer $ALICE" -d '{"url": "https://example.com/limited"}' "$DOMAINS/links")" 201

echo "# the OpenAPI document"
OPENAPI_VENV=$PROJECT_DIR/target/http-venv
if ! "$OPENAPI_VENV/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
    # Debian's python3 has the venv module but not ensurepip, which creating one needs.
    python3 -c 'import ensurepip' 2>/dev/null || ensure_debian_packages python3-venv
    python3 -m venv "$OPENAPI_VENV"
    "$OPENAPI_VENV/bin/pip" install -q 'openapi-spec-validator>=0.7,<0.8'
fi
curl -s "$API/openapi.json" >"$WORK/openapi.json"
check_equal "openapi-spec-validator accepts it as OpenAPI 3.1" \
    "$("$OPENAPI_VENV/bin/python" -c 'import json, sys
from openapi_spec_validator import validate
document = json.load(open(sys.argv[1]))
validate(document)
print(document["openapi"])' "$WORK/openapi.json" 2>&1)" 3.1.0
# Every route that this test calls, as the router serves it.
check_equal "it has every route the server serves, and no other" \
    "$(python3 -c 'import json, sys
paths = json.load(open(sys.argv[1]))["paths"]
print(" ".join(sorted(method.upper() + " " + path for path, item in paths.items() for method in item)))' "$WORK/openapi.json")" \
    "DELETE /links/{code} GET /healthz GET /ids GET /links GET /links/{code} GET /links/{code}/visits GET /metrics GET /openapi.json GET /readyz GET /{code} GET /{code}/qr.png GET /{code}/qr.svg PATCH /links/{code} POST /links"

echo "# the deprecated token: the role of DATABASE_URL, as its own owner"
links=$API/links
post() { curl -s -w ' %{http_code}' -X POST -H "Content-Type: application/json" "$@"; }
check_equal "a wrong token: 401" \
    "$(status_of -X POST -H "Authorization: Bearer ${TOKEN}x" -d '{"url": "https://example.com/"}' "$links")" 401
made=$(post -H "Authorization: Bearer $TOKEN" -d '{"url": "https://example.com/new", "code": "new-link", "redirect_status": 308}' "$links")
check_equal "201 with the link, owned by the role itself" \
    "$(echo "$made" | field code url redirect_status owner expires_at)" \
    "new-link https://example.com/new 308 link_maker None 201"
check_equal "the new link redirects" "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$API/new-link")" \
    "308 https://example.com/new"
check_equal "no key's owner sees it" "$(status_of -H "Authorization: Bearer $ALICE" "$API/links/new-link")" 404
refused() { post -H "Authorization: Bearer $TOKEN" -d "$1" "$links"; }
check_equal "a refused URL: 400 with shorten()'s message and SQLSTATE" \
    "$(refused '{"url": "javascript:alert(1)"}')" \
    '{"error":{"code":"bad_request","message":"URL scheme \"javascript\" is not allowed","sqlstate":"22023"}} 400'
check_equal "a taken code: 409" \
    "$(refused '{"url": "https://example.com/other", "code": "new-link"}')" \
    '{"error":{"code":"conflict","message":"custom code \"new-link\" is already taken","sqlstate":"23505"}} 409'
check_equal "a code that is an endpoint: 400" \
    "$(refused '{"url": "https://example.com/", "code": "ids"}')" \
    '{"error":{"code":"bad_request","message":"custom code \"ids\" is an endpoint of snowlink-http","sqlstate":"22023"}} 400'
check_equal "a reserved code: 400" \
    "$(refused '{"url": "https://example.com/", "code": "Admin"}')" \
    '{"error":{"code":"bad_request","message":"custom code \"Admin\" is reserved","sqlstate":"22023"}} 400'
check_equal "a bad status: 400" \
    "$(refused '{"url": "https://example.com/", "redirect_status": 303}')" \
    '{"error":{"code":"bad_request","message":"redirect_status must be 301, 302, 307 or 308, not 303","sqlstate":"22023"}} 400'
check_equal "a bad time: 400" \
    "$(refused '{"url": "https://example.com/", "expires_at": "tomorrow-ish"}')" \
    '{"error":{"code":"bad_request","message":"invalid input syntax for type timestamp with time zone: \"tomorrow-ish\"","sqlstate":"22007"}} 400'
check_equal "not JSON: 400" \
    "$(refused 'url=https://example.com/' | sed -E 's/: expected .*sqlstate/ sqlstate/')" \
    '{"error":{"code":"bad_request","message":"the body is not a JSON object of this route'"'"'s fields sqlstate":null}} 400'
check_equal "an unknown field: 400 that names it" \
    "$(refused '{"url": "https://example.com/", "colour": "red"}' | grep -o 'unknown field `colour`' )" \
    'unknown field `colour`'
check_equal "no url: 400" \
    "$(refused '{"code": "x"}' | grep -o 'missing field `url`')" 'missing field `url`'

echo "# logs and metrics"
METRICS_HTTP_PORT=25507
METRICS_PORT=25508
start_http "$WORK/http-json.log" "$METRICS_HTTP_PORT" link_maker SNOWLINK_HTTP_LOG_FORMAT=json \
    METRICS_LISTEN="127.0.0.1:$METRICS_PORT"
OBSERVED=http://127.0.0.1:$METRICS_HTTP_PORT
# A scripted mix of requests, each counted below.
for n in 1 2 3 4 5; do curl -s -o /dev/null "$OBSERVED/found"; done
for n in 1 2 3; do curl -s -o /dev/null "$OBSERVED/moved"; done
for n in 1 2; do curl -s -o /dev/null "$OBSERVED/unknown"; done
curl -s -o /dev/null -X POST -H "Authorization: Bearer $ALICE" -d '{"url": "https://example.com/metered"}' "$OBSERVED/links"
for n in 1 2; do curl -s -o /dev/null "$OBSERVED/links"; done
curl -s -o /dev/null -H "Authorization: Bearer sl_unknown" "$OBSERVED/links"
check_equal "X-Request-Id: the client's is returned, and a new one is made when there is none" \
    "$(curl -s -o /dev/null -D - -H 'X-Request-Id: checkout-42' "$OBSERVED/found" | grep -i '^x-request-id:' | tr -d '\r' | cut -d' ' -f2) $(curl -s -o /dev/null -D - "$OBSERVED/found" | grep -i '^x-request-id:' | tr -d '\r' | cut -d' ' -f2 | grep -cE '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')" \
    "checkout-42 1"
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/metrics.txt"
check_equal "promtool check metrics accepts /metrics" \
    "$(promtool check metrics <"$WORK/metrics.txt" 2>&1; echo "exit $?")" "exit 0"
# metric NAME LABEL=VALUE...: the value of the one sample with those labels.
metric() {
    python3 - "$WORK/metrics.txt" "$@" <<'PYTHON'
import re, sys
path, name, *wanted = sys.argv[1:]
wanted = dict(pair.split("=", 1) for pair in wanted)
for line in open(path):
    match = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? (\S+)\n', line)
    if match and match[1] == name:
        labels = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
        if labels == wanted:
            print(match[3])
PYTHON
}
check_equal "requests by route, method and status" \
    "$(metric snowlink_http_requests_total route=/{code} method=GET status=302) $(metric snowlink_http_requests_total route=/{code} method=GET status=301) $(metric snowlink_http_requests_total route=/{code} method=GET status=404) $(metric snowlink_http_requests_total route=/links method=POST status=201) $(metric snowlink_http_requests_total route=/links method=GET status=401)" \
    "7 3 2 1 3"
check_equal "redirects by status, and 404s" \
    "$(metric snowlink_http_redirects_total status=302) $(metric snowlink_http_redirects_total status=301) $(metric snowlink_http_redirects_total status=404)" \
    "7 3 2"
check_equal "a latency histogram per route" \
    "$(metric snowlink_http_request_duration_seconds_count route=/{code}) $(metric snowlink_http_request_duration_seconds_bucket route=/{code} le=+Inf)" "12 12"
check_equal "database errors by SQLSTATE class: the unknown key's 28000" \
    "$(metric snowlink_http_db_errors_total class=28)" 1
check_equal "the pool: its size, connections open and in use, time waited for one" \
    "$(metric snowlink_http_db_pool_max_connections) $(($(metric snowlink_http_db_pool_connections) >= 1)) $(metric snowlink_http_db_pool_connections_in_use) $(($(metric snowlink_http_db_pool_wait_seconds_count) >= 12))" \
    "$(( 4 * $(nproc) )) 1 0 1"
check_equal "the build's version" \
    "$(metric snowlink_http_build_info version="$(sed -nE 's/^version = "([^"]+)"$/\1/p' "$PROJECT_DIR/http/Cargo.toml")")" 1
check_equal "with METRICS_LISTEN, /metrics is not served with the other routes" \
    "$(status_of "$OBSERVED/metrics") $(status_of "http://127.0.0.1:$METRICS_PORT/found")" "404 404"
check_equal "without it, it is: the API server's /metrics" "$(status_of "$API/metrics")" 200
check_equal "JSON logs: every line is a JSON object" \
    "$(python3 -c 'import json, sys; [json.loads(line) for line in open(sys.argv[1])]; print("yes")' "$WORK/http-json.log" 2>&1)" yes
check_equal "each request's line has its ID, method, path and status" \
    "$(python3 -c 'import json, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
mine = [l for l in lines if l.get("span", {}).get("id") == "checkout-42"]
print(len(mine), mine[0]["span"]["method"], mine[0]["span"]["path"], mine[0]["fields"]["status"], mine[0]["level"])' "$WORK/http-json.log")" \
    "1 GET /found 302 INFO"
check_equal "/readyz: ready" "$(curl -s -w ' %{http_code}' "$OBSERVED/readyz")" "ready
 200"

echo "# the monitoring files of docs/operations.md"
check_equal "promtool check rules accepts the alert rules" \
    "$(promtool check rules "$PROJECT_DIR/docs/monitoring/snowlink-alerts.yml" 2>&1 | grep -c 'SUCCESS: 10 rules found')" 1
# Each query of the postgres_exporter file, as a role in snowlink_user: one row, and every column
# the file names.
check_equal "every postgres_exporter query runs as a role in snowlink_user, with the columns it names" \
    "$(python3 - "$PROJECT_DIR/docs/monitoring/postgres_exporter-queries.yaml" "$(database_url link_maker)" <<'PYTHON'
import subprocess, sys, yaml
queries = yaml.safe_load(open(sys.argv[1]))
for name, query in sorted(queries.items()):
    result = subprocess.run(["psql", "-X", "-A", "-F", "|", "-P", "footer=off", "-d", sys.argv[2],
                             "-v", "ON_ERROR_STOP=1", "-c", query["query"]],
                            capture_output=True, text=True)
    lines = result.stdout.splitlines()
    columns = [list(metric)[0] for metric in query["metrics"]]
    wanted = lines[0].split("|") == columns if lines else False
    rows = [line for line in lines[1:] if line.strip()]
    print(name, result.returncode, wanted, len(rows) >= 1)
PYTHON
)" \
    "snowflake_node_status 0 True True
snowlink_visit_writers 0 True True"

echo "# the examples of docs/http.md"
# The block after the marker in "Serving redirects over HTTP", run as it is with S and KEY set.
sed -n '/^<!-- http_test.sh runs this block -->$/,/^```$/p' "$PROJECT_DIR/docs/http.md" | sed '1,2d;$d' >"$WORK/readme.sh"
mkdir -p "$WORK/readme"
(cd "$WORK/readme" && S=$API KEY=$ALICE bash -e "$WORK/readme.sh") >"$WORK/readme.out" 2>&1 && code=0 || code=$?
check_equal "every curl of docs/http.md succeeds" "$code $(grep -c '^curl' "$WORK/readme.sh")" "0 11"
check_equal "its redirect and its QR code are those of the link" \
    "$(grep -c '302 https://example.com/spring-sale$' "$WORK/readme.out") $(zbarimg -q --raw "$WORK/readme/spring.png" 2>/dev/null)" \
    "1 http://127.0.0.1:$TOKEN_HTTP_PORT/spring"
check_equal "and it deleted the link it made" "$(sql "$DB" "SELECT count(*) FROM shortlinks WHERE code = 'spring'")" 0

echo "# at the edge: requests that a browser never sends"
edge() { python3 "$PROJECT_DIR/scripts/http_edge.py" "$@"; }
check_equal "Content-Length and Transfer-Encoding: 400, and nothing after it on the connection is served" \
    "$(edge smuggle "$TOKEN_HTTP_PORT")" "1 400 closed"
check_equal "a chunked body: 400 that says to send Content-Length" \
    "$(curl -s -w ' %{http_code}' -X POST -H "Authorization: Bearer $TOKEN" -H 'Transfer-Encoding: chunked' \
        -d '{"url": "https://example.com/chunked"}' "http://127.0.0.1:$TOKEN_HTTP_PORT/links")" \
    '{"error":{"code":"bad_request","message":"Transfer-Encoding is not accepted: send the body with Content-Length","sqlstate":null}} 400'
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
# The 404 page as a phone shows it: 390 pixels wide, the heading on one line.
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$WORK/chromium-profile" --window-size=390,844 --virtual-time-budget=5000 \
    --run-all-compositor-stages-before-draw \
    --dump-dom "http://127.0.0.1:$HTTP_PORT/unknown" >"$WORK/not-found.html" 2>"$WORK/chromium-404.log" || true
check_equal "Chromium shows the 404 page" \
    "$(grep -o '<h1>Link not found</h1>' "$WORK/not-found.html")" "<h1>Link not found</h1>"

echo "# shutdown"
kill -TERM "${HTTP_PIDS[0]}"
wait "${HTTP_PIDS[0]}" && code=0 || code=$?
check_equal "SIGTERM: exit code 0 after shutting down" \
    "$code $(grep -c -e 'shutting down' -e 'stopped' "$WORK/http.log")" "0 2"
HTTP_PIDS=("${HTTP_PIDS[@]:1}")

checks_summary "http"
