// ProjectReader: reads a project database file (`kb.db`, docs/format/DATABASE.md section 4)
// without ever writing it. For code outside the store that needs facts about a project file it
// does not serve: a backup copying a live project, a restore checking the copy it built against
// its snapshot, or measuring what damaged data still held. The SQL on the project schema lives in
// src/store only; callers get values and a Status.
//
// Opening: read-only. A file in WAL mode is read through its WAL (committed state only), which
// SQLite does with a -shm (and an empty -wal) file next to it when the directory is writable;
// when the directory is not writable and no -wal exists, the file is opened as immutable, so
// nothing is created. At open the file is checked to be a KnowledgeBeast project database
// (application_id), of a schema version this binary knows (1..latest), with the tables the
// reader needs; a migration is never run (an older schema is read as it is).
//
// Snapshots: each call reads one committed state. Between BeginSnapshot and EndSnapshot every
// call reads the same one (one read transaction), e.g. to describe exactly the pages a backup
// streams from database().
//
// Errors: NotFound (no file), Corruption (not SQLite, not a project database, a table or the meta
// row missing or malformed, damaged pages), FailedPrecondition (schema newer than this binary),
// IOError / Unavailable as SQLite reports them. Messages name the file.
//
// Thread-safety: not safe for concurrent use: one thread at a time (it owns one connection).
// Any number of readers and one ProjectStore may use the same file at once from different
// threads or processes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/project_store.h"
#include "store/sqlite.h"

namespace kb::store {

// The meta row and the file's schema version.
struct ProjectMeta {
  std::string project_id;
  int64_t dimension = 0;
  std::string content_checksum;  // 64 hex digits, as maintained on every mutation
  int64_t last_lsn = 0;          // newest journal entry ever written (0 = none)
  int schema_version = 0;        // PRAGMA user_version
};

// A journal entry's position: its LSN and commit time (ms since the epoch, UTC).
struct CommitPoint {
  int64_t lsn = 0;
  int64_t ts_ms = 0;
};

// PRAGMA application_id and user_version, as found.
struct FileIdentity {
  int64_t application_id = 0;
  int64_t schema_version = 0;
};

// The journal's extent: entries, lowest and highest LSN (0 and 0 when empty).
struct JournalSpan {
  int64_t entries = 0;
  int64_t first_lsn = 0;
  int64_t last_lsn = 0;
};

class ProjectReader {
 public:
  // Opens `path` and checks it is a project database this binary can read (see above).
  static Result<std::unique_ptr<ProjectReader>> Open(const std::string& path);
  // Opens `path` as SQLite only, without the identity, version and table checks: for a checker
  // that reports those itself (Identity) and still wants SQLite's own integrity report of a file
  // that is not, or no longer, recognisable. Later calls fail with the SQL error if a table
  // they need is missing, or if SQLite cannot read the file at all (only a missing file or one
  // SQLite cannot open fails here).
  static Result<std::unique_ptr<ProjectReader>> OpenUnchecked(const std::string& path);
  ~ProjectReader();
  ProjectReader(const ProjectReader&) = delete;
  ProjectReader& operator=(const ProjectReader&) = delete;

  // One read transaction until EndSnapshot (which ends it; also ended on destruction).
  // FailedPrecondition if one is already open.
  Status BeginSnapshot();
  Status EndSnapshot();

  Result<FileIdentity> Identity();
  // The meta row, its values as stored (a checker judges them). Corruption if the table does not
  // hold exactly one row.
  Result<ProjectMeta> Meta();
  // The meta table's rows (1 in a sound file): for a checker that reports a wrong count itself
  // before reading the row with Meta.
  Result<int64_t> MetaRowCount();
  // The newest journal entry; nullopt if the journal is empty.
  Result<std::optional<CommitPoint>> NewestCommit();
  // The content checksum the journal entry at `lsn` recorded (the project's state after it);
  // nullopt if there is no entry at `lsn`.
  Result<std::optional<std::string>> JournalChecksumAt(int64_t lsn);
  // Whether a document was purged by an entry after `lsn` (reads only those entries).
  Result<bool> PurgedAfter(int64_t lsn);
  Result<JournalSpan> Journal();
  // The entries with after_lsn < lsn <= up_to_lsn, ascending (for catching an index up).
  Result<std::vector<JournalEntry>> ReadJournal(int64_t after_lsn, int64_t up_to_lsn);
  // Live documents only (one indexed count: cheap, unlike Counts' chunk join).
  Result<int64_t> LiveDocuments();
  // Live documents, their chunks and bytes, deleted documents (as ProjectStore::Counts).
  Result<StoreCounts> Counts();
  // "" when the counts schema 3 keeps (doc_counts) equal Counts(), or the file has none; else
  // what differs.
  Result<std::string> MaintainedCountsProblem();
  // The content checksum recomputed from every document and chunk row (hex), and in `documents`
  // (if given) how many document rows, live and deleted, it covered. Reads every row.
  Result<std::string> RecomputeContentChecksum(int64_t* documents = nullptr);
  // PRAGMA integrity_check, every document's chunk_count against its chunk rows, and the keyword
  // index's rows against its content (the live chunks from schema 2, every chunk in schema 1).
  // Corruption naming the file and the first finding. Reads every page.
  Status CheckIntegrity();

