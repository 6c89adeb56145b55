// The small XML reader S3BlobStore relies on: entity decoding, tag matching, and refusing
// listings it cannot read rather than dropping objects.
#include "blob/s3_xml.h"

#include <gtest/gtest.h>

namespace kb::blob::s3xml {
namespace {

TEST(S3XmlTest, DecodesNamedAndNumericEntities) {
  EXPECT_EQ(DecodeEntities("a&amp;b&lt;c&gt;d&quot;e&apos;f"), "a&b<c>d\"e'f");
  EXPECT_EQ(DecodeEntities("&#65;&#x42;&#X43;"), "ABC");
  EXPECT_EQ(DecodeEntities("&#xe9;"), "\xc3\xa9");
  EXPECT_EQ(DecodeEntities("&#x1F600;"), "\xf0\x9f\x98\x80");
  EXPECT_EQ(DecodeEntities("plain"), "plain");
  EXPECT_EQ(DecodeEntities(""), "");
}

TEST(S3XmlTest, RejectsBrokenEntities) {
  for (const char* text : {"a&b", "&unknown;", "&#;", "&#x;", "&#xZZ;", "&#0;", "&#x110000;",
                           "&#xD800;", "&amp", "&#12a;"}) {
    EXPECT_FALSE(DecodeEntities(text).has_value()) << text;
  }
}

TEST(S3XmlTest, ElementsMatchWholeTagNamesOnly) {
  const std::string xml = "<R><KeyCount>2</KeyCount><Key>a</Key><Key attr=\"1\">b</Key><Key/></R>";
  auto keys = Elements(xml, "Key");
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0], "a");
  EXPECT_EQ(keys[1], "b");
  EXPECT_EQ(keys[2], "");
  EXPECT_EQ(Text(xml, "KeyCount"), "2");
  EXPECT_FALSE(Text(xml, "Missing").has_value());
  EXPECT_TRUE(Elements("<Key>unterminated", "Key").empty());
}

TEST(S3XmlTest, EscapeTextRoundTrips) {
  const std::string raw = "\"etag\" & <x> 'y'";
  EXPECT_EQ(DecodeEntities(EscapeText(raw)), raw);
}

TEST(S3XmlTest, ParsesErrorBodies) {
  auto error = ParseError(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>"
      "<Message>The specified bucket does not exist</Message><BucketName>b</BucketName></Error>");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "NoSuchBucket");
  EXPECT_EQ(error->message, "The specified bucket does not exist");
  EXPECT_FALSE(ParseError("<ListBucketResult></ListBucketResult>").has_value());
  EXPECT_FALSE(ParseError("").has_value());
}

TEST(S3XmlTest, ParsesListObjectsV2Pages) {
  const std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
      "<IsTruncated>true</IsTruncated>"
      "<Contents><Key>p/a&amp;b</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
      "<ETag>&quot;abc&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>"
      "<Contents><Key>p/c</Key><Size>123456789012</Size><Owner><ID>x</ID></Owner></Contents>"
      "<NextContinuationToken>1/2+3=</NextContinuationToken></ListBucketResult>";
  auto page = ParseListObjectsV2(xml);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "p/a&b");
  EXPECT_EQ(page->objects[0].size, 0);
  EXPECT_EQ(page->objects[1].key, "p/c");
  EXPECT_EQ(page->objects[1].size, 123456789012);
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_continuation_token, "1/2+3=");
}

TEST(S3XmlTest, ParsesTheLastAndEmptyPages) {
  auto page = ParseListObjectsV2(
      "<ListBucketResult><IsTruncated>false</IsTruncated>"
      "</ListBucketResult>");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_TRUE(page->objects.empty());
  EXPECT_FALSE(page->truncated);
}

TEST(S3XmlTest, RefusesListingsItCannotRead) {
  for (const char* xml : {
           "", "<Error><Code>InternalError</Code></Error>",
           "<ListBucketResult><Contents><Key>a</Key></Contents>"
           "<IsTruncated>false</IsTruncated></ListBucketResult>",  // no Size
           "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents>"
           "<IsTruncated>false</IsTruncated></ListBucketResult>",
           "<ListBucketResult><Contents><Key>a&bogus;</Key><Size>1</Size></Contents>"
           "<IsTruncated>false</IsTruncated></ListBucketResult>",
           "<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>"
           "</ListBucketResult>",  // no IsTruncated
           "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",  // no token
       }) {
    auto page = ParseListObjectsV2(xml);
    EXPECT_EQ(page.status().code(), Code::kIOError) << xml;
  }
}

TEST(S3XmlTest, ReadsUploadIdAndWritesCompletion) {
  EXPECT_EQ(*ParseUploadId("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                           "<UploadId>abc-123</UploadId></InitiateMultipartUploadResult>"),
            "abc-123");
  EXPECT_EQ(ParseUploadId("<InitiateMultipartUploadResult/>").status().code(), Code::kIOError);
  EXPECT_EQ(CompleteMultipartUploadBody({"\"e1\"", "\"e2\""}),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag>"
            "</Part><Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part>"
            "</CompleteMultipartUpload>");
}

}  // namespace
}  // namespace kb::blob::s3xml
