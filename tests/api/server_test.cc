// The API over real HTTP: an ApiServer on a loopback ephemeral port in front of a real
// KnowledgeBase in a temp dir. Covers routing, auth, validation, headers and the v1/v2 shapes;
// tests/e2e repeats the contract against the real binary.
#include "api/server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "store/sqlite.h"
#include "test_util.h"

namespace kb {
namespace {

using nlohmann::json;

constexpr const char* kAdminToken = "test-admin-token-0123456789";

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KbOptions o;
    o.data_dir = dir_.Sub("data");
    o.ingest_root = dir_.Sub("ingest");
    testing::WriteTestFile(dir_.Sub("ingest/notes/a.md"), "# Notes\n\nThe quick brown fox.\n");
    testing::WriteTestFile(dir_.Sub("secret.txt"), "do not read");
    o.index_save_interval_ms = 0;
    auto kb = KnowledgeBase::Open(o);
    ASSERT_TRUE(kb.ok()) << kb.status().ToString();
    kb_ = std::move(kb).value();
    ASSERT_TRUE(kb_->keys().EnsureAdminKey(kAdminToken).ok());
    StartServer(ServerOptions{});
  }
  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    kb_.reset();
  }

  void StartServer(ServerOptions so) {
    if (server_) server_->Stop();
    so.port = 0;
    so.threads = 4;
    auto s = ApiServer::Start(kb_.get(), so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(30, 0);
  }

  httplib::Headers Auth(const std::string& key) {
    if (key.empty()) return {};
    return {{"Authorization", "Bearer " + key}};
  }

  struct Resp {
    int status = 0;
    json body;
    httplib::Headers headers;
    std::string raw;
  };
  Resp Wrap(const httplib::Result& r) {
    Resp out;
    if (!r) {
      ADD_FAILURE() << "no response: " << httplib::to_string(r.error());
      return out;
    }
    out.status = r->status;
    out.headers = r->headers;
    out.raw = r->body;
    out.body = json::parse(r->body, nullptr, false);
    return out;
  }
  Resp Get(const std::string& path, const std::string& key = kAdminToken) {
    return Wrap(client_->Get(path.c_str(), Auth(key)));
  }
  Resp Post(const std::string& path, const std::string& body, const std::string& key = kAdminToken,
            const std::string& type = "application/json") {
    return Wrap(client_->Post(path.c_str(), Auth(key), body, type.c_str()));
  }
  Resp Patch(const std::string& path, const std::string& body,
             const std::string& key = kAdminToken) {
    return Wrap(client_->Patch(path.c_str(), Auth(key), body, "application/json"));
  }
  Resp Put(const std::string& path, const std::string& body, const std::string& key = kAdminToken) {
    return Wrap(client_->Put(path.c_str(), Auth(key), body, "application/json"));
  }
  Resp Delete(const std::string& path, const std::string& key = kAdminToken) {
    return Wrap(client_->Delete(path.c_str(), Auth(key)));
  }

  std::string CreateProject(const std::string& name, const json& extra = json::object()) {
    json body = extra;
    body["name"] = name;
    Resp r = Post("/api/v1/projects", body.dump());
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.body.value("id", "");
  }
  std::string CreateKey(const std::string& scope, const std::vector<std::string>& projects = {}) {
    json body = {{"name", "k-" + scope}, {"scope", scope}, {"projects", projects}};
    Resp r = Post("/api/v1/admin/api-keys", body.dump());
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.body.value("secret", "");
  }

  testing::TempDir dir_;
  std::unique_ptr<KnowledgeBase> kb_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(ApiServerTest, HealthReadyAndMetricsNeedNoKey) {
  Resp h = Get("/health", "");
  EXPECT_EQ(h.status, 200) << h.raw;
  EXPECT_EQ(h.body["status"], "healthy");
  EXPECT_TRUE(h.body.contains("version"));
  EXPECT_TRUE(h.body.contains("uptime_seconds"));
  EXPECT_TRUE(h.body["checks"].is_object());
  Resp r = Get("/ready", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body["ready"], true);
  Resp l = Get("/livez", "");
  EXPECT_EQ(l.status, 200) << l.raw;
  EXPECT_EQ(l.body["alive"], true);
  EXPECT_TRUE(l.body.contains("uptime_seconds"));
  Resp m = Get("/metrics", "");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.raw.find("kb_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 1"),
            std::string::npos)
      << m.raw;
  EXPECT_NE(m.raw.find("kb_build_info{version="), std::string::npos);
  EXPECT_NE(m.raw.find("kb_uptime_seconds"), std::string::npos);
  // Memory, split honestly (issue 16): the process's own, and mapped file pages.
  for (const char* name :
       {"\nkb_process_resident_memory_bytes ", "\nkb_process_anonymous_memory_bytes ",
        "\nkb_process_file_mapped_memory_bytes "}) {
    const size_t at = m.raw.find(name);
    ASSERT_NE(at, std::string::npos) << name;
    EXPECT_GT(std::stod(m.raw.substr(at + std::string(name).size())), 0) << name;
  }
}

