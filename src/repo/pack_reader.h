// ChunkReader: the read side of the chunk map. Finds a chunk's block, fetches just that block
// with a ranged GET, opens its box, and checks the chunk against its keyed id, so no byte a
// restore writes is unchecked. The last few opened blocks are cached: consecutive chunks of a
// file usually share a block.
//
// Errors are Corruption naming the object and what failed ("data/ab/ab12…: block 3 fails
// authentication", "chunk 5e… is not in any index"); a pack the index names but the store does
// not have is Corruption too ("data/ab/ab12…: missing"), because the repository is damaged.
//
// Thread-safety: not thread-safe (the cache); use one reader per thread. The ChunkMap is only
// read.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <vector>

#include "common/status.h"
#include "repo/chunk_index.h"
#include "repo/repository_context.h"

namespace kb::repo {

class ChunkReader {
 public:
  ChunkReader(const RepoContext& ctx, const ChunkMap& map, size_t cached_blocks = 4);

  // The plaintext of chunk `id`, checked against the id.
  Result<std::string> Read(const ChunkId& id);
  // A tree: its plaintext split into ids (length a multiple of 16, at most 16 x fanout).
  Result<std::vector<ChunkId>> ReadTree(const ChunkId& id);

  int64_t bytes_fetched() const { return bytes_fetched_; }

 private:
  struct CachedBlock {
    uint32_t pack;
    uint32_t block;
    std::string plain;
  };
  Result<const std::string*> Block(uint32_t pack, uint32_t block);

  const RepoContext& ctx_;
  const ChunkMap& map_;
  size_t cached_blocks_;
  std::list<CachedBlock> cache_;  // most recent first
  int64_t bytes_fetched_ = 0;
};

}  // namespace kb::repo
