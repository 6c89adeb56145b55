#!/usr/bin/env python3
"""The committed known-item ranking regression set (issue 11): tests/testdata/ranking/.

    bench/quality/make_regression_set.py --snapshot [REV]  # copy SOURCES at REV into OUT/source/
    bench/quality/make_regression_set.py                   # OUT/source/ -> OUT/docs/, queries
    bench/quality/make_regression_set.py --baseline        # page-level BM25 MRR@10 on OUT
    (all take [--out tests/testdata/ranking])

The texts are the project's own Markdown documentation, SOURCES below. `--snapshot` copies each
of them, byte for byte, as committed at REV (default HEAD; `git show REV:PATH`), to
OUT/source/PATH, and removes anything else under OUT/source/; a file that does not exist at REV
is left out. Done once: the set is made from that frozen copy, so it does not change when the
live documentation does.

Without --snapshot, every file of OUT/source/ (of SOURCES, in that order) is split at its
Markdown headings (ATX, levels 1 to 4, `#` ... `####`; a `#` line inside a fenced code block is
code, not a heading) into one document per section, written as OUT/docs/<stem>__<nn>.md, where
<stem> is the file's name without `.md` (with its directories, '/' as '-', when two sources share
a name: README, bench-quality-README) and <nn> counts the file's documents from 00. A document
is Markdown: the first line is a title "<source path> — section <nn>" (not the heading), a blank
line, then the section's lines verbatim WITHOUT its heading line, and without any line that
repeats a heading of the same file (a line that, list marker, link brackets, emphasis and
backticks aside, is that heading's text: a table of contents). Text above the first heading is
a section without a heading. A section whose remaining body (blank lines at either end dropped)
has fewer than MIN_BODY_BYTES bytes is no document (a heading directly followed by its first
subheading, a one-line note).

The removed headings become the "heading" queries of OUT/queries.jsonl: the heading text with a
leading number ("4.", "6.1") and the Markdown of links, emphasis and backticks taken off, and a
final '.' or ':' dropped. A heading becomes a query when its section is a document, it has at
least 2 words (\\w+) and no other heading of the corpus has the same words (case-insensitive):
"Changes", "Terminology" and "Threat model" (AUDIT_LOG.md and VECTOR_INDEX.md) are dropped.
Hand-written "faq" queries (FAQ below) follow them. Python 3 stdlib only, no randomness: the same
OUT/source/ gives byte-identical output. The counts are printed; they belong in OUT/README.md,
which is written by hand.

--baseline prints the page-level FTS5 BM25 MRR@10 per query kind on OUT (run_eval.py's
Bm25Pages: porter unicode61, the query's words quoted and OR-ed, ORDER BY bm25(); one row per
document of OUT/docs/, its whole text).
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

# The project's own documentation, repository paths. The set is made from the copies of these in
# OUT/source/ (--snapshot), in this order.
SOURCES = [
    "README.md",
    "docs/API.md",
    "docs/ARCHITECTURE.md",
    "docs/BACKUP.md",
    "docs/CONFIG.md",
    "docs/PERFORMANCE.md",
    "docs/RANKING.md",
    "docs/SECURITY.md",
    "docs/format/AUDIT_LOG.md",
    "docs/format/BACKUP_REPOSITORY.md",
    "docs/format/DATABASE.md",
    "docs/format/JOURNAL.md",
    "docs/format/VECTOR_INDEX.md",
    "bench/quality/README.md",
]

MIN_BODY_BYTES = 100

# Hand-written questions a user of KnowledgeBeast would ask: (query, source path, the heading of
# the target section as it stands in the source, a phrase the target's text must contain —
# checked, so a target that moves or changes fails the generator). Each was checked by reading
# the target and the sections that cover the same subject (the operator's guides BACKUP.md and
# SECURITY.md, the route in API.md, the format in docs/format/, the setting in CONFIG.md): the
# target is the one section that answers the question best. Where two sections answer a
# question equally (the single-project restore is in BACKUP.md, API.md and SECURITY.md), the
# question asks for what only one of them says.
FAQ = [
    ("how do I restore a single project from a backup, with the server running or with it "
     "stopped", "docs/BACKUP.md", "Restoring", "With the server stopped: `restore --project NAME`"),
    ("someone deleted documents by mistake yesterday, how do I get them back",
     "docs/SECURITY.md", "Accidental deletion", "Within the grace period: undelete"),
    ("what should I do when an API key has leaked", "docs/SECURITY.md", "Security breach",
     "Revoke every key"),
    ("I locked myself out with the address rules, how do I get back in", "docs/API.md",
     "`PUT /api/v1/admin/ip-rules` — admin, key for all projects", "ip-rules clear --data-dir DIR"),
    ("which requests still work when the server is in read-only mode", "docs/API.md",
     "Containment (admin)", "What each mode lets through"),
    ("what does exit code 2 of the knowledgebeast command mean", "docs/CONFIG.md", "Exit codes",
     "usage error"),
    ("if a setting is in the config file and also in an environment variable, which one wins",
     "docs/CONFIG.md", "Configuring KnowledgeBeast", "Each one overrides the one before it"),
    ("how do I check that my backups can actually be restored", "docs/BACKUP.md",
     "Checking backups", "--restore-test"),
    ("how do I delete old snapshots and free the space they use in the backup repository",
     "docs/BACKUP.md", "Keeping backups", "backup forget"),
    ("what happens if I lose the backup passphrase", "docs/BACKUP.md", "The repository",
     "Lose every key and the backups are lost"),
    ("which metrics should I alert on to notice that backups stopped working", "docs/BACKUP.md",
     "Taking backups", "Alert when the first is older than two intervals"),
    ("how do I verify that nobody tampered with the audit log", "docs/format/AUDIT_LOG.md",
     "6. Verification (`knowledgebeast audit verify`, `AuditLog::Verify`)", "bad_seq"),
    ("can someone with write access to the data directory rewrite the audit log without being "
     "detected", "docs/format/AUDIT_LOG.md", "8. Threat model", "Rewriting the whole chain"),
    ("what happens to audit events when the disk is full", "docs/format/AUDIT_LOG.md",
     "4. Writing", "disk full"),
    ("what is stored in the audit.head file", "docs/format/AUDIT_LOG.md", "The head file",
     "KBAUDITHEAD"),
    ("how is the saved vector index checked before it is loaded", "docs/format/VECTOR_INDEX.md",
     "Reading (Load)", "hnswlib's loader trusts its input"),
    ("what does a crash in the middle of saving the vector index leave behind",
     "docs/format/VECTOR_INDEX.md", "Writing (Save)", "A crash before step 3 completes"),
    ("how is a project's content checksum computed", "docs/format/DATABASE.md",
     "5. Content checksum (byte-exact)", "order-independent multiset hash"),
    ("can I open a data directory with an older version of KnowledgeBeast after an upgrade",
     "docs/format/DATABASE.md", "2. File identity and schema version",
     "Downgrades are not supported"),
    ("what is left in the journal of a document after it was purged", "docs/format/JOURNAL.md",
     "`scrubbed` (what a purge leaves of an entry)",
     "No text, title, source, metadata or embedding survives"),
    ("how do I erase a document everywhere, including the backups", "docs/SECURITY.md",
     "What protects what", "To erase something everywhere"),
    ("when does the health endpoint report degraded instead of healthy", "docs/API.md",
     "`GET /health` — no auth", "projects that failed to open"),
    ("how do I create an API key that expires after 30 days and can only read one project",
     "docs/API.md", "`POST /api/v1/admin/api-keys` — admin, key for all projects",
     "expires_in_days"),
    ("what happens if I rotate an API key again while its previous secret is still in the "
     "overlap", "docs/API.md",
     "`POST /api/v1/admin/api-keys/{id}/rotate` — admin, key for all projects",
     "Rotating again replaces the previous secret"),
    ("where in the source do I add a new REST route", "docs/ARCHITECTURE.md", "Where do I put X?",
     "src/api/routes_"),
    ("why are backups cut into fixed 4 KiB pages instead of content-defined chunks",
     "docs/ARCHITECTURE.md", "Backups", "content-defined chunking"),
    ("how many chunks per second can one client ingest", "docs/PERFORMANCE.md",
     "In-process (`kb_bench`, 100,000 chunks, built-in embedder, one project)", "2,063 chunks/s"),
    ("how many queries per second does the server answer over HTTP with eight clients",
     "docs/PERFORMANCE.md", "Over HTTP (`http_bench`, same data, query cache off, loopback)",
     "669"),
    ("why does hybrid search rank pages worse than plain BM25", "docs/RANKING.md", "Today",
     "Evidence is split across chunks"),
    ("how do I run the search quality evaluation on only one manual", "bench/quality/README.md",
     "Search quality harness (issue 11)", "--manual zsh"),
    ("how do I upload a PDF file through the API", "docs/API.md",
     "`POST /api/v1/projects/{project}/documents` — write", "application/pdf"),
    ("how do I list the documents changed since a given date across all projects", "docs/API.md",
     "`GET /api/v1/documents?since=ISO8601[&project=][&limit=]` — read",
     "created or changed at or after"),
    ("how do I make a project use an OpenAI-compatible embedding server", "docs/API.md",
     "`POST /api/v1/projects` — write, key for all projects", "OpenAI-compatible"),
    ("which IAM permissions does the S3 bucket for backups need", "docs/CONFIG.md", "S3 settings",
     "s3:ListBucket"),
    ("is it safe to ingest directly into the data directory while the server is running",
     "docs/CONFIG.md", "Direct mode and a running server", "be done with the server stopped"),
    ("what happens when a journal entry is replayed with a gap in the LSNs",
     "docs/format/JOURNAL.md", "1. What the journal is", "gap or repeat"),
]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
EMPHASIS = re.compile(r"(?<![\w*])[*_]{1,3}|[*_]{1,3}(?![\w*])")
NUMBER = re.compile(r"^\d+(?:\.\d+)*\.?\s+")
WORDS = re.compile(r"\w+", re.UNICODE)  # as run_eval.py, and the key of a heading


def stems(paths):
    """{path: document name stem}: the file name without .md, or the whole path when shared."""
    base = lambda p: os.path.splitext(os.path.basename(p))[0]
    count = collections.Counter(base(p) for p in paths)
    return {p: base(p) if count[base(p)] == 1 else os.path.splitext(p)[0].replace("/", "-")
            for p in paths}


def clean(text):
    """Heading text or a line without its Markdown: links, emphasis, backticks, numbering."""
    s = LINK.sub(r"\1", text)
    s = s.replace("`", "")
    s = EMPHASIS.sub("", s)
    s = NUMBER.sub("", s.strip())
    return re.sub(r"\s+", " ", s).strip().rstrip(".:").strip()


def line_key(line):
    return clean(LIST_MARK.sub("", line)).lower()


def split_markdown(text):
    """[(heading or None, [body lines], [is the line in a code block])] in file order."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    sections = [[None, [], []]]
    fence = None
    for line in lines:
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            sections[-1][1].append(line)
            sections[-1][2].append(True)
            continue
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and not line.strip().strip(fence[0]):
                fence = None
            sections[-1][1].append(line)
            sections[-1][2].append(True)
            continue
        h = ATX.match(line)
        if h and len(h.group(1)) <= 4 and (h.group(2) or "").strip():
            sections.append([h.group(2).strip(), [], []])
            continue
        sections[-1][1].append(line)
        sections[-1][2].append(False)
    if sections[0][0] is None and not any(l.strip() for l in sections[0][1]):
        sections.pop(0)
    return [tuple(s) for s in sections]