TEST_F(ApiServerTest, AdminCheckRunsTheIntegrityCheckAndHealthAndMetricsReportIt) {
  Resp before = Get("/health", "");
  EXPECT_TRUE(before.body["checks"]["integrity"].is_null()) << before.raw;
  const std::string id = CreateProject("checked");
  ASSERT_EQ(Post("/api/v1/projects/checked/documents",
                 R"({"content":"Herons wade in shallow water.","source":"h.txt"})")
                .status,
            201);
  EXPECT_EQ(Post("/api/v1/admin/check", "", CreateKey("write")).status, 403);
  EXPECT_EQ(Post("/api/v1/admin/check", "", "").status, 401);

  Resp r = Post("/api/v1/admin/check", "");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["status"], "ok");
  EXPECT_EQ(r.body["problems_found"], false);
  ASSERT_EQ(r.body["databases"].size(), 2u);
  EXPECT_EQ(r.body["databases"][1]["project_id"], id);
  EXPECT_EQ(r.body["databases"][1]["checks"].size(), 7u);
  Resp h = Get("/health", "");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body["status"], "healthy");
  EXPECT_EQ(h.body["checks"]["integrity"]["status"], "ok");
  EXPECT_TRUE(h.body["checks"]["integrity"]["last_success_at"].is_string()) << h.raw;
  EXPECT_TRUE(h.body["checks"]["integrity"]["problems"].empty());
  Resp m = Get("/metrics", "");
  EXPECT_NE(m.raw.find("\nkb_integrity_checks_total 1\n"), std::string::npos) << m.raw;
  // The project's database pages in the page cache, each once: just written, so some.
  const std::string cached = "\nkb_database_cached_bytes{project=\"checked\"} ";
  const size_t at = m.raw.find(cached);
  ASSERT_NE(at, std::string::npos) << m.raw;
  EXPECT_GT(std::stod(m.raw.substr(at + cached.size())), 0);
  EXPECT_NE(m.raw.find("\nkb_integrity_check_failures_total 0\n"), std::string::npos);
  EXPECT_EQ(m.raw.find("\nkb_integrity_check_last_success_timestamp_seconds 0\n"),
            std::string::npos);

  // A row changed behind the server's back: the database is unhealthy, /health says 503.
  {
    auto db = sql::Database::Open(dir_.Sub("data/projects/" + id + "/kb.db"));
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("UPDATE documents SET title = 'tampered'").ok());
  }
  r = Post("/api/v1/admin/check", "");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["status"], "unhealthy");
  h = Get("/health", "");
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(h.body["status"], "unhealthy");
  // Liveness is not health: a restart cannot repair a damaged file, so /livez stays 200 (a
  // liveness probe on /health would restart the server in a loop).
  Resp live = Get("/livez", "");
  EXPECT_EQ(live.status, 200) << live.raw;
  EXPECT_EQ(live.body["alive"], true);
  ASSERT_EQ(h.body["checks"]["integrity"]["problems"].size(), 1u) << h.raw;
  EXPECT_NE(h.body["checks"]["integrity"]["problems"][0].get<std::string>().find(
                "content_checksum: the content checksum recomputed"),
            std::string::npos);
  EXPECT_EQ(h.body["checks"]["problems"], h.body["checks"]["integrity"]["problems"]);
  m = Get("/metrics", "");
  EXPECT_NE(m.raw.find("\nkb_integrity_check_failures_total 1\n"), std::string::npos) << m.raw;
}

