// `keys create | list | revoke | rotate | revoke-all | reinstate`: API key administration. A
// new secret (create, rotate, revoke-all --include-admin) is printed once: only its hash is
// stored, so there is no command that can show it again.
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
  int64_t overlap_seconds = 0;
  bool include_admin = false;
};

void PrintSecretOnce(const std::string& what, const CreatedKey& key) {
  std::cout << what << " " << key.record.id << " (" << KeyScopeName(key.record.scope)
            << ")\n\nSecret (shown once; it will NOT be shown again - store it now):\n\n    "
            << key.secret << "\n"
            << std::endl;
}

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
  PrintSecretOnce("Created key", *key);
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
    if (k.revoked_at_ms) {
      std::cout << "  REVOKED " << FormatIso8601(*k.revoked_at_ms);
      if (!k.revoked_reason.empty()) std::cout << " (" << k.revoked_reason << ")";
    }
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

int RunRotate(const KeysOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Result<CreatedKey> key = backend->RotateKey(opts.id, opts.overlap_seconds);
  if (!key.ok()) return ReportError(key.status());
  if (opts.common.json) {
    PrintJson({{"key", api::EncodeKey(key->record)}, {"secret", key->secret}});
    return kExitOk;
  }
  PrintSecretOnce("Rotated key", *key);
  if (key->record.previous_expires_at_ms) {
    std::cout << "The previous secret keeps working until "
              << FormatIso8601(*key->record.previous_expires_at_ms) << "." << std::endl;
  } else {
    std::cout << "The previous secret no longer works." << std::endl;
  }
  return kExitOk;
}

int RunRevokeAll(const KeysOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Result<RevokeAllResult> r = backend->RevokeAllKeys(opts.include_admin);
  if (!r.ok()) return ReportError(r.status());
  if (opts.common.json) {
    Json out = {{"revoked", r->revoked}, {"count", r->revoked.size()}};
    if (r->new_admin) {
      out["new_admin_key"] = {{"key", api::EncodeKey(r->new_admin->record)},
                              {"secret", r->new_admin->secret}};
    }
    PrintJson(out);
    return kExitOk;
  }
  std::cout << "Revoked " << r->revoked.size() << " keys\n";
  for (const std::string& id : r->revoked) std::cout << "  " << id << "\n";
  std::cout << std::flush;
  if (r->new_admin) PrintSecretOnce("New admin key", *r->new_admin);
  return kExitOk;
}

int RunReinstate(const KeysOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Status status = backend->ReinstateKey(opts.id);
  if (!status.ok()) return ReportError(status);
  if (opts.common.json) {
    PrintJson({{"reinstated", opts.id}});
  } else {
    std::cout << "Reinstated key " << opts.id << std::endl;
  }
  return kExitOk;
}

}  // namespace

void RegisterKeysCommand(CLI::App* root, CommandRegistry* registry) {
  CLI::App* keys = root->add_subcommand(
      "keys", "Create, list, revoke, rotate and reinstate API keys (scopes: read < write < admin)");
  keys->footer(std::string(kDirectModeNote) +
               "\nKeys limited to a project are revoked when it is deleted; `keys reinstate` "
               "brings such a key back once the project is restored. Revoked keys of any other "
               "kind stay revoked: create a new key.");
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

  auto rotate = std::make_shared<KeysOptions>();
  cmd = AddClientSubcommand(keys, "rotate",
                            "Issue a new secret for a key (same id, scope and projects) and print "
                            "it once.",
                            &rotate->common);
  cmd->add_option("id", rotate->id, "key id (key_...)")->required();
  cmd->add_option("--overlap-seconds", rotate->overlap_seconds,
                  "keep the old secret valid this many seconds (default 0: it stops at once; "
                  "at most " + std::to_string(kMaxRotationOverlapSeconds) + ")")
      ->check(CLI::Range(int64_t{0}, kMaxRotationOverlapSeconds));
  registry->Add(cmd, [rotate] { return RunRotate(*rotate); });

  auto revoke_all = std::make_shared<KeysOptions>();
  cmd = AddClientSubcommand(
      keys, "revoke-all",
      "Revoke every key except the one this command authenticates with (--url); with "
      "--include-admin every key, printing a new admin key once.",
      &revoke_all->common);
  cmd->add_flag("--include-admin", revoke_all->include_admin,
                "revoke the calling key and every admin key too, and create a new admin key "
                "(required without --url: there is no calling key)");
  registry->Add(cmd, [revoke_all] { return RunRevokeAll(*revoke_all); });

  auto reinstate = std::make_shared<KeysOptions>();
  cmd = AddClientSubcommand(keys, "reinstate",
                            "Undo the revocation of a key that a project delete revoked.",
                            &reinstate->common);
  cmd->add_option("id", reinstate->id, "key id (key_...)")->required();
  registry->Add(cmd, [reinstate] { return RunReinstate(*reinstate); });
}

}  // namespace kb::cli
