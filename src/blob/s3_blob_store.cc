// S3BlobStore: objects in an S3 bucket (see s3_blob_store.h for the contract).
//
// Layout of this file: settings and URLs, then the retry loop every call goes through (Execute),
// then one section per BlobStore method.
#include "blob/s3_blob_store.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <random>
#include <thread>

#include "blob/s3_xml.h"
#include "common/clock.h"
#include "common/crypto_util.h"
#include "common/logging.h"

namespace kb::blob {

namespace {

// SHA-256 of the empty body, sent with every request that has none.
constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr int64_t kMaxParts = 10'000;          // S3's limit per multipart upload
constexpr size_t kMaxErrorMessageBytes = 300;  // of S3's <Message> quoted in our errors

std::string Md5(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string ContentMd5(std::string_view data) { return Base64Encode(Md5(data)); }

bool IsValidBucketName(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '.'; });
}

std::optional<int64_t> ParseInt(std::string_view text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Printable, bounded text from a server's error message.
std::string Sanitize(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kMaxErrorMessageBytes)) {
    out.push_back(c >= 0x20 && c < 0x7f ? c : ' ');
  }
  if (text.size() > kMaxErrorMessageBytes) out += "...";
  return out;
}

// "HTTP 503 SlowDown: Please reduce your request rate."
std::string DescribeResponse(const HttpResponse& response) {
  std::string out = "HTTP " + std::to_string(response.status);
  if (auto error = s3xml::ParseError(response.body)) {
    if (!error->code.empty()) out += " " + Sanitize(error->code);
    if (!error->message.empty()) out += ": " + Sanitize(error->message);
  }
  return out;
}

std::string ErrorCode(const HttpResponse& response) {
  auto error = s3xml::ParseError(response.body);
  return error ? error->code : "";
}

std::string Unquote(std::string_view etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return std::string(etag);
}

// Full jitter: a uniformly random wait in [0, min(max, initial * 2^retry)].
int64_t BackoffMs(int retry, int64_t initial_ms, int64_t max_ms) {
  int64_t cap = initial_ms;
  for (int i = 0; i < retry && cap < max_ms; ++i) cap *= 2;
  cap = std::min(cap, max_ms);
  if (cap <= 0) return 0;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_int_distribution<int64_t>(0, cap)(rng);
}

int64_t NowMs() { return MonotonicMicros() / 1000; }

Status CheckOptions(const S3Options& o) {
  auto bad = [](const std::string& what) { return Status::InvalidArgument("S3 setting " + what); };
  if (o.region.empty()) return bad("region must not be empty");
  if (o.access_key_id.empty() != o.secret_access_key.empty()) {
    return bad("access key id and secret access key must be given together");
  }
  if (o.connect_timeout_ms <= 0 || o.request_timeout_ms <= 0 || o.operation_deadline_ms <= 0) {
    return bad("timeouts must be positive");
  }
  if (o.max_attempts < 1) return bad("max_attempts must be at least 1");
  if (o.backoff_initial_ms < 0 || o.backoff_max_ms < 0) return bad("backoff must not be negative");
  if (o.multipart_threshold < 0) return bad("multipart_threshold must not be negative");
  if (o.multipart_part_size < 1 || o.multipart_part_size > (int64_t{5} << 30)) {
    return bad("multipart_part_size must be 1 byte .. 5 GiB");
  }
  if (o.list_page_size < 1 || o.list_page_size > 1000) return bad("list_page_size must be 1..1000");
  return Status::OK();
}

}  // namespace

// ---- Settings and URLs ----------------------------------------------------------------------

