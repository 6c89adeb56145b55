// The checks of one database file: see database_checks.h (and integrity_check.h for what each
// check costs). The SQL below restates a little of the store's schema;
// docs/format/DATABASE.md is the contract both follow.
#include "service/database_checks.h"

#include <algorithm>
#include <cstdio>

#include "common/file_util.h"
#include "store/content_checksum.h"
#include "store/journal_codec.h"
#include "store/migrations.h"
#include "store/project_store.h"

namespace kb::integrity_internal {

std::string QuoteIds(const std::vector<int64_t>& ids, size_t total) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < kMaxQuotedItems; ++i) {
    if (i) out += ", ";
    out += std::to_string(ids[i]);
  }
  if (total > kMaxQuotedItems) out += " and " + std::to_string(total - kMaxQuotedItems) + " more";
  return out;
}

std::string Plural(size_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

Result<std::unique_ptr<sql::Database>> OpenReadOnly(const std::string& path) {
  sql::OpenOptions o;
  o.read_only = true;
  return sql::Database::Open(path, o);
}

Status ForEachInt(sql::Database* db, const std::string& sql_text,
                  const std::function<void(int64_t)>& fn) {
  KB_ASSIGN_OR_RETURN(auto st, db->Prepare(sql_text));
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    fn(st.ColumnInt64(0));
  }
  return Status::OK();
}

namespace {

std::string HexId(int64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%08llX", static_cast<unsigned long long>(v) & 0xffffffffULL);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Checks shared by both kinds of database

void CheckSqliteIntegrity(sql::Database* db, DatabaseCheckReport* r) {
  auto st = db->Prepare("PRAGMA integrity_check");
  std::vector<std::string> rows;
  Status s = st.status();
  if (s.ok()) {
    while (true) {
      auto row = st->Step();
      if (!row.ok()) {
        s = row.status();
        break;
      }
      if (!*row) break;
      rows.push_back(st->ColumnText(0));
    }
  }
  if (!s.ok()) {
    r->Add(kCheckSqlite, CheckSeverity::kUnhealthy,
           "PRAGMA integrity_check failed: " + s.message());
    return;
  }
  if (rows.size() == 1 && rows[0] == "ok") {
    r->Pass(kCheckSqlite);
    return;
  }
  std::string text =
      "PRAGMA integrity_check reports " + Plural(rows.size(), "error", "errors") + ": ";
  for (size_t i = 0; i < rows.size() && i < kMaxQuotedItems; ++i) {
    if (i) text += "; ";
    text += rows[i];
  }
  if (rows.size() > kMaxQuotedItems) {
    text += "; and " + std::to_string(rows.size() - kMaxQuotedItems) + " more";
  }
  r->Add(kCheckSqlite, CheckSeverity::kUnhealthy, text);
}

// application_id and user_version; false (and a problem recorded) if the file is not ours or
// too new to interpret.
bool CheckFileIdentity(sql::Database* db, const store::SchemaSpec& spec, DatabaseCheckReport* r,
                       std::string* note) {
  auto app = db->QueryInt("PRAGMA application_id");
  auto version = db->QueryInt("PRAGMA user_version");
  if (!app.ok() || !version.ok()) {
    r->Add(
        kCheckSchema, CheckSeverity::kUnhealthy,
        "cannot read the file header: " + (app.ok() ? version.status() : app.status()).message());
    return false;
  }
  if (*app != spec.application_id) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "application_id is " + HexId(*app) + ", expected " + HexId(spec.application_id) +
               ": not a KnowledgeBeast " + std::string(spec.kind) + " database");
    return false;
  }
  if (*version > spec.latest_version()) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "schema version " + std::to_string(*version) + " is newer than this binary supports (" +
               std::to_string(spec.latest_version()) + ")");
    return false;
  }
  if (*version < 1) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "schema version 0: the file was never initialised");
    return false;
  }
  if (*version < spec.latest_version()) {
    *note = "schema version " + std::to_string(*version) + " (migrated to " +
            std::to_string(spec.latest_version()) + " when a server opens it)";
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Project database checks
std::optional<MetaInfo> CheckProjectSchema(sql::Database* db, const ExpectedProject& expected,
                                           DatabaseCheckReport* r) {
  std::string note;
  if (!CheckFileIdentity(db, store::ProjectSchema(), r, &note)) return std::nullopt;
  auto count = db->QueryInt("SELECT count(*) FROM meta");
  if (!count.ok()) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "meta table unreadable: " + count.status().message());
    return std::nullopt;
  }
  if (*count != 1) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "meta table has " + std::to_string(*count) + " rows, expected exactly 1");
    return std::nullopt;
  }
  auto st = db->Prepare("SELECT project_id, dimension, content_checksum, last_lsn FROM meta");
  if (!st.ok()) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "meta row unreadable: " + st.status().message());
    return std::nullopt;
  }
  auto row = st->Step();
  if (!row.ok() || !*row) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "meta row unreadable: " + (row.ok() ? std::string("no row") : row.status().message()));
    return std::nullopt;
  }
  MetaInfo meta;
  const std::string project_id = st->ColumnText(0);
  const int64_t dimension = st->ColumnInt64(1);
  meta.checksum_hex = st->ColumnText(2);
  meta.last_lsn = st->ColumnInt64(3);
  std::vector<std::string> problems;
  if (project_id != expected.id) {
    problems.push_back("meta.project_id is '" + project_id +
                       "' but the directory belongs to project " + expected.id);
  }
  if (dimension < 1 || dimension > 65536) {
    problems.push_back("meta.dimension is " + std::to_string(dimension));
  } else if (expected.dimension > 0 && dimension != expected.dimension) {
    problems.push_back("meta.dimension is " + std::to_string(dimension) + " but the catalog says " +
                       std::to_string(expected.dimension));
  }
  if (!store::ContentChecksum::FromHex(meta.checksum_hex)) {
    problems.push_back("meta.content_checksum '" + meta.checksum_hex + "' is not 64 hex digits");
  }
  if (meta.last_lsn < 0) problems.push_back("meta.last_lsn is negative");
  if (!problems.empty()) {
    std::string text;
    for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy, text);
    return std::nullopt;
  }
  meta.dimension = static_cast<int>(dimension);
  r->Pass(kCheckSchema, note);
  return meta;
}

