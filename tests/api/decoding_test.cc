// Request decoding is where untrusted bytes first meet our types; these tests pin the rules in
// request_decoding.h (field-named errors, ranges, depth limit, no exceptions).
#include <gtest/gtest.h>

#include <string>

#include "api/request_decoding.h"

namespace kb::api {
namespace {

using nlohmann::json;

json Parse(const std::string& s) {
  auto r = ParseJsonObject(s);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : json::object();
}

TEST(DecodeTest, MalformedJsonIsInvalidArgument) {
  for (const char* body : {"", "   ", "{", "{\"a\":}", "[1,2]", "42", "\"x\"", "{} extra"}) {
    auto r = ParseJsonObject(body);
    EXPECT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << body;
  }
}

TEST(DecodeTest, InvalidUtf8InStringIsRejectedNotThrown) {
  std::string body = "{\"query\":\"a\xff\xfe b\"}";
  auto r = ParseJsonObject(body);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

TEST(DecodeTest, DeepNestingIsRejectedBeforeParsing) {
  std::string bomb = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto r = ParseJsonObject(bomb);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested"), std::string::npos);
  // Brackets inside strings do not count.
  std::string fine = "{\"a\":\"" + std::string(1000, '[') + "\"}";
  EXPECT_TRUE(ParseJsonObject(fine).ok());
  EXPECT_TRUE(CheckJsonDepth("[[[]]]", 3).ok());
  EXPECT_FALSE(CheckJsonDepth("[[[[]]]]", 3).ok());
  // An escaped quote does not end a string.
  EXPECT_TRUE(CheckJsonDepth(R"({"a":"\"[[[[[["})", 2).ok());
}

TEST(DecodeTest, WrongTypeNamesTheField) {
  auto q = DecodeQueryBody(Parse(R"({"query":"x","top_k":"5"})"));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), Code::kInvalidArgument);
  EXPECT_NE(q.status().message().find("field 'top_k' must be an integer"), std::string::npos)
      << q.status().message();
  auto q2 = DecodeQueryBody(Parse(R"({"query":"x","top_k":5.5})"));
  EXPECT_NE(q2.status().message().find("'top_k'"), std::string::npos);
  auto p = DecodeCreateProject(Parse(R"({"name":"ok","metadata":[1]})"));
  EXPECT_NE(p.status().message().find("field 'metadata' must be an object"), std::string::npos);
  auto d = DecodeIngestBody(Parse(R"({"content":5})"));
  EXPECT_NE(d.status().message().find("field 'content' must be a string"), std::string::npos);
}

TEST(DecodeTest, QueryRanges) {
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"query":"x","top_k":0})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"query":"x","top_k":101})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"query":"x","top_k":99999999999999999999})")).ok());
  EXPECT_TRUE(DecodeQueryBody(Parse(R"({"query":"x","top_k":100})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"query":"x","alpha":1.5})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"query":"x","alpha":-0.1})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"query":"x","offset":-1})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"query":""})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"query":"   "})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"query":"x","mode":"fuzzy"})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"query":"x","fusion":"max"})")).ok());
  json long_q = {{"query", std::string(kMaxQueryBytes + 1, 'a')}};
  auto r = DecodeQueryBody(long_q);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("longer"), std::string::npos);
}

TEST(DecodeTest, QueryPagingRangesComeFromSearchAndNameTheField) {
  // One range for every path a query takes (search/query.h): offset stops at the service's
  // deepest page in both forms, and the message names the field as the form calls it.
  auto body = DecodeQueryBody(Parse(R"({"query":"x","offset":10001})"));
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().message(), "field 'offset' must be between 0 and 10000");
  EXPECT_TRUE(DecodeQueryBody(Parse(R"({"query":"x","offset":10000})")).ok());
  auto top_k = DecodeQueryBody(Parse(R"({"query":"x","top_k":101})"));
  EXPECT_EQ(top_k.status().message(), "field 'top_k' must be between 1 and 100");
  auto params = DecodeQueryParams({{"q", "x"}, {"offset", "10001"}});
  ASSERT_FALSE(params.ok());
  EXPECT_EQ(params.status().message(), "parameter 'offset' must be between 0 and 10000");
  EXPECT_EQ(DecodeQueryParams({{"q", "x"}, {"top_k", "0"}}).status().message(),
            "parameter 'top_k' must be between 1 and 100");
}

