// Document parsers: bytes of a supported format -> plain text plus its structure.
//
// Every parser produces a ParsedDocument whose `text` is the extracted UTF-8 text and whose
// `blocks` partition that text into headings-aware pieces (a block lies under the heading path
// in effect where it starts). Offsets are byte offsets into `text`. Chunking works on blocks.
//
// Bad input never crashes a parser: malformed bytes of a known type give Unprocessable (422);
// an unknown type gives UnsupportedMedia (415) naming the supported ones.
//
// Thread-safety: pure functions; safe to call concurrently.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kb {

enum class ContentType { kText, kMarkdown, kHtml, kPdf };

// "text/plain", "text/markdown", "text/html", "application/pdf".
std::string_view ContentTypeMime(ContentType type);
// The MIME types we accept, for 415 messages: {"text/plain", "text/markdown", ...}.
std::vector<std::string> SupportedMimeTypes();

// Decides the content type from, in order: a declared MIME type (parameters like
// "; charset=utf-8" ignored; "application/octet-stream" and empty mean "unknown"), the file name
// extension (.txt .text .md .markdown .html .htm .pdf), then the bytes ("%PDF-" magic, "<html" or
// "<!doctype html"). Plain UTF-8 text with no other hint is text/plain.
// UnsupportedMedia if the declared type or the extension names something we do not parse, or
// the bytes are binary of an unknown kind.
Result<ContentType> DetectContentType(std::string_view declared_mime, std::string_view filename,
                                      std::string_view bytes);

struct TextBlock {
  std::vector<std::string> heading_path;  // e.g. {"Install", "On Debian"}; empty at top level
  size_t offset = 0;                      // byte offset of the block in ParsedDocument::text
  size_t length = 0;                      // bytes
  bool is_heading = false;                // the block is the heading line itself
};

struct ParsedDocument {
  std::string text;    // valid UTF-8
  std::string title;   // first H1 / <title> / PDF title, or empty
  std::vector<TextBlock> blocks;
};

// Parses `bytes` as `type`. Text is normalised to valid UTF-8 (ill-formed bytes in text and
// Markdown are an Unprocessable error, not silently replaced). HTML drops script, style,
// noscript, template and head content other than <title>. PDF text comes from poppler-cpp,
// pages separated by blank lines; encrypted or corrupt PDFs are Unprocessable.
// A document with no extractable text is Unprocessable ("no text").
Result<ParsedDocument> ParseDocument(ContentType type, std::string_view bytes);

}  // namespace kb
