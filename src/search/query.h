// A search request and its answer, and the one check of its limits. The HTTP decoding
// (api/request_decoding.cc), the CLI and the service all call ValidateQuery, so a query is
// refused with the same message whichever way it arrives. What depends on the project (a caller
// vector needs an "external" project of the same dimension) is checked by the search loop
// (search/hybrid_search.h).
//
// Thread-safety: plain values and a pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "search/fusion.h"

namespace kb {

// Limits and defaults in one place (docs/CONFIG.md quotes these).
inline constexpr int kDefaultTopK = 10;
inline constexpr int kMaxTopK = 100;
inline constexpr double kDefaultAlpha = 0.7;
inline constexpr size_t kMaxQueryBytes = 4096;
// Deepest page: offset + top_k candidates are fused and hydrated for every query.
inline constexpr int kMaxQueryOffset = 10000;

struct QueryRequest {
  std::string text;
  std::vector<float> vector;  // optional caller vector (external projects)
  SearchMode mode = SearchMode::kHybrid;
  FusionMethod fusion = FusionMethod::kWeighted;
  double alpha = kDefaultAlpha;  // weight of the vector score in weighted fusion
  int top_k = kDefaultTopK;
  int offset = 0;
  // Metadata filters: a JSON object {"key": value | {"$in": [values]}}; all must match.
  std::string filters_json;
  bool use_cache = true;
};

struct QueryHit {
  std::string document_id;
  int64_t chunk_id = 0;
  std::string title;
  std::string source;
  std::string text;
  std::string heading_path;
  double score = 0;
  std::optional<double> vector_score;   // cosine similarity, when the chunk was a vector hit
  std::optional<double> keyword_score;  // BM25, when the chunk was a keyword hit
  int rank = 0;                         // 1-based, counting from offset
  std::string metadata_json;
};

struct QueryResponse {
  std::vector<QueryHit> hits;
  double took_ms = 0;
  bool cached = false;
};

// How a message names a field: "field" for a JSON body and "parameter" for a query string (the
// HTTP decoders: "field 'top_k' must be between 1 and 100", as docs/API.md shows); empty for
// callers that hold a QueryRequest already (the service, the CLI): "'top_k' must be ...".
//
// The paging fields alone, for the decoders to check as they read them: InvalidArgument unless
// top_k is 1..kMaxTopK, offset 0..kMaxQueryOffset.
[[nodiscard]] Status ValidateTopK(int64_t top_k, std::string_view naming = {});
[[nodiscard]] Status ValidateOffset(int64_t offset, std::string_view naming = {});

// InvalidArgument, naming the field, unless: there is query text or a vector; the text is valid
// UTF-8 of at most kMaxQueryBytes and not only whitespace (when there is no vector); top_k is
// 1..kMaxTopK; alpha 0..1; offset 0..kMaxQueryOffset; keyword mode has text.
[[nodiscard]] Status ValidateQuery(const QueryRequest& q, std::string_view naming = {});

}  // namespace kb
