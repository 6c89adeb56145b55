#!/usr/bin/env python3
"""Builds known-item query sets from HTML manuals, for bench/quality/run_eval.py.

    bench/quality/build_sets.py [--manifest .cache/manuals.tsv] [--out .cache/sets]
                                [--manual NAME]... [--html NAME=DIR]... [--max-queries 1500]

For every manual (a directory of HTML pages; fetch_manuals.sh lists them in manuals.tsv) it writes
OUT/NAME/:

  docs/*.txt       one file per page: the page title on the first line, a blank line, then the
                   page's visible text (navigation bars and sidebars left out), blocks separated by
                   blank lines. Indexed for the "term" set.
  docs_noheadings/ the same pages with every section heading removed, and with every line that
                   repeats one of the page's own headings (its local table of contents) removed;
                   the title line stays. Indexed for the "heading" and "faq" sets.
  terms.jsonl      {"query", "target_doc", "kind": "term"}: entries of the manual's index pages
                   (DocBook bookindex, Sphinx genindex, texinfo index nodes, ...) that point at
                   exactly one page. Sub-entries are joined to their parent ("autocommit psql").
                   Trailing qualifiers in parentheses are dropped: "getcwd() (in module os)" ->
                   "getcwd()".
  headings.jsonl   {"kind": "heading"}: section headings (numbering removed) that are headings of
                   exactly one page, are not that page's title and are not any page's title.
  faq.jsonl        {"kind": "faq"}: the headings among those that are questions (end in "?"), e.g.
                   FAQ entries; written only when a manual has at least 20.
  manifest.json    counts, the sampling seed and what was left out.

Every page's text is extracted once here; every system under test gets the same files. Sets are
sampled to at most --max-queries queries (fixed seed), so a full run takes minutes. Index pages
themselves, search pages, module indexes and redirect stubs are not documents.
Python 3 standard library only.
"""
import argparse
import collections
import json
import os
import posixpath
import random
import re
import shutil
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

SEED = 20261207

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr"}
# Text inside these is not visible page text.
SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "button", "select", "textarea",
             "head"}
# Navigation chrome of the common generators (DocBook XSL, Sphinx, texinfo, generic): prev/next
# bars repeat neighbouring pages' titles on every page, sidebars repeat the local contents.
NAV_CLASSES = {"navheader", "navfooter", "nav-panel", "header", "footer", "sphinxsidebar",
               "sphinxsidebarwrapper", "related", "headerlink", "breadcrumb", "breadcrumbs",
               "navigation", "mobile-nav", "navbar", "skip-link", "copiable-anchor",
               "copiable-link"}
NAV_TAGS = {"nav"}
BLOCK_TAGS = {"address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
              "details", "dialog", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure",
              "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "html", "li",
              "main", "menu", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody",
              "td", "tfoot", "th", "thead", "title", "tr", "ul", "br"}
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

# Pages that list the manual rather than say something: index pages are parsed for the term set
# and never indexed as documents.
INDEX_PAGE_RE = re.compile(
    r"^(genindex(-[^/]*)?|bookindex|ix\d+|index-all|(.*[-_])?Index(-\d+)?|"
    r"(.*[-_])?index-[a-z]{2}(-\d+)?)\.html?$")
NOT_A_DOCUMENT_RE = re.compile(r"^(search|(py-|.*-)?modindex|genindex)(-[^/]*)?\.html?$")

WORD_RE = re.compile(r"\w", re.UNICODE)
LETTER_RE = re.compile(r"[^\W\d_]", re.UNICODE)
WS_RE = re.compile(r"\s+")
# Section numbering in front of a heading: "5.4.1. ", "16.2.9 ", "3.1: ", "A.2. ", "D.2.2 ",
# "II. ", "Chapter 5. ", "Appendix F " (a lone letter or Roman numeral needs its "." or ":",
# so that "A Simple Example" keeps its "A").
NUMBER_RE = re.compile(
    r"^(?:(?:Chapter|Part|Appendix|Section|Annex)\s+(?:\d+|[A-Z]|[IVXLCDM]+)(?:\.\d+)*[.:]?"
    r"|\d+(?:\.\d+)*[.:]?|[A-Z](?:\.\d+)+\.?:?|[A-Z][.:]|[IVXLCDM]+[.:])\s+")


def collapse(s):
    return WS_RE.sub(" ", s).strip()


