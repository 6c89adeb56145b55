#!/usr/bin/env python3
"""Search quality: known-item queries against the page-level BM25 baseline and the server.

    bench/quality/run_eval.py [--sets .cache/sets] [--manual NAME]... [--limit N]
                              [--systems bm25,keyword,hybrid,vector] [--kb-bin PATH]
                              [--out .cache/results]

For every manual built by build_sets.py and every query kind (term, heading, faq):

  bm25     the baseline: SQLite FTS5 over whole pages, in this process. tokenize='porter
           unicode61'; the query's words (\\w+) are each quoted (so no query syntax applies) and
           OR-ed; ORDER BY bm25(). One row per page, so every hit is a distinct document.
  keyword, hybrid, vector
           the server (`knowledgebeast serve`, started on a temporary data directory and a free
           loopback port, or --url): one project per manual and corpus variant, every page
           ingested as a plain-text document through POST /api/v1/projects/{p}/documents with
           source = the page's file name and title = its first line; then every query over HTTP
           (GET /api/v1/query/{p}?mode=..&top_k=100&use_cache=false). Chunk hits are folded to
           distinct documents in rank order; when the first 100 chunks hold fewer than 10
           documents the next pages are fetched with `offset` (up to --max-pages).

Term queries run on the pages as they are (docs/); heading and faq queries on the pages with
their headings removed (docs_noheadings/). A query scores by the rank r of its one target among
the first 10 distinct documents: MRR@10 = mean 1/r, nDCG@10 = mean 1/log2(r+1) (binary
relevance, one relevant document, so the ideal DCG is 1), hit@10 = share found. Prints a
Markdown table and writes OUT/results.json, OUT/results.md and OUT/ranks.jsonl (every query's
rank per system, for looking at failures).
"""
import argparse
import http.client
import json
import math
import os
import random
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

K = 10
TOP_K = 100          # the API's largest top_k (docs/API.md, "Limits")
KIND_FILES = {"term": ("terms.jsonl", "docs"), "heading": ("headings.jsonl", "docs_noheadings"),
              "faq": ("faq.jsonl", "docs_noheadings")}
SERVER_MODES = ("keyword", "hybrid", "vector")
WORD_RE = re.compile(r"\w+", re.UNICODE)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load_docs(d, ext=".txt"):
    docs = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(ext):
            with open(os.path.join(d, f), encoding="utf-8") as fh:
                docs[f] = fh.read()
    return docs


def load_queries(path, limit, seed):
    with open(path, encoding="utf-8") as fh:
        qs = [json.loads(l) for l in fh if l.strip()]
    if limit and len(qs) > limit:
        qs = random.Random(seed).sample(qs, limit)
    return qs


# ---------------------------------------------------------------- the baseline: FTS5 BM25 pages
class Bm25Pages:
    def __init__(self, docs):
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE pages USING fts5(name UNINDEXED, body, "
                        "tokenize='porter unicode61')")
        self.db.executemany("INSERT INTO pages(name, body) VALUES (?, ?)", docs.items())
        self.db.commit()

    def search(self, q):
        words = []
        for w in WORD_RE.findall(q):
            if w.lower() not in (x.lower() for x in words):
                words.append(w)
        if not words:
            return []
        match = " OR ".join('"%s"' % w.replace('"', '""') for w in words)
        rows = self.db.execute("SELECT name FROM pages WHERE pages MATCH ? "
                               "ORDER BY bm25(pages) LIMIT ?", (match, K)).fetchall()
        return [r[0] for r in rows]


