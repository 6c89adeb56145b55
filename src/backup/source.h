// The source of a backup: consistent copies of a live data directory's files, staged on local
// disk, with the metadata the snapshot manifest records about each project
// (docs/format/BACKUP_REPOSITORY.md, "Snapshots").
//
// Why copies: a server keeps writing while a backup runs, and the repository reads each file in
// 4 KiB chunks over many seconds. Reading the live files would mix pages of different commits.
// So every SQLite file is first copied with SQLite's online backup API (sqlite3_backup_step(-1)
// from a read-only connection, into a NEW file: an existing WAL destination is 2.6x slower,
// NOTES.md). In WAL mode that copy is one committed state while writers go on. The copy keeps the
// source's page size and page layout (no VACUUM), so unchanged pages produce unchanged chunks and
// deduplicate; its journal mode is whatever the backup API produced (the header of a WAL source
// says WAL, so a restored file opens in WAL mode like the live one). The metadata is then read from
// the COPY, so it describes exactly the bytes that are backed up.
//
// Consistency, precisely:
//   - catalog.db is copied first, then each project. Each file is one committed state; files are
//     not atomic with each other (they are independent databases). Project rows come from the
//     catalog copy, so a project created after it is not in the snapshot; a project's kb.db is at
//     least as new as its catalog row.
//   - A project's kb.db copy records: lsn = meta.last_lsn (the newest journal LSN, checked against
//     max(journal.lsn)), content_checksum = meta.content_checksum (the maintained value; the
//     restore recomputes it from the rows), counts of live documents, live chunks and soft-deleted
//     documents (as ProjectStore::Counts), all read in one read transaction of the copy.
//   - The vector index (derived data): the manifest `index/VECTOR_INDEX` is read once, and the
//     graph file it names is hard-linked (or copied, across file systems) into the staging
//     directory and checked against the manifest's size and SHA-256. A concurrent save may delete
//     that graph file first; then the manifest is read again (bounded retries). The index may be
//     behind the database (index_lsn <= lsn); the server catches up from the journal on start.
//     A missing index is fine (not included, index_lsn 0: the server rebuilds it on restore);
//     an unusable one (corrupt, other dimension, still changing after the retries) is left out
//     the same way, with a note in PreparedSource::notes().
//
// Staging layout mirrors the data directory: <staging>/catalog.db,
// <staging>/projects/<id>/kb.db, <staging>/projects/<id>/index/{VECTOR_INDEX,graph-*.hnsw}.
// Paths in the SnapshotSource are relative to the data directory (catalog) or to
// projects/<id>/ (project files), as the manifest wants them.
//
// Projects are staged two at a time (independent databases; each keeps the order index, then
// database); the SnapshotSource lists them in catalog order.
//
// Thread-safety: PrepareSnapshotSource may run concurrently with a server using the data
// directory (that is its purpose) and with other PrepareSnapshotSource calls using other staging
// directories. A PreparedSource is a value owned by one thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "common/status.h"

namespace kb::backup {

// How often a vector index is re-read when a concurrent save replaced its graph file between
// reading the manifest and copying the graph.
inline constexpr int kIndexCopyAttempts = 8;

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

  const SnapshotSource& source() const { return source_; }
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
  SnapshotSource source_;
  std::vector<std::string> notes_;
};

// Stages consistent copies of `data_dir` (catalog.db, each selected project's kb.db and saved
// vector index) in `staging_dir`, which must not exist or be an empty directory (its parents
// are created), and describes them as a SnapshotSource.
// Errors: NotFound if `data_dir` does not exist or a named project is unknown (or deleted, see
// SourceOptions::include_deleted); FailedPrecondition if `data_dir` is not a KnowledgeBeast data
// directory (no catalog.db, or not a KnowledgeBeast catalog), if `staging_dir` is not empty or
// lies inside `data_dir/projects`, or if a live project's kb.db is missing; Corruption if a
// project database is not one, belongs to another project or contradicts itself (journal beyond
// meta.last_lsn); Unavailable if SQLite stays busy; IOError for file system failures. On error
// nothing is left in `staging_dir`.
Result<PreparedSource> PrepareSnapshotSource(const std::string& data_dir,
                                             const std::string& staging_dir,
                                             const SourceOptions& options = {});

// One backup of a data directory: stages consistent copies under
// `<data_dir>/.backup-staging-<random>` (same file system, so index files are hard-linked),
// writes them to `repo` as one snapshot, and removes the staging directory. What `backup`, the
// server's schedule and the pre-restore snapshot all do.
Result<SnapshotManifest> BackupDataDirectory(Repository& repo, const std::string& data_dir,
                                             const SourceOptions& source,
                                             const BackupOptions& options);

// Copies the SQLite database `source_path` (live, possibly in WAL mode and being written) into
// the new file `dest_path` (which must not exist) with the online backup API: one committed state,
// same page size and page layout. The copy is not fsynced (staging copies are disposable).
// NotFound if the source does not exist; FailedPrecondition if `dest_path` exists.
Status CopySqliteDatabase(const std::string& source_path, const std::string& dest_path);

}  // namespace kb::backup
