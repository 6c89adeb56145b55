// Status -> HTTP mapping (see http_status.h for why it lives in exactly one place).
#include "api/http_status.h"

#include "common/logging.h"

namespace kb::api {

int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kInvalidArgument:
      return 400;
    case Code::kUnprocessable:
      return 422;
    case Code::kNotFound:
      return 404;
    case Code::kAlreadyExists:
      return 409;
    case Code::kUnauthenticated:
      return 401;
    case Code::kPermissionDenied:
      return 403;
    case Code::kPayloadTooLarge:
      return 413;
    case Code::kUnsupportedMedia:
      return 415;
    case Code::kResourceExhausted:
      return 429;
    case Code::kFailedPrecondition:
      return 409;
    case Code::kUnavailable:
      return 503;
    case Code::kCorruption:
    case Code::kIOError:
    case Code::kInternal:
      return 500;
  }
  return 500;
}

nlohmann::json ErrorObject(const Status& status, const std::string& request_id) {
  const int http = HttpStatusFor(status.code());
  nlohmann::json err;
  err["code"] = std::string(CodeName(status.code()));
  if (http >= 500 && status.code() != Code::kUnavailable) {
    // Internal details (paths, SQL errors) stay in the log, keyed by the request id.
    nlohmann::json fields = {{"request_id", request_id}, {"error", status.ToString()}};
    LogError("request failed",
             fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    err["code"] = "internal";
    err["message"] = "internal error (request id " + request_id + ")";
  } else {
    err["message"] = status.message();
  }
  if (!request_id.empty()) err["request_id"] = request_id;
  return err;
}

HttpError ToHttpError(const Status& status, const std::string& request_id) {
  HttpError out;
  out.http_status = HttpStatusFor(status.code());
  out.body = {{"error", ErrorObject(status, request_id)}};
  return out;
}

}  // namespace kb::api
