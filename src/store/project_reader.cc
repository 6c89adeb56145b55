// ProjectReader: the read-only view of a project database for code outside the store (see
// project_reader.h). The row SQL it shares with the store is in project_rows.cc.
#include "store/project_reader.h"

#include <unistd.h>

#include <filesystem>
#include <utility>

#include "common/file_util.h"
#include "store/migrations.h"
#include "store/project_rows.h"

namespace kb::store {

namespace {

// A directory we cannot write (a read-only file system, a read-only mount of a backup): SQLite
// could not create the -shm file a WAL reader needs. With no -wal file there is no uncommitted
// or uncheckpointed state to miss, so the file can be read as immutable.
bool CanReadImmutable(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  return ::access(dir.c_str(), W_OK) != 0 && !PathExists(path + "-wal");
}

// The tables whose absence the reader's calls would otherwise report as a bare SQL error.
constexpr const char* kRequiredTables[] = {"meta", "journal", "documents", "chunks"};

}  // namespace

ProjectReader::ProjectReader(std::string path, std::unique_ptr<sql::Database> db,
                             int schema_version)
    : path_(std::move(path)), schema_version_(schema_version), db_(std::move(db)) {}

ProjectReader::~ProjectReader() = default;

Status ProjectReader::Annotate(const Status& s) const {
  if (s.ok() || s.message().find(path_) != std::string::npos) return s;
  return s.WithContext(path_);
}

Result<std::unique_ptr<ProjectReader>> ProjectReader::Open(const std::string& path) {
  if (!PathExists(path)) return Status::NotFound(path + ": no such project database");
  sql::OpenOptions options;
  options.read_only = true;
  options.immutable = CanReadImmutable(path);
  auto opened = sql::Database::Open(path, options);
  if (!opened.ok()) return opened.status().WithContext(path);
  std::unique_ptr<sql::Database> db = std::move(opened).value();

  KB_ASSIGN_OR_RETURN(int64_t app_id, db->QueryInt("PRAGMA application_id"));
  if (app_id != kProjectApplicationId) {
    return Status::Corruption(path + " is not a KnowledgeBeast project database (application_id " +
                              std::to_string(app_id) + ")");
  }
  KB_ASSIGN_OR_RETURN(int64_t version, db->QueryInt("PRAGMA user_version"));
  const int latest = ProjectSchema().latest_version();
  if (version > latest) {
    return Status::FailedPrecondition(path + " has schema version " + std::to_string(version) +
                                      ", newer than this binary supports (" +
                                      std::to_string(latest) + ")");
  }
  if (version < 1) {
    return Status::Corruption(path + " has schema version " + std::to_string(version) +
                              ": it was never initialised");
  }
  KB_ASSIGN_OR_RETURN(auto st, db->Prepare("SELECT count(*) FROM sqlite_schema WHERE "
                                           "type = 'table' AND name = ?1"));
  for (const char* table : kRequiredTables) {
    st.Reset();
    st.Bind(1, table);
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || st.ColumnInt64(0) == 0) {
      return Status::Corruption(path + ": the " + table + " table is missing");
    }
  }
  return std::unique_ptr<ProjectReader>(
      new ProjectReader(path, std::move(db), static_cast<int>(version)));
}

Status ProjectReader::BeginSnapshot() {
  if (snapshot_) return Status::FailedPrecondition(path_ + ": a snapshot is already open");
  auto tx = sql::Transaction::Begin(db_.get(), sql::Transaction::Mode::kDeferred);
  if (!tx.ok()) return Annotate(tx.status());
  snapshot_.emplace(std::move(tx).value());
  return Status::OK();
}

Status ProjectReader::EndSnapshot() {
  if (!snapshot_) return Status::OK();
  Status s = snapshot_->Commit();
  snapshot_.reset();
  return Annotate(s);
}

Result<ProjectMeta> ProjectReader::Meta() {
  auto st =
      db_->PrepareCached("SELECT project_id, dimension, content_checksum, last_lsn FROM meta");
  if (!st.ok()) return Annotate(st.status());
  auto row = st->Step();
  if (!row.ok()) return Annotate(row.status());
  if (!*row) return Status::Corruption(path_ + ": the meta row is missing");
  ProjectMeta m;
  m.project_id = st->ColumnText(0);
  m.dimension = st->ColumnInt64(1);
  m.content_checksum = st->ColumnText(2);
  m.last_lsn = st->ColumnInt64(3);
  m.schema_version = schema_version_;
  if (!ContentChecksum::FromHex(m.content_checksum)) {
    return Status::Corruption(path_ + ": meta.content_checksum is malformed");
  }
  return m;
}