TEST_F(ApiServerTest, DerivedDataProblemsMakeHealthDegraded) {
  // A project directory that no catalog row names: nothing is lost, but someone should look.
  const std::string stray = dir_.Sub("data/projects/0f0f0f0f-0000-4000-8000-000000000000");
  std::filesystem::create_directories(stray);
  Resp r = Post("/api/v1/admin/check", "");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["status"], "degraded");
  Resp h = Get("/health", "");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body["status"], "degraded");
  ASSERT_EQ(h.body["checks"]["problems"].size(), 1u) << h.raw;
  EXPECT_EQ(h.body["checks"]["problems"][0].get<std::string>().rfind(stray + ": catalog: ", 0), 0u)
      << h.raw;
  std::filesystem::remove_all(stray);
  EXPECT_EQ(Post("/api/v1/admin/check", "").body["status"], "ok");
  EXPECT_EQ(Get("/health", "").body["status"], "healthy");
}

TEST_F(ApiServerTest, MetricsCanRequireAuth) {
  ServerOptions so;
  so.metrics_require_auth = true;
  StartServer(so);
  EXPECT_EQ(Get("/metrics", "").status, 401);
  EXPECT_EQ(Get("/metrics").status, 200);
}

TEST_F(ApiServerTest, MetricsUseRoutePatternsNotRawPaths) {
  CreateProject("alpha");
  Get("/api/v1/projects/alpha");
  Get("/api/v1/projects/does-not-exist");
  Get("/no/such/route/12345");
  Resp m = Get("/metrics", "");
  EXPECT_NE(m.raw.find("route=\"/api/v1/projects/{project}\""), std::string::npos);
  EXPECT_EQ(m.raw.find("does-not-exist"), std::string::npos);
  EXPECT_EQ(m.raw.find("12345"), std::string::npos);
  EXPECT_NE(m.raw.find("kb_documents{project=\"alpha\"} 0"), std::string::npos) << m.raw;
  EXPECT_NE(
      m.raw.find("kb_http_request_duration_seconds_bucket{route=\"/api/v1/projects/{project}\""),
      std::string::npos);
}