Result<std::unique_ptr<S3BlobStore>> S3BlobStore::Open(const std::string& bucket,
                                                       const std::string& prefix,
                                                       S3Options options) {
  if (!IsValidBucketName(bucket)) {
    return Status::InvalidArgument("invalid S3 bucket name '" + bucket.substr(0, 80) +
                                   "': 3-63 characters of [a-z0-9.-]");
  }
  std::string clean_prefix = prefix;
  if (!clean_prefix.empty() && clean_prefix.back() == '/') clean_prefix.pop_back();
  if (!clean_prefix.empty()) {
    KB_RETURN_IF_ERROR(ValidateKey(clean_prefix).WithContext("invalid S3 prefix"));
    clean_prefix += '/';
  }
  if (options.region.empty()) options.region = "us-east-1";
  KB_RETURN_IF_ERROR(CheckOptions(options));
  KB_ASSIGN_OR_RETURN(Endpoint endpoint, ParseEndpoint(options.endpoint, options.region));
  return std::unique_ptr<S3BlobStore>(
      new S3BlobStore(bucket, std::move(clean_prefix), std::move(options), std::move(endpoint)));
}

S3BlobStore::S3BlobStore(std::string bucket, std::string prefix, S3Options options,
                         Endpoint endpoint)
    : bucket_(std::move(bucket)),
      prefix_(std::move(prefix)),
      options_(std::move(options)),
      endpoint_(std::move(endpoint)),
      credentials_{options_.access_key_id, options_.secret_access_key, options_.session_token} {}

Result<S3BlobStore::Endpoint> S3BlobStore::ParseEndpoint(const std::string& url,
                                                         const std::string& region) {
  const std::string text = url.empty() ? "https://s3." + region + ".amazonaws.com" : url;
  auto bad = [&](const std::string& why) {
    // Never echo credentials someone put into the URL.
    std::string shown = text.substr(0, 100);
    size_t at = shown.find('@');
    if (at != std::string::npos) shown = "***" + shown.substr(at);
    return Status::InvalidArgument("invalid S3 endpoint '" + shown + "': " + why);
  };
  Endpoint endpoint;
  size_t sep = text.find("://");
  if (sep == std::string::npos) return bad("expected http://host[:port] or https://host[:port]");
  endpoint.scheme = text.substr(0, sep);
  if (endpoint.scheme != "http" && endpoint.scheme != "https") return bad("scheme must be http(s)");
  std::string rest = text.substr(sep + 3);
  size_t path = rest.find_first_of("/?#");
  if (path != std::string::npos && rest.substr(path) != "/") return bad("no path or query allowed");
  std::string authority = rest.substr(0, path);
  if (authority.find('@') != std::string::npos) {
    return bad("credentials in the URL are not allowed; use the access key settings");
  }
  size_t host_end = 0;
  if (!authority.empty() && authority[0] == '[') {
    host_end = authority.find(']');
    if (host_end == std::string::npos) return bad("unterminated IPv6 address");
    ++host_end;
  } else {
    host_end = std::min(authority.find(':'), authority.size());
  }
  endpoint.host = authority.substr(0, host_end);
  if (endpoint.host.empty()) return bad("no host");
  if (host_end < authority.size()) {
    if (authority[host_end] != ':') return bad("unexpected text after the host");
    std::optional<int64_t> port = ParseInt(std::string_view(authority).substr(host_end + 1));
    if (!port || *port < 1 || *port > 65535) return bad("port must be 1..65535");
    endpoint.port = static_cast<int>(*port);
  }
  if ((endpoint.scheme == "http" && endpoint.port == 80) ||
      (endpoint.scheme == "https" && endpoint.port == 443)) {
    endpoint.port = 0;
  }
  return endpoint;
}

std::string S3BlobStore::Describe() const {
  std::string out = "s3://" + bucket_;
  if (!prefix_.empty()) out += "/" + prefix_.substr(0, prefix_.size() - 1);
  out += " (endpoint " + endpoint_.scheme + "://" + endpoint_.host;
  if (endpoint_.port != 0) out += ":" + std::to_string(endpoint_.port);
  return out + ")";
}

