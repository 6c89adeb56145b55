// The posture rules. See posture.h; the verdicts are explained in docs/SECURITY.md.
#include "api/posture.h"

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "api/access_control.h"
#include "backup/service.h"
#include "common/clock.h"
#include "repo/retention.h"

namespace kb::api {

using nlohmann::json;

// A named namespace rather than an anonymous one: the module is a unity build, and these short
// names would meet other files' helpers there.
namespace posture_rules {

// With the schedule off, age limits are measured against the service's default intervals.
constexpr int64_t kFallbackBackupIntervalMs = backup::kDefaultBackupIntervalMs;
constexpr int64_t kFallbackVerifyIntervalMs = backup::kDefaultVerifyIntervalMs;

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

// "3h10m" (whole seconds; "0s" under one).
std::string Age(int64_t ms) { return repo::FormatDuration(std::max<int64_t>(ms, 0)); }

std::string When(int64_t ms) { return FormatIso8601(ms); }

bool Active(const ApiKeyRecord& k, int64_t now_ms) {
  if (k.revoked_at_ms) return false;
  return !k.expires_at_ms || *k.expires_at_ms > now_ms;
}

std::string IdList(const std::vector<std::string>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < kMaxKeyIdsNamed; ++i) {
    out += (i ? ", " : "") + ids[i];
  }
  if (ids.size() > kMaxKeyIdsNamed) out += ", ...";
  return out;
}

PostureCheck Check(const char* id, Verdict v, std::string finding, std::string fix = "") {
  return PostureCheck{id, v, std::move(finding), v == Verdict::kOk ? "" : std::move(fix)};
}

const char kRepositoryFix[] =
    "set backup_repository to an s3:// URL (KB_BACKUP_REPOSITORY) with KB_BACKUP_PASSWORD or "
    "backup_key_file (docs/BACKUP.md)";

PostureCheck BackupsOffSite(const PostureFacts& f, RepositoryPlace place) {
  constexpr char kId[] = "backups_off_site";
  if (!f.backups_configured) {
    return Check(kId, Verdict::kFail, "no backups: this server runs without a backup service",
                 kRepositoryFix);
  }
  switch (place) {
    case RepositoryPlace::kInsideDataDir:
      return Check(kId, Verdict::kFail,
                   "backups only local: " + f.repository_url +
                       (f.repository_local_default ? " (the local default)" : "") +
                       " is inside the data directory and dies with this disk",
                   kRepositoryFix);
    case RepositoryPlace::kLocalDirectory:
      return Check(kId, Verdict::kWarn,
                   "backups in a directory of this host (" + f.repository_url +
                       "): off-site only if it is storage of another machine",
                   std::string("make sure that directory is a mount of storage elsewhere, or ") +
                       kRepositoryFix);
    case RepositoryPlace::kObjectStore:
      break;
  }
  return Check(kId, Verdict::kOk, "backups go to object storage: " + f.repository_url);
}

PostureCheck BackupAge(const PostureFacts& f, const PostureLimits& limits) {
  constexpr char kId[] = "backup_age";
  const bool scheduled = f.backup_interval_ms > 0;
  const int64_t objective = limits.backup_objective_ms.value_or(
      kBackupObjectiveIntervals * (scheduled ? f.backup_interval_ms : kFallbackBackupIntervalMs));
  const std::string objective_text = "objective " + Age(objective);
  if (!f.backups_configured) {
    return Check(kId, Verdict::kFail, "no backups: this server runs without a backup service",
                 kRepositoryFix);
  }
  if (!f.repository_error.empty()) {
    return Check(kId, Verdict::kFail, "cannot read the backup repository: " + f.repository_error,
                 "check backup_repository and its key (KB_BACKUP_PASSWORD or backup_key_file); "
                 "try: knowledgebeast backup list");
  }
  if (!f.newest_full_backup_ms) {
    return Check(kId, Verdict::kFail, "no full backup in the repository (" + objective_text + ")",
                 "knowledgebeast backup --data-dir DIR, or POST /api/v1/admin/backups; keep "
                 "backup_interval above 0");
  }
  const int64_t age = f.now_ms - *f.newest_full_backup_ms;
  const std::string found = "newest full backup " + Age(age) + " old (" +
                            When(*f.newest_full_backup_ms) + "), " + objective_text;
  if (age > objective) {
    return Check(kId, Verdict::kFail, found + ": too old",
                 "find why backups stopped (GET /api/v1/stats: backups.last_error, "
                 "kb_backup_consecutive_failures), then back up now: knowledgebeast backup");
  }
  if (!scheduled) {
    return Check(kId, Verdict::kWarn, found + "; but no scheduled backups (backup_interval 0)",
                 "set backup_interval (e.g. 1h) so that backups do not depend on someone");
  }
  return Check(kId, Verdict::kOk, found);
}

PostureCheck Verification(const PostureFacts& f) {
  constexpr char kId[] = "backup_verification";
  const bool scheduled = f.verify_interval_ms > 0;
  const int64_t limit =
      kVerifyOverdueIntervals * (scheduled ? f.verify_interval_ms : kFallbackVerifyIntervalMs);
  const std::string limit_text = "overdue after " + Age(limit);
  const char kVerifyFix[] =
      "knowledgebeast backup verify --read-data-subset 10% (or POST /api/v1/admin/backups/"
      "verify); keep verify_interval above 0 (default 1d)";
  if (!f.backups_configured) {
    return Check(kId, Verdict::kFail, "no backups to verify: no backup service", kRepositoryFix);
  }
  if (!f.repository_error.empty()) {
    return Check(kId, Verdict::kFail, "cannot read the backup repository: " + f.repository_error,
                 "check backup_repository and its key; try: knowledgebeast backup list");
  }
  if (f.snapshots == 0) {
    return Check(kId, Verdict::kWarn, "nothing verified yet: the repository has no snapshot",
                 "take a backup first (see backup_age)");
  }
  if (!f.newest_verification_ms) {
    return Check(kId, Verdict::kFail,
                 "backups never verified (" + std::to_string(f.snapshots) + " snapshots)",
                 kVerifyFix);
  }
  const int64_t age = f.now_ms - *f.newest_verification_ms;
  const std::string found = "last verification " + Age(age) + " ago (" +
                            When(*f.newest_verification_ms) + "), " + limit_text;
  if (age > limit) return Check(kId, Verdict::kFail, found + ": overdue", kVerifyFix);
  if (!scheduled) {
    return Check(kId, Verdict::kWarn, found + "; but no scheduled verification (verify_interval 0)",
                 "set verify_interval (default 1d)");
  }
  return Check(kId, Verdict::kOk, found);
}

PostureCheck KeysExpiry(const PostureFacts& f) {
  constexpr char kId[] = "keys_expiry";
  std::vector<std::string> forever;
  size_t active = 0;
  for (const ApiKeyRecord& k : f.keys) {
    if (!Active(k, f.now_ms)) continue;
    ++active;
    if (!k.expires_at_ms) forever.push_back(k.id);
  }
  if (forever.empty()) {
    return Check(kId, Verdict::kOk,
                 "every active key expires (" + std::to_string(active) + " active)");
  }
  return Check(kId, Verdict::kWarn,
               "active keys that never expire: " + std::to_string(forever.size()) + " of " +
                   std::to_string(active) + " (" + IdList(forever) + ")",
               "replace each with one that expires: knowledgebeast keys create --name NAME --scope "
               "SCOPE --expires-in-days 90, then knowledgebeast keys revoke KEY_ID");
}

PostureCheck AdminKeys(const PostureFacts& f, const PostureLimits& limits) {
  constexpr char kId[] = "admin_keys";
  std::vector<std::string> admins;
  for (const ApiKeyRecord& k : f.keys) {
    if (Active(k, f.now_ms) && k.scope == KeyScope::kAdmin) admins.push_back(k.id);
  }
  const std::string found = "active admin keys: " + std::to_string(admins.size()) + " (at most " +
                            std::to_string(limits.max_admin_keys) + " expected)";
  if (static_cast<int64_t>(admins.size()) > limits.max_admin_keys) {
    return Check(kId, Verdict::kWarn, found + ": " + IdList(admins),
                 "revoke the ones nobody needs: knowledgebeast keys revoke KEY_ID; give services "
                 "read or write keys limited to their projects");
  }
  return Check(kId, Verdict::kOk, found);
}

PostureCheck Tls(const PostureFacts& f, bool loopback) {
  constexpr char kId[] = "tls";
  if (f.tls) return Check(kId, Verdict::kOk, "HTTPS on " + f.host);
  if (loopback) {
    return Check(kId, Verdict::kOk,
                 "plain HTTP, but on a loopback address (" + f.host + "): only this host connects");
  }
  return Check(kId, Verdict::kFail,
               "TLS off on a non-loopback address (host " + Quoted(f.host) +
                   "): API keys and documents cross the network in clear text",
               "set tls_cert_file and tls_key_file, or listen on 127.0.0.1 behind a proxy that "
               "terminates TLS");
}

PostureCheck MetricsAuth(const PostureFacts& f, bool loopback) {
  constexpr char kId[] = "metrics_auth";
  if (f.metrics_require_auth) return Check(kId, Verdict::kOk, "/metrics requires a read key");
  if (loopback) {
    return Check(kId, Verdict::kOk,
                 "/metrics unauthenticated, but on a loopback address (" + f.host + ")");
  }
  return Check(kId, Verdict::kWarn,
               "/metrics unauthenticated on a public address (host " + Quoted(f.host) +
                   "): project ids, sizes and request counts are readable by anyone who connects",
               "set metrics_require_auth: true (KB_METRICS_REQUIRE_AUTH=true) and give the "
               "scraper a read key");
}

PostureCheck AddressRulesCheck(const PostureFacts& f, bool loopback) {
  constexpr char kId[] = "address_rules";
  if (f.allow_rules + f.deny_rules > 0) {
    return Check(kId, Verdict::kOk,
                 std::to_string(f.allow_rules) + " allow and " + std::to_string(f.deny_rules) +
                     " deny rules");
  }
  if (loopback) {
    // Behind a local proxy every peer is the proxy: rules on the socket address add nothing.
    return Check(kId, Verdict::kOk, "no address rules; only this host connects (" + f.host + ")");
  }
  return Check(
      kId, Verdict::kWarn,
      "no address rules on a public address (host " + Quoted(f.host) +
          "): every address may try keys",
      "allow your clients' ranges: PUT /api/v1/admin/ip-rules {\"allow\": [\"10.0.0.0/8\"]}"
      " (docs/SECURITY.md), or a firewall in front");
}

PostureCheck AuditReads(const PostureFacts& f) {
  constexpr char kId[] = "audit_reads";
  if (f.audit_reads) return Check(kId, Verdict::kOk, "audit_reads on: reads are recorded too");
  return Check(kId, Verdict::kWarn,
               "audit_reads off: searches and document reads are not recorded, so an "
               "exfiltration with a valid key leaves no trace",
               "knowledgebeast audit reads on (--data-dir DIR or --url), or audit_reads: true");
}

PostureCheck AuditOffSite(const PostureFacts& f, RepositoryPlace place) {
  constexpr char kId[] = "audit_off_site";
  // The head file and the log live in the data directory; only what leaves the host can show
  // that someone with write access there rewrote the history (docs/format/AUDIT_LOG.md).
  if (f.backups_configured && place == RepositoryPlace::kObjectStore) {
    return Check(kId, Verdict::kOk,
                 "the audit trail leaves this host only with off-site backups, and backups go "
                 "off-site (" +
                     f.repository_url + ")");
  }
  return Check(kId, Verdict::kWarn,
               "audit head not off-site: the audit trail leaves this host only with off-site "
               "backups, and backups are not off-site (see backups_off_site)",
               "configure an off-site backup_repository; meanwhile ship 'knowledgebeast audit "
               "export' output off this machine");
}

}  // namespace posture_rules

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kOk:
      return "ok";
    case Verdict::kWarn:
      return "warn";
    case Verdict::kFail:
      return "fail";
  }
  return "fail";
}

