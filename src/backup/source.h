// The source of a backup: consistent copies of a live data directory's files, with the metadata
// the snapshot manifest records about each project (docs/format/BACKUP_REPOSITORY.md,
// "Snapshots").
//
// Why copies: a server keeps writing while a backup runs, and the repository reads each file in
// 4 KiB chunks over many seconds. Reading the live files would mix pages of different commits.
// So every SQLite file is copied with SQLite's online backup API (sqlite3_backup_step(-1) from a
// read-only connection), which in WAL mode is one committed state while writers go on. The copy
// keeps the source's page size and page layout (no VACUUM), so unchanged pages produce unchanged
// chunks and deduplicate; its header says WAL like the live file's, so a restored file opens in
// WAL mode.
//
// How the copies are made:
//   - catalog.db (small) is copied into the staging directory at preparation, into a new file
//     (CopySqliteDatabase), and the project rows are read from that copy.
//   - A project's kb.db is NOT staged: its SourceFile has a producer that runs when the backup
//     reaches it. The producer opens the live file read-only, begins one read transaction, reads
//     the metadata (lsn = meta.last_lsn checked against max(journal.lsn), content_checksum =
//     meta.content_checksum, counts as ProjectStore::Counts) and streams the pages of that same
//     state into the backup (sqlite_stream.h): no staging file is written, read back or deleted
//     (they were ~45% of the CPU time of a backup in which little changed). So the metadata
//     describes exactly the bytes that are backed up, and a backup of many projects holds one
//     read transaction at a time.
//
// The audit log (audit.db, audit.head; docs/format/AUDIT_LOG.md, "Backups") is part of full
// snapshots only, as catalog files: the head file is read first, then audit.db is copied like the
// catalog (one committed state while the server appends), so the copy's chain always reaches at
// least the entry its head names. A data directory without an audit log yet backs up without
// one; one whose audit.db SQLite cannot copy fails the backup (an unreadable trail must be seen).
//
// Consistency, precisely:
//   - catalog.db is copied first, then the audit log, then each project. Each file is one
//     committed state; files are not atomic with each other (they are independent databases).
//     Project rows come from the catalog copy, so a project created after it is not in the
//     snapshot; a project's kb.db is at least as new as its catalog row.
//   - The vector index (derived data) is staged at preparation, before its database is read: the
//     manifest `index/VECTOR_INDEX` is read once, and the graph file it names is hard-linked (or
//     copied, across file systems) into the staging directory and checked against the manifest's
//     size and SHA-256. A concurrent save may delete that graph file first; then the manifest is
//     read again (bounded retries). The index may be behind the database (index_lsn <= lsn); the
//     server catches up from the journal on start. An index ahead of its database (the project
//     was replaced by a project restore between the two reads) fails the backup as Unavailable
//     ("run the backup again"). A missing index is fine (not included, index_lsn 0: the server
//     rebuilds it on restore); an unusable one (corrupt, other dimension, still changing after
//     the retries) is left out the same way, with a note in PreparedSource::notes().
//
// Vector index reuse. A graph file changes in ~20% of its 4 KiB chunks when 1% of the documents
// change (each insert rewrites the link lists of its neighbours all over the file), so backing up
// every re-saved index would make an incremental backup store and compress 3x what the
// databases changed. Instead, when an earlier snapshot holds an index of the project
// (SourceOptions::previous_indexes) and the live journal continues from the state that index
// reflects -- the live journal entry at its index_lsn has checksum == its index_checksum, read in
// one short read transaction at preparation -- the project names that index's stored files again
// when either the live index is that same index (same graph file) or the journal has grown by at
// most index_max_lag x live documents entries since -- and no document was purged since (the old
// index holds the purged document's vectors, and a snapshot taken after a purge must not). The
// snapshot then records the older index_lsn; the server replays the later entries into the index
// when it opens the restored project (as it does after any restart). The kb.db producer checks the
// checksum again in its own transaction (Unavailable if the project was replaced, or a document
// purged, in between). Otherwise the live index is staged, and its index_checksum is read by the
// producer.
//
// Staging layout mirrors the data directory: <staging>/catalog.db,
// <staging>/projects/<id>/index/{VECTOR_INDEX,graph-*.hnsw}. Paths in the SnapshotSource are
// relative to the data directory (catalog) or to projects/<id>/ (project files), as the manifest
// wants them. A produced kb.db's local_path is the live file (its size is a progress estimate).
//
// Vector indexes are staged two projects at a time; the SnapshotSource lists projects in catalog
// order, and the backup reads their databases in that order.
//
// Thread-safety: PrepareSnapshotSource may run concurrently with a server using the data
// directory (that is its purpose) and with other PrepareSnapshotSource calls using other staging
// directories. A PreparedSource is a value owned by one thread; its producers run on the thread
// that writes the snapshot, while the PreparedSource is alive.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "repo/repository.h"

