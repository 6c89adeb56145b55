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
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "store/project_store.h"
#include "store/sqlite.h"

namespace kb::store {

// The meta row and the file's schema version.
struct ProjectMeta {
  std::string project_id;
  int64_t dimension = 0;
  std::string content_checksum;  // hex, as maintained on every mutation
  int64_t last_lsn = 0;          // newest journal entry ever written (0 = none)
  int schema_version = 0;        // PRAGMA user_version
};

// A journal entry's position: its LSN and commit time (ms since the epoch, UTC).
struct CommitPoint {
  int64_t lsn = 0;
  int64_t ts_ms = 0;
};

class ProjectReader {
 public:
  static Result<std::unique_ptr<ProjectReader>> Open(const std::string& path);
  ~ProjectReader();
  ProjectReader(const ProjectReader&) = delete;
  ProjectReader& operator=(const ProjectReader&) = delete;

  // One read transaction until EndSnapshot (which ends it; also ended on destruction).
  // FailedPrecondition if one is already open.
  Status BeginSnapshot();
  Status EndSnapshot();

  // The meta row (Corruption if it is missing or its checksum is not 64 hex digits).
  Result<ProjectMeta> Meta();
  // The newest journal entry; nullopt if the journal is empty.
  Result<std::optional<CommitPoint>> NewestCommit();
  // The content checksum the journal entry at `lsn` recorded (the project's state after it);
  // nullopt if there is no entry at `lsn`.
  Result<std::optional<std::string>> JournalChecksumAt(int64_t lsn);
  // Whether a document was purged by an entry after `lsn` (reads only those entries).
  Result<bool> PurgedAfter(int64_t lsn);
  // Live documents only (one indexed count: cheap, unlike Counts' chunk join).
  Result<int64_t> LiveDocuments();
  // Live documents, their chunks and bytes, deleted documents (as ProjectStore::Counts).
  Result<StoreCounts> Counts();
  // The content checksum recomputed from every document and chunk row (hex). Reads every row.
  Result<std::string> RecomputeContentChecksum();
  // PRAGMA integrity_check, every document's chunk_count against its chunk rows, and the keyword
  // index's rows against its content (the live chunks from schema 2, every chunk in schema 1).
  // Corruption naming the file and the first finding. Reads every page.
  Status CheckIntegrity();

  // The connection, for reading the pages of the current snapshot (a backup streams them) and
  // for connection settings that only change how pages are read (Database::BeginFullScan,
  // cache_size). Never for writes, and not for the project schema's SQL, which stays here.
  sql::Database* database() { return db_.get(); }
  const std::string& path() const { return path_; }

 private:
  ProjectReader(std::string path, std::unique_ptr<sql::Database> db, int schema_version);
  Status Annotate(const Status& s) const;  // adds the file name

  const std::string path_;
  const int schema_version_;
  std::unique_ptr<sql::Database> db_;
  std::optional<sql::Transaction> snapshot_;  // declared after db_: ends before it closes
};

}  // namespace kb::store