TEST(DecodeTest, QueryBodyFields) {
  auto r = DecodeQueryBody(Parse(
      R"({"q":"hello","top_k":7,"offset":2,"mode":"keyword","alpha":0.25,"fusion":"rrf",
          "filters":{"lang":"en"},"use_cache":false})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->text, "hello");
  EXPECT_EQ(r->top_k, 7);
  EXPECT_EQ(r->offset, 2);
  EXPECT_EQ(r->mode, SearchMode::kKeyword);
  EXPECT_EQ(r->fusion, FusionMethod::kRrf);
  EXPECT_DOUBLE_EQ(r->alpha, 0.25);
  EXPECT_EQ(json::parse(r->filters_json), json({{"lang", "en"}}));
  EXPECT_FALSE(r->use_cache);
  auto v = DecodeQueryBody(Parse(R"({"vector":[0.1,0.2,0.3],"mode":"vector"})"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->vector.size(), 3u);
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"vector":[0.1,"x"]})")).ok());
  EXPECT_FALSE(DecodeQueryBody(Parse(R"({"vector":[1e300]})")).ok());
}

TEST(DecodeTest, QueryParams) {
  QueryParams p = {{"q", "hello"}, {"top_k", "5"}, {"mode", "vector"}, {"alpha", "0.5"}};
  auto r = DecodeQueryParams(p);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->top_k, 5);
  EXPECT_EQ(r->mode, SearchMode::kVector);
  EXPECT_FALSE(DecodeQueryParams({{"q", "x"}, {"top_k", "5x"}}).ok());
  EXPECT_FALSE(DecodeQueryParams({{"q", "x"}, {"top_k", "0"}}).ok());
  EXPECT_FALSE(DecodeQueryParams({{"q", "x"}, {"alpha", "nan"}}).ok());
  EXPECT_FALSE(DecodeQueryParams({{"q", "x"}, {"alpha", "2"}}).ok());
  EXPECT_FALSE(DecodeQueryParams({{"top_k", "3"}}).ok());
  EXPECT_FALSE(DecodeQueryParams({{"q", "x"}, {"filters", "[1]"}}).ok());
  EXPECT_TRUE(DecodeQueryParams({{"q", "x"}, {"filters", R"({"a":1})"}}).ok());
}

TEST(DecodeTest, CreateProjectValidatesName) {
  EXPECT_TRUE(DecodeCreateProject(Parse(R"({"name":"My project_1-2"})")).ok());
  for (const char* bad : {R"({"name":""})", R"({"name":"a/b"})", R"({"name":"a\u0001b"})",
                          R"({"name":"..\\x"})", R"({})", R"({"name":5})"}) {
    auto r = DecodeCreateProject(Parse(bad));
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  json long_name = {{"name", std::string(101, 'a')}};
  EXPECT_FALSE(DecodeCreateProject(long_name).ok());
  auto full = DecodeCreateProject(Parse(
      R"({"name":"p","description":"d","metadata":{"k":1},
          "embedder":{"kind":"external","dimension":4},"chunk_size":500,"chunk_overlap":50})"));
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->embedder.kind, "external");
  EXPECT_EQ(full->embedder.dimension, 4);
  EXPECT_EQ(full->chunk_size, 500);
  EXPECT_EQ(full->chunk_overlap, 50);
  EXPECT_FALSE(DecodeCreateProject(Parse(R"({"name":"p","embedder":{"dimension":"4"}})")).ok());
}

TEST(DecodeTest, UpdateProjectNeedsAField) {
  EXPECT_FALSE(DecodeUpdateProject(Parse("{}")).ok());
  EXPECT_TRUE(DecodeUpdateProject(Parse(R"({"description":"x"})")).ok());
  EXPECT_FALSE(DecodeUpdateProject(Parse(R"({"embedder":{"kind":"openai"}})")).ok());
}

