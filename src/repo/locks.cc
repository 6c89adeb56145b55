// Lock objects with a refresh thread, and prune plan objects.
#include "repo/locks.h"

#include <unistd.h>

#include <chrono>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/logging.h"

namespace kb::repo {

namespace {

using nlohmann::json;

Result<int64_t> JsonTime(const json& j, std::string_view field, std::string_view object) {
  KB_ASSIGN_OR_RETURN(std::string text, JsonString(j, field, object));
  std::optional<int64_t> ms = ParseIso8601(text);
  if (!ms) {
    return Status::Corruption(std::string(object) + ": field \"" + std::string(field) +
                              "\" is not an ISO-8601 time");
  }
  return *ms;
}

Result<std::vector<std::string>> HexList(const json& j, std::string_view field,
                                         std::string_view object) {
  std::vector<std::string> out;
  auto it = j.find(field);
  if (it == j.end()) return out;
  if (!it->is_array()) {
    return Status::Corruption(std::string(object) + ": \"" + std::string(field) +
                              "\" is not an array");
  }
  for (const json& v : *it) {
    if (!v.is_string() || !IsPackId(v.get<std::string>())) {
      return Status::Corruption(std::string(object) + ": \"" + std::string(field) +
                                "\" holds an invalid id");
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

Result<LockRecord> ReadLock(const RepoContext& ctx, const std::string& lock_id) {
  std::string key = LockKey(lock_id);
  KB_ASSIGN_OR_RETURN(json j, ctx.ReadSealedJson(key, LockAad(lock_id), kLockVersion));
  LockRecord r;
  r.id = lock_id;
  KB_ASSIGN_OR_RETURN(r.kind, JsonString(j, "kind", key));
  if (r.kind != "backup" && r.kind != "prune") {
    return Status::Corruption(key + ": unknown lock kind " + QuoteName(r.kind));
  }
  if (j.contains("hostname") && j["hostname"].is_string()) r.hostname = j["hostname"];
  if (j.contains("pid") && j["pid"].is_number_integer()) r.pid = j["pid"];
  KB_ASSIGN_OR_RETURN(r.created_ms, JsonTime(j, "created", key));
  KB_ASSIGN_OR_RETURN(r.refreshed_ms, JsonTime(j, "refreshed", key));
  return r;
}

Status WriteLock(const RepoContext& ctx, const LockRecord& lock) {
  json j{{"version", kLockVersion},
         {"kind", lock.kind},
         {"hostname", lock.hostname},
         {"pid", lock.pid},
         {"created", FormatIso8601(lock.created_ms)},
         {"refreshed", FormatIso8601(lock.refreshed_ms)}};
  return ctx.WriteSealedJson(LockKey(lock.id), LockAad(lock.id), j).status();
}

Result<std::vector<LockRecord>> ListLocks(const RepoContext& ctx,
                                          std::vector<std::string>* unreadable) {
  std::vector<std::string> ids;
  KB_RETURN_IF_ERROR(ctx.store->List(kLocksPrefix, [&](const blob::ObjectInfo& info) {
    std::string_view id = std::string_view(info.key).substr(kLocksPrefix.size());
    if (IsRandomId(id)) ids.emplace_back(id);
    return Status::OK();
  }));
  std::vector<LockRecord> locks;
  for (const std::string& id : ids) {
    auto lock = ReadLock(ctx, id);
    if (lock.ok()) {
      locks.push_back(std::move(lock).value());
    } else if (lock.status().code() == Code::kNotFound) {
      continue;  // released meanwhile
    } else if (lock.status().code() == Code::kCorruption ||
               lock.status().code() == Code::kFailedPrecondition) {
      if (unreadable != nullptr) unreadable->push_back(lock.status().message());
    } else {
      return lock.status();
    }
  }
  return locks;
}

// --- LockKeeper ---

LockKeeper::LockKeeper(const RepoContext& ctx, LockRecord record, LockTiming timing)
    : ctx_(ctx), record_(std::move(record)), timing_(timing) {}

Result<std::unique_ptr<LockKeeper>> LockKeeper::Acquire(const RepoContext& ctx,
                                                        const std::string& kind,
                                                        LockTiming timing) {
  LockRecord r;
  r.id = NewRandomId();
  r.kind = kind;
  r.hostname = HostName();
  r.pid = getpid();
  r.created_ms = r.refreshed_ms = ctx.NowMs();
  KB_RETURN_IF_ERROR(WriteLock(ctx, r));
  std::unique_ptr<LockKeeper> keeper(new LockKeeper(ctx, std::move(r), timing));
  keeper->thread_ = std::thread([k = keeper.get()] { k->RefreshLoop(); });
  return keeper;
}

LockKeeper::~LockKeeper() {
  Status s = Release();
  if (!s.ok())
    LogWarn("backup: could not delete lock " + LockKey(record_.id) + ": " + s.ToString());
}

bool LockKeeper::TooOldLocked(int64_t now) const {
  // Another host may consider us stale at stale_after by its clock, which may run ahead of ours
  // by max_clock_skew: give up before that can happen.
  return now - record_.refreshed_ms > timing_.stale_after_ms - timing_.max_clock_skew_ms;
}

void LockKeeper::RefreshLoop() {
  MutexLock lock(mu_);
  while (!stop_ && !lost_) {
    cv_.WaitFor(mu_, std::chrono::milliseconds(timing_.refresh_ms));
    if (stop_) return;
    int64_t now = ctx_.NowMs();
    if (TooOldLocked(now)) {
      lost_ = true;
      lost_reason_ = "not refreshed in time";
      return;
    }
    LockRecord next = record_;
    next.refreshed_ms = now;
    lock.Unlock();
    // Never re-create a lock that prune removed: check it exists first.
    auto exists = ctx_.store->Stat(LockKey(next.id));
    Status s = exists.ok() ? WriteLock(ctx_, next) : exists.status();
    lock.Lock();
    if (exists.status().code() == Code::kNotFound) {
      lost_ = true;
      lost_reason_ = "removed by another process";
    } else if (s.ok()) {
      record_.refreshed_ms = next.refreshed_ms;
    } else {
      LogWarn("backup: lock refresh failed (will retry): " + s.ToString());
    }
  }
}

Status LockKeeper::CheckHeld() {
  std::string key = LockKey(record_.id);
  {
    MutexLock lock(mu_);
    if (!lost_ && TooOldLocked(ctx_.NowMs())) {
      lost_ = true;
      lost_reason_ = "not refreshed in time";
    }
  }
  auto stored = ReadLock(ctx_, record_.id);
  MutexLock lock(mu_);
  if (!lost_ && !stored.ok()) {
    if (stored.status().code() != Code::kNotFound) return stored.status();
    lost_ = true;
    lost_reason_ = "removed by another process";
  }
  if (lost_) {
    return Status::Unavailable("the " + record_.kind + " lock " + key + " was lost (" +
                               lost_reason_ + "); nothing was committed, run it again");
  }
  return Status::OK();
}

void LockKeeper::StopThread() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

Status LockKeeper::Release() {
  StopThread();
  if (released_) return Status::OK();
  released_ = true;
  return ctx_.store->Delete(LockKey(record_.id));
}

// --- prune plans ---

Result<PrunePlan> ReadPlan(const RepoContext& ctx, const std::string& plan_id) {
  std::string key = PlanKey(plan_id);
  KB_ASSIGN_OR_RETURN(json j, ctx.ReadSealedJson(key, PlanAad(plan_id), kPlanVersion));
  PrunePlan p;
  p.id = plan_id;
  KB_ASSIGN_OR_RETURN(p.created_ms, JsonTime(j, "created", key));
  KB_ASSIGN_OR_RETURN(p.packs, HexList(j, "packs", key));
  KB_ASSIGN_OR_RETURN(p.indexes, HexList(j, "indexes", key));
  return p;
}

Result<int64_t> WritePlan(const RepoContext& ctx, const PrunePlan& plan) {
  json j{{"version", kPlanVersion},
         {"created", FormatIso8601(plan.created_ms)},
         {"packs", plan.packs},
         {"indexes", plan.indexes}};
  return ctx.WriteSealedJson(PlanKey(plan.id), PlanAad(plan.id), j);
}

Result<std::vector<PrunePlan>> ReadAllPlans(const RepoContext& ctx) {
  std::vector<std::string> ids;
  KB_RETURN_IF_ERROR(ctx.store->List(kPrunePrefix, [&](const blob::ObjectInfo& info) {
    std::string_view id = std::string_view(info.key).substr(kPrunePrefix.size());
    if (IsRandomId(id)) ids.emplace_back(id);
    return Status::OK();
  }));
  std::vector<PrunePlan> plans;
  for (const std::string& id : ids) {
    auto plan = ReadPlan(ctx, id);
    if (plan.status().code() == Code::kNotFound) continue;  // swept meanwhile
    KB_RETURN_IF_ERROR(plan.status());
    plans.push_back(std::move(plan).value());
  }
  return plans;
}

std::unordered_set<std::string> PlannedPacks(const RepoContext& ctx) {
  std::unordered_set<std::string> planned;
  auto plans = ReadAllPlans(ctx);
  if (plans.ok()) {
    for (const PrunePlan& p : *plans) planned.insert(p.packs.begin(), p.packs.end());
  }
  return planned;
}

}  // namespace kb::repo
