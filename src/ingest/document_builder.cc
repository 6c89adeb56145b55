// Shared machinery of the parsers: heading-path bookkeeping, block layout and the UTF-8
// checks every text-like format applies. See document_builder.h for why it is one class.
#include "ingest/document_builder.h"

#include <algorithm>
#include <cstring>

#include "common/text_util.h"

namespace kb::ingest_internal {

std::string CollapseWhitespace(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending_space = false;
  for (char c : s) {
    if (IsSpace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

bool DocumentBuilder::EnterHeading(int level, std::string_view title) {
  std::string clean = CollapseWhitespace(title);
  if (clean.empty()) return false;
  while (!levels_.empty() && levels_.back() >= level) {
    levels_.pop_back();
    path_.pop_back();
  }
  levels_.push_back(level);
  path_.push_back(std::move(clean));
  return true;
}

void DocumentBuilder::AddSourceBlock(size_t offset, size_t length, bool is_heading) {
  if (offset > text_.size()) return;
  size_t end = offset + std::min(length, text_.size() - offset);
  while (offset < end && IsSpace(text_[offset])) ++offset;
  while (end > offset && IsSpace(text_[end - 1])) --end;
  if (offset == end) return;
  blocks_.push_back(TextBlock{path_, offset, end - offset, is_heading});
}

void DocumentBuilder::AppendBlock(std::string_view content, bool is_heading) {
  size_t b = 0, e = content.size();
  while (b < e && IsSpace(content[b])) ++b;
  while (e > b && IsSpace(content[e - 1])) --e;
  if (b == e) return;
  if (!text_.empty()) text_ += "\n\n";
  blocks_.push_back(TextBlock{path_, text_.size(), e - b, is_heading});
  text_.append(content.substr(b, e - b));
}

Result<ParsedDocument> DocumentBuilder::Finish(std::string title) {
  // Blocks are trimmed when added, so any block means some non-space text.
  if (blocks_.empty())
    return Status::Unprocessable("no text: the document has no extractable text");
  ParsedDocument doc;
  doc.text = std::move(text_);
  doc.title = CollapseWhitespace(title);
  doc.blocks = std::move(blocks_);
  return doc;
}

Result<std::string> NormalizeUtf8Text(std::string_view bytes, std::string_view what) {
  if (bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);
  if (const void* nul = std::memchr(bytes.data(), '\0', bytes.size())) {
    size_t at = static_cast<const char*>(nul) - bytes.data();
    return Status::Unprocessable(std::string(what) + " contains a NUL byte at offset " +
                                 std::to_string(at) + "; is it a binary file?");
  }
  if (!IsValidUtf8(bytes)) {
    return Status::Unprocessable(std::string(what) +
                                 " is not valid UTF-8; convert it to UTF-8 and upload it again");
  }
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    // Copy runs without CR in one go: most text has none.
    const void* cr = std::memchr(bytes.data() + i, '\r', bytes.size() - i);
    size_t stop = cr ? static_cast<const char*>(cr) - bytes.data() : bytes.size();
    out.append(bytes.data() + i, stop - i);
    if (stop == bytes.size()) break;
    out.push_back('\n');
    i = stop + 1;
    if (i < bytes.size() && bytes[i] == '\n') ++i;
  }
  return out;
}

}  // namespace kb::ingest_internal