  // See sql::Database::SetInterrupt: lets a shutdown stop a long check of this file.
  void SetInterrupt(std::function<bool()> interrupt) { db_->SetInterrupt(std::move(interrupt)); }

  // --- the pieces of CheckIntegrity and of a checker's finer report ---
  // The rows of PRAGMA integrity_check (exactly {"ok"} for a sound file).
  Result<std::vector<std::string>> SqliteIntegrityReport();
  // The rows of PRAGMA quick_check: integrity_check without comparing indexes to their tables
  // (every page and b-tree readable and well-formed; ~O(pages)). {"ok"} for a sound file.
  Result<std::vector<std::string>> SqliteQuickCheckReport();
  // fn(document id, stated chunk_count, chunk rows) for each document whose chunk_count differs
  // from its chunk rows, by document id.
  Status ForEachDocumentWithWrongChunkCount(
      const std::function<void(const std::string& id, int64_t stated, int64_t rows)>& fn);
  // fn(chunk id, bytes) for each chunk whose embedding is not a BLOB of `bytes` bytes (bytes is
  // the length found), by chunk id.
  Status ForEachChunkWithEmbeddingSizeOtherThan(int64_t bytes,
                                                const std::function<void(int64_t, int64_t)>& fn);
  // Compares the keyword index's rows (chunks_fts_docsize) with its content: not_indexed(id)
  // for a content chunk it lacks, not_content(id) for an indexed row that is not content, both
  // by id. false (and no calls) if the index has no chunks_fts_docsize table.
  Result<bool> CompareKeywordIndex(const std::function<void(int64_t)>& not_indexed,
                                   const std::function<void(int64_t)>& not_content);
  // Whether the keyword index's content is the live chunks (the live_chunks view, schema 2)
  // rather than every chunk (schema 1).
  bool KeywordIndexIsLiveOnly() const { return live_only_index_; }

  // --- chunks, for vector index checks and rebuilds ---
  // fn(id) for each live chunk, ascending.
  Status ForEachLiveChunkId(const std::function<void(int64_t)>& fn);
  // fn(id, embedding BLOB bytes, valid during the call) for each live chunk, ascending.
  Status ForEachLiveEmbedding(const std::function<Status(int64_t, std::string_view)>& fn);
  // The embedding BLOB of a chunk (live or not); nullopt if there is no such chunk.
  Result<std::optional<std::string>> ChunkEmbedding(int64_t chunk_id);

  // The connection, for reading the pages of the current snapshot (a backup streams them) and
  // for connection settings that only change how pages are read (Database::BeginFullScan,
  // cache_size). Never for writes, and not for the project schema's SQL, which stays here.
  sql::Database* database() { return db_.get(); }
  const std::string& path() const { return path_; }

 private:
  ProjectReader(std::string path, std::unique_ptr<sql::Database> db, int schema_version,
                bool live_only_index);
  static Result<std::unique_ptr<sql::Database>> OpenDatabase(const std::string& path);
  Status Annotate(const Status& s) const;  // adds the file name
  // Runs `sql` with `bind`'s bindings, calling `row` for each row until it returns an error.
  Status Each(std::string_view sql, const std::function<void(sql::Statement&)>& bind,
              const std::function<Status(const sql::Statement&)>& row);
  // The first column of every row of `sql` (no bindings), as text.
  Result<std::vector<std::string>> TextRows(std::string_view sql);

  const std::string path_;
  const int schema_version_;
  const bool live_only_index_;
  std::unique_ptr<sql::Database> db_;
  std::optional<sql::Transaction> snapshot_;  // declared after db_: ends before it closes
};

}  // namespace kb::store
