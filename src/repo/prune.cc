// Two-phase prune, exactly as docs/format/BACKUP_REPOSITORY.md "Prune (two-phase)" orders it.
#include "repo/prune.h"

#include <algorithm>
#include <set>
#include <unordered_set>

#include "common/clock.h"
#include "repo/chunk_index.h"
#include "repo/locks.h"
#include "repo/repository_format.h"
#include "repo/snapshot.h"
#include "repo/verify.h"

namespace kb::repo {

namespace {

using PackSet = std::unordered_set<std::string>;

// The packs that the snapshots use. Snapshots are listed *before* the index is read: every
// listed snapshot's index objects were written before its manifest, so they are in the map, and
// a chunk missing from it means a damaged repository — then nothing may be deleted.
struct References {
  PackSet packs;
  ChunkMap map;
  IndexLoadResult loaded;
};

Result<References> ComputeReferences(const RepoContext& ctx, const PackSet& planned) {
  KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListSnapshotIds(ctx));
  References refs;
  // Planned packs only as a fallback: a chunk they share with a pack that stays does not keep
  // them alive.
  KB_ASSIGN_OR_RETURN(refs.loaded, LoadChunkMap(ctx, planned, true, &refs.map));
  if (!refs.loaded.problems.empty()) {
    return Status::Corruption("prune cannot proceed: " + refs.loaded.problems[0] +
                              " (run `knowledgebeast repo check`)");
  }
  ReferenceWalker walker(ctx, refs.map);
  std::set<uint32_t> ordinals;
  for (const std::string& id : ids) {
    auto m = ReadManifest(ctx, id);
    if (m.status().code() == Code::kNotFound) continue;  // forgotten meanwhile
    KB_RETURN_IF_ERROR(m.status());
    std::vector<std::string> problems;
    walker.Walk(*m, &ordinals, &problems);
    if (!problems.empty()) {
      return Status::Corruption("prune cannot proceed: " + problems[0] +
                                " (run `knowledgebeast repo check`)");
    }
  }
  for (uint32_t o : ordinals) refs.packs.insert(refs.map.pack(o).id);
  return refs;
}

class Pruner {
 public:
  Pruner(const RepoContext& ctx, const PruneOptions& options) : ctx_(ctx), options_(options) {}

  Result<PruneReport> Run() {
    if (!options_.dry_run) {
      LockTiming timing;
      timing.stale_after_ms = options_.stale_lock_ms;
      timing.max_clock_skew_ms = options_.max_clock_skew_ms;
      KB_ASSIGN_OR_RETURN(lock_, LockKeeper::Acquire(ctx_, "prune", timing));
    }
    KB_RETURN_IF_ERROR(ReviewLocks());
    KB_ASSIGN_OR_RETURN(std::vector<PrunePlan> plans, ReadAllPlans(ctx_));
    std::vector<PrunePlan> due, waiting;
    for (PrunePlan& plan : plans) {
      if (now_ - plan.created_ms < options_.grace_ms) {
        waiting.push_back(std::move(plan));
      } else if (BlockedByBackup(plan)) {
        report_.plans_deferred++;
        waiting.push_back(std::move(plan));
      } else {
        due.push_back(std::move(plan));
      }
    }
    if (!due.empty()) KB_RETURN_IF_ERROR(Sweep(due));
    KB_RETURN_IF_ERROR(Mark(waiting));
    if (lock_) KB_RETURN_IF_ERROR(lock_->Release());
    return report_;
  }

 private:
  // Removes stale locks, refuses to run beside another live prune, and remembers when the live
  // backups started.
  Status ReviewLocks() {
    std::vector<std::string> unreadable;
    KB_ASSIGN_OR_RETURN(std::vector<LockRecord> locks, ListLocks(ctx_, &unreadable));
    now_ = ctx_.NowMs();
    for (const std::string& u : unreadable) {
      // Its age is unknown: treat it as a live backup that started long ago.
      report_.notes.push_back("unreadable lock (treated as a running backup): " + u);
      backup_starts_.push_back(INT64_MIN);
    }
    for (const LockRecord& l : locks) {
      if (lock_ && l.id == lock_->record().id) continue;
      if (now_ - l.refreshed_ms > options_.stale_lock_ms) {
        report_.stale_locks_removed++;
        report_.notes.push_back(
            (options_.dry_run ? "would remove stale lock " : "removed stale lock ") +
            LockKey(l.id) + " (" + l.kind + " on " + l.hostname + ")");
        if (!options_.dry_run) KB_RETURN_IF_ERROR(ctx_.store->Delete(LockKey(l.id)));
        continue;
      }
      if (l.kind == "prune") {
        return Status::FailedPrecondition("another prune is running (" + LockKey(l.id) + " on " +
                                          l.hostname + ", pid " + std::to_string(l.pid) + ")");
      }
      backup_starts_.push_back(l.created_ms);
    }
    return Status::OK();
  }

  // A backup that started before plan + skew may have reused the plan's packs.
  bool BlockedByBackup(const PrunePlan& plan) const {
    for (int64_t start : backup_starts_) {
      if (start < plan.created_ms + options_.max_clock_skew_ms) return true;
    }
    return false;
  }

