#!/usr/bin/env python3
"""shutdown_bench: how long `serve` takes to exit after SIGTERM (a planned switchover waits for it).

Two situations, --rounds times each, one line per run:
  idle      a fresh data directory; one keep-alive connection that was answered and stays open,
            and one connection that never sent a byte;
  checking  --data-dir (a large kept directory, e.g. kb_bench's 100,000 chunks; it is opened, and
            migrated if its schema is older, but not changed otherwise): SIGTERM --after seconds
            after /ready, while the start-up integrity check runs.
Backups and scheduled verification are off. Figures depend on the machine: quote them with it.

  bench/shutdown_bench.py --binary build/knowledgebeast [--data-dir /tmp/kb_bench_100k]
                          [--rounds 3] [--after 1.0]
"""
import argparse
import http.client
import os
import shutil
import signal
import socket
import tempfile
import time

from kb_server import start_server

TOKEN = "shutdown-bench-token-0123456789"


def start(binary, data_dir):
    return start_server(binary, data_dir, TOKEN, extra_args=["--log-level", "warn"],
                        extra_env={"KB_BACKUP_INTERVAL": "0", "KB_VERIFY_INTERVAL": "0"})


def stop(proc):
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
    return time.perf_counter() - t0, proc.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default="build/knowledgebeast")
    ap.add_argument("--data-dir", help="a large data directory for the 'checking' situation")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--after", type=float, default=1.0)
    args = ap.parse_args()
    for i in range(args.rounds):
        tmp = tempfile.mkdtemp(prefix="kb-shutdown-bench-")
        try:
            proc, port = start(args.binary, os.path.join(tmp, "data"))
            kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            kept.request("GET", "/livez")
            kept.getresponse().read()
            silent = socket.create_connection(("127.0.0.1", port))
            seconds, code = stop(proc)
            print(f"idle, run {i + 1}: SIGTERM -> exit {seconds:.3f} s (exit code {code})",
                  flush=True)
            silent.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if not args.data_dir:
        return
    for i in range(args.rounds):
        proc, _ = start(args.binary, args.data_dir)
        time.sleep(args.after)
        seconds, code = stop(proc)
        print(f"checking, run {i + 1}: SIGTERM {args.after:g} s after ready -> exit "
              f"{seconds:.3f} s (exit code {code})", flush=True)


if __name__ == "__main__":
    main()
