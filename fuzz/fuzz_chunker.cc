// libFuzzer target: parse then chunk. The first two bytes pick the format and the chunk
// options (small targets, so that short inputs still produce many chunks and overlaps); the
// rest is the document. Every chunk invariant is checked (see fuzz_checks.h).
#include <cstddef>
#include <cstdint>

#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // PDF is left to fuzz_parse_pdf: its text rarely survives mutation, so it would only slow
  // this target down.
  static constexpr kb::ContentType kTypes[] = {kb::ContentType::kText, kb::ContentType::kMarkdown,
                                               kb::ContentType::kHtml};
  kb::ContentType type = kTypes[data[0] % 3];
  kb::ChunkOptions options;
  options.target_chars = 50 + (data[0] / 3) % 200;
  options.overlap_chars = data[1] % options.target_chars;
  if (!kb::ValidateChunkOptions(options).ok()) kb::fuzz::Fail("generated options invalid");
  std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  kb::Result<kb::ParsedDocument> doc = kb::ParseDocument(type, bytes);
  kb::fuzz::CheckParse(doc);
  if (!doc.ok()) return 0;
  std::vector<kb::TextChunk> chunks = kb::ChunkDocument(*doc, options);
  kb::fuzz::CheckChunks(*doc, chunks);
  for (const kb::TextChunk& c : chunks) {
    // A character split may overrun the target by up to 3 bytes to finish a code point.
    kb::fuzz::Check(c.text.size() <= options.target_chars + 3, "chunk larger than the target");
  }
  return 0;
}