TEST_F(ApiServerTest, SecurityHeadersAndRequestIds) {
  auto r = client_->Get("/health", {{"X-Request-ID", "abc-123"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("X-Request-ID"), "abc-123");
  EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(r->get_header_value("X-Frame-Options"), "DENY");
  EXPECT_EQ(r->get_header_value("Referrer-Policy"), "no-referrer");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store");
  EXPECT_EQ(r->get_header_value("Content-Security-Policy"), "default-src 'none'");
  auto bad = client_->Get("/health", {{"X-Request-ID", std::string(200, 'x')}});
  ASSERT_TRUE(bad);
  const std::string id = bad->get_header_value("X-Request-ID");
  EXPECT_FALSE(id.empty());
  EXPECT_NE(id, std::string(200, 'x'));
  auto spaced = client_->Get("/health", {{"X-Request-ID", "a b"}});
  EXPECT_NE(spaced->get_header_value("X-Request-ID"), "a b");
  // Errors carry the same headers and the id in the body.
  Resp nf = Get("/nope");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.body["error"]["code"], "not_found");
  EXPECT_FALSE(nf.body["error"]["request_id"].get<std::string>().empty());
}

TEST_F(ApiServerTest, UnknownRouteIs404AndWrongMethodIs405) {
  Resp nf = Get("/api/v1/nothing");
  EXPECT_EQ(nf.status, 404);
  EXPECT_TRUE(nf.body["error"].contains("message"));
  Resp m = Put("/api/v1/projects", "{}");
  EXPECT_EQ(m.status, 405) << m.raw;
  EXPECT_EQ(m.body["error"]["code"], "method_not_allowed");
  auto raw = client_->Put("/api/v1/projects", "{}", "application/json");
  ASSERT_TRUE(raw);
  EXPECT_NE(raw->get_header_value("Allow").find("POST"), std::string::npos);
}

TEST_F(ApiServerTest, AuthRules) {
  const std::string pid = CreateProject("authp");
  CreateProject("otherp");
  EXPECT_EQ(Get("/api/v1/projects", "").status, 401);
  Resp unknown = Get("/api/v1/projects", "kb_not_a_real_key");
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(unknown.body["error"]["code"], "unauthenticated");
  // X-API-Key works as well as Bearer.
  auto xk = client_->Get("/api/v1/projects", {{"X-API-Key", kAdminToken}});
  ASSERT_TRUE(xk);
  EXPECT_EQ(xk->status, 200);
  // Malformed Authorization is not silently accepted.
  auto basic =
      client_->Get("/api/v1/projects", {{"Authorization", std::string("Basic ") + kAdminToken}});
  EXPECT_EQ(basic->status, 401);

  const std::string read = CreateKey("read");
  const std::string write = CreateKey("write");
  const std::string limited = CreateKey("write", {"authp"});
  EXPECT_EQ(Get("/api/v1/projects/authp", read).status, 200);
  EXPECT_EQ(Post("/api/v1/projects/authp/documents", R"({"content":"x"})", read).status, 403);
  EXPECT_EQ(Post("/api/v1/projects/authp/documents", R"({"content":"x"})", write).status, 201);
  EXPECT_EQ(Get("/api/v1/admin/api-keys", write).status, 403);
  EXPECT_EQ(Delete("/api/v1/projects/authp", write).status, 403);
  EXPECT_EQ(Get("/api/v1/projects/authp", limited).status, 200);
  EXPECT_EQ(Get("/api/v1/projects/" + pid, limited).status, 200);
  EXPECT_EQ(Get("/api/v1/projects/otherp", limited).status, 403);
  EXPECT_EQ(Get("/api/v1/projects/ghost", limited).status, 403);
  EXPECT_EQ(Post("/api/v1/projects", R"({"name":"x"})", limited).status, 403);
  Resp list = Get("/api/v1/projects", limited);
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["projects"].size(), 1u);
  EXPECT_EQ(list.body["projects"][0]["name"], "authp");

  // Revocation takes effect at once.
  Resp keys = Get("/api/v1/admin/api-keys");
  ASSERT_EQ(keys.status, 200);
  std::string read_id;
  for (const auto& k : keys.body["keys"]) {
    if (k["name"] == "k-read") read_id = k["id"];
    EXPECT_FALSE(k.contains("secret"));
    EXPECT_FALSE(k.contains("secret_hash"));
  }
  ASSERT_FALSE(read_id.empty());
  EXPECT_EQ(Delete("/api/v1/admin/api-keys/" + read_id).status, 204);
  EXPECT_EQ(Get("/api/v1/projects", read).status, 401);
  EXPECT_EQ(Delete("/api/v1/admin/api-keys/key_doesnotexist00").status, 404);
}

TEST_F(ApiServerTest, ProjectLifecycle) {
  const std::string id =
      CreateProject("Life cycle_1", {{"description", "d"}, {"metadata", {{"team", "x"}}}});
  ASSERT_FALSE(id.empty());
  Resp dup = Post("/api/v1/projects", R"({"name":"Life cycle_1"})");
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(dup.body["error"]["code"], "already_exists");
  EXPECT_EQ(Post("/api/v1/projects", R"({"name":"bad/name"})").status, 400);
  EXPECT_EQ(Post("/api/v1/projects", R"({"name":"bad\u0007name"})").status, 400);
  Resp byname = Get("/api/v1/projects/Life%20cycle_1");
  ASSERT_EQ(byname.status, 200) << byname.raw;
  EXPECT_EQ(byname.body["id"], id);
  EXPECT_EQ(byname.body["metadata"]["team"], "x");
  EXPECT_EQ(byname.body["created_at"].get<std::string>().back(), 'Z');
  Resp patched = Patch("/api/v1/projects/" + id, R"({"description":"new"})");
  EXPECT_EQ(patched.status, 200);
  EXPECT_EQ(patched.body["description"], "new");
  EXPECT_EQ(Patch("/api/v1/projects/" + id, R"({"description":3})").status, 400);
  EXPECT_EQ(Patch("/api/v1/projects/nope", R"({"description":"x"})").status, 404);
  Resp list = Get("/api/v1/projects");
  EXPECT_EQ(list.body["count"], 1);
  EXPECT_EQ(Delete("/api/v1/projects/" + id).status, 204);
  EXPECT_EQ(Get("/api/v1/projects/" + id).status, 404);
  EXPECT_EQ(Delete("/api/v1/projects/" + id).status, 404);
}