def strip_number(s):
    s = collapse(s).replace("\u00b6", "").strip()
    return NUMBER_RE.sub("", s, count=1).strip()


def norm(s):
    """The comparison key of a heading, title or index term."""
    return collapse(strip_number(s).lower()).rstrip(" .:")


def has_word(s):
    return WORD_RE.search(s) is not None


class PageParser(HTMLParser):
    """Visible text of one page as blocks: ("heading", level, text) and ("text", 0, text)."""

    def __init__(self, own_name=""):
        super().__init__(convert_charrefs=True)
        self.own_name = own_name
        self.links_away = False  # the current heading links to another page
        self.stack = []  # [tag, hides, heading_level, pre]
        self.hidden = 0
        self.pre = 0
        self.heading = 0
        self.buf = []
        self.blocks = []
        self.title_parts = []
        self.in_title = False
        self.redirect = False

    def _flush(self):
        if not self.buf:
            return
        raw = "".join(self.buf)
        self.buf = []
        if self.pre and not self.heading:
            lines = [l.rstrip() for l in raw.split("\n")]
            while lines and not lines[0].strip():
                lines.pop(0)
            while lines and not lines[-1].strip():
                lines.pop()
            # A blank line inside <pre> would end the paragraph for a plain-text parser; keep
            # the example one block.
            text = "\n".join(l for l in lines if l.strip())
        else:
            text = collapse(raw)
        links_away, self.links_away = self.links_away, False
        if text:
            # A "heading" that is a link to another page is an entry of a table of contents
            # (the zsh FAQ's contents page), not a section of this page.
            kind = "heading" if self.heading and not links_away else "text"
            if kind == "heading":
                text = collapse(text.replace("\u00b6", ""))
                if not text:
                    return
            self.blocks.append((kind, self.heading, text))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            self.redirect = True
        if tag == "title":
            self.in_title = True
        if tag in VOID:
            if tag in ("br", "hr"):
                if self.pre:
                    self.buf.append("\n")
                else:
                    self.buf.append(" ")
            return
        if tag == "a" and self.heading and a.get("href"):
            path = urlsplit(a["href"]).path
            if path and posixpath.basename(unquote(path)) != self.own_name:
                self.links_away = True
        classes = set((a.get("class") or "").split())
        hides = (tag in SKIP_TAGS or tag in NAV_TAGS or bool(classes & NAV_CLASSES)
                 or (a.get("role") or "") == "navigation"
                 or (a.get("aria-hidden") or "") == "true")
        level = HEADINGS.get(tag, 0)
        if tag in BLOCK_TAGS:
            self._flush()
        self.stack.append([tag, hides, level, tag == "pre"])
        if hides:
            self.hidden += 1
        if tag == "pre":
            self.pre += 1
        if level and not self.heading:
            self.heading = level  # the outermost heading element decides

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag in VOID:
            return
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                break
        else:
            return
        if tag in BLOCK_TAGS or any(e[0] in BLOCK_TAGS for e in self.stack[i:]):
            self._flush()
        for _, hides, _, pre in self.stack[i:]:
            self.hidden -= hides
            self.pre -= pre
        del self.stack[i:]
        self.heading = next((e[2] for e in self.stack if e[2]), 0)

    def handle_data(self, data):
        if self.in_title:
            self.title_parts.append(data)
            return
        if self.hidden:
            return
        self.buf.append(data)

    def close(self):
        super().close()
        self._flush()


class Node:
    __slots__ = ("tag", "attrs", "children", "parent")

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.children, self.parent = tag, attrs, [], parent


class TreeParser(HTMLParser):
    """A small DOM for index pages, closing <li>/<dt>/<dd>/<tr>/<td>/<p> implicitly."""
    IMPLIED = {"li": ({"li"}, {"ul", "ol", "menu"}), "dt": ({"dt", "dd"}, {"dl"}),
               "dd": ({"dt", "dd"}, {"dl"}), "tr": ({"tr", "td", "th"}, {"table", "tbody",
                                                                         "thead", "tfoot"}),
               "td": ({"td", "th"}, {"tr"}), "th": ({"td", "th"}, {"tr"})}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.IMPLIED:
            closes, scope = self.IMPLIED[tag]
            n = self.cur
            while n is not self.root and n.tag not in scope:
                if n.tag in closes:
                    self.cur = n.parent
                    break
                n = n.parent
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def text_of(node):
    out = []

    def rec(n):
        for c in n.children:
            if isinstance(c, str):
                out.append(c)
            elif c.tag not in SKIP_TAGS:
                rec(c)
    rec(node)
    return collapse("".join(out))


