// Builds small, valid PDFs in memory so that PDF tests need no binary fixtures: one page per
// string, Helvetica text, a cross-reference table with offsets computed as the file is written.
#pragma once

#include <string>
#include <vector>

namespace kb::testing {

// `pages` are the lines of text drawn on each page (ASCII; parentheses and backslashes are
// escaped). A non-empty `title` goes into the document information dictionary. Extra
// trailer entries (e.g. an /Encrypt reference) can be appended through `extra_objects` and
// `extra_trailer`.
inline std::string MakePdf(const std::vector<std::string>& pages, const std::string& title = "",
                           const std::vector<std::string>& extra_objects = {},
                           const std::string& extra_trailer = "") {
  std::vector<std::string> objects;  // object i+1
  objects.push_back("<< /Type /Catalog /Pages 2 0 R >>");
  std::string kids;
  const int first_page = 4;  // 3 is the font; each page takes a page object and a content stream
  for (size_t i = 0; i < pages.size(); ++i) {
    kids += std::to_string(first_page + 2 * i) + " 0 R ";
  }
  objects.push_back("<< /Type /Pages /Kids [" + kids + "] /Count " + std::to_string(pages.size()) +
                    " >>");
  objects.push_back(
      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
  for (size_t i = 0; i < pages.size(); ++i) {
    std::string escaped;
    for (char c : pages[i]) {
      if (c == '(' || c == ')' || c == '\\') escaped += '\\';
      escaped += c;
    }
    std::string content = "BT /F1 12 Tf 72 720 Td (" + escaped + ") Tj ET";
    objects.push_back(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font "
        "<< /F1 3 0 R >> >> /Contents " +
        std::to_string(first_page + 2 * i + 1) + " 0 R >>");
    objects.push_back("<< /Length " + std::to_string(content.size()) + " >>\nstream\n" + content +
                      "\nendstream");
  }
  std::string info_ref;
  if (!title.empty()) {
    objects.push_back("<< /Title (" + title + ") >>");
    info_ref = " /Info " + std::to_string(objects.size()) + " 0 R";
  }
  for (const std::string& extra : extra_objects) objects.push_back(extra);

  std::string pdf = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";
  std::vector<size_t> offsets;
  for (size_t i = 0; i < objects.size(); ++i) {
    offsets.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + objects[i] + "\nendobj\n";
  }
  size_t xref = pdf.size();
  pdf += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
  for (size_t off : offsets) {
    std::string num = std::to_string(off);
    pdf += std::string(10 - num.size(), '0') + num + " 00000 n \n";
  }
  pdf += "trailer\n<< /Size " + std::to_string(objects.size() + 1) + " /Root 1 0 R" + info_ref +
         extra_trailer + " >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
  return pdf;
}

}  // namespace kb::testing
