// One HTTP exchange over libcurl, and a pool of curl handles, for S3BlobStore.
//
// A curl easy handle must never be used by two threads at once, yet reusing handles keeps their
// connections alive (no TCP/TLS handshake per request). CurlPool lends each caller a handle of
// its own for one exchange and takes it back afterwards; with N threads in flight it holds at
// most N handles. Retrying, signing and S3 semantics live in S3BlobStore: this layer only moves
// bytes and reports what happened.
//
// Thread-safety: CurlPool::Perform may be called concurrently.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "blob/sigv4.h"
#include "common/thread_annotations.h"

namespace kb::blob {

struct HttpRequest {
  std::string method;  // GET, HEAD, PUT, POST, DELETE
  std::string url;
  HeaderList headers;     // sent as given (a "Host" here replaces curl's own)
  std::string_view body;  // sent with Content-Length for PUT and POST; must outlive Perform
  int64_t connect_timeout_ms = 5'000;
  int64_t timeout_ms = 60'000;  // the whole exchange
};

struct HttpResponse {
  int status = 0;
  HeaderList headers;  // names lower-cased, from the final response only
  std::string body;
  // The value of the first header named `name` (lower-case), or "" if absent.
  std::string Header(std::string_view name) const;
};

// What one exchange gave: a response (curl_code == 0), or a transport failure.
struct HttpOutcome {
  int curl_code = 0;  // CURLcode
  std::string error;  // curl's description when curl_code != 0; never contains headers
  HttpResponse response;
  // The server announced a Content-Range past the size it stated (s3rver does for a ranged GET
  // of an empty object, then never sends the byte): the exchange is cut short and reported as
  // a 416 response, which it means.
  bool impossible_range = false;
  bool ok() const { return curl_code == 0; }
  // A failure worth retrying: refused or reset connections, timeouts, partial transfers,
  // send/receive errors, name resolution, TLS handshake failures.
  bool transient() const;
};

class CurlPool {
 public:
  CurlPool();
  ~CurlPool();
  CurlPool(const CurlPool&) = delete;
  CurlPool& operator=(const CurlPool&) = delete;

  HttpOutcome Perform(const HttpRequest& request);

 private:
  CURL* Acquire() EXCLUDES(mu_);             // an idle handle, or a new one
  void Release(CURL* handle) EXCLUDES(mu_);  // reset and keep for reuse

  Mutex mu_;
  std::vector<CURL*> idle_ GUARDED_BY(mu_);
};

}  // namespace kb::blob
