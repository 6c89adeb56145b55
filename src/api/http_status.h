// The single place where a Status becomes an HTTP status and an error body.
//
// Every handler, the batch ingest per-item results and the server's own failures (unknown
// route, oversize body, escaped exceptions) go through ToHttpError, so the mapping documented in
// docs/API.md ("Errors") cannot drift between routes. Internal failures (500) never reach the
// client with their message: it is logged with the request id and a generic text is returned.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace kb::api {

// kInvalidArgument 400, kUnprocessable 422, kNotFound 404, kAlreadyExists 409,
// kUnauthenticated 401, kPermissionDenied 403, kPayloadTooLarge 413, kUnsupportedMedia 415,
// kResourceExhausted 429, kFailedPrecondition 409, kUnavailable 503, everything else 500.
int HttpStatusFor(Code code);

struct HttpError {
  int http_status = 500;
  nlohmann::json body;  // {"error": {"code", "message"[, "request_id"]}}
};

// Builds the response for a failed Status. For 5xx the message is replaced by a generic one
// naming `request_id`, and the real one is logged.
HttpError ToHttpError(const Status& status, const std::string& request_id);

// Just the {"code","message"} object, for per-item results inside a 207 body.
nlohmann::json ErrorObject(const Status& status, const std::string& request_id);

}  // namespace kb::api
