// The server's second (third, ...) repositories: `backup_copy_to` (issue 12, "a second
// repository"). After each backup the service hands the primary repository to CopyTargets,
// which copies into each destination the snapshots it lacks (repo::CopySnapshot: re-encrypted
// with the destination's keys, deduplicated against it, manifest last, verified), applies the
// service's retention policy there and prunes it, and keeps per destination the figures
// /metrics, /api/v1/stats and GET /api/v1/admin/backups show: how far behind the copy is
// (CopyLagSeconds), failures, the last error.
//
// Which snapshots are copied: those of the primary newer (by id, i.e. by start time) than the
// newest snapshot the destination holds — or, for an empty destination, the primary's newest
// alone — oldest first, stopping at the first failure so that the next run retries it. A copy
// is never attempted twice for a snapshot the destination holds (CopySnapshot is idempotent).
//
// Thread-safety: CopyNew and Refresh serialise on one mutex (they may be slow: they read and
// write repositories); Figures and StatusJson take a short lock of their own and may be called
// from any thread meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "blob/blob_store.h"
#include "common/clock.h"
#include "common/thread_annotations.h"
#include "repo/repository.h"

namespace kb::backup {

// One entry of backup_copy_to.
struct CopyTarget {
  std::string url;
  repo::KeySource key;
};

// How far behind a copy is, in seconds: the start of the newest readable full snapshot of the
// primary minus that of the destination's newest full snapshot (0 when the destination has it,
// or something newer; 0 when the primary has none). A destination with no full snapshot at all
// is behind by the age of the primary's newest one (now − its start), so the figure grows while
// a first copy keeps failing. Pure.
double CopyLagSeconds(const std::vector<repo::SnapshotSummary>& primary,
                      const std::vector<repo::SnapshotSummary>& destination, int64_t now_ms);

// Figures of one destination.
struct CopyTargetStatus {
  std::string url;
  std::string repository_id;  // "" until it was opened
  double lag_seconds = 0;
  bool lag_known = false;  // false until the destination could be listed once
  int64_t snapshots = 0;
  int64_t copied = 0;    // snapshots copied by this process
  int64_t failures = 0;  // copy rounds that failed (opening, a copy, retention)
  std::string last_copied;
  std::string last_error;  // "" after a round without failure
};

class CopyTargets {
 public:
  // `audit(action, outcome, detail)` records to the audit log (may be empty).
  CopyTargets(
      std::vector<CopyTarget> targets, blob::BlobStoreOptions blob, const Clock* clock,
      repo::RetentionPolicy retention, repo::PruneOptions prune,
      std::function<void(const std::string&, const std::string&, const std::string&)> audit);

  // Copies what each destination lacks from `primary`, then retention + prune there, then
  // recomputes the lag. Never fails: failures are logged, audited (`backup.copy`) and counted.
  void CopyNew(repo::Repository& primary) EXCLUDES(run_mu_, status_mu_);
  // Recomputes every destination's lag from `primary_snapshots` (no copying).
  void Refresh(const std::vector<repo::SnapshotSummary>& primary_snapshots)
      EXCLUDES(run_mu_, status_mu_);

  std::vector<CopyTargetStatus> Figures() const EXCLUDES(status_mu_);
  // [{"repository": url, "id", "lag_seconds" (null until known), "snapshots", "copied",
  //   "failures", "last_copied", "last_error"}]
  nlohmann::json StatusJson() const EXCLUDES(status_mu_);

 private:
  struct Target {
    CopyTarget config;
    std::unique_ptr<repo::Repository> repo;  // opened on first use
  };
  Result<repo::Repository*> Open(Target& t) REQUIRES(run_mu_);
  // One destination's round; returns what went wrong ("" = nothing).
  std::string CopyInto(size_t i, repo::Repository& primary) REQUIRES(run_mu_);
  void UpdateLag(size_t i, const std::vector<repo::SnapshotSummary>& primary_snapshots)
      REQUIRES(run_mu_);

  blob::BlobStoreOptions blob_;
  const Clock* clock_;
  repo::RetentionPolicy retention_;
  repo::PruneOptions prune_;
  std::function<void(const std::string&, const std::string&, const std::string&)> audit_;

  Mutex run_mu_ ACQUIRED_BEFORE(status_mu_);
  std::vector<Target> targets_ GUARDED_BY(run_mu_);
  mutable Mutex status_mu_;
  std::vector<CopyTargetStatus> status_ GUARDED_BY(status_mu_);
};

}  // namespace kb::backup
