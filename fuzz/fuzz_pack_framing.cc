// libFuzzer target for pack framing (repo/pack.h, ReadPackTable): header, footer and table
// length - all read before the table box is opened - and, in the table-body mode, the table's
// block entries and block ranges (DecodeBlockEntry, CheckBlockRanges). The input layout is in
// repo_fuzz.h. Invariants: no crash, throw or sanitizer finding; a refusal is Corruption (or
// FailedPrecondition for another pack version); what parses lies in order between the header
// and the table, within the limits; and a table body that parses is exactly the bytes its
// entries encode to (the table is canonical: fixed-width fields, no trailing bytes).
//   build-fuzz/fuzz/fuzz_pack_framing -max_total_time=60 fuzz/corpus/fuzz_pack_framing
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "repo_fuzz.h"

namespace {

using kb::fuzz::Check;

void CheckBlocks(const std::vector<kb::repo::BlockEntry>& blocks, std::string_view pack,
                 const kb::repo::FormatLimits& limits) {
  using namespace kb::repo;
  // The table's extent, from the footer (which ReadPackTable accepted).
  ByteReader footer(pack.substr(pack.size() - kPackFooterBytes));
  uint32_t table_length = 0;
  Check(footer.U32(&table_length), "footer unreadable after a successful parse");
  const uint64_t table_start = pack.size() - kPackFooterBytes - table_length;
  uint64_t pos = kPackHeaderBytes;
  for (const BlockEntry& b : blocks) {
    Check(b.offset >= pos && b.length <= table_start && b.offset <= table_start - b.length,
          "block outside its place in the pack");
    pos = b.offset + b.length;
    Check(b.length >= kBoxOverhead && b.length <= limits.MaxSealedBlock(), "block length");
    Check(!b.chunks.empty() && b.chunks.size() <= static_cast<size_t>(kMaxChunksPerBlock),
          "chunk count");
    uint64_t sum = 0;
    for (const ChunkEntry& c : b.chunks) {
      Check(c.length >= 1 && c.length <= limits.MaxChunkLength(b.kind), "chunk length");
      Check(b.kind != ChunkKind::kTree || c.length % kChunkIdBytes == 0, "tree chunk length");
      sum += c.length;
    }
    Check(sum == b.raw_length && sum <= static_cast<uint64_t>(limits.block_size), "raw_length");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kb::repo;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const FormatLimits limits = kb::fuzz::PackFuzzLimits(mode);
  const std::string key = kb::fuzz::PackFuzzKey();

  if ((mode & kb::fuzz::kTableBodyMode) == 0) {
    auto blocks = ReadPackTable(rest, key, limits);
    if (!blocks.ok()) {
      const kb::Code code = blocks.status().code();
      Check(code == kb::Code::kCorruption || code == kb::Code::kFailedPrecondition,
            "pack refused with a code other than Corruption / FailedPrecondition");
      return 0;
    }
    CheckBlocks(*blocks, rest, limits);
    return 0;
  }

  if (rest.size() < 2) return 0;
  const size_t padding =
      static_cast<uint8_t>(rest[0]) | (static_cast<size_t>(static_cast<uint8_t>(rest[1])) << 8);
  const std::string_view body = rest.substr(2);
  const std::string pack = kb::fuzz::PackAroundTable(body, padding);
  auto blocks = ReadPackTable(pack, key, limits);
  if (!blocks.ok()) {
    // The framing and the box are ours and valid: only the body can be wrong.
    Check(blocks.status().code() == kb::Code::kCorruption,
          "table body refused with a code other than Corruption");
    return 0;
  }
  CheckBlocks(*blocks, pack, limits);
  Check(kb::fuzz::EncodeTableBody(*blocks) == body, "table body does not re-encode to itself");
  return 0;
}
