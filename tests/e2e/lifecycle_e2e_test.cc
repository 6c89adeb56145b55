// Soft delete, restore and the key lifecycle against the real `knowledgebeast serve` (issue 4):
// delete -> search no longer finds it -> admin restore -> same id and score; a project delete
// revokes its keys until an explicit reinstate; rotation with and without overlap; revoke-all
// under concurrent load; the same through the `knowledgebeast` CLI in remote mode.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "process.h"
#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

using nlohmann::json;

class E2eLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), dir_.Sub("server.log"));
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
  json NewKey(const std::string& scope, const std::vector<std::string>& projects = {}) {
    HttpResp r = Do("POST", "/api/v1/admin/api-keys", kE2eAdminToken,
                    json{{"name", "k " + scope}, {"scopes", {scope}}, {"projects", projects}}
                        .dump());
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.body;
  }
  // The hit for `doc_id` in a hybrid query, or null.
  json HitFor(const std::string& project, const std::string& query, const std::string& doc_id) {
    HttpResp r = Do("POST", "/api/v1/projects/" + project + "/query", kE2eAdminToken,
                    json{{"query", query}, {"top_k", 10}}.dump());
    EXPECT_EQ(r.status, 200) << r.raw;
    for (const json& h : r.body["results"]) {
      if (h["document_id"] == doc_id) return h;
    }
    return nullptr;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(E2eLifecycleTest, DeleteThenSearchMissesThenRestoreFindsSameIdAndScore) {
  ASSERT_EQ(Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"wild"})").status, 201);
  HttpResp herons = Do("POST", "/api/v1/projects/wild/documents", kE2eAdminToken,
                       R"({"content":"Grey herons stand in shallow water and spear fish.",
                           "source":"herons.txt"})");
  ASSERT_EQ(herons.status, 201) << herons.raw;
  ASSERT_EQ(Do("POST", "/api/v1/projects/wild/documents", kE2eAdminToken,
               R"({"content":"Badgers dig setts in old woodland.","source":"badgers.txt"})")
                .status,
            201);
  const std::string id = herons.body["document"]["id"];
  const json before = HitFor("wild", "grey herons fish", id);
  ASSERT_FALSE(before.is_null());

  ASSERT_EQ(Do("DELETE", "/api/v1/projects/wild/documents/" + id).status, 204);
  EXPECT_TRUE(HitFor("wild", "grey herons fish", id).is_null());
  EXPECT_EQ(Do("GET", "/api/v1/projects/wild/documents/" + id).status, 404);
  HttpResp deleted = Do("GET", "/api/v1/admin/deleted?project=wild&limit=10");
  ASSERT_EQ(deleted.status, 200) << deleted.raw;
  ASSERT_EQ(deleted.body["documents"].size(), 1u) << deleted.raw;
  EXPECT_EQ(deleted.body["documents"][0]["id"], id);
  EXPECT_TRUE(deleted.body["documents"][0]["deleted_at"].is_string());
  EXPECT_FALSE(deleted.body["documents"][0]["deleted_by"].get<std::string>().empty());
  EXPECT_EQ(deleted.body["total"], 1);
  const std::string deleted_at = deleted.body["documents"][0]["deleted_at"];

  HttpResp restored = Do("POST", "/api/v1/admin/restore", kE2eAdminToken,
                         json{{"project", "wild"}, {"before", deleted_at}}.dump());
  ASSERT_EQ(restored.status, 200) << restored.raw;
  EXPECT_EQ(restored.body["restored"]["documents"], json::array({id}));
  EXPECT_EQ(restored.body["counts"]["documents"], 1);
  EXPECT_EQ(restored.body["project_restored"], false);
  const json after = HitFor("wild", "grey herons fish", id);
  ASSERT_FALSE(after.is_null());
  EXPECT_EQ(after["chunk_id"], before["chunk_id"]);
  EXPECT_NEAR(after["score"].get<double>(), before["score"].get<double>(), 1e-9);
  EXPECT_EQ(after["rank"], before["rank"]);

  // Bad restore requests get the JSON error body.
  for (const char* body : {R"({"project":"wild"})", R"({"project":"wild","before":"yesterday"})",
                           R"({"before":"2026-01-01T00:00:00Z"})", R"([1,2])", "{bad"}) {
    HttpResp r = Do("POST", "/api/v1/admin/restore", kE2eAdminToken, body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.raw;
    EXPECT_TRUE(r.body.is_object() && r.body["error"].contains("request_id")) << r.raw;
  }
  EXPECT_EQ(Do("POST", "/api/v1/admin/restore", kE2eAdminToken,
               R"({"project":"ghost","before":"2026-01-01T00:00:00Z"})")
                .status,
            404);
  EXPECT_EQ(Do("GET", "/api/v1/admin/deleted?limit=0").status, 400);
}