# ---------------------------------------------------------------- the server over HTTP
class Server:
    def __init__(self, kb_bin, keep_dir=None):
        self.data_dir = keep_dir or tempfile.mkdtemp(prefix="kbq-data-")
        self.token = "kbq-" + secrets.token_hex(16)
        env = dict(os.environ, KB_ADMIN_TOKEN=self.token, KB_BACKUP_INTERVAL="0",
                   KB_PURGE_INTERVAL="0", KB_CONFIG="")
        self.log_path = os.path.join(tempfile.gettempdir(),
                                     f"kbq-server-{os.getpid()}.log")
        self.log_fh = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [kb_bin, "serve", "--data-dir", self.data_dir, "--host", "127.0.0.1", "--port", "0",
             "--integrity-check-interval", "0", "--rate-limit-per-second", "0",
             "--log-level", "warn"],
            stdout=subprocess.PIPE, stderr=self.log_fh, env=env, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"(http://[0-9.]+:\d+)", line or "")
        if not m:
            self.stop()
            raise SystemExit(f"the server did not start: {line!r}; log {self.log_path}")
        self.url = m.group(1)
        self.client = Client(self.url, self.token)
        for _ in range(600):
            st, _ = self.client.request("GET", "/ready")
            if st == 200:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("the server never became ready")

    def stop(self, remove=True):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log_fh.close()
        if remove:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class Client:
    def __init__(self, url, key):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.headers = {"Authorization": f"Bearer {key}"}
        self.conn = None

    def request(self, method, path, body=None):
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)


def ingest(client, project, docs, batch_bytes, batch_docs):
    st, body = client.request("POST", "/api/v1/projects", {"name": project})
    if st not in (200, 201):
        raise SystemExit(f"creating project {project}: {st} {body}")
    failures = []
    t0 = time.monotonic()
    batch, size = [], 0

    def flush():
        nonlocal batch, size
        if not batch:
            return
        st, body = client.request("POST", f"/api/v1/projects/{project}/documents",
                                  {"documents": batch})
        if st == 200:
            pass
        elif st == 207:
            for r in body.get("results", []):
                if r.get("status", 500) >= 300:
                    failures.append((batch[r["index"]]["source"], r.get("status"),
                                     (r.get("error") or {}).get("message")))
        else:
            failures.extend((d["source"], st, str(body)[:200]) for d in batch)
        batch, size = [], 0

    for name, text in docs.items():
        title = text.split("\n", 1)[0].strip()
        batch.append({"content": text, "title": title, "source": name,
                      "content_type": "text/plain"})
        size += len(text.encode("utf-8"))
        if size >= batch_bytes or len(batch) >= batch_docs:
            flush()
    flush()
    seconds = time.monotonic() - t0
    st, stats = client.request("GET", "/api/v1/stats")
    chunks = None
    if st == 200:
        for p in stats.get("per_project", []):
            if p.get("name") == project:
                chunks = p.get("chunks")
    return {"documents": len(docs) - len(failures), "failures": failures, "seconds": seconds,
            "chunks": chunks}


def server_search(client, project, q, mode, max_pages, stats):
    """Distinct documents (sources) in rank order, up to K."""
    seen = []
    offset = 0
    for page in range(max_pages):
        stats["most_pages"] = max(stats["most_pages"], page + 1)
        params = {"q": q, "top_k": TOP_K, "offset": offset, "mode": mode, "use_cache": "false"}
        if "~" in mode:  # "hybrid~0.3": alpha 0.3; "hybrid~rrf": reciprocal-rank fusion
            mode, knob = mode.split("~", 1)
            params["mode"] = mode
            params.update({"fusion": "rrf"} if knob == "rrf" else {"alpha": knob})
        path = (f"/api/v1/query/{urllib.parse.quote(project)}?" + urllib.parse.urlencode(params))
        st, body = client.request("GET", path)
        if st != 200:
            stats["errors"] += 1
            if stats["errors"] <= 5:
                log(f"  query error {st} for {q!r} ({mode}): {body}")
            return seen
        results = body.get("results", [])
        for r in results:
            src = r.get("source") or r.get("title")
            if src not in seen:
                seen.append(src)
                if len(seen) == K:
                    return seen
        if len(results) < TOP_K:
            stats["exhausted"] += 1  # the mode matched fewer than 10 documents at all
            return seen
        offset += TOP_K
        stats["extra_pages"] += 1
    stats["page_cap"] += 1  # still fewer than 10 documents after max_pages pages
    return seen


