#!/usr/bin/env bash
# Command 1: installs what is missing, builds and installs snowlink, starts a scratch cluster and
# shows the extension at work. `scripts/demo.sh stop` stops the cluster and deletes its data.
source "$(dirname "$0")/lib.sh"

DEMO_PORT=${SNOWLINK_DEMO_PORT:-25415}

if [ "${1:-}" = stop ]; then
    cluster_remove demo
    echo "demo cluster stopped and removed"
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
say "connect with:"
echo "psql -h $PGHOST -p $PGPORT -U postgres snowlink_demo"
