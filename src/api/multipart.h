// multipart/form-data request bodies (RFC 7578 over RFC 2046 §5.1), the upload form of
// POST /api/v1/projects/{project}/documents. Our own parser since the HTTP layer is no longer
// cpp-httplib's server (api/http_transport.h); the parts land in httplib::Request::files, the
// shape the routes already read.
//
// Thread-safety: a pure function.
#pragma once

#include <httplib.h>

#include <string>
#include <string_view>

#include "common/status.h"

namespace kb::api {

inline constexpr size_t kMaxMultipartParts = 1000;

// True if `content_type` is multipart/form-data (any parameters).
bool IsMultipartFormData(std::string_view content_type);

// The parts of `body`, by field name. InvalidArgument naming the problem for: no or bad boundary
// parameter, a body that does not start with the boundary or never closes it, a part without a
// Content-Disposition form-data name, a header line without a colon, more than `max_parts` parts.
Result<httplib::MultipartFormDataMap> ParseMultipartFormData(std::string_view content_type,
                                                             std::string_view body,
                                                             size_t max_parts = kMaxMultipartParts);

}  // namespace kb::api
