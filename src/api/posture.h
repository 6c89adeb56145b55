// The server's security and disaster-recovery posture, as `knowledgebeast doctor` reports it:
// facts about one installation (where it listens, its keys, its address rules, its backups) in,
// one verdict per check out. The facts are gathered two ways — from a data directory and its
// configuration (the CLI, src/cli/doctor_command.cc) or by the running server itself
// (GET /api/v1/admin/posture, routes_containment.cc) — and judged here only, so that the two
// reports cannot disagree. The table of checks, their verdicts and why is docs/SECURITY.md
// "Posture checks (doctor)"; a change of verdict belongs there too.
//
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/catalog.h"

namespace kb::api {

// More active admin keys than this is a warning (doctor --max-admin-keys).
inline constexpr int kDefaultMaxAdminKeys = 3;
// Without --backup-objective the newest full backup may be this many backup intervals old.
inline constexpr int64_t kBackupObjectiveIntervals = 2;
// A verification older than this many verify intervals is overdue.
inline constexpr int64_t kVerifyOverdueIntervals = 2;
// Findings list at most this many key ids.
inline constexpr size_t kMaxKeyIdsNamed = 5;

enum class Verdict { kOk, kWarn, kFail };
std::string_view VerdictName(Verdict v);  // "ok" | "warn" | "fail"
std::optional<Verdict> ParseVerdict(std::string_view name);

struct PostureCheck {
  std::string id;  // stable, e.g. "backups_off_site" (scripts match on it)
  Verdict verdict = Verdict::kOk;
  std::string finding;  // one line, with the actual value
  std::string fix;      // the command or setting that fixes it; empty when ok
};

struct PostureFacts {
  int64_t now_ms = 0;
  std::string data_dir;  // absolute; to tell a repository inside it
  // Where the server listens (the `host` setting) and how.
  std::string host;
  bool tls = false;
  bool metrics_require_auth = false;
  // Backups. backups_configured false: the server runs without a backup service at all.
  bool backups_configured = true;
  std::string repository_url;
  bool repository_local_default = false;
  std::string repository_error;  // non-empty: the repository could not be read (then below unset)
  std::optional<int64_t> newest_full_backup_ms;
  std::optional<int64_t> newest_verification_ms;
  int64_t snapshots = 0;
  int64_t backup_interval_ms = 0;  // 0: no schedule
  int64_t verify_interval_ms = 0;  // 0: no scheduled verification
  // Every key of the catalog (revoked and expired ones are skipped by the checks).
  std::vector<ApiKeyRecord> keys;
  size_t allow_rules = 0;
  size_t deny_rules = 0;
  bool audit_reads = false;  // effective: the run-time switch, else the configuration
};

struct PostureLimits {
  // How old the newest full backup may be; unset = kBackupObjectiveIntervals x backup_interval.
  std::optional<int64_t> backup_objective_ms;
  int max_admin_keys = kDefaultMaxAdminKeys;
};

// The limits from text, as the route's query (`backup_objective`, `max_admin_keys`) and
// doctor's flags give them: a duration (repo/retention.h grammar) > 0, an integer >= 0.
// InvalidArgument naming the parameter otherwise.
Result<PostureLimits> DecodePostureLimits(const std::optional<std::string>& backup_objective,
                                          const std::optional<std::string>& max_admin_keys);

// Where a repository URL keeps the backups, judged against the data directory.
enum class RepositoryPlace {
  kInsideDataDir,   // the local default, or a file:// path inside the data directory
  kLocalDirectory,  // another file:// path: off-site only if it is a mount of storage elsewhere
  kObjectStore,     // s3://
};
RepositoryPlace ClassifyRepository(std::string_view url, std::string_view data_dir,
                                   bool local_default);

// True for 127.0.0.0/8, ::1, ::ffff:127.x.y.z and "localhost"; false for wildcard addresses
// (0.0.0.0, ::, empty) and every other name or address.
bool IsLoopbackHost(std::string_view host);

// The checks, in a fixed order (the report's order): every check is always present.
std::vector<PostureCheck> EvaluatePosture(const PostureFacts& facts, const PostureLimits& limits);

// fail if any check fails, else warn if any warns, else ok.
Verdict OverallVerdict(const std::vector<PostureCheck>& checks);

// {"verdict": "...", "checks": [{"id", "verdict", "finding", "fix"}...]}: the route's body and
// `doctor --json`.
nlohmann::json PostureReportJson(const std::vector<PostureCheck>& checks);
// The inverse, for the CLI reading a server's report: InvalidArgument if the shape is not that.
Result<std::vector<PostureCheck>> DecodePostureReport(const nlohmann::json& report);

}  // namespace kb::api