TEST_F(ApiServerTest, IngestListGetDeleteAndQuery) {
  CreateProject("docs");
  Resp c = Post("/api/v1/projects/docs/documents",
                R"({"content":"Hummingbirds hover by flapping their wings very fast.",
                    "title":"Birds","source":"birds.txt","metadata":{"lang":"en"}})");
  ASSERT_EQ(c.status, 201) << c.raw;
  EXPECT_EQ(c.body["outcome"], "created");
  const std::string doc_id = c.body["document"]["id"];
  EXPECT_GE(c.body["document"]["chunk_count"].get<int>(), 1);
  Resp same = Post("/api/v1/projects/docs/documents",
                   R"({"content":"Hummingbirds hover by flapping their wings very fast.",
                       "title":"Birds","source":"birds.txt","metadata":{"lang":"en"}})");
  EXPECT_EQ(same.status, 200);
  EXPECT_EQ(same.body["outcome"], "unchanged");
  Resp repl = Post("/api/v1/projects/docs/documents",
                   R"({"content":"Hummingbirds hover; swifts glide.","source":"birds.txt"})");
  EXPECT_EQ(repl.status, 200);
  EXPECT_EQ(repl.body["outcome"], "replaced");

  Resp list = Get("/api/v1/projects/docs/documents?limit=10&offset=0");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body["total"], 1);
  EXPECT_EQ(list.body["limit"], 10);
  EXPECT_EQ(Get("/api/v1/projects/docs/documents?limit=0").status, 400);
  EXPECT_EQ(Get("/api/v1/projects/docs/documents?limit=abc").status, 400);
  Resp one =
      Get("/api/v1/projects/docs/documents/" + list.body["documents"][0]["id"].get<std::string>());
  EXPECT_EQ(one.status, 200);
  EXPECT_EQ(Get("/api/v1/projects/docs/documents/nope").status, 404);
  EXPECT_EQ(Get("/api/v1/projects/nope/documents").status, 404);

  Resp q = Get("/api/v1/query/docs?q=hummingbirds&top_k=5&mode=hybrid&alpha=0.5");
  ASSERT_EQ(q.status, 200) << q.raw;
  ASSERT_GE(q.body["count"].get<int>(), 1);
  const json& hit = q.body["results"][0];
  for (const char* f : {"document_id", "chunk_id", "title", "source", "text", "heading_path",
                        "score", "vector_score", "keyword_score", "rank", "metadata"}) {
    EXPECT_TRUE(hit.contains(f)) << f;
  }
  EXPECT_TRUE(q.body.contains("took_ms"));
  EXPECT_EQ(q.body["mode"], "hybrid");
  EXPECT_EQ(q.body["query"], "hummingbirds");
  Resp pq = Post("/api/v1/projects/docs/query", R"({"query":"swifts","top_k":3,"mode":"keyword"})");
  ASSERT_EQ(pq.status, 200) << pq.raw;
  EXPECT_GE(pq.body["count"].get<int>(), 1);

  // Validation.
  EXPECT_EQ(Get("/api/v1/query/docs?q=").status, 400);
  EXPECT_EQ(Get("/api/v1/query/docs?q=x&top_k=0").status, 400);
  EXPECT_EQ(Get("/api/v1/query/docs?q=x&top_k=101").status, 400);
  EXPECT_EQ(Get("/api/v1/query/docs?q=x&alpha=1.1").status, 400);
  EXPECT_EQ(Get("/api/v1/query/nope?q=x").status, 404);
  Resp wt = Post("/api/v1/projects/docs/query", R"({"query":"x","top_k":"3"})");
  EXPECT_EQ(wt.status, 400);
  EXPECT_NE(wt.body["error"]["message"].get<std::string>().find("top_k"), std::string::npos);
  EXPECT_EQ(Post("/api/v1/projects/docs/query", "{\"query\":").status, 400);
  EXPECT_EQ(Post("/api/v1/projects/docs/query",
                 json{{"query", std::string(kMaxQueryBytes + 1, 'q')}}.dump())
                .status,
            400);
  EXPECT_EQ(Post("/api/v1/projects/docs/query", std::string("{\"query\":\"\xff\"}")).status, 400);
  std::string bomb = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_EQ(Post("/api/v1/projects/docs/query", "{\"query\":" + bomb + "}").status, 400);
  EXPECT_EQ(Post("/api/v1/projects/docs/documents", "hello", kAdminToken, "text/plain").status,
            415);

  Resp del = Delete("/api/v1/projects/docs/documents/" +
                    list.body["documents"][0]["id"].get<std::string>());
  EXPECT_EQ(del.status, 204);
  EXPECT_EQ(Get("/api/v1/projects/docs/documents").body["total"], 0);
  (void)doc_id;
}

