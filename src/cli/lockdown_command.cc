// `lockdown on | read-only | off | status` and `ip-rules show | clear`: the service mode and the
// address rules (api/access_control.h) from the command line. Two ways, because an incident may
// leave only one of them:
//   - directly in a data directory (--data-dir): writes the catalog setting. A stopped server
//     starts in that mode; a running one picks it up within about a second (it re-reads the
//     setting), with no restart and no key needed — only write access to the files.
//   - against a running server (--url, --api-key with an admin key): the admin routes.
// `ip-rules clear --data-dir` is the way back for an administrator whose own address a forced
// rule refuses: the server cannot be asked any more, the files can.

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/access_control.h"
#include "cli/admin_http.h"
#include "cli/backend.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/data_layout.h"

namespace kb::cli {
namespace {

using Json = nlohmann::json;

constexpr int kTimeoutSeconds = 30;

struct LockdownOptions {
  CommonOptions common;
  std::string action;
  std::string reason;
};

// "on" -> lockdown; "read-only" -> read_only; "off"; nullopt for "status".
std::optional<api::ServiceMode> ActionMode(const std::string& action) {
  if (action == "on") return api::ServiceMode::kLockdown;
  if (action == "status") return std::nullopt;
  return api::ParseServiceMode(action);
}

Status HttpFailure(int http_status, const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  std::string message = "HTTP " + std::to_string(http_status);
  if (j.is_object() && j.contains("error") && j["error"].is_object() &&
      j["error"].value("message", "") != "") {
    message = j["error"]["message"].get<std::string>();
  }
  switch (http_status) {
    case 400:
      return Status::InvalidArgument(message);
    case 401:
      return Status::Unauthenticated(message);
    case 403:
      return Status::PermissionDenied(message);
    case 429:
      return Status::ResourceExhausted(message);
    case 503:
      return Status::Unavailable(message);
    default:
      return Status::Internal(message);
  }
}

// GET (empty body) or `method` with a JSON body against the server of --url; the 200 answer.
Result<Json> Send(const Config& config, const std::string& method, const std::string& path,
                  const std::optional<Json>& body) {
  const std::string text =
      body ? body->dump(-1, ' ', false, Json::error_handler_t::replace) : std::string();
  KB_ASSIGN_OR_RETURN(AdminHttpResponse r, AdminHttp(config, method, path, text, kTimeoutSeconds));
  if (r.status != 200) return HttpFailure(r.status, r.body);
  Json j = Json::parse(r.body, nullptr, false);
  if (!j.is_object()) return Status::Internal("the server's answer is not JSON");
  return j;
}

Result<api::ModeState> Remote(const Config& config, std::optional<api::ServiceMode> mode,
                              const std::string& reason) {
  constexpr char kPath[] = "/api/v1/admin/lockdown";
  KB_ASSIGN_OR_RETURN(Json j, mode ? Send(config, "POST", kPath,
                                          Json{{"mode", std::string(api::ServiceModeName(*mode))},
                                               {"reason", reason}})
                                   : Send(config, "GET", kPath, std::nullopt));
  api::ModeState m;
  m.mode = api::ParseServiceMode(j.value("mode", "")).value_or(api::ServiceMode::kOff);
  m.reason = j.value("reason", "");
  m.since_ms = j["since"].is_string() ? ParseIso8601(j["since"].get<std::string>()).value_or(0) : 0;
  m.set_by = j.value("set_by", "");
  return m;
}

Result<std::unique_ptr<Catalog>> OpenCatalog(const Config& config) {
  const std::string path = layout::CatalogDb(config.data_dir);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::NotFound(config.data_dir +
                            " is not a data directory (no catalog.db); run "
                            "'knowledgebeast init' or give --data-dir");
  }
  return Catalog::Open(path, SystemClock::Default());
}

Result<api::ModeState> Direct(const Config& config, std::optional<api::ServiceMode> mode,
                              const std::string& reason) {
  KB_ASSIGN_OR_RETURN(std::unique_ptr<Catalog> catalog, OpenCatalog(config));
  if (!mode) return api::LoadMode(catalog.get());
  return api::StoreMode(catalog.get(), *mode, reason, "cli", SystemClock::Default()->NowMillis());
}

int RunLockdown(const LockdownOptions& opts) {
  int exit_code = kExitOk;
  std::optional<Config> config =
      LoadCommandConfig(opts.common, /*server_defaults=*/false, &exit_code);
  if (!config) return exit_code;
  const std::optional<api::ServiceMode> mode = ActionMode(opts.action);
  if (!mode && opts.action != "status") {
    return ReportError("unknown action '" + opts.action + "'", /*usage=*/true);
  }
  const bool remote = !config->url.empty();
  Result<api::ModeState> state =
      remote ? Remote(*config, mode, opts.reason) : Direct(*config, mode, opts.reason);
  if (!state.ok())
    return ReportError(state.status(), state.status().code() == Code::kInvalidArgument);
  if (opts.common.json) {
    PrintJson(state->ToJson());
    return kExitOk;
  }
  switch (state->mode) {
    case api::ServiceMode::kOff:
      std::cout << "Mode: off (serving normally)";
      break;
    case api::ServiceMode::kReadOnly:
      std::cout << "Mode: READ-ONLY (changes refused with 503)";
      break;
    case api::ServiceMode::kLockdown:
      std::cout << "Mode: LOCKDOWN (only admin keys are served)";
      break;
  }
  if (state->since_ms > 0) std::cout << " since " << FormatIso8601(state->since_ms);
  if (!state->set_by.empty()) std::cout << " by " << state->set_by;
  std::cout << "\n";
  if (!state->reason.empty()) std::cout << "Reason: " << state->reason << "\n";
  if (mode && !remote) {
    std::cout << "Stored in " << config->data_dir
              << "; a running server applies it within about a second.\n";
  }
  std::cout << std::flush;
  return kExitOk;
}

struct IpRulesOptions {
  CommonOptions common;
  std::string action;
};

int RunIpRules(const IpRulesOptions& opts) {
  int exit_code = kExitOk;
  std::optional<Config> config =
      LoadCommandConfig(opts.common, /*server_defaults=*/false, &exit_code);
  if (!config) return exit_code;
  const bool clear = opts.action == "clear";
  Json rules;
  if (!config->url.empty()) {
    constexpr char kPath[] = "/api/v1/admin/ip-rules";
    Result<Json> r =
        clear ? Send(*config, "PUT", kPath, Json{{"allow", Json::array()}, {"deny", Json::array()}})
              : Send(*config, "GET", kPath, std::nullopt);
    if (!r.ok()) return ReportError(r.status());
    rules = std::move(r).value();
  } else {
    Result<std::unique_ptr<Catalog>> catalog = OpenCatalog(*config);
    if (!catalog.ok()) return ReportError(catalog.status());
    if (clear) {
      api::AddressRules empty;
      empty.updated_at_ms = SystemClock::Default()->NowMillis();
      empty.updated_by = "cli";
      Status s = api::StoreAddressRules(catalog->get(), empty);
      if (!s.ok()) return ReportError(s);
    }
    Result<api::AddressRules> loaded = api::LoadAddressRules(catalog->get());
    if (!loaded.ok()) return ReportError(loaded.status());
    rules = loaded->ToJson();
  }
  if (opts.common.json) {
    PrintJson(rules);
    return kExitOk;
  }
  for (const char* list : {"allow", "deny"}) {
    std::cout << list << ":";
    if (!rules.contains(list) || !rules[list].is_array() || rules[list].empty()) {
      std::cout << (std::string_view(list) == "allow" ? " (empty: every address not denied)"
                                                      : " (empty)");
    }
    if (rules.contains(list) && rules[list].is_array()) {
      for (const Json& r : rules[list]) std::cout << " " << r.get<std::string>();
    }
    std::cout << "\n";
  }
  if (clear && config->url.empty()) {
    std::cout << "Cleared in " << config->data_dir
              << "; a running server applies it within about a second.\n";
  }
  std::cout << std::flush;
  return kExitOk;
}

struct AuditReadsOptions {
  CommonOptions common;
  std::string action;  // on | off | status
};

int RunAuditReads(const AuditReadsOptions& opts) {
  int exit_code = kExitOk;
  std::optional<Config> config =
      LoadCommandConfig(opts.common, /*server_defaults=*/false, &exit_code);
  if (!config) return exit_code;
  const bool set = opts.action != "status";
  const bool enabled = opts.action == "on";
  Json state;
  if (!config->url.empty()) {
    constexpr char kPath[] = "/api/v1/admin/audit/reads";
    Result<Json> r = set ? Send(*config, "PUT", kPath, Json{{"enabled", enabled}})
                         : Send(*config, "GET", kPath, std::nullopt);
    if (!r.ok()) return ReportError(r.status());
    state = std::move(r).value();
  } else {
    Result<std::unique_ptr<Catalog>> catalog = OpenCatalog(*config);
    if (!catalog.ok()) return ReportError(catalog.status());
    Result<api::AuditReadsState> a = set ? api::StoreAuditReads(catalog->get(), enabled, "cli",
                                                                SystemClock::Default()->NowMillis())
                                         : api::LoadAuditReads(catalog->get());
    if (!a.ok()) return ReportError(a.status());
    // Without a server the configured default is this process's configuration.
    state = a->ToJson(config->audit_reads);
    if (set) {
      AuditEvent event;
      event.route = "audit reads";
      event.action = "audit_reads.set";
      event.outcome = "ok";
      event.detail = std::string("audit_reads switched ") + (enabled ? "on" : "off");
      RecordCliAudit(config->data_dir, std::move(event));
    }
  }
  if (opts.common.json) {
    PrintJson(state);
    return kExitOk;
  }
  std::cout << "Successful reads are " << (state.value("enabled", false) ? "" : "NOT ")
            << "audited ("
            << (state.value("source", "") == "runtime" ? "switched at run time" : "as configured")
            << ")";
  if (state["since"].is_string()) std::cout << " since " << state["since"].get<std::string>();
  if (!state.value("set_by", "").empty()) std::cout << " by " << state["set_by"].get<std::string>();
  std::cout << "\n";
  if (set && config->url.empty()) {
    std::cout << "Stored in " << config->data_dir
              << "; a running server applies it within about a second.\n";
  }
  std::cout << std::flush;
  return kExitOk;
}

}  // namespace