HttpRequest S3BlobStore::BuildRequest(const Call& call, int64_t timeout_ms) const {
  std::string host = endpoint_.host;
  if (!options_.path_style) host = bucket_ + "." + host;
  if (endpoint_.port != 0) host += ":" + std::to_string(endpoint_.port);
  std::string path = options_.path_style ? "/" + bucket_ : "";
  if (!call.object.empty() || !options_.path_style) path += "/" + UriEncode(call.object, true);

  HttpRequest request;
  request.method = call.method;
  request.url = endpoint_.scheme + "://" + host + path;
  if (!call.query.empty()) request.url += "?" + CanonicalQueryString(call.query);
  request.body = call.body;
  request.connect_timeout_ms = std::min(options_.connect_timeout_ms, timeout_ms);
  request.timeout_ms = timeout_ms;
  request.headers = call.headers;
  request.headers.emplace_back("host", host);
  if (!credentials_.access_key_id.empty()) {
    SigV4Request to_sign{call.method, host, path, call.query, call.headers, call.body_sha256};
    SignedRequest signed_request =
        SignRequest(to_sign, credentials_, options_.region, SystemClock::Default()->NowMillis());
    request.headers.insert(request.headers.end(), signed_request.headers.begin(),
                           signed_request.headers.end());
  } else {
    request.headers.emplace_back("x-amz-content-sha256", call.body_sha256);
  }
  return request;
}

// ---- The retry loop -------------------------------------------------------------------------

bool S3BlobStore::IsRetryable(const HttpResponse& response, const Call& call) const {
  const int status = response.status;
  if (status == 501 || status == 505) return false;  // not implemented: retrying cannot help
  if (status >= 500 || status == 429 || status == 408) return true;
  if (status == 400 && ErrorCode(response) == "RequestTimeout") return true;
  // CompleteMultipartUpload may fail after its 200 status line was sent.
  return call.error_in_200 && status == 200 && s3xml::ParseError(response.body).has_value();
}

Result<HttpResponse> S3BlobStore::Execute(const Call& call) {
  const int max_attempts = call.max_attempts > 0 ? call.max_attempts : options_.max_attempts;
  const int64_t deadline = NowMs() + options_.operation_deadline_ms;
  std::string last_error;
  int attempt = 0;
  auto give_up = [&](const std::string& why) {
    return Status::Unavailable(call.what + ": " + why + " after " + std::to_string(attempt) +
                               (attempt == 1 ? " attempt" : " attempts") +
                               "; last error: " + last_error);
  };
  while (true) {
    const int64_t remaining = deadline - NowMs();
    if (remaining <= 0) {
      return give_up("deadline of " + std::to_string(options_.operation_deadline_ms) +
                     " ms exceeded");
    }
    ++attempt;
    attempts_.fetch_add(1);
    HttpOutcome outcome =
        pool_.Perform(BuildRequest(call, std::min(options_.request_timeout_ms, remaining)));
    if (outcome.ok()) {
      if (!IsRetryable(outcome.response, call)) return std::move(outcome.response);
      last_error = DescribeResponse(outcome.response);
    } else {
      if (!outcome.transient()) return Status::IOError(call.what + ": " + outcome.error);
      last_error = outcome.error;
    }
    if (attempt >= max_attempts) return give_up("gave up");
    const int64_t wait_ms =
        BackoffMs(attempt - 1, options_.backoff_initial_ms, options_.backoff_max_ms);
    if (NowMs() + wait_ms >= deadline) {
      return give_up("deadline of " + std::to_string(options_.operation_deadline_ms) +
                     " ms exceeded");
    }
    Log(LogLevel::kDebug, "retrying S3 request",
        "{\"attempt\":" + std::to_string(attempt) + ",\"wait_ms\":" + std::to_string(wait_ms) +
            "}");
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
  }
}

