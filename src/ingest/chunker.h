// Chunker: splits a ParsedDocument into overlapping chunks for embedding and keyword search.
//
// Structure first: chunks never straddle a heading boundary when they can avoid it; within a
// section, paragraphs are packed up to the target size; a paragraph longer than the target is
// split at sentence ends, and a sentence longer than the target at word boundaries (at worst at
// a UTF-8 character boundary). Consecutive chunks of the same section overlap by about
// `overlap_chars`, starting the overlap at a word boundary.
//
// Thread-safety: pure function.
#pragma once

#include <string>
#include <vector>

#include "ingest/parser.h"

namespace kb {

struct ChunkOptions {
  size_t target_chars = 1000;  // bytes of UTF-8, approximately characters for Latin text
  size_t overlap_chars = 200;  // must be < target_chars
};

struct TextChunk {
  std::string text;
  std::string heading_path;  // headings joined with " > ", empty at top level
  size_t start = 0;          // byte offsets into ParsedDocument::text, [start, end)
  size_t end = 0;
};

// InvalidArgument if options are out of range (target < 50, overlap >= target).
Status ValidateChunkOptions(const ChunkOptions& options);

// Never returns an empty chunk; every byte of non-whitespace text is in at least one chunk.
std::vector<TextChunk> ChunkDocument(const ParsedDocument& doc, const ChunkOptions& options);

}  // namespace kb
