// S3BlobStore: a BlobStore on any S3-compatible object store (AWS S3, MinIO, Ceph RGW, s3rver),
// spoken over libcurl with our own SigV4 signer (blob/sigv4.h). Key "a/b" of the store
// "s3://bucket/prefix" is the object "prefix/a/b" of the bucket.
//
// Integrity: every request is signed over the SHA-256 of its body (never UNSIGNED-PAYLOAD), and
// every upload also carries Content-MD5, so a store that checks it refuses a damaged body
// (BadDigest -> Corruption). Objects larger than `multipart_threshold` go up in parts of
// `multipart_part_size` with a multipart upload, which the store assembles only on completion:
// until CompleteMultipartUpload succeeds nothing is visible under the key. A failed multipart
// upload is aborted on a best-effort basis (a bucket lifecycle rule should clean up the rest).
//
// Failures: each call runs within `operation_deadline_ms`; each HTTP attempt within
// `request_timeout_ms` (and `connect_timeout_ms` to connect). Transient failures (5xx, 429, 408,
// S3's RequestTimeout, refused/reset connections, timeouts, partial transfers) are retried up to
// `max_attempts` with exponential backoff and full jitter, then reported as Unavailable naming
// the attempts and the last error. Anything else fails at once: 403 -> PermissionDenied with
// S3's error code and message, NoSuchBucket -> FailedPrecondition, 404 -> NotFound. Messages
// never contain credentials or the Authorization header. Stat (a HEAD request, which has no
// error body) cannot tell a missing bucket from a missing key: both are NotFound.
//
// Thread-safety: every method may be called concurrently. Settings are immutable after Open;
// curl handles come from a pool, so one handle is never used by two threads at once.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "blob/blob_store.h"
#include "blob/curl_http.h"

namespace kb::blob {

class S3BlobStore final : public BlobStore {
 public:
  // `prefix` follows the key rules (a trailing '/' is allowed) or is empty. InvalidArgument for
  // a bad bucket name, prefix, endpoint URL or setting. Nothing is sent over the network.
  // `options` is used as given: see S3OptionsFromEnvironment for the defaults from AWS_*.
  static Result<std::unique_ptr<S3BlobStore>> Open(const std::string& bucket,
                                                   const std::string& prefix, S3Options options);

  std::string Describe() const override;
  Status Put(std::string_view key, std::string_view data) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::string> GetRange(std::string_view key, int64_t offset, int64_t length) override;
  Result<ObjectInfo> Stat(std::string_view key) override;
  Status Delete(std::string_view key) override;
  Status List(std::string_view prefix,
              const std::function<Status(const ObjectInfo&)>& visit) override;

  // HTTP attempts made so far by this store (every try of every call): for tests and metrics.
  int64_t attempt_count() const { return attempts_.load(); }

 private:
  struct Endpoint {
    std::string scheme;  // "http" or "https"
    std::string host;    // "s3.amazonaws.com", "127.0.0.1", "[::1]"
    int port = 0;        // 0: the scheme's default
  };
  // One S3 API call, retried as a whole by Execute.
  struct Call {
    std::string method;
    std::string object;  // full object name in the bucket; "" for the bucket itself
    HeaderList query;    // decoded
    HeaderList headers;  // extra headers to send and sign (content-md5, range, ...)
    std::string_view body;
    std::string body_sha256;    // hex; computed once, not per attempt
    std::string what;           // "PUT 'a/b'" for messages
    int max_attempts = 0;       // 0: options_.max_attempts
    bool error_in_200 = false;  // a 200 with an <Error> body is a failure (CompleteMultipartUpload)
  };

  S3BlobStore(std::string bucket, std::string prefix, S3Options options, Endpoint endpoint);

  static Result<Endpoint> ParseEndpoint(const std::string& url, const std::string& region);

  std::string FullName(std::string_view key) const { return prefix_ + std::string(key); }
  HttpRequest BuildRequest(const Call& call, int64_t timeout_ms) const;
  // Runs `call` with retries. Returns the first response that is not worth retrying (of any
  // status: the caller maps it), or Unavailable / IOError when no such response came.
  Result<HttpResponse> Execute(const Call& call);
  bool IsRetryable(const HttpResponse& response, const Call& call) const;
  // The Status for a failed (non-2xx) response to `call`.
  Status ErrorFor(const HttpResponse& response, const Call& call, std::string_view key) const;

  Status PutSingle(std::string_view key, std::string_view data);
  Status PutMultipart(std::string_view key, std::string_view data);
  Status UploadParts(const std::string& object, std::string_view key, const std::string& upload_id,
                     std::string_view data, std::vector<std::string>* etags);
  Status CompleteMultipart(const std::string& object, std::string_view key,
                           const std::string& upload_id, std::string_view data,
                           const std::vector<std::string>& etags);
  void AbortMultipart(const std::string& object, const std::string& upload_id);
  // Whether the object now under `key` is `data` uploaded as `etags.size()` parts (used when a
  // retried CompleteMultipartUpload finds the upload already completed).
  bool IsCompletedUpload(std::string_view key, std::string_view data,
                         const std::vector<std::string>& etags);
  Result<HttpResponse> Head(std::string_view key);

  const std::string bucket_;
  const std::string prefix_;  // "" or ends with '/'
  const S3Options options_;
  const Endpoint endpoint_;
  const SigV4Credentials credentials_;
  CurlPool pool_;
  std::atomic<int64_t> attempts_{0};
};

}  // namespace kb::blob
