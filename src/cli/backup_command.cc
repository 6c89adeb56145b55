// Backup commands: `repo init | check | copy | key add|list|remove`, `backup [list|verify|forget]`,
// `prune` and `restore`. They talk to the repository directly (its URL and key come from flags,
// the config file or KB_* / AWS_* variables) and, for `backup` and `restore`, to the data
// directory. Backups are safe while a server runs on the data directory (each database is
// copied at one committed state); a whole restore is not (stop the server first), a
// single-project restore into a running server goes through its API.
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/json_encoding.h"
#include "audit/audit_log.h"
#include "backup/copy_targets.h"
#include "backup/point_in_time.h"
#include "backup/restore.h"
#include "backup/restore_check.h"
#include "backup/source.h"
#include "cli/backup_settings.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"
#include "common/data_layout.h"
#include "common/dir_lock.h"
#include "common/file_util.h"
#include "repo/repository.h"
#include "repo/retention.h"
#include "repo/segments.h"
#include "service/knowledge_base.h"

namespace kb::cli {
namespace {

using Json = nlohmann::json;

struct RepoOptions {
  CommonOptions common;
  std::string label;
  std::string new_key_file;
  std::string key_id;
  bool read_data = false;
  std::string read_data_subset;
  bool restore_test = false;
  std::vector<std::string> ids;
  std::vector<std::string> projects;
  std::vector<std::string> tags;
  // forget
  int keep_last = 0, keep_hourly = 0, keep_daily = 0, keep_weekly = 0, keep_monthly = 0;
  std::string keep_within;
  bool dry_run = false;
  bool prune = false;
  std::string grace;
  std::string clock_skew;
  // restore
  std::string snapshot;
  bool latest = false;
  bool latest_valid = false;
  bool security_state_from_snapshot = false;
  std::string before;
  bool merge = false;
  std::string at;       // restore to a point in time (RFC 3339 or "now")
  int64_t at_lsn = -1;  // or to an LSN
  // repo copy
  std::string to;
  std::string to_key_file;
  int latest_n = 0;
  bool no_verify = false;
};

void AddRepoOptions(CLI::App* app, RepoOptions* o) {
  AddConfigOptions(app, &o->common);
  AddJsonFlag(app, &o->common);
  AddOptionalString(app, "--repo", &o->common.flags.backup_repository,
                    "repository URL: file:///path or s3://bucket/prefix ($KB_BACKUP_REPOSITORY)");
  AddOptionalString(app, "--key-file", &o->common.flags.backup_key_file,
                    "repository key file ($KB_BACKUP_KEY_FILE); else the passphrase in "
                    "$KB_BACKUP_PASSWORD");
}

// Loads the config and checks that a repository URL and a key are given.
std::optional<Config> LoadRepoConfig(const RepoOptions& o, int* exit_code) {
  std::optional<Config> config = LoadCommandConfig(o.common, false, exit_code);
  if (!config) return std::nullopt;
  if (config->backup_repository.empty()) {
    *exit_code = ReportError("no repository: give --repo URL or set KB_BACKUP_REPOSITORY",
                             /*usage=*/true);
    return std::nullopt;
  }
  if (KeyFromConfig(*config).empty()) {
    *exit_code = ReportError(
        "no repository key: set KB_BACKUP_PASSWORD, or give --key-file / KB_BACKUP_KEY_FILE",
        /*usage=*/true);
    return std::nullopt;
  }
  return config;
}

std::unique_ptr<repo::Repository> OpenRepo(const RepoOptions& o, int* exit_code,
                                           Config* out_config = nullptr) {
  std::optional<Config> config = LoadRepoConfig(o, exit_code);
  if (!config) return nullptr;
  auto repo = repo::OpenRepository(config->backup_repository, KeyFromConfig(*config),
                                   BlobOptionsFromConfig(*config));
  if (!repo.ok()) {
    *exit_code = ReportError(repo.status());
    return nullptr;
  }
  if (out_config) *out_config = *config;
  return std::move(repo).value();
}

// --- repo ------------------------------------------------------------------------------------

// The snapshots `repo copy` considers: those named, else the newest `latest` (0: all), oldest
// first; which of them the destination already holds is CopySnapshot's business (a no-op).
Result<std::vector<std::string>> CopySelection(repo::Repository& from, const RepoOptions& o) {
  if (!o.ids.empty()) return o.ids;
  KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, from.ListSnapshotIds());
  if (o.latest_n > 0 && ids.size() > static_cast<size_t>(o.latest_n)) {
    ids.erase(ids.begin(), ids.end() - o.latest_n);
  }
  return ids;
}

int RunRepoCopy(const RepoOptions& o) {
  if (o.to.empty()) return ReportError("repo copy: give --to URL", /*usage=*/true);
  if (!o.ids.empty() && o.latest_n > 0) {
    return ReportError("repo copy: give --snapshot or --latest, not both", /*usage=*/true);
  }
  if (o.latest_n < 0) return ReportError("repo copy: --latest must be at least 1", true);
  repo::KeySource to_key = DestinationKey(o.to_key_file);
  if (to_key.empty()) {
    return ReportError(
        "no key for the destination: set KB_BACKUP_TO_PASSWORD, or give --to-key-file / "
        "KB_BACKUP_TO_KEY_FILE",
        /*usage=*/true);
  }
  int exit_code = kExitOk;
  Config config;
  auto from = OpenRepo(o, &exit_code, &config);
  if (!from) return exit_code;
  auto to = repo::OpenRepository(o.to, to_key, BlobOptionsFromConfig(config));
  if (!to.ok()) return ReportError(to.status().WithContext("destination " + o.to));
  auto ids = CopySelection(*from, o);
  if (!ids.ok()) return ReportError(ids.status());
  repo::CopyOptions co;
  co.verify = !o.no_verify;
  Json rows = Json::array();
  int failed = 0;
  for (const std::string& id : *ids) {
    auto r = repo::CopySnapshot(*from, **to, id, co);
    Json row{{"snapshot", id}};
    if (!r.ok()) {
      failed++;
      row["error"] = r.status().ToString();
      if (!o.common.json) std::cerr << "FAILED   " << id << ": " << r.status().ToString() << "\n";
    } else {
      row["copied"] = r->copied;
      row["verified"] = r->verified;
      row["added_stored_bytes"] = r->stats.added_stored_bytes;
      if (!o.common.json) {
        if (r->copied) {
          std::cout << "copied   " << id << "  +"
                    << HumanBytes(static_cast<double>(r->stats.added_stored_bytes))
                    << (r->verified ? "  verified" : "  not verified") << "\n";
        } else {
          std::cout << "present  " << id << "  (already in the destination)\n";
        }
      }
    }
    rows.push_back(std::move(row));
  }
  if (o.common.json) {
    PrintJson({{"from", from->id()}, {"to", (*to)->id()}, {"snapshots", rows}, {"failed", failed}});
  } else {
    std::cout << ids->size() - static_cast<size_t>(failed) << " of " << ids->size()
              << " snapshots are in repository " << (*to)->id() << "\n";
  }
  return failed == 0 ? kExitOk : kExitFailure;
}

int RunRepoInit(const RepoOptions& o) {
  int exit_code = kExitOk;
  std::optional<Config> config = LoadRepoConfig(o, &exit_code);
  if (!config) return exit_code;
  auto store = blob::OpenBlobStore(config->backup_repository, BlobOptionsFromConfig(*config),
                                   /*create=*/true);
  if (!store.ok()) return ReportError(store.status());
  auto repo =
      repo::Repository::Init(std::move(store).value(), KeyFromConfig(*config),
                             o.label.empty() ? "initial key" : o.label, repo::RepositoryParams{});
  if (!repo.ok()) return ReportError(repo.status());
  if (o.common.json) {
    PrintJson({{"repository", (*repo)->Describe()}, {"id", (*repo)->id()}});
  } else {
    std::cout << "Created repository " << (*repo)->id() << " at " << (*repo)->Describe()
              << "\nKeep the key safe: without it the backups cannot be read.\n";
  }
  return kExitOk;
}

int RunRepoCheck(const RepoOptions& o) {
  int exit_code = kExitOk;
  auto repo = OpenRepo(o, &exit_code);
  if (!repo) return exit_code;
  auto report = repo->Check(o.read_data);
  if (!report.ok()) return ReportError(report.status());
  if (o.common.json) {
    PrintJson({{"ok", report->ok},
               {"problems", report->problems},
               {"snapshots", report->snapshots},
               {"packs", report->packs},
               {"indexes", report->indexes},
               {"keys", report->keys},
               {"locks", report->locks},
               {"unreferenced_packs", report->unreferenced_packs}});
  } else {
    for (const std::string& p : report->problems) std::cout << "DAMAGED  " << p << "\n";
    std::cout << (report->ok ? "repository OK" : "repository DAMAGED") << ": " << report->snapshots
              << " snapshots, " << report->packs << " packs, " << report->indexes
              << " index objects, " << report->keys << " keys, " << report->unreferenced_packs
              << " unreferenced packs\n";
  }
  return report->ok ? kExitOk : kExitFailure;
}

int RunKeyAdd(const RepoOptions& o) {
  int exit_code = kExitOk;
  auto repo = OpenRepo(o, &exit_code);
  if (!repo) return exit_code;
  repo::KeySource new_key;
  if (!o.new_key_file.empty()) {
    new_key.key_file = o.new_key_file;
  } else if (const char* p = std::getenv("KB_BACKUP_NEW_PASSWORD"); p && *p) {
    new_key.passphrase = std::string(p);
  } else {
    return ReportError("the new key: give --new-key-file or set KB_BACKUP_NEW_PASSWORD",
                       /*usage=*/true);
  }
  auto info = repo->AddKey(new_key, o.label.empty() ? "added key" : o.label);
  if (!info.ok()) return ReportError(info.status());
  if (o.common.json)
    PrintJson({{"id", info->id}, {"label", info->label}, {"kdf", info->kdf}});
  else
    std::cout << "Added key " << info->id << " (" << info->kdf << ")\n";
  return kExitOk;
}

int RunKeyList(const RepoOptions& o) {
  int exit_code = kExitOk;
  auto repo = OpenRepo(o, &exit_code);
  if (!repo) return exit_code;
  auto keys = repo->ListKeys();
  if (!keys.ok()) return ReportError(keys.status());
  if (o.common.json) {
    Json list = Json::array();
    for (const auto& k : *keys) {
      list.push_back({{"id", k.id},
                      {"label", k.label},
                      {"kdf", k.kdf},
                      {"created", k.created},
                      {"in_use", k.in_use}});
    }
    PrintJson({{"keys", list}});
    return kExitOk;
  }
  for (const auto& k : *keys) {
    std::cout << (k.in_use ? "* " : "  ") << k.id << "  " << k.kdf << "  " << k.created << "  "
              << k.label << "\n";
  }
  return kExitOk;
}

int RunKeyRemove(const RepoOptions& o) {
  int exit_code = kExitOk;
  auto repo = OpenRepo(o, &exit_code);
  if (!repo) return exit_code;
  Status s = repo->RemoveKey(o.key_id);
  if (!s.ok()) return ReportError(s);
  if (o.common.json)
    PrintJson({{"removed", o.key_id}});
  else
    std::cout << "Removed key " << o.key_id << "\n";
  return kExitOk;
}

// --- backup ----------------------------------------------------------------------------------

int RunBackup(const RepoOptions& o) {
  int exit_code = kExitOk;
  Config config;
  auto repo = OpenRepo(o, &exit_code, &config);
  if (!repo) return exit_code;
  backup::SourceOptions so;
  so.projects = o.projects;
  auto lag = ParseIndexMaxLag(config.backup_index_max_lag);
  if (!lag.ok()) return ReportError(lag.status());
  so.index_max_lag = *lag;
  auto check = backup::ParseSourceCheckLevel(config.backup_source_check);
  if (!check.ok()) return ReportError(check.status());
  so.source_check = *check;
  repo::BackupOptions bo;
  bo.trigger = "manual";
  bo.tags = o.tags;
  auto m = backup::BackupDataDirectory(*repo, config.data_dir, so, bo);
  if (!m.ok()) return ReportError(m.status());
  // A source that failed its check is stored (it may be all there is) and marked; the backup
  // says so and exits 1, because the data being protected is damaged.
  const std::vector<std::string> failed = backup::SourceCheckFailures(*m);
  int64_t check_ms = 0;
  for (const repo::ProjectSnapshot& p : m->projects) check_ms += p.source_check.duration_ms;
  // Whether the snapshot holds the audit log (full snapshots of a directory that has one).
  const bool has_audit_log =
      std::any_of(m->catalog_files.begin(), m->catalog_files.end(),
                  [](const repo::SnapshotFile& f) { return f.path == layout::kAuditDbName; });
  if (o.common.json) {
    PrintJson({{"snapshot", m->id},
               {"time", m->time},
               {"scope", m->scope},
               {"audit_log", has_audit_log},
               {"projects", m->projects.size()},
               {"bytes", m->stats.bytes},
               {"new_chunks", m->stats.new_chunks},
               {"added_bytes", m->stats.added_stored_bytes},
               {"duration_ms", m->stats.duration_ms},
               {"source_check_ms", check_ms},
               {"source_check_failures", failed}});
  } else {
    std::cout << "snapshot " << m->id << " saved: " << m->projects.size() << " project(s), "
              << HumanBytes(static_cast<double>(m->stats.bytes)) << " of data, "
              << HumanBytes(static_cast<double>(m->stats.added_stored_bytes)) << " added, in "
              << m->stats.duration_ms << " ms" << (has_audit_log ? "; audit log included" : "")
              << "\n";
  }
  if (!failed.empty()) {
    std::cerr << "error: the live data failed the backup's source check; snapshot " << m->id
              << " stores it marked as damaged (restore --latest-valid passes it by):\n";
    for (const std::string& f : failed) std::cerr << "  " << f << "\n";
    std::cerr << "check the live data: knowledgebeast check --data-dir " << config.data_dir << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

// The backup_copy_to repositories as `backup list` shows them: each one's snapshot count and
// lag behind `primary` (backup::CopyLagSeconds), or the error that kept it from being read.
Json CopyRepositories(const Config& config, const std::vector<repo::SnapshotSummary>& primary) {
  Json out = Json::array();
  auto targets = CopyTargetsFromConfig(config);
  if (!targets.ok()) return Json::array({Json{{"error", targets.status().ToString()}}});
  for (const backup::CopyTarget& t : *targets) {
    Json row{{"repository", t.url}};
    auto r = repo::OpenRepository(t.url, t.key, BlobOptionsFromConfig(config));
    auto list =
        r.ok() ? (*r)->ListSnapshots() : Result<std::vector<repo::SnapshotSummary>>(r.status());
    if (!list.ok()) {
      row["error"] = list.status().ToString();
    } else {
      row["id"] = (*r)->id();
      row["snapshots"] = list->size();
      row["lag_seconds"] =
          backup::CopyLagSeconds(primary, *list, SystemClock::Default()->NowMillis());
    }
    out.push_back(std::move(row));
  }
  return out;
}

int RunBackupList(const RepoOptions& o) {
  int exit_code = kExitOk;
  Config config;
  auto repo = OpenRepo(o, &exit_code, &config);
  if (!repo) return exit_code;
  auto list = repo->ListSnapshots();
  if (!list.ok()) return ReportError(list.status());
  const Json copies = CopyRepositories(config, *list);
  // Per project with shipped journal segments: the earliest and latest second it can be restored
  // to (restore --project --at). Not fatal: the snapshots are still listed.
  Json windows = Json::array();
  std::string windows_error;
  auto shipped = repo::ListSegmentProjects(*repo);
  auto found =
      shipped.ok() && !shipped->empty()
          ? backup::RestorableWindows(*repo)
          : Result<std::vector<backup::RestorableWindow>>(std::vector<backup::RestorableWindow>{});
  if (!shipped.ok() || !found.ok()) {
    windows_error = (!shipped.ok() ? shipped.status() : found.status()).ToString();
  } else {
    for (const backup::RestorableWindow& w : *found) {
      if (std::find(shipped->begin(), shipped->end(), w.project_id) == shipped->end()) continue;
      Json j = {{"project", w.project_name},
                {"project_id", w.project_id},
                {"earliest", FormatIso8601(w.earliest_ms)},
                {"latest", FormatIso8601(w.latest_ms)},
                {"latest_lsn", w.latest_lsn}};
      if (!w.gap.empty()) j["gap"] = w.gap;
      windows.push_back(std::move(j));
    }
  }
  if (o.common.json) {
    Json arr = Json::array();
    for (const auto& s : *list) arr.push_back(api::EncodeSnapshotSummary(s));
    Json out = {{"snapshots", arr},
                {"count", list->size()},
                {"repository", config.backup_repository},
                {"copies", copies},
                {"restorable", windows}};
    if (!windows_error.empty()) out["restorable_error"] = windows_error;
    PrintJson(out);
    return kExitOk;
  }
  for (const auto& s : *list) {
    std::cout << s.id << "  " << s.time << "  " << s.trigger << "  " << s.scope << "  "
              << HumanBytes(static_cast<double>(s.bytes)) << "  +"
              << HumanBytes(static_cast<double>(s.added_stored_bytes)) << "  "
              << (s.verified.empty() ? "unverified" : "verified " + s.verified);
    if (!s.source_check_failed.empty()) {
      std::cout << "  SOURCE DAMAGED: ";
      for (size_t i = 0; i < s.source_check_failed.size(); ++i)
        std::cout << (i ? ", " : "") << s.source_check_failed[i];
    }
    std::cout << "\n";
  }
  for (const Json& w : windows) {
    std::cout << "project " << w["project"].get<std::string>() << ": restorable to any second from "
              << w["earliest"].get<std::string>() << " to " << w["latest"].get<std::string>()
              << " (LSN " << w["latest_lsn"].get<int64_t>() << ")";
    if (w.contains("gap")) std::cout << "  GAP: " << w["gap"].get<std::string>();
    std::cout << "\n";
  }
  if (!windows_error.empty()) {
    std::cerr << "warning: restorable windows unknown: " << windows_error << "\n";
  }
  for (const Json& c : copies) {
    std::cout << "copy " << c.value("repository", std::string("?")) << ": ";
    if (c.contains("error")) {
      std::cout << "ERROR " << c["error"].get<std::string>() << "\n";
    } else {
      std::cout << c["snapshots"].get<int64_t>() << " snapshots, " << c["lag_seconds"].get<double>()
                << " s behind\n";
    }
  }
  return kExitOk;
}

Result<repo::VerifyOptions> VerifyOptionsFrom(const RepoOptions& o) {
  repo::VerifyOptions vo;
  if (o.read_data) vo.data = repo::VerifyOptions::Data::kAll;
  if (const size_t slash = o.read_data_subset.find('/'); slash != std::string::npos) {
    // "n/t": slice n of t (1-based, as restic has it): t runs with n = 1 .. t read every pack.
    int n = 0, t = 0;
    const std::string& text = o.read_data_subset;
    auto a = std::from_chars(text.data(), text.data() + slash, n);
    auto b = std::from_chars(text.data() + slash + 1, text.data() + text.size(), t);
    if (a.ec != std::errc() || a.ptr != text.data() + slash || b.ec != std::errc() ||
        b.ptr != text.data() + text.size() || t < 1 || t > 10000 || n < 1 || n > t) {
      return Status::InvalidArgument(
          "--read-data-subset must be a percentage in (0, 100] or a slice n/t with 1 <= n <= t");
    }
    vo.data = repo::VerifyOptions::Data::kSubset;
    vo.subset_slices = t;
    vo.subset_slice = n - 1;
  } else if (!o.read_data_subset.empty()) {
    std::string text = o.read_data_subset;
    if (text.back() == '%') text.pop_back();
    char* end = nullptr;
    double pct = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(pct > 0 && pct <= 100)) {
      return Status::InvalidArgument("--read-data-subset must be a percentage in (0, 100]");
    }
    vo.data = repo::VerifyOptions::Data::kSubset;
    vo.subset_fraction = pct / 100.0;
  }
  vo.restore_test = o.restore_test;
  if (vo.restore_test) vo.restored_check = backup::CheckRestoredDatabases;
  return vo;
}

int RunBackupVerify(const RepoOptions& o) {
  auto vo = VerifyOptionsFrom(o);
  if (!vo.ok()) return ReportError(vo.status(), /*usage=*/true);
  int exit_code = kExitOk;
  auto repo = OpenRepo(o, &exit_code);
  if (!repo) return exit_code;
  auto reports = repo->Verify(o.ids, *vo);
  if (!reports.ok()) return ReportError(reports.status());
  bool all_ok = true;
  Json arr = Json::array();
  for (const auto& r : *reports) {
    all_ok = all_ok && r.ok;
    arr.push_back({{"snapshot", r.snapshot_id},
                   {"ok", r.ok},
                   {"problems", r.problems},
                   {"bytes_read", r.bytes_read}});
    if (!o.common.json) {
      std::cout << r.snapshot_id << "  " << (r.ok ? "OK" : "DAMAGED") << "\n";
      for (const std::string& p : r.problems) std::cout << "    " << p << "\n";
    }
  }
  if (o.common.json) PrintJson({{"ok", all_ok}, {"snapshots", arr}});
  return all_ok ? kExitOk : kExitFailure;
}

int RunBackupForget(const RepoOptions& o) {
  repo::RetentionPolicy policy;
  policy.keep_last = o.keep_last;
  policy.keep_hourly = o.keep_hourly;
  policy.keep_daily = o.keep_daily;
  policy.keep_weekly = o.keep_weekly;
  policy.keep_monthly = o.keep_monthly;
  if (!o.keep_within.empty()) {
    auto within = repo::ParseDuration(o.keep_within);
    if (!within.ok()) return ReportError(within.status().WithContext("--keep-within"), true);
    policy.keep_within_ms = *within;
  }
  if (o.ids.empty() && policy.empty()) {
    return ReportError("name snapshots to forget or give a policy (--keep-last, --keep-daily, ...)",
                       /*usage=*/true);
  }
  if (!o.ids.empty() && !policy.empty()) {
    return ReportError("give snapshot ids or a policy, not both", /*usage=*/true);
  }
  int exit_code = kExitOk;
  auto repo = OpenRepo(o, &exit_code);
  if (!repo) return exit_code;
  std::vector<repo::RetentionDecision> decisions;
  if (!o.ids.empty()) {
    for (const std::string& id : o.ids) decisions.push_back({id, false, {"named"}});
  } else {
    auto list = repo->ListSnapshots();
    if (!list.ok()) return ReportError(list.status());
    decisions = repo::ApplyRetention(*list, policy, SystemClock::Default()->NowMillis());
  }
  Json arr = Json::array();
  int forgotten = 0;
  for (const auto& d : decisions) {
    arr.push_back({{"snapshot", d.snapshot_id}, {"keep", d.keep}, {"reasons", d.reasons}});
    if (!o.common.json) {
      std::cout << (d.keep ? "keep    " : (o.dry_run ? "would forget " : "forget  "))
                << d.snapshot_id;
      if (d.keep) {
        std::cout << "  (";
        for (size_t i = 0; i < d.reasons.size(); ++i) std::cout << (i ? ", " : "") << d.reasons[i];
        std::cout << ")";
      }
      std::cout << "\n";
    }
    if (d.keep || o.dry_run) continue;
    Status s = repo->ForgetSnapshot(d.snapshot_id);
    if (!s.ok()) return ReportError(s);
    ++forgotten;
  }
  Json out = {{"dry_run", o.dry_run}, {"decisions", arr}, {"forgotten", forgotten}};
  if (o.prune && !o.dry_run) {
    auto pruned = repo->Prune(repo::PruneOptions{});
    if (!pruned.ok()) return ReportError(pruned.status());
    out["prune"] = {{"packs_marked", pruned->packs_marked},
                    {"packs_deleted", pruned->packs_deleted},
                    {"bytes_deleted", pruned->bytes_deleted}};
  }
  if (o.common.json) PrintJson(out);
  return kExitOk;
}

int RunPrune(const RepoOptions& o) {
  repo::PruneOptions po;
  po.dry_run = o.dry_run;
  if (!o.grace.empty()) {
    auto grace = repo::ParseDuration(o.grace);
    if (!grace.ok()) return ReportError(grace.status().WithContext("--grace"), true);
    po.grace_ms = *grace;
  }
  if (!o.clock_skew.empty()) {
    auto skew = o.clock_skew == "0" ? Result<int64_t>(0) : repo::ParseDuration(o.clock_skew);
    if (!skew.ok()) return ReportError(skew.status().WithContext("--max-clock-skew"), true);
    po.max_clock_skew_ms = *skew;
  }
  int exit_code = kExitOk;
  auto repo = OpenRepo(o, &exit_code);
  if (!repo) return exit_code;
  auto r = repo->Prune(po);
  if (!r.ok()) return ReportError(r.status());
  Json j = {{"dry_run", o.dry_run},
            {"packs_marked", r->packs_marked},
            {"packs_deleted", r->packs_deleted},
            {"bytes_deleted", r->bytes_deleted},
            {"plans_swept", r->plans_swept},
            {"plans_deferred", r->plans_deferred},
            {"stale_locks_removed", r->stale_locks_removed},
            {"notes", r->notes}};
  if (o.common.json) {
    PrintJson(j);
  } else {
    std::cout << "marked " << r->packs_marked << " unreferenced pack(s) for deletion, deleted "
              << r->packs_deleted << " (" << HumanBytes(static_cast<double>(r->bytes_deleted))
              << ")";
    if (r->plans_deferred)
      std::cout << "; " << r->plans_deferred << " plan(s) wait for a running backup";
    std::cout << "\n";
    for (const std::string& n : r->notes) std::cout << "  " << n << "\n";
  }
  return kExitOk;
}

// The knowledge base a direct-mode project restore works in (the caller holds the directory's
// lock), without the periodic index saver a short-lived command does not need.
Result<std::unique_ptr<KnowledgeBase>> OpenForProjectRestore(const Config& config) {
  KbOptions kb_options;
  kb_options.data_dir = config.data_dir;
  kb_options.index_save_interval_ms = 0;
  return KnowledgeBase::Open(kb_options);
}

// --- restore ---------------------------------------------------------------------------------

// restore --project P --at TIME | --at-lsn N: snapshot + shipped segments (backup/point_in_time.h).
int RunRestoreAt(const RepoOptions& o) {
  if (!o.at.empty() && o.at_lsn >= 0) {
    return ReportError("give one of --at and --at-lsn", /*usage=*/true);
  }
  if (o.projects.size() != 1) {
    return ReportError("--at / --at-lsn restore one project: give exactly one --project",
                       /*usage=*/true);
  }
  if (!o.snapshot.empty() || o.latest || o.latest_valid || !o.before.empty() || o.merge) {
    return ReportError(
        "--at / --at-lsn choose the snapshot themselves: no --snapshot, --latest, "
        "--latest-valid, --before or --merge",
        /*usage=*/true);
  }
  backup::PointInTimeTarget target;
  if (!o.at.empty()) {
    std::optional<int64_t> t = o.at == "now"
                                   ? std::optional<int64_t>(SystemClock::Default()->NowMillis())
                                   : ParseIso8601(o.at);
    if (!t) {
      return ReportError("--at must be an RFC 3339 time, e.g. 2026-11-26T13:05:01Z, or \"now\"",
                         /*usage=*/true);
    }
    target.at_ms = *t;
  } else {
    target.lsn = o.at_lsn;
  }
  int exit_code = kExitOk;
  Config config;
  auto repo = OpenRepo(o, &exit_code, &config);
  if (!repo) return exit_code;
  // Restoring into a new data directory is how a project is brought back on another host.
  if (Status s = MakeDirs(config.data_dir); !s.ok()) {
    return ReportError(s.WithContext("cannot create " + config.data_dir));
  }
  auto lock = DataDirLock::Acquire(config.data_dir, "restore");
  if (!lock.ok()) {
    return ReportError(lock.status().WithContext(
        "restore --project needs the data directory to itself (stop the server first)"));
  }
  auto kb = OpenForProjectRestore(config);
  if (!kb.ok()) return ReportError(kb.status());
  auto lag = ParseIndexMaxLag(config.backup_index_max_lag);
  if (!lag.ok()) return ReportError(lag.status());
  backup::ProjectRestoreOptions po;
  po.actor = Actor{"cli", "restore"};
  po.index_max_lag = *lag;
  const std::string& project = o.projects[0];
  auto report = backup::RestoreProjectToPoint(*repo, project, target, **kb, po);
  AuditEvent event;
  event.route = "restore";
  event.action = "project.restore";
  event.project = report.ok() ? report->project_id : project;
  event.outcome = report.ok() ? "ok" : "failed";
  event.detail =
      (target.at_ms ? "at " + FormatIso8601(*target.at_ms)
                    : "at LSN " + std::to_string(*target.lsn)) +
      (report.ok() ? "; snapshot " + report->snapshot_id + ", LSN " + std::to_string(report->lsn)
                   : "; " + report.status().ToString());
  (*kb)->Close();
  RecordCliAudit(config.data_dir, std::move(event));
  if (!report.ok()) return ReportError(report.status());
  if (o.common.json) {
    PrintJson(report->ToJson());
  } else {
    std::cout << "project " << report->project_name << " restored to LSN " << report->lsn
              << (report->commit_time.empty() ? "" : " committed " + report->commit_time)
              << " (snapshot " << report->snapshot_id << " + " << report->entries_replayed
              << " journal entries from " << report->segments_read
              << " segment(s)); content checksum " << report->content_checksum
              << " equals the one the chain recorded";
    if (!report->pre_restore_snapshot.empty()) {
      std::cout << "; its previous state is snapshot " << report->pre_restore_snapshot;
    }
    std::cout << "\n";
    if (report->target_beyond_chain) {
      std::cout << "note: the shipped chain ends before the time asked for; this is its newest "
                   "point\n";
    }
  }
  return kExitOk;
}

int RunRestore(const RepoOptions& o) {
  if (!o.at.empty() || o.at_lsn >= 0) return RunRestoreAt(o);
  int chosen = (!o.snapshot.empty()) + o.latest + o.latest_valid + (!o.before.empty());
  if (chosen > 1) {
    return ReportError("give at most one of --snapshot, --latest, --latest-valid, --before",
                       /*usage=*/true);
  }
  if (o.merge && o.projects.empty()) {
    return ReportError("--merge needs --project", /*usage=*/true);
  }
  backup::SnapshotSelector selector;
  selector.snapshot_id = o.snapshot;
  selector.latest_valid = o.latest_valid;
  if (!o.before.empty()) {
    auto t = ParseIso8601(o.before);
    if (!t)
      return ReportError("--before must be an ISO-8601 time, e.g. 2026-11-26T13:00:00Z", true);
    selector.before_ms = *t;
  }
  selector.projects = o.projects;
  selector.need_full = o.projects.empty();
  int exit_code = kExitOk;
  Config config;
  auto repo = OpenRepo(o, &exit_code, &config);
  if (!repo) return exit_code;
  // Every snapshot passed by on the way, said as it happened (stderr) and in --json.
  auto said_skipped = [](const backup::Selection& chosen) {
    Json skipped = Json::array();
    for (const auto& s : chosen.skipped) {
      std::cerr << "skipped snapshot " << s.id << ": " << s.reason << "\n";
      skipped.push_back({{"snapshot", s.id}, {"reason", s.reason}});
    }
    return skipped;
  };

  if (o.projects.empty()) {
    backup::WholeRestoreOptions wo;
    wo.security_state_from_snapshot = o.security_state_from_snapshot;
    backup::Selection selection_value;
    backup::Selection* selection = &selection_value;
    auto report =
        backup::RestoreDataDirectoryFrom(*repo, selector, config.data_dir, nullptr, wo, selection);
    Json skipped = said_skipped(*selection);
    if (selection->manifest.id.empty()) return ReportError(report.status());  // none chosen
    AuditEvent event;
    event.route = "restore";
    event.action = "data.restore";
    if (report.ok()) {
      // The restore carried the audit log over; what it could not do is only a warning.
      for (const std::string& w : report->warnings) std::cerr << "warning: " << w << "\n";
      event.outcome = "ok";
      event.detail =
          "whole data directory from snapshot " + report->snapshot_id +
          (report->moved_aside.empty() ? "" : "; previous data in " + report->moved_aside) +
          "; audit log: " + report->audit_log;
    } else {
      event.outcome = "failed";
      event.detail = "snapshot " + selection->manifest.id + ": " + report.status().ToString();
    }
    RecordCliAudit(config.data_dir, std::move(event));
    if (!report.ok()) return ReportError(report.status());
    Json j = report->ToJson();
    j["skipped"] = skipped;
    if (o.common.json) {
      PrintJson(j);
    } else {
      std::cout << "restored snapshot " << report->snapshot_id << " (" << selection->manifest.time
                << ") into " << report->data_dir << " in " << report->seconds << " s\n";
      std::cout << "API keys, address rules and service mode: "
                << (report->security_state == "live" ? "kept from the live data (as they are now)"
                                                     : "the snapshot's: " + report->security_state)
                << "\n";
      std::cout << "audit log: "
                << (report->audit_log == "live"
                        ? "the live one, kept (this restore is appended to it)"
                    : report->audit_log == "snapshot"
                        ? "none live: the snapshot's, verified (this restore is appended "
                          "to it)"
                        : "none in the live data or the snapshot (a new one starts with "
                          "this restore)")
                << "\n";
      if (!report->moved_aside.empty()) {
        std::cout << "the previous data directory was moved to " << report->moved_aside << "\n";
        const auto& w = report->window;
        std::cout << "data-loss window: restored point " << w.restored_point
                  << "; newest commit readable in the old data: "
                  << (w.newest_damaged_commit.empty() ? "none" : w.newest_damaged_commit) << " ("
                  << w.lost_entries << " journal entries after the restored point)\n";
      }
    }
    return kExitOk;
  }
  // One or more projects, into the data directory opened directly: no server may run on it
  // (its open stores and indexes would not see the swap; use the API against a running server).
  auto lock = DataDirLock::Acquire(config.data_dir, "restore");
  if (!lock.ok()) {
    return ReportError(lock.status().WithContext(
        "restore --project needs the data directory to itself; against a running server use "
        "--url (POST /api/v1/admin/projects/{project}/restore)"));
  }
  auto kb = OpenForProjectRestore(config);
  if (!kb.ok()) return ReportError(kb.status());
  auto lag = ParseIndexMaxLag(config.backup_index_max_lag);
  if (!lag.ok()) return ReportError(lag.status());
  Json reports = Json::array();
  Json skipped = Json::array();
  for (const std::string& project : o.projects) {
    backup::ProjectRestoreOptions po;
    po.merge = o.merge;
    po.actor = Actor{"cli", "restore"};
    po.index_max_lag = *lag;
    // Each project walks back on its own with --latest-valid: one project's damage does not
    // send the others to an older point.
    backup::SnapshotSelector one = selector;
    one.projects = {project};
    backup::Selection selection;
    auto report = backup::RestoreProjectFrom(*repo, one, project, **kb, po, &selection);
    for (Json& s : said_skipped(selection)) skipped.push_back(std::move(s));
    if (selection.manifest.id.empty()) return ReportError(report.status());  // none chosen
    AuditEvent event;
    event.route = "restore";
    event.action = "project.restore";
    event.project = report.ok() ? report->project_id : project;
    event.outcome = report.ok() ? "ok" : "failed";
    event.detail = "snapshot " + selection.manifest.id + (o.merge ? "; merge" : "; replace") +
                   (report.ok() ? "" : "; " + report.status().ToString());
    for (const auto& s : selection.skipped) {
      event.detail += "; skipped " + s.id + " (" + s.reason + ")";
    }
    RecordCliAudit(config.data_dir, std::move(event));
    if (!report.ok()) return ReportError(report.status());
    reports.push_back(report->ToJson());
    if (!o.common.json) {
      if (o.merge) {
        std::cout << "project " << report->project_name << ": restored "
                  << report->restored_documents.size() << " document(s) from snapshot "
                  << report->snapshot_id << ", skipped " << report->skipped_documents.size()
                  << "\n";
        for (const Json& s : report->skipped_documents) {
          std::cout << "  skipped " << s["id"].get<std::string>() << ": "
                    << s["reason"].get<std::string>() << "\n";
        }
      } else {
        std::cout << "project " << report->project_name << " restored from snapshot "
                  << report->snapshot_id << " (LSN " << report->lsn << ")";
        if (!report->pre_restore_snapshot.empty()) {
          std::cout << "; its previous state is snapshot " << report->pre_restore_snapshot;
        }
        std::cout << "\n";
      }
    }
  }
  (*kb)->Close();
  if (o.common.json) PrintJson({{"projects", reports}, {"skipped", skipped}});
  return kExitOk;
}

}  // namespace

void RegisterBackupCommands(CLI::App* root, CommandRegistry* registry) {
  // repo
  CLI::App* repo = root->add_subcommand("repo", "Backup repository: init, check, keys");
  repo->require_subcommand(1);
  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = repo->add_subcommand("init", "Create a new backup repository");
    AddRepoOptions(c, o.get());
    c->add_option("--label", o->label, "a label for the first key");
    registry->Add(c, [o] { return RunRepoInit(*o); });
  }
  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = repo->add_subcommand("check", "Check the whole repository's structure");
    AddRepoOptions(c, o.get());
    c->add_flag("--read-data", o->read_data, "also read and authenticate every pack");
    registry->Add(c, [o] { return RunRepoCheck(*o); });
  }
  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = repo->add_subcommand(
        "copy", "Copy snapshots into another repository (re-encrypted with its keys)");
    AddRepoOptions(c, o.get());
    AddOptionalString(c, "--from", &o->common.flags.backup_repository,
                      "the source repository URL (same as --repo; its key: --key-file, "
                      "$KB_BACKUP_KEY_FILE or $KB_BACKUP_PASSWORD)");
    c->add_option("--to", o->to, "the destination repository URL (created by `repo init`)")
        ->required();
    c->add_option("--to-key-file", o->to_key_file,
                  "the destination's key file ($KB_BACKUP_TO_KEY_FILE); else the passphrase in "
                  "$KB_BACKUP_TO_PASSWORD");
    c->add_option("--snapshot", o->ids, "copy this snapshot (repeatable)");
    c->add_option("--latest", o->latest_n, "copy the N newest snapshots (default: all)");
    c->add_flag("--no-verify", o->no_verify,
                "do not read back each copy (by default every copy is verified, data included)");
    c->footer(
        "Each snapshot keeps its id and metadata; one the destination already holds is skipped. "
        "Packs and index objects are written before the manifest, so an interrupted copy leaves "
        "no snapshot in the destination.");
    registry->Add(c, [o] { return RunRepoCopy(*o); });
  }
  CLI::App* key = repo->add_subcommand("key", "Keys that open the repository");
  key->require_subcommand(1);
  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = key->add_subcommand(
        "add", "Add a key (new passphrase from $KB_BACKUP_NEW_PASSWORD, or --new-key-file)");
    AddRepoOptions(c, o.get());
    c->add_option("--new-key-file", o->new_key_file, "file holding the new key (>= 32 bytes)");
    c->add_option("--label", o->label, "a label for the new key");
    registry->Add(c, [o] { return RunKeyAdd(*o); });
  }
  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = key->add_subcommand("list", "List the keys (the one in use is marked *)");
    AddRepoOptions(c, o.get());
    registry->Add(c, [o] { return RunKeyList(*o); });
  }
  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = key->add_subcommand("remove", "Remove a key (never the last one)");
    AddRepoOptions(c, o.get());
    c->add_option("id", o->key_id, "key id")->required();
    registry->Add(c, [o] { return RunKeyRemove(*o); });
  }

  // backup [list | verify | forget]; the leaves are registered first so that they win.
  auto bo = std::make_shared<RepoOptions>();
  CLI::App* backup = root->add_subcommand(
      "backup", "Back up the data directory (safe while a server runs on it), or manage snapshots");
  backup->require_subcommand(0, 1);
  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = backup->add_subcommand("list", "List snapshots, oldest first");
    AddRepoOptions(c, o.get());
    registry->Add(c, [o] { return RunBackupList(*o); });
  }
  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = backup->add_subcommand("verify", "Verify snapshots (all when none named)");
    AddRepoOptions(c, o.get());
    c->add_option("snapshots", o->ids, "snapshot ids");
    c->add_flag("--read-data", o->read_data, "download, decrypt and hash every byte");
    c->add_option("--read-data-subset", o->read_data_subset,
                  "read this percentage of the packs (at random), or slice n/t of them (t runs "
                  "with n = 1..t read every pack)");
    c->add_flag("--restore-test", o->restore_test,
                "restore into a temporary directory and check the databases");
    registry->Add(c, [o] { return RunBackupVerify(*o); });
  }
  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = backup->add_subcommand("forget", "Forget snapshots by id or by a keep policy");
    AddRepoOptions(c, o.get());
    c->add_option("snapshots", o->ids, "snapshot ids");
    c->add_option("--keep-last", o->keep_last, "keep the N newest");
    c->add_option("--keep-hourly", o->keep_hourly, "keep the newest of each of N hours");
    c->add_option("--keep-daily", o->keep_daily, "keep the newest of each of N days");
    c->add_option("--keep-weekly", o->keep_weekly, "keep the newest of each of N weeks");
    c->add_option("--keep-monthly", o->keep_monthly, "keep the newest of each of N months");
    c->add_option("--keep-within", o->keep_within, "keep everything newer than this (7d, 36h)");
    c->add_flag("--dry-run", o->dry_run, "only show what would be forgotten");
    c->add_flag("--prune", o->prune, "prune unreferenced data afterwards");
    registry->Add(c, [o] { return RunBackupForget(*o); });
  }
  AddRepoOptions(backup, bo.get());
  backup->add_option("--project", bo->projects, "only this project (repeatable)");
  backup->add_option("--tag", bo->tags, "a tag for the snapshot (repeatable)");
  registry->Add(backup, [bo] { return RunBackup(*bo); });

  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = root->add_subcommand("prune", "Delete data no snapshot uses (two-phase)");
    AddRepoOptions(c, o.get());
    c->add_flag("--dry-run", o->dry_run, "only report");
    c->add_option("--grace", o->grace, "age before marked data is deleted (default 1h)");
    c->add_option("--max-clock-skew", o->clock_skew,
                  "how far the clocks of hosts writing this repository may disagree (default "
                  "5m; the grace must be at least this; 0 only if one host writes it)");
    registry->Add(c, [o] { return RunPrune(*o); });
  }
  {
    auto o = std::make_shared<RepoOptions>();
    CLI::App* c = root->add_subcommand(
        "restore",
        "Restore the data directory (server stopped) or projects from a backup repository");
    AddRepoOptions(c, o.get());
    c->add_option("--snapshot", o->snapshot, "this snapshot id");
    c->add_flag("--latest", o->latest, "the newest snapshot (default)");
    c->add_flag("--latest-valid", o->latest_valid,
                "the newest snapshot whose data is sound: snapshots whose backup marked a source "
                "damaged, whose bytes fail verification or whose restored databases fail their "
                "check are passed by, each one reported");
    c->add_flag("--security-state-from-snapshot", o->security_state_from_snapshot,
                "whole restore: take the snapshot's API keys, address rules and service mode "
                "instead of keeping the live ones (keys revoked since come back)");
    c->add_option("--before", o->before, "the newest snapshot taken before this ISO-8601 time");
    c->add_option("--project", o->projects, "restore only this project (repeatable)");
    c->add_flag("--merge", o->merge,
                "with --project: bring back only documents the live project no longer has");
    c->add_option("--at", o->at,
                  "with --project: restore to this second (RFC 3339, or \"now\") from a "
                  "snapshot and the shipped journal");
    c->add_option("--at-lsn", o->at_lsn,
                  "with --project: restore to exactly this journal position (LSN)")
        ->check(CLI::NonNegativeNumber);
    c->footer(
        "A whole restore builds the new data directory next to the old one, verifies it, then "
        "moves the old one aside (named with the time; never deleted) and swaps the new one in. "
        "Stop the server first. To restore one project into a running server use "
        "POST /api/v1/admin/projects/{project}/restore.");
    registry->Add(c, [o] { return RunRestore(*o); });
  }
}

}  // namespace kb::cli
