// BackupService: the server's backups. It owns the repository connection, serialises backups
// (one at a time per server), runs the schedule (default hourly) with retention and prune after
// each scheduled backup, restores single projects into the running knowledge base, and keeps
// the figures /metrics and /api/v1/stats report.
//
// Repository: the configured URL, or — when none is configured — a local repository under the
// data directory (`<data>/backups/repository`, key file `<data>/backups/repository.key`),
// created on first use. That default protects against mistakes and logical damage, not against
// losing the disk: the service says so in the log at start and in StatusJson().
//
// The schedule follows the repository, not the process (issue 12): at start the service reads
// the newest full snapshot there and backs up at once when it is older than the interval (or
// there is none); otherwise the first run is due one interval after it. After every run, and
// every `refresh_ms` in between, it reads the repository again, so a snapshot made elsewhere
// (the CLI, another host backing up the same data) moves the next run to one interval after
// that snapshot. A failed run is retried after `retry_base_ms`, doubling, at most one interval.
// So restarts, however frequent, never postpone a backup, and a failure never waits a whole
// interval. The last-success and last-verified figures are the repository's (the newest full
// snapshot's start, the newest successful verification), not this process's.
//
// A repository that cannot be reached at start is not fatal: the first run is due at once and
// fails, is counted in failures, reported in StatusJson() and retried as above.
//
// Thread-safety: every method may be called from any thread; backups and restores are
// serialised by one mutex; Stop() joins the scheduler.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backup/copy_targets.h"
#include "backup/point_in_time.h"
#include "backup/restore.h"
#include "backup/source.h"
#include "common/thread_annotations.h"
#include "repo/repository.h"
#include "service/knowledge_base.h"

