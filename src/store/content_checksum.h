// The project content checksum: an order-independent multiset hash over every document row with
// its chunks, maintained in O(change) by adding and subtracting per-document digests. It is what
// lets a restore or a standby *prove* it holds the same content as the primary.
// Byte-exact definition: docs/format/DATABASE.md section 5 — keep this file and that section equal.
//
// Thread-safety: values and pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/crypto_util.h"
#include "store/project_store.h"

namespace kb::store {

// Sum of per-document digests, as four u64 lanes modulo 2^64.
class ContentChecksum {
 public:
  ContentChecksum() = default;
  // 64 hex characters; nullopt if malformed.
  static std::optional<ContentChecksum> FromHex(std::string_view hex);
  void Add(const Sha256Digest& digest);
  void Subtract(const Sha256Digest& digest);
  std::string ToHex() const;
  bool operator==(const ContentChecksum& other) const = default;

 private:
  std::array<uint64_t, 4> lanes_{};
};

// Builds doc_bytes(d) incrementally: the document fields first, then each chunk in ordinal order.
class DocumentDigestBuilder {
 public:
  DocumentDigestBuilder(const DocumentRecord& doc, uint64_t chunk_rows);
  void AddChunk(int64_t id, int64_t ordinal, std::string_view text, std::string_view heading_path,
                int64_t start_offset, int64_t end_offset, std::string_view embedding_bytes);
  Sha256Digest Finish() const;

 private:
  void PutI64(int64_t v);
  void PutStr(std::string_view s);
  std::string buf_;
};

}  // namespace kb::store
