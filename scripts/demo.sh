#!/usr/bin/env bash
# Command 1: installs what is missing, builds and installs snowlink, starts a scratch cluster and
# shows the extension at work, then starts snowlink-http beside it. `scripts/demo.sh stop` stops
# both and deletes the cluster's data.
source "$(dirname "$0")/lib.sh"

DEMO_PORT=${SNOWLINK_DEMO_PORT:-25415}
DEMO_HTTP_PORT=${SNOWLINK_DEMO_HTTP_PORT:-25416}
HTTP_PID_FILE=$PROJECT_DIR/target/demo-snowlink-http.pid
HTTP_LOG=$PROJECT_DIR/target/demo-snowlink-http.log

stop_http() {
    if [ -f "$HTTP_PID_FILE" ]; then
        kill "$(cat "$HTTP_PID_FILE")" 2>/dev/null || true
        rm -f "$HTTP_PID_FILE"
    fi
}

if [ "${1:-}" = stop ]; then
    stop_http
    cluster_remove demo
    echo "demo cluster and snowlink-http stopped, cluster removed"
    exit 0
fi

ensure_tools
say "building and installing snowlink (release)"
install_extension --release
say "starting the scratch cluster on port $DEMO_PORT"
cluster_start demo "$DEMO_PORT"
PGOPTIONS='-c client_min_messages=warning' psql -X -q -d postgres -c 'DROP DATABASE IF EXISTS snowlink_demo' -c 'CREATE DATABASE snowlink_demo'
say "demo"
psql -X -d snowlink_demo -v ON_ERROR_STOP=1 --echo-queries -f "$PROJECT_DIR/scripts/demo.sql"
say "building and starting snowlink-http on port $DEMO_HTTP_PORT"
server=$(snowlink_http_binary)
stop_http
DATABASE_URL="host=$PGHOST port=$PGPORT user=postgres dbname=snowlink_demo" \
    LISTEN="127.0.0.1:$DEMO_HTTP_PORT" nohup "$server" >"$HTTP_LOG" 2>&1 &
echo $! >"$HTTP_PID_FILE"
for _ in $(seq 50); do
    grep -q "listening on" "$HTTP_LOG" && break
    sleep 0.1
done
grep -q "listening on" "$HTTP_LOG" || { cat "$HTTP_LOG"; exit 1; }
curl -s -i "http://127.0.0.1:$DEMO_HTTP_PORT/spring-sale" | tr -d '\r' | sed -n '1,3p'
say "open the short link (snowlink-http logs to $HTTP_LOG):"
echo "http://127.0.0.1:$DEMO_HTTP_PORT/spring-sale"
say "connect with:"
echo "psql -h $PGHOST -p $PGPORT -U postgres snowlink_demo"