std::optional<Verdict> ParseVerdict(std::string_view name) {
  for (Verdict v : {Verdict::kOk, Verdict::kWarn, Verdict::kFail}) {
    if (VerdictName(v) == name) return v;
  }
  return std::nullopt;
}

Result<PostureLimits> DecodePostureLimits(const std::optional<std::string>& backup_objective,
                                          const std::optional<std::string>& max_admin_keys) {
  PostureLimits limits;
  if (backup_objective) {
    auto ms = repo::ParseDuration(*backup_objective);
    if (!ms.ok() || *ms <= 0) {
      return Status::InvalidArgument(
          "backup_objective: expected a duration such as 2h or 1d, got " +
          posture_rules::Quoted(*backup_objective));
    }
    limits.backup_objective_ms = *ms;
  }
  if (max_admin_keys) {
    const std::string& t = *max_admin_keys;
    int n = -1;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size() || n < 0) {
      return Status::InvalidArgument("max_admin_keys: expected an integer >= 0, got " +
                                     posture_rules::Quoted(t));
    }
    limits.max_admin_keys = n;
  }
  return limits;
}

RepositoryPlace ClassifyRepository(std::string_view url, std::string_view data_dir,
                                   bool local_default) {
  if (local_default) return RepositoryPlace::kInsideDataDir;
  if (url.rfind("s3://", 0) == 0) return RepositoryPlace::kObjectStore;
  constexpr std::string_view kFile = "file://";
  if (url.rfind(kFile, 0) == 0 && !data_dir.empty()) {
    namespace fs = std::filesystem;
    const fs::path repo = fs::path(url.substr(kFile.size())).lexically_normal();
    const fs::path data = fs::path(data_dir).lexically_normal();
    // Inside = the data directory itself or below it, compared by whole path components.
    auto r = repo.begin();
    bool inside = true;
    for (auto d = data.begin(); d != data.end(); ++d, ++r) {
      if (d->empty()) continue;  // a trailing separator
      if (r == repo.end() || *r != *d) {
        inside = false;
        break;
      }
    }
    if (inside) return RepositoryPlace::kInsideDataDir;
  }
  return RepositoryPlace::kLocalDirectory;
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost") return true;
  std::optional<IpAddress> ip = ParseIpAddress(host);
  if (!ip) return false;
  static const Cidr kV4 = *Cidr::Parse("127.0.0.0/8");
  static const Cidr kV6 = *Cidr::Parse("::1");
  return kV4.Contains(*ip) || kV6.Contains(*ip);
}

