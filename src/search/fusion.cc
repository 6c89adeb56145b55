#include "search/fusion.h"

#include <algorithm>
#include <unordered_map>

namespace kb {

std::optional<SearchMode> ParseSearchMode(std::string_view s) {
  if (s == "hybrid") return SearchMode::kHybrid;
  if (s == "vector" || s == "semantic") return SearchMode::kVector;
  if (s == "keyword" || s == "bm25") return SearchMode::kKeyword;
  return std::nullopt;
}

std::string_view SearchModeName(SearchMode m) {
  switch (m) {
    case SearchMode::kHybrid: return "hybrid";
    case SearchMode::kVector: return "vector";
    case SearchMode::kKeyword: return "keyword";
  }
  return "hybrid";
}

std::optional<FusionMethod> ParseFusionMethod(std::string_view s) {
  if (s == "weighted" || s == "linear") return FusionMethod::kWeighted;
  if (s == "rrf") return FusionMethod::kRrf;
  return std::nullopt;
}

std::string_view FusionMethodName(FusionMethod m) {
  return m == FusionMethod::kRrf ? "rrf" : "weighted";
}

namespace {

// The best score of a list (its normaliser); 0 when the list is empty or all scores are <= 0.
template <typename T, typename F>
double BestScore(const std::vector<T>& hits, F score) {
  double best = 0;
  for (const T& h : hits) best = std::max(best, score(h));
  return best;
}

double Normalise(double s, double best) {
  if (best <= 0 || s <= 0) return 0.0;
  return std::min(1.0, s / best);
}

}  // namespace

std::vector<FusedHit> FuseResults(const std::vector<VectorHit>& vector_hits,
                                  const std::vector<KeywordHit>& keyword_hits,
                                  FusionMethod method, double alpha) {
  std::unordered_map<int64_t, FusedHit> by_id;
  by_id.reserve(vector_hits.size() + keyword_hits.size());
  const double vb =
      BestScore(vector_hits, [](const VectorHit& h) { return static_cast<double>(h.score); });
  const double kbnd = BestScore(keyword_hits, [](const KeywordHit& h) { return h.score; });
  for (size_t i = 0; i < vector_hits.size(); ++i) {
    const VectorHit& h = vector_hits[i];
    FusedHit& f = by_id[h.label];
    if (f.vector_score) continue;  // a duplicate label: keep the first (best) one
    f.chunk_id = h.label;
    f.vector_score = h.score;
    f.score += method == FusionMethod::kRrf ? 1.0 / (kRrfK + static_cast<double>(i + 1))
                                            : alpha * Normalise(h.score, vb);
  }
  for (size_t i = 0; i < keyword_hits.size(); ++i) {
    const KeywordHit& h = keyword_hits[i];
    FusedHit& f = by_id[h.chunk_id];
    if (f.keyword_score) continue;
    f.chunk_id = h.chunk_id;
    f.keyword_score = h.score;
    f.score += method == FusionMethod::kRrf ? 1.0 / (kRrfK + static_cast<double>(i + 1))
                                            : (1.0 - alpha) * Normalise(h.score, kbnd);
  }
  std::vector<FusedHit> out;
  out.reserve(by_id.size());
  for (auto& [id, hit] : by_id) out.push_back(hit);
  std::sort(out.begin(), out.end(), [](const FusedHit& a, const FusedHit& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.chunk_id < b.chunk_id;
  });
  return out;
}

}  // namespace kb
