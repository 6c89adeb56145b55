// IndexMaintenance: keeping the derived vector indexes in step with their databases while the
// service runs. It saves dirty indexes (on a timer from a background thread, and at Close),
// runs the integrity check of the whole data directory (service/integrity_check.h) on a timer
// or on demand, and rebuilds a project's index from its database when the check finds it
// damaged (or after a purge). Health() reads the summary of the last check from here.
//
// Thread-safety: safe for concurrent use. Integrity-check runs are serialised (check_run_mu_);
// the last summary is guarded by check_mu_; index work takes the project's save_mu and
// write_mu (project_handle.h).
#pragma once

#include <optional>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "service/integrity_check.h"
#include "service/project_handle.h"
#include "service/project_registry.h"
#include "service/stop_signal.h"
#include "service/types.h"

namespace kb {

class IndexMaintenance {
 public:
  // Everything passed must outlive this object.
  IndexMaintenance(const KbOptions& options, const Clock* clock, ProjectRegistry* registry,
                   KbCounters* counters, StopSignal* stop);

  // Starts the saver (index_save_interval_ms > 0) and the checker (integrity_check_interval_ms
  // > 0; its first run is at once, in the background). Join() waits for both once `stop` is set.
  void Start();
  void Join();

  // Saves the project's index if it changed since the last save and is not stale.
  Status SaveIndex(ProjectHandle& h) EXCLUDES(h.save_mu, h.write_mu);
  // SaveIndex of every loaded project; failures are logged.
  void SaveAll();
  // Replaces a project's index with one rebuilt from its database (built without locks, then
  // caught up with the journal and swapped in under write_mu), then saves it.
  Status RebuildIndex(ProjectHandle& h) EXCLUDES(h.save_mu, h.write_mu, h.index_ptr_mu);

  // KnowledgeBase::RunIntegrityCheck has the contract.
  Result<IntegrityReport> RunIntegrityCheck() EXCLUDES(check_run_mu_, check_mu_);
  // The summary of the last completed check; nullopt before the first.
  std::optional<IntegritySummary> LastCheck() const EXCLUDES(check_mu_);

 private:
  void SaverLoop();
  void CheckerLoop();
  // The vector_index check of one project during RunIntegrityCheck (see the .cc).
  CheckResult CheckProjectIndex(const ExpectedProject& project, const std::string& project_dir);
  // The problems of the in-memory index of `h` compared with kb.db in `project_dir`.
  void CompareInMemoryIndex(ProjectHandle& h, const ExpectedProject& project,
                            const std::string& project_dir, std::vector<std::string>* problems)
      EXCLUDES(h.write_mu);
  void RecordCheck(const IntegrityReport& report) EXCLUDES(check_mu_);
  // Marks projects whose database failed the check read-only, and clears those that passed.
  void ApplyDamage(const IntegrityReport& report);
  void AuditDamage(const std::string& project_id, const std::string& action,
                   const std::string& detail);

  const KbOptions& options_;
  const Clock* clock_;
  ProjectRegistry* registry_;
  KbCounters* counters_;
  StopSignal* stop_;
  std::thread saver_;
  std::thread checker_;
  Mutex check_run_mu_ ACQUIRED_BEFORE(check_mu_);  // one RunIntegrityCheck at a time
  mutable Mutex check_mu_;
  std::optional<IntegritySummary> last_check_ GUARDED_BY(check_mu_);
};

}  // namespace kb