PAREN_TAIL_RE = re.compile(r"\s*(\([^()]*\)|\[[^\[\]]*\])\s*$")


def clean_term(s):
    s = collapse(s).strip(" ,;:")
    while True:
        m = PAREN_TAIL_RE.search(s)
        if not m or not has_word(s[:m.start()]):
            break
        s = s[:m.start()].rstrip(" ,;:")
    return s


def index_entries(index_rel, tree, resolve):
    """Yields (term, [target page rel paths]) for every entry of an index page."""
    NESTED = {"ul", "ol", "dl", "table", "dd", "menu"}

    def own(entry):
        """The entry's own text before its first link, its first link's text, its links;
        nested lists (sub-entries) are not its own."""
        pre, links = [], []  # links: (href, text)

        def rec(n):
            for c in n.children:
                if isinstance(c, str):
                    if not links:
                        pre.append(c)
                elif c.tag in NESTED or c.tag in SKIP_TAGS:
                    continue
                elif c.tag == "a" and c.attrs.get("href"):
                    links.append((c.attrs["href"], text_of(c)))
                else:
                    rec(c)
        rec(entry)
        hrefs = [h for h, _ in links]
        first_a = links[0][1] if links else ""
        pre_text = collapse("".join(pre))
        term = clean_term(pre_text) if has_word(pre_text) else clean_term(first_a)
        if not has_word(pre_text) and not has_word(term):
            term = clean_term(pre_text + " " + first_a)
        targets = []
        for h in hrefs:
            t = resolve(index_rel, h)
            if t and t not in targets:
                targets.append(t)
        return term, targets

    def join(parent, term):
        if parent and not has_word(clean_term(term)) or PAREN_TAIL_RE.fullmatch(term):
            # Sphinx lists the owners of a name as its sub-entries: "close()" ->
            # "(sqlite3.Cursor method)", "(sqlite3.Connection method)". The entry is the name.
            return parent or term
        return collapse(f"{parent} {term}") if parent else term

    def walk(node, parent):
        last_dt = None
        for c in node.children:
            if isinstance(c, str):
                continue
            if c.tag in ("li", "dt", "tr"):
                term, targets = own(c)
                full = join(parent, term) if term else parent
                if term and targets:
                    yield full, targets
                if c.tag == "dt":
                    last_dt = full
                yield from walk(c, full if (term and c.tag == "li") else parent)
            elif c.tag == "dd":
                yield from walk(c, last_dt if last_dt is not None else parent)
            else:
                yield from walk(c, parent)

    yield from walk(tree.root, "")


def doc_name(rel):
    base = re.sub(r"\.html?$", "", rel)
    return re.sub(r"[^A-Za-z0-9._-]", "_", base.replace("/", "__")) + ".txt"


