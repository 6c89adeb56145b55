// docs/API.md lists every error code the server can send, and nothing else (issue 17): the codes
// a Status renders as (http_status.cc, with 5xx details masked as "internal") plus every code the
// HTTP layer spells itself, found by reading src/api/*.cc for error literals — so a new literal
// that is not documented fails here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "api/http_status.h"

namespace kb::api {
namespace {

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The codes of the "## Errors" table: rows "| `code` | NNN | when |".
std::set<std::string> DocumentedCodes() {
  const std::string doc = ReadFile(std::filesystem::path(KB_SOURCE_DIR) / "docs/API.md");
  const size_t start = doc.find("\n## Errors");
  EXPECT_NE(start, std::string::npos) << "docs/API.md has no '## Errors' section";
  const size_t end = doc.find("\n## ", start + 1);
  const std::string section = doc.substr(start, end - start);
  std::set<std::string> out;
  const std::regex row(R"(\n\| `([a-z_]+)` \| [0-9]{3} \|)");
  for (auto it = std::sregex_iterator(section.begin(), section.end(), row);
       it != std::sregex_iterator(); ++it) {
    out.insert((*it)[1]);
  }
  return out;
}

std::set<std::string> CodesInSource() {
  std::set<std::string> out;
  for (int c = static_cast<int>(Code::kInvalidArgument); c <= static_cast<int>(Code::kInternal);
       ++c) {
    const HttpError e = ToHttpError(Status(static_cast<Code>(c), "x"), "");
    out.insert(e.body["error"]["code"].get<std::string>());
  }
  // Literals: RawError("code", ...) in the server, {"code":"..."} in fixed JSON bodies.
  const std::regex raw(R"(RawError\(\s*"([a-z_]+)\")");
  const std::regex literal(R"re(\\?"code\\?":\s*\\?"([a-z_]+)\\?")re");
  for (const auto& f :
       std::filesystem::directory_iterator(std::filesystem::path(KB_SOURCE_DIR) / "src/api")) {
    if (f.path().extension() != ".cc") continue;
    const std::string text = ReadFile(f.path());
    for (const auto* re : {&raw, &literal}) {
      for (auto it = std::sregex_iterator(text.begin(), text.end(), *re);
           it != std::sregex_iterator(); ++it) {
        out.insert((*it)[1]);
      }
    }
  }
  return out;
}

TEST(ErrorCodesDocTest, ApiDocListsExactlyTheCodesTheServerSends) {
  const std::set<std::string> documented = DocumentedCodes();
  const std::set<std::string> sent = CodesInSource();
  ASSERT_GE(sent.size(), 15u);  // the scan found the table and the literals
  for (const std::string& c : sent) {
    EXPECT_TRUE(documented.count(c)) << "'" << c << "' is sent but not in docs/API.md's table";
  }
  for (const std::string& c : documented) {
    EXPECT_TRUE(sent.count(c)) << "'" << c << "' is in docs/API.md but never sent";
  }
}

}  // namespace
}  // namespace kb::api