namespace kb::backup {

// How often a vector index is re-read when a concurrent save replaced its graph file between
// reading the manifest and copying the graph.
inline constexpr int kIndexCopyAttempts = 8;

// SourceOptions::index_max_lag unless configured (backup_index_max_lag, docs/CONFIG.md).
inline constexpr double kDefaultIndexMaxLag = 0.02;

// A vector index that an earlier snapshot of a project holds (FindPreviousIndexes).
struct PreviousIndex {
  std::string snapshot_id;  // the snapshot it comes from (for messages)
  int64_t index_lsn = 0;
  std::string index_checksum;  // the project's content checksum at index_lsn
  nlohmann::json embedder = nlohmann::json::object();
  std::vector<repo::SnapshotFile> files;  // index/VECTOR_INDEX and its graph, with their trees
};

// What a backup checks of each project state it copies (SourceOptions::source_check; setting
// backup_source_check): recorded in the snapshot as `source_check` (see "The source check" in
// source.cc and docs/format/BACKUP_REPOSITORY.md).
enum class SourceCheckLevel {
  kOff,       // nothing recorded
  kChecksum,  // journal, counts, content checksum recomputed from the rows
  kFull,      // kChecksum + PRAGMA quick_check
};
// "off" | "checksum" | "full"; InvalidArgument otherwise.
Result<SourceCheckLevel> ParseSourceCheckLevel(const std::string& text);
inline constexpr SourceCheckLevel kDefaultSourceCheck = SourceCheckLevel::kFull;
// Problems a source check records per project, at most (the rest are counted in the last).
inline constexpr size_t kMaxSourceCheckProblems = 20;

struct SourceOptions {
  // Project ids or names. Empty: a full snapshot (scope "full": catalog.db and every project).
  // Otherwise scope "projects": only these projects and no catalog files. A name is looked up
  // like Catalog::GetProject: id first, then the live project of that name, then (if deleted
  // projects are included) the most recently deleted one of that name.
  std::vector<std::string> projects;
  // Whether soft-deleted projects are included (their files are kept until purged). Unset: yes
  // for a full snapshot (a whole restore brings them back as deleted, so they can be undeleted);
  // no when projects are named (a name then means the live project; naming a deleted project
  // is NotFound unless this is set to true).
  std::optional<bool> include_deleted;
  // Hard-link vector index graph files into the staging directory when it is on the same file
  // system (graph files are never modified in place); copy otherwise, or when false.
  bool link_index_files = true;
  // Vector index reuse: project id -> an index an earlier snapshot holds. A project whose entry
  // here is still valid for its live database names that index's stored files again instead of
  // staging the live index (nothing of it is read): see "Vector index reuse" above.
  // BackupDataDirectory fills it from the repository (FindPreviousIndexes).
  std::map<std::string, PreviousIndex> previous_indexes;
  // How far behind its database a reused index may be: journal entries after its LSN, at most
  // this fraction of the project's live documents (rounded down). 0: only an index identical to
  // the live one (same graph file) is reused. A restore replays those entries into the index
  // when the server opens the project, so this bounds that work.
  double index_max_lag = kDefaultIndexMaxLag;
  // The check of each copied project state. A state that fails it is still backed up (it may
  // be the only copy there is) and marked in the manifest; the caller reports it
  // (SourceCheckFailures).
  SourceCheckLevel source_check = kDefaultSourceCheck;
  // Testing hook: runs after the audit log's head file was read and before audit.db is copied
  // (a test appends there, so that the copy holds entries the head does not name yet).
  std::function<void()> after_audit_head_read;
  // Testing hook: runs after a vector index manifest was read and before its graph file is
  // linked or copied, with the project id (a test saves the index there to force the race).
  std::function<void(const std::string& project_id)> after_index_manifest_read;
};

// The staged copies and the SnapshotSource describing them. Owns the staging directory and
// removes it (with everything in it) when destroyed. Move-only.
class PreparedSource {
 public:
  PreparedSource(PreparedSource&& other) noexcept;
  PreparedSource& operator=(PreparedSource&& other) noexcept;
  PreparedSource(const PreparedSource&) = delete;
  PreparedSource& operator=(const PreparedSource&) = delete;
  ~PreparedSource();

