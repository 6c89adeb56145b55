// Object names, AAD strings and name validators of docs/format/BACKUP_REPOSITORY.md.
#include "repo/repository_format.h"

#include <ctime>

#include "common/crypto_util.h"

namespace kb::repo {

namespace {

bool IsPathChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool IsValidSegment(std::string_view segment) {
  if (segment.empty() || segment == "." || segment == "..") return false;
  for (char c : segment) {
    if (!IsPathChar(c)) return false;
  }
  return true;
}

bool IsDigits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

std::string PackKey(std::string_view pack_hex) {
  return std::string(kDataPrefix) + std::string(pack_hex.substr(0, 2)) + "/" +
         std::string(pack_hex);
}
std::string IndexKey(std::string_view index_hex) {
  return std::string(kIndexPrefix) + std::string(index_hex);
}
std::string SnapshotKey(std::string_view id) {
  return std::string(kSnapshotsPrefix) + std::string(id);
}
std::string KeyObjectKey(std::string_view id) { return std::string(kKeysPrefix) + std::string(id); }
std::string LockKey(std::string_view id) { return std::string(kLocksPrefix) + std::string(id); }
std::string PlanKey(std::string_view id) { return std::string(kPrunePrefix) + std::string(id); }
std::string VerifiedKey(std::string_view id) {
  return std::string(kVerifiedPrefix) + std::string(id);
}

std::string ConfigAad(std::string_view repo_id, int64_t chunk_size, int64_t block_size,
                      int64_t pack_size, int64_t tree_fanout) {
  return "kb1:config:" + std::string(repo_id) + ":" + std::to_string(chunk_size) + ":" +
         std::to_string(block_size) + ":" + std::to_string(pack_size) + ":" +
         std::to_string(tree_fanout);
}
std::string KeyWrapAad(std::string_view repo_id, std::string_view key_id) {
  return "kb1:key:" + std::string(repo_id) + ":" + std::string(key_id);
}
std::string SnapshotAad(std::string_view id) { return "kb1:snapshot:" + std::string(id); }
std::string LockAad(std::string_view id) { return "kb1:lock:" + std::string(id); }
std::string PlanAad(std::string_view id) { return "kb1:prune:" + std::string(id); }
std::string VerifiedAad(std::string_view id) { return "kb1:verified:" + std::string(id); }

std::string KeyCheckPlaintext() {
  Sha256Digest d = Sha256("knowledgebeast-key-check");
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

bool IsLowerHex(std::string_view s, size_t length) {
  if (s.size() != length) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsPackId(std::string_view s) { return IsLowerHex(s, 64); }
bool IsRandomId(std::string_view s) { return IsLowerHex(s, 16); }

bool IsSnapshotId(std::string_view s) {
  // YYYYMMDDTHHMMSSZ-xxxxxxxx: 16 + 1 + 8 characters.
  if (s.size() != 25) return false;
  if (!IsDigits(s.substr(0, 8)) || s[8] != 'T' || !IsDigits(s.substr(9, 6)) || s[15] != 'Z' ||
      s[16] != '-') {
    return false;
  }
  return IsLowerHex(s.substr(17), 8);
}

std::optional<std::string> PackIdFromKey(std::string_view key) {
  // "data/" + 2 + "/" + 64
  if (key.size() != kDataPrefix.size() + 3 + 64 ||
      key.substr(0, kDataPrefix.size()) != kDataPrefix) {
    return std::nullopt;
  }
  std::string_view rest = key.substr(kDataPrefix.size());
  std::string_view id = rest.substr(3);
  if (rest[2] != '/' || !IsPackId(id) || rest.substr(0, 2) != id.substr(0, 2)) return std::nullopt;
  return std::string(id);
}

std::string QuoteName(std::string_view name) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (char c : name.substr(0, 120)) {
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(kHex[(static_cast<unsigned char>(c) >> 4) & 15]);
      out.push_back(kHex[static_cast<unsigned char>(c) & 15]);
    }
  }
  if (name.size() > 120) out += "...";
  return out + "'";
}

Status ValidateManifestPath(std::string_view path, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return Status::Corruption(std::string(what) + ": invalid path " + QuoteName(path) + ": " +
                              std::string(why));
  };
  if (path.empty()) return bad("empty");
  if (path.size() > kMaxPathBytes) return bad("longer than 255 bytes");
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view segment = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!IsValidSegment(segment)) {
      return bad("segments must be non-empty, not '.' or '..', and made of [A-Za-z0-9._-]");
    }
    if (slash == std::string_view::npos) return Status::OK();
    start = slash + 1;
  }
}

Status ValidateProjectId(std::string_view id, std::string_view what) {
  if (id.size() > kMaxPathBytes || !IsValidSegment(id)) {
    return Status::Corruption(std::string(what) + ": invalid project id " + QuoteName(id));
  }
  return Status::OK();
}

std::string NewSnapshotId(int64_t start_ms) {
  time_t secs = static_cast<time_t>(start_ms / 1000);
  struct tm tm_utc;
  gmtime_r(&secs, &tm_utc);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm_utc);
  return std::string(buf) + "-" + HexEncode(RandomBytes(4));
}

std::string NewRandomId() { return HexEncode(RandomBytes(8)); }

Status VersionTooNew(std::string_view object, int64_t version, int64_t known) {
  return Status::FailedPrecondition("repository object " + std::string(object) +
                                    " has format version " + std::to_string(version) +
                                    "; this binary reads version " + std::to_string(known));
}

}  // namespace kb::repo
