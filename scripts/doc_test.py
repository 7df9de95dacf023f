#!/usr/bin/env python3
"""Runs the ```sql blocks of a Markdown page in order, in one psql session, and compares each
result that the page shows with what the server returns. Prints "ok: ..." or "FAILED: ..." per check and
"skipped: ..." per block left out, as the other test scripts do.

Usage: doc_test.py PAGE.md -- PSQL_COMMAND...   (psql connected to a fresh database)

What a page shows, right after a statement:

- a result, as psql prints it, in `--` comment lines: a header, a separator line and the rows.
  A cell written as <...> matches any value; an empty cell is NULL. After a line `-- such as:`
  the rows are an example (generated codes, times): only the columns and the number of rows
  are compared. The rows end at the first line that is blank or not a comment;
- an error, as `-- ERROR:  message` or, with its SQLSTATE, `-- ERROR:  22023: message` (compared
  in full);
- on the statement's last line, `-- → value`: the one value it returns.

A statement followed by neither only has to succeed. An HTML comment on the line before a block
tells the runner more about it:

- `<!-- doc-test: skip REASON -->`: the block is not run (it needs Citus, PostgREST, ...);
- `<!-- doc-test: before ... -->`, its SQL on the lines up to `-->`: run first, shown to nobody.
"""

import re
import subprocess
import sys

MARKER = "@@doc-test@@"
SEPARATOR = re.compile(r"^-+(\+-+)*$")


def split_statements(sql):
    """The statements of `sql`, each with the text that follows it on its last line and the
    comment lines right after it: [(statement, trailing, following_comments)]."""
    statements, current, i, n = [], [], 0, len(sql)
    atomic = 0
    while i < n:
        if not "".join(current).strip() and sql[i] == "\\":
            end = sql.find("\n", i)
            end = n if end < 0 else end
            statements.append([sql[i:end], "", []])
            i = end + 1
            continue
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            current.append(sql[i:end])
            i = end
            continue
        if c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            current.append(sql[i:end])
            i = end
            continue
        if c in "'\"":
            j = i + 1
            backslashes = c == "'" and i > 0 and sql[i - 1] in "eE"
            while j < n:
                if backslashes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            current.append(sql[i : j + 1])
            i = j + 1
            continue
        if c == "$":
            m = re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", sql[i:])
            if m:
                end = sql.find(m.group(0), i + len(m.group(0)))
                end = n if end < 0 else end + len(m.group(0))
                current.append(sql[i:end])
                i = end
                continue
        if re.match(r"(?i)begin\s+atomic\b", sql[i:]) and not re.match(r"\w", sql[i - 1 : i] or " "):
            atomic += 1
        if atomic and re.match(r"(?i)end\b", sql[i:]) and not re.match(r"\w", sql[i - 1 : i] or " "):
            atomic -= 1
        if c == "\\" and "".join(current).strip() and not atomic:
            end = sql.find("\n", i)
            end = n if end < 0 else end
            current.append(" " + sql[i:end])
            i = end
            statements.append(["".join(current).strip(), "", []])
            current = []
            i += 1
            continue
        if c == ";" and not atomic:
            current.append(";")
            end = sql.find("\n", i)
            end = n if end < 0 else end
            trailing = sql[i + 1 : end].strip()
            i = end + 1
            comments = []
            while i < n:
                end = sql.find("\n", i)
                end = n if end < 0 else end
                line = sql[i:end]
                if not line.startswith("--"):
                    break
                comments.append(line[2:])
                i = end + 1
            statements.append(["".join(current).strip(), trailing, comments])
            current = []
            continue
        current.append(c)
        i += 1
    rest = "".join(current).strip()
    if rest and not all(line.strip().startswith("--") or not line.strip() for line in rest.splitlines()):
        statements.append([rest, "", []])
    return statements


def expectation(trailing, comments):
    """What the page shows for a statement: ("table", header, rows), ("error", message),
    ("value", text) or None."""
    m = re.match(r"^--\s*→\s*(.*)$", trailing)
    if m:
        value = m.group(1).strip()
        if value.startswith("ERROR:"):
            return ("error", value[len("ERROR:") :].strip())
        return ("value", value)
    if comments and comments[0].strip().startswith("ERROR:"):
        return ("error", comments[0].strip()[len("ERROR:") :].strip())
    shape_only = bool(comments) and comments[0].strip() == "such as:"
    table = comments[1:] if shape_only else comments
    if len(table) >= 2 and SEPARATOR.match(table[1].strip()):
        cells = lambda line: [cell.strip() for cell in line.split("|")]
        rows = [cells(line) for line in table[2:]]
        if shape_only:
            rows = [["<>"] * len(row) for row in rows]
        return ("table", cells(table[0]), rows)
    return None


