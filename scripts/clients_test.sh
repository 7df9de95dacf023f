#!/usr/bin/env bash
# The Python snippets of README.md's "Using snowlink from applications", run exactly as written
# (psycopg 3 and SQLAlchemy 2, from PyPI, in a virtual environment under target/), against a scratch
# server whose statement log shows what they sent. Prints one line per check.
source "$(dirname "$0")/lib.sh"

PORT=25511
DB=clients
WORK=$PROJECT_DIR/target/clients_test
VENV=$PROJECT_DIR/target/clients-venv
PYTHON_PACKAGES=("psycopg[binary]>=3.2,<4" "SQLAlchemy>=2.0.10,<2.1")

if ! "$VENV/bin/python" -c 'import psycopg, sqlalchemy' 2>/dev/null; then
    # Debian's python3 has the venv module but not ensurepip, which creating one needs.
    python3 -c 'import ensurepip' 2>/dev/null || ensure_debian_packages python3-venv
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "${PYTHON_PACKAGES[@]}"
fi

trap 'cluster_remove "clients-$PG_MAJOR"' EXIT
cluster_remove "clients-$PG_MAJOR"
rm -rf "$WORK"
mkdir -p "$WORK"
cluster_start "clients-$PG_MAJOR" "$PORT" log_statement=all
sql() { psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
sql postgres "CREATE DATABASE $DB" >/dev/null
sql "$DB" "CREATE EXTENSION snowlink; CREATE ROLE app LOGIN IN ROLE snowlink_user; GRANT CREATE ON SCHEMA public TO app" >/dev/null
export DATABASE_URL="postgresql://app@/$DB?host=$PGHOST&port=$PGPORT"

# The ```python blocks of the section, one file each, in order.
python3 - "$PROJECT_DIR/README.md" "$WORK" <<'PYTHON'
import pathlib, re, sys
readme = pathlib.Path(sys.argv[1]).read_text()
section = readme.split("\n## Using snowlink from applications\n", 1)[1].split("\n## ", 1)[0]
python = section.split("\n### Django", 1)[0]  # the snippets that the test runs come first
for number, block in enumerate(re.findall(r"```python\n(.*?)```", python, re.S), 1):
    pathlib.Path(sys.argv[2], f"snippet{number}.py").write_text(block)
PYTHON
check_equal "the README has the psycopg and SQLAlchemy snippets" "$(ls "$WORK"/snippet*.py | wc -l)" 2

server_log=$(cluster_root)/clients-$PG_MAJOR/server.log
statements_so_far() { wc -l <"$server_log"; }

echo "# psycopg 3"
"$VENV/bin/python" "$WORK/snippet1.py" >"$WORK/psycopg.out" 2>&1 && code=0 || code=$?
cat "$WORK/psycopg.out"
check_equal "the psycopg snippet runs" "$code" 0
read -r link_id code url status cache_control ids <"$WORK/psycopg.out"
check_equal "it got the link's ID and code as shorten() made them" \
    "$(sql "$DB" "SELECT id || ' ' || code FROM shortlinks WHERE url = 'https://example.com/docs'")" "$link_id $code"
check_equal "and what an HTTP front answers" "$url $status $cache_control" "https://example.com/docs 302 no-store"

echo "# SQLAlchemy 2"
log_start=$(statements_so_far)
"$VENV/bin/python" "$WORK/snippet2.py" >"$WORK/sqlalchemy.out" 2>&1 && code=0 || code=$?
cat "$WORK/sqlalchemy.out"
check_equal "the SQLAlchemy snippet runs" "$code" 0
check_equal "1,000 orders with distinct snowflake IDs" \
    "$(sql "$DB" "SELECT count(DISTINCT id) || ' ' || bool_and(snowflake_timestamp(id) > now() - interval '1 hour') FROM orders")" \
    "1000 true"
inserts=$(tail -n +"$log_start" "$server_log" | grep -cE '(statement|execute [^:]*): INSERT INTO orders' || true)
check_equal "sent in one INSERT, not one per order" "$inserts" 1
read -r order_id link_id code url <"$WORK/sqlalchemy.out"
check_equal "each object got the ID of its own row" \
    "$(sql "$DB" "SELECT item FROM orders WHERE id = $order_id")" "item 0"
check_equal "shorten() for its columns" \
    "$(sql "$DB" "SELECT id || ' ' || code || ' ' || url FROM shortlinks WHERE url = 'https://example.com/sale'")" \
    "$link_id $code $url"

checks_summary "clients"
