// BlobStore: the one interface to where backup repositories live (a local directory, or any
// S3-compatible object store). The backup layer (src/backup) only ever talks to this interface, so
// every implementation must pass the same conformance suite (tests/blob/blob_conformance_test.cc).
//
// Keys are relative, '/'-separated names made only of [A-Za-z0-9._-] segments: no empty segment,
// no "." or ".." segment, no leading or trailing '/', at most 1,024 bytes. Every method rejects
// any other key with InvalidArgument before touching storage, so a name read from a (possibly
// hostile) repository can never escape its root.
//
// Semantics every implementation guarantees:
// - Put is atomic and durable: after it returns OK the whole object is readable, after any crash
//   or failure either the whole object or nothing is visible under the key (never a prefix).
//   Put over an existing key replaces it (the backup layer never does that for content objects).
// - Get / GetRange / Stat of a missing key: NotFound. GetRange(key, offset, length) returns the
//   bytes [offset, min(offset + length, size)): a range reaching past the end gives the bytes that
//   exist (none when offset == size); a range starting past the end (offset > size), or a
//   negative offset or length: InvalidArgument.
// - Delete of a missing key is OK (idempotent).
// - List visits every object whose key starts with `prefix` exactly once, in ascending byte
//   order of key, with bounded memory (pages of results, never the whole listing at once); the
//   callback may stop the listing by returning a non-OK status, which List returns.
// - Errors: NotFound, InvalidArgument (bad key / range), PermissionDenied (credentials refused,
//   403), FailedPrecondition (bucket or root missing), Unavailable (transient failure after all
//   retries and within the deadline), IOError (other), Corruption (object damaged in transit, e.g.
//   a checksum the store reported does not match). Messages name the key and never contain
//   credentials.
//
// Thread-safety: every method may be called concurrently from several threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kb::blob {

struct ObjectInfo {
  std::string key;
  int64_t size = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // A description for logs and errors, without credentials: "file:///srv/repo",
  // "s3://bucket/prefix (endpoint http://127.0.0.1:9000)".
  virtual std::string Describe() const = 0;

  virtual Status Put(std::string_view key, std::string_view data) = 0;
  virtual Result<std::string> Get(std::string_view key) = 0;
  virtual Result<std::string> GetRange(std::string_view key, int64_t offset, int64_t length) = 0;
  virtual Result<ObjectInfo> Stat(std::string_view key) = 0;
  virtual Status Delete(std::string_view key) = 0;
  virtual Status List(std::string_view prefix,
                      const std::function<Status(const ObjectInfo&)>& visit) = 0;
};

// The longest key, in bytes.
inline constexpr size_t kMaxKeyBytes = 1024;

// InvalidArgument unless `key` follows the key rules above.
Status ValidateKey(std::string_view key);

// InvalidArgument unless `prefix` can begin a valid key: empty, or made of key characters and
// '/', with no leading '/', no empty segment and no complete "." or ".." segment ("snapshots/",
// "data/ab" and "a." are valid prefixes; "/x", "a//" and "../" are not). List checks it first.
Status ValidatePrefix(std::string_view prefix);

// Settings of the S3 implementation. Anything left empty is taken from the usual AWS environment
// variables by S3OptionsFromEnvironment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION), AWS_ENDPOINT_URL.
struct S3Options {
  std::string endpoint;  // "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:9000"
  std::string region;    // default "us-east-1"
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // optional
  bool path_style = true;     // http://endpoint/bucket/key (true) or http://bucket.endpoint/key
  int64_t connect_timeout_ms = 5'000;
  int64_t request_timeout_ms = 120'000;     // deadline of one HTTP attempt
  int64_t operation_deadline_ms = 300'000;  // deadline of one call including all retries
  int max_attempts = 6;
  int64_t backoff_initial_ms = 100;  // exponential backoff with full jitter
  int64_t backoff_max_ms = 5'000;
  int64_t multipart_threshold = 16 << 20;  // objects larger than this use multipart upload
  int64_t multipart_part_size = 8 << 20;   // >= 5 MiB on real S3 (not enforced, tests use less)
  int list_page_size = 1000;               // max-keys of one ListObjectsV2 page (1..1000)
};

// Fills every empty field of `options` from the environment; sets the defaults for the rest
// (region "us-east-1"). AWS_ENDPOINT_URL_S3 is preferred over AWS_ENDPOINT_URL. An endpoint
// still empty afterwards means AWS itself: "https://s3.<region>.amazonaws.com".
S3Options S3OptionsFromEnvironment(S3Options options = {});

struct BlobStoreOptions {
  S3Options s3;
};

// Opens the store named by `url`: "file:///abs/path" (the directory must exist unless
// `create` is true, else FailedPrecondition) or "s3://bucket/optional/prefix" (the prefix follows
// the key rules; `options.s3` is completed by S3OptionsFromEnvironment; the bucket is never
// created and not contacted here). InvalidArgument for any other URL or invalid settings.
Result<std::unique_ptr<BlobStore>> OpenBlobStore(std::string_view url,
                                                 const BlobStoreOptions& options = {},
                                                 bool create = false);

}  // namespace kb::blob
