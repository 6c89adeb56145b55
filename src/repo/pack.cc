// Pack framing and block entries, byte for byte as in docs/format/BACKUP_REPOSITORY.md "Packs".
#include "repo/pack.h"

#include <zstd.h>

#include "common/crypto_util.h"
#include "repo/repository_format.h"
#include "repo/sealed_box.h"

namespace kb::repo {

FormatLimits FormatLimits::From(const RepositoryParams& params) {
  return FormatLimits{params.chunk_size, params.block_size, params.tree_fanout};
}

uint32_t FormatLimits::MaxChunkLength(ChunkKind kind) const {
  return static_cast<uint32_t>(kind == ChunkKind::kTree ? kChunkIdBytes * tree_fanout : chunk_size);
}

uint64_t FormatLimits::MaxSealedBlock() const {
  return ZSTD_compressBound(static_cast<size_t>(block_size)) + kBoxOverhead;
}

void EncodeBlockEntry(const BlockEntry& block, ByteWriter& out) {
  out.U8(static_cast<uint8_t>(block.kind));
  out.U64(block.offset);
  out.U32(block.length);
  out.U32(block.raw_length);
  out.U32(static_cast<uint32_t>(block.chunks.size()));
  // Columns, not rows: the lengths (nearly all chunk_size) compress to almost nothing together.
  for (const ChunkEntry& c : block.chunks) out.Bytes(ChunkIdBytes(c.id));
  for (const ChunkEntry& c : block.chunks) out.U32(c.length);
}

Status DecodeBlockEntry(ByteReader& in, const FormatLimits& limits, BlockEntry* block) {
  uint8_t kind = 0;
  uint32_t count = 0;
  if (!in.U8(&kind) || !in.U64(&block->offset) || !in.U32(&block->length) ||
      !in.U32(&block->raw_length) || !in.U32(&count)) {
    return Status::Corruption("truncated block entry");
  }
  if (kind > 1) return Status::Corruption("block of unknown kind " + std::to_string(kind));
  block->kind = static_cast<ChunkKind>(kind);
  if (count == 0 || count > kMaxChunksPerBlock) {
    return Status::Corruption("block with " + std::to_string(count) + " chunks");
  }
  if (block->length < kBoxOverhead || block->length > limits.MaxSealedBlock()) {
    return Status::Corruption("block of " + std::to_string(block->length) + " bytes");
  }
  if (in.remaining() < static_cast<size_t>(count) * (kChunkIdBytes + 4)) {
    return Status::Corruption("truncated block entry");
  }
  uint32_t max_len = limits.MaxChunkLength(block->kind);
  uint64_t sum = 0;
  block->chunks.resize(count);
  for (ChunkEntry& c : block->chunks) {
    std::string_view id;
    (void)in.Bytes(kChunkIdBytes, &id);
    c.id = ChunkIdFromBytes(id);
  }
  for (ChunkEntry& c : block->chunks) {
    (void)in.U32(&c.length);
    if (c.length == 0 || c.length > max_len ||
        (block->kind == ChunkKind::kTree && c.length % kChunkIdBytes != 0)) {
      return Status::Corruption("chunk of invalid length " + std::to_string(c.length));
    }
    sum += c.length;
  }
  if (sum != block->raw_length || sum > static_cast<uint64_t>(limits.block_size)) {
    return Status::Corruption("block raw_length " + std::to_string(block->raw_length) +
                              " does not match its chunks or exceeds block_size");
  }
  return Status::OK();
}

Status CheckBlockRanges(const std::vector<BlockEntry>& blocks, uint64_t end) {
  uint64_t pos = kPackHeaderBytes;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const BlockEntry& b = blocks[i];
    if (b.offset < pos || b.offset + b.length > end || b.offset + b.length < b.offset) {
      return Status::Corruption("block " + std::to_string(i) + " at offset " +
                                std::to_string(b.offset) + " lies outside its place in the pack");
    }
    pos = b.offset + b.length;
  }
  return Status::OK();
}

PackBuilder::PackBuilder() {
  ByteWriter w(&bytes_);
  w.Bytes(kPackMagic);
  w.U16(kPackVersion);
  w.U16(0);
}

void PackBuilder::AddBlock(std::string_view sealed, BlockEntry entry) {
  entry.offset = bytes_.size();
  entry.length = static_cast<uint32_t>(sealed.size());
  bytes_.append(sealed);
  blocks_.push_back(std::move(entry));
}

