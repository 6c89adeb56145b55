// PDF parser: poppler-cpp extracts each page's text in reading order; pages become blocks
// separated by blank lines (and paragraphs within a page where poppler leaves blank lines).
// Poppler is given untrusted bytes, so every failure mode (no document, a locked one, a page
// that will not load) becomes Unprocessable, and its error chatter is kept out of our logs.
#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

#include <climits>
#include <memory>
#include <mutex>

#include "common/text_util.h"
#include "ingest/document_builder.h"

namespace kb::ingest_internal {

namespace {

void IgnorePopplerMessage(const std::string&, void*) {}

// Poppler's messages about damaged files go to stderr by default; a bad upload is reported to
// its sender through the Status, not in the server log.
void SilencePoppler() {
  static std::once_flag once;
  std::call_once(once, [] { poppler::set_debug_error_function(&IgnorePopplerMessage, nullptr); });
}

std::string ToString(const poppler::ustring& s) {
  poppler::byte_array utf8 = s.to_utf8();
  return SanitizeUtf8(std::string_view(utf8.data(), utf8.size()));
}

// Poppler's text has CR/LF line ends, form feeds between columns and stray control characters
// from odd fonts; keep newlines and tabs, turn the rest into line breaks or spaces.
std::string CleanPageText(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    auto u = static_cast<unsigned char>(c);
    if (c == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') continue;
      out += '\n';
    } else if (c == '\f') {
      out += '\n';
    } else if (u < 0x20 && c != '\n' && c != '\t') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// Appends each blank-line separated paragraph of `page` as a block.
void AddParagraphs(std::string_view page, DocumentBuilder* builder) {
  size_t para_start = 0;
  size_t pos = 0;
  while (pos < page.size()) {
    size_t nl = page.find('\n', pos);
    if (nl == std::string_view::npos) break;
    // A line holding only whitespace ends the paragraph.
    size_t next_nl = page.find('\n', nl + 1);
    size_t line_end = next_nl == std::string_view::npos ? page.size() : next_nl;
    bool blank = true;
    for (size_t k = nl + 1; k < line_end; ++k) {
      if (!IsSpace(page[k])) {
        blank = false;
        break;
      }
    }
    if (blank && next_nl != std::string_view::npos) {
      builder->AppendBlock(page.substr(para_start, nl - para_start), false);
      para_start = next_nl + 1;
      pos = next_nl;
    } else {
      pos = nl + 1;
    }
  }
  if (para_start < page.size()) builder->AppendBlock(page.substr(para_start), false);
}

}  // namespace

Result<ParsedDocument> ParsePdf(std::string_view bytes) {
  SilencePoppler();
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    return Status::Unprocessable("PDF is larger than 2 GiB");
  }
  // Poppler reads straight from our buffer (no copy); it outlives the document below.
  std::unique_ptr<poppler::document> doc(
      poppler::document::load_from_raw_data(bytes.data(), static_cast<int>(bytes.size())));
  if (doc == nullptr) return Status::Unprocessable("not a readable PDF (corrupt or truncated?)");
  if (doc->is_locked() || doc->is_encrypted()) {
    return Status::Unprocessable("PDF is encrypted; upload an unencrypted copy");
  }

  DocumentBuilder builder;
  int pages = doc->pages();
  for (int i = 0; i < pages; ++i) {
    std::unique_ptr<poppler::page> page(doc->create_page(i));
    if (page == nullptr) continue;  // a damaged page loses its text, not the whole document
    std::string text =
        ToString(page->text(poppler::rectf(), poppler::page::non_raw_non_physical_layout));
    AddParagraphs(CleanPageText(text), &builder);
  }
  std::string title = ToString(doc->info_key("Title"));
  return builder.Finish(std::move(title));
}

}  // namespace kb::ingest_internal
