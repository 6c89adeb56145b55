// multipart/form-data parsing (see multipart.h).
#include "api/multipart.h"

#include "common/text_util.h"

namespace kb::api {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The parameters after the first ';' of a header value such as
// `form-data; name="file"; filename="a b.txt"`, lower-cased names, unquoted values.
std::multimap<std::string, std::string> HeaderParams(std::string_view value) {
  std::multimap<std::string, std::string> out;
  size_t i = value.find(';');
  while (i != std::string_view::npos && i < value.size()) {
    ++i;  // past ';'
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    const size_t eq = value.find('=', i);
    const size_t semi = value.find(';', i);
    if (eq == std::string_view::npos || (semi != std::string_view::npos && semi < eq)) {
      i = semi;
      continue;
    }
    std::string name = ToLowerAscii(Trim(value.substr(i, eq - i)));
    size_t j = eq + 1;
    while (j < value.size() && (value[j] == ' ' || value[j] == '\t')) ++j;
    std::string v;
    if (j < value.size() && value[j] == '"') {
      ++j;
      while (j < value.size() && value[j] != '"') {
        if (value[j] == '\\' && j + 1 < value.size()) ++j;
        v += value[j++];
      }
      i = value.find(';', j);
    } else {
      const size_t end = value.find(';', j);
      v = std::string(Trim(value.substr(j, end == std::string_view::npos ? end : end - j)));
      i = end;
    }
    out.emplace(std::move(name), std::move(v));
  }
  return out;
}

Result<std::string> Boundary(std::string_view content_type) {
  auto params = HeaderParams(content_type);
  auto it = params.find("boundary");
  if (it == params.end() || it->second.empty()) {
    return Status::InvalidArgument("multipart body: the Content-Type has no boundary parameter");
  }
  // RFC 2046: 1 to 70 characters.
  if (it->second.size() > 70) {
    return Status::InvalidArgument("multipart body: the boundary is longer than 70 characters");
  }
  return it->second;
}

}  // namespace

bool IsMultipartFormData(std::string_view content_type) {
  const std::string lower = ToLowerAscii(Trim(content_type.substr(0, content_type.find(';'))));
  return lower == "multipart/form-data";
}

Result<httplib::MultipartFormDataMap> ParseMultipartFormData(std::string_view content_type,
                                                             std::string_view body,
                                                             size_t max_parts) {
  if (!IsMultipartFormData(content_type)) {
    return Status::InvalidArgument("multipart body: Content-Type is not multipart/form-data");
  }
  KB_ASSIGN_OR_RETURN(std::string boundary, Boundary(content_type));
  const std::string dash = "--" + boundary;
  const std::string delimiter = "\r\n" + dash;

  // The first boundary: at the very start, or after a preamble ending in CRLF.
  size_t pos;
  if (body.substr(0, dash.size()) == dash) {
    pos = dash.size();
  } else {
    const size_t at = body.find(delimiter);
    if (at == std::string_view::npos) {
      return Status::InvalidArgument("multipart body: the boundary never appears");
    }
    pos = at + delimiter.size();
  }

  httplib::MultipartFormDataMap parts;
  while (true) {
    // After a boundary: "--" closes the body; otherwise optional whitespace, then CRLF.
    if (body.substr(pos, 2) == "--") return parts;
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != "\r\n") {
      return Status::InvalidArgument("multipart body: a boundary line does not end in CRLF");
    }
    pos += 2;
    if (parts.size() >= max_parts) {
      return Status::InvalidArgument("multipart body: more than " + std::to_string(max_parts) +
                                     " parts");
    }

    // The part's header lines, up to an empty line.
    httplib::MultipartFormData part;
    bool has_name = false;
    while (true) {
      const size_t eol = body.find("\r\n", pos);
      if (eol == std::string_view::npos) {
        return Status::InvalidArgument("multipart body: a part's headers never end");
      }
      const std::string_view line = body.substr(pos, eol - pos);
      pos = eol + 2;
      if (line.empty()) break;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        return Status::InvalidArgument("multipart body: a part header line has no name");
      }
      const std::string name = ToLowerAscii(Trim(line.substr(0, colon)));
      const std::string_view value = Trim(line.substr(colon + 1));
      if (name == "content-disposition") {
        if (ToLowerAscii(Trim(value.substr(0, value.find(';')))) != "form-data") {
          return Status::InvalidArgument("multipart body: a part is not form-data");
        }
        auto params = HeaderParams(value);
        if (auto it = params.find("name"); it != params.end()) {
          part.name = it->second;
          has_name = true;
        }
        if (auto it = params.find("filename"); it != params.end()) part.filename = it->second;
      } else if (name == "content-type") {
        part.content_type = std::string(value);
      }
    }
    if (!has_name) {
      return Status::InvalidArgument(
          "multipart body: a part has no Content-Disposition: form-data; name=...");
    }

    // The content runs to the next CRLF + boundary.
    const size_t end = body.find(delimiter, pos);
    if (end == std::string_view::npos) {
      return Status::InvalidArgument("multipart body: the closing boundary is missing");
    }
    part.content = std::string(body.substr(pos, end - pos));
    pos = end + delimiter.size();
    std::string key = part.name;
    parts.emplace(std::move(key), std::move(part));
  }
}

}  // namespace kb::api
