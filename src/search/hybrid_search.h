// The search loop of one project: retrieve candidates (vector and keyword) -> fuse them
// (search/fusion.h) -> apply the metadata filter (search/metadata_filter.h) -> widen the
// candidate pools while the filter leaves too few -> hydrate the page (document and chunk text).
// The service (service/knowledge_base.h) validates the request (search/query.h), resolves the
// project, and keeps the per-project query cache in front of this loop.
//
// Thread-safety: stateless functions. The target's store, index and embedder must be safe for
// concurrent reads, as ProjectStore, VectorIndex and Embedder are; no lock is taken here.
#pragma once

#include <vector>

#include "common/status.h"
#include "embed/embedder.h"
#include "index/vector_index.h"
#include "search/metadata_filter.h"
#include "search/query.h"
#include "store/project_store.h"

namespace kb {

// What one project's search reads. Pointers are borrowed for the duration of the call.
struct SearchTarget {
  ProjectStore* store = nullptr;
  VectorIndex* index = nullptr;
  Embedder* embedder = nullptr;
  bool external = false;  // the project takes vectors from the caller (embedder kind "external")
};

// Checks the request against the project: a caller vector is accepted only by an external
// project, with its dimension, finite and non-zero; an external project needs one for vector
// mode. Returns the caller vector normalised (empty when the request has none). InvalidArgument
// otherwise.
Result<Vector> CheckQueryVector(const SearchTarget& target, const QueryRequest& req);

// Runs the loop for a request that passed ValidateQuery and CheckQueryVector (`query_vector` is
// what the latter returned; text is embedded here when a vector search needs it). Returns the
// page [offset, offset + top_k) of the ranking, ranks counted from offset. Chunks deleted since
// retrieval are skipped, never returned half-hydrated.
Result<std::vector<QueryHit>> HybridSearch(const SearchTarget& target, const QueryRequest& req,
                                           const MetadataFilter& filter, Vector query_vector);

}  // namespace kb