PackBuilder::Finished PackBuilder::Finish(std::string_view data_key, int level) {
  std::string table;
  ByteWriter tw(&table);
  tw.U32(static_cast<uint32_t>(blocks_.size()));
  for (const BlockEntry& b : blocks_) EncodeBlockEntry(b, tw);
  std::string sealed = SealCompressed(data_key, kPackTableAad, table, level);
  ByteWriter w(&bytes_);
  w.Bytes(sealed);
  w.U32(static_cast<uint32_t>(sealed.size()));
  w.Bytes(kPackFooterMagic);
  Finished out;
  out.bytes = std::move(bytes_);
  out.id = Sha256Hex(out.bytes);
  out.blocks = std::move(blocks_);
  *this = PackBuilder();
  return out;
}

Result<std::vector<BlockEntry>> ReadPackTable(std::string_view pack, std::string_view data_key,
                                              const FormatLimits& limits) {
  if (pack.size() < kPackHeaderBytes + kPackFooterBytes + kBoxOverhead) {
    return Status::Corruption("pack of " + std::to_string(pack.size()) + " bytes is too short");
  }
  ByteReader header(pack);
  std::string_view magic;
  uint16_t version = 0, reserved = 0;
  (void)header.Bytes(4, &magic);
  (void)header.U16(&version);
  (void)header.U16(&reserved);
  if (magic != kPackMagic) return Status::Corruption("pack header magic is wrong");
  if (version > kPackVersion) {
    return Status::FailedPrecondition("pack has format version " + std::to_string(version) +
                                      "; this binary reads version " +
                                      std::to_string(kPackVersion));
  }
  if (version < kPackVersion) {
    return Status::FailedPrecondition("pack has unsupported format version " +
                                      std::to_string(version) + "; this binary reads version " +
                                      std::to_string(kPackVersion));
  }
  ByteReader footer(pack.substr(pack.size() - kPackFooterBytes));
  uint32_t table_length = 0;
  std::string_view footer_magic;
  (void)footer.U32(&table_length);
  (void)footer.Bytes(4, &footer_magic);
  if (footer_magic != kPackFooterMagic) return Status::Corruption("pack footer magic is wrong");
  if (table_length < kBoxOverhead ||
      table_length > pack.size() - kPackHeaderBytes - kPackFooterBytes) {
    return Status::Corruption("pack table length " + std::to_string(table_length) +
                              " does not fit the pack");
  }
  uint64_t table_start = pack.size() - kPackFooterBytes - table_length;
  auto table = OpenCompressed(data_key, kPackTableAad, pack.substr(table_start, table_length),
                              kMaxMetadataPlaintext);
  if (!table.ok()) return Status::Corruption("pack table: " + table.status().message());
  ByteReader in(*table);
  uint32_t count = 0;
  if (!in.U32(&count)) return Status::Corruption("pack table is empty");
  std::vector<BlockEntry> blocks;
  for (uint32_t i = 0; i < count; ++i) {
    BlockEntry b;
    Status s = DecodeBlockEntry(in, limits, &b);
    if (!s.ok())
      return Status::Corruption("pack table entry " + std::to_string(i) + ": " + s.message());
    blocks.push_back(std::move(b));
  }
  if (in.remaining() != 0) return Status::Corruption("pack table has trailing bytes");
  KB_RETURN_IF_ERROR(CheckBlockRanges(blocks, table_start));
  return blocks;
}

Result<std::string> OpenBlock(std::string_view sealed, std::string_view data_key,
                              const BlockEntry& entry) {
  if (sealed.size() != entry.length) {
    return Status::Corruption("block is " + std::to_string(sealed.size()) + " bytes, expected " +
                              std::to_string(entry.length));
  }
  KB_ASSIGN_OR_RETURN(std::string plain,
                      OpenCompressed(data_key, kBlockAad, sealed, entry.raw_length));
  if (plain.size() != entry.raw_length) {
    return Status::Corruption("block decompresses to " + std::to_string(plain.size()) +
                              " bytes, expected " + std::to_string(entry.raw_length));
  }
  return plain;
}

Status CheckBlockChunks(std::string_view plain, const BlockEntry& entry,
                        const ChunkIdHasher& hasher) {
  size_t pos = 0;
  for (size_t i = 0; i < entry.chunks.size(); ++i) {
    const ChunkEntry& c = entry.chunks[i];
    if (pos + c.length > plain.size()) return Status::Corruption("block shorter than its chunks");
    if (hasher.Hash(plain.substr(pos, c.length)) != c.id) {
      return Status::Corruption("chunk " + ChunkIdHex(c.id) + " (number " + std::to_string(i) +
                                " of the block) does not match its id");
    }
    pos += c.length;
  }
  return Status::OK();
}

}  // namespace kb::repo
