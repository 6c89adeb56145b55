#!/usr/bin/env python3
"""The license-text check of issue 11: where does a query rank the Apache License 2.0?

    bench/quality/license_check.py [--kb-bin PATH] [--dir /usr/share/common-licenses]
                                   [--query "grant of patent license contributor"]
                                   [--target Apache-2.0] [--url URL --api-key KEY]

Ingests every regular file of --dir (symbolic links such as GPL -> GPL-3 are skipped, so no text
is there twice) as a plain-text document of one project, through the REST API of a server
started on a temporary data directory (or --url), then runs the query in mode keyword, hybrid
and vector and prints the rank of --target among distinct documents (chunks folded to their
documents in rank order) and the rank of its best chunk, next to page-level FTS5 BM25
(run_eval.py's baseline) on the same texts. Apache-2.0's section 3 is titled "Grant of Patent
License" and grants patents from "each Contributor": issue 11 wants it in the top three.
"""
import argparse
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_eval  # noqa: E402


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="/usr/share/common-licenses")
    ap.add_argument("--query", default="grant of patent license contributor")
    ap.add_argument("--target", default="Apache-2.0")
    ap.add_argument("--kb-bin", default=os.environ.get("KB_BIN") or next(
        (p for p in (os.path.join(here, "..", "..", "build", "knowledgebeast"),
                     "/tmp/kb-bin/knowledgebeast") if os.path.exists(p)), "knowledgebeast"))
    ap.add_argument("--with-symlinks", action="store_true",
                    help="also ingest symbolic links (GPL -> GPL-3: the same text twice)")
    ap.add_argument("--url")
    ap.add_argument("--api-key", default=os.environ.get("KB_API_KEY"))
    args = ap.parse_args()

    docs = {}
    for f in sorted(os.listdir(args.dir)):
        p = os.path.join(args.dir, f)
        if os.path.isfile(p) and (args.with_symlinks or not os.path.islink(p)):
            with open(p, encoding="utf-8", errors="replace") as fh:
                docs[f] = fh.read()
    if args.target not in docs:
        raise SystemExit(f"{args.target} is not in {args.dir}")

    server = None
    if args.url:
        client = run_eval.Client(args.url, args.api_key or "")
        project = "licenses-" + time.strftime("%Y%m%d%H%M%S")
    else:
        server = run_eval.Server(os.path.abspath(args.kb_bin))
        client = server.client
        project = "licenses"
    try:
        info = run_eval.ingest(client, project, docs, 4_000_000, 100)
        if info["failures"]:
            print("ingestion failures:", info["failures"])
        bm25 = run_eval.Bm25Pages(docs).search(args.query)
        print(f"{len(docs)} license texts ({info['chunks']} chunks) from {args.dir}; "
              f"query {args.query!r}; rank of {args.target}:")
        print(f"{'system':<22} {'document rank':>13} {'best chunk rank':>15}   first documents")
        r = run_eval.rank_of(args.target, bm25)
        print(f"{'BM25 pages (baseline)':<22} {r or '>10':>13} {'-':>15}   {', '.join(bm25[:5])}")
        for mode in run_eval.SERVER_MODES:
            path = (f"/api/v1/query/{project}?" + urllib.parse.urlencode(
                {"q": args.query, "top_k": run_eval.TOP_K, "mode": mode, "use_cache": "false"}))
            st, body = client.request("GET", path)
            if st != 200:
                print(f"{mode}: HTTP {st} {body}")
                continue
            sources = [x.get("source") for x in body["results"]]
            distinct = list(dict.fromkeys(sources))
            doc_rank = run_eval.rank_of(args.target, distinct)
            chunk_rank = run_eval.rank_of(args.target, sources)
            print(f"{'ours ' + mode:<22} {doc_rank or '>' + str(len(distinct)):>13} "
                  f"{chunk_rank or '>' + str(len(sources)):>15}   {', '.join(distinct[:5])}")
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
