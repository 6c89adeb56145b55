// Hostile input against the real server (issue 4): SQL-injection strings, very long names,
// invalid UTF-8, NUL bytes, JSON bombs, absurd numbers. Each must be stored literally (and read
// back byte for byte) or refused with a 4xx JSON error — never a crash, never a 5xx, never a
// change to other data. Under `make test-asan` the server binary is the ASan/UBSan build, so this
// file is also the sanitizer run over those inputs.
#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

using nlohmann::json;

class HostileInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(
        dir_.Sub("data"), dir_.Sub("server.log"),
        std::vector<std::string>{"--max-body-bytes", "4194304"});
    ASSERT_TRUE(server_->Start()) << server_->Log();
    client_ = server_->Client();
    ASSERT_EQ(Do("POST", "/api/v1/projects", R"({"name":"target"})").status, 201);
    HttpResp doc = Do("POST", "/api/v1/projects/target/documents",
                      R"({"content":"Canary text about lighthouses.","source":"canary.txt"})");
    ASSERT_EQ(doc.status, 201) << doc.raw;
    canary_id_ = doc.body["document"]["id"];
  }
  void TearDown() override {
    if (server_) server_->Stop(SIGTERM);
  }
  HttpResp Do(const std::string& method, const std::string& path, const std::string& body = "") {
    return Call(*client_, method, path, kE2eAdminToken, body);
  }
  // A refusal must be a 4xx with the JSON error body; success must be 2xx.
  void ExpectStoredOrRefused(const HttpResp& r, const std::string& what) {
    EXPECT_TRUE((r.status >= 200 && r.status < 300) || (r.status >= 400 && r.status < 500))
        << what << ": " << r.status << " " << r.raw.substr(0, 300);
    if (r.status >= 400) {
      EXPECT_TRUE(r.body.is_object() && r.body.contains("error")) << what << ": " << r.raw;
    }
  }
  // The server is alive, the canary is intact and findable, and nothing else appeared.
  void ExpectUnharmed() {
    HttpResp health = Do("GET", "/health");
    ASSERT_EQ(health.status, 200) << server_->Log();
    HttpResp canary = Do("GET", "/api/v1/projects/target/documents/" + canary_id_);
    ASSERT_EQ(canary.status, 200) << canary.raw;
    EXPECT_EQ(canary.body["source"], "canary.txt");
    HttpResp q = Do("POST", "/api/v1/projects/target/query", R"({"query":"lighthouses"})");
    ASSERT_EQ(q.status, 200) << q.raw;
    ASSERT_GE(q.body["results"].size(), 1u);
    EXPECT_EQ(q.body["results"][0]["document_id"], canary_id_);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<httplib::Client> client_;
  std::string canary_id_;
};

// Every byte outside [A-Za-z0-9-_.~] as %XX, so that hostile bytes reach the server's decoder.
std::string PercentEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

const std::vector<std::string>& InjectionStrings() {
  static const std::vector<std::string> k = {
      "x'; DROP TABLE documents; --",
      "\" OR 1=1 --",
      "'); DELETE FROM chunks WHERE ('1'='1",
      "lighthouses\" OR \"\"=\"",
      "NEAR(a b) OR * AND NOT ^",  // FTS5 query syntax
      "-- /* */ ; ATTACH DATABASE '/tmp/x.db' AS x; --",
      "%' UNION SELECT secret_hash FROM api_keys --",
  };
  return k;
}

