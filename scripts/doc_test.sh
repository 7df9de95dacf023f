#!/usr/bin/env bash
# The examples of README.md and docs/: every ```sql block runs, page after page in the order the
# README maps them, in one fresh database of a scratch server (so that the pages chain as a
# reader's session would: the README's five-minute start makes the extension and the link
# 'spring-sale'), and each result a page shows must be what the server returns
# (scripts/doc_test.py says how a page shows one). Then docs/reference.md against the catalog, and
# the links between the pages. Prints one line per block and check.
source "$(dirname "$0")/lib.sh"

PORT=25521
PAGES=(README.md docs/install.md docs/ids.md docs/choosing-an-id.md docs/codes.md docs/links.md docs/http.md
    docs/applications.md docs/operations.md docs/citus.md docs/design.md docs/reference.md)

trap 'cluster_remove "docs-$PG_MAJOR"' EXIT
cluster_remove "docs-$PG_MAJOR"
cluster_start "docs-$PG_MAJOR" "$PORT"
cd "$PROJECT_DIR"
psql -X -q -d postgres -c "CREATE DATABASE docs"
report=$(cluster_root)/docs-$PG_MAJOR/report
for page in "${PAGES[@]}"; do
    if ! python3 "$PROJECT_DIR/scripts/doc_test.py" "$page" -- "$PG_BIN/psql" -X -q -d docs >"$report" 2>&1; then
        echo "FAILED: $page: the runner stopped" >>"$report"
    fi
    cat "$report"
    CHECKS_PASSED=$((CHECKS_PASSED + $(grep -c '^ok:' "$report" || true)))
    CHECKS_FAILED=$((CHECKS_FAILED + $(grep -c '^FAILED:' "$report" || true)))
done

# docs/reference.md lists each function of the extension once, as the catalog has it: its
# ```text blocks against pg_proc (defaults without their casts).
catalog=$(psql -X -At -d docs <<'SQL'
SELECT p.proname || '(' || regexp_replace(pg_get_function_arguments(p.oid), '::[a-z ]+(\[\])?', '', 'g')
       || ') → ' || pg_get_function_result(p.oid)
FROM pg_proc AS p
JOIN pg_depend AS d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension AS e ON e.oid = d.refobjid AND e.extname = 'snowlink'
WHERE p.pronamespace = e.extnamespace
ORDER BY 1;
SQL
)
documented=$(awk '/^```text$/ { block = 1; next } /^```$/ { block = 0 } block' docs/reference.md | LC_ALL=C sort)
check_equal "docs/reference.md has every function of the extension, and no other" \
    "$(diff <(LC_ALL=C sort <<<"$catalog") <(echo "$documented"))" ""
check_equal "every link between the pages leads to a file and heading that exist" \
    "$(python3 scripts/doc_links.py README.md CONTRIBUTING.md CHANGELOG.md BENCHMARKS.md docs/*.md)" ""
checks_summary "docs"