TEST_F(E2eLifecycleTest, ProjectDeleteRevokesItsKeysUntilReinstated) {
  HttpResp p = Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"team"})");
  ASSERT_EQ(p.status, 201);
  json key = NewKey("write", {"team"});
  const std::string secret = key["secret"];
  const std::string key_id = key["key"]["id"];
  ASSERT_EQ(Do("GET", "/api/v1/projects/team", secret).status, 200);
  ASSERT_EQ(Do("DELETE", "/api/v1/projects/team").status, 204);
  EXPECT_EQ(Do("GET", "/api/v1/projects", secret).status, 401);
  HttpResp keys = Do("GET", "/api/v1/admin/api-keys");
  bool found = false;
  for (const json& k : keys.body["keys"]) {
    if (k["id"] != key_id) continue;
    found = true;
    EXPECT_EQ(k["revoked_reason"], "project_deleted");
    EXPECT_FALSE(k.contains("secret_hash"));
  }
  EXPECT_TRUE(found);
  HttpResp listed = Do("GET", "/api/v1/admin/deleted");
  ASSERT_EQ(listed.status, 200);
  ASSERT_EQ(listed.body["projects"].size(), 1u);
  EXPECT_EQ(Do("POST", "/api/v1/admin/api-keys/" + key_id + "/reinstate").status, 409);

  HttpResp r = Do("POST", "/api/v1/admin/restore", kE2eAdminToken,
                  json{{"project", p.body["id"]}, {"before", "2000-01-01T00:00:00Z"}}.dump());
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["project_restored"], true);
  EXPECT_EQ(Do("GET", "/api/v1/projects/team").status, 200);
  EXPECT_EQ(Do("GET", "/api/v1/projects/team", secret).status, 401);  // not silently back
  HttpResp back = Do("POST", "/api/v1/admin/api-keys/" + key_id + "/reinstate");
  ASSERT_EQ(back.status, 200) << back.raw;
  EXPECT_TRUE(back.body["key"]["revoked_at"].is_null());
  EXPECT_EQ(Do("GET", "/api/v1/projects/team", secret).status, 200);
  // A name taken meanwhile is a conflict.
  ASSERT_EQ(Do("DELETE", "/api/v1/projects/team").status, 204);
  ASSERT_EQ(Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"team"})").status, 201);
  HttpResp clash = Do("POST", "/api/v1/admin/restore", kE2eAdminToken,
                      json{{"project", p.body["id"]}, {"before", "2000-01-01T00:00:00Z"}}.dump());
  EXPECT_EQ(clash.status, 409) << clash.raw;
}

TEST_F(E2eLifecycleTest, RotateWithAndWithoutOverlapThenOldSecretsAre401) {
  json key = NewKey("read");
  const std::string id = key["key"]["id"];
  const std::string s0 = key["secret"];
  HttpResp r1 = Do("POST", "/api/v1/admin/api-keys/" + id + "/rotate");
  ASSERT_EQ(r1.status, 200) << r1.raw;
  const std::string s1 = r1.body["secret"];
  EXPECT_EQ(r1.body["key"]["id"], id);
  EXPECT_EQ(Do("GET", "/api/v1/projects", s0).status, 401);
  EXPECT_EQ(Do("GET", "/api/v1/projects", s1).status, 200);

  HttpResp r2 = Do("POST", "/api/v1/admin/api-keys/" + id + "/rotate", kE2eAdminToken,
                   R"({"overlap_seconds":2})");
  ASSERT_EQ(r2.status, 200) << r2.raw;
  const std::string s2 = r2.body["secret"];
  EXPECT_TRUE(r2.body["key"]["previous_secret_expires_at"].is_string());
  EXPECT_EQ(Do("GET", "/api/v1/projects", s1).status, 200);  // within the overlap
  EXPECT_EQ(Do("GET", "/api/v1/projects", s2).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(2300));
  HttpResp old = Do("GET", "/api/v1/projects", s1);
  EXPECT_EQ(old.status, 401);
  EXPECT_EQ(old.body["error"]["code"], "unauthenticated");
  EXPECT_EQ(Do("GET", "/api/v1/projects", s2).status, 200);
  EXPECT_EQ(Do("POST", "/api/v1/admin/api-keys/" + id + "/rotate", kE2eAdminToken,
               R"({"overlap_seconds":999999999})")
                .status,
            400);
  ASSERT_EQ(Do("DELETE", "/api/v1/admin/api-keys/" + id).status, 204);
  EXPECT_EQ(Do("POST", "/api/v1/admin/api-keys/" + id + "/rotate").status, 409);
  EXPECT_EQ(Do("GET", "/api/v1/projects", s2).status, 401);
}

