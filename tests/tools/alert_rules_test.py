#!/usr/bin/env python3
"""The Prometheus alert rules (deploy/prometheus/alerts.yml) are valid, each has a unit test that
fires it, and they use only metrics the server exports: the Python system this replaces had alert
rules on metric names its server never exported.

  alert_rules_test.py <repository root>

Checks: `promtool check rules`, `promtool test rules alerts_test.yml`, every alert named in the
tests, and every kb_* name in the rules declared in src/api/server.cc (a histogram's _bucket,
_sum and _count count as the histogram). Exit 1 naming what fails.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path


def main():
    root = Path(sys.argv[1])
    rules = root / "deploy/prometheus/alerts.yml"
    tests = root / "deploy/prometheus/alerts_test.yml"
    server = root / "src/api/server.cc"
    failures = []
    if shutil.which("promtool") is None:
        print("promtool is not installed (Debian package prometheus; scripts/install-deps.sh)")
        return 1
    for args in (["check", "rules", str(rules)], ["test", "rules", str(tests)]):
        r = subprocess.run(["promtool", *args], capture_output=True, text=True,
                           cwd=rules.parent)
        if r.returncode != 0:
            failures.append(f"promtool {' '.join(args)}:\n{r.stdout}{r.stderr}")

    text = rules.read_text()
    alerts = re.findall(r"^\s*- alert:\s*(\S+)", text, re.M)
    tested = set(re.findall(r"alertname:\s*(\S+)", tests.read_text()))
    for a in alerts:
        if a not in tested:
            failures.append(f"alert {a} has no test in {tests.name}")

    declared = set(re.findall(r'Declare(?:Gauge|Counter|Histogram)\(\s*"(kb_[a-z0-9_]+)"',
                              server.read_text()))
    if len(declared) < 20:
        failures.append(f"found only {len(declared)} metric declarations in {server}: "
                        "has RegisterMetrics moved?")
    exprs = "\n".join(re.findall(r"expr:\s*(\|[\s\S]*?(?=\n\s+\w+:)|.*)", text))
    used = set(re.findall(r"\bkb_[a-z0-9_]+", exprs))
    for name in sorted(used):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in declared and base not in declared:
            failures.append(f"alerts.yml uses {name}, which the server does not export")
    if not used:
        failures.append("no kb_* metric found in the rules' expressions")

    for f in failures:
        print("FAIL:", f)
    if not failures:
        print(f"ok: {len(alerts)} alerts, each tested; {len(used)} metrics, all exported")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
