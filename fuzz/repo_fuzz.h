// Shared by the backup repository's fuzz targets and make_repo_seeds.cc, which writes their
// seeds: the input layouts, the fixed data key, and the invariant checks. Keeping the layout in
// one place keeps the committed seeds and the targets in agreement.
//
// The targets cover what a reader parses before any key is involved (or, for a pack table,
// what it parses right after opening the box): `config`, keys/ objects and pack framing
// (docs/format/BACKUP_REPOSITORY.md, "config", "keys/<key-id>", "Packs").
//
// Thread-safety: constants and pure functions.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "repo/pack.h"
#include "repo/repository_format.h"
#include "repo/sealed_box.h"

namespace kb::fuzz {

[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

inline void Check(bool ok, const char* what) {
  if (!ok) Fail(what);
}

// --- fuzz_repo_keyfile: "<object name>\n<JSON text>" (the name is checked against the id) ---

// --- fuzz_pack_framing: mode byte, then ---
//   mode bit 0 clear: the whole pack, as fetched from the store;
//   mode bit 0 set:   u16 padding (LE) | table body. The target builds a pack around it:
//                     header | `padding` zero bytes (where blocks would lie) | the body sealed
//                     under kPackFuzzKey | footer, so that the fuzzer reaches the table decoder,
//                     which a fixed key's tag would otherwise keep it from.
//   mode bit 1: the repository's smallest limits instead of the defaults (boundaries are nearer).
inline constexpr uint8_t kTableBodyMode = 1;
inline constexpr uint8_t kSmallLimitsMode = 2;

inline std::string PackFuzzKey() { return std::string(32, '\x5a'); }

inline repo::FormatLimits PackFuzzLimits(uint8_t mode) {
  if (mode & kSmallLimitsMode) {
    return repo::FormatLimits{repo::kMinChunkSize, 8192, repo::kMinTreeFanout};
  }
  return repo::FormatLimits{};
}

inline std::string PackAroundTable(std::string_view body, size_t padding) {
  std::string pack;
  repo::ByteWriter w(&pack);
  w.Bytes(repo::kPackMagic);
  w.U16(repo::kPackVersion);
  w.U16(0);
  pack.append(padding, '\0');
  std::string sealed = repo::SealCompressed(PackFuzzKey(), repo::kPackTableAad, body, 1);
  w.Bytes(sealed);
  w.U32(static_cast<uint32_t>(sealed.size()));
  w.Bytes(repo::kPackFooterMagic);
  return pack;
}

// The table body PackBuilder::Finish seals for `blocks`.
inline std::string EncodeTableBody(const std::vector<repo::BlockEntry>& blocks) {
  std::string body;
  repo::ByteWriter w(&body);
  w.U32(static_cast<uint32_t>(blocks.size()));
  for (const repo::BlockEntry& b : blocks) repo::EncodeBlockEntry(b, w);
  return body;
}

}  // namespace kb::fuzz
