// Integrity check of a data directory: is every database sound, and does every saved vector
// index agree with its database? One implementation serves `knowledgebeast check` (offline: a data
// directory no server has open, or a backup restored into a temporary directory) and the
// server's periodic check (KnowledgeBase::RunIntegrityCheck, which plugs in its live indexes).
//
// The offline check never writes to the databases: they are opened read-only (SQLite may leave
// empty `-wal`/`-shm` files next to a database that had none). Only `repair_index` writes, and
// only a project's `index/` directory, which is derived data.
//
// What is checked, in this order, and what each check costs (B = bytes of the file, N = chunk
// rows, J = journal entries, V = bytes of a saved index). The database checks of one file all
// read one SQLite snapshot, so they are consistent with each other even while a server writes.
//
//   catalog.db
//     sqlite            PRAGMA integrity_check: every b-tree page, index entry, NOT NULL and
//                       CHECK constraint. Reads the whole file: O(B).          -> unhealthy
//     schema            application_id and user_version (docs/format/DATABASE.md section 2),
//                       the projects table is readable. O(projects).           -> unhealthy
//   every project listed in the catalog (soft-deleted ones too, if their files still exist):
//   projects/<id>/kb.db
//     sqlite            as above, O(B).                                        -> unhealthy
//     schema            application_id, user_version, the one meta row: its project id is the
//                       directory's, its dimension the catalog's. O(1).        -> unhealthy
//     journal           LSNs contiguous, the newest is meta.last_lsn and carries
//                       meta.content_checksum, and every entry decodes: its payload is UTF-8
//                       JSON of its op's shape with embeddings of `dimension` finite floats,
//                       its checksum 64 hex digits (SQLite's own check does not read the bytes
//                       of overflow pages, where most of an entry lives). O(journal bytes):
//                       the largest part of a check's time.                    -> unhealthy
//     chunks            every chunk's embedding BLOB holds `dimension` float32s, every
//                       document's chunk_count equals its chunk rows, and (schema 3) the
//                       maintained counts equal the rows'. O(N).              -> unhealthy
//     content_checksum  the content checksum recomputed from every document and chunk row
//                       equals the maintained one (DATABASE.md section 5): SHA-256 over all the
//                       content, O(B).                                         -> unhealthy
//     keyword_index     the FTS5 index holds exactly the live chunks (the rowids of its
//                       `chunks_fts_docsize` shadow table = the live chunk ids). O(N log N).
//                       Derived data, but not rebuilt automatically.           -> degraded
//   projects/<id>/index/
//     vector_index      VectorIndex::Load (manifest and graph checksums, header sanity: reads
//                       and hashes the graph file and holds the index in memory while checking:
//                       O(V) time, one index's memory); the index's LSN is not ahead of the
//                       journal; the journal entries after it replay cleanly onto it; then its
//                       labels equal the live chunk ids (O(N log N)) and a sample of
//                       kSampledVectors vectors equals the stored embeddings (O(samples x N x
//                       dimension)). Derived data: rebuilt from kb.db on repair. -> degraded
//   directory <-> catalog
//     catalog           a live project without its directory or kb.db         -> unhealthy
//                       a directory under projects/ that no catalog row names  -> degraded
//
// Severity: "degraded" means derived data is wrong and can be rebuilt from the databases
// (search may be wrong meanwhile); "unhealthy" means a database itself failed a check.
//
// Online, the checks of one database hold one read snapshot for as long as they run: writers are
// not blocked, but a busy project's WAL cannot be reset (it grows) until the snapshot ends.
//
// Thread-safety: the functions are reentrant; the offline check assumes no other process writes
// the directory (a running server's periodic save could replace index files mid-read).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "index/vector_index.h"

namespace kb {

namespace sql {
class Database;
}

enum class CheckSeverity { kOk = 0, kDegraded = 1, kUnhealthy = 2 };
// "ok", "degraded", "unhealthy".
std::string_view CheckSeverityName(CheckSeverity severity);

// Check names: stable, they appear in reports, JSON and docs.
inline constexpr std::string_view kCheckSqlite = "sqlite";
inline constexpr std::string_view kCheckSchema = "schema";
inline constexpr std::string_view kCheckJournal = "journal";
inline constexpr std::string_view kCheckChunks = "chunks";
inline constexpr std::string_view kCheckContentChecksum = "content_checksum";
inline constexpr std::string_view kCheckKeywordIndex = "keyword_index";
inline constexpr std::string_view kCheckVectorIndex = "vector_index";
inline constexpr std::string_view kCheckCatalog = "catalog";

// Vectors of a project compared one by one with their stored embeddings.
inline constexpr size_t kSampledVectors = 8;
// A sampled vector agrees with its embedding when their cosine similarity is at least this
// (both are unit length; float32 rounding stays far above it).
inline constexpr double kSameVectorMinCosine = 0.999;
// At most this many ids or SQLite messages are quoted in one problem text.
inline constexpr size_t kMaxQuotedItems = 5;

// The outcome of one check of one file.
struct CheckResult {
  std::string name;                             // one of kCheck*
  CheckSeverity severity = CheckSeverity::kOk;  // of the problem found; kOk: none found
  std::string problem;    // what is wrong, naming the file and the values; empty when ok
  bool repaired = false;  // the problem was found, then repaired (the data is sound now)
  std::string note;       // optional remark on a passing check (e.g. "not checked: ...")