Status CheckJournal(sql::Database* db, const MetaInfo& meta, DatabaseCheckReport* r) {
  KB_ASSIGN_OR_RETURN(auto st, db->Prepare("SELECT count(*), coalesce(min(lsn), 0), "
                                           "coalesce(max(lsn), 0) FROM journal"));
  KB_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Status::Internal("count returned no row");
  const int64_t count = st.ColumnInt64(0), first = st.ColumnInt64(1), last = st.ColumnInt64(2);
  std::vector<std::string> problems;
  if (count == 0) {
    if (meta.last_lsn != 0) {
      problems.push_back("the journal is empty but meta.last_lsn is " +
                         std::to_string(meta.last_lsn));
    }
  } else {
    if (last != meta.last_lsn) {
      problems.push_back("the newest journal entry is LSN " + std::to_string(last) +
                         " but meta.last_lsn is " + std::to_string(meta.last_lsn));
    }
    if (first < 1 || count != last - first + 1) {
      problems.push_back("the journal holds " + std::to_string(count) + " entries from LSN " +
                         std::to_string(first) + " to " + std::to_string(last) + ": " +
                         std::to_string(last - first + 1 - count) + " are missing");
    }
    KB_ASSIGN_OR_RETURN(auto tail, db->Prepare("SELECT checksum FROM journal WHERE lsn = ?1"));
    tail.Bind(1, last);
    KB_ASSIGN_OR_RETURN(bool found, tail.Step());
    if (found && tail.ColumnText(0) != meta.checksum_hex) {
      problems.push_back("the newest journal entry (LSN " + std::to_string(last) +
                         ") records content checksum " + tail.ColumnText(0) +
                         " but meta.content_checksum is " + meta.checksum_hex);
    }
  }
  if (problems.empty()) {
    r->Pass(kCheckJournal,
            count == 0 ? "empty" : "LSN " + std::to_string(first) + " to " + std::to_string(last));
  } else {
    std::string text;
    for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
    r->Add(kCheckJournal, CheckSeverity::kUnhealthy, text);
  }
  return Status::OK();
}

