// CatalogReader: the read-only view of catalog.db for code outside the store (see
// catalog_reader.h).
#include "store/catalog_reader.h"

#include <utility>

namespace kb::store {

CatalogReader::CatalogReader(std::string path, std::unique_ptr<sql::Database> db)
    : path_(std::move(path)), db_(std::move(db)) {}

CatalogReader::~CatalogReader() = default;

Result<std::unique_ptr<CatalogReader>> CatalogReader::OpenUnchecked(const std::string& path) {
  sql::OpenOptions options;
  options.read_only = true;
  KB_ASSIGN_OR_RETURN(auto db, sql::Database::Open(path, options));
  return std::unique_ptr<CatalogReader>(new CatalogReader(path, std::move(db)));
}

Status CatalogReader::BeginSnapshot() {
  if (snapshot_) return Status::FailedPrecondition(path_ + ": a snapshot is already open");
  KB_ASSIGN_OR_RETURN(auto tx,
                      sql::Transaction::Begin(db_.get(), sql::Transaction::Mode::kDeferred));
  snapshot_.emplace(std::move(tx));
  return Status::OK();
}

Status CatalogReader::EndSnapshot() {
  if (!snapshot_) return Status::OK();
  Status s = snapshot_->Commit();
  snapshot_.reset();
  return s;
}

Result<FileIdentity> CatalogReader::Identity() {
  KB_ASSIGN_OR_RETURN(int64_t app, db_->QueryInt("PRAGMA application_id"));
  KB_ASSIGN_OR_RETURN(int64_t version, db_->QueryInt("PRAGMA user_version"));
  return FileIdentity{app, version};
}

Result<std::vector<std::string>> CatalogReader::SqliteIntegrityReport() {
  KB_ASSIGN_OR_RETURN(auto st, db_->Prepare("PRAGMA integrity_check"));
  std::vector<std::string> rows;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    rows.push_back(st.ColumnText(0));
  }
  return rows;
}

Result<std::vector<CatalogProjectRow>> CatalogReader::Projects() {
  KB_ASSIGN_OR_RETURN(auto st, db_->Prepare("SELECT id, name, embedding_dimension, deleted_at IS "
                                            "NOT NULL FROM projects ORDER BY created_at, id"));
  std::vector<CatalogProjectRow> out;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(CatalogProjectRow{st.ColumnText(0), st.ColumnText(1), st.ColumnInt64(2),
                                    st.ColumnInt64(3) != 0});
  }
  return out;
}

}  // namespace kb::store
