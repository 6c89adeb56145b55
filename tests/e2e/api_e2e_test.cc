// The REST API contract against the real `knowledgebeast serve` process: every route with its
// auth rules (a matrix of routes x kinds of key, exact statuses), bad input, restart
// persistence and /metrics validity (promtool, when installed).
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>
#include <filesystem>
#include <chrono>
#include <fstream>
#include <set>

#include "common/clock.h"
#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

using nlohmann::json;

class E2eApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteTestFile(dir_.Sub("ingest/guide.md"), "# Guide\n\nBadgers dig burrows called setts.\n");
    server_ = std::make_unique<ServerProcess>(
        dir_.Sub("data"), dir_.Sub("server.log"),
        std::vector<std::string>{"--ingest-root", dir_.Sub("ingest"), "--max-body-bytes",
                                 "1048576"});
    ASSERT_TRUE(server_->Start()) << server_->Log();
    client_ = server_->Client();
  }
  void TearDown() override {
    if (server_) server_->Stop(SIGTERM);
  }

  HttpResp Do(const std::string& method, const std::string& path,
              const std::string& key = kE2eAdminToken, const std::string& body = "") {
    return Call(*client_, method, path, key, body);
  }
  std::string NewProject(const std::string& name) {
    HttpResp r = Do("POST", "/api/v1/projects", kE2eAdminToken, json{{"name", name}}.dump());
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.body.value("id", "");
  }
  json NewKey(const std::string& scope, const std::vector<std::string>& projects = {}) {
    HttpResp r =
        Do("POST", "/api/v1/admin/api-keys", kE2eAdminToken,
           json{{"name", "e2e " + scope}, {"scope", scope}, {"projects", projects}}.dump());
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.body;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<httplib::Client> client_;
};

enum Who { kNone, kUnknown, kRevoked, kExpired, kRead, kWrite, kOtherProject, kAdmin };
const char* WhoName(Who w) {
  static const char* names[] = {"no key",    "unknown key", "revoked key",
                                "expired key", "read key",  "write key",
                                "key for another project", "admin key"};
  return names[w];
}

struct RouteCase {
  std::string method;
  std::string path;
  std::string body;
  // Minimum scope: 0 = none (public), 1 read, 2 write, 3 admin.
  int scope;
  // 'p' = about project A (foreign-project keys get 403); 'g' = global route only keys for all
  // projects may use (403 for limited keys); 'l' = listing, filtered for limited keys (200).
  char kind;
  std::set<int> ok;  // the statuses an authorised caller gets
};

