// The vocabulary of the service layer: its options, the request and result structs of every
// operation the facade (service/knowledge_base.h) offers, and the limits and defaults those
// operations enforce. The query types and limits live with the search loop (search/query.h)
// and are included here, so that every caller of the service finds them through this header.
//
// Thread-safety: plain values, except KbCounters (atomics, safe to update from any thread).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/audit_sink.h"
#include "common/clock.h"
#include "embed/embedder.h"
#include "index/vector_index.h"
#include "ingest/chunker.h"
#include "search/query.h"
#include "service/integrity_check.h"
#include "store/catalog.h"
#include "store/project_store.h"

namespace kb {

// Limits and defaults in one place (docs/CONFIG.md quotes these; the query ones are in
// search/query.h).
inline constexpr int64_t kDefaultMaxDocumentBytes = 32 * 1024 * 1024;
inline constexpr int kMaxListLimit = 1000;
inline constexpr int kDefaultListLimit = 100;
inline constexpr int64_t kIndexSaveIntervalMs = 30'000;
// How often `serve` checks the data directory unless configured (integrity_check_interval).
inline constexpr int64_t kDefaultIntegrityCheckIntervalMs = 24LL * 60 * 60 * 1000;
// How long a restore waits for requests still using a project before giving up.
inline constexpr int64_t kRetireWaitMicros = 30'000'000;
inline constexpr size_t kQueryCacheEntries = 1024;
inline constexpr size_t kMaxTitleBytes = 1000;
inline constexpr size_t kMaxSourceBytes = 4096;
inline constexpr size_t kMaxDescriptionBytes = 10000;
inline constexpr size_t kMaxKeyNameBytes = 200;
// Soft-deleted documents and projects are purged for good this long after their deletion
// (deletion_grace_period), by a background job every kDefaultPurgeIntervalMs in `serve`.
inline constexpr int64_t kDefaultDeletionGracePeriodMs = 30LL * 24 * 60 * 60 * 1000;
inline constexpr int64_t kDefaultPurgeIntervalMs = 60LL * 60 * 1000;
// A rotated key's previous secret stays valid at most this long (overlap_seconds).
inline constexpr int64_t kMaxRotationOverlapSeconds = 24LL * 60 * 60;
// Items a single admin restore may name in document_ids.
inline constexpr size_t kMaxRestoreDocumentIds = 1000;

struct KbOptions {
  std::string data_dir = "./data";
  const Clock* clock = nullptr;  // null = SystemClock
  VectorIndexOptions index;      // dimension is taken from each project
  ChunkOptions chunking;         // defaults for new projects
  int64_t max_document_bytes = kDefaultMaxDocumentBytes;
  // Root directory for the v2 API's `file_path` ingestion; empty disables it.
  std::string ingest_root;
  bool enable_query_cache = true;
  // Save dirty vector indexes every this many ms from a background thread (0 = only on Close).
  int64_t index_save_interval_ms = kIndexSaveIntervalMs;
  // Run RunIntegrityCheck() from a background thread once after Open() (without delaying it)
  // and then every this many ms. 0 = never in the background (the library default, so that
  // direct-mode CLI commands and tests do not read every database; `serve` passes
  // kDefaultIntegrityCheckIntervalMs unless configured otherwise).
  int64_t integrity_check_interval_ms = 0;
  // Where background actions (purge, restore, integrity repairs) are recorded with the actor
  // "system". Null = not recorded. Must outlive the KnowledgeBase.
  AuditSink* audit = nullptr;
  // Soft-deleted items older than this are purged by Purge() (docs/CONFIG.md).
  int64_t deletion_grace_period_ms = kDefaultDeletionGracePeriodMs;
  // Run Purge() from a background thread every this many ms (first run one interval after
  // Open). 0 = never in the background (the library default; `serve` passes
  // kDefaultPurgeIntervalMs unless configured otherwise).
  int64_t purge_interval_ms = 0;
};

// Who is acting: the key id for API calls, "cli" for the CLI, "system" for background work.
struct Actor {
  std::string id = "system";
  std::string name;
};

struct CreateProjectRequest {
  std::string name;
  std::string description;
  std::string metadata_json = "{}";
  EmbedderSpec embedder;  // default: builtin-hash, 384
  std::optional<int> chunk_size;
  std::optional<int> chunk_overlap;
};

struct UpdateProjectRequest {
  std::optional<std::string> name;
  std::optional<std::string> description;
  std::optional<std::string> metadata_json;
};

// A caller-split chunk, optionally with its own embedding (required for "external" projects).
struct ProvidedChunk {
  std::string text;
  std::vector<float> embedding;  // empty = embed it with the project's embedder
};

struct IngestRequest {
  std::string content;        // raw bytes of the document (ignored when `chunks` is set)
  std::string declared_mime;  // may be empty
  std::string filename;       // may be empty; used for type detection and as default source
  std::string title;          // empty = the parser's title, else the filename
  std::string source;         // empty = filename
  std::string metadata_json = "{}";
  std::vector<ProvidedChunk> chunks;  // bring-your-own chunks (and vectors)
};

struct IngestResult {
  DocumentRecord document;
  PutOutcome outcome = PutOutcome::kCreated;
  int64_t lsn = 0;
};

struct ProjectStats {
  ProjectRecord project;
  StoreCounts counts;
  size_t index_vectors = 0;
  size_t index_memory_bytes = 0;
  int64_t index_lsn = 0;
  int64_t journal_lsn = 0;
  int64_t disk_bytes = 0;
  std::optional<std::string> damage;  // set: read-only, its database is damaged (the problem)
};

struct KbStats {
  int64_t projects = 0;
  int64_t documents = 0;
  int64_t chunks = 0;
  int64_t content_bytes = 0;
  int64_t disk_bytes = 0;
  int64_t uptime_seconds = 0;
  std::vector<ProjectStats> per_project;
  // The totals over the projects `allowed(project id)` accepts only: what a key limited to
  // some projects may see (GET /api/v1/stats, the MCP `stats` tool).
  KbStats OnlyProjects(const std::function<bool(const std::string&)>& allowed) const;
};

// Monotonic counters since start, for /metrics.
struct KbCounters {
  std::atomic<int64_t> documents_ingested{0};
  std::atomic<int64_t> documents_unchanged{0};
  std::atomic<int64_t> chunks_ingested{0};
  std::atomic<int64_t> ingest_failures{0};
  std::atomic<int64_t> queries{0};
  std::atomic<int64_t> query_cache_hits{0};
  std::atomic<int64_t> index_rebuilds{0};
  std::atomic<int64_t> integrity_checks{0};          // completed runs of RunIntegrityCheck
  std::atomic<int64_t> integrity_check_failures{0};  // runs that found a problem (even repaired)
  std::atomic<int64_t> integrity_check_last_success_ms{0};  // end of the last clean run; 0 = none
  std::atomic<int64_t> integrity_check_last_duration_ms{0};
};

// The last integrity check, as /health shows it.
struct IntegritySummary {
  int64_t finished_at_ms = 0;
  int64_t duration_ms = 0;
  CheckSeverity status = CheckSeverity::kOk;  // outstanding after repairs
  std::vector<std::string> problems;          // outstanding ones
  std::vector<std::string> repaired;          // found and repaired by that run
  std::optional<int64_t> last_success_at_ms;  // end of the last run that left nothing outstanding
};

struct HealthReport {
  // "healthy" | "degraded" | "unhealthy": the worst of the catalog, the projects that failed to
  // load and the last integrity check (a damaged vector index is "degraded" until rebuilt; a
  // database that failed its checks is "unhealthy").
  std::string status = "healthy";
  bool ready = false;                         // every database open and every index loaded
  std::vector<std::string> problems;          // every outstanding problem, integrity ones included
  std::optional<IntegritySummary> integrity;  // nullopt until a check has completed
  // Projects made read-only because their database is damaged (ProjectStore::MarkDamaged).
  struct ReadOnlyProject {
    std::string id;
    std::string name;
    std::string problem;
  };
  std::vector<ReadOnlyProject> read_only_projects;
};

struct CreatedKey {
  ApiKeyRecord record;
  std::string secret;  // shown once, never stored
};

struct RevokeAllResult {
  std::vector<std::string> revoked;     // ids, in id order
  std::optional<CreatedKey> new_admin;  // include_admin: the replacement admin key, shown once
};

// One soft-deleted item that Purge() removed (or would remove, on a dry run).
struct PurgedItem {
  std::string project_id;
  std::string project_name;
  std::string document_id;  // empty for a whole project
  int64_t deleted_at_ms = 0;
  std::string deleted_by;
};

struct PurgeReport {
  bool dry_run = false;
  int64_t cutoff_ms = 0;  // items deleted at or before this were due
  std::vector<PurgedItem> projects;
  std::vector<PurgedItem> documents;  // of live projects (a purged project's go with it)
  std::vector<std::string> problems;  // per-item failures; the rest went ahead
};

struct RestoreDeletedRequest {
  std::string project;                    // id or name, live or soft-deleted
  std::optional<int64_t> before_ms;       // everything deleted at or after this
  std::vector<std::string> document_ids;  // just these (and `before_ms`, if given, applies too)
};

struct RestoreSkip {
  std::string id;
  std::string reason;  // "not_found" | "not_deleted" | "source_taken" | "deleted_before_cutoff"
  std::string detail;
};

struct RestoreDeletedReport {
  std::string project_id;
  std::string project_name;
  bool project_restored = false;
  std::vector<std::string> restored_documents;
  std::vector<RestoreSkip> skipped;
};

struct DeletedListing {
  // Without a project: soft-deleted projects. With one: its soft-deleted documents (and the
  // project's own record, deleted or not).
  std::vector<ProjectRecord> projects;
  std::optional<ProjectRecord> project;
  std::vector<DocumentRecord> documents;
  int64_t total = 0;
};

// The rules every project and document field shares (API and CLI both come here):
// metadata is a JSON object of at most 64 KiB; a description is valid UTF-8 of at most
// kMaxDescriptionBytes without control characters other than line breaks and tabs.
[[nodiscard]] Status ValidateMetadata(const std::string& text);
[[nodiscard]] Status ValidateDescription(const std::string& text);
// The JSON text as stored: parsed and dumped again (the text itself if it does not parse).
std::string CanonicalJson(const std::string& text);

}  // namespace kb
