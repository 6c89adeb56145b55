#!/usr/bin/env bash
# Builds the benchmark corpus: real documentation from Debian packages (HTML manuals of Python,
# PostgreSQL and the Linux kernel), unpacked without installing them.
#   bench/make_corpus.sh [DIR]     (default /tmp/kb-corpus) -> prints the directory to pass
#                                   as kb_bench --corpus / index_bench --corpus
# About 290 MB of text once unpacked; enough for 100,000 chunks of ~1,000 characters.
set -euo pipefail
dir=${1:-/tmp/kb-corpus}
mkdir -p "$dir"
cd "$dir"
if [ ! -d root/usr/share/doc ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get download python3.11-doc postgresql-doc-15 linux-doc-6.1 >/dev/null
  mkdir -p root
  for deb in ./*.deb; do dpkg-deb -x "$deb" root; done
fi
echo "$dir/root/usr/share/doc"
