// Status and Result<T>: the one way fallible calls report failure across module boundaries.
//
// A Status is either OK or carries a Code and a human-readable message. Codes are chosen so
// that the HTTP layer can map each to exactly one HTTP status (see api/http_status.cc), and so
// that Corruption is always distinguishable from an ordinary I/O error.
//
// Thread-safety: values; safe to copy and move between threads.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kb {

enum class Code {
  kOk = 0,
  kInvalidArgument,     // caller sent something malformed (HTTP 400)
  kUnprocessable,       // well-formed but semantically unusable, e.g. corrupt file (422)
  kNotFound,            // 404
  kAlreadyExists,       // 409
  kUnauthenticated,     // no or unknown credentials (401)
  kPermissionDenied,    // credentials lack the scope or project (403)
  kPayloadTooLarge,     // 413
  kUnsupportedMedia,    // content type we cannot parse (415)
  kResourceExhausted,   // rate limited (429)
  kFailedPrecondition,  // state does not allow it: wrong embedder, schema too new (409/412)
  kUnavailable,         // temporarily unable: lockdown, read-only, shutting down (503)
  kCorruption,          // stored data failed a check; never retried silently (500)
  kIOError,             // the OS or a remote store failed (500)
  kInternal,            // a bug (500)
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status Unprocessable(std::string m) { return {Code::kUnprocessable, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status Unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
  static Status PayloadTooLarge(std::string m) { return {Code::kPayloadTooLarge, std::move(m)}; }
  static Status UnsupportedMedia(std::string m) { return {Code::kUnsupportedMedia, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status IOError(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "NotFound: project 'x' does not exist"
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context: `.
  Status WithContext(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Result<T> holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace kb

#define KB_CONCAT_INNER(a, b) a##b
#define KB_CONCAT(a, b) KB_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define KB_RETURN_IF_ERROR(expr)            \
  do {                                      \
    ::kb::Status kb_status_ = (expr);       \
    if (!kb_status_.ok()) return kb_status_; \
  } while (0)

// KB_ASSIGN_OR_RETURN(auto x, MaybeX()); returns the error if MaybeX() failed.
#define KB_ASSIGN_OR_RETURN(lhs, rexpr) \
  KB_ASSIGN_OR_RETURN_IMPL(KB_CONCAT(kb_result_, __LINE__), lhs, rexpr)
#define KB_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                             \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
