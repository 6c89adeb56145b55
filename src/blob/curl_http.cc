// libcurl exchanges for S3BlobStore (see curl_http.h).
#include "blob/curl_http.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <memory>

#include "common/text_util.h"

namespace kb::blob {

namespace {

// Idle handles kept beyond this are freed: a burst of threads should not pin sockets forever.
constexpr size_t kMaxIdleHandles = 16;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      fprintf(stderr, "fatal: curl_global_init failed\n");
      abort();
    }
  });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  static_cast<HttpResponse*>(user)->body.append(data, size * count);
  return size * count;
}

// Whether `value` ("bytes 0-0/0") claims bytes past the total size it states. s3rver answers a
// ranged GET of an empty object that way and then never sends the byte it announced.
bool IsImpossibleContentRange(std::string_view value) {
  size_t dash = value.find('-');
  size_t slash = value.find('/');
  if (value.substr(0, 6) != "bytes " || dash == std::string_view::npos ||
      slash == std::string_view::npos || dash > slash) {
    return false;
  }
  int64_t last = 0, total = 0;
  std::string_view last_text = value.substr(dash + 1, slash - dash - 1);
  std::string_view total_text = value.substr(slash + 1);
  if (std::from_chars(last_text.data(), last_text.data() + last_text.size(), last).ec !=
          std::errc() ||
      std::from_chars(total_text.data(), total_text.data() + total_text.size(), total).ec !=
          std::errc()) {
    return false;  // "*" or malformed: not ours to judge
  }
  return last >= total;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* outcome = static_cast<HttpOutcome*>(user);
  HttpResponse& response = outcome->response;
  std::string_view line(data, size * count);
  if (line.substr(0, 5) == "HTTP/") {
    response.headers.clear();  // a new response (after 100 Continue): keep only the final one
    return size * count;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name = ToLowerAscii(Trim(line.substr(0, colon)));
    std::string value(Trim(line.substr(colon + 1)));
    if (name == "content-range" && IsImpossibleContentRange(value)) {
      outcome->impossible_range = true;
      return 0;  // stop now instead of waiting for bytes that will never come
    }
    response.headers.emplace_back(std::move(name), std::move(value));
  }
  return size * count;
}

// curl_slist with automatic cleanup.
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

Slist BuildHeaders(const HeaderList& headers) {
  curl_slist* list = nullptr;
  auto add = [&list](const std::string& line) {
    curl_slist* next = curl_slist_append(list, line.c_str());
    if (next != nullptr) list = next;
  };
  for (const auto& [name, value] : headers) add(name + ": " + value);
  add("Expect:");  // no 100-continue round trip before bodies
  return Slist(list);
}

void SetMethodAndBody(CURL* curl, const HttpRequest& request) {
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    // POSTFIELDS sends the buffer as is, with Content-Length; CUSTOMREQUEST names the method.
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.empty() ? "" : request.body.data());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
}

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "";
}

bool HttpOutcome::transient() const {
  switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
      return true;
    default:
      return false;
  }
}

CurlPool::CurlPool() { GlobalInit(); }

CurlPool::~CurlPool() {
  for (CURL* handle : idle_) curl_easy_cleanup(handle);
}

CURL* CurlPool::Acquire() {
  {
    MutexLock lock(mu_);
    if (!idle_.empty()) {
      CURL* handle = idle_.back();
      idle_.pop_back();
      return handle;
    }
  }
  return curl_easy_init();
}

void CurlPool::Release(CURL* handle) {
  curl_easy_reset(handle);  // keeps the handle's live connections
  MutexLock lock(mu_);
  if (idle_.size() < kMaxIdleHandles) {
    idle_.push_back(handle);
    return;
  }
  curl_easy_cleanup(handle);
}

HttpOutcome CurlPool::Perform(const HttpRequest& request) {
  HttpOutcome outcome;
  CURL* curl = Acquire();
  if (curl == nullptr) {
    outcome.curl_code = CURLE_FAILED_INIT;
    outcome.error = "curl_easy_init failed";
    return outcome;
  }
  Slist headers = BuildHeaders(request.headers);
  char error_buffer[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.connect_timeout_ms));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(1, request.timeout_ms)));
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &outcome.response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &outcome);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "knowledgebeast");
  SetMethodAndBody(curl, request);

  CURLcode code = curl_easy_perform(curl);
  if (outcome.impossible_range) {
    // Reported as what it means: the requested range does not exist.
    outcome.response.status = 416;
    outcome.response.body.clear();
  } else if (code == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    outcome.response.status = static_cast<int>(status);
  } else {
    outcome.curl_code = code;
    outcome.error = curl_easy_strerror(code);
    if (error_buffer[0] != '\0') outcome.error += std::string(": ") + error_buffer;
  }
  Release(curl);
  return outcome;
}

}  // namespace kb::blob