Status S3BlobStore::ErrorFor(const HttpResponse& response, const Call& call,
                             std::string_view key) const {
  const std::string code = ErrorCode(response);
  const int status = response.status;
  if (code == "NoSuchBucket") {
    return Status::FailedPrecondition("bucket '" + bucket_ + "' does not exist (" + Describe() +
                                      ")");
  }
  if (status == 404 && !key.empty()) {
    return Status::NotFound("no object '" + std::string(key) + "' in " + Describe());
  }
  if (status == 401 || status == 403) {
    return Status::PermissionDenied(call.what + ": access denied: " + DescribeResponse(response));
  }
  if (code == "BadDigest" || code == "InvalidDigest" || code == "XAmzContentSHA256Mismatch") {
    return Status::Corruption(call.what +
                              ": the store received a damaged body: " + DescribeResponse(response));
  }
  if (status == 416) return Status::InvalidArgument(call.what + ": " + DescribeResponse(response));
  return Status::IOError(call.what + ": " + DescribeResponse(response));
}

// ---- Put ------------------------------------------------------------------------------------

Status S3BlobStore::Put(std::string_view key, std::string_view data) {
  KB_RETURN_IF_ERROR(ValidateKey(key));
  if (static_cast<int64_t>(data.size()) > options_.multipart_threshold) {
    return PutMultipart(key, data);
  }
  return PutSingle(key, data);
}

Status S3BlobStore::PutSingle(std::string_view key, std::string_view data) {
  Call call;
  call.method = "PUT";
  call.object = FullName(key);
  call.headers = {{"content-md5", ContentMd5(data)}, {"content-type", "application/octet-stream"}};
  call.body = data;
  call.body_sha256 = Sha256Hex(data);
  call.what = "PUT '" + std::string(key) + "' in " + Describe();
  KB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call));
  if (response.status / 100 == 2) return Status::OK();
  return ErrorFor(response, call, key);
}

Status S3BlobStore::PutMultipart(std::string_view key, std::string_view data) {
  const std::string object = FullName(key);
  Call create;
  create.method = "POST";
  create.object = object;
  create.query = {{"uploads", ""}};
  create.headers = {{"content-type", "application/octet-stream"}};
  create.body_sha256 = kEmptySha256;
  create.what = "CreateMultipartUpload '" + std::string(key) + "' in " + Describe();
  KB_ASSIGN_OR_RETURN(HttpResponse created, Execute(create));
  if (created.status != 200) return ErrorFor(created, create, key);
  KB_ASSIGN_OR_RETURN(std::string upload_id, s3xml::ParseUploadId(created.body));

  std::vector<std::string> etags;
  Status s = UploadParts(object, key, upload_id, data, &etags);
  if (s.ok()) s = CompleteMultipart(object, key, upload_id, data, etags);
  if (!s.ok()) AbortMultipart(object, upload_id);
  return s;
}

Status S3BlobStore::UploadParts(const std::string& object, std::string_view key,
                                const std::string& upload_id, std::string_view data,
                                std::vector<std::string>* etags) {
  const int64_t size = static_cast<int64_t>(data.size());
  const int64_t part_size =
      std::max(options_.multipart_part_size, (size + kMaxParts - 1) / kMaxParts);
  for (int64_t offset = 0, number = 1; offset < size; offset += part_size, ++number) {
    std::string_view part =
        data.substr(static_cast<size_t>(offset), static_cast<size_t>(part_size));
    Call call;
    call.method = "PUT";
    call.object = object;
    call.query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
    call.headers = {{"content-md5", ContentMd5(part)}};
    call.body = part;
    call.body_sha256 = Sha256Hex(part);
    call.what =
        "UploadPart " + std::to_string(number) + " of '" + std::string(key) + "' in " + Describe();
    KB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call));
    if (response.status != 200) return ErrorFor(response, call, key);
    std::string etag = response.Header("etag");
    if (etag.empty()) return Status::IOError(call.what + ": the answer has no ETag");
    etags->push_back(std::move(etag));
  }
  return Status::OK();
}

