// The audit log against the real server: what a create/ingest/delete sequence and refused
// requests (no key, a read key on an admin route, an oversized body) leave in
// GET /api/v1/admin/audit, field by field; then `audit verify` and `audit export` on the data
// directory after the server stopped, before and after a row is removed behind its back.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "process.h"
#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

using nlohmann::json;

constexpr char kUnknownSecret[] = "kb_auditE2eUnknownSecretThatMustNeverBeStored000";

class AuditE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(
        Data(), dir_.Sub("server.log"), std::vector<std::string>{"--max-body-bytes", "1048576"});
    ASSERT_TRUE(server_->Start()) << server_->Log();
    client_ = server_->Client();
  }
  void TearDown() override {
    if (server_) server_->Stop(SIGTERM);
  }
  std::string Data() const { return dir_.Sub("data"); }
  HttpResp Do(const std::string& method, const std::string& path,
              const std::string& key = kE2eAdminToken, const std::string& body = "") {
    return Call(*client_, method, path, key, body);
  }
  static std::string RequestId(const HttpResp& r) {
    auto it = r.headers.find("X-Request-ID");
    return it == r.headers.end() ? "" : it->second;
  }
  // The audit entries matching `query` (all pages).
  std::vector<json> Audit(const std::string& query) {
    std::vector<json> out;
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      HttpResp r = Do("GET", "/api/v1/admin/audit?limit=3" + (query.empty() ? "" : "&" + query) +
                                 (cursor.empty() ? "" : "&cursor=" + cursor));
      EXPECT_EQ(r.status, 200) << r.raw;
      if (r.status != 200) break;
      for (const json& e : r.body["entries"]) out.push_back(e);
      if (r.body["next_cursor"].is_null()) break;
      cursor = r.body["next_cursor"];
    }
    return out;
  }
  // The one entry recorded for a request id.
  json EntryFor(const HttpResp& r) {
    const std::string id = RequestId(r);
    for (const json& e : Audit("")) {
      if (e["request_id"] == id) return e;
    }
    ADD_FAILURE() << "no audit entry for request " << id;
    return json::object();
  }
  CliRun Cli(std::vector<std::string> args) {
    return RunProcess(KB_BINARY, args, {{"KB_LOG_LEVEL", "error"}}, dir_.path());
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(AuditE2eTest, WritesAndRefusalsAreRecordedWithTheirFieldsAndVerifyAfterStop) {
  HttpResp keys = Do("GET", "/api/v1/admin/api-keys");
  ASSERT_EQ(keys.status, 200);
  const std::string admin_id = keys.body["keys"][0]["id"];

  // create -> ingest -> delete
  HttpResp created = Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"audited"})");
  ASSERT_EQ(created.status, 201) << created.raw;
  const std::string project_id = created.body["id"];
  HttpResp ingested = Do("POST", "/api/v1/projects/audited/documents", kE2eAdminToken,
                         R"({"content":"Otters hold hands while sleeping.","source":"o.txt"})");
  ASSERT_EQ(ingested.status, 201) << ingested.raw;
  const std::string doc_id = ingested.body["document"]["id"];
  HttpResp deleted = Do("DELETE", "/api/v1/projects/audited/documents/" + doc_id);
  ASSERT_EQ(deleted.status, 204);

  // refused: no key (401), an unknown key (401), a read key on an admin route (403), too big (413)
  HttpResp read_key =
      Do("POST", "/api/v1/admin/api-keys", kE2eAdminToken, R"({"name":"reader","scope":"read"})");
  ASSERT_EQ(read_key.status, 201);
  const std::string read_id = read_key.body["key"]["id"];
  HttpResp no_key = Do("DELETE", "/api/v1/projects/audited", "");
  ASSERT_EQ(no_key.status, 401);
  HttpResp unknown = Do("GET", "/api/v1/projects", kUnknownSecret);
  ASSERT_EQ(unknown.status, 401);
  HttpResp forbidden = Do("GET", "/api/v1/admin/api-keys", read_key.body["secret"]);
  ASSERT_EQ(forbidden.status, 403);
  HttpResp too_big = Do("POST", "/api/v1/projects/audited/documents", kE2eAdminToken,
                        json{{"content", std::string(2 * 1024 * 1024, 'a')}}.dump());
  ASSERT_EQ(too_big.status, 413);
  // A read is not recorded by default.
  HttpResp listed = Do("GET", "/api/v1/projects");
  ASSERT_EQ(listed.status, 200);

  json e = EntryFor(created);
  EXPECT_EQ(e["action"], "project.create");
  EXPECT_EQ(e["method"], "POST");
  EXPECT_EQ(e["route"], "/api/v1/projects");
  EXPECT_EQ(e["project"], project_id);
  EXPECT_EQ(e["actor_id"], admin_id);
  EXPECT_EQ(e["remote"], "127.0.0.1");
  EXPECT_EQ(e["status"], 201);
  EXPECT_EQ(e["outcome"], "ok");

  e = EntryFor(ingested);
  EXPECT_EQ(e["action"], "document.create");
  EXPECT_EQ(e["route"], "/api/v1/projects/{project}/documents");
  EXPECT_EQ(e["project"], project_id);
  EXPECT_EQ(e["document_ids"], json::array({doc_id}));

  e = EntryFor(deleted);
  EXPECT_EQ(e["action"], "document.delete");
  EXPECT_EQ(e["method"], "DELETE");
  EXPECT_EQ(e["document_ids"], json::array({doc_id}));
  EXPECT_EQ(e["status"], 204);

  e = EntryFor(no_key);
  EXPECT_EQ(e["action"], "project.delete");
  EXPECT_EQ(e["outcome"], "refused");
  EXPECT_EQ(e["status"], 401);
  EXPECT_EQ(e["actor_id"], "");
  EXPECT_EQ(e["project"], project_id);

  e = EntryFor(unknown);
  EXPECT_EQ(e["outcome"], "refused");
  EXPECT_EQ(e["actor_id"], "");
  EXPECT_EQ(e["action"], "project.list");  // refused reads are recorded too

  e = EntryFor(forbidden);
  EXPECT_EQ(e["action"], "apikey.list");
  EXPECT_EQ(e["status"], 403);
  EXPECT_EQ(e["actor_id"], read_id);
  EXPECT_EQ(e["actor_name"], "reader");

  e = EntryFor(too_big);
  EXPECT_EQ(e["status"], 413);
  EXPECT_EQ(e["outcome"], "refused");
  EXPECT_EQ(e["route"], "/api/v1/projects/{project}/documents");
  EXPECT_EQ(e["actor_id"], admin_id);
  EXPECT_EQ(e["project"], project_id);

  // Filters: one key, one address, one status, one project (by name), a time window.
  for (const json& x : Audit("key=" + read_id)) EXPECT_EQ(x["actor_id"], read_id);
  EXPECT_EQ(Audit("key=" + read_id).size(), 1u);
  EXPECT_EQ(Audit("status=401").size(), 2u);
  EXPECT_EQ(Audit("project=audited&action=document.create&status=201").size(), 1u);
  EXPECT_GE(Audit("remote=127.0.0.1").size(), 8u);
  EXPECT_TRUE(Audit("action=project.list&status=200").empty());
  EXPECT_TRUE(Audit("until=2000-01-01T00:00:00Z").empty());
  EXPECT_GE(Audit("since=2000-01-01T00:00:00Z").size(), 8u);
  // The unknown secret is never stored.
  EXPECT_EQ(Do("GET", "/api/v1/admin/audit?limit=1000").raw.find(kUnknownSecret),
            std::string::npos);

  // Bad filters are 400 with the JSON error body.
  for (const std::string bad : {"since=yesterday", "status=abc", "limit=0", "limit=1001",
                                "cursor=xyz", "colour=red", "since=2026-01-02&until=2026-01-01"}) {
    HttpResp r = Do("GET", "/api/v1/admin/audit?" + bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["code"], "invalid_argument") << bad;
  }

  HttpResp health = Do("GET", "/health", "");
  EXPECT_EQ(health.body["checks"]["audit"]["ok"], true) << health.raw;
  HttpResp metrics = Do("GET", "/metrics", "");
  EXPECT_NE(metrics.raw.find("kb_audit_events_total"), std::string::npos);
  EXPECT_NE(metrics.raw.find("kb_audit_dropped_total 0"), std::string::npos);

  // After a clean stop the chain verifies, and export gives one line per entry.
  server_->Stop(SIGTERM);
  server_.reset();
  CliRun verify = Cli({"audit", "verify", "--data-dir", Data()});
  EXPECT_EQ(verify.exit_code, 0) << verify.err << verify.out;
  EXPECT_NE(verify.out.find("audit log intact"), std::string::npos) << verify.out;
  CliRun exported = Cli({"audit", "export", "--since", "2000-01-01", "--data-dir", Data()});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  std::istringstream lines(exported.out);
  std::string line;
  int n = 0;
  int64_t prev_seq = 0;
  while (std::getline(lines, line)) {
    json j = json::parse(line);
    EXPECT_GT(j["seq"].get<int64_t>(), prev_seq);
    prev_seq = j["seq"];
    ++n;
  }
  CliRun verify_json = Cli({"audit", "verify", "--json", "--data-dir", Data()});
  EXPECT_EQ(verify_json.Json()["entries"], n);

  // A direct-mode command is recorded as the CLI.
  CliRun key =
      Cli({"keys", "create", "--name", "cli-made", "--scope", "read", "--data-dir", Data()});
  ASSERT_EQ(key.exit_code, 0) << key.err;
  CliRun listed_cli = Cli({"audit", "list", "--key", "cli", "--json", "--data-dir", Data()});
  ASSERT_EQ(listed_cli.exit_code, 0) << listed_cli.err;
  ASSERT_EQ(listed_cli.Json()["count"], 1) << listed_cli.out;
  EXPECT_EQ(listed_cli.Json()["entries"][0]["action"], "apikey.create");
  EXPECT_EQ(listed_cli.Json()["entries"][0]["method"], "CLI");

  // Remove one entry behind the log's back: verify fails and names it.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((Data() + "/audit.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DELETE FROM audit_entries WHERE seq = 3", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  CliRun damaged = Cli({"audit", "verify", "--data-dir", Data()});
  EXPECT_EQ(damaged.exit_code, 1);
  EXPECT_NE(damaged.err.find("entry 3"), std::string::npos) << damaged.err;
}

