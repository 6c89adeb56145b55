// The multipart/form-data parser (api/multipart.h): the forms browsers and curl send, and the
// malformed ones refused with a message instead of a crash or a silent half-parse.
#include "api/multipart.h"

#include <gtest/gtest.h>

namespace kb::api {
namespace {

const char* kType = "multipart/form-data; boundary=XyZ";

TEST(MultipartTest, ParsesFieldsAndFilesWithTheirNamesTypesAndBytes) {
  const std::string body =
      "preamble is ignored\r\n"
      "--XyZ\r\n"
      "Content-Disposition: form-data; name=\"title\"\r\n\r\n"
      "My title\r\n"
      "--XyZ\r\n"
      "content-disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".md\"\r\n"
      "Content-Type: text/markdown\r\n\r\n"
      "# Heading\r\n\r\nline with --XyZ inside is data\r\n"
      "--XyZ\r\n"
      "Content-Disposition: form-data; name=\"file\"; filename=bin.dat\r\n\r\n" +
      std::string("\0\x01\xff", 3) + "\r\n--XyZ--\r\nepilogue";
  auto parts = ParseMultipartFormData(kType, body);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 3u);
  EXPECT_EQ(parts->find("title")->second.content, "My title");
  auto files = parts->equal_range("file");
  auto it = files.first;
  EXPECT_EQ(it->second.filename, "a \"b\".md");
  EXPECT_EQ(it->second.content_type, "text/markdown");
  EXPECT_EQ(it->second.content, "# Heading\r\n\r\nline with --XyZ inside is data");
  ++it;
  EXPECT_EQ(it->second.filename, "bin.dat");
  EXPECT_EQ(it->second.content, std::string("\0\x01\xff", 3));
}

TEST(MultipartTest, QuotedBoundaryAndEmptyBody) {
  auto parts = ParseMultipartFormData("multipart/form-data; boundary=\"a b\"",
                                      "--a b\r\nContent-Disposition: form-data; name=x\r\n\r\n"
                                      "\r\n--a b--");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ(parts->find("x")->second.content, "");
  auto none = ParseMultipartFormData(kType, "--XyZ--\r\n");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(MultipartTest, MalformedBodiesAreRefusedWithAReason) {
  const std::string part = "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\ndata";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"no boundary parameter", ""},
      {"boundary never appears", "hello"},
      {"closing boundary is missing", part},
      {"headers never end", "--XyZ\r\nContent-Disposition: form-data; name=\"f\""},
      {"has no Content-Disposition", "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--"},
      {"not form-data", "--XyZ\r\nContent-Disposition: attachment; name=f\r\n\r\nx\r\n--XyZ--"},
      {"no name", "--XyZ\r\n: v\r\n\r\nx\r\n--XyZ--"},
      {"does not end in CRLF", "--XyZjunk\r\n"},
  };
  for (const auto& [why, body] : bad) {
    auto r = ParseMultipartFormData(why == "no boundary parameter" ? "multipart/form-data" : kType,
                                    body);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << why;
    EXPECT_NE(r.status().message().find(why), std::string::npos)
        << why << ": " << r.status().message();
  }
  // Too many parts.
  std::string many;
  for (int i = 0; i < 5; ++i)
    many += "--XyZ\r\nContent-Disposition: form-data; name=p\r\n\r\nv\r\n";
  many += "--XyZ--";
  EXPECT_TRUE(ParseMultipartFormData(kType, many, 5).ok());
  EXPECT_FALSE(ParseMultipartFormData(kType, many, 4).ok());
  EXPECT_FALSE(ParseMultipartFormData("text/plain", "x").ok());
}

}  // namespace
}  // namespace kb::api