Status S3BlobStore::CompleteMultipart(const std::string& object, std::string_view key,
                                      const std::string& upload_id, std::string_view data,
                                      const std::vector<std::string>& etags) {
  const std::string body = s3xml::CompleteMultipartUploadBody(etags);
  Call call;
  call.method = "POST";
  call.object = object;
  call.query = {{"uploadId", upload_id}};
  call.headers = {{"content-md5", ContentMd5(body)}, {"content-type", "application/xml"}};
  call.body = body;
  call.body_sha256 = Sha256Hex(body);
  call.what = "CompleteMultipartUpload '" + std::string(key) + "' in " + Describe();
  call.error_in_200 = true;
  KB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call));
  if (response.status == 200) return Status::OK();
  // A retry after a completion whose answer was lost finds the upload gone.
  if (ErrorCode(response) == "NoSuchUpload" && IsCompletedUpload(key, data, etags)) {
    return Status::OK();
  }
  return ErrorFor(response, call, "");
}

bool S3BlobStore::IsCompletedUpload(std::string_view key, std::string_view data,
                                    const std::vector<std::string>& etags) {
  Result<HttpResponse> head = Head(key);
  if (!head.ok() || head->status != 200) return false;
  if (ParseInt(head->Header("content-length")) != static_cast<int64_t>(data.size())) return false;
  // AWS: MD5 of the parts' binary MD5s, "-", the part count. Some servers: MD5 of the content.
  std::string part_digests;
  for (const std::string& etag : etags) {
    part_digests += HexDecode(Unquote(etag)).value_or("");
  }
  const std::string etag = Unquote(head->Header("etag"));
  return etag == HexEncode(Md5(part_digests)) + "-" + std::to_string(etags.size()) ||
         etag == HexEncode(Md5(data));
}

void S3BlobStore::AbortMultipart(const std::string& object, const std::string& upload_id) {
  Call call;
  call.method = "DELETE";
  call.object = object;
  call.query = {{"uploadId", upload_id}};
  call.body_sha256 = kEmptySha256;
  call.what = "AbortMultipartUpload";
  call.max_attempts = 1;  // best effort: the caller is already reporting a failure
  Result<HttpResponse> response = Execute(call);
  // Some servers (s3rver) do not implement it (405/501); a lifecycle rule cleans up anyway.
  if (!response.ok() || response->status / 100 != 2) {
    Log(LogLevel::kDebug, "AbortMultipartUpload failed",
        "{\"status\":" + std::to_string(response.ok() ? response->status : 0) + "}");
  }
}

// ---- Get, GetRange, Stat --------------------------------------------------------------------

Result<std::string> S3BlobStore::Get(std::string_view key) {
  KB_RETURN_IF_ERROR(ValidateKey(key));
  Call call;
  call.method = "GET";
  call.object = FullName(key);
  call.body_sha256 = kEmptySha256;
  call.what = "GET '" + std::string(key) + "' in " + Describe();
  KB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call));
  if (response.status == 200) return std::move(response.body);
  return ErrorFor(response, call, key);
}

Result<std::string> S3BlobStore::GetRange(std::string_view key, int64_t offset, int64_t length) {
  KB_RETURN_IF_ERROR(ValidateKey(key));
  if (offset < 0 || length < 0) {
    return Status::InvalidArgument("negative range of '" + std::string(key) + "'");
  }
  auto past_end = [&](int64_t size) {
    return Status::InvalidArgument("range of '" + std::string(key) + "' starts at " +
                                   std::to_string(offset) + ", past its end (" +
                                   std::to_string(size) + " bytes)");
  };
  if (length == 0) {
    KB_ASSIGN_OR_RETURN(ObjectInfo info, Stat(key));
    if (offset > info.size) return past_end(info.size);
    return std::string();
  }
  const bool to_end = length > INT64_MAX - offset;
  Call call;
  call.method = "GET";
  call.object = FullName(key);
  call.headers = {{"range", "bytes=" + std::to_string(offset) + "-" +
                                (to_end ? "" : std::to_string(offset + length - 1))}};
  call.body_sha256 = kEmptySha256;
  call.what = "GET '" + std::string(key) + "' (range) in " + Describe();
  KB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call));
  if (response.status == 206) return std::move(response.body);
  if (response.status == 200) {  // the server ignored Range and sent everything
    const int64_t size = static_cast<int64_t>(response.body.size());
    if (offset > size) return past_end(size);
    return response.body.substr(static_cast<size_t>(offset), static_cast<size_t>(length));
  }
  if (response.status == 416) {  // nothing at offset: either exactly at the end, or past it
    KB_ASSIGN_OR_RETURN(ObjectInfo info, Stat(key));
    if (offset == info.size) return std::string();
    return past_end(info.size);
  }
  return ErrorFor(response, call, key);
}