def blocks(page):
    """The ```sql blocks of the page: [(line, sql, options)]."""
    lines = open(page, encoding="utf-8").read().split("\n")
    found, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```sql":
            options, j = {}, i - 1
            while j >= 0 and lines[j].strip():
                line = lines[j].strip()
                m = re.match(r"<!-- doc-test: (skip)\s*(.*?)\s*-->$", line)
                if m:
                    options[m.group(1)] = m.group(2)
                elif line == "-->" or line.startswith("<!-- doc-test: before"):
                    k = j
                    while not lines[k].strip().startswith("<!-- doc-test: before"):
                        k -= 1
                    options["before"] = "\n".join(lines[k + 1 : j])
                    j = k
                else:
                    break
                j -= 1
            indent = len(lines[i]) - len(lines[i].lstrip())
            end = next(k for k in range(i + 1, len(lines)) if lines[k].strip() == "```")
            body = [line[indent:] for line in lines[i + 1 : end]]
            found.append((i + 1, "\n".join(body), options))
            i = end
        i += 1
    return found


def run(psql, statements):
    """Runs the statements in one psql session: [(output lines, error message or None)]."""
    script = ["\\set ON_ERROR_STOP off", "\\pset footer off", "\\pset null ''"]
    for number, statement in enumerate(statements):
        script += [statement, f"\\echo {MARKER} {number} :ERROR :LAST_ERROR_SQLSTATE",
                   "\\echo :LAST_ERROR_MESSAGE"]
    done = subprocess.run(psql, input="\n".join(script) + "\n", capture_output=True, text=True)
    results, output = [], []
    lines = iter(done.stdout.split("\n"))
    for line in lines:
        if line.startswith(MARKER):
            _, _, failed, sqlstate = line.split()
            message = next(lines)
            results.append((output, f"{sqlstate}: {message}" if failed == "true" else None))
            output = []
        else:
            output.append(line)
    if len(results) != len(statements):
        raise RuntimeError(f"psql stopped early:\n{done.stdout}\n{done.stderr}")
    return results


def compare(expected, output, error):
    """None when the result is what the page shows, or what differs."""
    if expected is None:
        return None if error is None else f"unexpected ERROR: {error}"
    if error is not None and expected[0] != "error":
        return f"unexpected ERROR: {error}"
    if expected[0] == "error":
        # Shown with its SQLSTATE, or with the message alone.
        same = error is not None and expected[1] in (error, error.split(": ", 1)[1])
        return None if same else f"expected ERROR: {expected[1]}, got " + (
            f"ERROR: {error}" if error else "no error")
    rows = [[cell.strip() for cell in line.split("|")] for line in output[2:] if line != ""]
    header = [cell.strip() for cell in output[0].split("|")] if output else []
    if expected[0] == "value":
        got = rows[0][0] if len(rows) == 1 and len(rows[0]) == 1 else None
        want = "" if expected[1] == "NULL" else expected[1]
        return None if got is not None and matches(want, got) else f"expected {expected[1]}, got\n" + "\n".join(output)
    _, want_header, want_rows = expected
    same = header == want_header and len(rows) == len(want_rows) and all(
        len(row) == len(want) and all(matches(w, g) for w, g in zip(want, row))
        for row, want in zip(rows, want_rows))
    return None if same else "the result differs from the page's:\n" + "\n".join(output)


def matches(want, got):
    return want == got or (want.startswith("<") and want.endswith(">") and got != "")


def main():
    page, psql = sys.argv[1], sys.argv[3:]
    # One psql session for the whole page, so that its blocks chain as a reader's session would.
    runnable, statements = [], []
    for line, sql, options in blocks(page):
        where = f"{page}:{line}"
        if "skip" in options:
            print(f"skipped: {where} ({options['skip']})")
            continue
        hidden = [(s, "", []) for s, _, _ in split_statements(options.get("before", ""))]
        shown = split_statements(sql)
        runnable.append((where, len(statements), len(hidden), shown))
        statements += hidden + shown
    results = run(psql, [s for s, _, _ in statements])
    for where, first, hidden, shown in runnable:
        problems = [f"its hidden setup: ERROR: {error}"
                    for _, error in results[first : first + hidden] if error]
        for (statement, trailing, comments), (output, error) in zip(shown, results[first + hidden :]):
            problem = compare(expectation(trailing, comments), output, error)
            if problem:
                problems.append(f"{statement}\n{problem}")
        checked = sum(expectation(t, c) is not None for _, t, c in shown)
        if problems:
            for problem in problems:
                print(f"FAILED: {where}: {problem}")
        else:
            print(f"ok: {where}: {len(shown)} statements, {checked} results as shown")


main()