TEST_F(HostileInputTest, InjectionStringsAreStoredLiterallyAndSearchedAsText) {
  int n = 0;
  for (const std::string& s : InjectionStrings()) {
    SCOPED_TRACE(s);
    const std::string source = "inj-" + std::to_string(n++) + ".txt";
    json body = {{"content", "Text holding " + s + " inside."},
                 {"title", s},
                 {"source", source},
                 {"metadata", {{"note", s}, {s, "value"}}}};
    HttpResp put = Do("POST", "/api/v1/projects/target/documents", body.dump());
    ASSERT_EQ(put.status, 201) << put.raw;
    HttpResp got = Do("GET", "/api/v1/projects/target/documents/" +
                                 put.body["document"]["id"].get<std::string>());
    ASSERT_EQ(got.status, 200);
    EXPECT_EQ(got.body["title"], s);
    EXPECT_EQ(got.body["metadata"]["note"], s);
    EXPECT_EQ(got.body["metadata"][s], "value");

    for (const std::string mode : {"keyword", "vector", "hybrid"}) {
      HttpResp q = Do("POST", "/api/v1/projects/target/query",
                      json{{"query", s}, {"mode", mode}}.dump());
      ExpectStoredOrRefused(q, "query " + mode);
    }
    HttpResp f = Do("POST", "/api/v1/projects/target/query",
                    json{{"query", "text"}, {"filters", {{s, s}}}}.dump());
    ExpectStoredOrRefused(f, "filter");
    HttpResp patch = Do("PATCH", "/api/v1/projects/target", json{{"description", s}}.dump());
    ASSERT_EQ(patch.status, 200) << patch.raw;
    EXPECT_EQ(Do("GET", "/api/v1/projects/target").body["description"], s);
    HttpResp named = Do("POST", "/api/v1/projects", json{{"name", s}}.dump());
    ExpectStoredOrRefused(named, "project name");
    HttpResp key = Do("POST", "/api/v1/admin/api-keys", json{{"name", s}, {"scope", "read"}}.dump());
    ASSERT_EQ(key.status, 201) << key.raw;
    EXPECT_EQ(key.body["key"]["name"], s);
    ExpectStoredOrRefused(Do("GET", "/api/v1/documents?since=" + PercentEncode(s)),
                          "since");
  }
  EXPECT_EQ(Do("GET", "/api/v1/projects/target/documents?limit=100").body["total"],
            1 + static_cast<int>(InjectionStrings().size()));
  ExpectUnharmed();
}

TEST_F(HostileInputTest, OversizedNamesAndFieldsAreRefusedWith4xx) {
  const std::string big(100000, 'n');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/api/v1/projects", json{{"name", big}}.dump()},
      {"/api/v1/projects", json{{"name", "ok-name"}, {"description", big}}.dump()},
      {"/api/v1/projects/target/documents", json{{"content", "x"}, {"title", big}}.dump()},
      {"/api/v1/projects/target/documents", json{{"content", "x"}, {"source", big}}.dump()},
      {"/api/v1/admin/api-keys", json{{"name", big}, {"scope", "read"}}.dump()},
      {"/api/v1/projects/target/query", json{{"query", big}}.dump()},
  };
  for (const auto& [path, body] : cases) {
    HttpResp r = Do("POST", path, body);
    EXPECT_EQ(r.status / 100, 4) << path << ": " << r.raw.substr(0, 300);
    EXPECT_TRUE(r.body.is_object() && r.body.contains("error")) << path;
  }
  // Long paths and headers: refused or not found, never a crash.
  ExpectStoredOrRefused(Do("GET", "/api/v1/projects/" + std::string(20000, 'p')), "long path");
  // A request id above 128 characters is replaced by a generated one...
  auto long_id = client_->Get("/api/v1/projects",
                              {{"Authorization", std::string("Bearer ") + kE2eAdminToken},
                               {"X-Request-ID", std::string(1000, 'r')}});
  ASSERT_TRUE(long_id);
  EXPECT_EQ(long_id->status, 200);
  EXPECT_LE(long_id->get_header_value("X-Request-ID").size(), 128u);
  // ...and a header line beyond the HTTP parser's limit is a 431 with the JSON error body.
  auto huge_header = client_->Get("/api/v1/projects",
                                  {{"Authorization", std::string("Bearer ") + kE2eAdminToken},
                                   {"X-Request-ID", std::string(100000, 'r')}});
  ASSERT_TRUE(huge_header);
  EXPECT_EQ(huge_header->status, 431);
  EXPECT_TRUE(json::parse(huge_header->body, nullptr, false).contains("error"))
      << huge_header->body;
  ExpectUnharmed();
}

