// EmbedderSpec (de)serialisation and validation, the embedder factory, and the vector helpers
// every embedder shares.
#include "embed/embedder.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "common/crypto_util.h"
#include "embed/hashing_embedder.h"
#include "embed/http_embedder.h"

namespace kb {
namespace {

using json = nlohmann::json;

// Accepted ranges of the spec's numbers (docs quote these).
constexpr int kMinDimension = 1;
constexpr int kMaxDimension = 4096;
constexpr int kMinTimeoutMs = 1;
constexpr int kMaxTimeoutMs = 600000;
constexpr int kMaxRetries = 10;
constexpr int kMaxBatchSize = 2048;

// "external": the project takes vectors from the caller; there is nothing to embed with.
class ExternalEmbedder final : public Embedder {
 public:
  explicit ExternalEmbedder(int dimension)
      : dimension_(dimension),
        fingerprint_(Sha256Hex("external|dim=" + std::to_string(dimension)).substr(0, 32)) {}
  std::string Name() const override { return "external"; }
  int Dimension() const override { return dimension_; }
  std::string Fingerprint() const override { return fingerprint_; }
  Result<std::vector<Vector>> Embed(const std::vector<std::string>&) override {
    return Status::FailedPrecondition(
        "this project takes vectors from the caller (embedder kind \"external\")");
  }

 private:
  int dimension_;
  std::string fingerprint_;
};

Status RangeError(const char* field, int lo, int hi) {
  return Status::InvalidArgument(std::string("embedder.") + field + " must be between " +
                                 std::to_string(lo) + " and " + std::to_string(hi));
}

Status Validate(const EmbedderSpec& s) {
  if (s.kind != "builtin-hash" && s.kind != "openai" && s.kind != "external") {
    return Status::InvalidArgument("embedder.kind must be \"builtin-hash\", \"openai\" or "
                                   "\"external\", not \"" + s.kind + "\"");
  }
  if (s.dimension < kMinDimension || s.dimension > kMaxDimension) {
    return RangeError("dimension", kMinDimension, kMaxDimension);
  }
  if (s.timeout_ms < kMinTimeoutMs || s.timeout_ms > kMaxTimeoutMs) {
    return RangeError("timeout_ms", kMinTimeoutMs, kMaxTimeoutMs);
  }
  if (s.max_retries < 0 || s.max_retries > kMaxRetries) {
    return RangeError("max_retries", 0, kMaxRetries);
  }
  if (s.batch_size < 1 || s.batch_size > kMaxBatchSize) {
    return RangeError("batch_size", 1, kMaxBatchSize);
  }
  if (s.kind == "openai") {
    if (s.model.empty()) return Status::InvalidArgument("embedder.model is required for openai");
    if (s.url.rfind("http://", 0) != 0 && s.url.rfind("https://", 0) != 0) {
      return Status::InvalidArgument("embedder.url must start with http:// or https://");
    }
    if (s.url.find_first_of(" \t\r\n") != std::string::npos) {
      return Status::InvalidArgument("embedder.url must not contain whitespace");
    }
  }
  return Status::OK();
}

}  // namespace

std::string EmbedderSpec::ToJson() const {
  json j = {{"kind", kind},
            {"dimension", dimension},
            {"model", model},
            {"url", url},
            {"api_key_env", api_key_env},
            {"timeout_ms", timeout_ms},
            {"max_retries", max_retries},
            {"batch_size", batch_size}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<EmbedderSpec> EmbedderSpec::FromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("embedder spec is not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("embedder spec must be a JSON object");
  EmbedderSpec spec;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    std::string* str = nullptr;
    int* num = nullptr;
    if (key == "kind") str = &spec.kind;
    else if (key == "model") str = &spec.model;
    else if (key == "url") str = &spec.url;
    else if (key == "api_key_env") str = &spec.api_key_env;
    else if (key == "dimension") num = &spec.dimension;
    else if (key == "timeout_ms") num = &spec.timeout_ms;
    else if (key == "max_retries") num = &spec.max_retries;
    else if (key == "batch_size") num = &spec.batch_size;
    else return Status::InvalidArgument("embedder." + key + " is not a known field");
    if (str != nullptr) {
      if (!v.is_string()) return Status::InvalidArgument("embedder." + key + " must be a string");
      *str = v.get<std::string>();
    } else {
      if (!v.is_number_integer()) {
        return Status::InvalidArgument("embedder." + key + " must be an integer");
      }
      int64_t n = v.get<int64_t>();
      if (v.is_number_unsigned() && v.get<uint64_t>() > INT32_MAX) n = INT64_MAX;
      if (n < INT32_MIN || n > INT32_MAX) {
        return Status::InvalidArgument("embedder." + key + " is out of range");
      }
      *num = static_cast<int>(n);
    }
  }
  KB_RETURN_IF_ERROR(Validate(spec));
  return spec;
}

Result<std::unique_ptr<Embedder>> MakeEmbedder(const EmbedderSpec& spec) {
  KB_RETURN_IF_ERROR(Validate(spec));
  if (spec.kind == "builtin-hash") {
    return std::unique_ptr<Embedder>(
        std::make_unique<HashingEmbedder>(HashingEmbedder::DefaultParams(spec.dimension)));
  }
  if (spec.kind == "openai") return std::unique_ptr<Embedder>(std::make_unique<HttpEmbedder>(spec));
  return std::unique_ptr<Embedder>(std::make_unique<ExternalEmbedder>(spec.dimension));
}

bool NormalizeL2(Vector* v) {
  double sum = 0;
  for (float x : *v) {
    if (!std::isfinite(x)) return false;
    sum += static_cast<double>(x) * x;
  }
  if (sum == 0 || !std::isfinite(sum)) return false;
  double inv = 1.0 / std::sqrt(sum);
  for (float& x : *v) x = static_cast<float>(x * inv);
  return true;
}

bool AllFinite(const Vector& v) {
  for (float x : v) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

}  // namespace kb
