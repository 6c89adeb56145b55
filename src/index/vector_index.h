// VectorIndex: the approximate-nearest-neighbour index of one project (hnswlib, cosine).
//
// It is *derived* data: a cache of the embeddings stored in the project's kb.db. It remembers
// the journal LSN it reflects; on start the knowledge base loads it and replays journal entries
// after that LSN, or rebuilds it from the database if it is missing or damaged. Deleting the
// files never loses data. On-disk format: docs/format/VECTOR_INDEX.md.
//
// Labels are chunk ids (int64 >= 0, never reused by the store). Vectors must be L2-normalised;
// scores returned are cosine similarities (1 = identical).
//
// Small indexes are searched exactly (brute force), large ones through the HNSW graph; both
// give the same interface.
//
// Thread-safety: all methods are safe to call concurrently; searches share a lock, mutations
// take it exclusively.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace kb {

struct VectorIndexOptions {
  int dimension = 384;
  int m = 16;                 // HNSW graph degree
  int ef_construction = 100;  // build-time beam width (bench/index_bench: 100 + ef 300 matches
                              // the recall of 200 + ef 200 at half the insert cost)
  int ef_search = 300;        // query-time beam width (raised to k when k is larger)
  // Below this many live vectors, search is exact (a linear scan is faster and has recall 1).
  size_t exact_search_below = 20000;
};

struct VectorHit {
  int64_t label;
  float score;  // cosine similarity
};

class VectorIndex {
 public:
  static std::unique_ptr<VectorIndex> Create(const VectorIndexOptions& options);

  // Loads an index saved by Save() from directory `dir`. NotFound if absent; Corruption if the
  // files fail their checksum or do not match `options.dimension`.
  static Result<std::unique_ptr<VectorIndex>> Load(const std::string& dir,
                                                   const VectorIndexOptions& options);

  virtual ~VectorIndex() = default;

  // Saves atomically into `dir` (created if needed), recording `lsn`. A crash leaves either the
  // previous saved index or the new one.
  virtual Status Save(const std::string& dir, int64_t lsn) = 0;

  // Adds or replaces the vector for `label`. InvalidArgument on wrong dimension/non-finite.
  virtual Status Upsert(int64_t label, std::span<const float> vector) = 0;
  // Upserts many vectors at once; on multi-core machines the graph insertions run in parallel.
  // All inputs are validated first: on InvalidArgument nothing was inserted. `labels` must be
  // distinct and the same length as `vectors`.
  virtual Status UpsertBatch(const std::vector<int64_t>& labels,
                             const std::vector<std::vector<float>>& vectors);
  // Removes `label` (no-op if absent).
  virtual void Remove(int64_t label) = 0;
  virtual bool Contains(int64_t label) const = 0;

  // The `k` nearest live vectors, best first. `accept`, if set, filters labels (the index
  // searches wider so that up to k accepted hits come back).
  virtual std::vector<VectorHit> Search(std::span<const float> query, size_t k,
                                        const std::function<bool(int64_t)>& accept = {}) const = 0;
  // Exact search (linear scan), used for tests, recall measurement and selective filters.
  virtual std::vector<VectorHit> SearchExact(
      std::span<const float> query, size_t k,
      const std::function<bool(int64_t)>& accept = {}) const = 0;

  virtual size_t Size() const = 0;  // live vectors
  virtual int64_t lsn() const = 0;  // LSN recorded by the last Save/Load, or set_lsn
  virtual void set_lsn(int64_t lsn) = 0;
  virtual int dimension() const = 0;
  virtual size_t MemoryBytes() const = 0;  // approximate
  // All live labels, ascending (for consistency checks against the database).
  virtual std::vector<int64_t> Labels() const = 0;
};

}  // namespace kb