TEST_F(HostileInputTest, InvalidUtf8AndNulBytesAreRefusedOrKeptExactly) {
  const std::vector<std::string> bad = {std::string("\xc3\x28"), std::string("\xff\xfe"),
                                        std::string("\xed\xa0\x80"),  // a UTF-16 surrogate
                                        std::string("\xf4\x90\x80\x80")};  // above U+10FFFF
  for (const std::string& b : bad) {
    for (const std::string field : {"name", "description"}) {
      HttpResp r = Do("POST", "/api/v1/projects",
                      "{\"name\":\"u8\",\"" + field + "\":\"" + b + "\"}");
      EXPECT_EQ(r.status, 400) << field << ": " << r.raw;
    }
    HttpResp content = Do("POST", "/api/v1/projects/target/documents",
                          "{\"content\":\"x" + b + "y\",\"source\":\"u.txt\"}");
    EXPECT_EQ(content.status, 400) << content.raw;
    ExpectStoredOrRefused(Do("GET", "/api/v1/query/target?q=" + PercentEncode(b)),
                          "query string");
    ExpectStoredOrRefused(Do("GET", "/api/v1/projects/" + PercentEncode(b)),
                          "path");
  }
  // A NUL inside a JSON string is legal JSON: a name refuses it, content keeps it or refuses it.
  EXPECT_EQ(Do("POST", "/api/v1/projects", R"({"name":"a\u0000b"})").status, 400);
  HttpResp nul = Do("POST", "/api/v1/projects/target/documents",
                    R"({"content":"before\u0000after","source":"nul.txt"})");
  ExpectStoredOrRefused(nul, "NUL in content");
  // Raw bytes that are not text at all, sent as a text document.
  static constexpr char kBinary[] = "\x00\x01\xff\xfe garbage \x80";
  HttpResp binary = Call(*client_, "POST", "/api/v1/projects/target/documents", kE2eAdminToken,
                         std::string(kBinary, sizeof(kBinary) - 1), "text/plain");
  ExpectStoredOrRefused(binary, "binary as text/plain");
  EXPECT_EQ(Do("GET", "/api/v1/projects").body["projects"].size(), 1u);
  ExpectUnharmed();
}

TEST_F(HostileInputTest, JsonBombsAndAbsurdNumbersAreRefused) {
  const std::vector<std::string> bodies = {
      std::string(200000, '['),                                        // unterminated nesting
      "{\"query\":" + std::string(100000, '[') + std::string(100000, ']') + "}",
      "{\"query\":\"x\",\"top_k\":1e400}",
      "{\"query\":\"x\",\"top_k\":-9223372036854775809}",
      "{\"query\":\"x\",\"top_k\":18446744073709551616}",
      "{\"query\":\"x\",\"alpha\":NaN}",
      "{\"query\":\"x\",\"offset\":-1}",
      "{\"query\":\"x\",\"filters\":" + std::string(5000, '{') + "}",
      "{\"query\":\"x\"" + std::string(10, ',') + "}",
      "[]",
      "null",
      "\"a string\"",
  };
  for (const std::string& b : bodies) {
    HttpResp r = Do("POST", "/api/v1/projects/target/query", b);
    EXPECT_EQ(r.status / 100, 4) << b.substr(0, 60) << ": " << r.raw.substr(0, 200);
    EXPECT_TRUE(r.body.is_object() && r.body.contains("error")) << b.substr(0, 60);
  }
  // A wide but shallow object within the body limit: parsed or refused, quickly, no crash.
  std::string wide = "{\"content\":\"wide\",\"source\":\"wide.txt\",\"metadata\":{";
  for (int i = 0; i < 50000; ++i) wide += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":1";
  wide += "}}";
  ExpectStoredOrRefused(Do("POST", "/api/v1/projects/target/documents", wide), "wide metadata");
  // A batch bomb: more documents than the batch limit.
  json many = {{"documents", json::array()}};
  for (int i = 0; i < 1001; ++i) many["documents"].push_back({{"content", "d"}});
  HttpResp batch = Do("POST", "/api/v1/projects/target/documents", many.dump());
  EXPECT_EQ(batch.status, 400) << batch.raw.substr(0, 200);
  ExpectUnharmed();
}

}  // namespace
}  // namespace kb::testing