TEST(DecodeTest, IngestForms) {
  auto one = DecodeIngestBody(Parse(R"({"content":"hi","title":"T","metadata":{"a":"b"}})"));
  ASSERT_TRUE(one.ok());
  EXPECT_FALSE(one->batch);
  ASSERT_EQ(one->items.size(), 1u);
  EXPECT_EQ(one->items[0].request.content, "hi");
  EXPECT_EQ(one->items[0].request.declared_mime, "text/plain");
  EXPECT_EQ(json::parse(one->items[0].request.metadata_json), json({{"a", "b"}}));

  auto b64 =
      DecodeIngestBody(Parse(R"({"content_base64":"aGVsbG8=","content_type":"text/plain"})"));
  ASSERT_TRUE(b64.ok());
  EXPECT_EQ(b64->items[0].request.content, "hello");
  EXPECT_FALSE(DecodeIngestBody(Parse(R"({"content_base64":"***"})")).ok());
  EXPECT_FALSE(DecodeIngestBody(Parse(R"({"content":"a","content_base64":"YQ=="})")).ok());
  EXPECT_FALSE(DecodeIngestBody(Parse(R"({"title":"no content"})")).ok());

  auto batch = DecodeIngestBody(Parse(R"({"documents":[{"content":"a"},{"content":7},"x"]})"));
  ASSERT_TRUE(batch.ok());
  EXPECT_TRUE(batch->batch);
  ASSERT_EQ(batch->items.size(), 3u);
  EXPECT_TRUE(batch->items[0].status.ok());
  EXPECT_FALSE(batch->items[1].status.ok());
  EXPECT_FALSE(batch->items[2].status.ok());
  EXPECT_FALSE(DecodeIngestBody(Parse(R"({"documents":[]})")).ok());
  EXPECT_FALSE(DecodeIngestBody(Parse(R"({"documents":{}})")).ok());

  auto byo = DecodeIngestBody(Parse(
      R"({"title":"v","chunks":[{"text":"a","embedding":[1,0]},{"text":"b","embedding":[0,1]}]})"));
  ASSERT_TRUE(byo.ok()) << byo.status().ToString();
  ASSERT_EQ(byo->items[0].request.chunks.size(), 2u);
  EXPECT_EQ(byo->items[0].request.chunks[1].embedding, (std::vector<float>{0, 1}));
  EXPECT_FALSE(DecodeIngestBody(Parse(R"({"chunks":[{"embedding":[1]}]})")).ok());
  EXPECT_FALSE(DecodeIngestBody(Parse(R"({"chunks":[]})")).ok());
  EXPECT_FALSE(DecodeIngestBody(Parse(R"({"title":"a\u0000b","content":"x"})")).ok());
}

TEST(DecodeTest, PageAndChangesParams) {
  auto p = DecodePageParams({{"limit", "10"}, {"offset", "20"}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->limit, 10);
  EXPECT_EQ(p->offset, 20);
  EXPECT_FALSE(DecodePageParams({{"limit", "0"}}).ok());
  EXPECT_FALSE(DecodePageParams({{"limit", std::to_string(kMaxListLimit + 1)}}).ok());
  EXPECT_FALSE(DecodePageParams({{"offset", "-1"}}).ok());
  EXPECT_FALSE(DecodeChangesParams({}).ok());
  EXPECT_FALSE(DecodeChangesParams({{"since", "yesterday"}}).ok());
  auto c = DecodeChangesParams({{"since", "2026-01-02T03:04:05Z"}, {"project", "p"}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->project, "p");
  EXPECT_GT(c->since_ms, 0);
}

TEST(DecodeTest, CreateKey) {
  auto k = DecodeCreateKey(
      Parse(R"({"name":"ci","scope":"write","projects":["a"],"expires_in_days":3})"));
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->scope, KeyScope::kWrite);
  EXPECT_EQ(k->projects, std::vector<std::string>{"a"});
  EXPECT_EQ(k->expires_in_days, 3);
  EXPECT_FALSE(DecodeCreateKey(Parse(R"({"name":"ci","scope":"root"})")).ok());
  EXPECT_FALSE(DecodeCreateKey(Parse(R"({"scope":"read"})")).ok());
  EXPECT_FALSE(DecodeCreateKey(Parse(R"({"name":"ci","scope":"read","expires_in_days":0})")).ok());
  EXPECT_FALSE(DecodeCreateKey(Parse(R"({"name":"ci","scope":"read","projects":"a"})")).ok());
  auto v2 = DecodeV2CreateKey(Parse(R"({"name":"x","scopes":["read","write"]})"));
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->scope, KeyScope::kWrite);
}