TEST_F(ApiServerTest, BatchReportsPerItemWith207) {
  CreateProject("batch");
  Resp ok = Post(
      "/api/v1/projects/batch/documents",
      R"({"documents":[{"content":"one","source":"1.txt"},{"content":"two","source":"2.txt"}]})");
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.body["succeeded"], 2);
  Resp mixed =
      Post("/api/v1/projects/batch/documents",
           R"({"documents":[{"content":"three","source":"3.txt"},{"content":5},{"title":"x"}]})");
  ASSERT_EQ(mixed.status, 207) << mixed.raw;
  EXPECT_EQ(mixed.body["succeeded"], 1);
  EXPECT_EQ(mixed.body["failed"], 2);
  EXPECT_EQ(mixed.body["results"][0]["status"], 201);
  EXPECT_EQ(mixed.body["results"][1]["status"], 400);
  EXPECT_TRUE(mixed.body["results"][1]["error"].contains("message"));
  EXPECT_EQ(Get("/api/v1/projects/batch/documents").body["total"], 3);
  EXPECT_EQ(Post("/api/v1/projects/nope/documents", R"({"documents":[{"content":"x"}]})").status,
            404);
}

TEST_F(ApiServerTest, MultipartUpload) {
  CreateProject("upload");
  httplib::MultipartFormDataItems items = {
      {"file", "# Title\n\nSome markdown body about otters.\n", "otters.md", "text/markdown"},
      {"metadata", R"({"origin":"upload"})", "", "application/json"},
  };
  auto r = client_->Post("/api/v1/projects/upload/documents", Auth(kAdminToken), items);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body;
  json body = json::parse(r->body);
  EXPECT_EQ(body["document"]["metadata"]["origin"], "upload");
  httplib::MultipartFormDataItems two = {
      {"file", "first file", "a.txt", "text/plain"},
      {"file", "second file", "b.txt", "text/plain"},
  };
  auto r2 = client_->Post("/api/v1/projects/upload/documents", Auth(kAdminToken), two);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 200) << r2->body;
  EXPECT_EQ(json::parse(r2->body)["succeeded"], 2);
  httplib::MultipartFormDataItems bad = {{"file", "\x89PNG\r\n\x1a\n....", "x.png", "image/png"}};
  auto r3 = client_->Post("/api/v1/projects/upload/documents", Auth(kAdminToken), bad);
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->status, 415) << r3->body;
  httplib::MultipartFormDataItems none = {{"metadata", "{}", "", ""}};
  auto r4 = client_->Post("/api/v1/projects/upload/documents", Auth(kAdminToken), none);
  EXPECT_EQ(r4->status, 400);
}

