// Builders shared by the store tests: documents and chunks with deterministic text and
// embeddings, so that tests state only what they are about.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "store/project_store.h"

namespace kb::testing {

inline constexpr int kTestDimension = 4;

inline std::vector<float> TestEmbedding(int seed) {
  std::vector<float> v(kTestDimension);
  for (int i = 0; i < kTestDimension; ++i) v[i] = std::sin(static_cast<float>(seed * 7 + i));
  return v;
}

inline DocumentRecord TestDoc(const std::string& source, const std::string& content_hash = "h1") {
  DocumentRecord d;
  d.title = "Title of " + source;
  d.source = source;
  d.content_type = "text/plain";
  d.content_hash = content_hash;
  d.metadata_json = R"({"lang":"en"})";
  d.bytes = 100;
  return d;
}

inline std::vector<ChunkRecord> TestChunks(const std::vector<std::string>& texts, int seed = 1) {
  std::vector<ChunkRecord> out;
  int64_t offset = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    ChunkRecord c;
    c.ordinal = static_cast<int>(i);
    c.text = texts[i];
    c.heading_path = "Intro > Part " + std::to_string(i);
    c.start_offset = offset;
    offset += static_cast<int64_t>(texts[i].size());
    c.end_offset = offset;
    c.embedding = TestEmbedding(seed + static_cast<int>(i));
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace kb::testing