namespace kb::backup {

inline constexpr int64_t kDefaultBackupIntervalMs = 60LL * 60 * 1000;
inline constexpr int64_t kDefaultVerifyIntervalMs = 24LL * 60 * 60 * 1000;
inline constexpr int64_t kDefaultVerifyFullCycleMs = 28LL * 24 * 60 * 60 * 1000;

struct BackupServiceOptions {
  std::string repository_url;  // empty = the local default under the data directory
  repo::KeySource key;         // required when repository_url is set
  blob::BlobStoreOptions blob;
  int64_t interval_ms = kDefaultBackupIntervalMs;  // 0 = no scheduled backups
  repo::RetentionPolicy retention = repo::RetentionPolicy::Default();
  // SourceOptions::index_max_lag of every backup the service makes.
  double index_max_lag = kDefaultIndexMaxLag;
  // SourceOptions::source_check of every backup the service makes.
  SourceCheckLevel source_check = kDefaultSourceCheck;
  repo::PruneOptions prune;
  // First retry of a failed scheduled backup; each further one waits twice as long, at most
  // interval_ms.
  int64_t retry_base_ms = 60'000;
  // Scheduled verification (0 = none): every verify_interval_ms, the structure of every
  // snapshot and the data of one slice of the packs — slice (now / interval) mod n of
  // n = verify_full_cycle_ms / verify_interval_ms — so that n consecutive runs read every pack.
  // Due one interval after the newest verification recorded in the repository (at once when
  // there is none); serialised with backups and restores.
  int64_t verify_interval_ms = kDefaultVerifyIntervalMs;
  int64_t verify_full_cycle_ms = kDefaultVerifyFullCycleMs;
  // Between runs, how often the repository's newest snapshot is read again (for the figures and
  // for a backup made elsewhere); at most interval_ms.
  int64_t refresh_ms = 10LL * 60 * 1000;
  // Second repositories (backup_copy_to): after every backup made by this service the
  // snapshots each one lacks are copied into it, and this retention policy and prune applied
  // there (backup/copy_targets.h).
  std::vector<CopyTarget> copy_to;
  // Where scheduled backups, their retention and prune, and restores are recorded (actor
  // "system"); null = not recorded. Must outlive the service.
  AuditSink* audit = nullptr;
};

// Where a server's backups go: the configured repository, or — none configured — the local
// default inside the data directory (its generated key file beside it). Start() and
// `knowledgebeast doctor --data-dir` both ask this one function, so they cannot disagree about
// which repository a configuration means.
struct RepositoryTarget {
  std::string url;
  repo::KeySource key;
  bool local_default = false;
};
RepositoryTarget ResolveRepositoryTarget(const BackupServiceOptions& options,
                                         const std::string& data_dir);

// What a repository's snapshot list says about the schedule: the figures the service reports
// (last success, last verified) and the ones `doctor` judges.
struct RepositoryFacts {
  std::optional<int64_t> newest_full_ms;      // start of the newest readable full snapshot
  std::optional<int64_t> newest_verified_ms;  // newest successful verification recorded
  int64_t snapshots = 0;                      // readable manifests, every kind
  int64_t unreadable = 0;                     // listed but unreadable manifests
};
// Unreadable manifests count for nothing (they protect nothing); only full snapshots stand for
// a scheduled backup.
RepositoryFacts SummarizeSnapshots(const std::vector<repo::SnapshotSummary>& snapshots);

// Reads `target`'s snapshots without creating anything: a local default that no backup has
// created yet has no snapshots (not an error). Errors are the repository's (unreachable, wrong
// key, damaged config).
Result<RepositoryFacts> ReadRepositoryFacts(const RepositoryTarget& target,
                                            const blob::BlobStoreOptions& blob, const Clock* clock);

// Figures for /metrics (read without locks).
struct BackupCounters {
  // Start of the newest full snapshot in the repository (0: none known).
  std::atomic<int64_t> last_success_ms{0};
  std::atomic<int64_t> last_duration_us{0};
  std::atomic<int64_t> last_added_bytes{0};
  std::atomic<int64_t> failures{0};
  std::atomic<int64_t> successes{0};
  // The newest successful verification recorded in the repository (0: none known).
  std::atomic<int64_t> last_verified_ms{0};
  // When the next scheduled backup is due (0: no schedule), and failed runs in a row.
  std::atomic<int64_t> next_due_ms{0};
  std::atomic<int64_t> consecutive_failures{0};
  // Scheduled verifications that found a problem or could not run, and when the next is due.
  std::atomic<int64_t> verify_failures{0};
  std::atomic<int64_t> next_verify_ms{0};
  // Project states a backup copied although they failed its source check (source.h).
  std::atomic<int64_t> source_check_failures{0};
};

class BackupService {
 public:
  static Result<std::unique_ptr<BackupService>> Start(KnowledgeBase* kb,
                                                      const BackupServiceOptions& options);
  ~BackupService();
  void Stop() EXCLUDES(stop_mu_);

  // One backup now (`projects` empty = full). Unavailable if another one is running.
  Result<repo::SnapshotManifest> RunBackup(const std::string& trigger,
                                           const std::vector<std::string>& projects,
                                           const std::vector<std::string>& tags) EXCLUDES(run_mu_);
  Result<std::vector<repo::SnapshotSummary>> ListSnapshots();
  // Verifies snapshots (records the result in the repository and in the counters); a restore
  // test checks the restored databases with CheckRestoredDatabases (restore_check.h).
  Result<std::vector<repo::VerifyReport>> Verify(const std::vector<std::string>& ids,
                                                 const repo::VerifyOptions& options);
  Result<ProjectRestoreReport> RestoreProject(const std::string& project,
                                              const SnapshotSelector& selector, bool merge,
                                              const Actor& actor) EXCLUDES(run_mu_);

  // Restores one project to a point in time (backup/point_in_time.h), serialised with backups
  // and restores like RestoreProject, audited as project.restore.
  Result<PointInTimeReport> RestoreProjectToPoint(const std::string& project,
                                                  const PointInTimeTarget& target,
                                                  const Actor& actor) EXCLUDES(run_mu_);

