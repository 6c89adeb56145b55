// KnowledgeBase: the service layer. It owns the data directory — the catalog, one ProjectStore
// and one VectorIndex per project — and implements every operation the REST API and the CLI
// offer: projects, ingestion (parse -> chunk -> embed -> commit -> index), search (vector,
// keyword, hybrid), change listings, statistics, API keys and health.
//
// Routes and CLI commands stay thin: they decode input, call one method here, and map the
// returned Status to an HTTP status or exit code in one place.
//
// Data directory layout (docs/ARCHITECTURE.md):
//   <data>/catalog.db                       projects, API keys, settings
//   <data>/projects/<project-id>/kb.db       documents, chunks, FTS5, journal
//   <data>/projects/<project-id>/index/      the saved vector index (derived; rebuildable)
//
// Write ordering: parsing, chunking and embedding run on the caller's thread without locks;
// the commit to the store and the application to the vector index happen under the project's
// write mutex, so the index always reflects a prefix of the journal.
//
// Integrity: RunIntegrityCheck() checks the whole data directory (service/integrity_check.h) and
// rebuilds a damaged vector index from its database; a background thread runs it once after
// Open() and then every KbOptions::integrity_check_interval_ms. Health() reports the last result.
//
// Thread-safety: every public method is safe to call concurrently.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/audit_sink.h"
#include "common/clock.h"
#include "common/data_layout.h"
#include "common/status.h"
#include "embed/embedder.h"
#include "index/vector_index.h"
#include "ingest/chunker.h"
#include "service/integrity_check.h"
#include "search/fusion.h"
#include "store/catalog.h"
#include "store/project_store.h"

namespace kb {

// Limits and defaults in one place (docs/CONFIG.md quotes these).
inline constexpr int kDefaultTopK = 10;
inline constexpr int kMaxTopK = 100;
inline constexpr double kDefaultAlpha = 0.7;
inline constexpr size_t kMaxQueryBytes = 4096;
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

struct QueryRequest {
  std::string text;
  std::vector<float> vector;  // optional caller vector (external projects)
  SearchMode mode = SearchMode::kHybrid;
  FusionMethod fusion = FusionMethod::kWeighted;
  double alpha = kDefaultAlpha;  // weight of the vector score in weighted fusion
  int top_k = kDefaultTopK;
  int offset = 0;
  // Metadata filters: a JSON object {"key": value | {"$in": [values]}}; all must match.
  std::string filters_json;
  bool use_cache = true;
};

struct QueryHit {
  std::string document_id;
  int64_t chunk_id = 0;
  std::string title;
  std::string source;
  std::string text;
  std::string heading_path;
  double score = 0;
  std::optional<double> vector_score;   // cosine similarity, when the chunk was a vector hit
  std::optional<double> keyword_score;  // BM25, when the chunk was a keyword hit
  int rank = 0;                         // 1-based, counting from offset
  std::string metadata_json;
};

struct QueryResponse {
  std::vector<QueryHit> hits;
  double took_ms = 0;
  bool cached = false;
};

struct ProjectStats {
  ProjectRecord project;
  StoreCounts counts;
  size_t index_vectors = 0;
  size_t index_memory_bytes = 0;
  int64_t index_lsn = 0;
  int64_t journal_lsn = 0;
  int64_t disk_bytes = 0;
};

struct KbStats {
  int64_t projects = 0;
  int64_t documents = 0;
  int64_t chunks = 0;
  int64_t content_bytes = 0;
  int64_t disk_bytes = 0;
  int64_t uptime_seconds = 0;
  std::vector<ProjectStats> per_project;
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

class KnowledgeBase {
 public:
  // Opens the data directory (creating it if empty), loads every live project's store and
  // index (catching up from the journal, rebuilding a missing or damaged index), and starts the
  // background index saver. FailedPrecondition if a database's schema is newer than this binary.
  static Result<std::unique_ptr<KnowledgeBase>> Open(const KbOptions& options);
  ~KnowledgeBase();

  // Saves dirty indexes and stops background work. Idempotent; also called by the destructor.
  void Close();

  // --- projects ---
  Result<ProjectRecord> CreateProject(const CreateProjectRequest& req, const Actor& actor);
  Result<ProjectRecord> GetProject(const std::string& id_or_name);
  Result<std::vector<ProjectRecord>> ListProjects();
  Result<ProjectRecord> UpdateProject(const std::string& id_or_name,
                                      const UpdateProjectRequest& req, const Actor& actor);
  // Soft delete (the project disappears from listings and lookups). Every key limited to the
  // project is revoked at the same time (reason "project_deleted"); undeleting the project does
  // not bring them back, ReinstateKey does.
  Status DeleteProject(const std::string& id_or_name, const Actor& actor);

