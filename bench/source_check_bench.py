#!/usr/bin/env python3
"""source_check_bench: what the backup's source check costs (docs/BACKUP.md, "The source check").

Backs up one data directory repeatedly into a fresh local repository with backup_source_check
off, checksum and full (in rotation, so that the OS cache treats them alike) and prints, per
level, the median of the whole backup's duration and of the time the checks took. The first
backup (which stores everything) is not counted: the figures are for the incremental backups a
schedule makes. Run it on a data directory no server is writing.

  bench/source_check_bench.py --binary build/knowledgebeast --data-dir /tmp/kb/data --rounds 3
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="build/knowledgebeast")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-srccheck-") as tmp:
        env = dict(os.environ, KB_BACKUP_PASSWORD="source check bench", KB_LOG_LEVEL="error")
        repo = "file://" + os.path.join(tmp, "repo")
        subprocess.run([args.binary, "repo", "init", "--repo", repo], env=env, check=True,
                       stdout=subprocess.DEVNULL)

        def backup(level):
            r = subprocess.run([args.binary, "backup", "--data-dir", args.data_dir, "--repo", repo,
                                "--json"], env=dict(env, KB_BACKUP_SOURCE_CHECK=level),
                               capture_output=True, text=True)
            if r.returncode not in (0, 1):
                raise SystemExit(r.stderr)
            j = json.loads(r.stdout)
            return j["duration_ms"], j.get("source_check_ms", 0), j.get("bytes", 0)

        _, _, size = backup("off")  # the first one stores everything
        runs = {"off": [], "checksum": [], "full": []}
        for _ in range(args.rounds):
            for level in runs:
                runs[level].append(backup(level))
        print(f"data: {size / 1e6:.1f} MB in {args.data_dir}; {args.rounds} rounds; "
              f"{os.cpu_count()} cores")
        for level, rs in runs.items():
            total = statistics.median(r[0] for r in rs)
            check = statistics.median(r[1] for r in rs)
            print(f"  {level:9s} backup median {total / 1000:7.2f} s   checks median "
                  f"{check / 1000:7.2f} s")


if __name__ == "__main__":
    main()
