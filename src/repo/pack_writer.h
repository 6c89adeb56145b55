// PackWriter: the write side of deduplication (docs/format/BACKUP_REPOSITORY.md, "Backup
// (writer)" steps 5 and 6). Chunks the chunk map does not know are gathered into one open block
// per kind; a full block is compressed and sealed (on worker threads when threads > 1) and
// appended, in order, to the current pack; a full pack is Put under its SHA-256 name; after every
// 64 packs, and at Finish, an index object listing the packs uploaded so far is Put. Nothing
// refers to a pack before it is stored, and no index names a pack that is not stored.
//
// Uploads (pack and index Puts) run in order on one uploader thread, so that compression goes on
// while a pack travels to S3. The uploader runs its tasks strictly first-in first-out, and after
// the first failure runs none of the remaining ones: an index object is only ever Put after the
// packs it names were stored.
//
// Memory: the open blocks, at most 2 x threads blocks being sealed, the pack being filled and at
// most two packs waiting for upload.
//
// Thread-safety: not thread-safe; one backup drives it from one thread. It owns its worker
// threads and joins them on destruction (abandoning unwritten data).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "repo/chunk_index.h"
#include "repo/pack.h"
#include "repo/repository_context.h"

namespace kb::repo {

struct PackWriterStats {
  int64_t new_chunks = 0;
  int64_t added_bytes = 0;   // plaintext bytes of new chunks
  int64_t stored_bytes = 0;  // bytes of packs and index objects Put
  int64_t packs = 0;
  int64_t index_objects = 0;
};

class PackWriter {
 public:
  // `map` must outlive the writer; new chunks are added to it (so a chunk repeated within the
  // backup is stored once) and get their final location when their pack is stored.
  // `before_index`, when given, runs before every index object is Put and can veto it (a backup
  // checks that its lock is still held: an index must never name a pack a prune may have
  // deleted).
  PackWriter(const RepoContext& ctx, ChunkMap* map, int threads,
             std::function<Status()> before_index = nullptr);
  ~PackWriter();
  PackWriter(const PackWriter&) = delete;
  PackWriter& operator=(const PackWriter&) = delete;

  // Stores `data` (whose id the caller computed) unless the map has it. Returns whether it was
  // new. Errors are the store's (a pack Put failed); the writer is unusable afterwards.
  Result<bool> Add(ChunkKind kind, const ChunkId& id, std::string_view data);

  // Seals the open blocks, Puts the last pack and the last index object.
  Status Finish();

  // Complete after Finish() returned.
  const PackWriterStats& stats() const { return stats_; }

 private:
  class SealPool;
  class Uploader;
  struct OpenBlock {
    std::string raw;
    BlockEntry entry;
  };
  struct InFlight {
    std::future<std::string> sealed;
    BlockEntry entry;
  };

  Status SubmitBlock(ChunkKind kind);
  Status Drain(size_t keep);
  Status AppendSealed(std::string sealed, BlockEntry entry);
  Status FinishPack();
  Status WriteIndex();

  const RepoContext& ctx_;
  ChunkMap* map_;
  std::function<Status()> before_index_;
  std::unique_ptr<SealPool> pool_;
  std::unique_ptr<Uploader> uploader_;
  size_t max_in_flight_;
  OpenBlock open_[2];  // by kind
  std::deque<InFlight> in_flight_;
  PackBuilder pack_;
  std::vector<IndexedPack> unindexed_;  // stored packs not yet in an index object
  PackWriterStats stats_;
  std::atomic<int64_t> index_bytes_{0};  // added by the uploader thread
  Status failed_;
};

}  // namespace kb::repo