Status CheckChunks(sql::Database* db, const MetaInfo& meta, DatabaseCheckReport* r) {
  std::vector<std::string> problems;
  {
    KB_ASSIGN_OR_RETURN(auto st,
                        db->Prepare("SELECT id, length(embedding) FROM chunks WHERE "
                                    "typeof(embedding) != 'blob' OR length(embedding) != ?1 "
                                    "ORDER BY id"));
    st.Bind(1, int64_t{meta.dimension} * 4);
    IdSample bad;
    std::string example;
    while (true) {
      KB_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      if (bad.count == 0) {
        example = " (chunk " + std::to_string(st.ColumnInt64(0)) + " has " +
                  std::to_string(st.ColumnInt64(1)) + " bytes)";
      }
      bad.Add(st.ColumnInt64(0));
    }
    if (bad.count > 0) {
      problems.push_back(Plural(bad.count, "chunk", "chunks") + " with an embedding that is not " +
                         std::to_string(meta.dimension) + " float32s (" +
                         std::to_string(int64_t{meta.dimension} * 4) + " bytes): ids " +
                         QuoteIds(bad.ids, bad.count) + example);
    }
  }
  {
    KB_ASSIGN_OR_RETURN(auto st,
                        db->Prepare("SELECT d.id, d.chunk_count, (SELECT count(*) FROM chunks c "
                                    "WHERE c.document_id = d.id) AS n FROM documents d WHERE "
                                    "d.chunk_count != (SELECT count(*) FROM chunks c WHERE "
                                    "c.document_id = d.id) ORDER BY d.id"));
    size_t count = 0;
    std::string examples;
    while (true) {
      KB_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      if (count < kMaxQuotedItems) {
        examples += (examples.empty() ? "" : ", ") + st.ColumnText(0) + " says " +
                    std::to_string(st.ColumnInt64(1)) + " but has " +
                    std::to_string(st.ColumnInt64(2));
      }
      ++count;
    }
    if (count > 0) {
      problems.push_back(Plural(count, "document", "documents") +
                         " whose chunk_count differs from their chunk rows: " + examples +
                         (count > kMaxQuotedItems ? " and more" : ""));
    }
  }
  if (problems.empty()) {
    r->Pass(kCheckChunks);
  } else {
    std::string text;
    for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
    r->Add(kCheckChunks, CheckSeverity::kUnhealthy, text);
  }
  return Status::OK();
}

