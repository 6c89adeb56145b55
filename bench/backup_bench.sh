#!/usr/bin/env bash
# Backup / restore benchmark on a generated data directory, against the disaster-recovery plan's
# own pipeline (sqlite3 .backup + gzip + openssl enc -aes-256-cbc) on the same data, in the same
# run. Prints one table; docs/PERFORMANCE.md says how it was run and what it showed.
#
#   bench/backup_bench.sh [WORK_DIR] [TEXT_MB] [ROUNDS]
#     WORK_DIR  scratch directory (default /tmp/kb-backup-bench); the data directory is kept
#               there between runs (delete it to regenerate)
#     TEXT_MB   generated text to ingest (default 70 -> a data directory of about 1 GiB)
#     ROUNDS    repetitions of each measurement; medians are reported (default 3)
#
# Measured, each ROUNDS times:
#   full backup  into a fresh local repository: seconds, MB/s of data, repository bytes, peak RSS
#                and peak anonymous memory (RssAnon, sampled)
#   plan backup  sqlite3 .backup of every database + gzip -6 + openssl enc -aes-256-cbc -pbkdf2,
#                and the saved vector indexes (tar | gzip -6 | openssl): the same data as ours
#   incremental  after re-ingesting 1% of the documents (one paragraph changed in each):
#                added bytes (% of the data) and seconds (% of the full backup)
#   restore      `knowledgebeast restore` into a new directory, then `serve` until /ready and a
#                query answers (index loaded from the backup); plan: openssl dec | gunzip into
#                files (indexes included), then `serve` until /ready
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
KB=${KB:-$here/build/knowledgebeast}
work=${1:-/tmp/kb-backup-bench}
text_mb=${2:-70}
rounds=${3:-3}
export KB_BACKUP_PASSWORD=bench-passphrase
export KB_LOG_LEVEL=error
export PLAN_PASSWORD=bench-passphrase
mkdir -p "$work"
data=$work/data
results=$work/results.txt
: > "$results"

now() { date +%s.%N; }
# peak RSS (KiB) of a command: GNU time writes it to the file given with -o
rss_of() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
# Runs a command while sampling its anonymous memory (RssAnon, every 50 ms); the peak (KiB) goes
# to the file $ANON_OUT. RSS also counts pages of memory-mapped files (SQLite maps the databases
# it checks), which are page cache, not memory the process holds; RssAnon is what it holds.
# The command may be a wrapper (/usr/bin/time): its children are sampled too.
sampled() {
  "$@" &
  local pid=$! peak=0 a p
  while kill -0 "$pid" 2>/dev/null; do
    for p in "$pid" $(pgrep -P "$pid" || true); do
      a=$(awk '/^RssAnon/ {print $2}' /proc/$p/status 2>/dev/null || true)
      [ -n "$a" ] && [ "$a" -gt "$peak" ] && peak=$a
    done
    sleep 0.05
  done
  echo "$peak" > "$ANON_OUT"
  wait "$pid"
}
record() { echo "$*" >> "$results"; }

if [ ! -f "$data/catalog.db" ]; then
  echo "generating ${text_mb} MB of text and ingesting it (once)..." >&2
  rm -rf "$work/docs" "$data"
  python3 "$here/bench/make_backup_data.py" "$work/docs" "$text_mb" --projects 4 >&2
  for p in 0 1 2 3; do
    "$KB" ingest --data-dir "$data" --project "p$p" --create --no-progress "$work/docs/p$p" >/dev/null
  done
fi
data_bytes=$(du -sb --exclude=backups "$data" | cut -f1)
echo "data directory: $data_bytes bytes" >&2