// Several threads hammer the server with their own keys while revoke-all runs. No request that
// started after the revoke-all call returned may succeed with a revoked key.
TEST_F(E2eLifecycleTest, RevokeAllUnderConcurrentLoad) {
  std::vector<std::string> secrets;
  for (int i = 0; i < 6; ++i) secrets.push_back(NewKey(i % 2 ? "write" : "read")["secret"]);
  std::atomic<bool> revoked{false}, stop{false};
  std::atomic<int> ok_before{0}, after{0}, violations{0}, transport_errors{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < secrets.size(); ++t) {
    threads.emplace_back([&, t] {
      auto client = server_->Client();
      while (!stop.load()) {
        const bool started_after = revoked.load();
        HttpResp r = Call(*client, "GET", "/api/v1/projects", secrets[t]);
        if (r.status == 0) {
          ++transport_errors;
          continue;
        }
        if (started_after) {
          ++after;
          if (r.status != 401) ++violations;
        } else if (r.status == 200) {
          ++ok_before;
        }
      }
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (ok_before.load() < 60 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  HttpResp r = Do("POST", "/api/v1/admin/api-keys/revoke-all", kE2eAdminToken, "{}");
  revoked = true;
  while (after.load() < 120 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop = true;
  for (auto& th : threads) th.join();
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["count"], 6);
  EXPECT_GE(ok_before.load(), 60);
  EXPECT_GE(after.load(), 120);
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(transport_errors.load(), 0);
  EXPECT_EQ(Do("GET", "/api/v1/projects").status, 200);  // the caller's key was spared

  // include_admin: every key goes, a new admin key is returned once.
  HttpResp all = Do("POST", "/api/v1/admin/api-keys/revoke-all", kE2eAdminToken,
                    R"({"include_admin":true})");
  ASSERT_EQ(all.status, 200) << all.raw;
  const std::string fresh = all.body["new_admin_key"]["secret"];
  EXPECT_EQ(Do("GET", "/api/v1/projects").status, 401);
  EXPECT_EQ(Do("GET", "/api/v1/admin/api-keys", fresh).status, 200);
}

// The CLI in remote mode: rotate, revoke-all, undelete, deleted.
TEST_F(E2eLifecycleTest, CliRemoteModeManagesKeysAndDeletedItems) {
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->port());
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--url", url, "--api-key", kE2eAdminToken, "--json"});
    const std::string out = dir_.Sub("cli.out"), err = dir_.Sub("cli.err");
    int rc = WaitProcess(SpawnProcess(KB_BINARY, args, {}, dir_.path(), out, err));
    std::string text = ReadWholeFile(out);
    json j = json::parse(text, nullptr, false);
    EXPECT_EQ(rc, 0) << ReadWholeFile(err);
    return j;
  };
  json key = NewKey("read");
  const std::string id = key["key"]["id"];
  json rotated = run({"keys", "rotate", id, "--overlap-seconds", "60"});
  ASSERT_TRUE(rotated.contains("secret")) << rotated.dump();
  EXPECT_EQ(Do("GET", "/api/v1/projects", rotated["secret"]).status, 200);
  EXPECT_EQ(Do("GET", "/api/v1/projects", key["secret"]).status, 200);  // overlap

  ASSERT_EQ(Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"cli"})").status, 201);
  HttpResp doc = Do("POST", "/api/v1/projects/cli/documents", kE2eAdminToken,
                    R"({"content":"Otters hold hands while sleeping.","source":"otters.txt"})");
  ASSERT_EQ(doc.status, 201);
  const std::string doc_id = doc.body["document"]["id"];
  ASSERT_EQ(Do("DELETE", "/api/v1/projects/cli/documents/" + doc_id).status, 204);
  json listed = run({"deleted", "--project", "cli"});
  ASSERT_EQ(listed["documents"].size(), 1u) << listed.dump();
  json undone = run({"undelete", "--project", "cli", "--document", doc_id});
  EXPECT_EQ(undone["restored"]["documents"], json::array({doc_id})) << undone.dump();
  EXPECT_EQ(Do("GET", "/api/v1/projects/cli/documents/" + doc_id).status, 200);

  json all = run({"keys", "revoke-all"});
  EXPECT_EQ(all["count"], 1) << all.dump();
  EXPECT_EQ(Do("GET", "/api/v1/projects", rotated["secret"]).status, 401);
  EXPECT_EQ(Do("GET", "/api/v1/projects").status, 200);
}

}  // namespace
}  // namespace kb::testing
