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
// could not create the -shm file a WAL reader needs. With no -wal file there is no state only
// the WAL holds, so the file can be read as immutable.
bool CanReadImmutable(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  return ::access(dir.c_str(), W_OK) != 0 && !PathExists(path + "-wal");
}

// The tables whose absence the reader's calls would otherwise report as a bare SQL error.
constexpr const char* kRequiredTables[] = {"meta", "journal", "documents", "chunks"};

Result<int64_t> CountSchemaObjects(sql::Database* db, const char* type, const char* name) {
  KB_ASSIGN_OR_RETURN(auto st, db->PrepareCached("SELECT count(*) FROM sqlite_schema WHERE "
                                                 "type = ?1 AND name = ?2"));
  st.Bind(1, type).Bind(2, name);
  KB_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.ColumnInt64(0) : 0;
}

}  // namespace

ProjectReader::ProjectReader(std::string path, std::unique_ptr<sql::Database> db,
                             int schema_version, bool live_only_index)
    : path_(std::move(path)),
      schema_version_(schema_version),
      live_only_index_(live_only_index),
      db_(std::move(db)) {}

ProjectReader::~ProjectReader() = default;

Status ProjectReader::Annotate(const Status& s) const {
  if (s.ok() || s.message().find(path_) != std::string::npos) return s;
  return s.WithContext(path_);
}

Result<std::unique_ptr<sql::Database>> ProjectReader::OpenDatabase(const std::string& path) {
  if (!PathExists(path)) return Status::NotFound(path + ": no such project database");
  sql::OpenOptions options;
  options.read_only = true;
  options.immutable = CanReadImmutable(path);
  auto opened = sql::Database::Open(path, options);
  if (!opened.ok()) return opened.status().WithContext(path);
  return std::move(opened).value();
}

Result<std::unique_ptr<ProjectReader>> ProjectReader::OpenUnchecked(const std::string& path) {
  KB_ASSIGN_OR_RETURN(auto db, OpenDatabase(path));
  // A file SQLite cannot read (not a database, a damaged header) still opens: each later call
  // then reports SQLite's error, so a checker records every check it could not complete.
  auto version = db->QueryInt("PRAGMA user_version");
  auto view = CountSchemaObjects(db.get(), "view", "live_chunks");
  return std::unique_ptr<ProjectReader>(new ProjectReader(
      path, std::move(db), version.ok() ? static_cast<int>(*version) : 0, view.ok() && *view > 0));
}

Result<std::unique_ptr<ProjectReader>> ProjectReader::Open(const std::string& path) {
  KB_ASSIGN_OR_RETURN(auto reader, OpenUnchecked(path));
  KB_ASSIGN_OR_RETURN(FileIdentity id, reader->Identity());
  if (id.application_id != kProjectApplicationId) {
    return Status::Corruption(path + " is not a KnowledgeBeast project database (application_id " +
                              std::to_string(id.application_id) + ")");
  }
  const int latest = ProjectSchema().latest_version();
  if (id.schema_version > latest) {
    return Status::FailedPrecondition(
        path + " has schema version " + std::to_string(id.schema_version) +
        ", newer than this binary supports (" + std::to_string(latest) + ")");
  }
  if (id.schema_version < 1) {
    return Status::Corruption(path + " has schema version " + std::to_string(id.schema_version) +
                              ": it was never initialised");
  }
  for (const char* table : kRequiredTables) {
    auto n = CountSchemaObjects(reader->db_.get(), "table", table);
    if (!n.ok()) return reader->Annotate(n.status());
    if (*n == 0) return Status::Corruption(path + ": the " + table + " table is missing");
  }
  return reader;
}