void RegisterAuditReadsCommand(CLI::App* audit, CommandRegistry* registry) {
  auto opts = std::make_shared<AuditReadsOptions>();
  CLI::App* cmd = audit->add_subcommand(
      "reads", "Switch the auditing of successful reads on or off at run time, or show it");
  cmd->footer(
      "'on' records every successful read (GET, searches) of authenticated routes in the audit "
      "log, 'off' stops it, 'status' shows it; the switch overrides the audit_reads setting and "
      "is recorded in the audit log. Without --url it is written into the data directory: a "
      "running server applies it within about a second, no restart. With --url (and an admin "
      "--api-key) it goes through the server (PUT /api/v1/admin/audit/reads).");
  cmd->add_option("action", opts->action, "on | off | status")
      ->required()
      ->check(CLI::IsMember({"on", "off", "status"}));
  AddClientOptions(cmd, &opts->common);
  registry->Add(cmd, [opts] { return RunAuditReads(*opts); });
}

void RegisterIpRulesCommand(CLI::App* root, CommandRegistry* registry) {
  auto opts = std::make_shared<IpRulesOptions>();
  CLI::App* cmd = root->add_subcommand(
      "ip-rules", "Show or clear the address allow/deny rules (set them with the admin API)");
  cmd->footer(
      "Rules are edited with PUT /api/v1/admin/ip-rules (docs/API.md). 'clear' empties both "
      "lists: written into the data directory (--data-dir) it is the way back in for an "
      "administrator whose own address a forced rule refuses; a running server applies it within "
      "about a second. With --url (and an admin --api-key) both actions go through the server.");
  cmd->add_option("action", opts->action, "show | clear")
      ->required()
      ->check(CLI::IsMember({"show", "clear"}));
  AddClientOptions(cmd, &opts->common);
  registry->Add(cmd, [opts] { return RunIpRules(*opts); });
}

