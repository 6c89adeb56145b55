#!/usr/bin/env bash
# Fetches the HTML manuals the search-quality harness (bench/quality/) measures on: Debian doc
# packages, downloaded with `apt-get download` and unpacked with `dpkg-deb -x` into a cache
# directory. Nothing is installed (installing a doc package can upgrade installed packages).
#
#   bench/quality/fetch_manuals.sh [--cache DIR] [--only NAME]... [--add NAME:PACKAGE:HTML_DIR]...
#
# Writes DIR/manuals.tsv (name, package, version, absolute HTML directory, held-out flag), which
# build_sets.py reads. Default DIR: bench/quality/.cache (git-ignored).
#
# The manuals, each a different HTML generator so that the harness is not tuned to one layout:
#   postgresql  DocBook XSL, index page bookindex.html (term -> page)
#   python      Sphinx, genindex-*.html; faq/ pages with questions as headings
#   zsh         texinfo (texi2any) split by chapter, five index nodes; yodl-generated FAQ pages
#   octave      texinfo split by node, Concept/Function indexes.  HELD OUT: do not tune ranking on
#               it; look at its numbers only to check a change that was chosen on the other three.
# Re-running on other manuals: --add NAME:PACKAGE:PATH/OF/HTML/INSIDE/THE/PACKAGE (with --only to
# fetch just those); build_sets.py finds index pages and headings by itself.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$here/.cache
only=()
# name package html-dir-inside-the-package held-out
manuals=(
  "postgresql postgresql-doc-15 usr/share/doc/postgresql-doc-15/html no"
  "python python3.11-doc usr/share/doc/python3.11/html no"
  "zsh zsh-doc usr/share/doc/zsh-common/html no"
  "octave octave-doc usr/share/doc/octave/octave.html yes"
)
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) cache=$2; shift 2 ;;
    --only) only+=("$2"); shift 2 ;;
    --add) IFS=: read -r n p d <<<"$2"; manuals+=("$n $p $d no"); shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$cache/debs" "$cache/root"
cache=$(cd "$cache" && pwd)
# apt-get download runs as the _apt user where it can: let it write into the download directory.
chmod 0777 "$cache/debs" 2>/dev/null || true
tsv=$cache/manuals.tsv
: >"$tsv.new"
updated=no
for m in "${manuals[@]}"; do
  read -r name pkg dir heldout <<<"$m"
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $name "* ]]; then continue; fi
  deb=$(ls "$cache/debs/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
  if [ -z "$deb" ]; then
    if [ $updated = no ]; then apt-get update -qq >/dev/null 2>&1 || true; updated=yes; fi
    (cd "$cache/debs" && apt-get download -qq "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
    deb=$(ls "$cache/debs/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || { echo "error: could not download $pkg" >&2; exit 1; }
  fi
  version=$(dpkg-deb -f "$deb" Version)
  root=$cache/root/$name
  if [ ! -f "$root/.unpacked-$version" ]; then
    rm -rf "$root"; mkdir -p "$root"
    dpkg-deb -x "$deb" "$root"
    touch "$root/.unpacked-$version"
  fi
  [ -d "$root/$dir" ] || { echo "error: $pkg has no $dir" >&2; exit 1; }
  pages=$(find "$root/$dir" -name '*.html' | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$pkg" "$version" "$root/$dir" "$heldout" >>"$tsv.new"
  printf '%-12s %-20s %-24s %5d HTML files%s\n' "$name" "$pkg" "$version" "$pages" \
    "$([ "$heldout" = yes ] && echo '  (held out)')"
done
mv "$tsv.new" "$tsv"
echo "$tsv"
