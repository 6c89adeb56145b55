#!/usr/bin/env python3
"""front_door_bench: a normal client's latency while hostile clients hold connections open.

Starts `knowledgebeast serve` on a fresh data directory with default connection settings except
the idle and header deadlines, which are raised to 300 s so that the hostile connections stay
open for the whole measurement (the worst case for the server: with the defaults they would be
closed after 30 s and 10 s). Then, per round:

  1. baseline: --requests GET /api/v1/query/<project>?q=... each on a NEW connection from
     127.0.0.1, latency p50/p99;
  2. opens --idle TCP connections that never send a byte (spread over source addresses
     127.0.0.2..; the per-address cap is 256 by default) and --slowloris connections (from
     127.0.0.200) that send one header line per second and never finish;
  3. the same normal requests again: p50/p99, and the server's RSS growth per idle connection
     (VmRSS from /proc before and after opening them);
  4. checks that the hostile connections are still open (so they really were held), closes them.

Prints one line per round and the median over rounds (for memory: the largest round, the first,
since later rounds reuse the memory freed by the previous round's connections). Figures depend on the machine: quote them
with it. Usage:

  bench/front_door_bench.py --binary build/knowledgebeast [--idle 1000] [--slowloris 50]
                            [--requests 400] [--rounds 3]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

from kb_server import start_server

TOKEN = "front-door-bench-token-0123456789"


def api(port, method, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"{}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_request(port, path):
    """A GET on a new connection; returns (status, seconds)."""
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n"
              "Connection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    status = int(data[9:12]) if len(data) >= 12 else 0
    return status, time.perf_counter() - t0


def measure(port, paths):
    lat, bad = [], 0
    for p in paths:
        status, secs = one_request(port, p)
        if status != 200:
            bad += 1
        lat.append(secs)
    lat.sort()
    return {"p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "errors": bad}


def open_hostile(port, idle, slowloris):
    conns = []
    for i in range(idle):
        s = socket.socket()
        s.bind((f"127.0.0.{2 + i // 200}", 0))
        s.connect(("127.0.0.1", port))
        conns.append(s)
    slow = []
    for _ in range(slowloris):
        s = socket.socket()
        s.bind(("127.0.0.200", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /api/v1/projects HTTP/1.1\r\nHost: bench\r\n")
        slow.append(s)
    return conns, slow


def still_open(s):
    s.setblocking(False)
    try:
        data = s.recv(1)
        return data != b""  # b"" = closed by the server; data = it answered (not expected)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--slowloris", type=int, default=50)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="kb-front-door-")
    log = open(os.path.join(data, "server.log"), "w")
    server, port = start_server(
        args.binary, os.path.join(data, "d"), TOKEN,
        extra_args=["--http-idle-timeout", "300s", "--http-header-timeout", "300s",
                    "--log-level", "warn"],
        stdout=log, stderr=log)
    try:
        api(port, "POST", "/api/v1/projects", {"name": "bench"})
        words = ("lighthouse keeper harbour storm lantern beacon tide rock ship fog signal "
                 "night coast wave light tower").split()
        docs = [{"content": " ".join(words[(i + j) % len(words)] for j in range(400)),
                 "source": f"doc{i}.txt"} for i in range(50)]
        api(port, "POST", "/api/v1/projects/bench/documents", {"documents": docs})
        paths = [f"/api/v1/query/bench?q={words[i % len(words)]}+{words[(i * 7) % len(words)]}"
                 "&use_cache=false" for i in range(args.requests)]
        measure(port, paths[:50])  # warm-up

        rows = []
        for r in range(args.rounds):
            base = measure(port, paths)
            rss0 = rss_kib(server.pid)
            conns, slow = open_hostile(port, args.idle, args.slowloris)
            time.sleep(1.0)
            rss1 = rss_kib(server.pid)
            stop = threading.Event()

            def trickle():
                n = 0
                while not stop.wait(1.0):
                    n += 1
                    for s in slow:
                        try:
                            s.sendall(f"X-Slow-{n}: 1\r\n".encode())
                        except OSError:
                            pass
            t = threading.Thread(target=trickle)
            t.start()
            loaded = measure(port, paths)
            stop.set()
            t.join()
            open_idle = sum(still_open(s) for s in conns)
            open_slow = sum(still_open(s) for s in slow)
            for s in conns + slow:
                s.close()
            row = {"round": r + 1,
                   "baseline_p50_ms": round(base["p50_ms"], 2),
                   "baseline_p99_ms": round(base["p99_ms"], 2),
                   "loaded_p50_ms": round(loaded["p50_ms"], 2),
                   "loaded_p99_ms": round(loaded["p99_ms"], 2),
                   "errors": base["errors"] + loaded["errors"],
                   "rss_kib_per_idle_connection": round((rss1 - rss0) / max(1, args.idle + args.slowloris), 2),
                   "idle_still_open": open_idle, "slowloris_still_open": open_slow}
            print(json.dumps(row), flush=True)
            rows.append(row)
            time.sleep(1.0)
        med = {k: statistics.median(r[k] for r in rows)
               for k in rows[0] if k not in ("round", "rss_kib_per_idle_connection")}
        # Memory: the largest growth (the first round's, before freed sessions' memory is reused).
        med["rss_kib_per_idle_connection_max"] = max(r["rss_kib_per_idle_connection"] for r in rows)
        print(json.dumps({"median_of_rounds": med, "idle": args.idle,
                          "slowloris": args.slowloris, "requests_per_phase": args.requests,
                          "cpus": os.cpu_count()}))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
