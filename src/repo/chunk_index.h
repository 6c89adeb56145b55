// Index objects and the in-memory chunk map (docs/format/BACKUP_REPOSITORY.md, "Index").
//
// An index object lists packs with their block entries; the chunk map is all index objects
// loaded into memory: for each chunk id, the pack, block and offset where its plaintext lies.
// Chunks loaded from the index are one sorted array of 32-byte entries (16-byte id + 16-byte
// location), the ~32 bytes per unique chunk of the format's "Limits"; chunks a backup adds go to
// a small hash table beside it.
//
// Thread-safety: ChunkMap is not synchronised: build it on one thread, then share it read-only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "repo/crypto.h"
#include "repo/pack.h"
#include "repo/repository_context.h"

namespace kb::repo {

// One pack as listed in an index object.
struct IndexedPack {
  std::string id;  // 64 hex
  uint64_t size = 0;
  std::vector<BlockEntry> blocks;
};

// Encodes an index object's plaintext (before sealing).
std::string EncodeIndex(const std::vector<IndexedPack>& packs);
// Decodes and checks an index object's plaintext, calling `visit` for each pack.
// Corruption (no object name) or FailedPrecondition (newer version).
Status DecodeIndex(std::string_view plain, const FormatLimits& limits,
                   const std::function<Status(IndexedPack&&)>& visit);

// Seals and Puts one index object; its name is the SHA-256 of the sealed bytes.
// Returns the stored size; `name` receives the index id.
Result<int64_t> WriteIndexObject(const RepoContext& ctx, const std::vector<IndexedPack>& packs,
                                 std::string* name = nullptr);
// Gets, checks the name (SHA-256) and decodes one index object.
Status ReadIndexObject(const RepoContext& ctx, const std::string& index_id,
                       const std::function<Status(IndexedPack&&)>& visit);

struct ChunkLocation {
  uint32_t pack = 0;    // ordinal in ChunkMap::packs()
  uint32_t block = 0;   // ordinal in the pack's blocks
  uint32_t offset = 0;  // of the chunk in the decompressed block
  uint32_t length = 0;
};

struct BlockInfo {
  uint64_t offset = 0;
  uint32_t length = 0;
  uint32_t raw_length = 0;
  ChunkKind kind = ChunkKind::kData;
};

struct PackInfo {
  std::string id;  // 64 hex
  uint64_t size = 0;
  std::vector<BlockInfo> blocks;
};

class ChunkMap {
 public:
  // The pack ordinal of chunks written by a running backup whose pack is not finished yet.
  static constexpr uint32_t kPendingPack = 0xfffffffeu;

  ChunkMap();

  // Adds a pack (or returns the ordinal of the pack with that id, if already added).
  uint32_t AddPack(PackInfo pack);
  // Adds every chunk of an indexed pack. Before Seal() this only appends (loading is a bulk
  // append, then one sort); a chunk in several packs keeps the pack added first.
  void AddIndexedPack(const IndexedPack& pack);
  // Sorts what AddIndexedPack appended, so that it can be searched. Called once loading is done.
  void Seal();

  // Inserts if absent; returns false (and changes nothing) if the id is already present.
  // Only after Seal().
  bool Insert(const ChunkId& id, const ChunkLocation& loc);
  // Changes the location of a present id (a backup's new chunks once their pack is known).
  void Update(const ChunkId& id, const ChunkLocation& loc);
  const ChunkLocation* Find(const ChunkId& id) const;
  bool Contains(const ChunkId& id) const { return Find(id) != nullptr; }

  size_t size() const { return sorted_.size() + added_count_; }
  const std::vector<PackInfo>& packs() const { return packs_; }
  const PackInfo& pack(uint32_t ordinal) const { return packs_[ordinal]; }
  // The ordinal of a pack by id, or -1.
  int64_t FindPack(const std::string& id) const;
  // Memory of the chunk entries and their bucket table, for tests of the format's ~32 bytes per
  // chunk.
  size_t table_bytes() const;

 private:
  struct Slot {
    ChunkId id;
    ChunkLocation loc;
  };
  static_assert(sizeof(Slot) == 32);
  static constexpr uint32_t kEmpty = 0xffffffffu;
  static constexpr size_t kNone = ~size_t{0};
  size_t FindSorted(const ChunkId& id) const;  // index in sorted_ or kNone
  size_t Probe(const ChunkId& id) const;
  void Grow();

  // Chunks from index objects: one sorted array, 32 bytes each, binary-searched within the range
  // of their first two bytes (bucket_start_, 256 KiB, built by Seal): a backup looks up every
  // chunk of every file, and a search over all of sorted_ cost ~6% of an incremental backup.
  std::vector<Slot> sorted_;
  std::vector<uint32_t> bucket_start_;  // 65,537 entries once sealed
  bool sealed_ = false;
  // Chunks added since (a running backup's new chunks): open addressing, linear probing.
  std::vector<Slot> added_;
  size_t added_count_ = 0;
  std::vector<PackInfo> packs_;
  std::unordered_map<std::string, uint32_t> pack_ordinals_;
};

// What LoadChunkMap found besides the map.
struct IndexLoadResult {
  // Index ids that were read, and the pack ids each listed (for prune's rewrite).
  std::vector<std::pair<std::string, std::vector<std::string>>> objects;
  // "index/<id>: fails authentication" for each unreadable object (skipped).
  std::vector<std::string> problems;
  // Every pack in data/ (listed before the index was read) with its size.
  std::unordered_map<std::string, int64_t> packs;
};

// Lists data/, then reads every index object into `map`. Packs that are `avoided` — those in
// `excluded` and those not in data/ (an index entry may outlive its pack: a backup that lost its
// lock can write an index naming a pack a sweep deleted) — are left out entirely when
// `avoided_fallback` is false (a backup must not deduplicate against them), and used only for
// chunks no other pack holds when true (readers prefer packs that stay and exist, and still
// report a missing pack when there is no other copy).
// An index object that disappears between listing and reading (a prune rewrote it) is retried
// from a fresh listing. Unreadable objects are skipped and reported in `problems`; store
// errors other than NotFound fail the call.
Result<IndexLoadResult> LoadChunkMap(const RepoContext& ctx,
                                     const std::unordered_set<std::string>& excluded,
                                     bool avoided_fallback, ChunkMap* map);

// The ids of every pack in data/, with their sizes.
Result<std::unordered_map<std::string, int64_t>> ListPackIds(const RepoContext& ctx);

}  // namespace kb::repo