TEST_F(E2eApiTest, AuthMatrixOverEveryRoute) {
  const std::string a = NewProject("matrix-a");
  NewProject("matrix-b");
  const std::string d = NewProject("matrix-d");  // deleted by the admin column (runs last)
  const std::string e = NewProject("matrix-e");  // deleted through v2 by the admin column
  HttpResp doc = Do("POST", "/api/v1/projects/matrix-a/documents", kE2eAdminToken,
                    R"({"content":"Matrix document about herons.","source":"heron.txt"})");
  ASSERT_EQ(doc.status, 201) << doc.raw;
  const std::string doc_id = doc.body["document"]["id"];

  std::map<Who, std::string> keys;
  keys[kNone] = "";
  keys[kUnknown] = "kb_thisKeyDoesNotExist0000000000000000000000";
  json revoked = NewKey("admin");
  keys[kRevoked] = revoked["secret"];
  ASSERT_EQ(
      Do("DELETE", "/api/v1/admin/api-keys/" + revoked["key"]["id"].get<std::string>()).status,
      204);
  // An admin key that expires two seconds from now; the matrix starts once it has expired.
  const auto expires = std::chrono::system_clock::now() + std::chrono::seconds(2);
  const int64_t expires_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(expires.time_since_epoch()).count();
  HttpResp expiring = Do("POST", "/api/v1/admin/api-keys", kE2eAdminToken,
                         json{{"name", "e2e expiring"},
                              {"scopes", {"admin"}},
                              {"expires_at", FormatIso8601(expires_ms)}}
                             .dump());
  ASSERT_EQ(expiring.status, 201) << expiring.raw;
  keys[kExpired] = expiring.body["secret"];
  keys[kRead] = NewKey("read")["secret"];
  keys[kWrite] = NewKey("write")["secret"];
  // Admin scope but only project B: isolates the project restriction from the scope check.
  keys[kOtherProject] = NewKey("admin", {"matrix-b"})["secret"];
  keys[kAdmin] = kE2eAdminToken;

  const std::string pa = "/api/v1/projects/matrix-a";
  const std::string v2a = "/api/v2/projects/" + a;
  const std::vector<RouteCase> cases = {
      {"GET", "/health", "", 0, 'l', {200}},
      {"GET", "/ready", "", 0, 'l', {200}},
      {"GET", "/metrics", "", 0, 'l', {200}},
      {"GET", "/api/v1/projects", "", 1, 'l', {200}},
      {"POST", "/api/v1/projects", R"({"name":""})", 2, 'g', {400}},
      {"GET", pa, "", 1, 'p', {200}},
      {"PATCH", pa, R"({"description":"patched"})", 2, 'p', {200}},
      {"DELETE", "/api/v1/projects/" + d, "", 3, 'p', {204}},
      {"POST",
       pa + "/documents",
       R"({"content":"Matrix write.","source":"w.txt"})",
       2,
       'p',
       {200, 201}},
      {"GET", pa + "/documents?limit=5", "", 1, 'p', {200}},
      {"GET", pa + "/documents/" + doc_id, "", 1, 'p', {200}},
      {"DELETE", pa + "/documents/not-a-document", "", 2, 'p', {404}},
      {"GET", "/api/v1/query/matrix-a?q=herons", "", 1, 'p', {200}},
      {"POST", pa + "/query", R"({"query":"herons"})", 1, 'p', {200}},
      {"GET", "/api/v1/documents?since=2000-01-01T00:00:00Z", "", 1, 'l', {200}},
      {"GET", "/api/v1/stats", "", 1, 'l', {200}},
      {"POST", "/api/v1/admin/api-keys", R"({"name":"m","scope":"read"})", 3, 'g', {201}},
      {"GET", "/api/v1/admin/api-keys", "", 3, 'g', {200}},
      {"DELETE", "/api/v1/admin/api-keys/key_0000000000000000", "", 3, 'g', {404}},
      {"POST", "/api/v1/admin/check", "", 3, 'g', {200}},
      {"POST", "/api/v1/admin/backups", R"({"tags":["matrix"]})", 3, 'g', {201}},
      {"GET", "/api/v1/admin/backups", "", 3, 'g', {200}},
      {"POST", "/api/v1/admin/backups/verify", R"({"snapshots":["20000101T000000Z-00000000"]})",
       3, 'g', {404}},
      {"POST", "/api/v1/admin/projects/matrix-a/restore",
       R"({"snapshot":"20000101T000000Z-00000000"})", 3, 'g', {404}},
      {"GET", "/api/v1/admin/lockdown", "", 3, 'g', {200}},
      {"POST", "/api/v1/admin/lockdown", R"({"mode":"off"})", 3, 'g', {200}},
      {"GET", "/api/v1/admin/ip-rules", "", 3, 'g', {200}},
      {"PUT", "/api/v1/admin/ip-rules", R"({"deny":["203.0.113.0/24"]})", 3, 'g', {200}},
      {"GET", "/api/v1/admin/audit?limit=5", "", 3, 'g', {200}},
      {"GET", "/api/v1/admin/posture", "", 3, 'g', {200}},
      {"POST", "/api/v2/projects", R"({"name":""})", 2, 'g', {400}},
      {"GET", "/api/v2/projects", "", 1, 'l', {200}},
      {"GET", v2a, "", 1, 'p', {200}},
      {"PUT", v2a, R"({"description":"v2"})", 2, 'p', {200}},
      {"DELETE", "/api/v2/projects/" + e, "", 3, 'p', {200}},
      {"POST", v2a + "/query", R"({"query":"herons","limit":3})", 1, 'p', {200}},
      {"POST", v2a + "/ingest", R"({"content":"v2 matrix text"})", 2, 'p', {200}},
      {"POST", v2a + "/api-keys", R"({"name":"v2 key"})", 3, 'p', {201}},
      {"GET", v2a + "/api-keys", "", 3, 'p', {200}},
      {"DELETE", v2a + "/api-keys/key_0000000000000000", "", 3, 'p', {404}},
      {"POST", "/api/v1/admin/restore", R"({"project":"matrix-a","document_ids":["nope"]})", 3,
       'g', {200}},
      {"GET", "/api/v1/admin/deleted?project=matrix-a", "", 3, 'g', {200}},
      {"POST", "/api/v1/admin/api-keys/key_0000000000000000/rotate", "", 3, 'g', {404}},
      {"POST", "/api/v1/admin/api-keys/key_0000000000000000/reinstate", "", 3, 'g', {404}},
      // MCP: any key may connect; each tool checks its own scope (tests/e2e/mcp_e2e_test.cc).
      {"POST", "/mcp", R"({"jsonrpc":"2.0","id":1,"method":"ping"})", 1, 'l', {200}},
      // Last: for the admin column it revokes every key but the caller's.
      {"POST", "/api/v1/admin/api-keys/revoke-all", "{}", 3, 'g', {200}},
  };
  while (std::chrono::system_clock::now() < expires + std::chrono::milliseconds(100)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int checked = 0;
  for (Who who : {kNone, kUnknown, kRevoked, kExpired, kRead, kWrite, kOtherProject, kAdmin}) {
    for (const RouteCase& c : cases) {
      std::set<int> expected;
      if (c.scope == 0) {
        expected = c.ok;
      } else if (who == kNone || who == kUnknown || who == kRevoked || who == kExpired) {
        expected = {401};
      } else if (who == kOtherProject) {
        expected = c.kind == 'l' ? c.ok : std::set<int>{403};
      } else {
        const int have = who == kRead ? 1 : who == kWrite ? 2 : 3;
        expected = have >= c.scope ? c.ok : std::set<int>{403};
      }
      HttpResp r = Do(c.method, c.path, keys[who], c.body);
      EXPECT_TRUE(expected.count(r.status)) << c.method << " " << c.path << " with " << WhoName(who)
                                            << ": got " << r.status << " " << r.raw;
      if (r.status >= 400) {
        EXPECT_TRUE(r.body.is_object() && r.body["error"].contains("code"))
            << c.method << " " << c.path << ": error body " << r.raw;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 8 * static_cast<int>(cases.size()));
  // A limited key works on its own project.
  const std::string own = NewKey("write", {"matrix-a"})["secret"];
  EXPECT_EQ(Do("GET", pa, own).status, 200);
  EXPECT_EQ(Do("GET", "/api/v1/projects/matrix-b", own).status, 403);
  EXPECT_EQ(Do("GET", "/api/v1/projects", own).body["projects"].size(), 1u);
}

TEST_F(E2eApiTest, BadInputGetsClearErrors) {
  NewProject("bad");
  auto expect = [&](const std::string& method, const std::string& path, const std::string& body,
                    int status, const std::string& code, const std::string& needle = "") {
    HttpResp r = Do(method, path, kE2eAdminToken, body);
    EXPECT_EQ(r.status, status) << method << " " << path << " " << body.substr(0, 80) << " -> "
                                << r.raw;
    ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << r.raw;
    EXPECT_EQ(r.body["error"]["code"], code) << r.raw;
    if (!needle.empty()) {
      EXPECT_NE(r.body["error"]["message"].get<std::string>().find(needle), std::string::npos)
          << r.raw;
    }
  };
  expect("POST", "/api/v1/projects", "{not json", 400, "invalid_argument", "malformed JSON");
  expect("POST", "/api/v1/projects", R"({"name":7})", 400, "invalid_argument", "field 'name'");
  expect("POST", "/api/v1/projects", R"({"name":"a/b"})", 400, "invalid_argument");
  expect("POST", "/api/v1/projects", R"({"name":"tab\there"})", 400, "invalid_argument");
  expect("POST", "/api/v1/projects", R"({"name":"bad"})", 409, "already_exists");
  expect("GET", "/api/v1/projects/ghost", "", 404, "not_found");
  expect("GET", "/api/v1/projects/bad/documents/ghost", "", 404, "not_found");
  expect("POST", "/api/v1/projects/bad/query", R"({"query":""})", 400, "invalid_argument", "empty");
  expect("POST", "/api/v1/projects/bad/query", json{{"query", std::string(5000, 'x')}}.dump(), 400,
         "invalid_argument", "longer");
  expect("POST", "/api/v1/projects/bad/query", R"({"query":"x","top_k":1000})", 400,
         "invalid_argument", "top_k");
  expect("POST", "/api/v1/projects/bad/query", R"({"query":"x","top_k":"5"})", 400,
         "invalid_argument", "field 'top_k' must be an integer");
  expect("GET", "/api/v1/query/bad?q=x&alpha=3", "", 400, "invalid_argument", "alpha");
  expect("POST", "/api/v1/projects/bad/query", std::string("{\"query\":\"\xc3\x28\"}"), 400,
         "invalid_argument");
  expect("POST", "/api/v1/projects/bad/query",
         "{\"a\":" + std::string(5000, '[') + std::string(5000, ']') + "}", 400, "invalid_argument",
         "nested");
  expect("POST", "/api/v1/projects/bad/documents",
         json{{"content", std::string(2 * 1024 * 1024, 'a')}}.dump(), 413, "payload_too_large");
  expect("POST", "/api/v1/projects/bad/documents",
         R"({"content_base64":"iVBORw0KGgoAAAANSUhEUg==","content_type":"image/png"})", 415,
         "unsupported_media_type");
  expect(
      "POST", "/api/v1/projects/bad/documents",
      R"({"content_base64":"JVBERi0xLjQKZ2FyYmFnZQ==","content_type":"application/pdf","source":"x.pdf"})",
      422, "unprocessable");
  expect("GET", "/api/v1/documents?since=last-week", "", 400, "invalid_argument", "since");
  expect("GET", "/api/v1/nowhere", "", 404, "not_found");
  expect("DELETE", "/api/v1/stats", "", 405, "method_not_allowed");
  // Nothing half-ingested by the failures above.
  EXPECT_EQ(Do("GET", "/api/v1/projects/bad/documents").body["total"], 0);
}

TEST_F(E2eApiTest, EveryRouteWorks) {
  const std::string id = NewProject("routes");
  // Documents: JSON, batch, multipart, bring-your-own vectors.
  HttpResp one =
      Do("POST", "/api/v1/projects/routes/documents", kE2eAdminToken,
         R"({"content":"# Rivers\n\nThe Danube flows through ten countries.","title":"Rivers",
                        "source":"rivers.md","metadata":{"topic":"geo"}})");
  ASSERT_EQ(one.status, 201) << one.raw;
  HttpResp batch = Do("POST", "/api/v1/projects/routes/documents", kE2eAdminToken,
                      R"({"documents":[{"content":"Mountains are tall.","source":"m.txt"},
                                       {"content":"Deserts are dry.","source":"d.txt"}]})");
  ASSERT_EQ(batch.status, 200) << batch.raw;
  httplib::MultipartFormDataItems files = {
      {"file", "Lakes hold fresh water.", "lakes.txt", "text/plain"}};
  auto up = client_->Post("/api/v1/projects/routes/documents",
                          {{"Authorization", std::string("Bearer ") + kE2eAdminToken}}, files);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->status, 201) << up->body;
  HttpResp list = Do("GET", "/api/v1/projects/routes/documents?limit=2&offset=1");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body["total"], 4);
  EXPECT_EQ(list.body["documents"].size(), 2u);
  HttpResp q = Do("GET", "/api/v1/query/routes?q=Danube&top_k=3&mode=hybrid&fusion=rrf");
  ASSERT_EQ(q.status, 200) << q.raw;
  ASSERT_GE(q.body["count"].get<int>(), 1);
  EXPECT_EQ(q.body["results"][0]["title"], "Rivers");
  EXPECT_EQ(q.body["results"][0]["metadata"]["topic"], "geo");
  HttpResp fq = Do("POST", "/api/v1/projects/routes/query", kE2eAdminToken,
                   R"({"query":"water","filters":{"topic":"geo"},"top_k":10})");
  ASSERT_EQ(fq.status, 200) << fq.raw;
  for (const auto& h : fq.body["results"]) EXPECT_EQ(h["metadata"]["topic"], "geo");
  HttpResp since = Do("GET", "/api/v1/documents?since=2000-01-01&project=routes&limit=2");
  ASSERT_EQ(since.status, 200);
  EXPECT_EQ(since.body["documents"].size(), 2u);
  HttpResp stats = Do("GET", "/api/v1/stats");
  EXPECT_EQ(stats.body["documents"], 4);
  HttpResp v2 = Do("POST", "/api/v2/projects/" + id + "/ingest", kE2eAdminToken,
                   R"({"file_path":"guide.md"})");
  EXPECT_EQ(v2.status, 200) << v2.raw;
  HttpResp outside = Do("POST", "/api/v2/projects/" + id + "/ingest", kE2eAdminToken,
                        R"({"file_path":"../server.log"})");
  EXPECT_TRUE(outside.status == 400 || outside.status == 403 || outside.status == 404)
      << outside.raw;
  HttpResp v2q =
      Do("POST", "/api/v2/projects/" + id + "/query", kE2eAdminToken, R"({"query":"badgers"})");
  ASSERT_EQ(v2q.status, 200);
  EXPECT_GE(v2q.body["count"].get<int>(), 1);
  HttpResp dup = Do("POST", "/api/v2/projects", kE2eAdminToken, R"({"name":"routes"})");
  EXPECT_EQ(dup.status, 400);
  EXPECT_NE(dup.raw.find("already exists"), std::string::npos);
  HttpResp health = Do("GET", "/health", "");
  EXPECT_EQ(health.body["status"], "healthy");
}