void RegisterLockdownCommand(CLI::App* root, CommandRegistry* registry) {
  auto opts = std::make_shared<LockdownOptions>();
  CLI::App* cmd = root->add_subcommand(
      "lockdown", "Lock the server down, make it read-only, lift either, or show the mode");
  cmd->footer(
      "Actions: 'on' = lockdown (only admin keys not limited to projects are served; everything "
      "else gets 503 naming the reason; /health and /ready still answer), 'read-only' (reads "
      "work, changes to projects and documents get 503), 'off', 'status'. --reason is required "
      "for 'on' and 'read-only'; refused clients are shown it.\n"
      "Without --url the mode is written into the data directory (--data-dir): a stopped server "
      "starts in it, a running server applies it within about a second; no API key is needed, "
      "only write access to the files. With --url (and --api-key, an admin key) it goes through "
      "the running server (POST /api/v1/admin/lockdown).");
  cmd->add_option("action", opts->action, "on | read-only | off | status")
      ->required()
      ->check(CLI::IsMember({"on", "read-only", "read_only", "off", "status"}));
  cmd->add_option("--reason", opts->reason, "why (required for on and read-only)");
  AddClientOptions(cmd, &opts->common);
  registry->Add(cmd, [opts] { return RunLockdown(*opts); });
}

}  // namespace kb::cli