TEST_F(ApiServerTest, BringYourOwnVectors) {
  CreateProject("vecs", {{"embedder", {{"kind", "external"}, {"dimension", 3}}}});
  Resp c = Post("/api/v1/projects/vecs/documents",
                R"({"title":"v","source":"v1","chunks":[{"text":"alpha","embedding":[1,0,0]},
                    {"text":"beta","embedding":[0,1,0]}]})");
  ASSERT_EQ(c.status, 201) << c.raw;
  EXPECT_EQ(c.body["document"]["chunk_count"], 2);
  EXPECT_EQ(Post("/api/v1/projects/vecs/documents",
                 R"({"source":"v2","chunks":[{"text":"x","embedding":[1,0]}]})")
                .status,
            400);
  Resp q = Post("/api/v1/projects/vecs/query", R"({"vector":[0,1,0],"mode":"vector","top_k":1})");
  ASSERT_EQ(q.status, 200) << q.raw;
  ASSERT_EQ(q.body["count"], 1);
  EXPECT_EQ(q.body["results"][0]["text"], "beta");
}

TEST_F(ApiServerTest, OversizeBodyIs413Json) {
  ServerOptions so;
  so.max_body_bytes = 1024;
  StartServer(so);
  CreateProject("big");
  Resp r = Post("/api/v1/projects/big/documents", json{{"content", std::string(4096, 'a')}}.dump());
  EXPECT_EQ(r.status, 413) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "payload_too_large");
}

TEST_F(ApiServerTest, ChangesSinceAndStats) {
  CreateProject("chg");
  ASSERT_EQ(Post("/api/v1/projects/chg/documents", R"({"content":"changed doc","source":"c.txt"})")
                .status,
            201);
  EXPECT_EQ(Get("/api/v1/documents").status, 400);
  EXPECT_EQ(Get("/api/v1/documents?since=notatime").status, 400);
  Resp ch = Get("/api/v1/documents?since=2000-01-01T00:00:00Z&project=chg");
  ASSERT_EQ(ch.status, 200) << ch.raw;
  ASSERT_EQ(ch.body["documents"].size(), 1u);
  EXPECT_EQ(ch.body["documents"][0]["project_name"], "chg");
  Resp none = Get("/api/v1/documents?since=2999-01-01");
  EXPECT_EQ(none.body["documents"].size(), 0u);
  Resp st = Get("/api/v1/stats");
  ASSERT_EQ(st.status, 200);
  EXPECT_EQ(st.body["projects"], 1);
  EXPECT_EQ(st.body["documents"], 1);
  EXPECT_EQ(st.body["per_project"][0]["name"], "chg");
}

