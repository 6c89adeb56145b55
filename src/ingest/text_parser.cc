// Plain-text parser: UTF-8 text in, paragraphs (blank-line separated) out. The text is kept as
// written, after newline normalisation, so chunk offsets point at what the user uploaded.
#include <cstring>

#include "ingest/document_builder.h"

namespace kb::ingest_internal {

namespace {

bool IsBlankLine(std::string_view line) {
  for (char c : line) {
    if (!IsSpace(c)) return false;
  }
  return true;
}

}  // namespace

Result<ParsedDocument> ParsePlainText(std::string_view bytes) {
  KB_ASSIGN_OR_RETURN(std::string text, NormalizeUtf8Text(bytes, "text"));
  DocumentBuilder builder(std::move(text));
  std::string_view t = builder.text();
  size_t para_start = std::string_view::npos;
  size_t para_end = 0;
  for (size_t pos = 0; pos < t.size();) {
    const void* nl = std::memchr(t.data() + pos, '\n', t.size() - pos);
    size_t line_end = nl ? static_cast<const char*>(nl) - t.data() : t.size();
    if (IsBlankLine(t.substr(pos, line_end - pos))) {
      if (para_start != std::string_view::npos) {
        builder.AddSourceBlock(para_start, para_end - para_start, false);
        para_start = std::string_view::npos;
      }
    } else {
      if (para_start == std::string_view::npos) para_start = pos;
      para_end = line_end;
    }
    pos = line_end + 1;
  }
  if (para_start != std::string_view::npos) {
    builder.AddSourceBlock(para_start, para_end - para_start, false);
  }
  return builder.Finish("");
}

}  // namespace kb::ingest_internal
