// ProjectRegistry: the projects the service has loaded. It opens a project's handle (store,
// embedder, vector index caught up from the journal or rebuilt), looks handles up by id or name,
// and swaps a restored project in (retiring the old handle first). It also knows which projects
// are being restored: lookups of those answer Unavailable until the swap is done.
//
// Thread-safety: safe for concurrent use. projects_mu_ guards the map and the restoring set;
// it is never held while a handle's own mutexes are taken for long (only record_mu, to compare
// names).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "service/project_handle.h"
#include "service/types.h"
#include "store/catalog.h"

namespace kb {

class ProjectRegistry {
 public:
  // `catalog` and `counters` must outlive the registry.
  ProjectRegistry(const KbOptions& options, const Clock* clock, Catalog* catalog,
                  KbCounters* counters);

  // Opens every live project of the catalog. One project's damage never takes the others down:
  // it is logged and appended to `problems`. FailedPrecondition (a schema newer than this
  // binary) stops the load and is returned.
  Status LoadAll(std::vector<std::string>* problems);

  // Opens a project's files: store, embedder (whose fingerprint must match the record's), and
  // the saved vector index caught up from the journal, or rebuilt from the database if missing,
  // damaged or ahead of it. `loading`: an existing project at Open() (a rebuilt index is then
  // reported by the next integrity check as damage it repaired); false for a project being
  // created or restored. The handle is not registered (see Put).
  Result<std::shared_ptr<ProjectHandle>> OpenHandle(const ProjectRecord& record,
                                                    bool loading = false);

  // The loaded project with this id or name. NotFound; Unavailable while it is being restored.
  Result<std::shared_ptr<ProjectHandle>> Find(const std::string& id_or_name) EXCLUDES(projects_mu_);
  // The loaded project with this id (null if none); `*restoring` says whether it is being
  // restored.
  std::shared_ptr<ProjectHandle> FindById(const std::string& id, bool* restoring)
      EXCLUDES(projects_mu_);
  // Whether this id is loaded or being restored (a purge leaves those alone).
  bool LoadedOrRestoring(const std::string& id) EXCLUDES(projects_mu_);
  // Whether a loaded project has this name.
  bool NameTaken(const std::string& name) EXCLUDES(projects_mu_);
  // Every loaded project, in id order.
  std::vector<std::shared_ptr<ProjectHandle>> All() EXCLUDES(projects_mu_);
  void Put(const std::string& id, std::shared_ptr<ProjectHandle> handle) EXCLUDES(projects_mu_);
  void Remove(const std::string& id) EXCLUDES(projects_mu_);

  // Swaps in a restored project (KnowledgeBase::ReplaceProject has the contract).
  Status ReplaceProject(const ProjectRecord& record, const std::string& staged_dir,
                        const std::string& aside_dir);

  std::string ProjectDir(const std::string& project_id) const;

 private:
  // Loads the saved index and replays the journal onto it; on failure (or an index ahead of the
  // journal) rebuilds it from the database, recording why in load_repair when `loading`.
  // Runs on a handle not yet shared, under its write_mu.
  Status LoadIndex(ProjectHandle& h, const ProjectRecord& record, bool loading)
      REQUIRES(h.write_mu);
  // Waits until no request uses `h`, saves its index and closes its store and index.
  Status RetireHandle(const std::shared_ptr<ProjectHandle>& h);
  Status SwapInRestoredProject(const ProjectRecord& record, const std::string& staged_dir,
                               const std::string& aside_dir);
  void EndRestore(const ProjectRecord& record);

  const KbOptions& options_;
  const Clock* clock_;
  Catalog* catalog_;
  KbCounters* counters_;
  mutable SharedMutex projects_mu_;
  // By project id.
  std::map<std::string, std::shared_ptr<ProjectHandle>> projects_ GUARDED_BY(projects_mu_);
  std::set<std::string> restoring_ GUARDED_BY(projects_mu_);  // ids and names being restored
};

}  // namespace kb