// Direct-mode changes are recorded as the CLI, and a whole restore keeps the audit log (it is
// history, not data) and adds its own entry; the chain still verifies.
TEST_F(AuditE2eTest, DirectModeChangesAndAWholeRestoreAreRecordedAndTheLogSurvivesTheRestore) {
  server_->Stop(SIGTERM);
  server_.reset();
  const EnvMap env = {{"KB_LOG_LEVEL", "error"}, {"KB_BACKUP_PASSWORD", "audit-e2e-password"}};
  const std::string repo = "file://" + dir_.Sub("repo");
  auto cli = [&](std::vector<std::string> args) {
    CliRun r = RunProcess(KB_BINARY, args, env, dir_.path());
    EXPECT_EQ(r.exit_code, 0) << args[0] << ": " << r.err << r.out;
    return r;
  };
  cli({"projects", "create", "herons", "--data-dir", Data()});
  cli({"repo", "init", "--repo", repo});
  cli({"backup", "--repo", repo, "--data-dir", Data()});
  cli({"projects", "delete", "herons", "--data-dir", Data()});
  cli({"restore", "--latest", "--repo", repo, "--data-dir", Data()});

  CliRun listed = cli({"audit", "list", "--key", "cli", "--json", "--data-dir", Data()});
  std::vector<std::string> actions;
  const json page = listed.Json();
  for (const json& e : page["entries"]) {
    EXPECT_EQ(e["method"], "CLI");
    EXPECT_EQ(e["outcome"], "ok");
    actions.push_back(e["action"]);
  }
  EXPECT_EQ(actions, (std::vector<std::string>{"data.restore", "project.delete", "project.create"}))
      << listed.out << listed.err;
  CliRun verify = cli({"audit", "verify", "--data-dir", Data()});
  EXPECT_NE(verify.out.find("intact"), std::string::npos) << verify.out;
}