def trim(body):
    while body and not body[0].strip():
        body = body[1:]
    while body and not body[-1].strip():
        body = body[:-1]
    return body


def source_dir(out):
    return os.path.join(out, "source")


def snapshot(out, rev):
    dest = source_dir(out)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", rev], check=True,
                            capture_output=True, text=True).stdout.strip()
    kept = set()
    for path in SOURCES:
        r = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:{path}"], capture_output=True)
        if r.returncode != 0:
            print(f"not at {commit}, left out: {path}")
            continue
        target = os.path.join(dest, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as fh:
            fh.write(r.stdout)
        kept.add(os.path.normpath(target))
        print(f"{path}: {len(r.stdout)} bytes")
    for d, _, files in os.walk(dest, topdown=False):
        for f in files:
            p = os.path.normpath(os.path.join(d, f))
            if p not in kept:
                os.remove(p)
        if d != dest and not os.listdir(d):
            os.rmdir(d)
    print(f"snapshot of {len(kept)} files at {commit} in {dest}")


def build(out):
    """(docs {file name: text}, queries [dict], stats Counter)."""
    src = source_dir(out)
    paths = [p for p in SOURCES if os.path.isfile(os.path.join(src, p))]
    if not paths:
        raise SystemExit(f"no sources in {src}: run with --snapshot first")
    stem = stems(paths)
    docs = {}
    headings = []  # (query, target file or None, source path, raw heading)
    where = {}     # (source path, raw heading) -> target file
    stats = collections.Counter({"lines dropped: repeat a heading": 0})
    for path in paths:
        with open(os.path.join(src, path), encoding="utf-8") as fh:
            text = fh.read()
        sections = split_markdown(text)
        own = {line_key(h) for h, _, _ in sections if h}
        nn = 0
        for heading, lines, code in sections:
            body = []
            for line, in_code in zip(lines, code):
                if not in_code and line.strip() and line_key(line) in own:
                    stats["lines dropped: repeat a heading"] += 1
                    continue
                body.append(line)
            body = trim(body)
            target = None
            if len("\n".join(body).encode("utf-8")) >= MIN_BODY_BYTES:
                target = f"{stem[path]}__{nn:02d}.md"
                docs[target] = f"{path} — section {nn:02d}\n\n" + "\n".join(body) + "\n"
                nn += 1
            else:
                stats["sections: body under %d bytes, no document" % MIN_BODY_BYTES] += 1
            if heading is not None:
                headings.append((clean(heading), target, path, heading))
                where[(path, heading)] = target

    def key(q):
        return " ".join(w.lower() for w in WORDS.findall(q))

    seen = collections.Counter(key(q) for q, *_ in headings)
    queries = []
    for q, target, _, _ in headings:
        stats["headings"] += 1
        if target is None:
            stats["headings dropped: section is no document"] += 1
        elif len(WORDS.findall(q)) < 2:
            stats["headings dropped: fewer than 2 words"] += 1
        elif seen[key(q)] > 1:
            stats["headings dropped: not unique"] += 1
        else:
            queries.append({"query": q, "target": target, "kind": "heading"})

    faq_seen = set()
    for q, path, heading, phrase in FAQ:
        target = where.get((path, heading))
        if target is None:
            raise SystemExit(f"faq {q!r}: no document for {path} {heading!r}")
        if phrase.lower() not in re.sub(r"\s+", " ", docs[target]).lower():
            raise SystemExit(f"faq {q!r}: {target} does not contain {phrase!r}")
        if q.lower() in faq_seen:
            raise SystemExit(f"faq {q!r} twice")
        faq_seen.add(q.lower())
        queries.append({"query": q, "target": target, "kind": "faq"})
    stats["documents"] = len(docs)
    stats["sources"] = len(paths)
    sizes = sorted(len(t.encode("utf-8")) for t in docs.values())
    stats["document bytes: min"] = sizes[0]
    stats["document bytes: median"] = sizes[len(sizes) // 2]
    stats["document bytes: max"] = sizes[-1]
    for kind in ("heading", "faq"):
        stats[f"{kind} queries"] = sum(1 for x in queries if x["kind"] == kind)
    return docs, queries, stats


def write(out, docs, queries):
    d = os.path.join(out, "docs")
    os.makedirs(d, exist_ok=True)
    for f in sorted(os.listdir(d)):
        if f.endswith((".md", ".txt")) and f not in docs:
            os.remove(os.path.join(d, f))
    for f, text in sorted(docs.items()):
        with open(os.path.join(d, f), "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    with open(os.path.join(out, "queries.jsonl"), "w", encoding="utf-8", newline="\n") as fh:
        for q in queries:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")


def baseline(out, verbose=False):
    sys.path.insert(0, HERE)
    import run_eval  # noqa: E402  (stdlib only)
    docs = run_eval.load_docs(os.path.join(out, "docs"), ".md")
    with open(os.path.join(out, "queries.jsonl"), encoding="utf-8") as fh:
        queries = [json.loads(l) for l in fh if l.strip()]
    bm25 = run_eval.Bm25Pages(docs)
    ranks = collections.defaultdict(list)
    for q in queries:
        ranked = bm25.search(q["query"])
        r = run_eval.rank_of(q["target"], ranked)
        ranks[q["kind"]].append(r)
        ranks["all"].append(r)
        if verbose and r != 1:
            print(f"  {q['kind']:<7} rank {r or '>10':<3} {q['target']:<26} {q['query']} "
                  f"(first: {ranked[0] if ranked else '-'})")
    print(f"BM25 pages (baseline) on {len(docs)} documents, MRR@10 / hit@10:")
    for kind in ("heading", "faq", "all"):
        s = run_eval.summarize(ranks[kind])
        if s["n"]:
            print(f"  {kind:<8} n={s['n']:<4} MRR@10 {s['mrr']:.3f}  hit@10 {s['hit']:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "testdata", "ranking"))
    ap.add_argument("--snapshot", nargs="?", const="HEAD", metavar="REV",
                    help="copy SOURCES as committed at REV (default HEAD) into OUT/source/")
    ap.add_argument("--baseline", action="store_true",
                    help="print the page-level BM25 MRR@10 of the set in --out; write nothing")
    ap.add_argument("--verbose", action="store_true",
                    help="with --baseline: every query whose target is not first")
    args = ap.parse_args()
    if args.snapshot:
        snapshot(args.out, args.snapshot)
        return
    if args.baseline:
        baseline(args.out, args.verbose)
        return
    docs, queries, stats = build(args.out)
    write(args.out, docs, queries)
    for k in sorted(stats):
        print(f"{k}: {stats[k]}")


if __name__ == "__main__":
    main()
