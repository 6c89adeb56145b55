// Locks and prune plans (docs/format/BACKUP_REPOSITORY.md, "Locks", "Prune plans").
//
// A LockKeeper holds one `locks/<id>` object for a running backup or prune: it writes it, rewrites
// it every `refresh_ms` on a background thread, and deletes it when released or destroyed. It
// does not re-create a lock that disappeared (prune removed it as stale, or an operator removed
// it) and never refreshes one that may already look stale to another host (older than
// stale_after - max_clock_skew by its own clock): either makes the lock *lost*, and CheckHeld
// fails from then on. A backup calls CheckHeld right before writing its manifest.
// The refresh checks that the lock exists, then rewrites it: blob stores have no conditional
// write, so a removal that lands between the two (one round trip) is undone. Prune removes only
// locks older than stale_after, which a keeper never lets its own lock become, so only a forced
// removal can meet that window.
//
// Thread-safety: LockKeeper's methods may be called from any thread (state behind a mutex); the
// free functions are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "common/thread_annotations.h"
#include "repo/repository_context.h"
#include "repo/repository_format.h"

namespace kb::repo {

struct LockRecord {
  std::string id;    // 16 hex
  std::string kind;  // "backup" | "prune"
  std::string hostname;
  int64_t pid = 0;
  int64_t created_ms = 0;
  int64_t refreshed_ms = 0;
};

Result<LockRecord> ReadLock(const RepoContext& ctx, const std::string& lock_id);
Status WriteLock(const RepoContext& ctx, const LockRecord& lock);

// Every lock in the repository. Locks that vanish while listed are skipped; unreadable ones are
// reported in `unreadable` ("locks/<id>: <reason>") and left out.
Result<std::vector<LockRecord>> ListLocks(const RepoContext& ctx,
                                          std::vector<std::string>* unreadable);

struct LockTiming {
  int64_t refresh_ms = kLockRefreshMs;
  int64_t stale_after_ms = kStaleLockMs;
  int64_t max_clock_skew_ms = kMaxClockSkewMs;
};

class LockKeeper {
 public:
  // Writes a new lock of `kind` and starts refreshing it.
  static Result<std::unique_ptr<LockKeeper>> Acquire(const RepoContext& ctx,
                                                     const std::string& kind,
                                                     LockTiming timing = {});
  ~LockKeeper();  // stops refreshing and deletes the lock (best effort)
  LockKeeper(const LockKeeper&) = delete;
  LockKeeper& operator=(const LockKeeper&) = delete;

  // OK while the lock is held: it still exists and was refreshed recently enough. Otherwise
  // Unavailable("... lock lost ...") from then on.
  Status CheckHeld();
  // Stops refreshing and deletes the lock.
  Status Release();

  const LockRecord& record() const { return record_; }

 private:
  LockKeeper(const RepoContext& ctx, LockRecord record, LockTiming timing);
  void RefreshLoop() EXCLUDES(mu_);
  bool TooOldLocked(int64_t now) const REQUIRES(mu_);
  void StopThread() EXCLUDES(mu_);

  const RepoContext& ctx_;
  // created_ms, id and kind never change; refreshed_ms under mu_ (one field of a struct, which
  // GUARDED_BY cannot name: TooOldLocked, which reads it, REQUIRES(mu_)).
  LockRecord record_;
  const LockTiming timing_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  bool lost_ GUARDED_BY(mu_) = false;
  std::string lost_reason_ GUARDED_BY(mu_);
  bool released_ = false;
  std::thread thread_;
};

struct PrunePlan {
  std::string id;  // 16 hex
  int64_t created_ms = 0;
  std::vector<std::string> packs;    // 64 hex
  std::vector<std::string> indexes;  // 64 hex: index objects that listed those packs
};

Result<PrunePlan> ReadPlan(const RepoContext& ctx, const std::string& plan_id);
Result<int64_t> WritePlan(const RepoContext& ctx, const PrunePlan& plan);
// Every plan, oldest name first. Plans that vanish while listed (swept) are skipped; an
// unreadable plan fails the call (Corruption naming it): a backup that cannot read a plan cannot
// know which packs to avoid.
Result<std::vector<PrunePlan>> ReadAllPlans(const RepoContext& ctx);
// The packs any readable plan names: a reader (restore, verify) takes a chunk from another pack
// when it has one, since planned packs may disappear at any moment. Best effort: when the plans
// cannot be read, none are avoided (a reader that meets a vanished pack reports it).
std::unordered_set<std::string> PlannedPacks(const RepoContext& ctx);

}  // namespace kb::repo
