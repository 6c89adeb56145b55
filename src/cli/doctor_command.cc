// `doctor`: the installation's security and disaster-recovery posture, one verdict per check
// (api/posture.h decides; docs/SECURITY.md "Posture checks" is the table). Two ways in:
//   - --data-dir (with the configuration `serve` would read: --config / KB_CONFIG / KB_*):
//     the catalog (keys, address rules, the audit_reads switch) and the backup repository the
//     configuration names (or the local default), read without a server. It judges the
//     configuration it is given, so give it the server's.
//   - --url with an admin key: the running server reports on itself (GET /api/v1/admin/posture),
//     with the address, TLS and settings it actually runs with.
// Exit codes: 0 nothing fails (warnings alone too, unless --strict); 1 a check fails (or, with
// --strict, warns); 2 bad flags or configuration, or the target cannot be read at all.

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "api/access_control.h"
#include "api/posture.h"
#include "backup/service.h"
#include "cli/admin_http.h"
#include "cli/backup_settings.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"
#include "common/data_layout.h"
#include "store/catalog.h"

namespace kb::cli {
namespace {

using Json = nlohmann::json;

constexpr int kDoctorTimeoutSeconds = 60;  // the server reads its repository to answer

struct DoctorOptions {
  CommonOptions common;
  std::optional<std::string> backup_objective;
  std::optional<std::string> max_admin_keys;
  bool strict = false;
};

std::string AbsoluteDir(const std::string& dir) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(dir, ec);
  return ec ? dir : abs.lexically_normal().string();
}

// The facts of a data directory and the configuration that serves it. NotFound when the
// directory is not a data directory (nothing is created there).
Result<api::PostureFacts> DirectFacts(const Config& config) {
  const std::string data_dir = AbsoluteDir(config.data_dir);
  const std::string catalog_path = layout::CatalogDb(data_dir);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(catalog_path, ec)) {
    return Status::NotFound(config.data_dir +
                            " is not a data directory (no catalog.db); name it with --data-dir "
                            "or KB_DATA_DIR, or ask a running server with --url");
  }
  const Clock* clock = SystemClock::Default();
  api::PostureFacts f;
  f.now_ms = clock->NowMillis();
  f.data_dir = data_dir;
  f.host = config.host;
  f.tls = !config.tls_cert_file.empty() && !config.tls_key_file.empty();
  f.metrics_require_auth = config.metrics_require_auth;

  KB_ASSIGN_OR_RETURN(std::unique_ptr<Catalog> catalog, Catalog::Open(catalog_path, clock));
  KB_ASSIGN_OR_RETURN(f.keys, catalog->ListKeys());
  KB_ASSIGN_OR_RETURN(api::AddressRules rules, api::LoadAddressRules(catalog.get()));
  f.allow_rules = rules.allow.size();
  f.deny_rules = rules.deny.size();
  KB_ASSIGN_OR_RETURN(api::AuditReadsState reads, api::LoadAuditReads(catalog.get()));
  f.audit_reads = reads.enabled.value_or(config.audit_reads);

  // The same resolution `serve` makes: BackupService::Start asks ResolveRepositoryTarget too.
  KB_ASSIGN_OR_RETURN(backup::BackupServiceOptions backup, BackupServiceOptionsFromConfig(config));
  const backup::RepositoryTarget target = backup::ResolveRepositoryTarget(backup, data_dir);
  f.repository_url = target.url;
  f.repository_local_default = target.local_default;
  f.backup_interval_ms = backup.interval_ms;
  f.verify_interval_ms = backup.verify_interval_ms;
  // An unreadable repository is a finding (the backups cannot be restored from here), not a
  // reason to give up on the rest of the report.
  api::SetRepositoryFacts(backup::ReadRepositoryFacts(target, backup.blob, clock), &f);
  return f;
}

// The server's own report. Any failure means the target could not be read.
Result<std::vector<api::PostureCheck>> RemoteReport(const Config& config,
                                                    const DoctorOptions& opts) {
  std::multimap<std::string, std::string> query;
  if (opts.backup_objective) query.emplace("backup_objective", *opts.backup_objective);
  if (opts.max_admin_keys) query.emplace("max_admin_keys", *opts.max_admin_keys);
  KB_ASSIGN_OR_RETURN(AdminHttpResponse r, AdminHttp(config, "GET", "/api/v1/admin/posture", "",
                                                     kDoctorTimeoutSeconds, query));
  Json body = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (r.status != 200) {
    std::string message = "HTTP " + std::to_string(r.status);
    if (body.is_object() && body.contains("error") && body["error"].is_object() &&
        body["error"].contains("message") && body["error"]["message"].is_string()) {
      message += ": " + body["error"]["message"].get<std::string>();
    }
    if (r.status == 404) message += " (a server older than the posture route?)";
    return Status::Unavailable(config.url + " refused the posture report: " + message);
  }
  Result<std::vector<api::PostureCheck>> checks = api::DecodePostureReport(body);
  if (!checks.ok()) return checks.status().WithContext("the server's answer");
  return checks;
}

