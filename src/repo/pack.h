// Packs and block entries (docs/format/BACKUP_REPOSITORY.md, "Packs", "Index"): building a pack
// from sealed blocks, its encrypted table and footer, and reading them back with every field
// checked. Block entries are shared by pack tables and index objects.
//
//   pack := "KBPK" u16 version u16 0 | block* | table box | table_length u32 | "KBPT"
//
// Thread-safety: PackBuilder is not thread-safe (one per writer); the free functions are.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "repo/crypto.h"
#include "repo/repository.h"
#include "repo/repository_codec.h"

namespace kb::repo {

enum class ChunkKind : uint8_t { kData = 0, kTree = 1 };

struct ChunkEntry {
  ChunkId id{};
  uint32_t length = 0;
};

// One block as listed in a pack table or an index object.
struct BlockEntry {
  ChunkKind kind = ChunkKind::kData;
  uint64_t offset = 0;      // of the sealed block in the pack
  uint32_t length = 0;      // of the sealed block
  uint32_t raw_length = 0;  // sum of the chunk lengths
  std::vector<ChunkEntry> chunks;
};

// The size limits a repository's parameters put on blocks and chunks.
struct FormatLimits {
  int64_t chunk_size = 4096;
  int64_t block_size = 256 * 1024;
  int64_t tree_fanout = 1024;

  static FormatLimits From(const RepositoryParams& params);
  // Longest chunk of `kind`: chunk_size for data, 16 x fanout for trees.
  uint32_t MaxChunkLength(ChunkKind kind) const;
  // Longest sealed block: zstd's bound for block_size plus the box overhead.
  uint64_t MaxSealedBlock() const;
};

void EncodeBlockEntry(const BlockEntry& block, ByteWriter& out);
// Reads one entry and checks it against `limits` (kind, chunk count, lengths, raw_length = sum,
// tree lengths a multiple of 16). Corruption with a short reason otherwise (no object name).
Status DecodeBlockEntry(ByteReader& in, const FormatLimits& limits, BlockEntry* block);
// Checks that `blocks` lie in order without overlap in [8, end).
Status CheckBlockRanges(const std::vector<BlockEntry>& blocks, uint64_t end);

// Builds one pack in memory: blocks are appended already sealed.
class PackBuilder {
 public:
  PackBuilder();
  // Appends a sealed block; `entry.offset` and `entry.length` are filled in here.
  void AddBlock(std::string_view sealed, BlockEntry entry);
  size_t size() const { return bytes_.size(); }
  size_t block_count() const { return blocks_.size(); }
  bool empty() const { return blocks_.empty(); }

  struct Finished {
    std::string bytes;
    std::string id;  // 64 hex: SHA-256 of bytes
    std::vector<BlockEntry> blocks;
  };
  // Seals the table under `data_key`, appends it and the footer. The builder is empty afterwards.
  Finished Finish(std::string_view data_key, int level);

 private:
  std::string bytes_;
  std::vector<BlockEntry> blocks_;
};

// Parses a whole pack: header, footer and table (opened under `data_key`), block ranges.
// Corruption (without the object name) on any mismatch; FailedPrecondition for a newer version.
Result<std::vector<BlockEntry>> ReadPackTable(std::string_view pack, std::string_view data_key,
                                              const FormatLimits& limits);

// Opens one sealed block and checks that it decompresses to exactly `entry.raw_length` bytes.
Result<std::string> OpenBlock(std::string_view sealed, std::string_view data_key,
                              const BlockEntry& entry);

// Checks every chunk of an opened block against its id. Corruption names the first bad chunk.
Status CheckBlockChunks(std::string_view plain, const BlockEntry& entry,
                        const ChunkIdHasher& hasher);

}  // namespace kb::repo
