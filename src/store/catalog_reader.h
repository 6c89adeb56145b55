// CatalogReader: reads the node catalog (`catalog.db`, docs/format/DATABASE.md) without ever
// writing or migrating it, for code outside the store that judges a catalog it does not serve:
// the integrity check of a data directory (a backup, a damaged directory, a stopped node). The
// catalog schema's SQL stays in src/store, as ProjectReader keeps the project schema's.
//
// Opening: read-only, with no checks (the file's identity and tables are what a checker reports
// on); a call that needs a missing table fails with the SQL error. Between BeginSnapshot and
// EndSnapshot every call reads the same committed state (one read transaction).
//
// Thread-safety: not safe for concurrent use: one thread at a time (it owns one connection).
// Readers and a serving Catalog may use the same file at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/project_reader.h"
#include "store/sqlite.h"

namespace kb::store {

// A project row as a checker needs it (the rest of ProjectRecord is not judged).
struct CatalogProjectRow {
  std::string id;
  std::string name;
  int64_t embedding_dimension = 0;  // as stored, not validated
  bool deleted = false;             // soft-deleted (deleted_at set)
};

class CatalogReader {
 public:
  // Opens `path` read-only as SQLite; no identity, version or table checks.
  static Result<std::unique_ptr<CatalogReader>> OpenUnchecked(const std::string& path);
  ~CatalogReader();
  CatalogReader(const CatalogReader&) = delete;
  CatalogReader& operator=(const CatalogReader&) = delete;

  // One read transaction until EndSnapshot (also ended on destruction). FailedPrecondition if
  // one is already open.
  Status BeginSnapshot();
  Status EndSnapshot();

  // PRAGMA application_id and user_version, as found.
  Result<FileIdentity> Identity();
  // The rows of PRAGMA integrity_check (exactly {"ok"} for a sound file).
  Result<std::vector<std::string>> SqliteIntegrityReport();
  // Every project row, soft-deleted ones too, by created_at then id.
  Result<std::vector<CatalogProjectRow>> Projects();

  const std::string& path() const { return path_; }

 private:
  CatalogReader(std::string path, std::unique_ptr<sql::Database> db);

  const std::string path_;
  std::unique_ptr<sql::Database> db_;
  std::optional<sql::Transaction> snapshot_;  // declared after db_: ends before it closes
};

}  // namespace kb::store
