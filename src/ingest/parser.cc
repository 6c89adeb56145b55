// Entry points of the ingest parsers: deciding what an upload is (DetectContentType) and handing
// it to the parser for that format. The formats themselves live in *_parser.cc.
#include "ingest/parser.h"

#include <cstring>
#include <exception>
#include <new>

#include "common/text_util.h"
#include "ingest/document_builder.h"

namespace kb {

namespace {

struct MimeName {
  std::string_view mime;
  ContentType type;
};

// Canonical names first; the aliases after them are what real clients and browsers send.
constexpr MimeName kMimeNames[] = {
    {"text/plain", ContentType::kText},          {"text/markdown", ContentType::kMarkdown},
    {"text/html", ContentType::kHtml},           {"application/pdf", ContentType::kPdf},
    {"text/x-markdown", ContentType::kMarkdown}, {"application/xhtml+xml", ContentType::kHtml},
    {"application/x-pdf", ContentType::kPdf},
};

struct ExtensionName {
  std::string_view ext;
  ContentType type;
};

constexpr ExtensionName kExtensions[] = {
    {"txt", ContentType::kText},    {"text", ContentType::kText},
    {"md", ContentType::kMarkdown}, {"markdown", ContentType::kMarkdown},
    {"html", ContentType::kHtml},   {"htm", ContentType::kHtml},
    {"pdf", ContentType::kPdf},
};

std::string SupportedList() {
  std::string out;
  for (const std::string& m : SupportedMimeTypes()) {
    if (!out.empty()) out += ", ";
    out += m;
  }
  return out;
}

Status Unsupported(std::string what) {
  return Status::UnsupportedMedia(what + "; supported types are " + SupportedList());
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  return ToLowerAscii(s.substr(0, prefix.size())) == prefix;
}

// Binary means: NUL bytes, ill-formed UTF-8, or control characters that text does not contain.
bool LooksLikeText(std::string_view bytes) {
  if (std::memchr(bytes.data(), '\0', bytes.size()) != nullptr) return false;
  if (!IsValidUtf8(bytes)) return false;
  size_t controls = 0;
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f') ++controls;
  }
  // A stray escape or two (terminal colours pasted into notes) is still text.
  return controls <= bytes.size() / 100 + 2;
}

}  // namespace

std::string_view ContentTypeMime(ContentType type) {
  switch (type) {
    case ContentType::kText:
      return "text/plain";
    case ContentType::kMarkdown:
      return "text/markdown";
    case ContentType::kHtml:
      return "text/html";
    case ContentType::kPdf:
      return "application/pdf";
  }
  return "application/octet-stream";
}

std::vector<std::string> SupportedMimeTypes() {
  return {"text/plain", "text/markdown", "text/html", "application/pdf"};
}

Result<ContentType> DetectContentType(std::string_view declared_mime, std::string_view filename,
                                      std::string_view bytes) {
  // 1. The declared type, without parameters such as "; charset=utf-8".
  std::string mime = ToLowerAscii(TrimWhitespace(declared_mime.substr(0, declared_mime.find(';'))));
  if (!mime.empty() && mime != "application/octet-stream") {
    for (const MimeName& m : kMimeNames) {
      if (m.mime == mime) return m.type;
    }
    return Unsupported("content type '" + mime + "' is not supported");
  }

  // 2. The file name's extension (of the last path component; ".bashrc" has none).
  std::string_view base = filename;
  if (size_t slash = base.find_last_of("/\\"); slash != std::string_view::npos) {
    base.remove_prefix(slash + 1);
  }
  if (size_t dot = base.rfind('.'); dot != std::string_view::npos && dot > 0) {
    std::string ext = ToLowerAscii(base.substr(dot + 1));
    for (const ExtensionName& e : kExtensions) {
      if (e.ext == ext) return e.type;
    }
    return Unsupported("file extension '." + ext + "' is not supported");
  }

  // 3. The bytes.
  std::string_view head = bytes;
  if (head.substr(0, 3) == "\xEF\xBB\xBF") head.remove_prefix(3);
  while (!head.empty() && ingest_internal::IsSpace(head.front())) head.remove_prefix(1);
  if (head.substr(0, 5) == "%PDF-") return ContentType::kPdf;
  if (StartsWithNoCase(head, "<html") || StartsWithNoCase(head, "<!doctype html")) {
    return ContentType::kHtml;
  }
  if (LooksLikeText(bytes)) return ContentType::kText;
  return Unsupported("the upload looks like binary data of an unknown kind");
}

Result<ParsedDocument> ParseDocument(ContentType type, std::string_view bytes) {
  // No exception may leave the module; the libraries underneath can throw bad_alloc.
  try {
    switch (type) {
      case ContentType::kText:
        return ingest_internal::ParsePlainText(bytes);
      case ContentType::kMarkdown:
        return ingest_internal::ParseMarkdown(bytes);
      case ContentType::kHtml:
        return ingest_internal::ParseHtml(bytes);
      case ContentType::kPdf:
        return ingest_internal::ParsePdf(bytes);
    }
  } catch (const std::bad_alloc&) {
    return Status::Unprocessable("document too large to parse in memory");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("parser failed: ") + e.what());
  }
  return Unsupported("unknown content type");
}

}  // namespace kb
