// Embedder: turns text into fixed-dimension float vectors.
//
// A project records the embedder it was created with (name, dimension, fingerprint); the
// knowledge base refuses to mix vector spaces by comparing fingerprints. The fingerprint changes
// whenever the same text could map to a different vector (algorithm version, model, dimension).
//
// Implementations:
//  - HashingEmbedder ("builtin-hash"): deterministic, offline, feature-hashed words, word bigrams
//    and character n-grams, 1+log(tf) weighted, L2-normalised. The default.
//  - HttpEmbedder ("openai"): any OpenAI-compatible POST {url}/v1/embeddings endpoint.
//  - "external": bring-your-own vectors; Embed() fails with FailedPrecondition.
//
// Thread-safety: Embed() may be called concurrently from several threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace kb {

using Vector = std::vector<float>;

class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual std::string Name() const = 0;         // e.g. "builtin-hash", "openai:nomic-embed-text"
  virtual int Dimension() const = 0;
  virtual std::string Fingerprint() const = 0;  // stable hex id of the vector space
  // Embeds a batch; the result has one L2-normalised vector per input, in order.
  virtual Result<std::vector<Vector>> Embed(const std::vector<std::string>& texts) = 0;
};

// Everything needed to rebuild an embedder; stored with the project (as JSON, see ToJson).
struct EmbedderSpec {
  std::string kind = "builtin-hash";  // "builtin-hash" | "openai" | "external"
  int dimension = 384;
  std::string model;        // openai: model name sent in the request
  std::string url;          // openai: base URL, e.g. http://127.0.0.1:11434 (path /v1/embeddings)
  std::string api_key_env;  // openai: name of the env var holding the key (never the key itself)
  int timeout_ms = 30000;   // openai: per request
  int max_retries = 3;      // openai: on 429/5xx/connection errors, with backoff
  int batch_size = 64;      // openai: texts per request

  std::string ToJson() const;
  static Result<EmbedderSpec> FromJson(const std::string& json);
};

// Builds the embedder a spec describes. InvalidArgument for unknown kinds or bad parameters.
Result<std::unique_ptr<Embedder>> MakeEmbedder(const EmbedderSpec& spec);

// Scales `v` to unit L2 length in place; returns false if it is all zeros or not finite.
bool NormalizeL2(Vector* v);

// True if every component is finite (no NaN or infinity).
bool AllFinite(const Vector& v);

}  // namespace kb
