// DocumentBuilder: the one place that turns a parser's view of a document (headings, paragraphs)
// into a ParsedDocument, so that every format gets the same heading-path rules and block layout.
//
// Two ways to fill it, one per kind of parser:
//  - source-preserving parsers (plain text, Markdown) keep the normalised input as the text and
//    mark blocks by offset (AddSourceBlock), so offsets point at what the user wrote;
//  - generating parsers (HTML, PDF) append each block's text (AppendBlock); blocks are joined by
//    a blank line.
// A heading block's path includes the heading itself, so a heading is chunked with its section.
//
// Thread-safety: one builder per parse; not shared.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "ingest/parser.h"

namespace kb::ingest_internal {

class DocumentBuilder {
 public:
  DocumentBuilder() = default;
  // Source-preserving mode: `text` is the document text; blocks are added by offset.
  explicit DocumentBuilder(std::string text) : text_(std::move(text)) {}

  // Starts a heading of `level` (1 = top). Headings at the same or a deeper level are closed,
  // so a new level-1 heading resets the path. Whitespace in `title` is collapsed; an empty
  // title is ignored (returns false) so that a bare "#" never yields an empty path element.
  bool EnterHeading(int level, std::string_view title);

  // Marks [offset, offset + length) of the source text as a block (trimmed of surrounding
  // whitespace; dropped if nothing is left).
  void AddSourceBlock(size_t offset, size_t length, bool is_heading);

  // Appends `content` (trimmed; dropped if empty) as a new block after a blank line.
  void AppendBlock(std::string_view content, bool is_heading);

  const std::vector<std::string>& heading_path() const { return path_; }
  const std::string& text() const { return text_; }

  // Hands over the document. Unprocessable("no text") if no block holds non-space text.
  Result<ParsedDocument> Finish(std::string title);

 private:
  std::string text_;
  std::vector<TextBlock> blocks_;
  std::vector<int> levels_;        // parallel to path_
  std::vector<std::string> path_;  // current heading path
};

// True for the ASCII whitespace the parsers and the chunker agree on.
inline bool IsSpace(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

// Collapses runs of whitespace into one space and trims both ends.
std::string CollapseWhitespace(std::string_view s);

// Checks and normalises user-supplied UTF-8 text (plain text and Markdown): drops a leading
// BOM, rejects NUL bytes and ill-formed UTF-8 with Unprocessable naming `what`, and turns
// CRLF and lone CR into LF.
Result<std::string> NormalizeUtf8Text(std::string_view bytes, std::string_view what);

// The per-format parsers behind ParseDocument.
Result<ParsedDocument> ParsePlainText(std::string_view bytes);
Result<ParsedDocument> ParseMarkdown(std::string_view bytes);
Result<ParsedDocument> ParseHtml(std::string_view bytes);
Result<ParsedDocument> ParsePdf(std::string_view bytes);

}  // namespace kb::ingest_internal
