#!/usr/bin/env bash
# The snippets of docs/applications.md, run exactly as written against a scratch server whose
# statement log shows what they sent: psycopg 3 and SQLAlchemy 2 (from PyPI, in a virtual
# environment under target/), node-postgres 8 (from npm, under target/) and tokio-postgres (the
# example program of snowlink-http that holds the page's lines). Prints one line per check.
source "$(dirname "$0")/lib.sh"

PORT=25511
DB=clients
WORK=$PROJECT_DIR/target/clients_test
VENV=$PROJECT_DIR/target/clients-venv
PYTHON_PACKAGES=("psycopg[binary]>=3.2,<4" "SQLAlchemy>=2.0.10,<2.1")
NODE_DIR=$PROJECT_DIR/target/clients-node

if ! "$VENV/bin/python" -c 'import psycopg, sqlalchemy' 2>/dev/null; then
    # Debian's python3 has the venv module but not ensurepip, which creating one needs.
    python3 -c 'import ensurepip' 2>/dev/null || ensure_debian_packages python3-venv
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "${PYTHON_PACKAGES[@]}"
fi
command -v npm >/dev/null || ensure_debian_packages nodejs npm
if ! [ -f "$NODE_DIR/node_modules/pg/package.json" ]; then
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent "pg@8"
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

# The ```python blocks before Django's, one file each, in order; the ```js block, as an ES module
# beside its node_modules; the ```rust block, as the example program has it.
python3 - "$PROJECT_DIR/docs/applications.md" "$WORK" "$NODE_DIR" <<'PYTHON'
import pathlib, re, sys
page = pathlib.Path(sys.argv[1]).read_text()
python = page.split("\n## Django", 1)[0]  # the snippets that the test runs come first
for number, block in enumerate(re.findall(r"```python\n(.*?)```", python, re.S), 1):
    pathlib.Path(sys.argv[2], f"snippet{number}.py").write_text(block)
pathlib.Path(sys.argv[3], "snippet.mjs").write_text(re.search(r"```js\n(.*?)```", page, re.S).group(1))
pathlib.Path(sys.argv[2], "snippet.rs").write_text(re.search(r"```rust\n(.*?)```", page, re.S).group(1))
PYTHON
check_equal "docs/applications.md has the psycopg and SQLAlchemy snippets" "$(ls "$WORK"/snippet*.py | wc -l)" 2

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

echo "# node-postgres"
(cd "$NODE_DIR" && node snippet.mjs) >"$WORK/node.out" 2>&1 && code=0 || code=$?
cat "$WORK/node.out"
check_equal "the node-postgres snippet runs" "$code" 0
link=$(sql "$DB" "SELECT id || ' ' || code FROM shortlinks WHERE url = 'https://example.com/'")
read -r link_id code <<<"$link"
check_equal "it got the ID as a BigInt and the code as shorten() made them, then both in JSON" \
    "$(cat "$WORK/node.out")" "${link_id}n $code
{ id: '$link_id', code: '$code' }"

echo "# tokio-postgres"
example=$PROJECT_DIR/http/examples/tokio_postgres_client.rs
sed -n '/docs\/applications.md: from here/,/docs\/applications.md: to here/p' "$example" |
    sed '1d;$d' | sed 's/^    //' >"$WORK/example.rs"
check_equal "the page shows the lines of http/examples/tokio_postgres_client.rs" \
    "$(diff "$WORK/snippet.rs" "$WORK/example.rs")" ""
(cd "$PROJECT_DIR" && cargo run --quiet -p snowlink-http --example tokio_postgres_client) >"$WORK/rust.out" 2>&1 &&
    code=0 || code=$?
cat "$WORK/rust.out"
check_equal "the tokio-postgres example runs" "$code" 0
check_equal "it got the link's ID and code, and the URL from shortlink_target()" \
    "$(cat "$WORK/rust.out")" "$link https://example.com/"

checks_summary "clients"
