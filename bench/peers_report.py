#!/usr/bin/env python3
"""Turns the results of bench/peers.sh (target/bench/peers-pgMAJOR.tsv) into the tables of
snowlink beside its peers, between the markers <!-- peers: begin --> and <!-- peers: end --> of
each file named.

Usage: bench/peers_report.py RESULTS_DIR FILE...
"""

import csv
import pathlib
import re
import sys

CANDIDATES = {
    "snowflake_next": "`snowflake_next()`",
    "pgedge": "pgEdge `snowflake.nextval()`",
    "nextval": "`nextval()`",
    "gen_random_uuid": "`gen_random_uuid()`",
    "uuidv7": "`uuidv7()`",
}
# Each measure: its label, whether more is better, and how a value is written.
MEASURES = [
    ("statement_ms", "1M IDs in one statement, ms", False, "{:,.1f}"),
    ("pgbench_c1", "pgbench `SELECT` of one ID, 1 client, tps", True, "{:,.0f}"),
    ("pgbench_c2", "the same, 2 clients, tps", True, "{:,.0f}"),
    ("connect_c1", "pgbench `--connect` (a new connection per ID), 1 client, tps", True, "{:,.0f}"),
    ("connect_c2", "the same, 2 clients, tps", True, "{:,.0f}"),
    ("connect_preloaded_c1", "the same, 1 client, `shared_preload_libraries = 'snowlink'`, tps", True, "{:,.0f}"),
    ("insert_s", "INSERT of 1M rows, the ID as the primary key's DEFAULT, s", False, "{:,.3f}"),
    ("pkey_bytes", "its primary key's index, MiB", False, "{:,.1f}"),
]


def read(path):
    values = {}
    with open(path, newline="") as results:
        for row in csv.DictReader(results, delimiter="\t"):
            values[(row["measure"], row["candidate"])] = row["value"]
    return values


def table(values):
    present = [name for name in CANDIDATES if (("insert_s", name) in values)]
    lines = [
        "| measure | " + " | ".join(CANDIDATES[name] for name in present) + " | snowlink vs pgEdge |",
        "| --- |" + " ---: |" * (len(present) + 1),
    ]
    for measure, label, more_is_better, form in MEASURES:
        cells, numbers = [], {}
        for name in present:
            value = values.get((measure, name))
            if value is None:
                cells.append("")
                continue
            number = float(value) / (1 << 20) if measure == "pkey_bytes" else float(value)
            numbers[name] = number
            cells.append(form.format(number))
        ratio = ""
        if "snowflake_next" in numbers and "pgedge" in numbers:
            mine, theirs = numbers["snowflake_next"], numbers["pgedge"]
            ratio = f"{(mine / theirs if more_is_better else theirs / mine):.2f}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    loaded, preloaded = values.get(("connect_c1", "snowflake_next")), values.get(("connect_preloaded_c1", "snowflake_next"))
    if loaded and preloaded:
        saved_ms = 1000 / float(loaded) - 1000 / float(preloaded)
        lines.append(f"| what preloading saves a new connection, ms | {saved_ms:.2f} |" + " |" * len(present))
    distinct = [values.get(("distinct_of_statement", name)) for name in present]
    lines.append("| distinct IDs among 1M of one statement | " + " | ".join(f"{int(d):,}" if d else "" for d in distinct) + " | |")
    return "\n".join(lines)


def main():
    results_dir = pathlib.Path(sys.argv[1])
    sections = []
    for path in sorted(results_dir.glob("peers-pg*.tsv"), key=lambda p: int(re.search(r"pg(\d+)", p.name)[1])):
        values = read(path)
        sections.append(f"PostgreSQL {values[('server_version', '')].split()[0]}:\n\n{table(values)}")
    block = "\n\n".join(sections)
    for name in sys.argv[2:]:
        page = pathlib.Path(name)
        text = page.read_text()
        new, count = re.subn(r"(<!-- peers: begin -->\n).*?(<!-- peers: end -->)",
                             lambda m: m[1] + block + "\n" + m[2], text, flags=re.S)
        if count != 1:
            sys.exit(f"{name}: no <!-- peers: begin --> ... <!-- peers: end --> block")
        page.write_text(new)
        print(f"wrote the peers' tables into {name}")


if __name__ == "__main__":
    main()
