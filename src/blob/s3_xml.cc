// The few S3 XML documents S3BlobStore reads and writes (see s3_xml.h).
#include "blob/s3_xml.h"

#include <charconv>

namespace kb::blob::s3xml {

namespace {

bool IsTagEnd(char c) {
  return c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes the entity body between '&' and ';' ("amp", "#38", "#x26"); false if unknown.
bool DecodeEntity(std::string_view name, std::string& out) {
  if (name == "amp") return out.push_back('&'), true;
  if (name == "lt") return out.push_back('<'), true;
  if (name == "gt") return out.push_back('>'), true;
  if (name == "quot") return out.push_back('"'), true;
  if (name == "apos") return out.push_back('\''), true;
  if (name.size() < 2 || name[0] != '#') return false;
  int base = 10;
  std::string_view digits = name.substr(1);
  if (digits[0] == 'x' || digits[0] == 'X') {
    base = 16;
    digits.remove_prefix(1);
  }
  uint32_t cp = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, base);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) return false;
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  AppendUtf8(cp, out);
  return true;
}

std::optional<int64_t> ParseSize(std::string_view text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::vector<std::string_view> Elements(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> out;
  const std::string open = "<" + std::string(tag);
  const std::string close = "</" + std::string(tag) + ">";
  size_t pos = 0;
  while (true) {
    size_t start = xml.find(open, pos);
    if (start == std::string_view::npos) break;
    size_t after = start + open.size();
    if (after >= xml.size()) break;
    if (!IsTagEnd(xml[after])) {  // <KeyCount> while looking for <Key>
      pos = after;
      continue;
    }
    size_t gt = xml.find('>', after);
    if (gt == std::string_view::npos) break;
    if (xml[gt - 1] == '/') {  // <Tag/>
      out.emplace_back();
      pos = gt + 1;
      continue;
    }
    size_t end = xml.find(close, gt + 1);
    if (end == std::string_view::npos) break;
    out.push_back(xml.substr(gt + 1, end - gt - 1));
    pos = end + close.size();
  }
  return out;
}

std::optional<std::string> DecodeEntities(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t amp = text.find('&', pos);
    out.append(
        text.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos));
    if (amp == std::string_view::npos) break;
    size_t semi = text.find(';', amp + 1);
    if (semi == std::string_view::npos || semi - amp > 12) return std::nullopt;
    if (!DecodeEntity(text.substr(amp + 1, semi - amp - 1), out)) return std::nullopt;
    pos = semi + 1;
  }
  return out;
}

std::optional<std::string> Text(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> found = Elements(xml, tag);
  if (found.empty()) return std::nullopt;
  return DecodeEntities(found.front());
}

std::string EscapeText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::optional<ErrorBody> ParseError(std::string_view xml) {
  std::vector<std::string_view> error = Elements(xml, "Error");
  if (error.empty()) return std::nullopt;
  ErrorBody body;
  body.code = Text(error.front(), "Code").value_or("");
  body.message = Text(error.front(), "Message").value_or("");
  return body;
}

Result<ListPage> ParseListObjectsV2(std::string_view xml) {
  std::vector<std::string_view> result = Elements(xml, "ListBucketResult");
  if (result.size() != 1) return Status::IOError("malformed ListObjectsV2 response: no result");
  const std::string_view body = result.front();
  ListPage page;
  for (std::string_view contents : Elements(body, "Contents")) {
    std::optional<std::string> key = Text(contents, "Key");
    std::optional<std::string> size_text = Text(contents, "Size");
    std::optional<int64_t> size = size_text ? ParseSize(*size_text) : std::nullopt;
    if (!key || !size) {
      return Status::IOError(
          "malformed ListObjectsV2 response: an entry without a readable "
          "Key and Size");
    }
    page.objects.push_back(ObjectInfo{std::move(*key), *size});
  }
  std::optional<std::string> truncated = Text(body, "IsTruncated");
  if (!truncated || (*truncated != "true" && *truncated != "false")) {
    return Status::IOError("malformed ListObjectsV2 response: no IsTruncated");
  }
  page.truncated = *truncated == "true";
  if (page.truncated) {
    std::optional<std::string> token = Text(body, "NextContinuationToken");
    if (!token || token->empty()) {
      return Status::IOError(
          "malformed ListObjectsV2 response: truncated without "
          "NextContinuationToken");
    }
    page.next_continuation_token = std::move(*token);
  }
  return page;
}

Result<std::string> ParseUploadId(std::string_view xml) {
  std::optional<std::string> id = Text(xml, "UploadId");
  if (!id || id->empty()) return Status::IOError("CreateMultipartUpload answered without UploadId");
  return std::move(*id);
}

std::string CompleteMultipartUploadBody(const std::vector<std::string>& etags) {
  std::string out = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < etags.size(); ++i) {
    out += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
           EscapeText(etags[i]) + "</ETag></Part>";
  }
  out += "</CompleteMultipartUpload>";
  return out;
}

}  // namespace kb::blob::s3xml
