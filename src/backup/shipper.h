// JournalShipper: continuous journal shipping (issue 13, first slice). Every `interval_ms` it
// reads each live project's journal entries after the last shipped point and writes them into
// the backup repository as one segment per project with changes (docs/format/SHIPPING.md), so a
// project can be restored to any second (backup/point_in_time.h), not just to its last snapshot.
//
// Where shipping resumes comes from the repository, not from this process: for each project the
// newest point (a segment's end or a snapshot's LSN) that the local journal went through
// (SHIPPING.md, writer rule 1). So a restart neither ships an entry twice nor skips one, and a
// project restored to an earlier state ships its new history from the restored point.
//
// Failures (repository unreachable, a write refused) are retried: the next round reads the same
// entries from the journal again, with the wait doubling from the interval up to
// kMaxShipRetryMs. The journal is the queue: nothing is staged on local disk in this slice, so
// nothing bounds how far behind shipping may fall except the journal itself (never truncated).
// Every failure is counted and logged (the first of a run of failures and then at most every
// kShipFailureLogMs); the lag of each project is kept for /metrics.
//
// Thread-safety: every method may be called from any thread; rounds (the thread's and
// ShipOnce's) are serialised by one mutex. Stop() joins the thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "repo/repository.h"
#include "repo/segments.h"
#include "service/knowledge_base.h"

namespace kb::store {
class ProjectReader;
}

namespace kb::backup {

// Defaults and bounds (docs/CONFIG.md quotes these).
inline constexpr int64_t kDefaultShipIntervalMs = 250;
inline constexpr int64_t kMaxShipRetryMs = 5'000;
inline constexpr int64_t kShipFailureLogMs = 30'000;

struct ShipperOptions {
  int64_t interval_ms = kDefaultShipIntervalMs;  // 0 = off (Start returns null)
  // Entries per segment (at most the format's kMaxSegmentEntries; tests lower it).
  int64_t max_segment_entries = repo::kMaxSegmentEntries;
  // Opens the repository (called on first use and again after a failure to open).
  std::function<Result<std::unique_ptr<repo::Repository>>()> open_repository;
};

// Figures for /metrics (read without locks).
struct ShipCounters {
  std::atomic<int64_t> segments{0};
  std::atomic<int64_t> failures{0};
  // End of the last round that shipped everything it found without an error (0: none yet).
  std::atomic<int64_t> last_success_ms{0};
};

struct ProjectShipState {
  std::string project_id;
  std::string name;
  repo::ChainPoint shipped;  // the newest point known to be in the repository
  int64_t local_lsn = 0;     // the project's newest LSN at the last round
  double lag_seconds = 0;    // age of the oldest committed entry not yet shipped; 0 caught up
};

class JournalShipper {
 public:
  // Starts the shipping thread; null when options.interval_ms is 0. The knowledge base must
  // outlive the shipper.
  static Result<std::unique_ptr<JournalShipper>> Start(KnowledgeBase* kb,
                                                       const ShipperOptions& options);
  // For tests: a shipper without its thread; call ShipOnce to run a round.
  static std::unique_ptr<JournalShipper> CreateForTest(KnowledgeBase* kb,
                                                       const ShipperOptions& options);
  ~JournalShipper();
  void Stop() EXCLUDES(stop_mu_);

  // One round: every live project's new entries shipped (up to kMaxSegmentEntries per segment,
  // as many segments as needed). The first error stops the round and is returned (counted).
  Status ShipOnce() EXCLUDES(round_mu_, state_mu_);

  const ShipCounters& counters() const { return counters_; }
  // Per project, as of the last round.
  std::vector<ProjectShipState> Projects() const EXCLUDES(state_mu_);
  // {"interval_ms", "segments", "failures", "last_success", "last_error", "projects":
  //  [{"project_id", "project", "shipped_lsn", "shipped_commit", "local_lsn", "lag_seconds"}]}:
  // `shipping` in GET /api/v1/stats.
  nlohmann::json StatusJson() const EXCLUDES(state_mu_);

 private:
  JournalShipper(KnowledgeBase* kb, const ShipperOptions& options);
  void Loop() EXCLUDES(stop_mu_);
  Result<repo::Repository*> Repo() REQUIRES(round_mu_);
  // Reads (id -> points) of every snapshot's projects: the anchors of resume points.
  Status LoadSnapshotPoints() REQUIRES(round_mu_);
  // The newest point in the repository the local journal went through (SHIPPING.md rule 1).
  Result<repo::ChainPoint> FindResumePoint(const std::string& project_id,
                                           store::ProjectReader& reader) REQUIRES(round_mu_);
  Status ShipProject(const ProjectRecord& project) REQUIRES(round_mu_) EXCLUDES(state_mu_);
  // Every live project, one after the other; the first error (after trying them all).
  Status ShipAll() REQUIRES(round_mu_) EXCLUDES(state_mu_);

  KnowledgeBase* kb_;
  ShipperOptions options_;
  ShipCounters counters_;

  Mutex round_mu_ ACQUIRED_BEFORE(state_mu_);
  std::unique_ptr<repo::Repository> repo_ GUARDED_BY(round_mu_);
  std::optional<std::map<std::string, std::vector<repo::ChainPoint>>> snapshot_points_
      GUARDED_BY(round_mu_);
  std::map<std::string, repo::ChainPoint> shipped_ GUARDED_BY(round_mu_);

  mutable Mutex state_mu_;
  std::map<std::string, ProjectShipState> state_ GUARDED_BY(state_mu_);
  std::string last_error_ GUARDED_BY(state_mu_);
  int64_t last_error_logged_ms_ GUARDED_BY(state_mu_) = 0;

  Mutex stop_mu_;
  CondVar stop_cv_;
  bool stopping_ GUARDED_BY(stop_mu_) = false;
  std::thread thread_;
};

}  // namespace kb::backup
