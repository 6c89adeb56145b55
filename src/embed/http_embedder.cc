// The OpenAI-compatible HTTP embedder; see http_embedder.h for the protocol and error contract.
#include "embed/http_embedder.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/crypto_util.h"

namespace kb {
namespace {

using json = nlohmann::json;

// Longest slice of a server's error body quoted in our messages.
constexpr size_t kMaxQuotedBody = 500;

// The server's own explanation: OpenAI puts it in error.message, others in error or message.
std::string ServerMessage(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    if (j.contains("error")) {
      const json& e = j["error"];
      if (e.is_string()) return e.get<std::string>();
      if (e.is_object() && e.contains("message") && e["message"].is_string()) {
        return e["message"].get<std::string>();
      }
    }
    if (j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  }
  return body.size() > kMaxQuotedBody ? body.substr(0, kMaxQuotedBody) + "..." : body;
}

// Result of one attempt: either parsed vectors, or a status and whether retrying may help.
struct Attempt {
  Status status;
  bool retryable = false;
  int retry_after_ms = -1;  // from a Retry-After header, if any
  std::vector<Vector> vectors;
};

Attempt ParseResponse(const std::string& body, size_t expected, int dimension) {
  Attempt a;
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array()) {
    a.status = Status::IOError("embedding response has no \"data\" array");
    return a;
  }
  const json& data = j["data"];
  if (data.size() != expected) {
    a.status = Status::IOError("embedding response has " + std::to_string(data.size()) +
                               " vectors for " + std::to_string(expected) + " inputs");
    return a;
  }
  a.vectors.assign(expected, Vector());
  std::vector<bool> seen(expected, false);
  for (size_t pos = 0; pos < data.size(); ++pos) {
    const json& item = data[pos];
    // "index" orders the results; servers may answer out of order. Absent: position.
    size_t index = pos;
    if (item.is_object() && item.contains("index")) {
      if (!item["index"].is_number_integer() || item["index"].get<int64_t>() < 0 ||
          item["index"].get<uint64_t>() >= expected) {
        a.status = Status::IOError("embedding response has an invalid \"index\"");
        return a;
      }
      index = item["index"].get<size_t>();
    }
    if (seen[index]) {
      a.status = Status::IOError("embedding response repeats index " + std::to_string(index));
      return a;
    }
    seen[index] = true;
    if (!item.is_object() || !item.contains("embedding") || !item["embedding"].is_array()) {
      a.status = Status::IOError("embedding response item has no \"embedding\" array");
      return a;
    }
    const json& emb = item["embedding"];
    if (emb.size() != static_cast<size_t>(dimension)) {
      a.status = Status::FailedPrecondition(
          "embedding endpoint returned dimension " + std::to_string(emb.size()) +
          ", the project uses " + std::to_string(dimension));
      return a;
    }
    Vector v;
    v.reserve(emb.size());
    for (const json& x : emb) {
      if (!x.is_number()) {
        a.status = Status::IOError("embedding contains a non-number");
        return a;
      }
      v.push_back(x.get<float>());
    }
    if (!NormalizeL2(&v)) {
      a.status = Status::IOError("embedding endpoint returned a zero or non-finite vector");
      return a;
    }
    a.vectors[index] = std::move(v);
  }
  return a;
}

int ParseRetryAfterMs(const std::string& value) {
  if (value.empty()) return -1;
  char* end = nullptr;
  double seconds = std::strtod(value.c_str(), &end);
  if (end == value.c_str() || !std::isfinite(seconds) || seconds < 0) return -1;  // HTTP dates
  return static_cast<int>(std::min(seconds * 1000.0, 1e9));
}

}  // namespace

