// PDF parsing through poppler: real (generated) PDFs give their text back, and damaged or
// encrypted ones are a clean Unprocessable, never a crash.
#include <gtest/gtest.h>

#include "common/text_util.h"
#include "ingest/parser.h"
#include "pdf_test_util.h"

namespace kb {
namespace {

using testing::MakePdf;

TEST(PdfParserTest, PdfTextAndTitleComeBack) {
  std::string pdf = MakePdf({"Hello from a tiny PDF"}, "Tiny Title");
  Result<ParsedDocument> doc = ParseDocument(ContentType::kPdf, pdf);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->text, "Hello from a tiny PDF");
  EXPECT_EQ(doc->title, "Tiny Title");
  ASSERT_EQ(doc->blocks.size(), 1u);
  EXPECT_TRUE(doc->blocks[0].heading_path.empty());
}

TEST(PdfParserTest, PdfPagesAreSeparatedByBlankLines) {
  std::string pdf = MakePdf({"Page one text", "Page two (with parens)"});
  Result<ParsedDocument> doc = ParseDocument(ContentType::kPdf, pdf);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->text, "Page one text\n\nPage two (with parens)");
  EXPECT_EQ(doc->blocks.size(), 2u);
  EXPECT_TRUE(doc->title.empty());
}

TEST(PdfParserTest, PdfIsDetectedByItsMagic) {
  Result<ContentType> type = DetectContentType("", "", MakePdf({"x"}));
  ASSERT_TRUE(type.ok());
  EXPECT_EQ(*type, ContentType::kPdf);
}

TEST(PdfParserTest, CorruptPdfIsUnprocessable) {
  for (std::string_view bytes : {std::string_view("%PDF-1.4\ngarbage garbage\n%%EOF"),
                                 std::string_view("not a pdf at all"), std::string_view("")}) {
    Result<ParsedDocument> doc = ParseDocument(ContentType::kPdf, bytes);
    ASSERT_FALSE(doc.ok());
    EXPECT_EQ(doc.status().code(), Code::kUnprocessable) << doc.status().ToString();
  }
}

TEST(PdfParserTest, TruncatedPdfNeverCrashes) {
  std::string pdf = MakePdf({"Some text that will be cut", "and a second page"}, "T");
  for (size_t len = 0; len < pdf.size(); len += 3) {
    Result<ParsedDocument> doc = ParseDocument(ContentType::kPdf, pdf.substr(0, len));
    if (doc.ok()) {
      EXPECT_TRUE(IsValidUtf8(doc->text));
    } else {
      EXPECT_EQ(doc.status().code(), Code::kUnprocessable) << doc.status().ToString();
    }
  }
}

TEST(PdfParserTest, PdfWithoutTextIsUnprocessableNoText) {
  Result<ParsedDocument> doc = ParseDocument(ContentType::kPdf, MakePdf({""}));
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), Code::kUnprocessable);
  EXPECT_NE(doc.status().message().find("no text"), std::string::npos);
}

TEST(PdfParserTest, EncryptedPdfIsUnprocessable) {
  // A standard security handler whose O/U entries match no password: poppler reports the
  // document as locked.
  std::string filler(32, 'A');
  std::string pdf =
      MakePdf({"secret"}, "",
              {"<< /Filter /Standard /V 1 /R 2 /O (" + filler + ") /U (" + filler + ") /P -4 >>"},
              " /Encrypt 6 0 R /ID [<00112233445566778899AABBCCDDEEFF> "
              "<00112233445566778899AABBCCDDEEFF>]");
  Result<ParsedDocument> doc = ParseDocument(ContentType::kPdf, pdf);
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), Code::kUnprocessable);
  EXPECT_NE(doc.status().message().find("encrypted"), std::string::npos) << doc.status().message();
}

}  // namespace
}  // namespace kb