TEST_F(ApiServerTest, CorsPreflight) {
  ServerOptions so;
  so.cors_origins = {"https://app.example"};
  StartServer(so);
  httplib::Request req;
  auto r = client_->Options("/api/v1/projects", {{"Origin", "https://app.example"},
                                                 {"Access-Control-Request-Method", "POST"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_NE(r->get_header_value("Access-Control-Allow-Headers").find("Authorization"),
            std::string::npos);
  auto denied = client_->Options("/api/v1/projects", {{"Origin", "https://evil.example"},
                                                      {"Access-Control-Request-Method", "POST"}});
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403);
  EXPECT_TRUE(denied->get_header_value("Access-Control-Allow-Origin").empty());
  auto simple = client_->Get("/health", {{"Origin", "https://app.example"}});
  EXPECT_EQ(simple->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
}

TEST_F(ApiServerTest, V2Compatibility) {
  Resp c = Post(
      "/api/v2/projects",
      R"({"name":"py","description":"d","embedding_model":"all-MiniLM-L6-v2","metadata":{"a":1}})");
  ASSERT_EQ(c.status, 201) << c.raw;
  for (const char* f : {"project_id", "name", "description", "embedding_model", "collection_name",
                        "created_at", "updated_at", "metadata"}) {
    EXPECT_TRUE(c.body.contains(f)) << f;
  }
  EXPECT_EQ(c.body["embedding_model"], "all-MiniLM-L6-v2");
  const std::string pid = c.body["project_id"];
  Resp dup = Post("/api/v2/projects", R"({"name":"py"})");
  EXPECT_EQ(dup.status, 400);
  EXPECT_NE(dup.body["detail"].get<std::string>().find("already exists"), std::string::npos)
      << dup.raw;
  EXPECT_EQ(Get("/api/v2/projects").body["projects"].size(), 1u);
  EXPECT_EQ(Get("/api/v2/projects/" + pid).status, 200);
  Resp up = Put("/api/v2/projects/" + pid, R"({"description":"new"})");
  EXPECT_EQ(up.status, 200);
  EXPECT_EQ(up.body["description"], "new");

  Resp ing = Post("/api/v2/projects/" + pid + "/ingest",
                  R"({"content":"Otters hold hands while sleeping.","metadata":{"k":"v"}})");
  ASSERT_EQ(ing.status, 200) << ing.raw;
  EXPECT_EQ(ing.body["success"], true);
  EXPECT_FALSE(ing.body["doc_id"].get<std::string>().empty());
  Resp file = Post("/api/v2/projects/" + pid + "/ingest", R"({"file_path":"notes/a.md"})");
  EXPECT_EQ(file.status, 200) << file.raw;
  Resp escape = Post("/api/v2/projects/" + pid + "/ingest", R"({"file_path":"../secret.txt"})");
  EXPECT_GE(escape.status, 400) << escape.raw;
  EXPECT_LT(escape.status, 500) << escape.raw;
  Resp abs = Post("/api/v2/projects/" + pid + "/ingest",
                  json{{"file_path", dir_.Sub("secret.txt")}}.dump());
  EXPECT_GE(abs.status, 400);
  EXPECT_LT(abs.status, 500);

  Resp q = Post("/api/v2/projects/" + pid + "/query", R"({"query":"otters","limit":5})");
  ASSERT_EQ(q.status, 200) << q.raw;
  EXPECT_GE(q.body["count"].get<int>(), 1);
  EXPECT_TRUE(q.body.contains("cached"));
  EXPECT_EQ(q.body["query"], "otters");
  EXPECT_TRUE(q.body["results"][0].contains("content"));
  EXPECT_EQ(Post("/api/v2/projects/" + pid + "/query", R"({"query":""})").status, 400);

  Resp k = Post("/api/v2/projects/" + pid + "/api-keys", R"({"name":"py key","scopes":["read"]})");
  ASSERT_EQ(k.status, 201) << k.raw;
  const std::string secret = k.body["api_key"];
  const std::string key_id = k.body["key_id"];
  EXPECT_EQ(Post("/api/v2/projects/" + pid + "/query", R"({"query":"otters"})", secret).status,
            200);
  EXPECT_EQ(Post("/api/v2/projects/" + pid + "/ingest", R"({"content":"x"})", secret).status, 403);
  Resp keys = Get("/api/v2/projects/" + pid + "/api-keys");
  EXPECT_EQ(keys.body["api_keys"].size(), 1u);
  EXPECT_EQ(Delete("/api/v2/projects/" + pid + "/api-keys/" + key_id).status, 200);
  EXPECT_EQ(Post("/api/v2/projects/" + pid + "/query", R"({"query":"otters"})", secret).status,
            401);
  EXPECT_EQ(Delete("/api/v2/projects/" + pid + "/api-keys/" + key_id + "x").status, 404);

  Resp del = Delete("/api/v2/projects/" + pid);
  EXPECT_EQ(del.status, 200);
  EXPECT_EQ(del.body["success"], true);
  EXPECT_EQ(Get("/api/v2/projects/" + pid).status, 404);
}

TEST_F(ApiServerTest, PortInUseIsClearIOError) {
  ServerOptions so;
  so.port = server_->port();
  auto second = ApiServer::Start(kb_.get(), so);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kIOError);
  EXPECT_NE(second.status().message().find(std::to_string(server_->port())), std::string::npos);
}

}  // namespace
}  // namespace kb
