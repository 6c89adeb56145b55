// Implementation of the content checksum (docs/format/DATABASE.md section 5).
#include "store/content_checksum.h"

namespace kb::store {
namespace {

constexpr std::string_view kDomain("kbdoc1\0", 7);

uint64_t LaneOf(const Sha256Digest& d, int k) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | d[static_cast<size_t>(8 * k + i)];
  return v;
}

}  // namespace

std::optional<ContentChecksum> ContentChecksum::FromHex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto bytes = HexDecode(hex);
  if (!bytes || bytes->size() != 32) return std::nullopt;
  Sha256Digest d{};
  for (size_t i = 0; i < 32; ++i) d[i] = static_cast<uint8_t>((*bytes)[i]);
  ContentChecksum c;
  for (int k = 0; k < 4; ++k) c.lanes_[static_cast<size_t>(k)] = LaneOf(d, k);
  return c;
}

void ContentChecksum::Add(const Sha256Digest& digest) {
  for (int k = 0; k < 4; ++k) lanes_[static_cast<size_t>(k)] += LaneOf(digest, k);  // mod 2^64
}

void ContentChecksum::Subtract(const Sha256Digest& digest) {
  for (int k = 0; k < 4; ++k) lanes_[static_cast<size_t>(k)] -= LaneOf(digest, k);
}

std::string ContentChecksum::ToHex() const {
  std::string bytes;
  bytes.reserve(32);
  for (uint64_t lane : lanes_) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((lane >> (8 * i)) & 0xff));
  }
  return HexEncode(bytes);
}

DocumentDigestBuilder::DocumentDigestBuilder(const DocumentRecord& d, uint64_t chunk_rows) {
  buf_.append(kDomain);
  PutStr(d.id);
  PutStr(d.title);
  PutStr(d.source);
  PutStr(d.content_type);
  PutStr(d.content_hash);
  PutStr(d.metadata_json);
  PutI64(d.chunk_count);
  PutI64(d.bytes);
  PutI64(d.created_at_ms);
  PutI64(d.updated_at_ms);
  buf_.push_back(d.deleted_at_ms.has_value() ? 1 : 0);
  PutI64(d.deleted_at_ms.value_or(0));
  PutStr(d.deleted_by);
  PutI64(static_cast<int64_t>(chunk_rows));
}

void DocumentDigestBuilder::AddChunk(int64_t id, int64_t ordinal, std::string_view text,
                                     std::string_view heading_path, int64_t start_offset,
                                     int64_t end_offset, std::string_view embedding_bytes) {
  PutI64(id);
  PutI64(ordinal);
  PutStr(text);
  PutStr(heading_path);
  PutI64(start_offset);
  PutI64(end_offset);
  PutStr(embedding_bytes);
}

Sha256Digest DocumentDigestBuilder::Finish() const { return Sha256(buf_); }

void DocumentDigestBuilder::PutI64(int64_t v) {
  auto u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) buf_.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

void DocumentDigestBuilder::PutStr(std::string_view s) {
  PutI64(static_cast<int64_t>(s.size()));
  buf_.append(s);
}

}  // namespace kb::store
