// The integrity check (see integrity_check.h for what is checked and what it costs): the walk of
// the data directory, the comparison of vector indexes with their databases, and the report.
// The checks of each database file are in database_checks.cc.
//
// Everything here reads the files read-only, never through a ProjectStore or Catalog: those open
// read-write and migrate, which an offline check of a backup or of a damaged directory must not
// do. A kb.db is read through store::ProjectReader, which owns the project schema's SQL.
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
#include "service/database_checks.h"
#include "store/catalog_reader.h"
#include "store/journal_codec.h"
#include "store/project_reader.h"
#include "store/project_store.h"

namespace kb {

using nlohmann::json;

using integrity_internal::CheckCatalog;
using integrity_internal::CheckProjectDatabase;
using integrity_internal::IdSample;
using integrity_internal::MetaInfo;
using integrity_internal::Plural;
using integrity_internal::QuoteIds;
using integrity_internal::ReadCatalogProjects;

namespace {

constexpr size_t kRebuildBatch = 512;

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

bool ValidProjectId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

Result<std::set<std::string>> CatalogIds(const std::string& path) {
  KB_ASSIGN_OR_RETURN(auto db, store::CatalogReader::OpenUnchecked(path));
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
  std::unique_ptr<store::ProjectReader> reader;  // its snapshot is the pinned state
  int dimension = 0;
  int64_t lsn = -1;  // -1 until pinned
};

IndexComparison::~IndexComparison() = default;

Result<std::unique_ptr<IndexComparison>> IndexComparison::Open(const std::string& db_path,
                                                               int dimension) {
  if (dimension < 1) return Status::InvalidArgument("dimension must be positive");
  std::unique_ptr<IndexComparison> c(new IndexComparison());
  c->state_ = std::make_unique<State>();
  c->state_->dimension = dimension;
  KB_ASSIGN_OR_RETURN(c->state_->reader, store::ProjectReader::Open(db_path));
  return c;
}

Result<int64_t> IndexComparison::Pin() {
  State& s = *state_;
  s.lsn = -1;
  KB_RETURN_IF_ERROR(s.reader->EndSnapshot());
  KB_RETURN_IF_ERROR(s.reader->BeginSnapshot());
  // The first read starts the snapshot.
  KB_ASSIGN_OR_RETURN(store::ProjectMeta meta, s.reader->Meta());
  s.lsn = meta.last_lsn;
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
  KB_ASSIGN_OR_RETURN(std::vector<JournalEntry> entries, s.reader->ReadJournal(after, s.lsn));
  for (const JournalEntry& e : entries) {
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
  KB_RETURN_IF_ERROR(s.reader->ForEachLiveChunkId([&](int64_t id) { live.push_back(id); }));
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
  const size_t samples = std::min(kSampledVectors, live.size());
  for (size_t k = 0; k < samples; ++k) {
    const int64_t id = live[k * live.size() / samples];
    KB_ASSIGN_OR_RETURN(std::optional<std::string> bytes, s.reader->ChunkEmbedding(id));
    if (!bytes)
      return Status::Internal("chunk " + std::to_string(id) + " vanished from the snapshot");
    auto emb = store::EmbeddingFromBytes(*bytes);
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
  std::vector<int64_t> labels;
  std::vector<std::vector<float>> vectors;
  auto flush = [&]() -> Status {
    Status s = index->UpsertBatch(labels, vectors);
    labels.clear();
    vectors.clear();
    return s;
  };
  KB_RETURN_IF_ERROR(
      cmp->state_->reader->ForEachLiveEmbedding([&](int64_t id, std::string_view bytes) -> Status {
        auto emb = store::EmbeddingFromBytes(bytes);
        if (!emb || emb->size() != static_cast<size_t>(dimension)) {
          return Status::Corruption(db_path + ": chunk " + std::to_string(id) +
                                    ": embedding BLOB does not hold " + std::to_string(dimension) +
                                    " floats");
        }
        labels.push_back(id);
        vectors.push_back(std::move(*emb));
        if (labels.size() >= kRebuildBatch) return flush();
        return Status::OK();
      }));
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
  std::optional<MetaInfo> meta = CheckProjectDatabase(expected, &r, options.cancelled);
  if (!meta) return r;  // the index cannot be judged against a database that cannot be read
  // Stopping: the saved index takes seconds to load; the caller discards this report anyway.
  if (options.cancelled && options.cancelled()) return r;

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
    DatabaseCheckReport checked = CheckProjectDirectory(dir, p, options);
    if (options.cancelled && options.cancelled()) {
      // Stopped inside this project (the interrupted statements read as failures): incomplete,
      // so not reported.
      report.cancelled = true;
      break;
    }
    report.databases.push_back(std::move(checked));
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
