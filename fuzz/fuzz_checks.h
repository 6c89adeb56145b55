// Invariant checks shared by the ingest fuzzers. A violated invariant aborts, which libFuzzer
// reports as a crash with the input that caused it, just like a sanitizer finding.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "common/text_util.h"
#include "ingest/chunker.h"
#include "ingest/parser.h"

namespace kb::fuzz {

[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

inline void Check(bool ok, const char* what) {
  if (!ok) Fail(what);
}

inline bool IsSpaceByte(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

// What ParseDocument promises: a failure is 422 (never a crash or another code); a success has
// valid UTF-8, non-blank text and blocks inside it.
inline void CheckParse(const Result<ParsedDocument>& result) {
  if (!result.ok()) {
    Check(result.status().code() == Code::kUnprocessable, "parse failure is not Unprocessable");
    return;
  }
  const ParsedDocument& doc = *result;
  Check(IsValidUtf8(doc.text), "document text is not valid UTF-8");
  Check(IsValidUtf8(doc.title), "document title is not valid UTF-8");
  Check(!doc.blocks.empty(), "successful parse without blocks");
  for (const TextBlock& b : doc.blocks) {
    Check(b.offset <= doc.text.size() && b.length <= doc.text.size() - b.offset,
          "block outside the text");
    Check(b.length > 0, "empty block");
    for (const std::string& h : b.heading_path) {
      Check(!h.empty() && IsValidUtf8(h), "bad heading path element");
    }
  }
}

// What ChunkDocument promises: non-empty, trimmed, valid UTF-8 chunks that are exactly the
// slice their offsets name, covering every non-space byte.
inline void CheckChunks(const ParsedDocument& doc, const std::vector<TextChunk>& chunks) {
  std::vector<bool> covered(doc.text.size(), false);
  for (const TextChunk& c : chunks) {
    Check(!c.text.empty(), "empty chunk");
    Check(c.start < c.end && c.end <= doc.text.size(), "chunk offsets out of range");
    Check(std::string_view(doc.text).substr(c.start, c.end - c.start) == c.text,
          "chunk text is not the slice its offsets name");
    Check(!IsSpaceByte(c.text.front()) && !IsSpaceByte(c.text.back()), "chunk not trimmed");
    Check(IsValidUtf8(c.text), "chunk is not valid UTF-8");
    for (size_t i = c.start; i < c.end; ++i) covered[i] = true;
  }
  for (size_t i = 0; i < doc.text.size(); ++i) {
    Check(IsSpaceByte(doc.text[i]) || covered[i], "non-space byte not in any chunk");
  }
}

}  // namespace kb::fuzz