def common_title_suffix(titles):
    """The longest tail (after a space) shared by at least half of the titles, e.g.
    " — Python 3.11.2 documentation" or " (zsh)"."""
    counts = collections.Counter()
    for t in set(titles):
        for i, ch in enumerate(t):
            if ch == " " and i > 0:
                counts[t[i:]] += 1
    best = ""
    need = max(2, len(set(titles)) // 2)
    for suffix, n in counts.items():
        if n >= need and len(suffix) > len(best) and has_word(suffix):
            best = suffix
    return best


def build_manual(name, html_dir, out_dir, max_queries, log):
    pages = {}
    for dirpath, dirnames, filenames in os.walk(html_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for f in sorted(filenames):
            if f.endswith((".html", ".htm")):
                full = os.path.join(dirpath, f)
                rel = os.path.relpath(full, html_dir).replace(os.sep, "/")
                pages[rel] = full

    index_pages = [r for r in pages if INDEX_PAGE_RE.match(posixpath.basename(r))]
    skipped = collections.Counter()
    parsed = {}
    for rel, full in pages.items():
        base = posixpath.basename(rel)
        if rel in index_pages or NOT_A_DOCUMENT_RE.match(base):
            skipped["index or search page"] += 1
            continue
        with open(full, "rb") as fh:
            raw = fh.read().decode("utf-8", errors="replace")
        p = PageParser(base)
        p.feed(raw)
        p.close()
        if p.redirect:
            skipped["redirect stub"] += 1
            continue
        body_words = sum(len(b[2].split()) for b in p.blocks)
        if body_words < 5:
            skipped["fewer than 5 words"] += 1
            continue
        parsed[rel] = (collapse("".join(p.title_parts)), p.blocks)

    suffix = common_title_suffix([t for t, _ in parsed.values() if t])
    names = {}
    titles = {}
    for rel, (title, blocks) in parsed.items():
        if suffix and title.endswith(suffix) and len(title) > len(suffix):
            title = title[: -len(suffix)].rstrip(" -—|:")
        titles[rel] = collapse(title)
    shared = collections.Counter(norm(t) for t in titles.values())
    for rel, (_, blocks) in parsed.items():
        # No title, or one that several pages share (all zsh FAQ chapters are "Z-Shell
        # Frequently-Asked Questions"): the first heading names the page better.
        if not has_word(titles[rel]) or shared[norm(titles[rel])] > 1:
            first = next((b[2] for b in blocks if b[0] == "heading"), "")
            if first:
                titles[rel] = first
            elif not has_word(titles[rel]):
                titles[rel] = re.sub(r"\.html?$", "", posixpath.basename(rel))
    for rel in parsed:
        n = doc_name(rel)
        while n in names.values():
            n = n[:-4] + "_.txt"
        names[rel] = n

    # Headings: which pages have each (normalised) heading.
    title_keys = {norm(t) for t in titles.values()}
    heading_pages = collections.defaultdict(set)
    first_text = {}
    for rel, (_, blocks) in parsed.items():
        for kind, level, text in blocks:
            if kind == "heading":
                k = norm(text)
                if k:
                    heading_pages[k].add(rel)
                    first_text.setdefault((k, rel), strip_number(text))

    for sub in ("docs", "docs_noheadings"):
        d = os.path.join(out_dir, sub)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
    total_bytes = 0
    for rel, (_, blocks) in parsed.items():
        title = titles[rel]
        full_text = title + "\n\n" + "\n\n".join(b[2] for b in blocks) + "\n"
        own_keys = {norm(b[2]) for b in blocks if b[0] == "heading"}
        kept = [b[2] for b in blocks if b[0] != "heading" and norm(b[2]) not in own_keys]
        nohead_text = title + "\n\n" + "\n\n".join(kept) + "\n"
        with open(os.path.join(out_dir, "docs", names[rel]), "w", encoding="utf-8") as fh:
            fh.write(full_text)
        with open(os.path.join(out_dir, "docs_noheadings", names[rel]), "w",
                  encoding="utf-8") as fh:
            fh.write(nohead_text)
        total_bytes += len(full_text.encode("utf-8"))

    heading_q, faq_q = [], []
    for k, rels in sorted(heading_pages.items()):
        if len(rels) != 1:
            continue
        rel = next(iter(rels))
        if k in title_keys or k == norm(titles[rel]):
            continue
        text = first_text[(k, rel)]
        if not LETTER_RE.search(text) or len(text) > 300:
            continue
        q = {"query": text, "target_doc": names[rel]}
        (faq_q if text.rstrip().endswith("?") else heading_q).append(q)

    # Index terms: every index page, all entries pooled, terms that point at one page only.
    def resolve(index_rel, href):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or not parts.path:
            return None
        target = posixpath.normpath(posixpath.join(posixpath.dirname(index_rel),
                                                   unquote(parts.path)))
        return target if target in names else None

    term_targets = collections.defaultdict(set)
    term_text = {}
    entries_seen = 0
    for rel in sorted(index_pages):
        with open(pages[rel], "rb") as fh:
            raw = fh.read().decode("utf-8", errors="replace")
        tp = TreeParser()
        tp.feed(raw)
        tp.close()
        for term, targets in index_entries(rel, tp, resolve):
            if not has_word(term) or len(term) > 200:
                continue
            entries_seen += 1
            k = collapse(term.lower())
            term_targets[k].update(targets)
            term_text.setdefault(k, term)
    term_q = [{"query": term_text[k], "target_doc": names[next(iter(t))]}
              for k, t in sorted(term_targets.items()) if len(t) == 1]

    def sample(qs, kind):
        rng = random.Random(f"{SEED}:{name}:{kind}")
        if len(qs) > max_queries:
            qs = rng.sample(qs, max_queries)
        return [dict(q, kind=kind) for q in sorted(qs, key=lambda q: (q["target_doc"],
                                                                         q["query"]))]

    sets = {"terms": sample(term_q, "term"), "headings": sample(heading_q, "heading")}
    if len(faq_q) >= 20:
        sets["faq"] = sample(faq_q, "faq")
    for f in ("terms", "headings", "faq"):
        p = os.path.join(out_dir, f + ".jsonl")
        if os.path.exists(p):
            os.remove(p)
    for f, qs in sets.items():
        with open(os.path.join(out_dir, f + ".jsonl"), "w", encoding="utf-8") as fh:
            for q in qs:
                fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    # How many queries share no word with their target page (index terms such as zsh's
    # "ALIASFUNCDEF" for ALIAS_FUNC_DEF): out of reach of any purely lexical match.
    no_word = {}
    for f, qs in sets.items():
        sub = "docs" if f == "terms" else "docs_noheadings"
        cache = {}
        n = 0
        for q in qs:
            if q["target_doc"] not in cache:
                with open(os.path.join(out_dir, sub, q["target_doc"]), encoding="utf-8") as fh:
                    cache[q["target_doc"]] = set(re.findall(r"\w+", fh.read().lower()))
            if not set(re.findall(r"\w+", q["query"].lower())) & cache[q["target_doc"]]:
                n += 1
        no_word[f] = n
    manifest = {
        "manual": name, "html_dir": html_dir, "seed": SEED, "max_queries": max_queries,
        "documents": len(parsed), "text_bytes": total_bytes, "title_suffix_removed": suffix,
        "index_pages": sorted(index_pages), "skipped_pages": dict(skipped),
        "index_entries": entries_seen, "index_terms": len(term_targets),
        "index_terms_one_page": len(term_q),
        "headings_unique": len(heading_q), "faq_questions": len(faq_q),
        "queries": {f: len(qs) for f, qs in sets.items()},
        "queries_sharing_no_word_with_target": no_word,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1)
    log(f"{name}: {len(parsed)} documents ({total_bytes / 1e6:.1f} MB), "
        f"{len(index_pages)} index pages, terms {len(term_q)} -> {len(sets['terms'])}, "
        f"headings {len(heading_q)} -> {len(sets['headings'])}, faq {len(faq_q)}"
        + (f" -> {len(sets['faq'])}" if "faq" in sets else " (no set)")
        + f"; queries sharing no word with their page {no_word}; skipped {dict(skipped)}")
    return manifest


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default=os.path.join(here, ".cache", "manuals.tsv"),
                    help="manuals.tsv written by fetch_manuals.sh")
    ap.add_argument("--out", default=os.path.join(here, ".cache", "sets"))
    ap.add_argument("--manual", action="append", default=[],
                    help="only this manual of the manifest (repeatable)")
    ap.add_argument("--html", action="append", default=[], metavar="NAME=DIR",
                    help="a manual given directly by its HTML directory (repeatable)")
    ap.add_argument("--max-queries", type=int, default=1500, help="per set and manual")
    args = ap.parse_args()

    manuals = []
    for spec in args.html:
        n, _, d = spec.partition("=")
        manuals.append((n, d, False))
    if not args.html:
        if not os.path.exists(args.manifest):
            sys.exit(f"no {args.manifest}: run bench/quality/fetch_manuals.sh first")
        with open(args.manifest, encoding="utf-8") as fh:
            for line in fh:
                f = line.rstrip("\n").split("\t")
                if len(f) >= 4 and (not args.manual or f[0] in args.manual):
                    manuals.append((f[0], f[3], len(f) > 4 and f[4] == "yes"))
    if not manuals:
        sys.exit("no manual selected")
    os.makedirs(args.out, exist_ok=True)
    for n, d, heldout in manuals:
        m = build_manual(n, d, os.path.join(args.out, n), args.max_queries,
                         lambda s: print(s, file=sys.stderr))
        m["held_out"] = heldout
        with open(os.path.join(args.out, n, "manifest.json"), "w", encoding="utf-8") as fh:
            json.dump(m, fh, indent=1)
    print(args.out)


if __name__ == "__main__":
    main()
