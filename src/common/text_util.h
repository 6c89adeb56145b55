// Text helpers shared by parsers, the store and the API: UTF-8 validation and repair, the
// validation rules for user-chosen names, and URL percent-encoding.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace kb {

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Replaces every ill-formed sequence with U+FFFD.
std::string SanitizeUtf8(std::string_view s);

// Project names: 1-100 characters of ASCII letters, digits, space, '_' and '-';
// not only spaces. The error names the rule that was broken.
Status ValidateProjectName(std::string_view name);

// Free text labels (titles, key names, sources): valid UTF-8, no control characters other than
// tab, at most `max_bytes` bytes. `field` names the field in the error.
Status ValidateLabel(std::string_view field, std::string_view value, size_t max_bytes);

std::string ToLowerAscii(std::string_view s);
std::string_view TrimWhitespace(std::string_view s);

// RFC 3986 percent-encoding of everything but unreserved characters (A-Z a-z 0-9 - _ . ~), and
// of '/' unless `keep_slash`: for URL paths and query strings (S3 requests, the CLI's remote
// calls).
std::string UriEncode(std::string_view text, bool keep_slash);

}  // namespace kb