  // {"repository", "off_site", "warning", "schedule_interval_seconds", "last_success",
  //  "last_verified", "next_scheduled_backup", "consecutive_failures", "last_error", "running",
  //  "backups_succeeded", "backups_failed", "copies" (CopyTargets::StatusJson)} for /api/v1/stats,
  //  `stats` and GET /api/v1/admin/backups.
  nlohmann::json StatusJson() const EXCLUDES(status_mu_);
  const BackupCounters& counters() const { return counters_; }
  // The copy destinations' figures (empty without backup_copy_to).
  std::vector<CopyTargetStatus> CopyFigures() const;
  bool off_site() const { return off_site_; }
  const std::string& repository_url() const { return url_; }
  bool local_default() const { return options_.repository_url.empty(); }
  const BackupServiceOptions& options() const { return options_; }
  // The repository's facts read now (and the counters refreshed from them); the local default
  // before its first backup has none, and is not created by asking.
  Result<RepositoryFacts> ReadFacts();

 private:
  BackupService(KnowledgeBase* kb, const BackupServiceOptions& options);
  // Opens (or, for the local default, creates) on first use. The repository, once set, stays
  // until the service is destroyed, so the pointer outlives repo_mu_.
  Result<repo::Repository*> Repo() EXCLUDES(repo_mu_);
  void SchedulerLoop() EXCLUDES(stop_mu_, run_mu_);
  void VerifyLoop() EXCLUDES(stop_mu_, run_mu_);
  // One scheduled verification (structure of every snapshot + slice `slice` of `slices`); it
  // runs beside backups and restores (reads only), never beside this service's prune.
  void ScheduledVerify(int slice, int slices) EXCLUDES(maintenance_mu_);
  // True for the local default repository before its first backup created it.
  bool LocalDefaultAbsent() const;
  // Reads the repository's snapshots and sets last_success_ms / last_verified_ms from them.
  // Returns the start of the newest full snapshot (nullopt: none).
  Result<std::optional<int64_t>> RefreshFromRepository();
  Result<RepositoryFacts> RefreshFacts();
  // RefreshFromRepository at start, done once for the threads that all need it (the backup
  // schedule, the verification schedule): the first caller reads the repository, later ones
  // get its answer — listing a repository reads every manifest.
  Result<std::optional<int64_t>> StartupRefresh() EXCLUDES(startup_mu_);
  // Sleeps until `until_ms` on the knowledge base's clock or Stop(); false when stopping.
  bool SleepUntil(int64_t until_ms) EXCLUDES(stop_mu_);
  void ApplyRetention() REQUIRES(run_mu_);
  void Audit(const std::string& action, const std::string& outcome, const std::string& project,
             const std::string& detail);

  KnowledgeBase* kb_;
  BackupServiceOptions options_;
  std::string url_;
  repo::KeySource key_;
  bool off_site_ = false;

  Mutex repo_mu_;
  std::unique_ptr<repo::Repository> repo_ GUARDED_BY(repo_mu_);
  Mutex run_mu_ ACQUIRED_BEFORE(repo_mu_);  // one backup / restore at a time
  // A prune (after a scheduled backup) and a scheduled verification never overlap.
  Mutex maintenance_mu_ ACQUIRED_AFTER(run_mu_) ACQUIRED_BEFORE(repo_mu_);
  std::atomic<bool> running_{false};

  mutable Mutex status_mu_;
  std::string last_error_ GUARDED_BY(status_mu_);

  BackupCounters counters_;
  std::unique_ptr<CopyTargets> copies_;  // null without backup_copy_to

  Mutex stop_mu_;
  CondVar stop_cv_;
  bool stopping_ GUARDED_BY(stop_mu_) = false;
  Mutex startup_mu_;
  std::optional<Result<std::optional<int64_t>>> startup_refresh_ GUARDED_BY(startup_mu_);
  std::thread scheduler_;
  std::thread verifier_;
};

}  // namespace kb::backup