  // --- soft delete lifecycle ---
  // Removes for good what was soft-deleted at or before now - deletion_grace_period: documents
  // (rows, chunks, keyword-index entries, vector-index entries, their content in the journal;
  // secure_delete, then the WAL is truncated) and projects (directory and catalog row). With
  // dry_run nothing changes and the report lists what would go. One run at a time.
  Result<PurgeReport> Purge(bool dry_run, const Actor& actor);
  // Brings back soft-deleted documents of a project, and the project itself if it is deleted
  // (see RestoreDeletedRequest). InvalidArgument without `before_ms` or document ids; NotFound
  // if no such project; AlreadyExists if a live project took the deleted project's name;
  // FailedPrecondition if the project was deleted before `before_ms`. Documents whose source a
  // live document took are skipped and reported, never duplicated. Restored documents keep
  // their ids and chunk ids and are searchable at once.
  Result<RestoreDeletedReport> RestoreDeleted(const RestoreDeletedRequest& req, const Actor& actor);
  // Soft-deleted projects (project empty) or one project's soft-deleted documents, newest
  // deletion first. InvalidArgument for a bad limit/offset; NotFound for an unknown project.
  Result<DeletedListing> ListDeleted(const std::string& project, int64_t limit, int64_t offset);

  // --- documents ---
  // Parses, chunks, embeds and stores one document. Errors: NotFound (project),
  // UnsupportedMedia, Unprocessable (corrupt or empty file), PayloadTooLarge, InvalidArgument
  // (metadata not an object, bad chunks/vectors), FailedPrecondition (external project without
  // vectors). Nothing is stored on error.
  Result<IngestResult> Ingest(const std::string& project, const IngestRequest& req,
                              const Actor& actor);
  // Reads `relative_path` below options.ingest_root (never outside it) and ingests it.
  Result<IngestResult> IngestFile(const std::string& project, const std::string& relative_path,
                                  const std::string& metadata_json, const Actor& actor);
  Result<DocumentRecord> GetDocument(const std::string& project, const std::string& document_id);
  struct DocumentPage {
    std::vector<DocumentRecord> documents;
    int64_t total = 0;
  };
  Result<DocumentPage> ListDocuments(const std::string& project, int64_t limit, int64_t offset);
  Status DeleteDocument(const std::string& project, const std::string& document_id,
                        const Actor& actor);
  // Documents created or changed at or after `since_ms`, across projects or in one.
  struct ChangedDocument {
    std::string project_id;
    std::string project_name;
    DocumentRecord document;
  };
  Result<std::vector<ChangedDocument>> DocumentsChangedSince(int64_t since_ms,
                                                             const std::string& project,
                                                             int64_t limit);

  // --- search ---
  Result<QueryResponse> Query(const std::string& project, const QueryRequest& req);

  // --- API keys ---
  // Creates a key with a fresh random secret ("kb_" + 43 base64url chars).
  // `expires_at_ms` (absolute, in the future, within the maximum lifetime) is an alternative
  // to expires_in_days; giving both is InvalidArgument.
  Result<CreatedKey> CreateKey(const std::string& name, KeyScope scope,
                               const std::vector<std::string>& projects,
                               std::optional<int> expires_in_days, const Actor& actor,
                               std::optional<int64_t> expires_at_ms = std::nullopt);
  Result<std::vector<ApiKeyRecord>> ListKeys();
  Status RevokeKey(const std::string& key_id, const Actor& actor);
  // Issues a new secret for the key (same id, scope, projects, expiry). With overlap_seconds > 0
  // (at most kMaxRotationOverlapSeconds) the old secret keeps working until then; otherwise it
  // stops at once. NotFound; FailedPrecondition for a revoked key.
  Result<CreatedKey> RotateKey(const std::string& key_id, int64_t overlap_seconds,
                               const Actor& actor);
  // Revokes every live key except `caller_key_id`; with include_admin every key, after creating
  // a new admin key that is returned once. Without a caller (direct-mode CLI) include_admin is
  // required (InvalidArgument), so that the data directory never ends up with no admin key.
  Result<RevokeAllResult> RevokeAllKeys(const std::string& caller_key_id, bool include_admin,
                                        const Actor& actor);
  // Undoes a revocation caused by a project delete. FailedPrecondition if the key is not
  // revoked, was revoked for another reason (those may follow a compromise: create a new key),
  // or one of its projects is still deleted.
  Status ReinstateKey(const std::string& key_id, const Actor& actor);
  // The key for a presented secret. Unauthenticated if unknown, revoked or expired (the message
  // says which; `out_key_id` is set when the key exists, for the audit log).
  Result<ApiKeyRecord> Authenticate(const std::string& secret, std::string* out_key_id = nullptr);
  // First start: if no admin key exists, creates one — from `admin_token` if given (stored as a
  // hash), else random. Returns the secret to show once, or nullopt if an admin key existed or
  // the token was supplied by the caller.
  Result<std::optional<std::string>> EnsureAdminKey(const std::string& admin_token);

