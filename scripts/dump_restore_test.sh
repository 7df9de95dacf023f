#!/usr/bin/env bash
# pg_dump of a database that uses snowlink, restored into a new database, keeps every link, every
# visit count, the code counter and the code key. Runs against the server in PGHOST/PGPORT (the
# test command's scratch cluster) and prints one line per check.
source "$(dirname "$0")/lib.sh"

SOURCE_DB=snowlink_dump_source
RESTORED_DB=snowlink_dump_restored
DUMP=$PROJECT_DIR/target/snowlink_dump_test.dump

sql() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

for db in "$SOURCE_DB" "$RESTORED_DB"; do
    sql postgres "DROP DATABASE IF EXISTS $db" 2>/dev/null
    sql postgres "CREATE DATABASE $db"
done

psql -X -q -v ON_ERROR_STOP=1 -d "$SOURCE_DB" >/dev/null <<'SQL'
CREATE EXTENSION snowlink;
SET snowlink.visit_flush_interval_ms = 0;
SELECT shorten('https://example.com/page/' || n) FROM generate_series(1, 50) AS n;
SELECT shorten('https://example.com/custom', code => 'custom-code', redirect_status => 301);
SELECT shorten('https://example.com/limited', code => 'limited', max_visits => 3);
SELECT shorten('https://example.com/expiring', code => 'expiring', expires_at => now() + interval '1 day',
               valid_from => now() - interval '1 hour');
SET snowlink.code_style = 'snowflake';
SELECT shorten('https://example.com/snowflake-style');
SELECT resolve('custom-code') FROM generate_series(1, 7);
SELECT resolve('limited'), resolve('limited');
SELECT shortlink_disable('expiring');
INSERT INTO shortlink_reserved_codes (code) VALUES ('pricing');
SQL

"$PG_BIN/pg_dump" --format=custom --file="$DUMP" "$SOURCE_DB"
"$PG_BIN/pg_restore" --exit-on-error --dbname="$RESTORED_DB" "$DUMP"

# check WHAT QUERY: QUERY gives the same, non-empty answer in both databases.
check() {
    local source
    source=$(sql "$SOURCE_DB" "$2")
    check_equal "$1" "$(sql "$RESTORED_DB" "$2")" "${source:-(nothing in the source database)}"
}

check "every link, column by column" \
    "SELECT count(*), md5(string_agg(s::text, '|' ORDER BY id)) FROM shortlinks AS s"
check "every visit count" \
    "SELECT string_agg(format('%s=%s', code, (shortlink_stats(code)).visits), ',' ORDER BY code) FROM shortlinks"
check "the per-backend visit rows" \
    "SELECT count(*), coalesce(sum(visits), 0) FROM shortlink_visits"
check "the code counter" \
    "SELECT last_value, is_called FROM shortlink_code_seq"
check "the code key" \
    "SELECT encode(key, 'hex') FROM shortlink_key"
check "the reserved codes, added ones once" \
    "SELECT string_agg(code || ':' || builtin, ',' ORDER BY code) FROM shortlink_reserved_codes"
# The same counter and key give the same next code on both sides, and it is new on both.
check "the next generated code" \
    "SELECT code || ':' || (SELECT count(*) FROM shortlinks WHERE code = s.code) FROM shorten('https://example.com/after-restore') AS s"

sql postgres "DROP DATABASE $SOURCE_DB"
sql postgres "DROP DATABASE $RESTORED_DB"
rm -f "$DUMP"
checks_summary "dump and restore"