json Normalised(json query_response) {
  query_response.erase("took_ms");
  query_response.erase("cached");
  return query_response;
}

TEST_F(E2eApiTest, DataAndSearchResultsSurviveCleanRestart) {
  NewProject("persist");
  for (int i = 0; i < 20; ++i) {
    HttpResp r = Do("POST", "/api/v1/projects/persist/documents", kE2eAdminToken,
                    json{{"content", "Document " + std::to_string(i) + " mentions comet " +
                                         std::to_string(i * 7) + " and the orbit of planets."},
                         {"source", "doc" + std::to_string(i) + ".txt"}}
                        .dump());
    ASSERT_EQ(r.status, 201) << r.raw;
  }
  const std::string q1 = R"({"query":"comet orbit","top_k":10,"use_cache":false})";
  const std::string q2 = R"({"query":"planets","top_k":10,"mode":"vector","use_cache":false})";
  json before_docs = Do("GET", "/api/v1/projects/persist/documents?limit=100").body;
  json before1 = Normalised(Do("POST", "/api/v1/projects/persist/query", kE2eAdminToken, q1).body);
  json before2 = Normalised(Do("POST", "/api/v1/projects/persist/query", kE2eAdminToken, q2).body);
  ASSERT_EQ(before1["count"], 10);

  server_->Stop(SIGTERM);
  ASSERT_TRUE(server_->Start()) << server_->Log();
  client_ = server_->Client();
  EXPECT_EQ(Do("GET", "/api/v1/projects/persist/documents?limit=100").body, before_docs);
  EXPECT_EQ(Normalised(Do("POST", "/api/v1/projects/persist/query", kE2eAdminToken, q1).body),
            before1);
  EXPECT_EQ(Normalised(Do("POST", "/api/v1/projects/persist/query", kE2eAdminToken, q2).body),
            before2);
  // The admin token still works (stored as a hash) and no second admin key appeared.
  HttpResp keys = Do("GET", "/api/v1/admin/api-keys");
  ASSERT_EQ(keys.status, 200);
  int admins = 0;
  for (const auto& k : keys.body["keys"]) admins += k["scope"] == "admin";
  EXPECT_EQ(admins, 1);
}