Status ProjectReader::Each(std::string_view sql_text,
                           const std::function<void(sql::Statement&)>& bind,
                           const std::function<Status(const sql::Statement&)>& row) {
  auto st = db_->PrepareCached(sql_text);
  if (!st.ok()) return Annotate(st.status());
  if (bind) bind(*st);
  while (true) {
    auto more = st->Step();
    if (!more.ok()) return Annotate(more.status());
    if (!*more) return Status::OK();
    KB_RETURN_IF_ERROR(row(*st));
  }
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

Result<FileIdentity> ProjectReader::Identity() {
  FileIdentity id;
  auto app = db_->QueryInt("PRAGMA application_id");
  if (!app.ok()) return Annotate(app.status());
  auto version = db_->QueryInt("PRAGMA user_version");
  if (!version.ok()) return Annotate(version.status());
  id.application_id = *app;
  id.schema_version = *version;
  return id;
}

Result<ProjectMeta> ProjectReader::Meta() {
  std::optional<ProjectMeta> m;
  int64_t rows = 0;
  KB_RETURN_IF_ERROR(
      Each("SELECT project_id, dimension, content_checksum, last_lsn, "
           "(SELECT count(*) FROM meta) FROM meta LIMIT 1",
           nullptr, [&](const sql::Statement& st) {
             m = ProjectMeta{st.ColumnText(0), st.ColumnInt64(1), st.ColumnText(2),
                             st.ColumnInt64(3), schema_version_};
             rows = st.ColumnInt64(4);
             return Status::OK();
           }));
  if (!m) return Status::Corruption(path_ + ": the meta row is missing");
  if (rows != 1) {
    return Status::Corruption(path_ + ": the meta table has " + std::to_string(rows) +
                              " rows, expected exactly 1");
  }
  return *m;
}

Result<int64_t> ProjectReader::MetaRowCount() {
  auto n = db_->QueryInt("SELECT count(*) FROM meta");
  if (!n.ok()) return Annotate(n.status());
  return *n;
}

Result<std::optional<CommitPoint>> ProjectReader::NewestCommit() {
  std::optional<CommitPoint> newest;
  KB_RETURN_IF_ERROR(Each("SELECT lsn, ts_ms FROM journal ORDER BY lsn DESC LIMIT 1", nullptr,
                          [&](const sql::Statement& st) {
                            newest = CommitPoint{st.ColumnInt64(0), st.ColumnInt64(1)};
                            return Status::OK();
                          }));
  return newest;
}

Result<std::optional<std::string>> ProjectReader::JournalChecksumAt(int64_t lsn) {
  std::optional<std::string> checksum;
  KB_RETURN_IF_ERROR(Each(
      "SELECT checksum FROM journal WHERE lsn = ?1", [&](sql::Statement& st) { st.Bind(1, lsn); },
      [&](const sql::Statement& st) {
        checksum = st.ColumnText(0);
        return Status::OK();
      }));
  return checksum;
}

Result<bool> ProjectReader::PurgedAfter(int64_t lsn) {
  bool purged = false;
  KB_RETURN_IF_ERROR(Each(
      "SELECT EXISTS (SELECT 1 FROM journal WHERE lsn > ?1 AND op = 'purge_document')",
      [&](sql::Statement& st) { st.Bind(1, lsn); },
      [&](const sql::Statement& st) {
        purged = st.ColumnInt64(0) != 0;
        return Status::OK();
      }));
  return purged;
}

Result<JournalSpan> ProjectReader::Journal() {
  JournalSpan span;
  KB_RETURN_IF_ERROR(
      Each("SELECT count(*), coalesce(min(lsn), 0), coalesce(max(lsn), 0) FROM journal", nullptr,
           [&](const sql::Statement& st) {
             span = JournalSpan{st.ColumnInt64(0), st.ColumnInt64(1), st.ColumnInt64(2)};
             return Status::OK();
           }));
  return span;
}

Result<std::vector<JournalEntry>> ProjectReader::ReadJournal(int64_t after_lsn, int64_t up_to_lsn) {
  std::vector<JournalEntry> out;
  KB_RETURN_IF_ERROR(Each(
      "SELECT lsn, ts_ms, actor, op, payload, checksum FROM journal WHERE lsn > ?1 AND "
      "lsn <= ?2 ORDER BY lsn",
      [&](sql::Statement& st) { st.Bind(1, after_lsn).Bind(2, up_to_lsn); },
      [&](const sql::Statement& st) {
        out.push_back(JournalEntry{st.ColumnInt64(0), st.ColumnInt64(1), st.ColumnText(2),
                                   st.ColumnText(3), st.ColumnText(4), st.ColumnText(5)});
        return Status::OK();
      }));
  return out;
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

Result<std::string> ProjectReader::MaintainedCountsProblem() {
  auto problem = store::MaintainedCountsProblem(db_.get());
  if (!problem.ok()) return Annotate(problem.status());
  return problem;
}

Result<std::string> ProjectReader::RecomputeContentChecksum(int64_t* documents) {
  auto sum = store::RecomputeContentChecksum(db_.get(), documents);
  if (!sum.ok()) return Annotate(sum.status());
  return sum->ToHex();
}

Result<std::vector<std::string>> ProjectReader::TextRows(std::string_view sql) {
  std::vector<std::string> rows;
  KB_RETURN_IF_ERROR(Each(sql, nullptr, [&](const sql::Statement& st) {
    rows.push_back(st.ColumnText(0));
    return Status::OK();
  }));
  return rows;
}

Result<std::vector<std::string>> ProjectReader::SqliteIntegrityReport() {
  return TextRows("PRAGMA integrity_check");
}

Result<std::vector<std::string>> ProjectReader::SqliteQuickCheckReport() {
  return TextRows("PRAGMA quick_check");
}

Status ProjectReader::ForEachDocumentWithWrongChunkCount(
    const std::function<void(const std::string&, int64_t, int64_t)>& fn) {
  return Each(
      "SELECT d.id, d.chunk_count, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) "
      "AS n FROM documents d WHERE d.chunk_count != (SELECT count(*) FROM chunks c WHERE "
      "c.document_id = d.id) ORDER BY d.id",
      nullptr, [&](const sql::Statement& st) {
        fn(st.ColumnText(0), st.ColumnInt64(1), st.ColumnInt64(2));
        return Status::OK();
      });
}

Status ProjectReader::ForEachChunkWithEmbeddingSizeOtherThan(
    int64_t bytes, const std::function<void(int64_t, int64_t)>& fn) {
  return Each(
      "SELECT id, length(embedding) FROM chunks WHERE typeof(embedding) != 'blob' OR "
      "length(embedding) != ?1 ORDER BY id",
      [&](sql::Statement& st) { st.Bind(1, bytes); },
      [&](const sql::Statement& st) {
        fn(st.ColumnInt64(0), st.ColumnInt64(1));
        return Status::OK();
      });
}

Result<bool> ProjectReader::CompareKeywordIndex(const std::function<void(int64_t)>& not_indexed,
                                                const std::function<void(int64_t)>& not_content) {
  auto docsize = CountSchemaObjects(db_.get(), "table", "chunks_fts_docsize");
  if (!docsize.ok()) return Annotate(docsize.status());
  if (*docsize == 0) return false;
  // Schema 1 indexed every chunk, schema 2 the live ones (DATABASE.md, Migration 2).
  const std::string content = live_only_index_ ? "live_chunks" : "chunks";
  auto each_id = [](const std::function<void(int64_t)>& fn) {
    return [&fn](const sql::Statement& st) {
      fn(st.ColumnInt64(0));
      return Status::OK();
    };
  };
  KB_RETURN_IF_ERROR(Each("SELECT id FROM " + content +
                              " WHERE id NOT IN (SELECT id FROM chunks_fts_docsize) ORDER BY id",
                          nullptr, each_id(not_indexed)));
  KB_RETURN_IF_ERROR(Each("SELECT id FROM chunks_fts_docsize WHERE id NOT IN (SELECT id FROM " +
                              content + ") ORDER BY id",
                          nullptr, each_id(not_content)));
  return true;
}

Status ProjectReader::CheckIntegrity() {
  KB_RETURN_IF_ERROR(Annotate(CheckSqliteIntegrity(db_.get(), path_)));
  KB_RETURN_IF_ERROR(Annotate(CheckChunkCounts(db_.get(), path_)));
  // FTS5's own 'integrity-check' is an INSERT, refused on a read-only connection; comparing the
  // index's rows with its content finds a chunk missing from the index or an indexed row that
  // is no longer content.
  int64_t missing = 0, extra = 0;
  KB_ASSIGN_OR_RETURN(bool has_index,
                      CompareKeywordIndex([&](int64_t) { ++missing; }, [&](int64_t) { ++extra; }));
  if (!has_index) {
    return Status::Corruption(path_ + ": FTS index: the chunks_fts_docsize table is missing");
  }
  if (missing != 0 || extra != 0) {
    return Status::Corruption(path_ + ": FTS index: " + std::to_string(missing) +
                              " chunks are not indexed, " + std::to_string(extra) +
                              " indexed rows are not " + (live_only_index_ ? "live " : "") +
                              "chunks");
  }
  return Status::OK();
}

Status ProjectReader::ForEachLiveChunkId(const std::function<void(int64_t)>& fn) {
  return Each(
      "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
      "WHERE d.deleted_at IS NULL ORDER BY c.id",
      nullptr, [&](const sql::Statement& st) {
        fn(st.ColumnInt64(0));
        return Status::OK();
      });
}

Status ProjectReader::ForEachLiveEmbedding(
    const std::function<Status(int64_t, std::string_view)>& fn) {
  return Each(
      "SELECT c.id, c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id "
      "WHERE d.deleted_at IS NULL ORDER BY c.id",
      nullptr,
      [&](const sql::Statement& st) { return fn(st.ColumnInt64(0), st.ColumnBlobView(1)); });
}

Result<std::optional<std::string>> ProjectReader::ChunkEmbedding(int64_t chunk_id) {
  std::optional<std::string> bytes;
  KB_RETURN_IF_ERROR(Each(
      "SELECT embedding FROM chunks WHERE id = ?1",
      [&](sql::Statement& st) { st.Bind(1, chunk_id); },
      [&](const sql::Statement& st) {
        bytes = st.ColumnBlob(0);
        return Status::OK();
      }));
  return bytes;
}

}  // namespace kb::store
