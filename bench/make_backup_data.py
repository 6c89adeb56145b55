#!/usr/bin/env python3
"""Writes generated Markdown documents for the backup benchmark.

Text is generated, not downloaded, so the data set is the same on every machine: a vocabulary of
40,000 pseudo-words (2-12 letters, seeded) drawn with Zipf-like frequencies (1/rank), in
sentences of 8-24 words, paragraphs of 3-8 sentences, sections of 2-5 paragraphs under headings.
Every document is 6-14 KB. Ingested by `knowledgebeast ingest`, 70 MB of such text makes a data
directory of about 1 GB (chunks, embeddings, FTS5 index and journal).

  make_backup_data.py OUT_DIR MEGABYTES [--seed N] [--projects P]
writes OUT_DIR/p0 .. OUT_DIR/p{P-1}, one directory of documents per project.
  make_backup_data.py --mutate DIR FRACTION --seed N
rewrites FRACTION of the documents below DIR in place (one paragraph changed in each) and prints
the paths of the changed files, one per line.
"""
import argparse
import bisect
import os
import random


def vocabulary(rng, size=40000):
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(2, 12))))
    words = sorted(words)
    rng.shuffle(words)
    weights = [1.0 / (rank + 1) for rank in range(size)]
    cumulative = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    return words, cumulative, total


def sentence(rng, vocab):
    words, cumulative, total = vocab
    n = rng.randint(8, 24)
    picked = [words[bisect.bisect_left(cumulative, rng.random() * total)] for _ in range(n)]
    picked[0] = picked[0].capitalize()
    return " ".join(picked) + "."


def paragraph(rng, vocab):
    return " ".join(sentence(rng, vocab) for _ in range(rng.randint(3, 8)))


def document(rng, vocab, index):
    parts = ["# Document %d: %s\n" % (index, sentence(rng, vocab)[:60])]
    target = rng.randint(6000, 14000)
    size = 0
    section = 0
    while size < target:
        section += 1
        parts.append("\n## Section %d\n" % section)
        for _ in range(rng.randint(2, 5)):
            p = paragraph(rng, vocab)
            parts.append("\n" + p + "\n")
            size += len(p)
    return "".join(parts)


def generate(out, megabytes, seed, projects):
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    budget = megabytes * 1024 * 1024
    written = 0
    index = 0
    for p in range(projects):
        os.makedirs(os.path.join(out, "p%d" % p), exist_ok=True)
    while written < budget:
        text = document(rng, vocab, index)
        path = os.path.join(out, "p%d" % (index % projects), "doc%06d.md" % index)
        with open(path, "w") as f:
            f.write(text)
        written += len(text)
        index += 1
    print("%d documents, %.1f MB in %s" % (index, written / 1e6, out))


def mutate(directory, fraction, seed):
    rng = random.Random(seed)
    vocab = vocabulary(random.Random(42))
    files = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(directory)
        for name in names
        if name.endswith(".md"))
    chosen = rng.sample(files, max(1, int(len(files) * fraction)))
    for path in chosen:
        with open(path) as f:
            text = f.read()
        paragraphs = text.split("\n\n")
        k = rng.randrange(1, len(paragraphs))
        paragraphs[k] = paragraph(rng, vocab)
        with open(path, "w") as f:
            f.write("\n\n".join(paragraphs))
        print(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("megabytes", nargs="?", type=float)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--projects", type=int, default=4)
    ap.add_argument("--mutate", nargs=2, metavar=("DIR", "FRACTION"))
    args = ap.parse_args()
    if args.mutate:
        mutate(args.mutate[0], float(args.mutate[1]), args.seed)
    else:
        generate(args.out, args.megabytes, args.seed, args.projects)


if __name__ == "__main__":
    main()
