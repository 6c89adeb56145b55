// `keys create | list | revoke`: API key administration. A new key's secret is printed once:
// only its hash is stored, so there is no command that can show it again.
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/json_encoding.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"

namespace kb::cli {
namespace {

using Json = nlohmann::json;

struct KeysOptions {
  CommonOptions common;
  std::string name;
  std::string scope = "read";
  std::vector<std::string> projects;
  int expires_in_days = 0;
  std::string id;
};

int RunCreate(const KeysOptions& opts) {
  std::optional<KeyScope> scope = ParseKeyScope(opts.scope);
  if (!scope) return ReportError("--scope must be read, write or admin", /*usage=*/true);
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  std::optional<int> expires;
  if (opts.expires_in_days > 0) expires = opts.expires_in_days;
  Result<CreatedKey> key = backend->CreateKey(opts.name, *scope, opts.projects, expires);
  if (!key.ok()) return ReportError(key.status());
  if (opts.common.json) {
    // The shape of POST /api/v1/admin/api-keys.
    PrintJson({{"key", api::EncodeKey(key->record)}, {"secret", key->secret}});
    return kExitOk;
  }
  std::cout << "Created key " << key->record.id << " (" << KeyScopeName(key->record.scope)
            << ")\n\nSecret (shown once; it will NOT be shown again - store it now):\n\n    "
            << key->secret << "\n"
            << std::endl;
  return kExitOk;
}

int RunList(const KeysOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Result<std::vector<ApiKeyRecord>> keys = backend->ListKeys();
  if (!keys.ok()) return ReportError(keys.status());
  if (opts.common.json) {
    Json list = Json::array();
    for (const ApiKeyRecord& k : *keys) list.push_back(api::EncodeKey(k));
    PrintJson({{"keys", list}, {"count", keys->size()}});
    return kExitOk;
  }
  for (const ApiKeyRecord& k : *keys) {
    std::cout << k.id << "  " << KeyScopeName(k.scope) << "  " << k.name;
    if (!k.projects.empty()) {
      std::cout << "  projects:";
      for (const std::string& p : k.projects) std::cout << " " << p;
    }
    if (k.revoked_at_ms) std::cout << "  REVOKED " << FormatIso8601(*k.revoked_at_ms);
    if (k.expires_at_ms) std::cout << "  expires " << FormatIso8601(*k.expires_at_ms);
    std::cout << "\n";
  }
  std::cout << std::flush;
  return kExitOk;
}

int RunRevoke(const KeysOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Status status = backend->RevokeKey(opts.id);
  if (!status.ok()) return ReportError(status);
  if (opts.common.json) {
    PrintJson({{"revoked", opts.id}});
  } else {
    std::cout << "Revoked key " << opts.id << std::endl;
  }
  return kExitOk;
}

}  // namespace

void RegisterKeysCommand(CLI::App* root, CommandRegistry* registry) {
  CLI::App* keys = root->add_subcommand(
      "keys", "Create, list and revoke API keys (scopes: read < write < admin)");
  keys->footer(kDirectModeNote);
  keys->require_subcommand(1);

  auto create = std::make_shared<KeysOptions>();
  CLI::App* cmd = AddClientSubcommand(keys, "create", "Create a key and print its secret once.",
                                      &create->common);
  cmd->add_option("-n,--name", create->name, "a label for the key")->required();
  cmd->add_option("-s,--scope", create->scope, "read (default), write or admin")
      ->check(CLI::IsMember({"read", "write", "admin"}));
  cmd->add_option("-p,--project", create->projects,
                  "limit the key to this project (id or name); repeatable; default all");
  cmd->add_option("--expires-in-days", create->expires_in_days, "expire after this many days")
      ->check(CLI::PositiveNumber);
  registry->Add(cmd, [create] { return RunCreate(*create); });

  auto list = std::make_shared<KeysOptions>();
  cmd = AddClientSubcommand(keys, "list", "List keys (never their secrets).", &list->common);
  registry->Add(cmd, [list] { return RunList(*list); });

  auto revoke = std::make_shared<KeysOptions>();
  cmd = AddClientSubcommand(keys, "revoke", "Revoke a key at once.", &revoke->common);
  cmd->add_option("id", revoke->id, "key id (key_...)")->required();
  registry->Add(cmd, [revoke] { return RunRevoke(*revoke); });
}

}  // namespace kb::cli