void PrintHuman(const std::vector<api::PostureCheck>& checks, const std::string& target) {
  size_t width = 0;
  for (const api::PostureCheck& c : checks) width = std::max(width, c.id.size());
  int counts[3] = {0, 0, 0};
  std::cout << "Posture of " << target << "\n";
  for (const api::PostureCheck& c : checks) {
    ++counts[static_cast<int>(c.verdict)];
    std::cout << std::left << std::setw(5) << api::VerdictName(c.verdict) << " "
              << std::setw(static_cast<int>(width)) << c.id << "  " << c.finding << "\n";
    if (!c.fix.empty()) {
      std::cout << std::string(5 + 1 + width + 2, ' ') << "fix: " << c.fix << "\n";
    }
  }
  std::cout << "verdict: " << api::VerdictName(api::OverallVerdict(checks)) << " (" << counts[2]
            << " fail, " << counts[1] << " warn, " << counts[0] << " ok)\n"
            << std::flush;
}

int RunDoctor(const DoctorOptions& opts) {
  int exit_code = kExitOk;
  std::optional<Config> config =
      LoadCommandConfig(opts.common, /*server_defaults=*/false, &exit_code);
  if (!config) return exit_code;
  // Bad limits are usage errors here, whichever side would evaluate them.
  Result<api::PostureLimits> limits =
      api::DecodePostureLimits(opts.backup_objective, opts.max_admin_keys);
  if (!limits.ok()) {
    // "backup_objective: ..." names the route's parameter; here the flag was given.
    std::string message = limits.status().message();
    const size_t colon = message.find(':');
    std::replace(message.begin(), message.begin() + (colon == std::string::npos ? 0 : colon), '_',
                 '-');
    return ReportError("--" + message, /*usage=*/true);
  }
  std::vector<api::PostureCheck> checks;
  std::string target;
  if (!config->url.empty()) {
    Result<std::vector<api::PostureCheck>> remote = RemoteReport(*config, opts);
    if (!remote.ok()) return ReportError(remote.status(), /*usage=*/true);
    checks = std::move(remote).value();
    target = config->url;
  } else {
    Result<api::PostureFacts> facts = DirectFacts(*config);
    if (!facts.ok()) return ReportError(facts.status(), /*usage=*/true);
    checks = api::EvaluatePosture(*facts, *limits);
    target = facts->data_dir;
  }
  if (opts.common.json) {
    PrintJson(api::PostureReportJson(checks));
  } else {
    PrintHuman(checks, target);
  }
  const api::Verdict verdict = api::OverallVerdict(checks);
  if (verdict == api::Verdict::kFail) return kExitFailure;
  if (verdict == api::Verdict::kWarn && opts.strict) return kExitFailure;
  return kExitOk;
}

}  // namespace

void RegisterDoctorCommand(CLI::App* root, CommandRegistry* registry) {
  auto opts = std::make_shared<DoctorOptions>();
  CLI::App* cmd = root->add_subcommand(
      "doctor",
      "Report the security and backup posture (backups off-site and recent, verification, keys, "
      "TLS, /metrics, address rules, audit): one verdict per check, exit 1 on any failure");
  cmd->footer(
      "Without --url it reads the data directory (--data-dir) and judges the configuration it is "
      "given (--config, KB_*): give it the server's. With --url and an admin key the running "
      "server reports on itself. Exit 0: nothing fails; 1: a check fails (or warns, with "
      "--strict); 2: bad flags, or the target cannot be read. The checks: docs/SECURITY.md.");
  AddClientOptions(cmd, &opts->common);
  AddOptionalString(cmd, "--backup-objective", &opts->backup_objective,
                    "how old the newest full backup may be, a duration such as 2h (default: twice "
                    "backup_interval)");
  AddOptionalString(cmd, "--max-admin-keys", &opts->max_admin_keys,
                    "warn above this many active admin keys (default 3)");
  cmd->add_flag("--strict", opts->strict, "exit 1 on warnings too");
  registry->Add(cmd, [opts] { return RunDoctor(*opts); });
}

}  // namespace kb::cli
