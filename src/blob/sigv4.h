// AWS Signature Version 4 for S3 requests, written here rather than taken from libcurl's
// CURLOPT_AWS_SIGV4 so that the signature is a pure function of (request, credentials, time):
// tests compare it with botocore's signer on fixed requests, and the payload hash is always the
// SHA-256 of the body (never UNSIGNED-PAYLOAD), so the signature also protects the content.
//
// Every header passed in `SigV4Request::headers` is signed, plus host, x-amz-date,
// x-amz-content-sha256 and (with a session token) x-amz-security-token. Headers that proxies may
// change (user-agent, expect) must not be passed in. The path is used as given, already
// URI-encoded, as S3 requires (no normalisation of "." or "//").
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/text_util.h"  // UriEncode: the encoding SigV4 expects in paths and queries

namespace kb::blob {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct SigV4Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: none
};

struct SigV4Request {
  std::string method;          // "GET", "PUT", ...
  std::string host;            // the Host header exactly as sent: "s3.eu-west-1.amazonaws.com"
  std::string path;            // URI-encoded path exactly as sent: "/bucket/a/b"
  HeaderList query;            // decoded names and values; "uploads" with "" is sent as "uploads="
  HeaderList headers;          // further headers to sign, names in any case
  std::string payload_sha256;  // lower-case hex SHA-256 of the body
};

struct SignedRequest {
  HeaderList
      headers;  // to add: x-amz-date, x-amz-content-sha256, [x-amz-security-token], authorization
  std::string canonical_request;  // for diagnostics in tests; contains no secret
  std::string string_to_sign;
};

// Signs `request` for `region` and `service` at `now_millis` (Unix epoch, UTC).
SignedRequest SignRequest(const SigV4Request& request, const SigV4Credentials& credentials,
                          std::string_view region, int64_t now_millis,
                          std::string_view service = "s3");

// "a=1&b=&c=x%2Fy": names and values encoded, sorted by name then value. The same string is
// used as the URL's query, so what is sent is exactly what was signed.
std::string CanonicalQueryString(const HeaderList& query);

// "20130524T000000Z" for `now_millis`.
std::string AmzDate(int64_t now_millis);

}  // namespace kb::blob
