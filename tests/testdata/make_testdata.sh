#!/usr/bin/env bash
# Makes the FROZEN compatibility files under tests/testdata/ with the real binary:
#   v2-data/   a data directory: catalog.db, two projects' kb.db with journal entries, their
#              saved vector indexes, and the audit log (audit.db, audit.head).
#   v2-repo/   a version-2 backup repository of that data directory: two snapshots, one
#              passphrase key at the lowest scrypt cost the format allows (README.md here).
#   SHA256SUMS the sha256 of every frozen file; tests/compat checks it.
# Run it ONCE, when a format version is frozen; never to make a failing compat test pass (the
# point of the files is that they were written by an older binary). Then put the ids and
# checksums it prints into tests/compat/compat_test.cc and commit everything.
#
# Usage: tests/testdata/make_testdata.sh [BINARY]   (default: build/knowledgebeast)
# Needs: python3 with python3-cryptography (rewrap_key.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$(realpath "${1:-$root/build/knowledgebeast}")"
work="$(mktemp -d)"
trap '[ -n "${KB_KEEP_TESTDATA_WORK:-}" ] || rm -rf "$work"' EXIT

passphrase="knowledgebeast compat v2"  # documented in README.md; the test uses it
data="$work/data"
repo="$work/repo"
kb() { env -u KB_CONFIG -u KB_DATA_DIR -u KB_BACKUP_KEY_FILE -u KB_BACKUP_REPOSITORY \
         KB_BACKUP_PASSWORD="$passphrase" "$bin" "$@" --data-dir "$data"; }

# The source documents: fixed text, so that the expected hits are clear.
mkdir -p "$work/src/handbook" "$work/src/recipes" "$work/src/later"
cat > "$work/src/handbook/backups.md" <<'DOC'
# Backups

Backups run every hour. Each snapshot is encrypted and deduplicated, and a weekly drill restores
the newest one into a scratch server to prove that it works.
DOC
cat > "$work/src/handbook/oncall.md" <<'DOC'
# On-call

The on-call engineer answers pages within fifteen minutes. Escalate to the platform lead when a
database is damaged or a restore is needed.
DOC
cat > "$work/src/handbook/glossary.txt" <<'DOC'
Glossary. A quokka is a small marsupial that lives on Rottnest island. A snapshot is one point in
time of the whole data directory.
DOC
cat > "$work/src/recipes/bread.md" <<'DOC'
# Sourdough bread

Mix flour, water and starter; fold every half hour; bake in a hot dutch oven for forty minutes.
DOC
cat > "$work/src/recipes/soup.html" <<'DOC'
<html><head><title>Pumpkin soup</title></head><body><h1>Pumpkin soup</h1>
<p>Roast the pumpkin with garlic, then blend it with stock and a little cream.</p></body></html>
DOC
cat > "$work/src/later/kayak.txt" <<'DOC'
Kayaks are moved with a double-bladed paddle; canoes with a single blade.
DOC

kb init --admin-token "kb_compat_admin_token_not_a_secret_000000" >/dev/null
kb ingest "$work/src/handbook" --project handbook --create --no-progress
kb ingest "$work/src/recipes" --project recipes --create --no-progress

kb repo init --repo "file://$repo" --label "compat passphrase" >/dev/null
python3 "$here/rewrap_key.py" "$repo" "$passphrase"
kb backup --repo "file://$repo" --tag first
# A second snapshot that differs from the first: one more document in handbook.
kb ingest "$work/src/later" --project handbook --no-progress
kb backup --repo "file://$repo" --tag second
kb check >/dev/null
kb backup verify --repo "file://$repo" --read-data >/dev/null

# What the compat test asserts, printed for the person who freezes the files.
echo "== projects";  kb projects list --json
echo "== stats";     kb stats --json
echo "== snapshots"; kb backup list --repo "file://$repo" --json
echo "== query";     kb query -p handbook "quokka island" --mode keyword --json
echo "== vector";    kb query -p recipes "pumpkin garlic soup" --mode vector --json
echo "== check";     kb check --json

rm -rf "$here/v2-data" "$here/v2-repo"
mkdir -p "$here/v2-data"
# The databases, the vector indexes and the audit log; not the lock file or the WAL side files
# (the binary checkpoints on close, so the .db files are complete).
(cd "$data" && find . -type f \( -name 'catalog.db' -o -name 'kb.db' -o -path '*/index/*' \
   -o -name 'audit.db' -o -name 'audit.head' \) \
   -print0 | xargs -0 cp --parents -p -t "$here/v2-data")
cp -a "$repo" "$here/v2-repo"
(cd "$here" && find v2-data v2-repo -type f | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
du -sh "$here/v2-data" "$here/v2-repo"