// The value of an unlabelled metric in an exposition, or -1.
double MetricValue(const std::string& exposition, const std::string& name) {
  const std::string prefix = "\n" + name + " ";
  size_t at = exposition.find(prefix);
  if (at == std::string::npos) return -1;
  return std::stod(exposition.substr(at + prefix.size()));
}

// The server checks its data directory right after start: a vector index damaged while it was
// stopped is rebuilt (and the check says so); one damaged while it runs is rebuilt by
// POST /api/v1/admin/check; search answers the same throughout.
TEST_F(E2eApiTest, DamagedVectorIndexIsRebuiltAtStartAndOnDemand) {
  const std::string id = NewProject("checked");
  for (int i = 0; i < 5; ++i) {
    HttpResp r = Do("POST", "/api/v1/projects/checked/documents", kE2eAdminToken,
                    json{{"content", "Note " + std::to_string(i) + " about herons and egrets " +
                                         std::to_string(i * 13)},
                         {"source", "n" + std::to_string(i) + ".txt"}}
                        .dump());
    ASSERT_EQ(r.status, 201) << r.raw;
  }
  const std::string q = R"({"query":"herons","top_k":5,"mode":"vector","use_cache":false})";
  const json before = Normalised(Do("POST", "/api/v1/projects/checked/query", kE2eAdminToken, q).body);
  ASSERT_EQ(before["count"], 5);
  server_->Stop(SIGTERM);

  const std::string index = dir_.Sub("data/projects/" + id + "/index");
  for (const auto& e : std::filesystem::directory_iterator(index)) {
    if (e.path().filename().string().rfind("graph-", 0) == 0) {
      std::filesystem::resize_file(e.path(), 200);
    }
  }
  ASSERT_TRUE(server_->Start()) << server_->Log();
  client_ = server_->Client();
  // The first check runs in the background right after readiness.
  std::string metrics;
  for (int i = 0; i < 200; ++i) {
    metrics = Do("GET", "/metrics", "").raw;
    if (MetricValue(metrics, "kb_integrity_checks_total") >= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(MetricValue(metrics, "kb_integrity_checks_total"), 1) << metrics;
  EXPECT_EQ(MetricValue(metrics, "kb_integrity_check_failures_total"), 1);
  EXPECT_EQ(MetricValue(metrics, "kb_index_rebuilds_total"), 1);
  EXPECT_GT(MetricValue(metrics, "kb_integrity_check_last_success_timestamp_seconds"), 1.7e9);
  HttpResp health = Do("GET", "/health", "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body["status"], "healthy") << health.raw;
  ASSERT_EQ(health.body["checks"]["integrity"]["repaired"].size(), 1u) << health.raw;
  EXPECT_NE(health.body["checks"]["integrity"]["repaired"][0].get<std::string>().find(
                "rebuilt from kb.db when the project was loaded: vector index graph file"),
            std::string::npos)
      << health.raw;
  EXPECT_EQ(Normalised(Do("POST", "/api/v1/projects/checked/query", kE2eAdminToken, q).body),
            before);

  // Damaged while the server runs: found and rebuilt on demand.
  std::filesystem::remove_all(index);
  HttpResp check = Do("POST", "/api/v1/admin/check");
  ASSERT_EQ(check.status, 200) << check.raw;
  EXPECT_EQ(check.body["status"], "ok");
  EXPECT_EQ(check.body["problems_found"], true);
  const json& vector_check = check.body["databases"][1]["checks"][6];
  EXPECT_EQ(vector_check["name"], "vector_index");
  EXPECT_EQ(vector_check["severity"], "degraded");
  EXPECT_EQ(vector_check["repaired"], true);
  EXPECT_EQ(vector_check["problem"], "saved index: no saved vector index in " + index +
                                         " (its manifest VECTOR_INDEX is missing)");
  HttpResp again = Do("POST", "/api/v1/admin/check");
  EXPECT_EQ(again.body["problems_found"], false) << again.raw;
  metrics = Do("GET", "/metrics", "").raw;
  EXPECT_EQ(MetricValue(metrics, "kb_integrity_checks_total"), 3);
  EXPECT_EQ(MetricValue(metrics, "kb_integrity_check_failures_total"), 2);
  EXPECT_EQ(MetricValue(metrics, "kb_index_rebuilds_total"), 2);
  EXPECT_EQ(Normalised(Do("POST", "/api/v1/projects/checked/query", kE2eAdminToken, q).body),
            before);
}

TEST_F(E2eApiTest, MetricsPassPromtool) {
  NewProject("metrics name-1");
  Do("GET", "/api/v1/projects");
  Do("GET", "/api/v1/query/ghost?q=x");
  HttpResp m = Do("GET", "/metrics", "");
  ASSERT_EQ(m.status, 200);
  for (const char* name :
       {"kb_http_requests_total", "kb_http_request_duration_seconds_bucket", "kb_documents",
        "kb_chunks", "kb_index_vectors", "kb_index_memory_bytes", "kb_ingest_documents_total",
        "kb_ingest_chunks_total", "kb_ingest_failures_total", "kb_queries_total",
        "kb_query_cache_hits_total", "kb_uptime_seconds", "kb_build_info",
        "kb_index_rebuilds_total", "kb_integrity_checks_total", "kb_integrity_check_failures_total",
        "kb_integrity_check_last_success_timestamp_seconds",
        "kb_integrity_check_duration_seconds"}) {
    EXPECT_NE(m.raw.find(name), std::string::npos) << name;
  }
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (apt-get install prometheus); exposition not validated";
  }
  const std::string path = dir_.Sub("metrics.txt");
  std::ofstream(path) << m.raw;
  const std::string cmd =
      "promtool check metrics < '" + path + "' > '" + dir_.Sub("promtool.out") + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream out(dir_.Sub("promtool.out"));
  std::string report((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << report << "\n" << m.raw;
}

}  // namespace
}  // namespace kb::testing
