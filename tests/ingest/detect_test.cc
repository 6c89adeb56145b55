// DetectContentType and ParseDocument dispatch: what an upload is taken to be decides which
// parser sees it, and a wrong guess is a 415 the user must be able to act on.
#include <gtest/gtest.h>

#include "ingest/parser.h"

namespace kb {
namespace {

ContentType Detect(std::string_view mime, std::string_view name, std::string_view bytes) {
  Result<ContentType> r = DetectContentType(mime, name, bytes);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : ContentType::kText;
}

TEST(DetectContentTypeTest, DeclaredMimeWinsAndParametersAreIgnored) {
  EXPECT_EQ(Detect("text/markdown; charset=utf-8", "a.pdf", "%PDF-1.4"), ContentType::kMarkdown);
  EXPECT_EQ(Detect(" Text/HTML ", "", ""), ContentType::kHtml);
  EXPECT_EQ(Detect("application/pdf", "", ""), ContentType::kPdf);
  EXPECT_EQ(Detect("text/plain", "x.md", ""), ContentType::kText);
}

TEST(DetectContentTypeTest, OctetStreamAndEmptyMimeFallBackToExtension) {
  EXPECT_EQ(Detect("application/octet-stream", "notes.MD", "x"), ContentType::kMarkdown);
  EXPECT_EQ(Detect("", "dir/page.htm", "x"), ContentType::kHtml);
  EXPECT_EQ(Detect("", "a.markdown", "x"), ContentType::kMarkdown);
  EXPECT_EQ(Detect("", "a.text", "x"), ContentType::kText);
  EXPECT_EQ(Detect("", "a.txt", "x"), ContentType::kText);
  EXPECT_EQ(Detect("", "report.pdf", "x"), ContentType::kPdf);
  EXPECT_EQ(Detect("", "index.html", "x"), ContentType::kHtml);
}

TEST(DetectContentTypeTest, BytesDecideWithoutMimeOrExtension) {
  EXPECT_EQ(Detect("", "", "%PDF-1.7\n..."), ContentType::kPdf);
  EXPECT_EQ(Detect("", "README", "  <!DOCTYPE html><p>x"), ContentType::kHtml);
  EXPECT_EQ(Detect("", "", "<HTML><body>x"), ContentType::kHtml);
  EXPECT_EQ(Detect("", "", "just some words\n"), ContentType::kText);
  EXPECT_EQ(Detect("", ".bashrc", "export A=1\n"), ContentType::kText);
}

TEST(DetectContentTypeTest, UnknownDeclaredMimeIsUnsupportedAndListsSupportedTypes) {
  Result<ContentType> r = DetectContentType("image/png", "a.txt", "hello");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupportedMedia);
  for (const std::string& mime : SupportedMimeTypes()) {
    EXPECT_NE(r.status().message().find(mime), std::string::npos) << r.status().message();
  }
}

TEST(DetectContentTypeTest, UnknownExtensionIsUnsupported) {
  Result<ContentType> r = DetectContentType("", "archive.tar.gz", "hello");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupportedMedia);
  EXPECT_NE(r.status().message().find("application/pdf"), std::string::npos);
}

TEST(DetectContentTypeTest, UnknownBinaryIsUnsupported) {
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
  Result<ContentType> r = DetectContentType("", "", png);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupportedMedia);
  EXPECT_FALSE(DetectContentType("", "", "caf\xE9").ok());  // Latin-1, not UTF-8
}

TEST(DetectContentTypeTest, MimeNamesRoundTrip) {
  for (ContentType t :
       {ContentType::kText, ContentType::kMarkdown, ContentType::kHtml, ContentType::kPdf}) {
    EXPECT_EQ(Detect(ContentTypeMime(t), "", ""), t);
  }
  EXPECT_EQ(SupportedMimeTypes().size(), 4u);
}

}  // namespace
}  // namespace kb