  Status Sweep(const std::vector<PrunePlan>& due) {
    PackSet planned;
    for (const PrunePlan& p : due) planned.insert(p.packs.begin(), p.packs.end());
    KB_ASSIGN_OR_RETURN(References refs, ComputeReferences(ctx_, planned));
    // 1. Packs a snapshot uses stay.
    PackSet doomed;
    for (const std::string& id : planned) {
      if (!refs.packs.count(id)) doomed.insert(id);
    }
    KB_ASSIGN_OR_RETURN(auto sizes, ListPackIds(ctx_));
    for (const std::string& id : doomed) {
      auto it = sizes.find(id);
      if (it == sizes.end()) continue;  // deleted by an earlier, interrupted sweep
      report_.packs_deleted++;
      report_.bytes_deleted += it->second;
    }
    report_.plans_swept += static_cast<int64_t>(due.size());
    if (options_.dry_run) {
      report_.notes.push_back("would delete " + std::to_string(report_.packs_deleted) + " packs");
      return Status::OK();
    }
    // 2. New index objects without the doomed packs, then delete the ones they replace.
    KB_RETURN_IF_ERROR(RewriteIndexes(refs.loaded, doomed));
    // 3. The packs; 4. the plans.
    for (const std::string& id : doomed) KB_RETURN_IF_ERROR(ctx_.store->Delete(PackKey(id)));
    for (const PrunePlan& p : due) KB_RETURN_IF_ERROR(ctx_.store->Delete(PlanKey(p.id)));
    return Status::OK();
  }

  Status RewriteIndexes(const IndexLoadResult& loaded, const PackSet& doomed) {
    std::vector<std::string> affected;
    for (const auto& [index_id, pack_ids] : loaded.objects) {
      for (const std::string& p : pack_ids) {
        if (doomed.count(p)) {
          affected.push_back(index_id);
          break;
        }
      }
    }
    std::vector<IndexedPack> kept;
    PackSet seen;
    auto flush = [&]() -> Status {
      if (kept.empty()) return Status::OK();
      KB_RETURN_IF_ERROR(WriteIndexObject(ctx_, kept).status());
      kept.clear();
      return Status::OK();
    };
    for (const std::string& index_id : affected) {
      KB_RETURN_IF_ERROR(ReadIndexObject(ctx_, index_id, [&](IndexedPack&& p) -> Status {
        if (doomed.count(p.id) || !seen.insert(p.id).second) return Status::OK();
        kept.push_back(std::move(p));
        if (kept.size() >= static_cast<size_t>(kPacksPerIndex)) return flush();
        return Status::OK();
      }));
    }
    KB_RETURN_IF_ERROR(flush());
    for (const std::string& index_id : affected) {
      KB_RETURN_IF_ERROR(ctx_.store->Delete(IndexKey(index_id)));
    }
    return Status::OK();
  }

  Status Mark(const std::vector<PrunePlan>& waiting) {
    PackSet in_plans;
    for (const PrunePlan& p : waiting) in_plans.insert(p.packs.begin(), p.packs.end());
    KB_ASSIGN_OR_RETURN(References refs, ComputeReferences(ctx_, in_plans));
    // Listed after the references: a pack stored meanwhile by a running backup is marked too,
    // which is safe because that backup's lock predates the plan (its sweep waits).
    KB_ASSIGN_OR_RETURN(auto packs, ListPackIds(ctx_));
    PrunePlan plan;
    plan.id = NewRandomId();
    plan.created_ms = ctx_.NowMs();
    for (const auto& [id, size] : packs) {
      if (!refs.packs.count(id) && !in_plans.count(id)) plan.packs.push_back(id);
    }
    std::sort(plan.packs.begin(), plan.packs.end());
    report_.packs_marked = static_cast<int64_t>(plan.packs.size());
    if (plan.packs.empty()) return Status::OK();
    PackSet marked(plan.packs.begin(), plan.packs.end());
    for (const auto& [index_id, pack_ids] : refs.loaded.objects) {
      for (const std::string& p : pack_ids) {
        if (marked.count(p)) {
          plan.indexes.push_back(index_id);
          break;
        }
      }
    }
    if (options_.dry_run) {
      report_.notes.push_back("would mark " + std::to_string(plan.packs.size()) + " packs");
      return Status::OK();
    }
    return WritePlan(ctx_, plan).status();
  }

  const RepoContext& ctx_;
  const PruneOptions& options_;
  std::unique_ptr<LockKeeper> lock_;
  int64_t now_ = 0;
  std::vector<int64_t> backup_starts_;
  PruneReport report_;
};

}  // namespace

Result<PruneReport> PruneRepository(const RepoContext& ctx, const PruneOptions& options) {
  if (options.grace_ms < options.max_clock_skew_ms) {
    return Status::InvalidArgument("prune grace must be at least the maximum clock skew");
  }
  if (options.stale_lock_ms <= options.max_clock_skew_ms) {
    return Status::InvalidArgument("the stale-lock age must exceed the maximum clock skew");
  }
  Pruner pruner(ctx, options);
  return pruner.Run();
}

}  // namespace kb::repo