TEST(DecodeTest, CreateKeyAcceptsScopesListAndAnExpiryInstant) {
  auto k = DecodeCreateKey(Parse(
      R"({"name":"ci","scopes":["read","admin"],"expires_at":"2030-01-01T00:00:00Z"})"));
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->scope, KeyScope::kAdmin);
  EXPECT_EQ(k->expires_at_ms, ParseIso8601("2030-01-01T00:00:00Z"));
  EXPECT_FALSE(DecodeCreateKey(Parse(R"({"name":"ci"})")).ok());
  EXPECT_FALSE(DecodeCreateKey(Parse(R"({"name":"ci","scopes":["root"]})")).ok());
  EXPECT_FALSE(DecodeCreateKey(Parse(R"({"name":"ci","scopes":"read"})")).ok());
  EXPECT_FALSE(DecodeCreateKey(Parse(R"({"name":"ci","scope":"read","expires_at":"soon"})")).ok());
  EXPECT_FALSE(DecodeCreateKey(Parse(
      R"({"name":"ci","scope":"read","expires_at":"2030-01-01","expires_in_days":2})")).ok());
}

TEST(DecodeTest, LifecycleBodies) {
  auto r = DecodeRestoreDeleted(
      Parse(R"({"project":"p","before":"2026-11-26T10:00:00Z","document_ids":["a","b"]})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->project, "p");
  EXPECT_EQ(r->before_ms, ParseIso8601("2026-11-26T10:00:00Z"));
  EXPECT_EQ(r->document_ids, (std::vector<std::string>{"a", "b"}));
  for (const char* bad :
       {R"({"project":"p"})", R"({"project":"p","document_ids":[]})", R"({"before":"2026-01-01"})",
        R"({"project":7,"before":"2026-01-01"})", R"({"project":"p","before":"' OR 1=1 --"})",
        R"({"project":"p","document_ids":[1]})", R"({"project":"p","document_ids":"a"})"}) {
    auto d = DecodeRestoreDeleted(Parse(bad));
    EXPECT_EQ(d.status().code(), Code::kInvalidArgument) << bad;
  }
  json many = {{"project", "p"}, {"document_ids", json::array()}};
  for (size_t i = 0; i <= kMaxRestoreDocumentIds; ++i) many["document_ids"].push_back("x");
  EXPECT_EQ(DecodeRestoreDeleted(many).status().code(), Code::kInvalidArgument);
  // SQL-looking ids are just strings: stored or compared literally, never interpreted.
  EXPECT_TRUE(DecodeRestoreDeleted(
                  Parse(R"({"project":"p'; DROP TABLE documents; --","document_ids":["' OR 1=1"]})"))
                  .ok());

  EXPECT_EQ(*DecodeRotateKey(""), 0);
  EXPECT_EQ(*DecodeRotateKey(R"({"overlap_seconds":60})"), 60);
  EXPECT_FALSE(DecodeRotateKey(R"({"overlap_seconds":-1})").ok());
  EXPECT_FALSE(DecodeRotateKey(R"({"overlap_seconds":86401})").ok());
  EXPECT_FALSE(DecodeRotateKey(R"({"overlap_seconds":"60"})").ok());
  EXPECT_FALSE(DecodeRotateKey("[[[[[[[[[[").ok());
  EXPECT_FALSE(*DecodeRevokeAll(""));
  EXPECT_TRUE(*DecodeRevokeAll(R"({"include_admin":true})"));
  EXPECT_FALSE(DecodeRevokeAll(R"({"include_admin":"yes"})").ok());
  EXPECT_FALSE(DecodeRevokeAll(std::string(100000, '[')).ok());
}

TEST(DecodeTest, V2Shapes) {
  auto p = DecodeV2CreateProject(Parse(R"({"name":"p","embedding_model":"all-MiniLM-L6-v2"})"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(json::parse(p->metadata_json)["embedding_model"], "all-MiniLM-L6-v2");
  auto q = DecodeV2Query(Parse(R"({"query":"x","limit":3,"use_cache":false})"));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->top_k, 3);
  EXPECT_FALSE(q->use_cache);
  EXPECT_FALSE(DecodeV2Query(Parse(R"({"query":"x","limit":0})")).ok());
  EXPECT_TRUE(DecodeV2Ingest(Parse(R"({"content":"x"})")).ok());
  EXPECT_TRUE(DecodeV2Ingest(Parse(R"({"file_path":"a.md"})")).ok());
  EXPECT_FALSE(DecodeV2Ingest(Parse(R"({"content":"x","file_path":"a.md"})")).ok());
  EXPECT_FALSE(DecodeV2Ingest(Parse(R"({})")).ok());
}

}  // namespace
}  // namespace kb::api