  // --- restore support (src/backup) ---
  enum class ImportOutcome { kImported, kExists, kSourceTaken };
  // Stores `doc` (with its id) and `chunks` (with their embeddings) unless the project has a
  // document with that id, live or soft-deleted (kExists), or a live document owns its source
  // (kSourceTaken); nothing existing is ever modified. The check and the write happen under the
  // project's write mutex. Used by `restore --merge`.
  Result<ImportOutcome> ImportDocumentIfAbsent(const std::string& project, DocumentRecord doc,
                                               std::vector<ChunkRecord> chunks, const Actor& actor);
  // Swaps in a restored project: `staged_dir` is a complete project directory (kb.db, index/)
  // on the same filesystem as the data directory, `record` the project's catalog row as it was
  // in the snapshot. Writers to the project wait; the live directory (if any) is moved to
  // `aside_dir`, the staged one takes its place, the catalog row is restored (undeleting or
  // re-creating the project if needed) and the project is reopened. On failure the renames are
  // undone. FailedPrecondition if another live project has the record's name. Other projects are
  // not touched.
  Status ReplaceProject(const ProjectRecord& record, const std::string& staged_dir,
                        const std::string& aside_dir, const Actor& actor);
  // The directory of a project's files (whether or not it exists).
  std::string ProjectDir(const std::string& project_id) const {
    return layout::ProjectDir(options_.data_dir, project_id);
  }

  // --- status ---
  Result<KbStats> Stats();
  HealthReport Health();
  // Checks the whole data directory now (service/integrity_check.h): every database read-only, every
  // live project's in-memory index and saved index against its database. A damaged vector
  // index is rebuilt from the database (counted in index_rebuilds) and reported as repaired.
  // Runs are serialised; Unavailable if the knowledge base is closing. Damage is reported in the
  // result, not as an error.
  Result<IntegrityReport> RunIntegrityCheck();
  bool Ready() const { return ready_.load(); }
  const KbCounters& counters() const { return counters_; }
  const KbOptions& options() const { return options_; }
  const Clock* clock() const { return clock_; }

 private:
  struct ProjectHandle;
  explicit KnowledgeBase(const KbOptions& options);

  Status LoadProjects();
  // `loading`: an existing project at Open() (a rebuilt index is then reported by the next
  // integrity check as damage it repaired); false for a project being created or restored.
  Result<std::shared_ptr<ProjectHandle>> OpenProjectHandle(const ProjectRecord& record,
                                                           bool loading = false);
  Result<std::shared_ptr<ProjectHandle>> Handle(const std::string& id_or_name);
  // Waits until no request uses `h`, saves its index and closes its store and index.
  Status RetireHandle(const std::shared_ptr<ProjectHandle>& h);
  Status SwapInRestoredProject(const ProjectRecord& record, const std::string& staged_dir,
                               const std::string& aside_dir);
  Status SaveIndex(ProjectHandle& handle);
  Result<IngestResult> IngestImpl(const std::string& project, const IngestRequest& req,
                                  const Actor& actor);
  void SaverLoop();
  void CheckerLoop();
  void PurgerLoop();
  // Records a background ("system") action in options_.audit. HTTP requests are recorded by the
  // server's middleware and direct-mode CLI changes by the CLI backend: other actors are ignored.
  void AuditAction(const Actor& actor, const std::string& route, const std::string& action,
                   const std::string& project, std::vector<std::string> document_ids,
                   const std::string& outcome, const std::string& detail);
  // Undeletes one document under the project's write mutex and puts its vectors back.
  Status UndeleteDocumentLocked(ProjectHandle& h, const std::string& document_id,
                                const Actor& actor);
  bool Closing();
  // The vector_index check of one project during RunIntegrityCheck (see the .cc).
  CheckResult CheckProjectIndex(const ExpectedProject& project, const std::string& project_dir);
  // Replaces a project's index with one rebuilt from its database, then saves it.
  Status RebuildIndex(ProjectHandle& handle);

  KbOptions options_;
  const Clock* clock_;
  int64_t started_at_ms_ = 0;
  std::unique_ptr<Catalog> catalog_;
  mutable std::shared_mutex projects_mu_;
  std::map<std::string, std::shared_ptr<ProjectHandle>> projects_;  // by project id
  std::set<std::string> restoring_;  // guarded by projects_mu_: ids and names being restored
  KbCounters counters_;
  std::atomic<bool> ready_{false};
  std::vector<std::string> load_problems_;  // projects that failed to open; set once in Open

  // Background threads (index saver, integrity checker) wait on saver_cv_ for stopping_.
  std::mutex saver_mu_;
  std::condition_variable saver_cv_;
  bool stopping_ = false;
  std::thread saver_;
  std::thread checker_;
  std::thread purger_;
  // Serialises Purge with RestoreDeleted and ListDeleted of deleted projects, so that a project
  // is never restored or opened while its directory is being removed.
  std::mutex lifecycle_mu_;

  std::mutex check_run_mu_;  // one RunIntegrityCheck at a time
  mutable std::mutex check_mu_;
  std::optional<IntegritySummary> last_check_;  // guarded by check_mu_
};

}  // namespace kb