  bool found_problem() const { return severity != CheckSeverity::kOk; }
  // The severity that still stands: repaired problems no longer count.
  CheckSeverity outstanding() const { return repaired ? CheckSeverity::kOk : severity; }
};

// The checks of one database (the catalog, or a project's kb.db with its index directory).
struct DatabaseCheckReport {
  std::string path;          // the file checked: <data>/catalog.db or <data>/projects/<id>/kb.db
  std::string kind;          // "catalog" | "project"
  std::string project_id;    // empty for the catalog
  std::string project_name;  // from the catalog; empty if unknown
  bool project_deleted = false;
  std::vector<CheckResult> checks;

  CheckSeverity severity() const;  // worst outstanding
  bool found_problem() const;      // any problem, repaired or not
  void Add(std::string_view name, CheckSeverity severity, std::string problem);
  void Pass(std::string_view name, std::string note = {});
};

struct IntegrityReport {
  std::string data_dir;
  int64_t started_at_ms = 0;
  int64_t duration_ms = 0;
  bool cancelled = false;  // stopped early (IntegrityCheckOptions::cancelled): incomplete
  std::vector<DatabaseCheckReport> databases;

  CheckSeverity severity() const;  // worst outstanding over every database
  bool found_problem() const;      // any problem found, repaired or not
  // One line per problem: "<path>[ (project 'name')]: <check>: <problem>", repaired ones with
  // " (repaired)" appended unless `outstanding_only` leaves them out.
  std::vector<std::string> Problems(bool outstanding_only = true) const;
  // The repaired problems only, in the same form (without the suffix).
  std::vector<std::string> Repairs() const;
};

// JSON shape (docs/API.md, POST /api/v1/admin/check; also `check --json`):
// {"data_dir","status":"ok|degraded|unhealthy","problems_found":bool,"cancelled":bool,
//  "started_at":ISO-8601,"duration_ms","databases":[{"path","kind","project_id","project_name",
//  "deleted","status","checks":[{"name","ok","severity","problem","repaired","note"}]}]}
nlohmann::json IntegrityReportToJson(const IntegrityReport& report);

// What the catalog says about a project (or, without a readable catalog, nothing but its id).
struct ExpectedProject {
  std::string id;
  std::string name;   // empty if unknown
  int dimension = 0;  // 0 = unknown: taken from kb.db's meta row
  bool deleted = false;
};

struct IntegrityCheckOptions {
  // Rebuild a vector index that fails its check from kb.db and save it (writes only
  // projects/<id>/index/; no server may have the directory open). Not done when kb.db itself
  // failed its sqlite, schema or chunks check.
  bool repair_index = false;
  // Settings used to load and rebuild indexes (the dimension is taken per project).
  VectorIndexOptions index;
  const Clock* clock = nullptr;  // null = SystemClock
  // Polled between projects: true stops the check early (report.cancelled).
  std::function<bool()> cancelled;
  // Online use (KnowledgeBase): the running server checks, and repairs, each project's vector
  // index itself, because it holds the live index and the locks that make a comparison
  // consistent. Unset (offline): the saved index files are checked (and repaired if asked).
  std::function<CheckResult(const ExpectedProject& project, const std::string& project_dir)>
      check_vector_index;
};

// Checks a data directory: catalog.db, then every project the catalog lists, then directories
// the catalog does not name. Damage is reported in the IntegrityReport, not as an error. Errors:
// NotFound if `data_dir` does not exist; FailedPrecondition if it is not a KnowledgeBeast data
// directory (not a directory, or no catalog.db in it).
Result<IntegrityReport> CheckDataDirectory(const std::string& data_dir,
                                           const IntegrityCheckOptions& options = {});

// Checks one project directory (<dir>/kb.db and <dir>/index/) against what the catalog says.
DatabaseCheckReport CheckProjectDirectory(const std::string& project_dir,
                                          const ExpectedProject& expected,
                                          const IntegrityCheckOptions& options = {});

// --- building blocks (used by the running server's check) ---

// The vector_index check of a saved index (see the file comment); `dimension` > 0.
CheckResult CheckSavedVectorIndex(const std::string& project_dir, int dimension,
                                  const VectorIndexOptions& options);

// A fresh index of every live embedding in `db_path`, read in one snapshot; its lsn() is the
// snapshot's journal LSN. Corruption if an embedding is malformed.
Result<std::unique_ptr<VectorIndex>> BuildVectorIndexFromDatabase(
    const std::string& db_path, int dimension, const VectorIndexOptions& options);

// A read-only view of a kb.db (a store::ProjectReader) for comparing a vector index with it at
// one snapshot. Open() opens it (Corruption / FailedPrecondition if it is not a project database
// this binary can read); Pin() starts a read transaction and reads the journal LSN, so that the
// caller can pin the snapshot at a moment of its choosing (e.g. under a write lock, so that it
// matches an in-memory index) and compare later without holding the lock.
class IndexComparison {
 public:
  static Result<std::unique_ptr<IndexComparison>> Open(const std::string& db_path, int dimension);
  ~IndexComparison();

  // Starts the snapshot; returns its journal LSN (meta.last_lsn).
  Result<int64_t> Pin();
  // Replays the journal entries after index->lsn() up to the snapshot onto `index`.
  // Corruption naming the entry if one cannot be decoded or applied.
  Status CatchUp(VectorIndex* index);
  // Empty if `labels` (the index's, sorted) are exactly the snapshot's live chunk ids and the
  // sampled vectors equal their embeddings; otherwise the precise difference. Ids that are no
  // longer in `index` when sampled are skipped (removed by a later write).
  Result<std::string> Compare(const VectorIndex& index, const std::vector<int64_t>& labels);

 private:
  friend Result<std::unique_ptr<VectorIndex>> BuildVectorIndexFromDatabase(
      const std::string& db_path, int dimension, const VectorIndexOptions& options);
  IndexComparison() = default;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace kb
