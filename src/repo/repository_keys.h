// The plaintext objects of a repository: `config` and `keys/<key-id>`
// (docs/format/BACKUP_REPOSITORY.md, "config", "keys/<key-id>"), and turning a KeySource into
// the master key. Secrets (passphrases, key file bytes, KEKs, the master key) never appear in
// errors or logs.
//
// Thread-safety: pure functions over their arguments (and the store, which is thread-safe).
#pragma once

#include <string>
#include <vector>

#include "blob/blob_store.h"
#include "common/status.h"
#include "repo/crypto.h"
#include "repo/repository.h"

namespace kb::repo {

struct RepoConfig {
  std::string id;
  std::string created;
  RepositoryParams params;
  std::string key_check;  // the sealed box (binary)
};

// InvalidArgument naming the field if `params` are outside the format's ranges.
Status ValidateParams(const RepositoryParams& params);

std::string EncodeConfig(const RepoConfig& config);
// Corruption for a malformed config or parameters outside the ranges; FailedPrecondition for a
// newer version or an unknown compression.
Result<RepoConfig> ParseConfig(std::string_view text);

struct KeyObject {
  std::string id;
  std::string created;
  std::string label;
  std::string kdf;  // "scrypt" | "keyfile"
  int log2_n = 0, r = 0, p = 0;
  std::string salt;     // binary
  std::string wrapped;  // binary sealed box
};

std::string EncodeKeyObject(const KeyObject& key);
// `name` is the object key, for errors.
Result<KeyObject> ParseKeyObject(std::string_view name, std::string_view text);

// The secret a KeySource provides, read once: the passphrase or the key file's bytes.
struct KeyMaterial {
  bool is_file = false;
  SecretBytes secret;
};
// InvalidArgument if `source` is empty, holds both kinds, or the key file cannot be read or is
// shorter than 32 bytes (the message names the path, never the content).
Result<KeyMaterial> LoadKeyMaterial(const KeySource& source);

// The KEK of `key` from `material`; FailedPrecondition if the kinds differ (a passphrase cannot
// open a key-file key).
Result<SecretBytes> DeriveKek(const KeyObject& key, const KeyMaterial& material);

// A new keys/ object wrapping `master` for `material`.
Result<KeyObject> MakeKeyObject(const MasterKey& master, const std::string& repo_id,
                                const KeyMaterial& material, const std::string& label,
                                int scrypt_log2_n, int64_t now_ms);

// Unwraps `key` into the master key: Unauthenticated if the KEK does not open it.
Result<MasterKey> UnwrapMasterKey(const KeyObject& key, const std::string& repo_id,
                                  const KeyMaterial& material);

}  // namespace kb::repo
