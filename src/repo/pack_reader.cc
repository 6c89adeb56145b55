// Ranged block reads with a small LRU cache; every chunk checked against its id.
#include "repo/pack_reader.h"

#include "repo/repository_format.h"
#include "repo/sealed_box.h"

namespace kb::repo {

ChunkReader::ChunkReader(const RepoContext& ctx, const ChunkMap& map, size_t cached_blocks)
    : ctx_(ctx), map_(map), cached_blocks_(std::max<size_t>(cached_blocks, 1)) {}

Result<const std::string*> ChunkReader::Block(uint32_t pack_ordinal, uint32_t block_ordinal) {
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if (it->pack == pack_ordinal && it->block == block_ordinal) {
      cache_.splice(cache_.begin(), cache_, it);
      return &cache_.front().plain;
    }
  }
  const PackInfo& pack = map_.pack(pack_ordinal);
  std::string key = PackKey(pack.id);
  if (block_ordinal >= pack.blocks.size()) return Status::Internal(key + ": block out of range");
  const BlockInfo& info = pack.blocks[block_ordinal];
  std::string where = key + ": block " + std::to_string(block_ordinal);
  auto sealed = ctx_.store->GetRange(key, static_cast<int64_t>(info.offset), info.length);
  if (!sealed.ok()) {
    if (sealed.status().code() == Code::kNotFound) return Status::Corruption(key + ": missing");
    if (sealed.status().code() == Code::kInvalidArgument) {
      return Status::Corruption(where + ": outside the pack (truncated?)");
    }
    return sealed.status();
  }
  bytes_fetched_ += static_cast<int64_t>(sealed->size());
  if (sealed->size() != info.length) {
    return Status::Corruption(where + ": pack is truncated (" + std::to_string(sealed->size()) +
                              " of " + std::to_string(info.length) + " bytes)");
  }
  auto plain = OpenCompressed(ctx_.data_key(), kBlockAad, *sealed, info.raw_length);
  if (!plain.ok()) {
    const std::string& why = plain.status().message();
    return Status::Corruption(where + (why == "fails authentication" ? " " : ": ") + why);
  }
  if (plain->size() != info.raw_length) {
    return Status::Corruption(where + ": decompresses to " + std::to_string(plain->size()) +
                              " bytes, the index says " + std::to_string(info.raw_length));
  }
  cache_.push_front(CachedBlock{pack_ordinal, block_ordinal, std::move(plain).value()});
  if (cache_.size() > cached_blocks_) cache_.pop_back();
  return &cache_.front().plain;
}

Result<std::string> ChunkReader::Read(const ChunkId& id) {
  const ChunkLocation* loc = map_.Find(id);
  if (loc == nullptr || loc->pack == ChunkMap::kPendingPack) {
    return Status::Corruption("chunk " + ChunkIdHex(id) + " is not in any index");
  }
  KB_ASSIGN_OR_RETURN(const std::string* block, Block(loc->pack, loc->block));
  const std::string& pack_id = map_.pack(loc->pack).id;
  if (static_cast<uint64_t>(loc->offset) + loc->length > block->size()) {
    return Status::Corruption(PackKey(pack_id) + ": block " + std::to_string(loc->block) +
                              " is shorter than the index says");
  }
  std::string data = block->substr(loc->offset, loc->length);
  if (ctx_.hasher->Hash(data) != id) {
    return Status::Corruption(PackKey(pack_id) + ": block " + std::to_string(loc->block) +
                              ": chunk " + ChunkIdHex(id) + " does not match its id");
  }
  return data;
}

Result<std::vector<ChunkId>> ChunkReader::ReadTree(const ChunkId& id) {
  KB_ASSIGN_OR_RETURN(std::string plain, Read(id));
  if (plain.empty() || plain.size() % kChunkIdBytes != 0 ||
      plain.size() > static_cast<size_t>(kChunkIdBytes * ctx_.params.tree_fanout)) {
    return Status::Corruption("tree " + ChunkIdHex(id) + " has an invalid length of " +
                              std::to_string(plain.size()) + " bytes");
  }
  std::vector<ChunkId> ids;
  ids.reserve(plain.size() / kChunkIdBytes);
  for (size_t pos = 0; pos < plain.size(); pos += kChunkIdBytes) {
    ids.push_back(ChunkIdFromBytes(std::string_view(plain).substr(pos, kChunkIdBytes)));
  }
  return ids;
}

}  // namespace kb::repo
