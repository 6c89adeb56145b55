// KnowledgeBase: the facade of the service layer, what the REST routes (src/api), the CLI
// (src/cli) and backup/restore (src/backup) call. It owns the data directory — the catalog, one
// ProjectStore and one VectorIndex per project — and routes every operation to the room that
// implements it:
//   service/project_registry.h   open, look up, retire and swap project handles
//   service/ingest_pipeline.h    detect -> parse -> chunk -> embed -> commit -> index
//   search/hybrid_search.h       retrieve -> fuse -> filter -> widen -> hydrate (the query cache
//                                stays here, per project)
//   service/key_service.h        API keys
//   service/lifecycle.h          soft delete: purge, restore deleted, list deleted
//   service/index_maintenance.h  index saver, integrity-check runs, rebuild of a damaged index
// Projects, documents, statistics and health are small enough to live here. The request and
// result types and the limits are in service/types.h (and search/query.h).
//
// Routes and CLI commands stay thin: they decode input, call one method here, and map the
// returned Status to an HTTP status or exit code in one place.
//
// Data directory layout: common/data_layout.h (docs/ARCHITECTURE.md).
//
// Write ordering: parsing, chunking and embedding run on the caller's thread without locks;
// the commit to the store and the application to the vector index happen under the project's
// write mutex, so the index always reflects a prefix of the journal.
//
// Background threads: the index saver and the integrity checker (index_maintenance.h) and the
// purger (lifecycle.h), all stopped by Close().
//
// Thread-safety: every public method is safe to call concurrently.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/data_layout.h"
#include "common/status.h"
#include "service/integrity_check.h"
#include "service/key_service.h"
#include "service/stop_signal.h"
#include "service/types.h"
#include "store/catalog.h"
#include "store/project_store.h"

namespace kb {

class IndexMaintenance;
class IngestPipeline;
class ProjectRegistry;
class SoftDeleteLifecycle;
struct ProjectHandle;

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
  // A live document's chunks in order (embeddings included), for reading its text back (MCP
  // resources). NotFound for an unknown project or document.
  Result<std::vector<ChunkRecord>> GetDocumentChunks(const std::string& project,
                                                     const std::string& document_id);
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

  // --- API keys --- (service/key_service.h: create, list, revoke, rotate, reinstate,
  // authenticate; the contract is commented there)
  KeyService& keys() { return *keys_; }

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
  // Projects that are read-only because their database is damaged (cheap: no I/O).
  std::vector<HealthReport::ReadOnlyProject> ReadOnlyProjects();
  // Checks the whole data directory now (service/integrity_check.h): every database read-only,
  // every live project's in-memory index and saved index against its database. A damaged vector
  // index is rebuilt from the database (counted in index_rebuilds) and reported as repaired.
  // Runs are serialised; Unavailable if the knowledge base is closing. Damage is reported in the
  // result, not as an error.
  Result<IntegrityReport> RunIntegrityCheck();
  bool Ready() const { return ready_.load(); }
  const KbCounters& counters() const { return counters_; }
  const KbOptions& options() const { return options_; }
  const Clock* clock() const { return clock_; }

 private:
  explicit KnowledgeBase(const KbOptions& options);
  // The rooms, wired to the catalog and to each other.
  void BuildRooms();
  // Ingest without counting failures (Ingest counts them).
  Result<IngestResult> IngestImpl(const std::string& project, const IngestRequest& req,
                                  const Actor& actor);
  // The query cache's key: every field that changes the answer.
  static std::string QueryCacheKey(const QueryRequest& req, const std::string& filter);

  KbOptions options_;
  const Clock* clock_;
  int64_t started_at_ms_ = 0;
  std::unique_ptr<Catalog> catalog_;
  KbCounters counters_;
  std::atomic<bool> ready_{false};
  std::vector<std::string> load_problems_;  // projects that failed to open; set once in Open
  StopSignal stop_;                         // set by Close(); the background loops watch it

  std::unique_ptr<ProjectRegistry> registry_;
  std::unique_ptr<KeyService> keys_;
  std::unique_ptr<IngestPipeline> ingest_;
  std::unique_ptr<IndexMaintenance> maintenance_;
  std::unique_ptr<SoftDeleteLifecycle> lifecycle_;
};

}  // namespace kb