HttpEmbedder::HttpEmbedder(const EmbedderSpec& spec, const HttpEmbedderTuning& tuning)
    : spec_(spec), tuning_(tuning) {
  fingerprint_ =
      Sha256Hex("openai|model=" + spec_.model + "|dim=" + std::to_string(spec_.dimension))
          .substr(0, 32);
  // Split "scheme://host:port/prefix" into the client's origin and the request path.
  std::string url = spec_.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  size_t scheme_end = url.find("://");
  size_t path_start = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
  origin_ = url.substr(0, path_start);
  std::string prefix = path_start == std::string::npos ? "" : url.substr(path_start);
  bool has_v1 = prefix.size() >= 3 && prefix.compare(prefix.size() - 3, 3, "/v1") == 0;
  path_ = prefix + (has_v1 ? "/embeddings" : "/v1/embeddings");
}

Result<std::vector<Vector>> HttpEmbedder::Embed(const std::vector<std::string>& texts) {
  std::vector<Vector> out;
  out.reserve(texts.size());
  if (texts.empty()) return out;

  httplib::Headers headers;
  if (!spec_.api_key_env.empty()) {
    const char* key = std::getenv(spec_.api_key_env.c_str());
    if (key == nullptr || *key == '\0') {
      return Status::FailedPrecondition("environment variable " + spec_.api_key_env +
                                        " (the embedding API key) is not set");
    }
    headers.emplace("Authorization", std::string("Bearer ") + key);
  }

  httplib::Client client(origin_);
  if (!client.is_valid()) return Status::InvalidArgument("bad embedding endpoint URL " + spec_.url);
  const auto timeout = std::chrono::milliseconds(spec_.timeout_ms);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  client.set_keep_alive(true);

  thread_local std::mt19937_64 rng(std::random_device{}());
  const size_t batch = static_cast<size_t>(std::max(1, spec_.batch_size));
  for (size_t begin = 0; begin < texts.size(); begin += batch) {
    size_t end = std::min(texts.size(), begin + batch);
    json request = {{"model", spec_.model},
                    {"input", std::vector<std::string>(texts.begin() + begin, texts.begin() + end)}};
    const std::string body = request.dump(-1, ' ', false, json::error_handler_t::replace);

    Attempt result;
    for (int attempt = 0;; ++attempt) {
      auto res = client.Post(path_, headers, body, "application/json");
      result = Attempt();
      if (!res) {
        result.status = Status::Unavailable("embedding endpoint " + origin_ + path_ + ": " +
                                            httplib::to_string(res.error()));
        result.retryable = true;
      } else if (res->status == 200) {
        result = ParseResponse(res->body, end - begin, spec_.dimension);
      } else {
        std::string what = "embedding endpoint " + origin_ + path_ + " returned HTTP " +
                           std::to_string(res->status) + ": " + ServerMessage(res->body);
        if (res->status == 429) {
          result.status = Status::ResourceExhausted(what);
          result.retryable = true;
        } else if (res->status >= 500) {
          result.status = Status::Unavailable(what);
          result.retryable = true;
        } else {
          result.status = Status::FailedPrecondition(what);
        }
        if (result.retryable) result.retry_after_ms = ParseRetryAfterMs(
            res->get_header_value("Retry-After"));
      }
      if (result.status.ok() || !result.retryable || attempt >= spec_.max_retries) break;

      // Exponential backoff with +-50% jitter, so that clients that failed together do not
      // retry together; a server's Retry-After wins if it asks for longer.
      double base = std::min<double>(tuning_.max_backoff_ms,
                                     tuning_.initial_backoff_ms * std::ldexp(1.0, attempt));
      double delay = base * std::uniform_real_distribution<double>(0.5, 1.5)(rng);
      if (result.retry_after_ms > delay) {
        delay = std::min<double>(result.retry_after_ms, tuning_.max_backoff_ms);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(delay)));
      if (!res) client.stop();  // drop a half-dead keep-alive connection before retrying
    }
    if (!result.status.ok()) {
      return result.status.WithContext("embedding texts " + std::to_string(begin) + ".." +
                                       std::to_string(end - 1));
    }
    for (Vector& v : result.vectors) out.push_back(std::move(v));
  }
  return out;
}

}  // namespace kb
