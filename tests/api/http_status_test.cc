// The Status -> HTTP table is part of the API contract (docs/API.md "Errors").
#include "api/http_status.h"

#include <gtest/gtest.h>

namespace kb::api {
namespace {

TEST(HttpStatusTest, EveryCodeMapsAsDocumented) {
  EXPECT_EQ(HttpStatusFor(Code::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(Code::kUnprocessable), 422);
  EXPECT_EQ(HttpStatusFor(Code::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(Code::kAlreadyExists), 409);
  EXPECT_EQ(HttpStatusFor(Code::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(Code::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(Code::kPayloadTooLarge), 413);
  EXPECT_EQ(HttpStatusFor(Code::kUnsupportedMedia), 415);
  EXPECT_EQ(HttpStatusFor(Code::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(Code::kFailedPrecondition), 409);
  EXPECT_EQ(HttpStatusFor(Code::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(Code::kCorruption), 500);
  EXPECT_EQ(HttpStatusFor(Code::kIOError), 500);
  EXPECT_EQ(HttpStatusFor(Code::kInternal), 500);
}

TEST(HttpStatusTest, ClientErrorsKeepTheirMessage) {
  HttpError e = ToHttpError(Status::NotFound("project 'x' does not exist"), "rid");
  EXPECT_EQ(e.http_status, 404);
  EXPECT_EQ(e.body["error"]["code"], "not_found");
  EXPECT_EQ(e.body["error"]["message"], "project 'x' does not exist");
  EXPECT_EQ(e.body["error"]["request_id"], "rid");
}

TEST(HttpStatusTest, InternalErrorsDoNotLeakDetails) {
  HttpError e = ToHttpError(Status::IOError("open /secret/path/kb.db: EACCES"), "rid-42");
  EXPECT_EQ(e.http_status, 500);
  const std::string msg = e.body["error"]["message"];
  EXPECT_EQ(msg.find("/secret"), std::string::npos);
  EXPECT_NE(msg.find("rid-42"), std::string::npos);
  EXPECT_EQ(e.body["error"]["code"], "internal");
}

}  // namespace
}  // namespace kb::api
