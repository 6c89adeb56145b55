#!/usr/bin/env python3
"""ingest_bench: does adding documents stay as fast when a project is full?

Adds --documents one-chunk documents (the way vector-store users add records: one record, one
document, each with its own `source`) to one project over HTTP, in batches of --batch documents
(`POST /api/v1/projects/<p>/documents` with `{"documents": [...]}`), one client, keep-alive,
and times every request. A per-request time that grows with the number of documents already
stored is a defect (a lookup that scans): the figures to read are the median request time of the
first and of the last tenth of the batches, and their ratio (flat is ~1).

Two kinds of project:
  --vectors DIM   an `external` project: every document brings its own unit vector of DIM
                  float32s (seeded random, JSON arrays), so the embedder costs nothing and the
                  time is the store's and the index's;
  (default)       the built-in embedder embeds each document's text.
Texts are sentences of real words: lines of the files under --words-from (default
/usr/share/common-licenses), shuffled with a fixed seed.

Starts `knowledgebeast serve` (--binary) on a fresh data directory and a free loopback port
unless --url/--key name a running server. Prints one line per --report-every batches and a
summary; figures depend on the machine: quote them with it. Usage:

  bench/ingest_bench.py --binary build/knowledgebeast [--documents 100000] [--batch 1000]
                        [--vectors 384] [--report-every 10]
"""
import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

from kb_server import start_server

TOKEN = "ingest-bench-token-0123456789"


class Client:
    """One keep-alive connection."""

    def __init__(self, host, port, key):
        self.conn = http.client.HTTPConnection(host, port, timeout=600)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        r = self.conn.getresponse()
        payload = r.read()
        return r.status, json.loads(payload or b"{}")


def sentences(words_from, seed):
    lines = []
    for root, _, files in os.walk(words_from):
        for name in sorted(files):
            try:
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    lines += [ln.strip() for ln in f if len(ln.split()) >= 6]
            except (UnicodeDecodeError, OSError):
                continue
    if not lines:
        sys.exit(f"ingest_bench: no text under {words_from}")
    random.Random(seed).shuffle(lines)
    return lines


def unit_vector(rng, dim):
    v = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    n = sum(x * x for x in v) ** 0.5 or 1.0
    return [round(x / n, 6) for x in v]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default="build/knowledgebeast")
    ap.add_argument("--url", help="host:port of a running server (then --key)")
    ap.add_argument("--key", default=TOKEN)
    ap.add_argument("--documents", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--vectors", type=int, default=0, help="external project, DIM-dim vectors")
    ap.add_argument("--report-every", type=int, default=10)
    ap.add_argument("--words-from", default="/usr/share/common-licenses")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if args.batch < 1 or args.documents < args.batch:
        sys.exit("ingest_bench: need --documents >= --batch >= 1")

    proc, data_dir = None, None
    if args.url:
        host, port = args.url.rsplit(":", 1)
        port = int(port)
    else:
        host = "127.0.0.1"
        data_dir = tempfile.mkdtemp(prefix="kb-ingest-bench-")
        proc, port = start_server(args.binary, data_dir, args.key,
                                  extra_args=["--integrity-check-interval", "0",
                                              "--rate-limit-per-second", "0",
                                              "--log-level", "warn"])
    try:
        run(args, Client(host, port, args.key))
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=60)
            shutil.rmtree(data_dir, ignore_errors=True)


def run(args, client):
    project = f"ingest-bench-{int(time.time())}"
    spec = {"name": project}
    if args.vectors:
        spec["embedder"] = {"kind": "external", "dimension": args.vectors}
    status, body = client.call("POST", "/api/v1/projects", spec)
    if status != 201:
        sys.exit(f"ingest_bench: creating the project: HTTP {status} {body}")
    texts = sentences(args.words_from, args.seed)
    rng = random.Random(args.seed)
    batches = args.documents // args.batch
    times = []
    started = time.perf_counter()
    for b in range(batches):
        docs = []
        for i in range(args.batch):
            n = b * args.batch + i
            text = f"{texts[n % len(texts)]} (record {n})"
            doc = {"source": f"record-{n:07d}", "title": f"record {n}"}
            if args.vectors:
                doc["chunks"] = [{"text": text, "embedding": unit_vector(rng, args.vectors)}]
            else:
                doc["content"] = text
            docs.append(doc)
        body = {"documents": docs}  # built before the clock starts: the client's work is not timed
        t0 = time.perf_counter()
        status, reply = client.call("POST", f"/api/v1/projects/{project}/documents", body)
        times.append(time.perf_counter() - t0)
        if status != 200 or reply.get("failed", 0):
            sys.exit(f"ingest_bench: batch {b}: HTTP {status} {str(reply)[:300]}")
        if (b + 1) % args.report_every == 0:
            window = times[-args.report_every:]
            print(f"documents {(b + 1) * args.batch:>8}: request median "
                  f"{statistics.median(window) * 1000:8.1f} ms, max {max(window) * 1000:8.1f} ms",
                  flush=True)
    total = time.perf_counter() - started
    tenth = max(1, batches // 10)
    first = statistics.median(times[:tenth])
    last = statistics.median(times[-tenth:])
    print(f"{batches * args.batch} documents in {batches} requests of {args.batch} "
          f"({'external ' + str(args.vectors) + '-dim vectors' if args.vectors else 'built-in embedder'}): "
          f"{total:.1f} s, {batches * args.batch / total:.0f} documents/s")
    print(f"request median, first tenth {first * 1000:.1f} ms, last tenth {last * 1000:.1f} ms, "
          f"ratio {last / first:.2f}")
    # Reading the full project: a page of the listing at the start and deep in it.
    for offset in (0, batches * args.batch // 2):
        spent = []
        for _ in range(5):
            t0 = time.perf_counter()
            status, reply = client.call(
                "GET", f"/api/v1/projects/{project}/documents?limit=100&offset={offset}")
            spent.append(time.perf_counter() - t0)
            if status != 200:
                sys.exit(f"ingest_bench: listing: HTTP {status} {str(reply)[:300]}")
        print(f"listing, 100 documents at offset {offset}: median of 5 "
              f"{statistics.median(spent) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
