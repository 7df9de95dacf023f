#!/usr/bin/env bash
# pg_dump of a database that uses snowlink, restored into a new database, keeps every link, every
# visit count, the code counter, the code key and the API keys. Runs against the server in
# PGHOST/PGPORT (the test command's scratch cluster) and prints one line per check.
# Usage: scripts/dump_restore_test.sh                   a database made at the current version
#        scripts/dump_restore_test.sh --updated-from V  made at released version V and updated
#                                                       before the dump
#        scripts/dump_restore_test.sh --dumped-at V     dumped at version V (a backup from before
#                                                       the update), restored into a database made
#                                                       at V, then both are updated
source "$(dirname "$0")/lib.sh"

SOURCE_DB=snowlink_dump_source
RESTORED_DB=snowlink_dump_restored
DUMP=$PROJECT_DIR/target/snowlink_dump_test.dump

mode=${1:-}
from_version=${2:-}
case "$mode" in
    "") label="dump and restore" ;;
    --updated-from) label="dump and restore, updated from $from_version before the dump" ;;
    --dumped-at) label="dump and restore, dumped at $from_version and updated after the restore" ;;
    *) echo "usage: $0 [--updated-from VERSION | --dumped-at VERSION]" >&2; exit 2 ;;
esac
if [ -n "$mode" ] && [ -z "$from_version" ]; then
    echo "$0 $mode needs a version" >&2
    exit 2
fi

sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
create_extension() { sql "$1" "CREATE EXTENSION snowlink ${from_version:+VERSION '$from_version'}"; }
update_extension() { sql "$1" "ALTER EXTENSION snowlink UPDATE"; }

for db in "$SOURCE_DB" "$RESTORED_DB"; do
    sql postgres "DROP DATABASE IF EXISTS $db" 2>/dev/null
    sql postgres "CREATE DATABASE $db"
done

create_extension "$SOURCE_DB"
psql -X -q -d "$SOURCE_DB" -f "$PROJECT_DIR/scripts/sample_links.sql" >/dev/null
# What the released versions lack: a title, tags, a domain (the same code as a link of the default
# domain) and an owner handed on.
[ -n "$mode" ] || sql "$SOURCE_DB" "
    SELECT shorten('https://example.com/labelled', code => 'permanent', title => 'Labelled',
                   tags => ARRAY['spring', 'sale'], domain => 's.example.com');
    UPDATE shortlinks SET owner_role = 'shop_app', owner = 'user-42' WHERE domain = 's.example.com'" >/dev/null
[ -n "$mode" ] || api_key=$(sql "$SOURCE_DB" "SELECT snowlink_api_key_create('user-42', note => 'kept by pg_dump')")
[ "$mode" != --updated-from ] || update_extension "$SOURCE_DB"

"$PG_BIN/pg_dump" --format=custom --file="$DUMP" "$SOURCE_DB"
# The dump says CREATE EXTENSION IF NOT EXISTS: an old backup goes into the version it was made
# with, which the update then carries forward like any other database.
[ "$mode" != --dumped-at ] || create_extension "$RESTORED_DB"
"$PG_BIN/pg_restore" --exit-on-error --dbname="$RESTORED_DB" "$DUMP"
if [ "$mode" = --dumped-at ]; then
    update_extension "$SOURCE_DB"
    update_extension "$RESTORED_DB"
fi

# check WHAT QUERY: QUERY gives the same, non-empty answer in both databases.
check() {
    local source
    source=$(sql "$SOURCE_DB" "$2")
    check_equal "$1" "$(sql "$RESTORED_DB" "$2")" "${source:-(nothing in the source database)}"
}

check "the extension's version" \
    "SELECT extversion FROM pg_extension WHERE extname = 'snowlink'"
check "every link, column by column (titles, tags, domains and owners too)" \
    "SELECT count(*), md5(string_agg(s::text, '|' ORDER BY id)) FROM shortlinks AS s"
check "every visit count" \
    "SELECT string_agg(format('%s=%s', code, (shortlink_stats(code)).visits), ',' ORDER BY code) FROM shortlinks"
check "the visit rows" \
    "SELECT count(*), coalesce(sum(visits), 0) FROM shortlink_visits"
check "the code counter" \
    "SELECT last_value, is_called FROM shortlink_code_seq"
check "the code key" \
    "SELECT encode(key, 'hex') FROM shortlink_key"
check "the reserved codes, added ones once" \
    "SELECT string_agg(code || ':' || builtin, ',' ORDER BY code) FROM shortlink_reserved_codes"
if [ -z "$mode" ]; then
    check "the API keys (hashes included)" \
        "SELECT count(*), md5(string_agg(k::text, '|' ORDER BY id)) FROM snowlink_api_keys AS k"
    check "an API key made before the dump" "SELECT owner FROM snowlink_api_key_use('$api_key')"
fi
# The same counter and key give the same next code on both sides, and it is new on both.
check "the next generated code" \
    "SELECT code || ':' || (SELECT count(*) FROM shortlinks WHERE code = s.code) FROM shorten('https://example.com/after-restore') AS s"

sql postgres "DROP DATABASE $SOURCE_DB"
sql postgres "DROP DATABASE $RESTORED_DB"
rm -f "$DUMP"
checks_summary "$label"
