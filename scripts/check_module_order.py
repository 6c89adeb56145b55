#!/usr/bin/env python3
"""Checks the module order: a module in src/ may include only itself and the modules before it.

The order is read from KB_MODULES in the top CMakeLists.txt (the one list the build also uses),
never written here, so renaming or adding a module needs no change to this script. Every
`#include "<dir>/..."` in src/<module>/** is checked:
  - <dir> is a later module               -> violation (the wall is crossed)
  - <dir> is not a module at all          -> violation (an unknown module has no place in the order)
  - a directory under src/ with sources that is not in KB_MODULES -> violation, same reason.
Includes without a '/' ("hnswlib.h") and angle-bracket includes are outside the order.

Usage: check_module_order.py [ROOT]   (ROOT: the repository root; default: this script's parent)
Exit status: 0 the order holds (one summary line on stdout); 1 violations (one line each on
stderr, "file:line: ..."); 2 the order could not be read.
Python 3 standard library only.
"""

import os
import re
import sys

SOURCE_SUFFIXES = (".h", ".hh", ".hpp", ".cc", ".cpp", ".c", ".inc")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"/]+)/[^"]*"')
SET_MODULES_RE = re.compile(r"\bset\s*\(\s*KB_MODULES\b([^)]*)\)", re.IGNORECASE | re.DOTALL)


def read_modules(cmake_path):
    """The module names of `set(KB_MODULES ...)`, in order (comments and quotes removed)."""
    with open(cmake_path, encoding="utf-8", errors="replace") as f:
        text = "\n".join(line.split("#", 1)[0] for line in f.read().splitlines())
    match = SET_MODULES_RE.search(text)
    if not match:
        return None
    return [word.strip('"') for word in match.group(1).split() if word.strip('"')]


def source_files(directory):
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(SOURCE_SUFFIXES):
                yield os.path.join(dirpath, name)


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmake_path = os.path.join(root, "CMakeLists.txt")
    src = os.path.join(root, "src")
    try:
        modules = read_modules(cmake_path)
    except OSError as e:
        print(f"check_module_order: cannot read {cmake_path}: {e}", file=sys.stderr)
        return 2
    if not modules:
        print(f"check_module_order: no set(KB_MODULES ...) in {cmake_path}", file=sys.stderr)
        return 2
    if not os.path.isdir(src):
        print(f"check_module_order: no src/ directory under {root}", file=sys.stderr)
        return 2
    rank = {name: i for i, name in enumerate(modules)}

    violations = []
    files = includes = 0
    for module in sorted(os.listdir(src)):
        module_dir = os.path.join(src, module)
        if not os.path.isdir(module_dir):
            continue
        sources = list(source_files(module_dir))
        if not sources:
            continue
        if module not in rank:
            violations.append(f"src/{module}/: directory '{module}' is not a module in KB_MODULES "
                              f"({' '.join(modules)}); add it to the order in CMakeLists.txt")
        for path in sources:
            files += 1
            rel = os.path.relpath(path, root)
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE_RE.match(line)
                    if not m:
                        continue
                    includes += 1
                    target = m.group(1)
                    if target not in rank:
                        violations.append(f"{rel}:{lineno}: module '{module}' includes "
                                          f"'{target}', which is not a module in KB_MODULES")
                    elif module in rank and rank[target] > rank[module]:
                        violations.append(f"{rel}:{lineno}: module '{module}' includes later "
                                          f"module '{target}' ({module} comes before {target} "
                                          f"in KB_MODULES)")
    if violations:
        for v in violations:
            print(v, file=sys.stderr)
        print(f"check_module_order: {len(violations)} violation(s) of the module order "
              f"({' < '.join(modules)})", file=sys.stderr)
        return 1
    print(f"check_module_order: ok: {includes} includes in {files} files follow "
          f"{' < '.join(modules)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
