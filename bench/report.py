"""Turns bench/run.sh's results into BENCHMARKS.md and a plot of the main comparisons.

Every comparison is a ratio against a baseline from the same run: the machines are shared, so
absolute numbers say little on their own.
"""

import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CEILING = 4_096_000  # snowflake IDs per second per backend: 4096 per millisecond

(results_path, markdown_path, png_path, mode, cores, cpu, version, settings, sizes) = sys.argv[1:10]

values = defaultdict(dict)
with open(results_path) as results:
    for row in csv.DictReader(results, delimiter="\t"):
        values[row["section"]][row["name"]] = float(row["value"] or "nan")


def ratio(numerator, denominator):
    return numerator / denominator if denominator else float("nan")


lines = [
    "# Benchmarks",
    "",
    "Written by `bench/run.sh" + (" --short" if mode == "short" else "") + "`; do not edit by hand.",
    "Each comparison is a ratio against a baseline measured in the same run, on the same cluster.",
    "",
    "## Machine",
    "",
    f"- {cores} cores: {cpu}",
    f"- PostgreSQL {version}, scratch cluster with default settings: {settings}",
    f"- mode `{mode}`: {sizes}",
    "",
    "Commands: `bench/run.sh` (full) or `bench/run.sh --short`. SQL timings are the best of three",
    "runs of `SELECT count(f) FROM generate_series(1, N)` through psql's `\\timing`; concurrent numbers",
    "are `pgbench -n -M prepared -c C -j C -T SECONDS -f bench/pgbench/SCRIPT.sql`. In sections 2 and 5",
    "the scripts compared run one after the other, in rounds (every other round in reverse order),",
    "and each number is the median of its runs, so that a noisy stretch of this shared machine falls",
    "on all of them alike.",
    "",
    "![main comparisons](bench/benchmarks.png)",
    "",
]

bulk = values["bulk"]
nextval_rate = bulk["nextval('bench_seq')"]
lines += [
    "## 1. IDs in bulk, one backend",
    "",
    "| function | IDs per second | vs `nextval()` | of the ceiling |",
    "| --- | ---: | ---: | ---: |",
]
for name, rate in bulk.items():
    if name.startswith("floor"):
        continue
    ceiling = f"{rate / CEILING:.2f}" if name.startswith("snowflake_next()") else ""
    lines.append(
        f"| `{name}` | {rate:,.0f} | {ratio(rate, nextval_rate):.2f} | {ceiling} |"
    )
lines += [
    f"| floor: `count(*)` over the series, no function | {bulk['floor: count(*)']:,.0f} | | |",
    "",
    "The ceiling is 4,096,000 IDs per second per backend (4096 per millisecond); the goal is 0.9 of",
    "it. `generate_series()` in `FROM` is materialized before the scan, so that query's time is the",
    "floor plus the IDs; with the series in the select list (`streaming series`) the rows stream and",
    "the time is that of the IDs.",
    "",
]

concurrent = values["concurrent"]
lines += [
    "## 2. IDs from concurrent clients",
    "",
    "| clients | `snowflake_next()` tps | `nextval()` tps | ratio | snowflake scaling vs 1 client |",
    "| ---: | ---: | ---: | ---: | ---: |",
]
one_client = concurrent["snowflake_next c=1"]
for clients in (1, 2, 4):
    snowflake = concurrent[f"snowflake_next c={clients}"]
    nextval = concurrent[f"nextval c={clients}"]
    lines.append(
        f"| {clients} | {snowflake:,.0f} | {nextval:,.0f} | {ratio(snowflake, nextval):.2f} "
        f"| {ratio(snowflake, one_client):.2f} |"
    )
lines.append("")

