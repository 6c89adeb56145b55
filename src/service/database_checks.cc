// The checks of one database file: see database_checks.h (and integrity_check.h for what each
// check costs). The files are read through store::ProjectReader and store::CatalogReader, which
// own the SQL on the two schemas; what is judged here, and how a finding is worded, is the
// check's own.
#include "service/database_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>

#include "common/file_util.h"
#include "store/catalog_reader.h"
#include "store/content_checksum.h"
#include "store/journal_codec.h"
#include "store/migrations.h"
#include "store/project_reader.h"

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

namespace {

std::string HexId(int64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%08llX", static_cast<unsigned long long>(v) & 0xffffffffULL);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Checks shared by both kinds of database

// Judges the rows of PRAGMA integrity_check (or the error that stopped it).
void CheckSqliteIntegrity(const Result<std::vector<std::string>>& report, DatabaseCheckReport* r) {
  if (!report.ok()) {
    r->Add(kCheckSqlite, CheckSeverity::kUnhealthy,
           "PRAGMA integrity_check failed: " + report.status().message());
    return;
  }
  const std::vector<std::string>& rows = *report;
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

// application_id and user_version, as read; false (and a problem recorded) if the file is not
// ours or too new to interpret.
bool CheckFileIdentity(const Result<store::FileIdentity>& id, const store::SchemaSpec& spec,
                       DatabaseCheckReport* r, std::string* note) {
  if (!id.ok()) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "cannot read the file header: " + id.status().message());
    return false;
  }
  const int64_t app = id->application_id;
  const int64_t version = id->schema_version;
  if (app != spec.application_id) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "application_id is " + HexId(app) + ", expected " + HexId(spec.application_id) +
               ": not a KnowledgeBeast " + std::string(spec.kind) + " database");
    return false;
  }
  if (version > spec.latest_version()) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "schema version " + std::to_string(version) + " is newer than this binary supports (" +
               std::to_string(spec.latest_version()) + ")");
    return false;
  }
  if (version < 1) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "schema version 0: the file was never initialised");
    return false;
  }
  if (version < spec.latest_version()) {
    *note = "schema version " + std::to_string(version) + " (migrated to " +
            std::to_string(spec.latest_version()) + " when a server opens it)";
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Project database checks
std::optional<MetaInfo> CheckProjectSchema(store::ProjectReader* db,
                                           const ExpectedProject& expected,
                                           DatabaseCheckReport* r) {
  std::string note;
  if (!CheckFileIdentity(db->Identity(), store::ProjectSchema(), r, &note)) return std::nullopt;
  auto count = db->MetaRowCount();
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
  auto row = db->Meta();
  if (!row.ok()) {
    r->Add(kCheckSchema, CheckSeverity::kUnhealthy,
           "meta row unreadable: " + row.status().message());
    return std::nullopt;
  }
  MetaInfo meta;
  const std::string project_id = row->project_id;
  const int64_t dimension = row->dimension;
  meta.checksum_hex = row->content_checksum;
  meta.last_lsn = row->last_lsn;
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

// Empty if the entry decodes as its op says (JOURNAL.md section 2: the payload is valid UTF-8
// JSON of the op's shape, embeddings have `dimension` finite floats) and its checksum is 64 hex
// digits; else what is wrong. SQLite's own check does not read overflow pages' bytes, and a
// journal entry is mostly overflow pages: this is what finds damage there.
std::string JournalEntryProblem(const JournalEntry& e, int dimension) {
  auto embeddings_ok = [dimension](const std::vector<float>& v) {
    if (v.size() != static_cast<size_t>(dimension)) return false;
    for (float f : v) {
      if (!std::isfinite(f)) return false;
    }
    return true;
  };
  Status decoded;
  if (e.op == store::kOpPutDocument) {
    auto p = store::DecodePutPayload(e.payload);
    decoded = p.status();
    if (p.ok()) {
      for (const ChunkRecord& c : p->chunks) {
        if (!embeddings_ok(c.embedding)) {
          decoded = Status::Corruption("chunk " + std::to_string(c.id) + "'s embedding is not " +
                                       std::to_string(dimension) + " finite floats");
          break;
        }
      }
    }
  } else if (e.op == store::kOpUndeleteDocument) {
    auto p = store::DecodeUndeletePayload(e.payload);
    decoded = p.status();
    if (p.ok()) {
      for (const auto& [id, embedding] : p->chunks) {
        if (!embeddings_ok(embedding)) {
          decoded = Status::Corruption("chunk " + std::to_string(id) + "'s embedding is not " +
                                       std::to_string(dimension) + " finite floats");
          break;
        }
      }
    }
  } else if (e.op == store::kOpDeleteDocument) {
    decoded = store::DecodeDeletePayload(e.payload).status();
  } else if (e.op == store::kOpPurgeDocument) {
    decoded = store::DecodePurgePayload(e.payload).status();
  } else if (e.op == store::kOpScrubbed) {
    decoded = store::DecodeScrubbedPayload(e.payload).status();
  } else {
    return "unknown op '" + e.op.substr(0, 40) + "'";
  }
  if (!decoded.ok()) return "its " + e.op + " payload does not decode: " + decoded.message();
  if (e.checksum.size() != 64 ||
      e.checksum.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return "its checksum is not 64 lower-case hex digits";
  }
  return "";
}

// Decodes every entry (in batches, inside the check's one snapshot). Appends problems.
Status DecodeWholeJournal(store::ProjectReader* db, int64_t first, int64_t last, int dimension,
                          std::vector<std::string>* problems) {
  constexpr int64_t kBatch = 256;
  size_t bad = 0;
  std::string quoted;
  int64_t expected = first;
  for (int64_t after = first - 1; after < last; after += kBatch) {
    KB_ASSIGN_OR_RETURN(std::vector<JournalEntry> batch,
                        db->ReadJournal(after, std::min(last, after + kBatch)));
    for (const JournalEntry& e : batch) {
      std::string problem = e.lsn != expected
                                ? "out of sequence (expected LSN " + std::to_string(expected) + ")"
                                : JournalEntryProblem(e, dimension);
      expected = e.lsn + 1;
      if (problem.empty()) continue;
      if (++bad <= kMaxQuotedItems) {
        quoted += (quoted.empty() ? "" : "; ") + ("LSN " + std::to_string(e.lsn) + ": " + problem);
      }
    }
  }
  if (bad > 0) {
    problems->push_back(std::to_string(bad) + " journal entr" + (bad == 1 ? "y is" : "ies are") +
                        " damaged (" + quoted + (bad > kMaxQuotedItems ? "; ..." : "") + ")");
  }
  return Status::OK();
}

Status CheckJournal(store::ProjectReader* db, const MetaInfo& meta, DatabaseCheckReport* r) {
  KB_ASSIGN_OR_RETURN(store::JournalSpan span, db->Journal());
  const int64_t count = span.entries, first = span.first_lsn, last = span.last_lsn;
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
    KB_ASSIGN_OR_RETURN(std::optional<std::string> tail, db->JournalChecksumAt(last));
    if (tail && *tail != meta.checksum_hex) {
      problems.push_back("the newest journal entry (LSN " + std::to_string(last) +
                         ") records content checksum " + *tail + " but meta.content_checksum is " +
                         meta.checksum_hex);
    }
    KB_RETURN_IF_ERROR(DecodeWholeJournal(db, first, last, meta.dimension, &problems));
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

Status CheckChunks(store::ProjectReader* db, const MetaInfo& meta, DatabaseCheckReport* r) {
  std::vector<std::string> problems;
  {
    IdSample bad;
    std::string example;
    KB_RETURN_IF_ERROR(db->ForEachChunkWithEmbeddingSizeOtherThan(
        int64_t{meta.dimension} * 4, [&](int64_t id, int64_t bytes) {
          if (bad.count == 0) {
            example = " (chunk " + std::to_string(id) + " has " + std::to_string(bytes) + " bytes)";
          }
          bad.Add(id);
        }));
    if (bad.count > 0) {
      problems.push_back(Plural(bad.count, "chunk", "chunks") + " with an embedding that is not " +
                         std::to_string(meta.dimension) + " float32s (" +
                         std::to_string(int64_t{meta.dimension} * 4) + " bytes): ids " +
                         QuoteIds(bad.ids, bad.count) + example);
    }
  }
  {
    size_t count = 0;
    std::string examples;
    KB_RETURN_IF_ERROR(db->ForEachDocumentWithWrongChunkCount(
        [&](const std::string& id, int64_t stated, int64_t rows) {
          if (count < kMaxQuotedItems) {
            examples += (examples.empty() ? "" : ", ") + id + " says " + std::to_string(stated) +
                        " but has " + std::to_string(rows);
          }
          ++count;
        }));
    if (count > 0) {
      problems.push_back(Plural(count, "document", "documents") +
                         " whose chunk_count differs from their chunk rows: " + examples +
                         (count > kMaxQuotedItems ? " and more" : ""));
    }
  }
  KB_ASSIGN_OR_RETURN(std::string counts, db->MaintainedCountsProblem());
  if (!counts.empty()) problems.push_back(counts);
  if (problems.empty()) {
    r->Pass(kCheckChunks);
  } else {
    std::string text;
    for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
    r->Add(kCheckChunks, CheckSeverity::kUnhealthy, text);
  }
  return Status::OK();
}

// The recomputation of docs/format/DATABASE.md section 5 (every document row, live and
// deleted), done by the reader as the store does it.
Status CheckContentChecksum(store::ProjectReader* db, const MetaInfo& meta,
                            DatabaseCheckReport* r) {
  int64_t documents = 0;
  KB_ASSIGN_OR_RETURN(std::string recomputed, db->RecomputeContentChecksum(&documents));
  if (recomputed == meta.checksum_hex) {
    r->Pass(kCheckContentChecksum, Plural(static_cast<size_t>(documents), "document", "documents"));
  } else {
    r->Add(kCheckContentChecksum, CheckSeverity::kUnhealthy,
           "the content checksum recomputed from the rows of " +
               Plural(static_cast<size_t>(documents), "document", "documents") + " is " +
               recomputed + " but meta.content_checksum is " + meta.checksum_hex +
               ": rows were changed without going through KnowledgeBeast, or the file is damaged");
  }
  return Status::OK();
}

Status CheckKeywordIndex(store::ProjectReader* db, DatabaseCheckReport* r) {
  IdSample missing, extra;
  KB_ASSIGN_OR_RETURN(bool has_docsize,
                      db->CompareKeywordIndex([&](int64_t id) { missing.Add(id); },
                                              [&](int64_t id) { extra.Add(id); }));
  if (!has_docsize) {
    r->Add(kCheckKeywordIndex, CheckSeverity::kDegraded,
           "the FTS5 table chunks_fts has no chunks_fts_docsize shadow table");
    return Status::OK();
  }
  // Schema 1 indexed every chunk, schema 2 the live ones (DATABASE.md, Migration 2).
  const bool has_view = db->KeywordIndexIsLiveOnly();
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

// Opens the database r->path for checking with a store reader (store::ProjectReader or
// store::CatalogReader), reading one snapshot (every check of the file sees the same one) until
// the reader is destroyed. Unchecked: the identity and the tables are what the checks report on.
// nullptr, with the problem recorded in `r`, if it cannot be opened or read.
template <typename Reader>
std::unique_ptr<Reader> OpenForChecks(DatabaseCheckReport* r) {
  auto reader = Reader::OpenUnchecked(r->path);
  if (!reader.ok()) {
    r->Add(kCheckSqlite, CheckSeverity::kUnhealthy, "cannot open: " + reader.status().message());
    return nullptr;
  }
  Status s = (*reader)->BeginSnapshot();
  if (!s.ok()) {
    r->Add(kCheckSqlite, CheckSeverity::kUnhealthy, "cannot read: " + s.message());
    return nullptr;
  }
  return std::move(reader).value();
}

}  // namespace

std::optional<MetaInfo> CheckProjectDatabase(const ExpectedProject& expected,
                                             DatabaseCheckReport* r,
                                             const std::function<bool()>& cancelled) {
  if (!PathExists(r->path)) {
    r->Add(kCheckSqlite, CheckSeverity::kUnhealthy, "the database file is missing");
    return std::nullopt;
  }
  std::unique_ptr<store::ProjectReader> file = OpenForChecks<store::ProjectReader>(r);
  if (!file) return std::nullopt;
  store::ProjectReader* d = file.get();
  if (cancelled) d->SetInterrupt(cancelled);
  CheckSqliteIntegrity(d->SqliteIntegrityReport(), r);
  std::optional<MetaInfo> meta = CheckProjectSchema(d, expected, r);
  if (!meta) return std::nullopt;
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

Result<std::vector<ExpectedProject>> ReadCatalogProjects(store::CatalogReader* db) {
  KB_ASSIGN_OR_RETURN(std::vector<store::CatalogProjectRow> rows, db->Projects());
  std::vector<ExpectedProject> out;
  for (store::CatalogProjectRow& row : rows) {
    ExpectedProject p;
    p.id = std::move(row.id);
    p.name = std::move(row.name);
    const int64_t dim = row.embedding_dimension;
    p.dimension = dim > 0 && dim <= 65536 ? static_cast<int>(dim) : 0;
    p.deleted = row.deleted;
    out.push_back(std::move(p));
  }
  return out;
}

std::optional<std::vector<ExpectedProject>> CheckCatalog(DatabaseCheckReport* r) {
  std::unique_ptr<store::CatalogReader> file = OpenForChecks<store::CatalogReader>(r);
  if (!file) return std::nullopt;
  store::CatalogReader* db = file.get();
  CheckSqliteIntegrity(db->SqliteIntegrityReport(), r);
  std::string note;
  if (!CheckFileIdentity(db->Identity(), store::CatalogSchema(), r, &note)) return std::nullopt;
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
