// Hybrid search fusion: combines the vector (ANN) and keyword (BM25) result lists of one query
// into one ranking.
//
// Weighted fusion (the default) normalises each list's scores by the best score in that list
// (negative scores clamp to 0), so that alpha weighs like with like:
// score = alpha * v + (1 - alpha) * k, where a chunk absent from a list contributes 0 for it.
// Max- rather than min-max normalisation keeps "present but weakest" distinct from "absent": with
// min-max the last candidate of a list would score exactly like a chunk the list never returned. Reciprocal-rank fusion ignores raw scores:
// score = sum over lists of 1 / (kRrfK + rank). Ties break on chunk id so results are stable.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "index/vector_index.h"
#include "store/project_store.h"

namespace kb {

enum class SearchMode { kHybrid, kVector, kKeyword };
enum class FusionMethod { kWeighted, kRrf };

std::optional<SearchMode> ParseSearchMode(std::string_view s);
std::string_view SearchModeName(SearchMode m);
std::optional<FusionMethod> ParseFusionMethod(std::string_view s);
std::string_view FusionMethodName(FusionMethod m);

inline constexpr double kRrfK = 60.0;

struct FusedHit {
  int64_t chunk_id = 0;
  double score = 0;
  std::optional<double> vector_score;   // raw cosine similarity
  std::optional<double> keyword_score;  // raw BM25
};

// Both inputs best-first. Output best-first, every chunk once.
std::vector<FusedHit> FuseResults(const std::vector<VectorHit>& vector_hits,
                                  const std::vector<KeywordHit>& keyword_hits,
                                  FusionMethod method, double alpha);

}  // namespace kb