# ---------------------------------------------------------------- scoring and reporting
def rank_of(target, ranked):
    try:
        return ranked.index(target) + 1
    except ValueError:
        return None


def summarize(ranks):
    n = len(ranks)
    if n == 0:
        return {"n": 0, "mrr": None, "ndcg": None, "hit": None}
    found = [r for r in ranks if r is not None and r <= K]
    return {"n": n, "mrr": sum(1.0 / r for r in found) / n,
            "ndcg": sum(1.0 / math.log2(r + 1) for r in found) / n, "hit": len(found) / n}


def fmt(x):
    return "–" if x is None else f"{x:.3f}"


def markdown(results, systems, held_out):
    out = []
    rows = sorted({(r["manual"], r["kind"]) for r in results},
                  key=lambda mk: (mk[0] in held_out, mk[0], list(KIND_FILES).index(mk[1])))
    by = {(r["manual"], r["kind"], r["system"]): r for r in results}
    names = {"bm25": "BM25 pages (baseline)", "keyword": "ours keyword",
             "hybrid": "ours hybrid (default)", "vector": "ours vector"}
    for metric, title in (("mrr", "MRR@10"), ("ndcg", "nDCG@10"), ("hit", "hit@10")):
        head = ["manual", "kind", "n"] + [names.get(s, s) for s in systems]
        ratios = metric == "mrr" and "bm25" in systems
        if ratios:
            head += [f"{s} / BM25" for s in systems if s in ("keyword", "hybrid")]
        out.append(f"**{title}**\n")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for m, k in rows:
            cells = [m + (" (held out)" if m in held_out else ""), k]
            n = next((by[(m, k, s)]["n"] for s in systems if (m, k, s) in by), 0)
            cells.append(str(n))
            vals = {s: by.get((m, k, s), {}).get(metric) for s in systems}
            best = max((v for v in vals.values() if v is not None), default=None)
            for s in systems:
                v = vals[s]
                cells.append(f"**{fmt(v)}**" if v is not None and v == best else fmt(v))
            if ratios:
                b = vals["bm25"]
                for s in systems:
                    if s in ("keyword", "hybrid"):
                        cells.append(f"{vals[s] / b:.2f}" if b and vals[s] is not None else "–")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=os.path.join(here, ".cache", "sets"))
    ap.add_argument("--manual", action="append", default=[], help="only this manual")
    ap.add_argument("--kinds", default="term,heading,faq")
    ap.add_argument("--limit", type=int, default=0, help="at most N queries per set (sampled)")
    ap.add_argument("--systems", default="bm25," + ",".join(SERVER_MODES))
    ap.add_argument("--kb-bin", default=os.environ.get("KB_BIN") or next(
        (p for p in (os.path.join(here, "..", "..", "build", "knowledgebeast"),
                     "/tmp/kb-bin/knowledgebeast") if os.path.exists(p)), "knowledgebeast"),
        help="the knowledgebeast binary to serve ($KB_BIN, else build/knowledgebeast)")
    ap.add_argument("--url", help="use this running server instead of starting one")
    ap.add_argument("--api-key", default=os.environ.get("KB_API_KEY"),
                    help="with --url: a write key ($KB_API_KEY)")
    ap.add_argument("--max-pages", type=int, default=5,
                    help="pages of top_k=100 chunks fetched to find 10 distinct documents")
    ap.add_argument("--batch-bytes", type=int, default=2_000_000)
    ap.add_argument("--batch-docs", type=int, default=200)
    ap.add_argument("--keep-data", help="serve from this data directory and keep it")
    ap.add_argument("--out", default=os.path.join(here, ".cache", "results"))
    args = ap.parse_args()

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    server_modes = [s for s in systems if s.split("~")[0] in SERVER_MODES]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    manuals = sorted(d for d in os.listdir(args.sets)
                     if os.path.exists(os.path.join(args.sets, d, "manifest.json")))
    if args.manual:
        manuals = [m for m in manuals if m in args.manual]
    if not manuals:
        raise SystemExit(f"no manual in {args.sets}: run build_sets.py first")
    held_out = set()
    for m in manuals:
        with open(os.path.join(args.sets, m, "manifest.json"), encoding="utf-8") as fh:
            if json.load(fh).get("held_out"):
                held_out.add(m)

    t_start = time.monotonic()
    server = None
    client = None
    run_tag = time.strftime("%Y%m%d%H%M%S")
    if server_modes:
        if args.url:
            client = Client(args.url, args.api_key or "")
        else:
            server = Server(os.path.abspath(args.kb_bin), args.keep_data)
            client = server.client
            log(f"server {args.kb_bin} at {server.url}, data {server.data_dir}")

    results, ingest_info, timing, ranks_out = [], {}, {}, []
    try:
        for m in manuals:
            base = os.path.join(args.sets, m)
            sets = {}
            for k in kinds:
                fname, variant = KIND_FILES[k]
                p = os.path.join(base, fname)
                if os.path.exists(p):
                    sets[k] = (variant, load_queries(p, args.limit, f"{m}:{k}"))
            for variant in sorted({v for v, _ in sets.values()}):
                docs = load_docs(os.path.join(base, variant))
                bm25 = None
                if "bm25" in systems:
                    t0 = time.monotonic()
                    bm25 = Bm25Pages(docs)
                    timing[f"{m}/{variant}/bm25 index s"] = round(time.monotonic() - t0, 2)
                project = None
                if server_modes:
                    project = f"{m}-{variant.replace('_', '-')}"
                    if args.url:
                        project += "-" + run_tag
                    info = ingest(client, project, docs, args.batch_bytes, args.batch_docs)
                    ingest_info[project] = {k: v for k, v in info.items() if k != "failures"}
                    ingest_info[project]["failed"] = [list(f) for f in info["failures"]]
                    log(f"{m}/{variant}: ingested {info['documents']} documents "
                        f"({info['chunks']} chunks) in {info['seconds']:.1f} s, "
                        f"{len(info['failures'])} failed")
                    for f in info["failures"][:5]:
                        log(f"  failed: {f}")
                for k, (v, qs) in sets.items():
                    if v != variant:
                        continue
                    per = {s: [] for s in systems}
                    for s in systems:
                        stats = {"errors": 0, "exhausted": 0, "page_cap": 0, "extra_pages": 0,
                                 "most_pages": 0}
                        t0 = time.monotonic()
                        for q in qs:
                            if s == "bm25":
                                ranked = bm25.search(q["query"])
                            else:
                                ranked = server_search(client, project, q["query"], s,
                                                       args.max_pages, stats)
                            per[s].append(rank_of(q["target_doc"], ranked))
                        secs = time.monotonic() - t0
                        summ = summarize(per[s])
                        summ.update(manual=m, kind=k, system=s, seconds=round(secs, 2),
                                    ms_per_query=round(1000 * secs / max(1, len(qs)), 2))
                        if s != "bm25":
                            summ.update(stats)
                        results.append(summ)
                        log(f"{m}/{k}/{s}: n={summ['n']} MRR@10 {fmt(summ['mrr'])} "
                            f"nDCG@10 {fmt(summ['ndcg'])} hit@10 {fmt(summ['hit'])} "
                            f"({secs:.1f} s" + (f", {stats}" if s != "bm25" else "") + ")")
                    for i, q in enumerate(qs):
                        ranks_out.append(dict(q, manual=m,
                                              ranks={s: per[s][i] for s in systems}))
    finally:
        if server:
            server.stop(remove=not args.keep_data)

    total = time.monotonic() - t_start
    md = markdown(results, systems, held_out)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump({"results": results, "ingest": ingest_info, "timing": timing,
                   "seconds": round(total, 1), "argv": sys.argv[1:], "k": K,
                   "held_out": sorted(held_out)}, fh, indent=1)
    with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as fh:
        fh.write(md + "\n")
    with open(os.path.join(args.out, "ranks.jsonl"), "w", encoding="utf-8") as fh:
        for r in ranks_out:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(md)
    log(f"total {total:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