  const repo::SnapshotSource& source() const { return source_; }
  const std::string& staging_dir() const { return staging_dir_; }
  // Things left out that a reader of the backup log should know (an unusable vector index, a
  // deleted project whose files are gone). Never data that a restore needs.
  const std::vector<std::string>& notes() const { return notes_; }
  // Bytes of all staged files.
  int64_t total_bytes() const;

 private:
  friend Result<PreparedSource> PrepareSnapshotSource(const std::string&, const std::string&,
                                                      const SourceOptions&);
  explicit PreparedSource(std::string staging_dir) : staging_dir_(std::move(staging_dir)) {}
  void Release();

  std::string staging_dir_;  // empty after a move
  repo::SnapshotSource source_;
  std::vector<std::string> notes_;
};

// Stages consistent copies of `data_dir` (catalog.db and each selected project's saved vector
// index) in `staging_dir`, which must not exist or be an empty directory (its parents are
// created), and describes them, with a producer for each project's kb.db, as a SnapshotSource.
// Errors: NotFound if `data_dir` does not exist or a named project is unknown (or deleted, see
// SourceOptions::include_deleted); FailedPrecondition if `data_dir` is not a KnowledgeBeast data
// directory (no catalog.db, or not a KnowledgeBeast catalog), if `staging_dir` is not empty or
// lies inside `data_dir/projects`, or if a live project's kb.db is missing; Unavailable if
// SQLite stays busy; IOError for file system failures. On error nothing is left in
// `staging_dir`. A kb.db producer fails (and with it the backup) with Corruption if the project
// database is not one, belongs to another project or contradicts itself (journal beyond
// meta.last_lsn), FailedPrecondition for a newer schema, Unavailable if its vector index is ahead
// of it.
Result<PreparedSource> PrepareSnapshotSource(const std::string& data_dir,
                                             const std::string& staging_dir,
                                             const SourceOptions& options = {});

// One backup of a data directory: stages the catalog copy and the vector indexes under
// `<data_dir>/.backup-staging-<random>` (same file system, so index files are hard-linked),
// writes them and the streamed databases to `repo` as one snapshot, and removes the staging
// directory. What `backup`, the
// server's schedule and the pre-restore snapshot all do.
Result<repo::SnapshotManifest> BackupDataDirectory(repo::Repository& repo,
                                                   const std::string& data_dir,
                                                   const SourceOptions& source,
                                                   const repo::BackupOptions& options);

// The newest usable vector index of each project among the newest `max_manifests` snapshots of
// `repo` (one with index files, index_lsn > 0 and an index_checksum). Unreadable manifests are
// skipped. For SourceOptions::previous_indexes.
Result<std::map<std::string, PreviousIndex>> FindPreviousIndexes(repo::Repository& repo,
                                                                 size_t max_manifests = 8);

// "project NAME (ID): problem; problem" for each project of `m` whose source check failed: what
// a backup reports and counts (kb_backup_source_check_failures_total). Empty when all passed or
// none was checked.
std::vector<std::string> SourceCheckFailures(const repo::SnapshotManifest& m);

// Writes a produced file (SourceFile::produce) into the new file `path`, completing `meta` as a
// backup would, and returns its size: exactly the bytes a backup stores, for tests and tools.
// On error nothing is left at `path`.
Result<int64_t> ProduceToFile(const repo::SourceFile& file, const std::string& path,
                              repo::ProjectSnapshot* meta);

// Copies the SQLite database `source_path` (live, possibly in WAL mode and being written) into
// the new file `dest_path` (which must not exist) with the online backup API: one committed state,
// same page size and page layout. The copy is not fsynced (staging copies are disposable).
// NotFound if the source does not exist; FailedPrecondition if `dest_path` exists.
Status CopySqliteDatabase(const std::string& source_path, const std::string& dest_path);

}  // namespace kb::backup