Result<HttpResponse> S3BlobStore::Head(std::string_view key) {
  Call call;
  call.method = "HEAD";
  call.object = FullName(key);
  call.body_sha256 = kEmptySha256;
  call.what = "HEAD '" + std::string(key) + "' in " + Describe();
  return Execute(call);
}

Result<ObjectInfo> S3BlobStore::Stat(std::string_view key) {
  KB_RETURN_IF_ERROR(ValidateKey(key));
  KB_ASSIGN_OR_RETURN(HttpResponse response, Head(key));
  if (response.status == 200) {
    std::optional<int64_t> size = ParseInt(response.Header("content-length"));
    if (!size || *size < 0) {
      return Status::IOError("HEAD '" + std::string(key) + "' in " + Describe() +
                             ": no valid Content-Length");
    }
    return ObjectInfo{std::string(key), *size};
  }
  Call call;
  call.what = "HEAD '" + std::string(key) + "' in " + Describe();
  return ErrorFor(response, call, key);
}

// ---- Delete, List ---------------------------------------------------------------------------

Status S3BlobStore::Delete(std::string_view key) {
  KB_RETURN_IF_ERROR(ValidateKey(key));
  Call call;
  call.method = "DELETE";
  call.object = FullName(key);
  call.body_sha256 = kEmptySha256;
  call.what = "DELETE '" + std::string(key) + "' in " + Describe();
  KB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call));
  if (response.status / 100 == 2) return Status::OK();
  Status error = ErrorFor(response, call, key);
  return error.code() == Code::kNotFound ? Status::OK() : error;
}

Status S3BlobStore::List(std::string_view prefix,
                         const std::function<Status(const ObjectInfo&)>& visit) {
  KB_RETURN_IF_ERROR(ValidatePrefix(prefix));
  const std::string full_prefix = prefix_ + std::string(prefix);
  std::string token;
  std::string last_key;
  bool first = true;
  while (true) {
    Call call;
    call.method = "GET";
    call.query = {{"list-type", "2"},
                  {"prefix", full_prefix},
                  {"max-keys", std::to_string(options_.list_page_size)}};
    if (!token.empty()) call.query.emplace_back("continuation-token", token);
    call.body_sha256 = kEmptySha256;
    call.what = "LIST '" + std::string(prefix) + "' in " + Describe();
    KB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call));
    if (response.status != 200) return ErrorFor(response, call, "");
    KB_ASSIGN_OR_RETURN(s3xml::ListPage page, s3xml::ParseListObjectsV2(response.body));
    for (ObjectInfo& object : page.objects) {
      if (object.key.compare(0, full_prefix.size(), full_prefix) != 0) {
        return Status::IOError(call.what + ": the store listed a key outside the prefix");
      }
      if (!first && object.key <= last_key) {
        return Status::IOError(call.what + ": the store listed keys out of order");
      }
      first = false;
      last_key = object.key;
      object.key.erase(0, prefix_.size());
      if (!ValidateKey(object.key).ok()) continue;  // not written through a BlobStore
      KB_RETURN_IF_ERROR(visit(object));
    }
    if (!page.truncated) return Status::OK();
    token = std::move(page.next_continuation_token);
  }
}

}  // namespace kb::blob
