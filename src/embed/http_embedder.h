// HttpEmbedder ("openai"): embeddings from any OpenAI-compatible endpoint (OpenAI, Ollama,
// llama.cpp server, vLLM, TEI), so that a real model can replace the built-in embedder.
//
// Each Embed() call sends POST {url}/v1/embeddings with {"model", "input": [texts]} in batches
// of `batch_size` (a base URL that already ends in "/v1" gets only "/embeddings" appended).
// Transient failures (connection errors, timeouts, 429, 5xx) are retried up to `max_retries`
// times with exponential backoff and jitter, honouring Retry-After; other 4xx fail at once with
// the server's message. Every vector is checked (dimension: FailedPrecondition, since the
// endpoint no longer serves the project's vector space; non-finite or zero: IOError), put in the
// order of the response's "index" fields and L2-normalised.
//
// Errors: Unavailable (unreachable / 5xx / timeouts after the retries), ResourceExhausted (429
// after the retries), FailedPrecondition (other 4xx, wrong dimension, API key variable unset),
// IOError (malformed response).
//
// Thread-safety: Embed() may run concurrently; each call uses its own HTTP client.
#pragma once

#include <string>
#include <vector>

#include "embed/embedder.h"

namespace kb {

// Knobs that are not part of the stored spec (they do not change the vector space).
struct HttpEmbedderTuning {
  int initial_backoff_ms = 250;  // doubled per retry, with +-50% jitter
  int max_backoff_ms = 10000;    // also the cap on a server's Retry-After
};

class HttpEmbedder final : public Embedder {
 public:
  // `spec` must be valid (MakeEmbedder checks it).
  explicit HttpEmbedder(const EmbedderSpec& spec, const HttpEmbedderTuning& tuning = {});

  std::string Name() const override { return "openai:" + spec_.model; }
  int Dimension() const override { return spec_.dimension; }
  // Hash of ("openai", model, dimension). Not the URL: the same model behind another host or
  // port (a moved Ollama, a proxy) produces the same vectors, and re-embedding a project
  // because its endpoint moved would be wrong. Two servers that give one name to different
  // weights are indistinguishable here; name models precisely.
  std::string Fingerprint() const override { return fingerprint_; }
  Result<std::vector<Vector>> Embed(const std::vector<std::string>& texts) override;

 private:
  EmbedderSpec spec_;
  HttpEmbedderTuning tuning_;
  std::string fingerprint_;
  std::string origin_;  // scheme://host[:port]
  std::string path_;    // .../v1/embeddings
};

}  // namespace kb
