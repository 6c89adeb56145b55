// Markdown parsing: the heading path is what retrieval shows users as context, so headings
// must be found exactly where CommonMark finds them and nowhere else.
#include <gtest/gtest.h>

#include "ingest/parser.h"

namespace kb {
namespace {

using Path = std::vector<std::string>;

ParsedDocument Parse(std::string_view md) {
  Result<ParsedDocument> doc = ParseDocument(ContentType::kMarkdown, md);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  return doc.ok() ? std::move(doc).value() : ParsedDocument{};
}

// The block whose text contains `needle`.
const TextBlock* Find(const ParsedDocument& doc, std::string_view needle) {
  for (const TextBlock& b : doc.blocks) {
    if (doc.text.substr(b.offset, b.length).find(needle) != std::string::npos) return &b;
  }
  ADD_FAILURE() << "no block contains " << needle;
  return nullptr;
}

TEST(MarkdownParserTest, MarkdownAtxHeadingsBuildTheHeadingPath) {
  ParsedDocument doc = Parse(
      "intro\n\n# Install\n\nstep one\n\n## On Debian ##\n\napt-get\n\n### Deep\n\ndeep text\n\n"
      "## On Fedora\n\ndnf\n\n# Usage\n\nrun it\n");
  EXPECT_EQ(Find(doc, "intro")->heading_path, Path{});
  EXPECT_EQ(Find(doc, "step one")->heading_path, (Path{"Install"}));
  EXPECT_EQ(Find(doc, "apt-get")->heading_path, (Path{"Install", "On Debian"}));
  EXPECT_EQ(Find(doc, "deep text")->heading_path, (Path{"Install", "On Debian", "Deep"}));
  EXPECT_EQ(Find(doc, "dnf")->heading_path, (Path{"Install", "On Fedora"}));
  EXPECT_EQ(Find(doc, "run it")->heading_path, (Path{"Usage"}));
  EXPECT_EQ(doc.title, "Install");
}

TEST(MarkdownParserTest, MarkdownHeadingBlockIsMarkedAndInItsOwnSection) {
  ParsedDocument doc = Parse("# Title\n\n## Part\ntext\n");
  const TextBlock* h = Find(doc, "## Part");
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->is_heading);
  EXPECT_EQ(h->heading_path, (Path{"Title", "Part"}));
  EXPECT_FALSE(Find(doc, "text")->is_heading);
}

TEST(MarkdownParserTest, MarkdownSetextHeadingsBuildTheHeadingPath) {
  ParsedDocument doc = Parse("Guide\n=====\n\nhello\n\nSetup\n-----\nbody\n");
  EXPECT_EQ(doc.title, "Guide");
  EXPECT_EQ(Find(doc, "hello")->heading_path, (Path{"Guide"}));
  EXPECT_EQ(Find(doc, "body")->heading_path, (Path{"Guide", "Setup"}));
}

TEST(MarkdownParserTest, MarkdownHashInsideCodeFenceIsNotAHeading) {
  ParsedDocument doc = Parse(
      "# Real\n\n```bash\n# not a heading\necho hi\n\n## nor this\n```\n\nafter\n\n~~~\n# "
      "tilde\n~~~\n");
  EXPECT_EQ(Find(doc, "# not a heading")->heading_path, (Path{"Real"}));
  EXPECT_FALSE(Find(doc, "# not a heading")->is_heading);
  EXPECT_EQ(Find(doc, "after")->heading_path, (Path{"Real"}));
  EXPECT_EQ(Find(doc, "# tilde")->heading_path, (Path{"Real"}));
  // The code block (with its blank line) stays one block, kept as written.
  const TextBlock* code = Find(doc, "echo hi");
  EXPECT_NE(doc.text.substr(code->offset, code->length).find("## nor this"), std::string::npos);
}

TEST(MarkdownParserTest, MarkdownUnclosedFenceRunsToTheEnd) {
  ParsedDocument doc = Parse("# A\n\n```\n# inside\n");
  EXPECT_EQ(Find(doc, "# inside")->heading_path, (Path{"A"}));
}

TEST(MarkdownParserTest, MarkdownNewTopLevelHeadingResetsThePath) {
  ParsedDocument doc = Parse("# One\n## Sub\n# Two\nx\n");
  EXPECT_EQ(Find(doc, "x")->heading_path, (Path{"Two"}));
  EXPECT_EQ(doc.title, "One");
}

TEST(MarkdownParserTest, MarkdownHashWithoutSpaceOrIndentedIsNotAHeading) {
  ParsedDocument doc = Parse("#hashtag\n\n    # indented code\n\nC# rocks\n");
  for (const TextBlock& b : doc.blocks) {
    EXPECT_TRUE(b.heading_path.empty());
    EXPECT_FALSE(b.is_heading);
  }
  EXPECT_TRUE(doc.title.empty());
}

TEST(MarkdownParserTest, MarkdownHeadingKeepsTrailingHashThatIsPartOfAWord) {
  ParsedDocument doc = Parse("## Learning C#\ntext\n");
  EXPECT_EQ(Find(doc, "text")->heading_path, (Path{"Learning C#"}));
}

TEST(MarkdownParserTest, MarkdownFrontMatterIsNotASetextHeading) {
  ParsedDocument doc = Parse("---\ntitle: x\n---\n\nbody\n");
  EXPECT_EQ(Find(doc, "body")->heading_path, Path{});
}

TEST(MarkdownParserTest, MarkdownInvalidUtf8IsUnprocessable) {
  Result<ParsedDocument> doc = ParseDocument(ContentType::kMarkdown, "# T\n\xC3\x28");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), Code::kUnprocessable);
}

TEST(MarkdownParserTest, MarkdownCrLfIsNormalised) {
  ParsedDocument doc = Parse("# T\r\n\r\nbody\r\n");
  EXPECT_EQ(doc.text.find('\r'), std::string::npos);
  EXPECT_EQ(Find(doc, "body")->heading_path, (Path{"T"}));
}

}  // namespace
}  // namespace kb
