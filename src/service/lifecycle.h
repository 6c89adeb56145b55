// SoftDeleteLifecycle: what happens to soft-deleted documents and projects. The purge job
// removes for good what was deleted longer than the grace period ago (from a background thread
// every purge_interval_ms, or on demand); the admin restore brings deleted documents and
// projects back; ListDeleted shows what is deleted. Its ordering rules:
//   - purge and restore are serialised (lifecycle_mu_), so a project is never restored while
//     its directory is being removed;
//   - a document is purged under its project's write mutex, like every other write, so the
//     vector index keeps reflecting a journal prefix;
//   - a project is purged directory first, catalog row last: a crash in between leaves a
//     deleted row whose files are gone, which the next run finishes and a restore refuses.
//
// Thread-safety: safe for concurrent use (see lifecycle_mu_ above).
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "service/index_maintenance.h"
#include "service/project_handle.h"
#include "service/project_registry.h"
#include "service/stop_signal.h"
#include "service/types.h"
#include "store/catalog.h"

namespace kb {

class SoftDeleteLifecycle {
 public:
  // Everything passed must outlive this object.
  SoftDeleteLifecycle(const KbOptions& options, const Clock* clock, Catalog* catalog,
                      ProjectRegistry* registry, IndexMaintenance* maintenance, StopSignal* stop);

  // Starts the purger when purge_interval_ms > 0 (first run one interval later); Join() waits
  // for it once `stop` is set.
  void Start();
  void Join();

  // KnowledgeBase::Purge, RestoreDeleted and ListDeleted have the contracts.
  Result<PurgeReport> Purge(bool dry_run, const Actor& actor) EXCLUDES(lifecycle_mu_);
  Result<RestoreDeletedReport> RestoreDeleted(const RestoreDeletedRequest& req, const Actor& actor)
      EXCLUDES(lifecycle_mu_);
  Result<DeletedListing> ListDeleted(const std::string& project, int64_t limit, int64_t offset)
      EXCLUDES(lifecycle_mu_);

 private:
  void PurgerLoop();
  // Purges the due documents of one live project, in batches.
  Status PurgeDocumentsOf(ProjectHandle& h, const Actor& actor, const std::string& route,
                          PurgeReport* report) REQUIRES(lifecycle_mu_) EXCLUDES(h.write_mu);
  // Purges one deleted project (directory, then catalog row). False if it failed (reported).
  bool PurgeProject(const ProjectRecord& p, PurgeReport* report) REQUIRES(lifecycle_mu_);
  // Undeletes a soft-deleted project and opens it (restore step one). Under lifecycle_mu_.
  Result<std::shared_ptr<ProjectHandle>> ReopenDeletedProject(const RestoreDeletedRequest& req,
                                                              const Actor& actor)
      REQUIRES(lifecycle_mu_);
  // The documents a restore considers: the ids given, or those deleted at or after `before`.
  Result<std::vector<std::string>> RestoreCandidates(ProjectHandle& h,
                                                     const RestoreDeletedRequest& req);
  // Undeletes one document under the project's write mutex and puts its vectors back.
  Status UndeleteDocumentLocked(ProjectHandle& h, const std::string& document_id,
                                const Actor& actor) REQUIRES(h.write_mu);
  // Records a background ("system") action in options_.audit. HTTP requests are recorded by the
  // server's middleware and direct-mode CLI changes by the CLI backend: other actors are ignored.
  void AuditAction(const Actor& actor, const std::string& route, const std::string& action,
                   const std::string& project, std::vector<std::string> document_ids,
                   const std::string& outcome, const std::string& detail);

  const KbOptions& options_;
  const Clock* clock_;
  Catalog* catalog_;
  ProjectRegistry* registry_;
  IndexMaintenance* maintenance_;
  StopSignal* stop_;
  std::thread purger_;
  // Serialises Purge with RestoreDeleted and ListDeleted of deleted projects, so that a project
  // is never restored or opened while its directory is being removed.
  Mutex lifecycle_mu_;
};

}  // namespace kb