for r in $(seq 1 "$rounds"); do
  # --- ours: full backup into a fresh repository
  repo=$work/repo-$r; rm -rf "$repo"
  "$KB" repo init --repo "file://$repo" >/dev/null
  sync; t0=$(now)
  ANON_OUT=$work/anon.txt sampled /usr/bin/time -v -o "$work/time.txt" \
    "$KB" backup --data-dir "$data" --repo "file://$repo" --json > "$work/full.json"
  t1=$(now)
  record full_seconds "$(awk "BEGIN{print $t1 - $t0}")"
  record full_repo_bytes "$(du -sb "$repo" | cut -f1)"
  record full_rss_kib "$(rss_of "$work/time.txt")"
  record full_anon_kib "$(cat "$work/anon.txt")"

  # --- the plan's pipeline on the same files
  plan=$work/plan-$r; rm -rf "$plan"; mkdir -p "$plan"
  sync; t0=$(now)
  for db in "$data"/catalog.db "$data"/projects/*/kb.db; do
    name=$(echo "${db#$data/}" | tr '/' '_')
    sqlite3 "$db" ".backup '$plan/$name'"
    gzip -6 -c "$plan/$name" | openssl enc -aes-256-cbc -pbkdf2 -salt -pass env:PLAN_PASSWORD -out "$plan/$name.gz.enc"
    rm "$plan/$name"
  done
  # The same data as ours: the saved vector indexes too (tar of each project's index directory).
  for idx in "$data"/projects/*/index; do
    id=$(basename "$(dirname "$idx")")
    tar -C "$data/projects/$id" -cf - index | gzip -6 | \
      openssl enc -aes-256-cbc -pbkdf2 -salt -pass env:PLAN_PASSWORD -out "$plan/index_$id.tar.gz.enc"
  done
  t1=$(now)
  record plan_seconds "$(awk "BEGIN{print $t1 - $t0}")"
  record plan_bytes "$(du -sb "$plan" | cut -f1)"

  # --- incremental after 1% of the documents changed
  # A seed never used on this data directory before: a repeated seed rewrites the same paragraphs
  # with the same text, which changes nothing (kept in WORK_DIR/next_mutation_seed).
  seed=$(cat "$work/next_mutation_seed" 2>/dev/null || echo 1000)
  echo "$((seed + 1))" > "$work/next_mutation_seed"
  python3 "$here/bench/make_backup_data.py" --mutate "$work/docs" 0.01 --seed "$seed" > "$work/changed.txt"
  mkdir -p "$work/changed"
  for p in 0 1 2 3; do
    rm -rf "$work/changed/p$p"; mkdir -p "$work/changed/p$p"
    grep "/p$p/" "$work/changed.txt" | xargs -r cp -t "$work/changed/p$p"
    "$KB" ingest --data-dir "$data" --project "p$p" --no-progress "$work/changed/p$p" >/dev/null || true
  done
  sync; t0=$(now)
  "$KB" backup --data-dir "$data" --repo "file://$repo" --json > "$work/incr.json"
  t1=$(now)
  record incr_seconds "$(awk "BEGIN{print $t1 - $t0}")"
  record incr_changed_docs "$(wc -l < "$work/changed.txt")"
  record incr_added_bytes "$(python3 -c "import json;print(json.load(open('$work/incr.json'))['added_bytes'])")"
  record incr_data_bytes "$(du -sb --exclude=backups "$data" | cut -f1)"

  # --- restore ours: files + server ready with the index from the backup
  target=$work/restored-$r; rm -rf "$target" "$target".*
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  t0=$(now)
  ANON_OUT=$work/anon.txt sampled /usr/bin/time -v -o "$work/time.txt" \
    "$KB" restore --repo "file://$repo" --data-dir "$target" --latest >/dev/null
  t1=$(now)
  record restore_files_seconds "$(awk "BEGIN{print $t1 - $t0}")"
  record restore_rss_kib "$(rss_of "$work/time.txt")"
  record restore_anon_kib "$(cat "$work/anon.txt")"
  port=$((20000 + RANDOM % 20000))
  "$KB" serve --data-dir "$target" --port "$port" --admin-token bench-admin-token >/dev/null 2>&1 &
  pid=$!
  until curl -sf "localhost:$port/ready" >/dev/null; do sleep 0.05; done
  t2=$(now)
  curl -sf -H "Authorization: Bearer bench-admin-token" "localhost:$port/api/v1/query/p0?q=section" >/dev/null
  kill "$pid"; wait "$pid" || true
  record restore_ready_seconds "$(awk "BEGIN{print $t2 - $t0}")"

  # --- restore through the plan's pipeline, then the server (rebuilds every index)
  ptarget=$work/plan-restored-$r; rm -rf "$ptarget"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  t0=$(now)
  for enc in "$plan"/*.db.gz.enc; do
    name=$(basename "$enc" .gz.enc)
    rel=$(echo "$name" | sed 's|^projects_\([^_]*\)_kb.db$|projects/\1/kb.db|')
    mkdir -p "$ptarget/$(dirname "$rel")"
    openssl enc -d -aes-256-cbc -pbkdf2 -pass env:PLAN_PASSWORD -in "$enc" | gunzip > "$ptarget/$rel"
  done
  for enc in "$plan"/index_*.tar.gz.enc; do
    id=$(basename "$enc" .tar.gz.enc); id=${id#index_}
    mkdir -p "$ptarget/projects/$id"
    openssl enc -d -aes-256-cbc -pbkdf2 -pass env:PLAN_PASSWORD -in "$enc" | gunzip | tar -C "$ptarget/projects/$id" -xf -
  done
  port=$((20000 + RANDOM % 20000))
  "$KB" serve --data-dir "$ptarget" --port "$port" --admin-token bench-admin-token >/dev/null 2>&1 &
  pid=$!
  until curl -sf "localhost:$port/ready" >/dev/null; do sleep 0.05; done
  t2=$(now)
  kill "$pid"; wait "$pid" || true
  record plan_restore_ready_seconds "$(awk "BEGIN{print $t2 - $t0}")"
  rm -rf "$target" "$target".* "$ptarget" "$plan" "$repo"
done

python3 - "$results" "$data_bytes" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    rows.setdefault(k, []).append(float(v))
data = float(sys.argv[2])
med = {k: statistics.median(v) for k, v in rows.items()}
span = {k: (min(v), max(v)) for k, v in rows.items()}
MB = 1e6
def line(name, value, unit, key=None):
    extra = ""
    if key:
        lo, hi = span[key]
        extra = "   (runs: %s)" % ", ".join("%.2f" % x for x in rows[key])
    print("%-44s %12s %s%s" % (name, value, unit, extra))
print("data directory: %.1f MB; %d rounds; medians" % (data / MB, len(rows["full_seconds"])))
line("full backup (ours)", "%.2f" % med["full_seconds"], "s", "full_seconds")
line("  throughput", "%.1f" % (data / MB / med["full_seconds"]), "MB/s")
line("  repository size", "%.1f" % (med["full_repo_bytes"] / MB), "MB")
line("  peak RSS", "%.1f" % (med["full_rss_kib"] / 1024), "MiB", "full_rss_kib")
line("  peak anonymous memory (RssAnon)", "%.1f" % (med["full_anon_kib"] / 1024), "MiB")
line("full backup (plan: .backup+gzip+openssl)", "%.2f" % med["plan_seconds"], "s", "plan_seconds")
line("  throughput", "%.1f" % (data / MB / med["plan_seconds"]), "MB/s")
line("  output size", "%.1f" % (med["plan_bytes"] / MB), "MB")
line("incremental after 1% of documents changed", "%.2f" % med["incr_seconds"], "s", "incr_seconds")
line("  time vs full backup", "%.1f" % (100 * med["incr_seconds"] / med["full_seconds"]), "%")
line("  documents rewritten", "%d" % med["incr_changed_docs"], "")
line("  added", "%.1f" % (med["incr_added_bytes"] / MB), "MB", "incr_added_bytes")
line("  added vs data size", "%.2f" % (100 * med["incr_added_bytes"] / med["incr_data_bytes"]), "%")
line("restore files (ours)", "%.2f" % med["restore_files_seconds"], "s", "restore_files_seconds")
line("  peak RSS (counts the mapped databases it checks)", "%.1f" % (med["restore_rss_kib"] / 1024), "MiB")
line("  peak anonymous memory (RssAnon)", "%.1f" % (med["restore_anon_kib"] / 1024), "MiB")
line("restore to ready, index from backup (ours)", "%.2f" % med["restore_ready_seconds"], "s", "restore_ready_seconds")
line("restore to ready (plan)", "%.2f" % med["plan_restore_ready_seconds"], "s", "plan_restore_ready_seconds")
PY