std::vector<PostureCheck> EvaluatePosture(const PostureFacts& facts, const PostureLimits& limits) {
  namespace r = posture_rules;
  const RepositoryPlace place =
      ClassifyRepository(facts.repository_url, facts.data_dir, facts.repository_local_default);
  const bool loopback = IsLoopbackHost(facts.host);
  return {
      r::BackupsOffSite(facts, place),
      r::BackupAge(facts, limits),
      r::Verification(facts),
      r::KeysExpiry(facts),
      r::AdminKeys(facts, limits),
      r::Tls(facts, loopback),
      r::MetricsAuth(facts, loopback),
      r::AddressRulesCheck(facts, loopback),
      r::AuditReads(facts),
      r::AuditOffSite(facts, place),
  };
}

Verdict OverallVerdict(const std::vector<PostureCheck>& checks) {
  Verdict worst = Verdict::kOk;
  for (const PostureCheck& c : checks) worst = std::max(worst, c.verdict);
  return worst;
}

json PostureReportJson(const std::vector<PostureCheck>& checks) {
  json list = json::array();
  for (const PostureCheck& c : checks) {
    list.push_back({{"id", c.id},
                    {"verdict", std::string(VerdictName(c.verdict))},
                    {"finding", c.finding},
                    {"fix", c.fix}});
  }
  return {{"verdict", std::string(VerdictName(OverallVerdict(checks)))}, {"checks", list}};
}

Result<std::vector<PostureCheck>> DecodePostureReport(const json& report) {
  if (!report.is_object() || !report.contains("checks") || !report["checks"].is_array()) {
    return Status::InvalidArgument("a posture report has no 'checks' list");
  }
  std::vector<PostureCheck> checks;
  for (const json& c : report["checks"]) {
    if (!c.is_object()) return Status::InvalidArgument("a posture check is not an object");
    for (const char* field : {"id", "verdict", "finding", "fix"}) {
      if (!c.contains(field) || !c[field].is_string()) {
        return Status::InvalidArgument(std::string("a posture check has no string '") + field +
                                       "'");
      }
    }
    std::optional<Verdict> v = ParseVerdict(c["verdict"].get<std::string>());
    if (!v) {
      return Status::InvalidArgument("a posture check has an unknown verdict " +
                                     c["verdict"].dump());
    }
    checks.push_back({c["id"].get<std::string>(), *v, c["finding"].get<std::string>(),
                      c["fix"].get<std::string>()});
  }
  return checks;
}

}  // namespace kb::api