// The recomputation of docs/format/DATABASE.md section 5; DocumentDigestBuilder owns the byte
// encoding, this only selects the rows (as SqliteProjectStore::VerifyContentChecksum does).
Status CheckContentChecksum(sql::Database* db, const MetaInfo& meta, DatabaseCheckReport* r) {
  KB_ASSIGN_OR_RETURN(auto docs,
                      db->Prepare("SELECT id, title, source, content_type, content_hash, metadata, "
                                  "chunk_count, bytes, created_at, updated_at, deleted_at, "
                                  "deleted_by FROM documents ORDER BY id"));
  KB_ASSIGN_OR_RETURN(auto count,
                      db->Prepare("SELECT count(*) FROM chunks WHERE document_id = ?1"));
  KB_ASSIGN_OR_RETURN(auto chunks,
                      db->Prepare("SELECT id, ordinal, text, heading_path, start_offset, "
                                  "end_offset, embedding FROM chunks WHERE document_id = ?1 "
                                  "ORDER BY ordinal"));
  store::ContentChecksum sum;
  int64_t documents = 0;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, docs.Step());
    if (!row) break;
    DocumentRecord d;
    d.id = docs.ColumnText(0);
    d.title = docs.ColumnText(1);
    d.source = docs.ColumnText(2);
    d.content_type = docs.ColumnText(3);
    d.content_hash = docs.ColumnText(4);
    d.metadata_json = docs.ColumnText(5);
    d.chunk_count = static_cast<int>(docs.ColumnInt64(6));
    d.bytes = docs.ColumnInt64(7);
    d.created_at_ms = docs.ColumnInt64(8);
    d.updated_at_ms = docs.ColumnInt64(9);
    d.deleted_at_ms = docs.ColumnOptionalInt64(10);
    d.deleted_by = docs.ColumnText(11);
    count.Reset();
    count.Bind(1, d.id);
    KB_ASSIGN_OR_RETURN(bool counted, count.Step());
    if (!counted) return Status::Internal("count returned no row");
    store::DocumentDigestBuilder builder(d, static_cast<uint64_t>(count.ColumnInt64(0)));
    chunks.Reset();
    chunks.Bind(1, d.id);
    while (true) {
      KB_ASSIGN_OR_RETURN(bool c, chunks.Step());
      if (!c) break;
      builder.AddChunk(chunks.ColumnInt64(0), chunks.ColumnInt64(1), chunks.ColumnText(2),
                       chunks.ColumnText(3), chunks.ColumnInt64(4), chunks.ColumnInt64(5),
                       chunks.ColumnBlobView(6));
    }
    sum.Add(builder.Finish());
    ++documents;
  }
  if (sum.ToHex() == meta.checksum_hex) {
    r->Pass(kCheckContentChecksum, Plural(static_cast<size_t>(documents), "document", "documents"));
  } else {
    r->Add(kCheckContentChecksum, CheckSeverity::kUnhealthy,
           "the content checksum recomputed from the rows of " +
               Plural(static_cast<size_t>(documents), "document", "documents") + " is " +
               sum.ToHex() + " but meta.content_checksum is " + meta.checksum_hex +
               ": rows were changed without going through KnowledgeBeast, or the file is damaged");
  }
  return Status::OK();
}

