// Plain-text parsing: UTF-8 is checked, not guessed at, and paragraphs become blocks.
#include <gtest/gtest.h>

#include "ingest/parser.h"

namespace kb {
namespace {

std::vector<std::string> BlockTexts(const ParsedDocument& doc) {
  std::vector<std::string> out;
  for (const TextBlock& b : doc.blocks) out.push_back(doc.text.substr(b.offset, b.length));
  return out;
}

TEST(TextParserTest, TextBlocksAreBlankLineSeparatedParagraphs) {
  Result<ParsedDocument> doc =
      ParseDocument(ContentType::kText, "first line\nstill first\n\n  \t\nsecond\n\n\nthird");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(BlockTexts(*doc),
            (std::vector<std::string>{"first line\nstill first", "second", "third"}));
  EXPECT_TRUE(doc->title.empty());
  for (const TextBlock& b : doc->blocks) EXPECT_TRUE(b.heading_path.empty());
}

TEST(TextParserTest, TextCrLfIsNormalisedToLf) {
  Result<ParsedDocument> doc = ParseDocument(ContentType::kText, "a\r\nb\r\n\r\nc\rd");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->text, "a\nb\n\nc\nd");
  EXPECT_EQ(doc->blocks.size(), 2u);
}

TEST(TextParserTest, TextLeadingBomIsDropped) {
  Result<ParsedDocument> doc = ParseDocument(ContentType::kText, "\xEF\xBB\xBFhello");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->text, "hello");
}

TEST(TextParserTest, TextInvalidUtf8IsUnprocessable) {
  Result<ParsedDocument> doc = ParseDocument(ContentType::kText, "caf\xE9 au lait");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), Code::kUnprocessable);
  EXPECT_NE(doc.status().message().find("UTF-8"), std::string::npos);
}

TEST(TextParserTest, TextNulByteIsUnprocessable) {
  Result<ParsedDocument> doc = ParseDocument(ContentType::kText, std::string("ab\0cd", 5));
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), Code::kUnprocessable);
  EXPECT_NE(doc.status().message().find("NUL"), std::string::npos);
}

TEST(TextParserTest, TextWithOnlyWhitespaceIsUnprocessableNoText) {
  for (std::string_view input : {"", "  \n\n\t ", "\xEF\xBB\xBF"}) {
    Result<ParsedDocument> doc = ParseDocument(ContentType::kText, input);
    ASSERT_FALSE(doc.ok());
    EXPECT_EQ(doc.status().code(), Code::kUnprocessable);
    EXPECT_NE(doc.status().message().find("no text"), std::string::npos);
  }
}

TEST(TextParserTest, TextMultibyteUtf8IsKept) {
  Result<ParsedDocument> doc = ParseDocument(ContentType::kText, "Grüße, 世界 🌍");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->text, "Grüße, 世界 🌍");
}

}  // namespace
}  // namespace kb
