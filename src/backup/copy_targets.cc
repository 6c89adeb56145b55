// CopyTargets. See copy_targets.h.
#include "backup/copy_targets.h"

#include <algorithm>
#include <optional>
#include <unordered_set>

#include "common/logging.h"
#include "repo/retention.h"

namespace kb::backup {

using json = nlohmann::json;

namespace {

// Start of the newest readable full snapshot, if any.
std::optional<int64_t> NewestFull(const std::vector<repo::SnapshotSummary>& snapshots) {
  std::optional<int64_t> newest;
  for (const repo::SnapshotSummary& s : snapshots) {
    if (!s.problem.empty() || s.scope != "full") continue;
    if (auto t = repo::SnapshotTimeMillis(s); t && (!newest || *t > *newest)) newest = t;
  }
  return newest;
}

}  // namespace

double CopyLagSeconds(const std::vector<repo::SnapshotSummary>& primary,
                      const std::vector<repo::SnapshotSummary>& destination, int64_t now_ms) {
  const std::optional<int64_t> src = NewestFull(primary);
  if (!src) return 0;
  const std::optional<int64_t> dst = NewestFull(destination);
  const int64_t behind = dst ? *src - *dst : now_ms - *src;
  return static_cast<double>(std::max<int64_t>(behind, 0)) / 1000.0;
}

CopyTargets::CopyTargets(
    std::vector<CopyTarget> targets, blob::BlobStoreOptions blob, const Clock* clock,
    repo::RetentionPolicy retention, repo::PruneOptions prune,
    std::function<void(const std::string&, const std::string&, const std::string&)> audit)
    : blob_(std::move(blob)),
      clock_(clock),
      retention_(retention),
      prune_(prune),
      audit_(std::move(audit)) {
  MutexLock run(run_mu_);
  MutexLock status(status_mu_);
  for (CopyTarget& t : targets) {
    CopyTargetStatus s;
    s.url = t.url;
    status_.push_back(std::move(s));
    targets_.push_back(Target{std::move(t), nullptr});
  }
}

Result<repo::Repository*> CopyTargets::Open(Target& t) {
  if (!t.repo) {
    KB_ASSIGN_OR_RETURN(t.repo, repo::OpenRepository(t.config.url, t.config.key, blob_, clock_));
  }
  return t.repo.get();
}

std::string CopyTargets::CopyInto(size_t i, repo::Repository& primary) {
  Target& t = targets_[i];
  auto dest = Open(t);
  if (!dest.ok()) return "cannot open: " + dest.status().ToString();
  {
    MutexLock status(status_mu_);
    status_[i].repository_id = (*dest)->id();
  }
  auto have = (*dest)->ListSnapshotIds();
  if (!have.ok()) return "cannot list: " + have.status().ToString();
  auto source_ids = primary.ListSnapshotIds();
  if (!source_ids.ok()) return "cannot list the primary: " + source_ids.status().ToString();
  // Ids sort by start time: copy what is newer than the destination's newest (or, into an
  // empty destination, the newest alone).
  const std::unordered_set<std::string> present(have->begin(), have->end());
  const std::string newest_present =
      have->empty() ? "" : *std::max_element(have->begin(), have->end());
  std::vector<std::string> wanted;
  for (const std::string& id : *source_ids) {
    if (!present.count(id) && id > newest_present) wanted.push_back(id);
  }
  if (have->empty() && wanted.size() > 1) wanted.erase(wanted.begin(), wanted.end() - 1);

  for (const std::string& id : wanted) {
    auto copied = repo::CopySnapshot(primary, **dest, id);
    if (!copied.ok()) {
      audit_("backup.copy", "failed",
             t.config.url + ": snapshot " + id + ": " + copied.status().ToString());
      return "snapshot " + id + ": " + copied.status().ToString();
    }
    audit_("backup.copy", "ok",
           t.config.url + ": snapshot " + id + (copied->copied ? " copied" : " already there") +
               ", +" + std::to_string(copied->stats.added_stored_bytes) + " bytes, verified");
    LogInfo("backup copied", json{{"repository", t.config.url},
                                  {"snapshot", id},
                                  {"added_stored_bytes", copied->stats.added_stored_bytes}}
                                 .dump());
    MutexLock status(status_mu_);
    status_[i].copied++;
    status_[i].last_copied = id;
  }

  // The destination keeps what the service's policy keeps (the same decisions as in the
  // primary, since the copies carry the primary's times), then drops what nothing uses.
  if (!retention_.empty() && !wanted.empty()) {
    auto listed = (*dest)->ListSnapshots();
    if (!listed.ok()) return "retention: " + listed.status().ToString();
    int forgotten = 0;
    for (const repo::RetentionDecision& d :
         repo::ApplyRetention(*listed, retention_, clock_->NowMillis())) {
      if (d.keep) continue;
      Status s = (*dest)->ForgetSnapshot(d.snapshot_id);
      if (!s.ok()) return "retention: " + s.ToString();
      ++forgotten;
    }
    auto pruned = (*dest)->Prune(prune_);
    if (!pruned.ok()) return "prune: " + pruned.status().ToString();
    if (forgotten > 0) {
      audit_("backup.retention", "ok",
             t.config.url + ": forgot " + std::to_string(forgotten) + " snapshots; prune deleted " +
                 std::to_string(pruned->packs_deleted) + " packs");
    }
  }
  return "";
}

void CopyTargets::UpdateLag(size_t i, const std::vector<repo::SnapshotSummary>& primary_snapshots) {
  auto dest = Open(targets_[i]);
  if (!dest.ok()) return;
  auto listed = (*dest)->ListSnapshots();
  if (!listed.ok()) return;
  const double lag = CopyLagSeconds(primary_snapshots, *listed, clock_->NowMillis());
  MutexLock status(status_mu_);
  status_[i].repository_id = (*dest)->id();
  status_[i].snapshots = static_cast<int64_t>(listed->size());
  status_[i].lag_seconds = lag;
  status_[i].lag_known = true;
}

void CopyTargets::CopyNew(repo::Repository& primary) {
  MutexLock run(run_mu_);
  for (size_t i = 0; i < targets_.size(); ++i) {
    const std::string problem = CopyInto(i, primary);
    if (!problem.empty()) {
      LogError("backup copy failed",
               json{{"repository", targets_[i].config.url}, {"error", problem}}.dump());
    }
    MutexLock status(status_mu_);
    if (!problem.empty()) status_[i].failures++;
    status_[i].last_error =
        problem.empty() ? "" : FormatIso8601(clock_->NowMillis()) + ": " + problem;
  }
  auto primary_snapshots = primary.ListSnapshots();
  if (!primary_snapshots.ok()) return;
  for (size_t i = 0; i < targets_.size(); ++i) UpdateLag(i, *primary_snapshots);
}

void CopyTargets::Refresh(const std::vector<repo::SnapshotSummary>& primary_snapshots) {
  MutexLock run(run_mu_);
  for (size_t i = 0; i < targets_.size(); ++i) UpdateLag(i, primary_snapshots);
}

std::vector<CopyTargetStatus> CopyTargets::Figures() const {
  MutexLock status(status_mu_);
  return status_;
}

json CopyTargets::StatusJson() const {
  json arr = json::array();
  for (const CopyTargetStatus& s : Figures()) {
    arr.push_back({{"repository", s.url},
                   {"id", s.repository_id},
                   {"lag_seconds", s.lag_known ? json(s.lag_seconds) : json(nullptr)},
                   {"snapshots", s.snapshots},
                   {"copied", s.copied},
                   {"failures", s.failures},
                   {"last_copied", s.last_copied.empty() ? json(nullptr) : json(s.last_copied)},
                   {"last_error", s.last_error.empty() ? json(nullptr) : json(s.last_error)}});
  }
  return arr;
}

}  // namespace kb::backup
