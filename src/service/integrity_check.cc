// The integrity check (see integrity_check.h for what is checked and what it costs).
//
// Everything here reads the files through its own read-only SQLite connections, never through a
// ProjectStore or Catalog: those open read-write and migrate, which an offline check of a backup
// or of a damaged directory must not do. The SQL below therefore restates a little of the
// store's schema; docs/format/DATABASE.md is the contract both follow.
#include "service/integrity_check.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>

#include "common/data_layout.h"
#include "common/file_util.h"
#include "embed/embedder.h"
#include "store/content_checksum.h"
#include "store/journal_codec.h"
#include "store/migrations.h"
#include "store/project_store.h"
#include "store/sqlite.h"

namespace kb {

using nlohmann::json;

namespace {

constexpr size_t kRebuildBatch = 512;
constexpr const char* kLiveChunkIdsSql =
    "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
    "WHERE d.deleted_at IS NULL ORDER BY c.id";

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

std::string HexId(int64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%08llX", static_cast<unsigned long long>(v) & 0xffffffffULL);
  return buf;
}

Result<std::unique_ptr<sql::Database>> OpenReadOnly(const std::string& path) {
  sql::OpenOptions o;
  o.read_only = true;
  return sql::Database::Open(path, o);
}

// Runs a query whose rows are single integers, e.g. ids.
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

// Collects up to kMaxQuotedItems ids and counts them all.
struct IdSample {
  std::vector<int64_t> ids;
  size_t count = 0;
  void Add(int64_t id) {
    if (ids.size() < kMaxQuotedItems) ids.push_back(id);
    ++count;
  }
};

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

struct MetaInfo {
  int dimension = 0;
  std::string checksum_hex;
  int64_t last_lsn = 0;
};

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

// The database checks of one kb.db; the meta row if the file could be interpreted.
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

bool PassedAll(const DatabaseCheckReport& r, std::initializer_list<std::string_view> names) {
  for (const CheckResult& c : r.checks) {
    for (std::string_view n : names) {
      if (c.name == n && c.found_problem()) return false;
    }
  }
  return true;
}

// Offline repair of a saved index: rebuild from kb.db, save, check again.
void RepairSavedIndex(const std::string& project_dir, int dimension,
                      const VectorIndexOptions& options, CheckResult* result) {
  auto fresh = BuildVectorIndexFromDatabase(layout::ProjectDbIn(project_dir), dimension, options);
  if (!fresh.ok()) {
    result->problem += "; rebuilding it failed: " + fresh.status().message();
    return;
  }
  const int64_t lsn = (*fresh)->lsn();
  const size_t vectors = (*fresh)->Size();
  Status saved = (*fresh)->Save(layout::ProjectIndexDirIn(project_dir), lsn);
  if (!saved.ok()) {
    result->problem += "; saving the rebuilt index failed: " + saved.message();
    return;
  }
  CheckResult again = CheckSavedVectorIndex(project_dir, dimension, options);
  if (again.found_problem()) {
    result->problem += "; the rebuilt index still fails: " + again.problem;
    return;
  }
  result->repaired = true;
  result->note = "rebuilt from kb.db at LSN " + std::to_string(lsn) + " (" +
                 Plural(vectors, "vector", "vectors") + ")";
}

// ---------------------------------------------------------------------------------------------
// Catalog

bool ValidProjectId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

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

// Checks catalog.db; the projects it lists, or nullopt if they cannot be read.
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

Result<std::set<std::string>> CatalogIds(const std::string& path) {
  KB_ASSIGN_OR_RETURN(auto db, OpenReadOnly(path));
  KB_ASSIGN_OR_RETURN(auto projects, ReadCatalogProjects(db.get()));
  std::set<std::string> ids;
  for (auto& p : projects) ids.insert(p.id);
  return ids;
}

std::string ProjectLabel(const DatabaseCheckReport& d) {
  if (d.kind == "catalog") return d.path;
  std::string out = d.path;
  if (!d.project_name.empty()) {
    out += " (project '" + d.project_name + "'" + (d.project_deleted ? ", deleted" : "") + ")";
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Report types

std::string_view CheckSeverityName(CheckSeverity severity) {
  switch (severity) {
    case CheckSeverity::kOk:
      return "ok";
    case CheckSeverity::kDegraded:
      return "degraded";
    case CheckSeverity::kUnhealthy:
      return "unhealthy";
  }
  return "unhealthy";
}

CheckSeverity DatabaseCheckReport::severity() const {
  CheckSeverity worst = CheckSeverity::kOk;
  for (const CheckResult& c : checks) worst = std::max(worst, c.outstanding());
  return worst;
}

bool DatabaseCheckReport::found_problem() const {
  for (const CheckResult& c : checks) {
    if (c.found_problem()) return true;
  }
  return false;
}

void DatabaseCheckReport::Add(std::string_view name, CheckSeverity severity, std::string problem) {
  // One result per check name: a second problem of the same check is appended to the first.
  for (CheckResult& c : checks) {
    if (c.name != name) continue;
    if (!c.found_problem()) {
      c.severity = severity;
      c.problem = std::move(problem);
      c.note.clear();
    } else {
      c.severity = std::max(c.severity, severity);
      c.problem += "; " + problem;
    }
    return;
  }
  checks.push_back(CheckResult{std::string(name), severity, std::move(problem), false, ""});
}

void DatabaseCheckReport::Pass(std::string_view name, std::string note) {
  for (const CheckResult& c : checks) {
    if (c.name == name) return;  // already recorded (possibly as a problem)
  }
  checks.push_back(CheckResult{std::string(name), CheckSeverity::kOk, "", false, std::move(note)});
}

CheckSeverity IntegrityReport::severity() const {
  CheckSeverity worst = CheckSeverity::kOk;
  for (const auto& d : databases) worst = std::max(worst, d.severity());
  return worst;
}

bool IntegrityReport::found_problem() const {
  for (const auto& d : databases) {
    if (d.found_problem()) return true;
  }
  return false;
}

std::vector<std::string> IntegrityReport::Problems(bool outstanding_only) const {
  std::vector<std::string> out;
  for (const auto& d : databases) {
    for (const CheckResult& c : d.checks) {
      if (!c.found_problem() || (outstanding_only && c.repaired)) continue;
      out.push_back(ProjectLabel(d) + ": " + c.name + ": " + c.problem +
                    (c.repaired ? " (repaired)" : ""));
    }
  }
  return out;
}

std::vector<std::string> IntegrityReport::Repairs() const {
  std::vector<std::string> out;
  for (const auto& d : databases) {
    for (const CheckResult& c : d.checks) {
      if (c.repaired) out.push_back(ProjectLabel(d) + ": " + c.name + ": " + c.problem);
    }
  }
  return out;
}

json IntegrityReportToJson(const IntegrityReport& report) {
  json dbs = json::array();
  for (const auto& d : report.databases) {
    json checks = json::array();
    for (const CheckResult& c : d.checks) {
      checks.push_back({{"name", c.name},
                        {"ok", c.outstanding() == CheckSeverity::kOk},
                        {"severity", std::string(CheckSeverityName(c.severity))},
                        {"problem", c.found_problem() ? json(c.problem) : json()},
                        {"repaired", c.repaired},
                        {"note", c.note.empty() ? json() : json(c.note)}});
    }
    dbs.push_back({{"path", d.path},
                   {"kind", d.kind},
                   {"project_id", d.project_id.empty() ? json() : json(d.project_id)},
                   {"project_name", d.project_name.empty() ? json() : json(d.project_name)},
                   {"deleted", d.project_deleted},
                   {"status", std::string(CheckSeverityName(d.severity()))},
                   {"checks", std::move(checks)}});
  }
  return {{"data_dir", report.data_dir},
          {"status", std::string(CheckSeverityName(report.severity()))},
          {"problems_found", report.found_problem()},
          {"cancelled", report.cancelled},
          {"started_at", FormatIso8601(report.started_at_ms)},
          {"duration_ms", report.duration_ms},
          {"databases", std::move(dbs)}};
}

// ---------------------------------------------------------------------------------------------
// IndexComparison

struct IndexComparison::State {
  std::unique_ptr<sql::Database> db;
  std::optional<sql::Transaction> tx;
  int dimension = 0;
  int64_t lsn = -1;  // -1 until pinned
};

IndexComparison::~IndexComparison() {
  if (state_) state_->tx.reset();  // end the read transaction before closing the connection
}

Result<std::unique_ptr<IndexComparison>> IndexComparison::Open(const std::string& db_path,
                                                               int dimension) {
  if (dimension < 1) return Status::InvalidArgument("dimension must be positive");
  std::unique_ptr<IndexComparison> c(new IndexComparison());
  c->state_ = std::make_unique<State>();
  c->state_->dimension = dimension;
  KB_ASSIGN_OR_RETURN(c->state_->db, OpenReadOnly(db_path));
  return c;
}

Result<int64_t> IndexComparison::Pin() {
  State& s = *state_;
  s.tx.reset();
  KB_ASSIGN_OR_RETURN(auto tx,
                      sql::Transaction::Begin(s.db.get(), sql::Transaction::Mode::kDeferred));
  s.tx.emplace(std::move(tx));
  // The first read starts the snapshot.
  KB_ASSIGN_OR_RETURN(s.lsn, s.db->QueryInt("SELECT last_lsn FROM meta"));
  return s.lsn;
}

Status IndexComparison::CatchUp(VectorIndex* index) {
  State& s = *state_;
  if (s.lsn < 0) return Status::Internal("IndexComparison::CatchUp before Pin");
  int64_t after = index->lsn();
  if (after > s.lsn) {
    return Status::Corruption("the index reflects LSN " + std::to_string(after) +
                              ", ahead of the journal (LSN " + std::to_string(s.lsn) + ")");
  }
  KB_ASSIGN_OR_RETURN(auto st, s.db->Prepare("SELECT lsn, ts_ms, actor, op, payload, checksum FROM "
                                             "journal WHERE lsn > ?1 AND lsn <= ?2 ORDER BY lsn"));
  st.Bind(1, after).Bind(2, s.lsn);
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    JournalEntry e{st.ColumnInt64(0), st.ColumnInt64(1), st.ColumnText(2),
                   st.ColumnText(3),  st.ColumnText(4),  st.ColumnText(5)};
    if (e.lsn != after + 1) {
      return Status::Corruption("journal entry " + std::to_string(after + 1) + " is missing");
    }
    auto delta = DecodeIndexDelta(e);
    if (!delta.ok()) {
      return Status::Corruption("journal entry " + std::to_string(e.lsn) + ": " +
                                delta.status().message());
    }
    for (int64_t label : delta->removals) index->Remove(label);
    for (const auto& [label, vec] : delta->upserts) {
      Status u = index->Upsert(label, vec);
      if (!u.ok()) {
        return Status::Corruption("journal entry " + std::to_string(e.lsn) + ": " + u.message());
      }
    }
    after = e.lsn;
    index->set_lsn(after);
  }
  if (after != s.lsn) {
    return Status::Corruption("journal entries after LSN " + std::to_string(after) +
                              " are missing");
  }
  return Status::OK();
}

Result<std::string> IndexComparison::Compare(const VectorIndex& index,
                                             const std::vector<int64_t>& labels) {
  State& s = *state_;
  if (s.lsn < 0) return Status::Internal("IndexComparison::Compare before Pin");
  std::vector<int64_t> live;
  KB_RETURN_IF_ERROR(
      ForEachInt(s.db.get(), kLiveChunkIdsSql, [&](int64_t id) { live.push_back(id); }));
  IdSample missing, extra;
  {
    size_t i = 0, j = 0;
    while (i < live.size() || j < labels.size()) {
      if (j == labels.size() || (i < live.size() && live[i] < labels[j])) {
        missing.Add(live[i++]);
      } else if (i == live.size() || labels[j] < live[i]) {
        extra.Add(labels[j++]);
      } else {
        ++i;
        ++j;
      }
    }
  }
  if (missing.count > 0 || extra.count > 0) {
    std::string text = "it holds " + Plural(labels.size(), "vector", "vectors") +
                       " but kb.db has " + Plural(live.size(), "live chunk", "live chunks") +
                       " at LSN " + std::to_string(s.lsn) + ":";
    if (missing.count > 0) {
      text += " " + Plural(missing.count, "live chunk is", "live chunks are") +
              " missing from the index (ids " + QuoteIds(missing.ids, missing.count) + ")";
    }
    if (extra.count > 0) {
      text += std::string(missing.count > 0 ? ";" : "") + " " +
              Plural(extra.count, "vector is", "vectors are") + " not a live chunk (ids " +
              QuoteIds(extra.ids, extra.count) + ")";
    }
    return text;
  }
  // The vectors themselves: a sample spread over the id range.
  KB_ASSIGN_OR_RETURN(auto st, s.db->Prepare("SELECT embedding FROM chunks WHERE id = ?1"));
  const size_t samples = std::min(kSampledVectors, live.size());
  for (size_t k = 0; k < samples; ++k) {
    const int64_t id = live[k * live.size() / samples];
    st.Reset();
    st.Bind(1, id);
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row)
      return Status::Internal("chunk " + std::to_string(id) + " vanished from the snapshot");
    auto emb = store::EmbeddingFromBytes(st.ColumnBlobView(0));
    if (!emb || emb->size() != static_cast<size_t>(s.dimension) || !NormalizeL2(&*emb)) {
      return "chunk " + std::to_string(id) + ": its embedding in kb.db is not a usable vector of " +
             std::to_string(s.dimension) + " floats";
    }
    auto hits = index.SearchExact(*emb, 1, [id](int64_t label) { return label == id; });
    if (hits.empty()) {
      if (!index.Contains(id)) continue;  // removed by a write after the snapshot
      return "chunk " + std::to_string(id) + ": its vector cannot be read back from the index";
    }
    if (hits[0].score < kSameVectorMinCosine) {
      char cosine[32];
      std::snprintf(cosine, sizeof cosine, "%.4f", static_cast<double>(hits[0].score));
      return "chunk " + std::to_string(id) +
             ": the index's vector differs from the embedding in kb.db (cosine similarity " +
             cosine + ")";
    }
  }
  return std::string();
}

Result<std::unique_ptr<VectorIndex>> BuildVectorIndexFromDatabase(
    const std::string& db_path, int dimension, const VectorIndexOptions& options) {
  KB_ASSIGN_OR_RETURN(auto cmp, IndexComparison::Open(db_path, dimension));
  KB_ASSIGN_OR_RETURN(int64_t lsn, cmp->Pin());
  VectorIndexOptions o = options;
  o.dimension = dimension;
  std::unique_ptr<VectorIndex> index = VectorIndex::Create(o);
  sql::Database* db = cmp->state_->db.get();
  KB_ASSIGN_OR_RETURN(auto st,
                      db->Prepare("SELECT c.id, c.embedding FROM chunks c JOIN documents d "
                                  "ON d.id = c.document_id WHERE d.deleted_at IS NULL "
                                  "ORDER BY c.id"));
  std::vector<int64_t> labels;
  std::vector<std::vector<float>> vectors;
  auto flush = [&]() -> Status {
    Status s = index->UpsertBatch(labels, vectors);
    labels.clear();
    vectors.clear();
    return s;
  };
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    auto emb = store::EmbeddingFromBytes(st.ColumnBlobView(1));
    if (!emb || emb->size() != static_cast<size_t>(dimension)) {
      return Status::Corruption(db_path + ": chunk " + std::to_string(st.ColumnInt64(0)) +
                                ": embedding BLOB does not hold " + std::to_string(dimension) +
                                " floats");
    }
    labels.push_back(st.ColumnInt64(0));
    vectors.push_back(std::move(*emb));
    if (labels.size() >= kRebuildBatch) KB_RETURN_IF_ERROR(flush());
  }
  KB_RETURN_IF_ERROR(flush());
  index->set_lsn(lsn);
  return index;
}

// ---------------------------------------------------------------------------------------------
// Saved index, project directory, data directory

CheckResult CheckSavedVectorIndex(const std::string& project_dir, int dimension,
                                  const VectorIndexOptions& options) {
  CheckResult r{std::string(kCheckVectorIndex), CheckSeverity::kOk, "", false, ""};
  auto fail = [&](std::string problem) {
    r.severity = CheckSeverity::kDegraded;
    r.problem = std::move(problem);
    return r;
  };
  const std::string index_dir = layout::ProjectIndexDirIn(project_dir);
  VectorIndexOptions o = options;
  o.dimension = dimension;
  // Load before pinning the database snapshot: the saved LSN is then never legitimately ahead of
  // the snapshot (an index only ever reflects committed entries).
  auto loaded = VectorIndex::Load(index_dir, o);
  if (!loaded.ok()) {
    if (loaded.status().code() == Code::kNotFound) {
      return fail("no saved vector index in " + index_dir +
                  " (its manifest VECTOR_INDEX is missing)");
    }
    return fail(loaded.status().message());
  }
  VectorIndex& index = **loaded;
  const int64_t saved_lsn = index.lsn();
  auto cmp = IndexComparison::Open(layout::ProjectDbIn(project_dir), dimension);
  if (!cmp.ok()) return fail("cannot read kb.db to compare: " + cmp.status().message());
  auto db_lsn = (*cmp)->Pin();
  if (!db_lsn.ok()) return fail("cannot read kb.db to compare: " + db_lsn.status().message());
  if (saved_lsn > *db_lsn) {
    return fail("the saved index in " + index_dir + " reflects LSN " + std::to_string(saved_lsn) +
                ", ahead of kb.db's journal (LSN " + std::to_string(*db_lsn) +
                "): it belongs to a newer state of the database");
  }
  Status caught_up = (*cmp)->CatchUp(&index);
  if (!caught_up.ok()) {
    return fail("the journal cannot be replayed onto the saved index in " + index_dir +
                " (saved at LSN " + std::to_string(saved_lsn) + "): " + caught_up.message());
  }
  auto diff = (*cmp)->Compare(index, index.Labels());
  if (!diff.ok()) return fail("cannot compare with kb.db: " + diff.status().message());
  if (!diff->empty()) {
    return fail("the saved index in " + index_dir + " (saved at LSN " + std::to_string(saved_lsn) +
                ", replayed to " + std::to_string(*db_lsn) + ") disagrees with kb.db: " + *diff);
  }
  r.note = "saved at LSN " + std::to_string(saved_lsn) + ", " +
           Plural(index.Size(), "vector", "vectors") +
           (saved_lsn < *db_lsn ? ", replayed to LSN " + std::to_string(*db_lsn) : "");
  return r;
}

DatabaseCheckReport CheckProjectDirectory(const std::string& project_dir,
                                          const ExpectedProject& expected,
                                          const IntegrityCheckOptions& options) {
  DatabaseCheckReport r;
  r.path = layout::ProjectDbIn(project_dir);
  r.kind = "project";
  r.project_id = expected.id;
  r.project_name = expected.name;
  r.project_deleted = expected.deleted;
  std::optional<MetaInfo> meta = CheckProjectDatabase(expected, &r);
  if (!meta) return r;  // the index cannot be judged against a database that cannot be read

  if (options.check_vector_index) {
    ExpectedProject p = expected;
    p.dimension = meta->dimension;
    CheckResult c = options.check_vector_index(p, project_dir);
    c.name = std::string(kCheckVectorIndex);
    r.checks.push_back(std::move(c));
    return r;
  }
  CheckResult c = CheckSavedVectorIndex(project_dir, meta->dimension, options.index);
  if (c.found_problem() && options.repair_index) {
    if (PassedAll(r, {kCheckSqlite, kCheckSchema, kCheckChunks})) {
      RepairSavedIndex(project_dir, meta->dimension, options.index, &c);
    } else {
      c.note = "not repaired: kb.db itself failed its checks";
    }
  }
  r.checks.push_back(std::move(c));
  return r;
}

Result<IntegrityReport> CheckDataDirectory(const std::string& data_dir,
                                           const IntegrityCheckOptions& options) {
  namespace fs = std::filesystem;
  const Clock* clock = options.clock ? options.clock : SystemClock::Default();
  const int64_t started_us = MonotonicMicros();
  IntegrityReport report;
  report.data_dir = data_dir;
  report.started_at_ms = clock->NowMillis();

  std::error_code ec;
  if (!fs::exists(data_dir, ec)) return Status::NotFound(data_dir + " does not exist");
  if (!fs::is_directory(data_dir, ec)) {
    return Status::FailedPrecondition(data_dir + " is not a directory");
  }
  const std::string catalog_path = layout::CatalogDb(data_dir);
  if (!fs::exists(catalog_path, ec)) {
    return Status::FailedPrecondition(
        data_dir + " is not a KnowledgeBeast data directory: it has no catalog.db");
  }
  const std::string projects_dir = layout::ProjectsDir(data_dir);

  DatabaseCheckReport catalog;
  catalog.path = catalog_path;
  catalog.kind = "catalog";
  std::optional<std::vector<ExpectedProject>> projects = CheckCatalog(&catalog);
  const bool catalog_readable = projects.has_value();
  report.databases.push_back(std::move(catalog));

  // Every directory under projects/ (names only; what they hold is checked below).
  std::set<std::string> dirs;
  if (fs::is_directory(projects_dir, ec)) {
    for (const auto& entry : fs::directory_iterator(projects_dir, ec)) {
      std::error_code type_ec;
      if (entry.is_directory(type_ec)) dirs.insert(entry.path().filename().string());
    }
  }
  if (!projects) {
    // Without a readable catalog, check whatever project directories exist, on their own terms.
    projects.emplace();
    for (const std::string& id : dirs) projects->push_back(ExpectedProject{id, "", 0, false});
  }

  std::set<std::string> listed;
  for (const ExpectedProject& p : *projects) {
    if (options.cancelled && options.cancelled()) {
      report.cancelled = true;
      break;
    }
    listed.insert(p.id);
    const std::string dir = layout::ProjectDir(data_dir, p.id);
    if (!ValidProjectId(p.id)) {
      DatabaseCheckReport bad;
      bad.path = catalog_path;
      bad.kind = "project";
      bad.project_id = p.id;
      bad.project_name = p.name;
      bad.project_deleted = p.deleted;
      bad.Add(kCheckCatalog, CheckSeverity::kUnhealthy,
              "the catalog lists a project whose id is not a valid directory name");
      report.databases.push_back(std::move(bad));
      continue;
    }
    if (!dirs.count(p.id)) {
      if (p.deleted) continue;  // a soft-deleted project's files may be gone: nothing to check
      DatabaseCheckReport missing;
      missing.path = layout::ProjectDbIn(dir);
      missing.kind = "project";
      missing.project_id = p.id;
      missing.project_name = p.name;
      missing.Add(kCheckCatalog, CheckSeverity::kUnhealthy,
                  "the catalog lists this live project but its directory " + dir + " is missing");
      report.databases.push_back(std::move(missing));
      continue;
    }
    report.databases.push_back(CheckProjectDirectory(dir, p, options));
  }

  if (catalog_readable && !report.cancelled) {
    std::vector<std::string> orphans;
    for (const std::string& id : dirs) {
      if (!listed.count(id)) orphans.push_back(id);
    }
    if (!orphans.empty()) {
      // A project created while this check ran has its directory before its catalog row: ask
      // the catalog again before calling a directory an orphan.
      auto now = CatalogIds(catalog_path);
      for (const std::string& id : orphans) {
        if (now.ok() && now->count(id)) continue;
        DatabaseCheckReport orphan;
        orphan.path = layout::ProjectDir(data_dir, id);
        orphan.kind = "project";
        orphan.project_id = id;
        orphan.Add(kCheckCatalog, CheckSeverity::kDegraded,
                   "no catalog row names this project directory (left behind by an interrupted "
                   "project creation, or its catalog row was lost)");
        report.databases.push_back(std::move(orphan));
      }
    }
  }
  report.duration_ms = (MonotonicMicros() - started_us) / 1000;
  return report;
}

}  // namespace kb