Result<std::optional<CommitPoint>> ProjectReader::NewestCommit() {
  auto st = db_->PrepareCached("SELECT lsn, ts_ms FROM journal ORDER BY lsn DESC LIMIT 1");
  if (!st.ok()) return Annotate(st.status());
  auto row = st->Step();
  if (!row.ok()) return Annotate(row.status());
  if (!*row) return std::optional<CommitPoint>();
  return std::optional<CommitPoint>(CommitPoint{st->ColumnInt64(0), st->ColumnInt64(1)});
}

Result<std::optional<std::string>> ProjectReader::JournalChecksumAt(int64_t lsn) {
  auto st = db_->PrepareCached("SELECT checksum FROM journal WHERE lsn = ?1");
  if (!st.ok()) return Annotate(st.status());
  st->Bind(1, lsn);
  auto row = st->Step();
  if (!row.ok()) return Annotate(row.status());
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>(st->ColumnText(0));
}

Result<bool> ProjectReader::PurgedAfter(int64_t lsn) {
  auto st = db_->PrepareCached(
      "SELECT EXISTS (SELECT 1 FROM journal WHERE lsn > ?1 AND op = 'purge_document')");
  if (!st.ok()) return Annotate(st.status());
  st->Bind(1, lsn);
  auto row = st->Step();
  if (!row.ok()) return Annotate(row.status());
  return *row && st->ColumnInt64(0) != 0;
}

Result<int64_t> ProjectReader::LiveDocuments() {
  auto n = db_->QueryInt("SELECT count(*) FROM documents WHERE deleted_at IS NULL");
  if (!n.ok()) return Annotate(n.status());
  return *n;
}

Result<StoreCounts> ProjectReader::Counts() {
  auto counts = ReadCounts(db_.get());
  if (!counts.ok()) return Annotate(counts.status());
  return counts;
}

Result<std::string> ProjectReader::RecomputeContentChecksum() {
  auto sum = store::RecomputeContentChecksum(db_.get());
  if (!sum.ok()) return Annotate(sum.status());
  return sum->ToHex();
}

Status ProjectReader::CheckIntegrity() {
  KB_RETURN_IF_ERROR(CheckSqliteIntegrity(db_.get(), path_));
  KB_RETURN_IF_ERROR(CheckChunkCounts(db_.get(), path_));
  // FTS5's own 'integrity-check' is an INSERT, refused on a read-only connection; comparing the
  // index's rows (chunks_fts_docsize) with its content finds a chunk missing from the index or
  // an indexed row that is no longer content. Schema 1 indexed every chunk, schema 2 the live
  // ones (DATABASE.md, Migration 2).
  auto has_docsize = db_->QueryInt(
      "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'chunks_fts_docsize'");
  if (!has_docsize.ok()) return Annotate(has_docsize.status());
  if (*has_docsize == 0) {
    return Status::Corruption(path_ + ": FTS index: the chunks_fts_docsize table is missing");
  }
  const std::string content = schema_version_ >= 2 ? "live_chunks" : "chunks";
  auto missing = db_->QueryInt("SELECT count(*) FROM " + content +
                               " WHERE id NOT IN (SELECT id FROM chunks_fts_docsize)");
  if (!missing.ok()) return Annotate(missing.status());
  auto extra = db_->QueryInt(
      "SELECT count(*) FROM chunks_fts_docsize WHERE id NOT IN "
      "(SELECT id FROM " +
      content + ")");
  if (!extra.ok()) return Annotate(extra.status());
  if (*missing != 0 || *extra != 0) {
    return Status::Corruption(path_ + ": FTS index: " + std::to_string(*missing) +
                              " chunks are not indexed, " + std::to_string(*extra) +
                              " indexed rows are not " + (schema_version_ >= 2 ? "live " : "") +
                              "chunks");
  }
  return Status::OK();
}

}  // namespace kb::store