// The audit log survives the host (issue 12): a backup taken while the server runs and records
// holds the audit log; `audit verify --repo --snapshot` checks that copy and `audit export` reads
// it (in a temporary directory that is removed); a whole restore onto a fresh directory brings
// back the trail plus the restore event.
TEST_F(AuditE2eTest, ABackupHoldsTheAuditLogWhichVerifiesAndComesBackOnANewHost) {
  const std::string tmp = dir_.Sub("tmp");
  std::filesystem::create_directories(tmp);
  const EnvMap env = {
      {"KB_LOG_LEVEL", "error"}, {"KB_BACKUP_PASSWORD", "audit-e2e-password"}, {"TMPDIR", tmp}};
  const std::string repo = "file://" + dir_.Sub("repo");
  auto cli = [&](std::vector<std::string> args) {
    return RunProcess(KB_BINARY, args, env, dir_.path());
  };
  HttpResp created = Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"herons"})");
  ASSERT_EQ(created.status, 201) << created.raw;
  ASSERT_EQ(Do("DELETE", "/api/v1/projects/herons", "").status, 401);  // refused: recorded
  // Committed before the backup starts (the writer is asynchronous).
  for (int i = 0; i < 100 && Audit("status=401").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(Audit("status=401").empty());
  ASSERT_EQ(cli({"repo", "init", "--repo", repo}).exit_code, 0);

  // The server keeps running while the CLI backs the directory up.
  CliRun backup = cli({"backup", "--repo", repo, "--data-dir", Data(), "--json"});
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  const std::string snap = backup.Json()["snapshot"];
  EXPECT_EQ(backup.Json()["audit_log"], true) << backup.out;
  ASSERT_EQ(Do("DELETE", "/api/v1/projects/herons").status, 204);  // after the snapshot

  CliRun verify = cli({"audit", "verify", "--repo", repo, "--snapshot", snap, "--json"});
  ASSERT_EQ(verify.exit_code, 0) << verify.err << verify.out;
  EXPECT_EQ(verify.Json()["ok"], true);
  EXPECT_EQ(verify.Json()["snapshot"], snap);
  EXPECT_GE(verify.Json()["entries"].get<int>(), 2);
  CliRun latest = cli({"audit", "verify", "--repo", repo, "--snapshot", "latest"});
  EXPECT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_NE(latest.out.find("audit log of snapshot " + snap + " intact"), std::string::npos)
      << latest.out;
  CliRun exported =
      cli({"audit", "export", "--repo", repo, "--snapshot", snap, "--since", "2000-01-01"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  std::vector<std::string> actions;
  bool refused = false;
  std::istringstream lines(exported.out);
  for (std::string line; std::getline(lines, line);) {
    json j = json::parse(line);
    actions.push_back(j["action"]);
    refused = refused || (j["outcome"] == "refused" && j["status"] == 401);
  }
  EXPECT_NE(std::find(actions.begin(), actions.end(), "project.create"), actions.end());
  EXPECT_TRUE(refused) << exported.out;
  EXPECT_TRUE(std::filesystem::is_empty(tmp)) << "the snapshot's copy was not cleaned up";

  // The host is gone: a whole restore onto a fresh directory brings the trail back and appends
  // the restore to it.
  server_->Stop(SIGTERM);
  server_.reset();
  const std::string fresh = dir_.Sub("new-host/data");
  CliRun restored = cli({"restore", "--latest", "--repo", repo, "--data-dir", fresh, "--json"});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  EXPECT_EQ(restored.Json()["audit_log"], "snapshot") << restored.out;
  CliRun listed = cli({"audit", "list", "--limit", "1000", "--json", "--data-dir", fresh});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  const json entries = listed.Json()["entries"];  // newest first
  ASSERT_GE(entries.size(), 3u) << listed.out;
  EXPECT_EQ(entries[0]["action"], "data.restore");
  EXPECT_NE(entries[0]["detail"].get<std::string>().find("audit log: snapshot"), std::string::npos)
      << entries[0];
  bool old_create = false;
  for (const json& e : entries) old_create = old_create || e["action"] == "project.create";
  EXPECT_TRUE(old_create) << listed.out;
  EXPECT_EQ(entries.size(), verify.Json()["entries"].get<size_t>() + 1) << listed.out;
  CliRun intact = cli({"audit", "verify", "--data-dir", fresh});
  EXPECT_EQ(intact.exit_code, 0) << intact.err;
}

// A snapshot of a data directory whose audit.db was edited by hand: `audit verify --snapshot`
// names the entry, the restore test names it, and a whole restore that would install it is
// refused (nothing is written). A snapshot without an audit log is a clear error.
TEST_F(AuditE2eTest, ASnapshotOfAnEditedAuditLogFailsVerificationAndIsNotRestored) {
  const EnvMap env = {{"KB_LOG_LEVEL", "error"}, {"KB_BACKUP_PASSWORD", "audit-e2e-password"}};
  const std::string repo = "file://" + dir_.Sub("repo");
  auto cli = [&](std::vector<std::string> args) {
    return RunProcess(KB_BINARY, args, env, dir_.path());
  };
  ASSERT_EQ(Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"herons"})").status, 201);
  ASSERT_EQ(Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"otters"})").status, 201);
  server_->Stop(SIGTERM);
  server_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((Data() + "/audit.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE audit_entries SET actor_name = 'nobody' WHERE seq = 1",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  ASSERT_EQ(cli({"repo", "init", "--repo", repo}).exit_code, 0);
  CliRun backup = cli({"backup", "--repo", repo, "--data-dir", Data(), "--json"});
  ASSERT_EQ(backup.exit_code, 0) << backup.err;  // a backup copies; it does not judge
  const std::string snap = backup.Json()["snapshot"];

  CliRun verify = cli({"audit", "verify", "--repo", repo, "--snapshot", snap});
  EXPECT_EQ(verify.exit_code, 1) << verify.out;
  EXPECT_NE(verify.err.find("snapshot " + snap + " damaged at entry 1"), std::string::npos)
      << verify.err;
  CliRun restore_test = cli({"backup", "verify", "--restore-test", "--repo", repo, snap});
  EXPECT_EQ(restore_test.exit_code, 1) << restore_test.out;
  EXPECT_NE(restore_test.out.find("audit log: damaged at entry 1"), std::string::npos)
      << restore_test.out;
  const std::string fresh = dir_.Sub("fresh");
  CliRun restored = cli({"restore", "--snapshot", snap, "--repo", repo, "--data-dir", fresh});
  EXPECT_NE(restored.exit_code, 0);
  EXPECT_NE(restored.err.find("audit log failed verification"), std::string::npos) << restored.err;
  EXPECT_FALSE(std::filesystem::exists(fresh + "/catalog.db"));

  // Only full snapshots hold the audit log.
  CliRun one =
      cli({"backup", "--repo", repo, "--data-dir", Data(), "--project", "otters", "--json"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.Json()["audit_log"], false);
  const std::string partial = one.Json()["snapshot"];
  CliRun none = cli({"audit", "verify", "--repo", repo, "--snapshot", partial});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("holds no audit log"), std::string::npos) << none.err;
  CliRun unknown = cli({"audit", "export", "--since", "2000-01-01", "--repo", repo, "--snapshot",
                        "20990101T000000Z-00000000"});
  EXPECT_NE(unknown.exit_code, 0);
  CliRun no_repo = RunProcess(KB_BINARY, {"audit", "verify", "--snapshot", snap},
                              {{"KB_LOG_LEVEL", "error"}}, dir_.path());
  EXPECT_EQ(no_repo.exit_code, 2);
  EXPECT_NE(no_repo.err.find("--repo"), std::string::npos) << no_repo.err;
}

// audit_reads: successful reads of authenticated routes are recorded too, probes never.
TEST_F(AuditE2eTest, AuditReadsRecordsReadsButNotProbes) {
  server_->Stop(SIGTERM);
  WriteTestFile(dir_.Sub("kb.json"), R"({"audit_reads": true, "audit_retention": "30d"})");
  server_ = std::make_unique<ServerProcess>(
      Data(), dir_.Sub("server2.log"), std::vector<std::string>{"--config", dir_.Sub("kb.json")});
  ASSERT_TRUE(server_->Start()) << server_->Log();
  client_ = server_->Client();
  HttpResp listed = Do("GET", "/api/v1/projects");
  ASSERT_EQ(listed.status, 200);
  ASSERT_EQ(Do("GET", "/health", "").status, 200);
  json e = EntryFor(listed);
  EXPECT_EQ(e["action"], "project.list");
  EXPECT_EQ(e["outcome"], "ok");
  EXPECT_EQ(e["status"], 200);
  EXPECT_TRUE(Audit("action=health.list").empty());
}

TEST_F(AuditE2eTest, VerifyWithoutAnAuditLogIsAnError) {
  CliRun r = Cli({"audit", "verify", "--data-dir", dir_.Sub("nothing-here")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no audit log"), std::string::npos) << r.err;
  CliRun bad = Cli({"audit", "export", "--since", "last week", "--data-dir", Data()});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

// audit_reads switched at run time (issue 12): over the API, then with the CLI on the data
// directory of the running server — no restart either way; each switch is itself recorded.
TEST_F(AuditE2eTest, AuditReadsCanBeSwitchedAtRunTime) {
  auto audited = [&](const HttpResp& r) {
    const std::string id = RequestId(r);
    for (const json& e : Audit("")) {
      if (e["request_id"] == id) return true;
    }
    return false;
  };
  HttpResp before = Do("GET", "/api/v1/projects");
  ASSERT_EQ(before.status, 200);
  EXPECT_FALSE(audited(before));
  HttpResp shown = Do("GET", "/api/v1/admin/audit/reads");
  ASSERT_EQ(shown.status, 200) << shown.raw;
  EXPECT_EQ(shown.body["enabled"], false);
  EXPECT_EQ(shown.body["source"], "config");

  HttpResp on = Do("PUT", "/api/v1/admin/audit/reads", kE2eAdminToken, R"({"enabled":true})");
  ASSERT_EQ(on.status, 200) << on.raw;
  EXPECT_EQ(on.body["enabled"], true);
  EXPECT_EQ(on.body["source"], "runtime");
  EXPECT_EQ(EntryFor(on)["action"], "audit_reads.set");
  HttpResp read = Do("GET", "/api/v1/projects");
  EXPECT_TRUE(audited(read));

  // Bad requests change nothing.
  EXPECT_EQ(Do("PUT", "/api/v1/admin/audit/reads", kE2eAdminToken, R"({"enabled":"yes"})").status,
            400);
  EXPECT_EQ(Do("PUT", "/api/v1/admin/audit/reads", kE2eAdminToken, "{}").status, 400);
  EXPECT_EQ(
      Do("PUT", "/api/v1/admin/audit/reads", kE2eAdminToken, R"({"enabled":false,"x":1})").status,
      400);
  EXPECT_EQ(Do("GET", "/api/v1/admin/audit/reads").body["enabled"], true);

  // Off from the command line, written into the data directory: in force within about a second.
  CliRun off = Cli({"audit", "reads", "off", "--data-dir", Data()});
  ASSERT_EQ(off.exit_code, 0) << off.out << off.err;
  EXPECT_NE(off.out.find("NOT audited"), std::string::npos) << off.out;
  bool stopped = false;
  for (int i = 0; i < 50 && !stopped; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stopped = !audited(Do("GET", "/api/v1/projects"));
  }
  EXPECT_TRUE(stopped);
  HttpResp now = Do("GET", "/api/v1/admin/audit/reads");
  EXPECT_EQ(now.body["enabled"], false);
  EXPECT_EQ(now.body["set_by"], "cli");
}

}  // namespace
}  // namespace kb::testing
