// The parts of the BlobStore contract that every implementation shares: the key rules, the
// environment defaults of the S3 settings, and the URL that picks an implementation.
#include "blob/blob_store.h"

#include <cstdlib>

#include "blob/local_blob_store.h"
#include "blob/s3_blob_store.h"

namespace kb::blob {

namespace {

constexpr std::string_view kDefaultRegion = "us-east-1";

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// Checks one complete segment (between slashes).
bool IsValidSegment(std::string_view segment) {
  if (segment.empty() || segment == "." || segment == "..") return false;
  for (char c : segment) {
    if (!IsKeyChar(c)) return false;
  }
  return true;
}

std::string Quoted(std::string_view text) {
  // Keys in messages are shown escaped and cut, so a hostile name cannot forge log lines.
  std::string out = "'";
  for (char c : text.substr(0, 80)) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(c);
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[(static_cast<unsigned char>(c) >> 4) & 15]);
      out.push_back(kHex[static_cast<unsigned char>(c) & 15]);
    }
  }
  if (text.size() > 80) out += "...";
  return out + "'";
}

void FillFromEnv(std::string& field, std::initializer_list<const char*> names) {
  if (!field.empty()) return;
  for (const char* name : names) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') {
      field = value;
      return;
    }
  }
}

}  // namespace

Status ValidateKey(std::string_view key) {
  if (key.empty()) return Status::InvalidArgument("invalid object key: empty");
  if (key.size() > kMaxKeyBytes) {
    return Status::InvalidArgument("invalid object key " + Quoted(key) + ": longer than " +
                                   std::to_string(kMaxKeyBytes) + " bytes");
  }
  size_t start = 0;
  while (true) {
    size_t slash = key.find('/', start);
    std::string_view segment =
        key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!IsValidSegment(segment)) {
      return Status::InvalidArgument("invalid object key " + Quoted(key) +
                                     ": segments must be non-empty, not '.' or '..', and made of "
                                     "[A-Za-z0-9._-]");
    }
    if (slash == std::string_view::npos) return Status::OK();
    start = slash + 1;
  }
}

Status ValidatePrefix(std::string_view prefix) {
  if (prefix.empty()) return Status::OK();
  auto invalid = [&] { return Status::InvalidArgument("invalid list prefix " + Quoted(prefix)); };
  if (prefix.size() > kMaxKeyBytes) return invalid();
  size_t start = 0;
  while (true) {
    size_t slash = prefix.find('/', start);
    if (slash == std::string_view::npos) {
      // The last, possibly partial, segment: any key characters (even "." or "..", which are
      // the start of valid names such as "..a").
      for (char c : prefix.substr(start)) {
        if (!IsKeyChar(c)) return invalid();
      }
      return Status::OK();
    }
    if (!IsValidSegment(prefix.substr(start, slash - start))) return invalid();
    start = slash + 1;
  }
}

S3Options S3OptionsFromEnvironment(S3Options options) {
  FillFromEnv(options.access_key_id, {"AWS_ACCESS_KEY_ID"});
  FillFromEnv(options.secret_access_key, {"AWS_SECRET_ACCESS_KEY"});
  FillFromEnv(options.session_token, {"AWS_SESSION_TOKEN"});
  FillFromEnv(options.region, {"AWS_REGION", "AWS_DEFAULT_REGION"});
  FillFromEnv(options.endpoint, {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"});
  if (options.region.empty()) options.region = kDefaultRegion;
  return options;
}

Result<std::unique_ptr<BlobStore>> OpenBlobStore(std::string_view url,
                                                 const BlobStoreOptions& options, bool create) {
  constexpr std::string_view kFile = "file://";
  constexpr std::string_view kS3 = "s3://";
  if (url.substr(0, kFile.size()) == kFile) {
    KB_ASSIGN_OR_RETURN(auto store,
                        LocalBlobStore::Open(std::string(url.substr(kFile.size())), create));
    return std::unique_ptr<BlobStore>(std::move(store));
  }
  if (url.substr(0, kS3.size()) == kS3) {
    std::string_view rest = url.substr(kS3.size());
    size_t slash = rest.find('/');
    std::string bucket(rest.substr(0, slash));
    std::string prefix(slash == std::string_view::npos ? "" : rest.substr(slash + 1));
    KB_ASSIGN_OR_RETURN(auto store,
                        S3BlobStore::Open(bucket, prefix, S3OptionsFromEnvironment(options.s3)));
    return std::unique_ptr<BlobStore>(std::move(store));
  }
  return Status::InvalidArgument("unsupported blob store URL " + Quoted(url) +
                                 ": expected file:///absolute/path or s3://bucket/prefix");
}

}  // namespace kb::blob
