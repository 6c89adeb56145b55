// BackupService. See service.h.
#include "backup/service.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>

#include "backup/restore_check.h"
#include "backup/source.h"
#include "common/clock.h"
#include "common/crypto_util.h"
#include "common/data_layout.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/thread_annotations.h"
#include "repo/retention.h"

namespace kb::backup {

using json = nlohmann::json;

namespace {

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

// Marks a running flag for the lifetime of a scope.
class RunningFlag {
 public:
  explicit RunningFlag(std::atomic<bool>* flag) : flag_(flag) { flag_->store(true); }
  ~RunningFlag() { flag_->store(false); }

 private:
  std::atomic<bool>* flag_;
};

// Releases, at the end of its scope, a lock the caller took with TryLock(). (MutexLock always
// blocks; a REQUIRES constructor is how clang's analysis adopts a held lock into a scope.)
class SCOPED_CAPABILITY AdoptedLock {
 public:
  explicit AdoptedLock(Mutex& mu) REQUIRES(mu) : mu_(mu) {}
  ~AdoptedLock() RELEASE() { mu_.Unlock(); }
  AdoptedLock(const AdoptedLock&) = delete;
  AdoptedLock& operator=(const AdoptedLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace

RepositoryTarget ResolveRepositoryTarget(const BackupServiceOptions& options,
                                         const std::string& data_dir) {
  RepositoryTarget target;
  if (options.repository_url.empty()) {
    const std::string abs = AbsolutePath(data_dir);
    target.url = "file://" + layout::LocalRepositoryDir(abs);
    target.key.key_file = layout::LocalRepositoryKey(abs);
    target.local_default = true;
  } else {
    target.url = options.repository_url;
    target.key = options.key;
  }
  return target;
}

RepositoryFacts SummarizeSnapshots(const std::vector<repo::SnapshotSummary>& snapshots) {
  RepositoryFacts facts;
  for (const repo::SnapshotSummary& s : snapshots) {
    if (!s.problem.empty()) {  // an unreadable manifest protects nothing
      ++facts.unreadable;
      continue;
    }
    ++facts.snapshots;
    // Only a snapshot of the whole data directory stands for a scheduled backup.
    if (s.scope == "full") {
      if (auto t = repo::SnapshotTimeMillis(s);
          t && (!facts.newest_full_ms || *t > *facts.newest_full_ms)) {
        facts.newest_full_ms = t;
      }
    }
    if (auto v = ParseIso8601(s.verified);
        v && (!facts.newest_verified_ms || *v > *facts.newest_verified_ms)) {
      facts.newest_verified_ms = v;
    }
  }
  return facts;
}

Result<RepositoryFacts> ReadRepositoryFacts(const RepositoryTarget& target,
                                            const blob::BlobStoreOptions& blob,
                                            const Clock* clock) {
  const std::string kFile = "file://";
  if (target.local_default && !PathExists(target.url.substr(kFile.size()) + "/config")) {
    return RepositoryFacts{};
  }
  if (!target.local_default && target.key.empty()) {
    return Status::InvalidArgument(
        "backup_repository is set but no key is: set KB_BACKUP_PASSWORD or KB_BACKUP_KEY_FILE");
  }
  KB_ASSIGN_OR_RETURN(auto repo, repo::OpenRepository(target.url, target.key, blob, clock));
  KB_ASSIGN_OR_RETURN(std::vector<repo::SnapshotSummary> snapshots, repo->ListSnapshots());
  return SummarizeSnapshots(snapshots);
}

BackupService::BackupService(KnowledgeBase* kb, const BackupServiceOptions& options)
    : kb_(kb), options_(options) {
  if (!options_.copy_to.empty()) {
    copies_ = std::make_unique<CopyTargets>(
        options_.copy_to, options_.blob, kb_->clock(), options_.retention, options_.prune,
        [this](const std::string& action, const std::string& outcome, const std::string& detail) {
          Audit(action, outcome, "", detail);
        });
  }
}

std::vector<CopyTargetStatus> BackupService::CopyFigures() const {
  return copies_ ? copies_->Figures() : std::vector<CopyTargetStatus>{};
}

BackupService::~BackupService() { Stop(); }

Result<std::unique_ptr<BackupService>> BackupService::Start(KnowledgeBase* kb,
                                                            const BackupServiceOptions& options) {
  std::unique_ptr<BackupService> svc(new BackupService(kb, options));
  RepositoryTarget target = ResolveRepositoryTarget(options, kb->options().data_dir);
  if (!target.local_default && options.key.empty()) {
    return Status::InvalidArgument(
        "backup_repository is set but no key is: set KB_BACKUP_PASSWORD or KB_BACKUP_KEY_FILE");
  }
  svc->url_ = target.url;
  svc->key_ = target.key;
  svc->off_site_ = !target.local_default && svc->url_.rfind("s3://", 0) == 0;
  if (target.local_default) {
    LogWarn(
        "no backup repository configured: backups go to a local repository in the data "
        "directory, which does NOT protect against losing this disk or machine; configure "
        "backup_repository (an s3:// URL or another disk) for off-site backups",
        json{{"repository", svc->url_}}.dump());
  }
  if (options.verify_interval_ms > 0) {
    svc->verifier_ = std::thread([raw = svc.get()] { raw->VerifyLoop(); });
  }
  if (options.interval_ms > 0) {
    svc->scheduler_ = std::thread([raw = svc.get()] { raw->SchedulerLoop(); });
  } else {
    // No schedule: still report the repository's last success and verification from the start
    // (the local default is not created just to be read).
    if (!svc->LocalDefaultAbsent()) {
      svc->scheduler_ = std::thread([raw = svc.get()] {
        if (auto newest = raw->StartupRefresh(); !newest.ok()) {
          LogWarn("cannot read the backup repository",
                  json{{"error", newest.status().ToString()}}.dump());
        }
      });
    }
  }
  return svc;
}

void BackupService::Stop() {
  {
    MutexLock lock(stop_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.SignalAll();
  if (scheduler_.joinable()) scheduler_.join();
  if (verifier_.joinable()) verifier_.join();
}

Result<repo::Repository*> BackupService::Repo() {
  MutexLock lock(repo_mu_);
  if (repo_) return repo_.get();
  if (options_.repository_url.empty()) {
    // The local default: create the key and the repository on first use.
    const std::string key_file = *key_.key_file;
    if (!PathExists(key_file)) {
      KB_RETURN_IF_ERROR(MakeDirs(std::filesystem::path(key_file).parent_path().string()));
      KB_RETURN_IF_ERROR(AtomicWriteFile(key_file, HexEncode(RandomBytes(32)) + "\n"));
    }
    const std::string dir = url_.substr(std::string("file://").size());
    if (!PathExists(dir + "/config")) {
      KB_ASSIGN_OR_RETURN(auto store, blob::OpenBlobStore(url_, options_.blob, /*create=*/true));
      KB_ASSIGN_OR_RETURN(repo_, repo::Repository::Init(std::move(store), key_, "local default",
                                                        repo::RepositoryParams{}, kb_->clock()));
      return repo_.get();
    }
  }
  KB_ASSIGN_OR_RETURN(repo_, repo::OpenRepository(url_, key_, options_.blob, kb_->clock()));
  return repo_.get();
}

Result<repo::SnapshotManifest> BackupService::RunBackup(const std::string& trigger,
                                                        const std::vector<std::string>& projects,
                                                        const std::vector<std::string>& tags) {
  if (!run_mu_.TryLock()) {
    return Status::Unavailable("a backup or restore is already running; try again later");
  }
  AdoptedLock lock(run_mu_);
  RunningFlag running(&running_);
  const int64_t started = MonotonicMicros();
  auto result = [&]() -> Result<repo::SnapshotManifest> {
    KB_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
    SourceOptions so;
    so.projects = projects;
    so.index_max_lag = options_.index_max_lag;
    so.source_check = options_.source_check;
    repo::BackupOptions bo;
    bo.trigger = trigger;
    bo.tags = tags;
    return BackupDataDirectory(*repo, kb_->options().data_dir, so, bo);
  }();
  if (!result.ok()) {
    counters_.failures++;
    {
      MutexLock slock(status_mu_);
      last_error_ = FormatIso8601(kb_->clock()->NowMillis()) + ": " + result.status().ToString();
    }
    LogError("backup failed",
             json{{"trigger", trigger}, {"error", result.status().ToString()}}.dump());
    return result;
  }
  counters_.successes++;
  if (result->scope == "full") {
    const int64_t started_at = ParseIso8601(result->time).value_or(kb_->clock()->NowMillis());
    if (started_at > counters_.last_success_ms.load()) counters_.last_success_ms = started_at;
  }
  counters_.last_duration_us = MonotonicMicros() - started;
  counters_.last_added_bytes = result->stats.added_stored_bytes;
  // A damaged source is stored (it may be all there is) but never quietly: counted, logged,
  // audited, and said in the result.
  if (std::vector<std::string> failed = SourceCheckFailures(*result); !failed.empty()) {
    counters_.source_check_failures += static_cast<int64_t>(failed.size());
    LogError("backup stored project states that failed the source check",
             json{{"snapshot", result->id}, {"projects", failed}}.dump());
    std::string detail = "snapshot " + result->id + ":";
    for (const std::string& f : failed) detail += " " + f + ".";
    Audit("backup.source_check", "failed", "", detail);
  }
  {
    MutexLock slock(status_mu_);
    last_error_.clear();
  }
  LogInfo("backup finished", json{{"snapshot", result->id},
                                  {"trigger", trigger},
                                  {"bytes", result->stats.bytes},
                                  {"added_stored_bytes", result->stats.added_stored_bytes},
                                  {"duration_ms", result->stats.duration_ms}}
                                 .dump());
  // Still under run_mu_: the copies read the snapshot just made, one round at a time.
  if (copies_) {
    if (auto repo = Repo(); repo.ok()) copies_->CopyNew(**repo);
  }
  return result;
}

Result<std::vector<repo::SnapshotSummary>> BackupService::ListSnapshots() {
  KB_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  return repo->ListSnapshots();
}

Result<std::vector<repo::VerifyReport>> BackupService::Verify(const std::vector<std::string>& ids,
                                                              const repo::VerifyOptions& options) {
  KB_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  KB_ASSIGN_OR_RETURN(auto reports, repo->Verify(ids, WithRestoredCheck(options)));
  bool all_ok = !reports.empty();
  for (const repo::VerifyReport& r : reports) all_ok = all_ok && r.ok;
  if (all_ok) counters_.last_verified_ms = kb_->clock()->NowMillis();
  return reports;
}

Result<PointInTimeReport> BackupService::RestoreProjectToPoint(const std::string& project,
                                                               const PointInTimeTarget& target,
                                                               const Actor& actor) {
  if (!run_mu_.TryLock()) {
    return Status::Unavailable("a backup or restore is already running; try again later");
  }
  AdoptedLock lock(run_mu_);
  RunningFlag running(&running_);
  KB_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  ProjectRestoreOptions po;
  po.actor = actor;
  po.index_max_lag = options_.index_max_lag;
  Result<PointInTimeReport> report =
      backup::RestoreProjectToPoint(*repo, project, target, *kb_, po);
  const std::string who =
      "requested by " + (actor.id.empty() ? "?" : actor.id) + "; at " +
      (target.at_ms ? FormatIso8601(*target.at_ms) : "LSN " + std::to_string(*target.lsn));
  if (report.ok()) {
    Audit("project.restore", "ok", report->project_id,
          who + "; snapshot " + report->snapshot_id + " + " +
              std::to_string(report->entries_replayed) + " journal entries, LSN " +
              std::to_string(report->lsn));
  } else {
    Audit("project.restore", "failed", project, who + "; " + report.status().ToString());
  }
  return report;
}

Result<ProjectRestoreReport> BackupService::RestoreProject(const std::string& project,
                                                           const SnapshotSelector& selector,
                                                           bool merge, const Actor& actor) {
  if (!run_mu_.TryLock()) {
    return Status::Unavailable("a backup or restore is already running; try again later");
  }
  AdoptedLock lock(run_mu_);
  RunningFlag running(&running_);
  KB_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  SnapshotSelector sel = selector;
  sel.projects = {project};
  ProjectRestoreOptions po;
  po.merge = merge;
  po.actor = actor;
  po.index_max_lag = options_.index_max_lag;
  Selection chosen;
  Result<ProjectRestoreReport> report = RestoreProjectFrom(*repo, sel, project, *kb_, po, &chosen);
  if (!report.ok() && chosen.manifest.id.empty()) return report;  // nothing chosen: not a restore
  std::string who = "requested by " + (actor.id.empty() ? "?" : actor.id) + "; snapshot " +
                    chosen.manifest.id + "; " + (merge ? "merge" : "replace");
  for (const SkippedSnapshot& s : chosen.skipped) {
    who += "; skipped " + s.id + " (" + s.reason + ")";
  }
  if (report.ok()) {
    Audit("project.restore", "ok", report->project_id,
          who + "; " + std::to_string(report->documents) + " documents, " +
              std::to_string(report->restored_documents.size()) + " merged");
  } else {
    Audit("project.restore", "failed", project, who + "; " + report.status().ToString());
  }
  return report;
}

void BackupService::Audit(const std::string& action, const std::string& outcome,
                          const std::string& project, const std::string& detail) {
  if (!options_.audit) return;
  options_.audit->Record(SystemAuditEvent("backup.service", action, project, outcome, detail));
}

json BackupService::StatusJson() const {
  json j = {{"repository", url_},
            {"off_site", off_site_},
            {"schedule_interval_seconds", options_.interval_ms / 1000},
            {"running", running_.load()},
            {"backups_succeeded", counters_.successes.load()},
            {"backups_failed", counters_.failures.load()}};
  const int64_t last = counters_.last_success_ms.load();
  j["last_success"] = last ? json(FormatIso8601(last)) : json(nullptr);
  const int64_t verified = counters_.last_verified_ms.load();
  j["last_verified"] = verified ? json(FormatIso8601(verified)) : json(nullptr);
  const int64_t due = counters_.next_due_ms.load();
  j["next_scheduled_backup"] = due ? json(FormatIso8601(due)) : json(nullptr);
  j["consecutive_failures"] = counters_.consecutive_failures.load();
  const int64_t verify_due = counters_.next_verify_ms.load();
  j["next_scheduled_verify"] = verify_due ? json(FormatIso8601(verify_due)) : json(nullptr);
  j["scheduled_verify_failures"] = counters_.verify_failures.load();
  if (copies_) j["copies"] = copies_->StatusJson();
  {
    MutexLock lock(status_mu_);
    j["last_error"] = last_error_.empty() ? json(nullptr) : json(last_error_);
  }
  if (!off_site_) {
    j["warning"] = options_.repository_url.empty()
                       ? "backups are kept in a local repository inside the data directory: they "
                         "do not survive the loss of this disk; configure an off-site "
                         "backup_repository"
                       : "the backup repository is not off-site object storage";
  }
  return j;
}

void BackupService::ApplyRetention() {
  if (options_.retention.empty()) return;
  MutexLock maintenance(maintenance_mu_);
  auto repo = Repo();
  if (!repo.ok()) return;
  auto snapshots = (*repo)->ListSnapshots();
  if (!snapshots.ok()) return;
  int forgotten = 0;
  for (const repo::RetentionDecision& d :
       repo::ApplyRetention(*snapshots, options_.retention, kb_->clock()->NowMillis())) {
    if (d.keep) continue;
    Status s = (*repo)->ForgetSnapshot(d.snapshot_id);
    if (s.ok())
      ++forgotten;
    else
      LogWarn("forgetting a snapshot failed",
              json{{"snapshot", d.snapshot_id}, {"error", s.ToString()}}.dump());
  }
  auto pruned = (*repo)->Prune(options_.prune);
  Audit("backup.retention", pruned.ok() ? "ok" : "failed", "",
        "forgot " + std::to_string(forgotten) + " snapshots; prune " +
            (pruned.ok() ? "deleted " + std::to_string(pruned->packs_deleted) + " packs"
                         : "failed: " + pruned.status().ToString()));
  LogInfo("retention applied", json{{"forgotten", forgotten},
                                    {"packs_deleted", pruned.ok() ? pruned->packs_deleted : 0},
                                    {"prune_error", pruned.ok() ? "" : pruned.status().ToString()}}
                                   .dump());
}

bool BackupService::LocalDefaultAbsent() const {
  return options_.repository_url.empty() &&
         !PathExists(url_.substr(std::string("file://").size()) + "/config");
}

Result<RepositoryFacts> BackupService::RefreshFacts() {
  KB_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  KB_ASSIGN_OR_RETURN(std::vector<repo::SnapshotSummary> snapshots, repo->ListSnapshots());
  RepositoryFacts facts = SummarizeSnapshots(snapshots);
  counters_.last_success_ms = facts.newest_full_ms.value_or(0);
  counters_.last_verified_ms = facts.newest_verified_ms.value_or(0);
  if (copies_) copies_->Refresh(snapshots);
  return facts;
}

Result<std::optional<int64_t>> BackupService::RefreshFromRepository() {
  KB_ASSIGN_OR_RETURN(RepositoryFacts facts, RefreshFacts());
  return facts.newest_full_ms;
}

Result<RepositoryFacts> BackupService::ReadFacts() {
  if (LocalDefaultAbsent()) return RepositoryFacts{};
  return RefreshFacts();
}

Result<std::optional<int64_t>> BackupService::StartupRefresh() {
  MutexLock lock(startup_mu_);
  if (!startup_refresh_) startup_refresh_ = RefreshFromRepository();
  return *startup_refresh_;
}

bool BackupService::SleepUntil(int64_t until_ms) {
  MutexLock lock(stop_mu_);
  while (!stopping_) {
    const int64_t left = until_ms - kb_->clock()->NowMillis();
    if (left <= 0) return true;
    stop_cv_.WaitUntil(stop_mu_,
                       std::chrono::steady_clock::now() + std::chrono::milliseconds(left));
  }
  return false;
}

void BackupService::SchedulerLoop() {
  const int64_t interval = options_.interval_ms;
  const int64_t refresh = std::clamp<int64_t>(options_.refresh_ms, 1, interval);
  const Clock* clock = kb_->clock();
  // One interval after the newest full snapshot; now if there is none; never further away than
  // one interval (a snapshot stamped in the future by a host with a wrong clock).
  auto due_after = [&](std::optional<int64_t> newest) {
    const int64_t now = clock->NowMillis();
    if (!newest) return now;
    return std::clamp(*newest + interval, now, now + interval);
  };
  int64_t due = clock->NowMillis();
  if (auto newest = StartupRefresh(); newest.ok()) {
    due = due_after(*newest);
  } else {
    LogWarn("cannot read the backup repository at start; backing up now",
            json{{"error", newest.status().ToString()}}.dump());
  }
  int64_t failures = 0;
  while (true) {
    counters_.next_due_ms = due;
    if (clock->NowMillis() < due) {
      if (!SleepUntil(std::min(due, clock->NowMillis() + refresh))) return;
      if (clock->NowMillis() >= due) continue;
      // A backup made elsewhere moves the next one; while retrying, only later.
      if (auto newest = RefreshFromRepository(); newest.ok()) {
        due = failures > 0 ? std::max(due, due_after(*newest)) : due_after(*newest);
      }
      continue;
    }
    {
      MutexLock lock(stop_mu_);
      if (stopping_) return;
    }
    auto result = RunBackup("schedule", {}, {});
    Audit("backup.create", result.ok() ? "ok" : "failed", "",
          result.ok() ? "scheduled backup: snapshot " + result->id
                      : "scheduled backup failed: " + result.status().ToString());
    if (result.ok()) {
      failures = 0;
      {
        MutexLock run(run_mu_);
        ApplyRetention();
      }
      auto newest = RefreshFromRepository();
      due = newest.ok() && newest->has_value() ? due_after(*newest) : clock->NowMillis() + interval;
    } else {
      ++failures;
      // retry_base_ms, doubling, at most one interval (no shift past 2^40).
      int64_t backoff = std::max<int64_t>(options_.retry_base_ms, 1);
      for (int64_t i = 1; i < failures && backoff < interval && i < 40; ++i) backoff *= 2;
      due = clock->NowMillis() + std::min(backoff, interval);
      LogWarn("scheduled backup failed; retrying", json{{"consecutive_failures", failures},
                                                        {"retry_in_ms", due - clock->NowMillis()},
                                                        {"error", result.status().ToString()}}
                                                       .dump());
    }
    counters_.consecutive_failures = failures;
  }
}

void BackupService::ScheduledVerify(int slice, int slices) {
  repo::VerifyOptions vo;
  vo.data = repo::VerifyOptions::Data::kSubset;
  vo.subset_slices = slices;
  vo.subset_slice = slice;
  const int64_t started = MonotonicMicros();
  Result<std::vector<repo::VerifyReport>> reports = [&]() {
    // Never beside this service's prune, which deletes packs; backups and restores go on.
    MutexLock maintenance(maintenance_mu_);
    return Verify({}, vo);
  }();
  const std::string what = "structure of every snapshot, data of pack slice " +
                           std::to_string(slice + 1) + "/" + std::to_string(slices);
  if (!reports.ok()) {
    counters_.verify_failures++;
    Audit("backup.verify", "failed", "",
          "scheduled verification could not run (" + what + "): " + reports.status().ToString());
    LogError("scheduled verification could not run",
             json{{"error", reports.status().ToString()}}.dump());
    return;
  }
  int64_t bytes = 0;
  std::vector<std::string> problems;
  for (const repo::VerifyReport& r : *reports) {
    bytes += r.bytes_read;
    for (const std::string& p : r.problems) problems.push_back(r.snapshot_id + ": " + p);
  }
  const std::string detail = std::to_string(reports->size()) + " snapshots, " + what + ", " +
                             std::to_string(bytes) + " bytes read, " +
                             std::to_string(problems.size()) + " problems" +
                             (problems.empty() ? "" : "; first: " + problems.front());
  if (!problems.empty()) counters_.verify_failures++;
  Audit("backup.verify", problems.empty() ? "ok" : "failed", "", "scheduled: " + detail);
  Log(problems.empty() ? LogLevel::kInfo : LogLevel::kError,
      problems.empty() ? "scheduled verification passed" : "scheduled verification found problems",
      json{{"snapshots", reports->size()},
           {"slice", std::to_string(slice + 1) + "/" + std::to_string(slices)},
           {"bytes_read", bytes},
           {"duration_ms", (MonotonicMicros() - started) / 1000},
           {"problems", problems}}
          .dump());
}

void BackupService::VerifyLoop() {
  const int64_t interval = options_.verify_interval_ms;
  const int slices =
      static_cast<int>(std::clamp<int64_t>(options_.verify_full_cycle_ms / interval, 1, 10'000));
  const Clock* clock = kb_->clock();
  // Due one interval after the newest verification the repository records (StartupRefresh: the
  // one read at start, shared with the backup schedule); at once when there is none.
  int64_t due = clock->NowMillis();
  if (!LocalDefaultAbsent() && StartupRefresh().ok() && counters_.last_verified_ms.load() > 0) {
    due = std::clamp(counters_.last_verified_ms.load() + interval, due, due + interval);
  }
  while (true) {
    counters_.next_verify_ms = due;
    if (!SleepUntil(due)) return;
    const int64_t now = clock->NowMillis();
    if (now < due) continue;
    if (LocalDefaultAbsent()) {  // nothing backed up yet: nothing to verify, nothing created
      due = now + interval;
      continue;
    }
    ScheduledVerify(static_cast<int>((now / interval) % slices), slices);
    due = clock->NowMillis() + interval;
  }
}

}  // namespace kb::backup
