// HTML parsing: readable text and heading structure out of whatever markup people upload,
// without the scripts, styles and boilerplate that would pollute search.
#include <gtest/gtest.h>

#include <chrono>

#include "common/text_util.h"
#include "ingest/parser.h"

namespace kb {
namespace {

using Path = std::vector<std::string>;

ParsedDocument Parse(std::string_view html) {
  Result<ParsedDocument> doc = ParseDocument(ContentType::kHtml, html);
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  return doc.ok() ? std::move(doc).value() : ParsedDocument{};
}

const TextBlock* Find(const ParsedDocument& doc, std::string_view needle) {
  for (const TextBlock& b : doc.blocks) {
    if (doc.text.substr(b.offset, b.length).find(needle) != std::string::npos) return &b;
  }
  ADD_FAILURE() << "no block contains " << needle << " in:\n" << doc.text;
  return nullptr;
}

TEST(HtmlParserTest, HtmlScriptContentIsDropped) {
  ParsedDocument doc = Parse(
      "<html><head><title>T</title><style>body{color:red}</style><script>var x=1;</script>"
      "</head><body><p>visible</p><script>alert('no')</script><noscript>enable js</noscript>"
      "<template><p>tmpl</p></template><svg><text>drawing</text></svg></body></html>");
  EXPECT_EQ(doc.text, "visible");
  EXPECT_EQ(doc.title, "T");
}

TEST(HtmlParserTest, HtmlTitleComesFromTitleElseFirstH1) {
  EXPECT_EQ(Parse("<title>  The   Title </title><h1>Head</h1>").title, "The Title");
  EXPECT_EQ(Parse("<body><h2>sub</h2><h1>Main <b>one</b></h1><h1>second</h1>").title, "Main one");
}

TEST(HtmlParserTest, HtmlHeadingsBuildTheHeadingPath) {
  ParsedDocument doc = Parse(
      "<h1>Guide</h1><p>intro</p><h2>Install</h2><div>steps</div><h3>Debian</h3><p>apt</p>"
      "<h2>Use</h2><p>run</p><h1>Other</h1><p>more</p>");
  EXPECT_EQ(Find(doc, "intro")->heading_path, (Path{"Guide"}));
  EXPECT_EQ(Find(doc, "steps")->heading_path, (Path{"Guide", "Install"}));
  EXPECT_EQ(Find(doc, "apt")->heading_path, (Path{"Guide", "Install", "Debian"}));
  EXPECT_EQ(Find(doc, "run")->heading_path, (Path{"Guide", "Use"}));
  EXPECT_EQ(Find(doc, "more")->heading_path, (Path{"Other"}));
  EXPECT_TRUE(Find(doc, "Install")->is_heading);
}

TEST(HtmlParserTest, HtmlBlockElementsBreakParagraphsAndWhitespaceCollapses) {
  ParsedDocument doc = Parse(
      "<p>one\n   two</p><p>three<br>four</p><ul><li>a</li><li>b</li></ul>"
      "<table><tr><td>c1</td><td>c2</td></tr><tr><td>d1</td></tr></table>inline <b>bold</b>x");
  EXPECT_EQ(doc.text, "one two\n\nthree\nfour\n\na\n\nb\n\nc1 c2\n\nd1\n\ninline boldx");
}

TEST(HtmlParserTest, HtmlEntitiesAreDecoded) {
  EXPECT_EQ(Parse("<p>a &amp; b &lt;c&gt; &eacute; &#x1F600;</p>").text, "a & b <c> é 😀");
}

TEST(HtmlParserTest, HtmlCharacterReferenceBeyondUnicodeGivesValidUtf8) {
  // Found by fuzz_parse_html: gumbo encodes this reference as ill-formed UTF-8.
  ParsedDocument doc = Parse("<p>a &#x888888888888 b &#x2; c &#xD800; <h1>&#x110000;</h1>");
  EXPECT_TRUE(IsValidUtf8(doc.text)) << doc.text;
  EXPECT_TRUE(IsValidUtf8(doc.title));
  for (const TextBlock& b : doc.blocks) {
    for (const std::string& h : b.heading_path) EXPECT_TRUE(IsValidUtf8(h));
  }
}

TEST(HtmlParserTest, HtmlPreKeepsItsLineBreaks) {
  EXPECT_EQ(Parse("<pre>line 1\n  line 2</pre>").text, "line 1\n  line 2");
}

TEST(HtmlParserTest, HtmlWithoutTextIsUnprocessable) {
  Result<ParsedDocument> doc =
      ParseDocument(ContentType::kHtml, "<html><head><title>only</title></head><body> </body>");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), Code::kUnprocessable);
  EXPECT_NE(doc.status().message().find("no text"), std::string::npos);
}

TEST(HtmlParserTest, HtmlGarbageNeverFailsExceptForNoText) {
  static const char kGarbage[] = "<<<>>><a <b \xFF\xFE </p></p><div<div>text\0more";
  std::string garbage(kGarbage, sizeof(kGarbage) - 1);
  Result<ParsedDocument> doc = ParseDocument(ContentType::kHtml, garbage);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_NE(doc->text.find("text"), std::string::npos);
}

TEST(HtmlParserTest, HtmlNestedHundredsOfLevelsDeepIsParsed) {
  std::string html;
  for (int i = 0; i < 400; ++i) html += "<div><span>";
  html += "deep";
  for (int i = 0; i < 400; ++i) html += "</span></div><p>x";
  Result<ParsedDocument> doc = ParseDocument(ContentType::kHtml, html);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->text.substr(0, 4), "deep");
}

TEST(HtmlParserTest, HtmlNestedAbsurdlyDeepIsUnprocessableAndQuick) {
  // Gumbo's time grows with tags x depth; this would take it hours.
  std::string html;
  for (int i = 0; i < 200000; ++i) html += "<div><span>";
  html += "deep";
  auto start = std::chrono::steady_clock::now();
  Result<ParsedDocument> doc = ParseDocument(ContentType::kHtml, html);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), Code::kUnprocessable);
  EXPECT_NE(doc.status().message().find("deep"), std::string::npos);
  EXPECT_LT(seconds, 1.0);
}

TEST(HtmlParserTest, HtmlWithManyTagsDeepDownIsUnprocessableAndQuick) {
  std::string html;
  for (int i = 0; i < 999; ++i) html += "<div>";
  for (int i = 0; i < 100000; ++i) html += "<li>x";
  auto start = std::chrono::steady_clock::now();
  Result<ParsedDocument> doc = ParseDocument(ContentType::kHtml, html);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), Code::kUnprocessable);
  EXPECT_LT(seconds, 1.0);
}

TEST(HtmlParserTest, HtmlManyUnclosedParagraphsAreNotMistakenForDepth) {
  std::string html;
  for (int i = 0; i < 20000; ++i) html += "<p>para <li>item <td>cell<br>";
  Result<ParsedDocument> doc = ParseDocument(ContentType::kHtml, html);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
}

}  // namespace
}  // namespace kb
