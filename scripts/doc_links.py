#!/usr/bin/env python3
"""Checks the links between the Markdown pages given: each relative link leads to a file of the
repository, and each #anchor to a heading of its page (as GitHub makes anchors). Prints the
broken ones; exits non-zero if there is any."""

import os
import re
import sys


def anchors(path):
    found, fence = set(), False
    for line in open(path, encoding="utf-8"):
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and re.match(r"^#+ ", line):
            title = line.lstrip("#").strip().lower().replace("`", "")
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


broken = []
for page in sys.argv[1:]:
    text = re.sub(r"```.*?```", "", open(page, encoding="utf-8").read(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not os.path.exists(path):
            broken.append(f"{page}: {target}: no such file")
        elif anchor and path.endswith(".md") and anchor not in anchors(path):
            broken.append(f"{page}: {target}: no such heading")
print("\n".join(broken))
sys.exit(1 if broken else 0)
