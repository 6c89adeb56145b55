// The search loop: see hybrid_search.h.
#include "search/hybrid_search.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>

#include "common/text_util.h"
#include "search/fusion.h"

namespace kb {

namespace {

// Candidates fetched from each list per result wanted: more candidates make the min-max
// normalisation of weighted fusion steadier and give the other list a chance to contribute.
constexpr size_t kCandidateFactor = 3;
constexpr size_t kMinCandidates = 30;
constexpr size_t kMaxCandidates = 5000;
// Chunks hydrated beyond the page, for chunks deleted between retrieval and hydration.
constexpr size_t kHydrateMargin = 8;

// Fused hits with their hydrated chunks, aligned by position.
struct Candidates {
  std::vector<FusedHit> fused;
  std::vector<ChunkView> views;
};

struct Retrieved {
  std::vector<FusedHit> fused;
  bool exhausted = false;  // neither list had `fetch` candidates: widening finds nothing more
};

// One retrieval round: up to `fetch` candidates from each list the mode wants, fused.
Result<Retrieved> Retrieve(const SearchTarget& t, const QueryRequest& req, const Vector& qvec,
                           bool want_vector, bool want_keyword, size_t fetch) {
  std::vector<VectorHit> vhits;
  std::vector<KeywordHit> khits;
  if (want_vector) vhits = t.index->Search(qvec, fetch);
  if (want_keyword) {
    KB_ASSIGN_OR_RETURN(khits, t.store->KeywordSearch(req.text, fetch));
  }
  Retrieved r;
  r.exhausted = vhits.size() < fetch && khits.size() < fetch;
  r.fused = FuseResults(vhits, khits, req.fusion, req.alpha);
  return r;
}

// Hydrates the first `end` hits and keeps, in order, those still present whose document matches
// `filter` (every one when it is null).
Result<Candidates> Hydrate(ProjectStore& store, const std::vector<FusedHit>& hits, size_t end,
                           const MetadataFilter* filter) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < end; ++i) ids.push_back(hits[i].chunk_id);
  KB_ASSIGN_OR_RETURN(auto hydrated, store.GetChunkViews(ids));
  std::unordered_map<int64_t, size_t> pos;
  for (size_t i = 0; i < hydrated.size(); ++i) pos[hydrated[i].chunk.id] = i;
  Candidates out;
  for (size_t i = 0; i < end; ++i) {
    auto it = pos.find(hits[i].chunk_id);
    if (it == pos.end()) continue;
    if (filter && !filter->Matches(hydrated[it->second].document.metadata_json)) continue;
    out.fused.push_back(hits[i]);
    out.views.push_back(std::move(hydrated[it->second]));
  }
  return out;
}

// Retrieves, fuses and filters. Metadata filters are applied after retrieval; when they discard
// too much, the candidate pools are widened (x4, up to kMaxCandidates) and retrieval runs again.
// Without a filter nothing is hydrated yet (the caller hydrates just the page).
Result<Candidates> RetrieveFiltered(const SearchTarget& t, const QueryRequest& req,
                                    const MetadataFilter& filter, const Vector& qvec,
                                    bool want_vector, bool want_keyword, size_t needed) {
  size_t fetch = std::min(kMaxCandidates, std::max(kMinCandidates, needed * kCandidateFactor));
  for (;;) {
    KB_ASSIGN_OR_RETURN(Retrieved r, Retrieve(t, req, qvec, want_vector, want_keyword, fetch));
    if (filter.empty()) return Candidates{std::move(r.fused), {}};
    KB_ASSIGN_OR_RETURN(Candidates c, Hydrate(*t.store, r.fused, r.fused.size(), &filter));
    if (c.fused.size() >= needed || r.exhausted || fetch >= kMaxCandidates) return c;
    fetch = std::min(kMaxCandidates, fetch * 4);
  }
}

// The page [offset, needed) of hydrated candidates as hits.
std::vector<QueryHit> PageOfHits(const Candidates& c, size_t offset, size_t needed) {
  std::vector<QueryHit> hits;
  for (size_t i = offset; i < c.fused.size() && i < needed; ++i) {
    const FusedHit& f = c.fused[i];
    const ChunkView& v = c.views[i];
    QueryHit hit;
    hit.document_id = v.document.id;
    hit.chunk_id = f.chunk_id;
    hit.title = v.document.title;
    hit.source = v.document.source;
    hit.text = v.chunk.text;
    hit.heading_path = v.chunk.heading_path;
    hit.score = f.score;
    hit.vector_score = f.vector_score;
    hit.keyword_score = f.keyword_score;
    hit.rank = static_cast<int>(i + 1);
    hit.metadata_json = v.document.metadata_json;
    hits.push_back(std::move(hit));
  }
  return hits;
}

}  // namespace

Result<Vector> CheckQueryVector(const SearchTarget& target, const QueryRequest& req) {
  Vector qvec;
  if (!req.vector.empty()) {
    if (!target.external) {
      return Status::InvalidArgument(
          "query vectors are accepted only by projects created with "
          "embedder kind 'external'");
    }
    const int dim = target.embedder->Dimension();
    if (static_cast<int>(req.vector.size()) != dim) {
      return Status::InvalidArgument("vector has " + std::to_string(req.vector.size()) +
                                     " dimensions; the project expects " + std::to_string(dim));
    }
    qvec = req.vector;
    if (!AllFinite(qvec) || !NormalizeL2(&qvec)) {
      return Status::InvalidArgument("vector must be finite and non-zero");
    }
  } else if (req.mode == SearchMode::kVector && target.external) {
    return Status::InvalidArgument("this project takes vectors from the caller: send \"vector\"");
  }
  return qvec;
}

Result<std::vector<QueryHit>> HybridSearch(const SearchTarget& target, const QueryRequest& req,
                                           const MetadataFilter& filter, Vector query_vector) {
  const bool has_text = !TrimWhitespace(req.text).empty();
  const bool has_vector = !req.vector.empty();
  const bool want_vector = req.mode != SearchMode::kKeyword && (has_vector || !target.external);
  const bool want_keyword = req.mode != SearchMode::kVector && has_text;
  if (want_vector && query_vector.empty()) {
    KB_ASSIGN_OR_RETURN(auto vecs, target.embedder->Embed({req.text}));
    if (vecs.size() != 1) return Status::Internal("embedder returned no vector for the query");
    query_vector = std::move(vecs[0]);
  }
  const size_t needed = static_cast<size_t>(req.top_k + req.offset);
  KB_ASSIGN_OR_RETURN(Candidates c, RetrieveFiltered(target, req, filter, query_vector, want_vector,
                                                     want_keyword, needed));
  if (filter.empty()) {
    const size_t end = std::min(c.fused.size(), needed + kHydrateMargin);
    KB_ASSIGN_OR_RETURN(c, Hydrate(*target.store, c.fused, end, nullptr));
  }
  return PageOfHits(c, static_cast<size_t>(req.offset), needed);
}

}  // namespace kb
