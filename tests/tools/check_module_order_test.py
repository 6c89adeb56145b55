#!/usr/bin/env python3
"""Test of scripts/check_module_order.py: it passes on the real tree, and it can fail.

A checker that never fails proves nothing, so besides the real tree it runs on small temporary
trees: one that keeps the order (exit 0), one where an early module includes a later one and one
that includes an unknown module (exit 1, naming file:line and both modules).
Usage: check_module_order_test.py SCRIPT REPO_ROOT
"""

import os
import subprocess
import sys
import tempfile

FAILURES = []


def run(script, root):
    return subprocess.run([sys.executable, script, root], capture_output=True, text=True)


def expect(condition, what, result=None):
    if not condition:
        detail = f"\n  stdout: {result.stdout!r}\n  stderr: {result.stderr!r}" if result else ""
        FAILURES.append(f"FAILED: {what}{detail}")
    else:
        print(f"ok: {what}")


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def make_tree(root, includes_in_low):
    # Spread over lines and with a comment, as a real CMakeLists.txt may write it.
    write(root, "CMakeLists.txt",
          "project(x)\n# Modules in dependency order.\n"
          "set(KB_MODULES low  # first\n  mid\n  high)\n")
    write(root, "src/low/a.h", "#pragma once\n#include <vector>\n#include \"low/b.h\"\n")
    write(root, "src/low/b.h", "#pragma once\n")
    write(root, "src/mid/m.cc", "#include \"low/a.h\"\n#include \"mid/m.h\"\n#include \"x.h\"\n")
    write(root, "src/mid/m.h", "#pragma once\n")
    write(root, "src/high/deep/h.cc", "#include \"mid/m.h\"\n#include \"low/a.h\"\n")
    write(root, "src/low/c.cc", "// c\n\n" + "".join(f"#include \"{i}\"\n" for i in includes_in_low))


def main():
    script, repo = sys.argv[1], sys.argv[2]

    r = run(script, repo)
    expect(r.returncode == 0, "the real tree keeps the module order", r)
    expect(r.stdout.count("\n") == 1 and "ok" in r.stdout, "one summary line on success", r)

    with tempfile.TemporaryDirectory() as tmp:
        make_tree(tmp, ["low/b.h"])
        r = run(script, tmp)
        expect(r.returncode == 0, "a tree that keeps the order passes", r)

    with tempfile.TemporaryDirectory() as tmp:
        make_tree(tmp, ["low/b.h", "high/deep/h.h"])
        r = run(script, tmp)
        expect(r.returncode == 1, "an include of a later module exits 1", r)
        expect("src/low/c.cc:4:" in r.stderr, "the violation names file:line", r)
        expect("'low'" in r.stderr and "'high'" in r.stderr, "the violation names both modules", r)

    with tempfile.TemporaryDirectory() as tmp:
        make_tree(tmp, ["nowhere/n.h"])
        r = run(script, tmp)
        expect(r.returncode == 1, "an include of an unknown module exits 1", r)
        expect("src/low/c.cc:3:" in r.stderr and "'nowhere'" in r.stderr,
               "the unknown module is named with file:line", r)

    with tempfile.TemporaryDirectory() as tmp:
        make_tree(tmp, [])
        write(tmp, "src/stray/s.cc", "#include \"low/a.h\"\n")
        r = run(script, tmp)
        expect(r.returncode == 1 and "'stray'" in r.stderr,
               "a source directory outside KB_MODULES exits 1", r)

    with tempfile.TemporaryDirectory() as tmp:
        write(tmp, "CMakeLists.txt", "project(x)\n")
        write(tmp, "src/low/a.h", "\n")
        r = run(script, tmp)
        expect(r.returncode == 2, "no KB_MODULES in CMakeLists.txt exits 2", r)

    for f in FAILURES:
        print(f, file=sys.stderr)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