Status CheckKeywordIndex(sql::Database* db, DatabaseCheckReport* r) {
  KB_ASSIGN_OR_RETURN(int64_t has_view, db->QueryInt("SELECT count(*) FROM sqlite_schema WHERE "
                                                     "type = 'view' AND name = 'live_chunks'"));
  KB_ASSIGN_OR_RETURN(int64_t has_docsize,
                      db->QueryInt("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                   "name = 'chunks_fts_docsize'"));
  if (has_docsize == 0) {
    r->Add(kCheckKeywordIndex, CheckSeverity::kDegraded,
           "the FTS5 table chunks_fts has no chunks_fts_docsize shadow table");
    return Status::OK();
  }
  // Schema 1 indexed every chunk, schema 2 the live ones (DATABASE.md, Migration 2).
  const std::string source = has_view ? "live_chunks" : "chunks";
  IdSample missing, extra;
  KB_RETURN_IF_ERROR(
      ForEachInt(db,
                 "SELECT id FROM " + source +
                     " WHERE id NOT IN (SELECT id FROM chunks_fts_docsize) ORDER BY id",
                 [&](int64_t id) { missing.Add(id); }));
  KB_RETURN_IF_ERROR(
      ForEachInt(db,
                 "SELECT id FROM chunks_fts_docsize WHERE id NOT IN (SELECT id FROM " + source +
                     ") ORDER BY id",
                 [&](int64_t id) { extra.Add(id); }));
  if (missing.count == 0 && extra.count == 0) {
    r->Pass(kCheckKeywordIndex);
    return Status::OK();
  }
  std::string text = "the FTS5 index chunks_fts does not match the " +
                     std::string(has_view ? "live " : "") + "chunks:";
  if (missing.count > 0) {
    text += " " + Plural(missing.count, "chunk is", "chunks are") + " not indexed (ids " +
            QuoteIds(missing.ids, missing.count) + ")";
  }
  if (extra.count > 0) {
    text += std::string(missing.count > 0 ? ";" : "") + " " +
            Plural(extra.count, "indexed row is", "indexed rows are") + " not a " +
            (has_view ? "live " : "") + "chunk (ids " + QuoteIds(extra.ids, extra.count) + ")";
  }
  r->Add(kCheckKeywordIndex, CheckSeverity::kDegraded, text);
  return Status::OK();
}

// Runs `check`, turning an error (SQLite refusing to read a damaged page, say) into a problem.
void RunCheck(std::string_view name, CheckSeverity severity, DatabaseCheckReport* r,
              const std::function<Status()>& check) {
  Status s = check();
  if (!s.ok()) r->Add(name, severity, "could not be completed: " + s.message());
}

// A database opened read-only with one read transaction, so every check of the file sees the
// same snapshot. Members in this order: the transaction ends before the connection closes.
struct CheckedFile {
  std::unique_ptr<sql::Database> db;
  sql::Transaction tx;
};

// Opens r->path for checking; nullopt, with the problem recorded in `r`, if it cannot be opened
// or read.
std::optional<CheckedFile> OpenForChecks(DatabaseCheckReport* r) {
  auto db = OpenReadOnly(r->path);
  if (!db.ok()) {
    r->Add(kCheckSqlite, CheckSeverity::kUnhealthy, "cannot open: " + db.status().message());
    return std::nullopt;
  }
  auto tx = sql::Transaction::Begin(db->get(), sql::Transaction::Mode::kDeferred);
  if (!tx.ok()) {
    r->Add(kCheckSqlite, CheckSeverity::kUnhealthy, "cannot read: " + tx.status().message());
    return std::nullopt;
  }
  return CheckedFile{std::move(db).value(), std::move(tx).value()};
}

}  // namespace

std::optional<MetaInfo> CheckProjectDatabase(const ExpectedProject& expected,
                                             DatabaseCheckReport* r) {
  if (!PathExists(r->path)) {
    r->Add(kCheckSqlite, CheckSeverity::kUnhealthy, "the database file is missing");
    return std::nullopt;
  }
  std::optional<CheckedFile> file = OpenForChecks(r);
  if (!file) return std::nullopt;
  sql::Database* db = file->db.get();
  CheckSqliteIntegrity(db, r);
  std::optional<MetaInfo> meta = CheckProjectSchema(db, expected, r);
  if (!meta) return std::nullopt;
  sql::Database* d = db;
  RunCheck(kCheckJournal, CheckSeverity::kUnhealthy, r, [&] { return CheckJournal(d, *meta, r); });
  RunCheck(kCheckChunks, CheckSeverity::kUnhealthy, r, [&] { return CheckChunks(d, *meta, r); });
  RunCheck(kCheckContentChecksum, CheckSeverity::kUnhealthy, r,
           [&] { return CheckContentChecksum(d, *meta, r); });
  RunCheck(kCheckKeywordIndex, CheckSeverity::kDegraded, r,
           [&] { return CheckKeywordIndex(d, r); });
  return meta;
}

// ---------------------------------------------------------------------------------------------
// Catalog

Result<std::vector<ExpectedProject>> ReadCatalogProjects(sql::Database* db) {
  KB_ASSIGN_OR_RETURN(auto st, db->Prepare("SELECT id, name, embedding_dimension, deleted_at IS "
                                           "NOT NULL FROM projects ORDER BY created_at, id"));
  std::vector<ExpectedProject> out;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    ExpectedProject p;
    p.id = st.ColumnText(0);
    p.name = st.ColumnText(1);
    const int64_t dim = st.ColumnInt64(2);
    p.dimension = dim > 0 && dim <= 65536 ? static_cast<int>(dim) : 0;
    p.deleted = st.ColumnInt64(3) != 0;
    out.push_back(std::move(p));
  }
  return out;
}

std::optional<std::vector<ExpectedProject>> CheckCatalog(DatabaseCheckReport* r) {
  std::optional<CheckedFile> file = OpenForChecks(r);
  if (!file) return std::nullopt;
  sql::Database* db = file->db.get();
  CheckSqliteIntegrity(db, r);
  std::string note;
  if (!CheckFileIdentity(db, store::CatalogSchema(), r, &note)) return std::nullopt;
  auto projects = ReadCatalogProjects(db);
  if (!projects.ok()) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "the projects table is unreadable: " + projects.status().message());
    return std::nullopt;
  }
  r->Pass(kCheckSchema, note.empty() ? Plural(projects->size(), "project", "projects") : note);
  return std::move(projects).value();
}

}  // namespace kb::integrity_internal