lines += [
    "### The first ID of a new connection",
    "",
    "`pgbench --connect`: every transaction opens a connection, draws one ID and closes it, as with",
    "a connection per request (PHP-FPM, serverless functions). Each new backend loads the library",
    "(unless the postmaster has, with `shared_preload_libraries`), claims a node and reads its",
    "high-water mark before its first ID. The last rows run on a second cluster, of the newest",
    "PostgreSQL that snowlink supports.",
    "",
    "| PostgreSQL | library | clients | `snowflake_next()` tps | `nextval()` tps | ratio (goal 0.85) |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
]
newest_version_num = values.get("new_connection_newest", {}).get("server_version_num")
for section, server, library in (
    ("new_connection", version.split()[0], "loaded by each backend (default)"),
    ("new_connection_preloaded", version.split()[0], "`shared_preload_libraries = 'snowlink'`"),
    (
        "new_connection_newest",
        newest_version_num and f"{newest_version_num // 10000:.0f}.{newest_version_num % 100:.0f}",
        "loaded by each backend (default)",
    ),
):
    if section not in values:
        continue
    for clients in (1, 2):
        snowflake = values[section][f"snowflake_next c={clients}"]
        nextval = values[section][f"nextval c={clients}"]
        lines.append(
            f"| {server} | {library} | {clients} | {snowflake:,.0f} | {nextval:,.0f} "
            f"| {ratio(snowflake, nextval):.2f} |"
        )
lines.append("")

insert, index_size, insert_concurrent = values["insert"], values["index_size"], values["insert_concurrent"]
lines += [
    "## 3. Inserts",
    "",
    "| primary key | rows/s, one INSERT ... SELECT | vs bigserial | pkey size | single-row inserts, 4 clients (tps) | vs bigserial |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
]
for key, label in (
    ("snowflake", "`bigint DEFAULT snowflake_next()`"),
    ("bigserial", "`bigserial`"),
    ("uuid", "`uuid DEFAULT gen_random_uuid()`"),
    ("instagram", "`bigint DEFAULT instagram_id()` (PL/pgSQL)"),
):
    lines.append(
        f"| {label} | {insert[key]:,.0f} | {ratio(insert[key], insert['bigserial']):.2f} "
        f"| {index_size[key] / 1048576:.1f} MiB | {insert_concurrent[key + ' c=4']:,.0f} "
        f"| {ratio(insert_concurrent[key + ' c=4'], insert_concurrent['bigserial c=4']):.2f} |"
    )
lines.append("")

base62 = values["base62"]
floor_ns = base62["floor: count(i)"]
lines += [
    "## 4. base62",
    "",
    "| expression | ns per row | ns per call (floor subtracted) |",
    "| --- | ---: | ---: |",
]
for name, ns in base62.items():
    lines.append(f"| `{name}` | {ns:,.0f} | {'' if name.startswith('floor') else f'{ns - floor_ns:,.0f}'} |")
lines += ["", "The decode rows include one `base62_encode` to make their input.", ""]

