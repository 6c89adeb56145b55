// config and keys/ objects: JSON encoding, range checks, key wrapping.
#include "repo/repository_keys.h"

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/crypto_util.h"
#include "common/file_util.h"
#include "repo/repository_context.h"
#include "repo/repository_format.h"

namespace kb::repo {

namespace {

using nlohmann::json;

bool IsPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

// The reason a parameter set is invalid, or "" if it is valid.
std::string ParamsProblem(const RepositoryParams& p) {
  if (p.chunk_size < kMinChunkSize || p.chunk_size > kMaxChunkSize || !IsPowerOfTwo(p.chunk_size)) {
    return "chunk_size must be a power of two from 512 to 1048576";
  }
  if (p.block_size < p.chunk_size || p.block_size > kMaxBlockSize) {
    return "block_size must be at least chunk_size and at most 8 MiB";
  }
  if (p.pack_size < kMinPackSize || p.pack_size > kMaxPackSize) {
    return "pack_size must be from 1 MiB to 1 GiB";
  }
  if (p.tree_fanout < kMinTreeFanout || p.tree_fanout > kMaxTreeFanout) {
    return "tree_fanout must be from 16 to 65536";
  }
  if (static_cast<int64_t>(kChunkIdBytes) * p.tree_fanout > p.block_size) {
    return "block_size must hold a whole tree (16 x tree_fanout bytes)";
  }
  if (p.compression_level < kMinCompressionLevel || p.compression_level > kMaxCompressionLevel) {
    return "compression_level must be from 1 to 19";
  }
  return "";
}

Result<std::string> B64Field(const json& j, std::string_view field, std::string_view object) {
  KB_ASSIGN_OR_RETURN(std::string text, JsonString(j, field, object));
  std::optional<std::string> bytes = Base64Decode(text);
  if (!bytes) {
    return Status::Corruption(std::string(object) + ": field \"" + std::string(field) +
                              "\" is not base64");
  }
  return *bytes;
}

int Log2(int64_t v) {
  int n = 0;
  while ((int64_t{1} << n) < v) ++n;
  return n;
}

}  // namespace

Status ValidateParams(const RepositoryParams& params) {
  std::string problem = ParamsProblem(params);
  if (!problem.empty()) return Status::InvalidArgument("repository parameters: " + problem);
  if (params.scrypt_log2_n < kMinScryptLog2N || params.scrypt_log2_n > kMaxScryptLog2N) {
    return Status::InvalidArgument("repository parameters: scrypt_log2_n must be from 14 to 22");
  }
  return Status::OK();
}

std::string EncodeConfig(const RepoConfig& c) {
  json j{{"format", kConfigFormat},
         {"version", kConfigVersion},
         {"id", c.id},
         {"created", c.created},
         {"chunk_size", c.params.chunk_size},
         {"block_size", c.params.block_size},
         {"pack_size", c.params.pack_size},
         {"tree_fanout", c.params.tree_fanout},
         {"compression", "zstd"},
         {"compression_level", c.params.compression_level},
         {"key_check", Base64Encode(c.key_check)}};
  return j.dump(2) + "\n";
}

Result<RepoConfig> ParseConfig(std::string_view text) {
  const std::string name(kConfigKey);
  KB_ASSIGN_OR_RETURN(json j, ParseVersionedJson(name, text, kConfigVersion));
  // Objects of another layout must never be read as this one: the config gates them all.
  if (int64_t version = j["version"].get<int64_t>(); version != kConfigVersion) {
    return Status::FailedPrecondition("unsupported repository format version " +
                                      std::to_string(version) + " (this binary reads version " +
                                      std::to_string(kConfigVersion) +
                                      "; back up into a new repository)");
  }
  KB_ASSIGN_OR_RETURN(std::string format, JsonString(j, "format", name));
  if (format != kConfigFormat) return Status::Corruption("config: not a KnowledgeBeast repository");
  RepoConfig c;
  KB_ASSIGN_OR_RETURN(c.id, JsonString(j, "id", name));
  if (c.id.empty() || c.id.size() > 64) return Status::Corruption("config: invalid id");
  for (char ch : c.id) {
    if (!std::isxdigit(static_cast<unsigned char>(ch)) && ch != '-') {
      return Status::Corruption("config: invalid id");
    }
  }
  if (j.contains("created") && j["created"].is_string()) c.created = j["created"];
  KB_ASSIGN_OR_RETURN(c.params.chunk_size, JsonInt(j, "chunk_size", name));
  KB_ASSIGN_OR_RETURN(c.params.block_size, JsonInt(j, "block_size", name));
  KB_ASSIGN_OR_RETURN(c.params.pack_size, JsonInt(j, "pack_size", name));
  KB_ASSIGN_OR_RETURN(c.params.tree_fanout, JsonInt(j, "tree_fanout", name));
  KB_ASSIGN_OR_RETURN(std::string compression, JsonString(j, "compression", name));
  if (compression != "zstd") {
    return Status::FailedPrecondition("config: compression " + QuoteName(compression) +
                                      " is not supported by this binary (zstd)");
  }
  KB_ASSIGN_OR_RETURN(int64_t level, JsonInt(j, "compression_level", name));
  if (level < kMinCompressionLevel || level > kMaxCompressionLevel) {
    return Status::Corruption("config: compression_level out of range");
  }
  c.params.compression_level = static_cast<int>(level);
  std::string problem = ParamsProblem(c.params);
  if (!problem.empty()) return Status::Corruption("config: " + problem);
  KB_ASSIGN_OR_RETURN(c.key_check, B64Field(j, "key_check", name));
  return c;
}

std::string EncodeKeyObject(const KeyObject& k) {
  json kdf{{"name", k.kdf}, {"salt", Base64Encode(k.salt)}};
  if (k.kdf == "scrypt") {
    kdf["n"] = int64_t{1} << k.log2_n;
    kdf["r"] = k.r;
    kdf["p"] = k.p;
  }
  json j{{"format", kKeyFormat},
         {"version", kKeyVersion},
         {"id", k.id},
         {"created", k.created},
         {"label", k.label},
         {"kdf", kdf},
         {"wrapped", Base64Encode(k.wrapped)}};
  return j.dump(2) + "\n";
}

Result<KeyObject> ParseKeyObject(std::string_view name, std::string_view text) {
  KB_ASSIGN_OR_RETURN(json j, ParseVersionedJson(name, text, kKeyVersion));
  KB_ASSIGN_OR_RETURN(std::string format, JsonString(j, "format", name));
  if (format != kKeyFormat) return Status::Corruption(std::string(name) + ": not a key object");
  KeyObject k;
  KB_ASSIGN_OR_RETURN(k.id, JsonString(j, "id", name));
  if (!IsRandomId(k.id) || name != KeyObjectKey(k.id)) {
    return Status::Corruption(std::string(name) + ": id does not match the object's name");
  }
  if (j.contains("created") && j["created"].is_string()) k.created = j["created"];
  if (j.contains("label") && j["label"].is_string()) k.label = j["label"];
  auto kdf = j.find("kdf");
  if (kdf == j.end() || !kdf->is_object()) {
    return Status::Corruption(std::string(name) + ": \"kdf\" missing");
  }
  KB_ASSIGN_OR_RETURN(k.kdf, JsonString(*kdf, "name", name));
  KB_ASSIGN_OR_RETURN(k.salt, B64Field(*kdf, "salt", name));
  if (k.salt.size() < kSaltBytes) return Status::Corruption(std::string(name) + ": salt too short");
  if (k.kdf == "scrypt") {
    KB_ASSIGN_OR_RETURN(int64_t n, JsonInt(*kdf, "n", name));
    KB_ASSIGN_OR_RETURN(int64_t r, JsonInt(*kdf, "r", name));
    KB_ASSIGN_OR_RETURN(int64_t p, JsonInt(*kdf, "p", name));
    if (!IsPowerOfTwo(n) || Log2(n) < kMinScryptLog2N || Log2(n) > kMaxScryptLog2N || r < 1 ||
        r > kMaxScryptR || p < 1 || p > kMaxScryptP) {
      return Status::Corruption(std::string(name) + ": scrypt parameters out of range");
    }
    k.log2_n = Log2(n);
    k.r = static_cast<int>(r);
    k.p = static_cast<int>(p);
  } else if (k.kdf != "keyfile") {
    return Status::FailedPrecondition(std::string(name) + ": unknown kdf " + QuoteName(k.kdf));
  }
  KB_ASSIGN_OR_RETURN(k.wrapped, B64Field(j, "wrapped", name));
  return k;
}

Result<KeyMaterial> LoadKeyMaterial(const KeySource& source) {
  if (source.passphrase && source.key_file) {
    return Status::InvalidArgument("give either a passphrase or a key file, not both");
  }
  KeyMaterial m;
  if (source.passphrase) {
    if (source.passphrase->empty()) return Status::InvalidArgument("the passphrase is empty");
    m.secret = SecretBytes(*source.passphrase);
    return m;
  }
  if (!source.key_file) {
    return Status::Unauthenticated(
        "no repository key given: set KB_BACKUP_PASSWORD or KB_BACKUP_KEY_FILE");
  }
  auto bytes = ReadFile(*source.key_file);
  if (!bytes.ok()) {
    return Status::InvalidArgument("cannot read key file " + *source.key_file + ": " +
                                   bytes.status().message());
  }
  m.is_file = true;
  m.secret = SecretBytes(std::move(bytes).value());
  if (m.secret.size() < kMinKeyFileBytes) {
    return Status::InvalidArgument("key file " + *source.key_file + " holds fewer than 32 bytes");
  }
  return m;
}

Result<SecretBytes> DeriveKek(const KeyObject& key, const KeyMaterial& material) {
  if (key.kdf == "scrypt" && !material.is_file) {
    return DeriveScrypt(material.secret.view(), key.salt, key.log2_n, key.r, key.p);
  }
  if (key.kdf == "keyfile" && material.is_file) {
    return DeriveHkdf(material.secret.view(), key.salt, kKeyFileHkdfInfo);
  }
  return Status::FailedPrecondition("key " + key.id + " is of another kind");
}

Result<KeyObject> MakeKeyObject(const MasterKey& master, const std::string& repo_id,
                                const KeyMaterial& material, const std::string& label,
                                int scrypt_log2_n, int64_t now_ms) {
  KeyObject k;
  k.id = NewRandomId();
  k.created = FormatIso8601(now_ms);
  k.label = label;
  k.salt = RandomBytes(kSaltBytes);
  if (material.is_file) {
    k.kdf = "keyfile";
  } else {
    k.kdf = "scrypt";
    k.log2_n = scrypt_log2_n;
    k.r = kScryptR;
    k.p = kScryptP;
  }
  KB_ASSIGN_OR_RETURN(SecretBytes kek, DeriveKek(k, material));
  SecretBytes plain = master.Serialize();
  k.wrapped = SealRaw(kek.view(), KeyWrapAad(repo_id, k.id), plain.view());
  return k;
}

Result<MasterKey> UnwrapMasterKey(const KeyObject& key, const std::string& repo_id,
                                  const KeyMaterial& material) {
  KB_ASSIGN_OR_RETURN(SecretBytes kek, DeriveKek(key, material));
  auto plain = OpenRaw(kek.view(), KeyWrapAad(repo_id, key.id), key.wrapped);
  if (!plain.ok()) return Status::Unauthenticated("key " + key.id + " does not unwrap");
  SecretBytes secret(std::move(plain).value());
  auto master = MasterKey::FromBytes(secret.view());
  if (!master.ok())
    return Status::Corruption(KeyObjectKey(key.id) + ": wrapped key has the wrong size");
  return std::move(master).value();
}

}  // namespace kb::repo