shorten, resolve = values["shorten"], values["resolve"]
lines += [
    "## 5. Short links",
    "",
    f"`shorten()`: {shorten['shorten c=2']:,.0f} tps against {shorten['plain_shorten c=2']:,.0f} for a",
    "hand-written insert into a table with a `nextval()`-based code (2 clients): "
    f"{ratio(shorten['shorten c=2'], shorten['plain_shorten c=2']):.2f}; against "
    f"{shorten['plain_tenant_shorten c=2']:,.0f} for the same insert into a hand-written table for many tenants",
    "(an owner column with its index, GIN-indexed tags, a row-level security policy on the owner): "
    f"{ratio(shorten['shorten c=2'], shorten['plain_tenant_shorten c=2']):.2f}. All three run as an application role",
    "in `snowlink_user`, so `shorten()` and `resolve()` run under the row-level security of",
    "`shortlinks` (docs/links.md, \"Owners\"); measured in turn, `shorten()` as that role made "
    f"{shorten['shorten, row-level security c=2']:,.0f} tps against {shorten['shorten, owner c=2']:,.0f} as the extension's owner, whom",
    f"row-level security does not apply to: {ratio(shorten['shorten, row-level security c=2'], shorten['shorten, owner c=2']):.2f}.",
    "",
    "| clients | plain SELECT, distinct codes | `resolve()`, distinct | ratio (goal 0.8) | plain SELECT, one hot code | `resolve()`, hot | hot / distinct |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for clients in (1, 2, 4):
    plain_distinct = resolve[f"plain_distinct c={clients}"]
    resolve_distinct = resolve[f"resolve_distinct c={clients}"]
    plain_hot = resolve[f"plain_hot c={clients}"]
    resolve_hot = resolve[f"resolve_hot c={clients}"]
    lines.append(
        f"| {clients} | {plain_distinct:,.0f} | {resolve_distinct:,.0f} | {ratio(resolve_distinct, plain_distinct):.2f} "
        f"| {plain_hot:,.0f} | {resolve_hot:,.0f} | {ratio(resolve_hot, resolve_distinct):.2f} |"
    )
lines.append("")

visits = values["visits"]
lines += [
    "## 5b. Visits",
    "",
    f"A visit shows in `shortlink_stats()` {visits['lag c=1']:,.0f} ms after its `resolve()` (median of",
    "20, polled every 10 ms; the visit writer writes every `snowlink.visit_flush_interval_ms`, 1 s).",
    "",
    f"A link with `max_visits`, whose every visit the visit writer counts and commits before",
    f"`resolve()` returns: {visits['resolve_limited c=2']:,.0f} tps against "
    f"{visits['resolve_hot c=2']:,.0f} for a link without (2 clients): "
    f"{ratio(visits['resolve_limited c=2'], visits['resolve_hot c=2']):.2f}.",
    "",
]

imported = values["import"]
import_rows = int(sizes.split("IMPORT_ROWS=")[1].split()[0])
lines += [
    "## 6. Importing links",
    "",
    f"`shortlinks_import()` of {import_rows:,} links with their own codes from a table: "
    f"{imported['shortlinks_import()'] / 1000:.1f} s, with the URL checks and normal form of `shorten()`, a",
    "snowflake ID for each link and every row refused reported (goal for 1,000,000: under 30 s).",
    f"The same rows in a plain `INSERT ... SELECT` into a table with a unique code: "
    f"{imported['plain INSERT ... SELECT'] / 1000:.1f} s.",
    "",
]

http = values["http"]
lines += [
    "## 7. Redirects over HTTP",
    "",
    "`wrk` (2 threads) against `snowlink-http`, and against the same server answering from",
    "`SELECT url FROM plain_links WHERE code = $1` (`http/examples/plain_redirects.rs`: always 302,",
    "nothing counted), each redirecting random codes of the 10,000 links of section 5; server,",
    "database and `wrk` share the machine (goal: 0.9 or more).",
    "",
    "| connections | plain SELECT, redirects/s | `snowlink-http`, redirects/s | ratio |",
    "| ---: | ---: | ---: | ---: |",
]
for connections in (8, 32):
    plain = http[f"http_plain c={connections}"]
    snowlink = http[f"http_snowlink c={connections}"]
    lines.append(f"| {connections} | {plain:,.0f} | {snowlink:,.0f} | {ratio(snowlink, plain):.2f} |")
lines.append("")

scale, scale_bytes, scale_load = values["scale"], values["scale_bytes"], values["scale_load"]
scale_links = int(sizes.split("SCALE_LINKS=")[1].split()[0])
lines += [
    f"## 8. At {scale_links:,} links",
    "",
    f"{scale_links:,} links loaded into `shortlinks` with one `INSERT ... SELECT` "
    f"({scale_load['shortlinks'] / 1000:.0f} s; the same rows into the plain table: "
    f"{scale_load['plain table'] / 1000:.0f} s), then `resolve()` on codes drawn uniformly and from a",
    "Zipf distribution (`random_zipfian`, parameter 1.07: a few hot links), against a plain SELECT on a",
    "table with the same codes and URLs (goal: 0.9 or more).",
    "",
    "| clients | plain, uniform | `resolve()`, uniform | ratio | plain, Zipf | `resolve()`, Zipf | ratio |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for clients in (1, 2, 4):
    plain_uniform = scale[f"scale_plain_uniform c={clients}"]
    resolve_uniform = scale[f"scale_resolve_uniform c={clients}"]
    plain_zipf = scale[f"scale_plain_zipf c={clients}"]
    resolve_zipf = scale[f"scale_resolve_zipf c={clients}"]
    lines.append(
        f"| {clients} | {plain_uniform:,.0f} | {resolve_uniform:,.0f} | {ratio(resolve_uniform, plain_uniform):.2f} "
        f"| {plain_zipf:,.0f} | {resolve_zipf:,.0f} | {ratio(resolve_zipf, plain_zipf):.2f} |"
    )
lines += [
    "",
    f"`shorten()` with 2 clients: {scale['shorten c=2']:,.0f} tps beside these links, against "
    f"{scale['shorten_10000 c=2']:,.0f} in a database with 10,000 links, measured in turn: "
    f"{ratio(scale['shorten c=2'], scale['shorten_10000 c=2']):.2f} (goal: 0.9 or more).",
    "",
    "| bytes per link | table | indexes | total |",
    "| --- | ---: | ---: | ---: |",
]
for table, label in (("shortlinks", "`shortlinks`"), ("plain_scale", "plain table (code, url, created_at)")):
    table_bytes = scale_bytes[f"{table} table"]
    index_bytes = scale_bytes[f"{table} indexes"]
    lines.append(f"| {label} | {table_bytes:,.0f} | {index_bytes:,.0f} | {table_bytes + index_bytes:,.0f} |")
lines += [
    "",
    "`shortlinks` has more columns (ID, validity, limits, status, folded visits, title, tags, owner,",
    "domain) and more indexes: the primary key on the ID, the unique code of a domain, a hash index on",
    "the URL that lets `shorten()` find the live link of a URL, the owners' and the tags'; the plain",
    "table has the code's only.",
    "",
]
listing = values["list"]
lines += [
    f"`shortlinks_list()` (50 links a page) as the application role that owns the {scale_links:,} links,",
    "under row-level security, the best of three calls in one session, in ms:",
    "",
    "| page | ms |",
    "| --- | ---: |",
]
for name, label in (
    ("newest page", "the newest links"),
    ("middle page", "after the ID of the middle link (keyset: as fast however deep)"),
    ("tag", "with a tag that one link in a hundred has"),
    ("search, frequent", "searching text that half the links hold (`7`): the page fills at once"),
    ("search, no match", "searching text that no link holds: every link of the owner is read"),
):
    lines.append(f"| {label} | {listing[name]:,.1f} |")
lines.append("")

if "citus" in values:
    citus = values["citus"]
    nodes = ("one_server", "coordinator", "worker1")

    def tps(script, node):
        return citus[f"{script}@{node} c=2"]

    def ratio_row(label, script, baseline):
        cells = " | ".join(f"{ratio(tps(script, node), tps(baseline, node)):.2f}" for node in nodes)
        return f"| {label} | {cells} |"

    lines += [
        "## 9. On Citus",
        "",
        "A coordinator and two workers on this machine (Citus 13.2.2, `shortlinks_distribute()`: 32",
        "shards) holding the 10,000 links of section 5, against one server with a database of 10,000",
        "links; 2 clients connected to the coordinator, or to a worker (which holds half the shards).",
        "The three servers share the machine's two cores with the clients. On each node the reads run",
        "in turn with each other, and the writes with each other. The plain SELECT is",
        "`SELECT url FROM shortlinks WHERE code = $1`, which Citus sends to the code's shard; the",
        "SELECT of the link's columns reads the eight columns that decide where and whether a link",
        "redirects, which is what `resolve()` reads on Citus.",
        "",
        "| 2 clients, tps | one server | coordinator | worker |",
        "| --- | ---: | ---: | ---: |",
    ]
    for script, label in (
        ("plain_shortlinks_distinct", "plain SELECT on `shortlinks`"),
        ("plain_shortlinks_columns", "SELECT of the link's columns"),
        ("resolve_distinct", "`resolve()`"),
        ("shorten", "`shorten(..., force_new => true)`"),
        ("shorten_shared", "`shorten()` of a new URL"),
    ):
        cells = " | ".join(f"{tps(script, node):,.0f}" for node in nodes)
        lines.append(f"| {label} | {cells} |")
    lines += [
        ratio_row("`resolve()` / plain SELECT", "resolve_distinct", "plain_shortlinks_distinct"),
        ratio_row("`resolve()` / SELECT of the link's columns", "resolve_distinct", "plain_shortlinks_columns"),
        ratio_row("`shorten()` of a new URL / `force_new`", "shorten_shared", "shorten"),
        "",
        "On Citus `resolve()` reads the link's columns through Citus, from the link's shard, where",
        "one server reads the index itself; both count the visit. Through Citus each column that a",
        "query returns cost 1 to 2% of the plain SELECT's throughput when profiled on this machine",
        "(planned, sent and read back at every call): most of the gap between `resolve()` and the",
        "plain SELECT. `shorten()`",
        "with `force_new` inserts into one shard; without it, it also locks the URL's row in",
        "`shortlink_url_locks` and looks for its live link in `shortlink_url_links`, both on the",
        "shard of the URL's hash.",
        "",
    ]

# Filled in by bench/peers_report.py, from the runs of bench/peers.sh.
lines += [
    "## Beside the peers",
    "",
    "`bench/peers.sh MAJOR` (which `bench/run.sh` runs for 15 and for the newest PostgreSQL) builds",
    "pgEdge's snowflake extension from `../shared/vendor/pgedge-snowflake/` and measures it beside",
    "`snowflake_next()`, `nextval()`, `gen_random_uuid()` and, from 18, `uuidv7()`, on a scratch",
    "server of its own: five rounds (three for the INSERTs), the candidates in turn, every other",
    "round in reverse order, medians; neither extension's library preloaded but in the row that",
    "says so. The last column is snowlink's figure against pgEdge's, above 1 where snowlink is",
    "faster or smaller. In one statement both generators are at the layout's limit of 4,096 IDs per",
    "millisecond (1M IDs span 244 ms): pgEdge gets under it by stamping IDs up to 34 ms ahead of the",
    "clock, where snowlink waits for the clock. A new connection's first ID loads each library:",
    "snowlink's is 2.1 MB for the dynamic loader to relocate, pgEdge's 66 KB.",
    "",
    "<!-- peers: begin -->",
    "<!-- peers: end -->",
    "",
]

lines += [
    "## What the numbers say, and what was done about them",
    "",
    "- **Bulk IDs.** During the scan `snowflake_next()` runs at the ceiling: `perf` showed the",
    "  backend spinning in `clock_gettime()` until the next millisecond, with 4096 IDs per millisecond",
    "  used up. The issue's query, `SELECT count(snowflake_next()) FROM generate_series(1, N)`, first",
    "  materializes the series into a tuplestore (spilled to a temporary file beyond `work_mem`); that",
    "  time adds to the IDs' time instead of overlapping it, so the query cannot reach 0.9 of the",
    "  ceiling on this machine whatever the function costs. With the series in the select list the",
    "  rows stream and the IDs reach 0.97 to 0.99 of it. Replacing `SystemTime` with a direct",
    "  `clock_gettime()` or dropping the thread-local made no measurable difference.",
    "- **resolve().** The first version was PL/pgSQL: a SECURITY DEFINER SQL wrapper over a",
    "  SECURITY DEFINER PL/pgSQL function, about 0.4 of the plain SELECT. Measured variants, one client:",
    "  the same lookup in plain PL/pgSQL reached 0.74; SECURITY DEFINER cost about 5% of the plain",
    "  SELECT's throughput, the per-call `SET search_path` about 9%, the nested call 3%, and a SQL",
    "  (not PL/pgSQL) definer wrapper is planned on every call. A Rust `resolve()` running one",
    "  schema-qualified query through SPI reached 0.55 to 0.75: `perf` put the rest in the second",
    "  executor run per call. `resolve()` now runs no query: it reads the link with its own scan of",
    "  the unique index on `shortlinks.code` and keeps the table's layout until PostgreSQL",
    "  invalidates it. With visits left unwritten (flush interval one hour) that matched the plain",
    "  SELECT (1.03, one client).",
    "- **Writing visits** was then the whole gap: with 10,000 distinct codes a backend writes several",
    "  thousand `shortlink_visits` rows a second, `perf` put 14 to 16% of the backend's time there.",
    "  Timed on 10,000-row flushes: `shortlink_visits` at fillfactor 50, so that each flush updates",
    "  rows in place (HOT updates from 2% to 99.7% of all, the table 1.4 MB instead of 7.9 MB), took",
    "  a flush from 130-180 ms to about 75 ms; updating existing rows with a plain `UPDATE` before",
    "  `INSERT ... ON CONFLICT` for new ones took it to about 31 ms. At a flush a second, `resolve()`",
    "  on distinct codes still measured 0.78 to 0.83 with 2 and 4 clients, `perf` putting 7% of the",
    "  backend's time in the flush. `snowlink.visit_flush_interval_ms` now defaults to 10 s: the same",
    "  visits in fewer, fuller rows (a backend also writes at once when it holds 10,000 links, and",
    "  at exit). `bench/resolve.sh 6 2` then measured 0.93.",
    "- **The visit writer** (0.2.0) took the writing out of the backends: `resolve()` appends the",
    "  visit to a ring in a shared file, and one background worker per database writes every",
    "  second. `bench/resolve.sh 4 1 2 4` (3 rounds) measured 0.97, 0.93 and 1.03 with 1, 2 and 4",
    "  clients on distinct codes, 1.19 to 1.04 on one hot code against distinct ones. A session in",
    "  `snowlink.visit_write_mode = transaction`, which writes with every transaction, measured 0.07.",
    "- **Rings full within a second** (0.3.0). A ring holds 65,536 visits, which the writer freed when",
    "  its write committed, once a second: a backend resolving more than about 50,000 links a second",
    "  filled its ring first and wrote the rest of its visits itself, a write and a WAL flush per",
    "  transaction. On a day when this machine ran the plain SELECT at 160,000 to 180,000 a second with",
    "  2 clients, `resolve()` ran at 0.61 of it (medians of 6 alternating rounds, about 1,900 WAL",
    "  flushes in 5 s of `resolve()`). The writer now writes at once when it holds half of a backend's",
    "  ring: 0.82 in the same rounds, 3 to 8 WAL flushes in 5 s.",
    "- **The first ID of a new connection.** Until 0.2.0 a backend that claimed a node waited",
    "  `snowlink.max_clock_backward_ms` + 1 ms before its first ID: a short run of this suite",
    "  measured 0.39 and 0.62 of `nextval()` with 1 and 2 clients. The high-water marks removed the",
    "  wait; the first ID itself (node claim, high-water mark file) now costs less than `nextval()`'s",
    "  first call, which opens the sequence. What remains on PostgreSQL 15 is loading the library",
    "  into each new backend. Measured by hand with one client (`pgbench --connect`, median of 9",
    "  runs of 2 s in turn; the whole set twice): a connection running `SELECT 1` took 2.65 and",
    "  3.83 ms, `nextval()` 2.98 and 4.61, `LOAD 'tablefunc'` (a small C library) 2.92 and 4.55,",
    "  `LOAD 'snowlink'` 3.80 and 5.29, the same for a build of snowlink that registers no settings",
    "  3.22 and 4.88, and `snowflake_next()` 3.92 and 5.46. So 0.4 to 0.6 ms is PostgreSQL 15 registering",
    "  snowlink's eight settings (it sorts its whole list of some 350 settings for each setting",
    "  added; PostgreSQL 16 replaced the list with a hash table), and 0.3 ms is loading a 1.4 MB",
    "  library instead of a small one (`perf` saw the dynamic loader's symbol lookups and page",
    "  faults; a build that binds its calls lazily, so that loading looks up 89 of its 200 imported",
    "  symbols, loaded no faster: 209 and 223 connections a second against 211 and 221). On",
    "  PostgreSQL 18 (the table's last rows) `LOAD 'snowlink'` costs what `LOAD 'tablefunc'` costs,",
    "  and the first ID of a new connection ran at 0.94 to 1.03 of `nextval()`. On 15,",
    "  `shared_preload_libraries` lets the postmaster load the library once for every backend. Each",
    "  transaction here is a whole connection of 3 to 5 ms on a shared machine, so these ratios move",
    "  between runs (0.66 to 0.89 on 15 without preloading, 0.89 to 1.06 with it). Against",
    "  pgEdge's snowflake (see \"Beside the peers\"), `strace` of a backend put 0.1 ms of the gap in",
    "  the dynamic loader relocating a 2.1 MB library with 237 imported symbols, where pgEdge's is",
    "  66 KB. A build that defined six of the nine settings at their first read instead of at load",
    "  cut `LOAD` on 15 from 0.31 to 0.17 ms, but could not be kept: parallel-safe functions read",
    "  some of them in parallel mode, where PostgreSQL refuses to take over a value set before the",
    "  definition, and the SQL of 0.1.0 and 0.2.0 reads `snowlink.code_style` by name; deferring",
    "  the two that could wait gained nothing measurable. On 15 the settings' share shows without a",
    "  special build: a server that lists snowlink's nine settings in postgresql.conf (at their",
    "  defaults) gives every backend a placeholder for each, and a setting that replaces a placeholder",
    "  is not sorted in. With `pgbench --connect` (runs of 3 to 5 s in turn, release build, neither",
    "  library preloaded) that took `LOAD 'snowlink'` from 0.28 ms above pgEdge's `LOAD 'snowflake'` to",
    "  0.12 ms, and the first ID from 0.81 to 0.92 of pgEdge's to 0.97: about 0.15 ms of settings, and",
    "  loading the larger library is the rest. A backend's first `snowflake_next()` after the load",
    "  costs no more than pgEdge's first `snowflake.nextval()`.",
    "- **Hot links.** One code against distinct codes stays at or above 1: visits go through the",
    "  visit writer, which writes each link's row once a second, so clients never queue on a row lock.",
    "- **shorten()** does more than the hand-written insert: URL checks and normal form, the keyed",
    "  code, and a hash index entry on the URL. Section 5 calls it with `force_new`; without it,",
    "  `shorten()` also takes the URL's row lock in `shortlink_url_locks` and looks for a live link",
    "  of the URL, which section 9 measures on one server too. Since 0.3.0 it also stores an owner,",
    "  title, tags and domain, with an index on owners and a GIN index on tags, and as an application",
    "  role its row passes the row-level security checks (the owner, the ID, the reserved codes, the",
    "  normal forms). Measured by hand, per transaction (one client, `synchronous_commit` off): written",
    "  in PL/pgSQL, and reading the reserved codes and the code key with a query at every call, it took",
    "  about 184 µs, against 118 µs for a bare INSERT into `shortlinks` as the same role and 70 to 80",
    "  µs for the hand-written insert; each read of such a small table cost about 15 µs (its lock, the",
    "  plan's check, an executor), and PL/pgSQL's expressions, prepared again in every transaction,",
    "  most of the rest. Written in Rust, its two statements kept per backend and those tables kept in",
    "  memory until a trigger says they changed, it went from 0.77 to 0.83 of the hand-written insert.",
    "  Counted in instructions (callgrind, one backend, 1,000 calls), that `shorten()` ran 424,000 per",
    "  call, the hand-written insert 43,000. PostgreSQL parses and prepares a table's CHECK",
    "  constraints and the expressions of its policies again for every statement: the three CHECKs",
    "  took 63,000 (the list of statuses, an array folded anew each time, most of it) and the policies",
    "  of a new row 70,000, as the SQL functions in them were inlined into some twenty calls, each",
    "  with its privilege check. With the status check, the policies' test of a row and the owner",
    "  in C, one call each, `shorten()` runs 318,000. The GIN index on tags had an entry for every",
    "  link's empty array, 166 bytes of write-ahead log per link; holding only links with tags, a new",
    "  link writes 650 bytes of it (the hand-written insert 240, the many-tenant one 510). In this",
    "  file's run that took `shorten()` to 0.89 of the hand-written insert (0.83 in the run before).",
    "- **Redirects over HTTP.** Both servers spend the same on HTTP and the connection pool; what",
    "  differs is `shortlink_target()` against the plain SELECT, and the visit writer. Written first",
    "  with pgrx's value-per-call iterator, `shortlink_target()` ran at 0.85 of `resolve()` (pgbench)",
    "  and the server at 0.82 of the baseline (a short run, 8 connections); as a set-returning function",
    "  that hands its row over in a tuple store it runs within noise of `resolve()`. wrk, server and",
    "  database share two cores: four full runs measured 1.00 and 0.99, 1.06 and 0.86, 0.97 and 0.89,",
    "  then 0.99 and 0.88 (8 and 32 connections).",
    "- **At 10 million links** `shorten()` keeps its rate (0.90 in this run, 0.92 and 0.89 in the two",
    "  before, measured in turn with a database of 10,000 links; compared with section 5, measured a",
    "  quarter of an hour apart, earlier runs gave anything from 0.77 to 1.00), but `resolve()` falls",
    "  to 0.67 to 0.87 of the plain SELECT on uniform codes (0.74 to 1.00 on Zipf codes; 0.63 to 0.98",
    "  and 0.74 to 1.05 over the last five runs), lowest with 2 and 4 clients: the goal of 0.9 is not",
    "  reached.",
    "  Measured by hand at 2 million links: a plain SELECT on `shortlinks` itself runs at 0.90 of the",
    "  same SELECT on the narrow plain table (its rows and indexes take twice the bytes, so more of each",
    "  lookup misses the caches; `shared_buffers` is 128 MB here), and `resolve()` at 0.88 of that",
    "  SELECT on `shortlinks`. The rest is counting: on uniform codes nearly every visit is a new",
    "  `shortlink_visits` row (at fillfactor 50, about 170 bytes), which the writer inserts with its",
    "  index entry and WAL on the same two cores, and autovacuum then visits.",
    "",
]

with open(markdown_path, "w") as markdown:
    markdown.write("\n".join(lines))

figure, axes = plt.subplots(2, 3, figsize=(20, 10))
figure.suptitle(f"snowlink benchmarks ({mode} mode, {cores} cores, PostgreSQL {version})")


def bars(axis, title, labels, heights, unit):
    axis.barh(labels, heights, color="#4c72b0")
    axis.set_title(title)
    axis.set_xlabel(unit)
    axis.tick_params(axis="x", labelrotation=30)  # large counts would overlap
    axis.invert_yaxis()


bars(axes[0][0], "1. IDs in bulk, one backend", list(bulk), list(bulk.values()), "per second")
axes[0][0].axvline(CEILING, color="#c44e52", linestyle="--", label="ceiling")
axes[0][0].legend()
for script in ("snowflake_next", "nextval"):
    axes[0][1].plot((1, 2, 4), [concurrent[f"{script} c={c}"] for c in (1, 2, 4)], marker="o", label=script)
axes[0][1].set_title("2. IDs, concurrent clients")
axes[0][1].set_xlabel("clients")
axes[0][1].set_ylabel("transactions per second")
axes[0][1].legend()
bars(axes[0][2], "3. One INSERT ... SELECT", list(insert), list(insert.values()), "rows per second")
bars(axes[1][0], "3. Primary-key index size", list(index_size), [v / 1048576 for v in index_size.values()], "MiB")
bars(axes[1][1], "4. base62", list(base62), list(base62.values()), "ns per row")
for script in ("plain_distinct", "resolve_distinct", "plain_hot", "resolve_hot"):
    axes[1][2].plot((1, 2, 4), [resolve[f"{script} c={c}"] for c in (1, 2, 4)], marker="o", label=script)
axes[1][2].set_title("5. resolve() against a plain SELECT")
axes[1][2].set_xlabel("clients")
axes[1][2].set_ylabel("transactions per second")
axes[1][2].legend()
figure.tight_layout()
figure.savefig(png_path, dpi=80)
