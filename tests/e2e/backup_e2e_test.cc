// Backups and restores through the real binary: `repo init`, `backup`, `backup list|verify`,
// `restore` (whole, over an existing directory, --latest-valid after damage), the
// half-restored-directory guard, SIGKILL during a backup, and the server's backup and
// project-restore routes with another project written meanwhile.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "common/clock.h"
#include "process.h"
#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kPassword[] = "correct horse battery staple";

// Every regular file below `dir`, relative, sorted.
std::set<std::string> FilesBelow(const std::string& dir) {
  std::set<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.insert(fs::relative(e.path(), dir).string());
  }
  return out;
}

// A few Markdown documents whose words differ, so that queries rank them.
void WriteDocs(const std::string& dir, const std::string& topic, int count, int first = 0) {
  for (int i = first; i < first + count; ++i) {
    std::string body = "# " + topic + " note " + std::to_string(i) + "\n\n";
    for (int p = 0; p < 6; ++p) {
      body += "The " + topic + " paragraph " + std::to_string(p) + " of note " + std::to_string(i) +
              " talks about " + (i % 2 ? "herons and rivers" : "badgers and setts") +
              " with detail number " + std::to_string(i * 31 + p * 7) + ".\n\n";
    }
    WriteTestFile(dir + "/" + topic + "-" + std::to_string(i) + ".md", body);
  }
}

class BackupE2eTest : public ::testing::Test {
 protected:
  std::string Data() const { return dir_.Sub("data"); }
  std::string RepoDir() const { return dir_.Sub("repo"); }
  std::string RepoUrl() const { return "file://" + RepoDir(); }

  CliRun Cli(std::vector<std::string> args, EnvMap env = {}) {
    if (!env.count("KB_BACKUP_PASSWORD") && !env.count("NO_PASSWORD")) {
      env["KB_BACKUP_PASSWORD"] = kPassword;
    }
    env.erase("NO_PASSWORD");
    env["KB_LOG_LEVEL"] = "error";
    return RunProcess(KB_BINARY, args, env, dir_.path());
  }
  json CliJson(std::vector<std::string> args, EnvMap env = {}) {
    args.push_back("--json");
    CliRun r = Cli(args, env);
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    json j = r.Json();
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }
  void Ingest(const std::string& data, const std::string& project, const std::string& docs) {
    CliRun r = Cli({"ingest", "--data-dir", data, "--project", project, "--create",
                    "--no-progress", docs});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // The ranked (document id, chunk id, score) triples of a query: what "the same results" means.
  json Query(const std::string& data, const std::string& project, const std::string& q) {
    json j = CliJson({"query", "--data-dir", data, "--project", project, "--top-k", "10", q});
    json out = json::array();
    for (const json& h : j["results"]) {
      out.push_back({h["document_id"], h["chunk_id"], h["score"]});
    }
    return out;
  }
  std::string Backup(const std::string& data) {
    json j = CliJson({"backup", "--data-dir", data, "--repo", RepoUrl()});
    return j.value("snapshot", "");
  }
  void InitRepo() {
    CliRun r = Cli({"repo", "init", "--repo", RepoUrl()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void ExpectRepoClean() {
    CliRun r = Cli({"repo", "check", "--repo", RepoUrl(), "--read-data"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  TempDir dir_;
};

TEST_F(BackupE2eTest, BackupThenRestoreAnswersTheSameQueries) {
  WriteDocs(dir_.Sub("docs-a"), "alpha", 12);
  WriteDocs(dir_.Sub("docs-b"), "beta", 8);
  Ingest(Data(), "a", dir_.Sub("docs-a"));
  Ingest(Data(), "b", dir_.Sub("docs-b"));
  InitRepo();
  // A second init on the same location is refused and changes nothing.
  std::set<std::string> before = FilesBelow(RepoDir());
  CliRun again = Cli({"repo", "init", "--repo", RepoUrl()});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_EQ(FilesBelow(RepoDir()), before);

  const std::string snap = Backup(Data());
  ASSERT_FALSE(snap.empty());
  json list = CliJson({"backup", "list", "--repo", RepoUrl()});
  ASSERT_EQ(list["count"], 1);
  EXPECT_EQ(list["snapshots"][0]["id"], snap);
  EXPECT_EQ(list["snapshots"][0]["scope"], "full");

  json verify = CliJson({"backup", "verify", "--repo", RepoUrl(), "--read-data"});
  EXPECT_TRUE(verify["ok"].get<bool>()) << verify.dump();
  ExpectRepoClean();

  const json qa = Query(Data(), "a", "herons rivers detail");
  const json qb = Query(Data(), "b", "badgers setts");
  ASSERT_GT(qa.size(), 0u);

  const std::string restored = dir_.Sub("restored");
  json report = CliJson({"restore", "--repo", RepoUrl(), "--data-dir", restored, "--latest"});
  EXPECT_EQ(report["snapshot"], snap);
  EXPECT_EQ(report["moved_aside"], "");
  EXPECT_EQ(Query(restored, "a", "herons rivers detail"), qa);
  EXPECT_EQ(Query(restored, "b", "badgers setts"), qb);
  // The restored directory is a finished one: no marker, no staging directory left beside it.
  EXPECT_FALSE(fs::exists(restored + "/RESTORE_IN_PROGRESS"));
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(e.path().filename().string().find("restoring"), std::string::npos) << e.path();
  }
  CliRun check = Cli({"check", "--data-dir", restored});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

TEST_F(BackupE2eTest, WrongOrMissingKeyIsRefusedAndWritesNothing) {
  InitRepo();
  WriteDocs(dir_.Sub("docs"), "gamma", 3);
  Ingest(Data(), "g", dir_.Sub("docs"));
  const std::set<std::string> before = FilesBelow(RepoDir());
  CliRun wrong = Cli({"backup", "--data-dir", Data(), "--repo", RepoUrl()},
                     {{"KB_BACKUP_PASSWORD", "not the password"}});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("key"), std::string::npos) << wrong.err;
  EXPECT_EQ(wrong.err.find("not the password"), std::string::npos) << "secret echoed";
  CliRun none = Cli({"backup", "list", "--repo", RepoUrl()}, {{"NO_PASSWORD", "1"}});
  EXPECT_EQ(none.exit_code, 2) << none.err;
  EXPECT_NE(none.err.find("KB_BACKUP_PASSWORD"), std::string::npos) << none.err;
  EXPECT_EQ(FilesBelow(RepoDir()), before);
  // No staging directory left in the data directory either.
  for (const auto& e : fs::directory_iterator(Data())) {
    EXPECT_EQ(e.path().filename().string().find("staging"), std::string::npos) << e.path();
  }
}

TEST_F(BackupE2eTest, RestoreOverExistingDataMovesItAsideAndReportsTheLossWindow) {
  WriteDocs(dir_.Sub("docs"), "delta", 6);
  Ingest(Data(), "d", dir_.Sub("docs"));
  InitRepo();
  const std::string snap = Backup(Data());
  const json at_snapshot = Query(Data(), "d", "badgers setts");
  // Newer writes that the restore will roll back.
  WriteDocs(dir_.Sub("more"), "delta", 4, 100);
  Ingest(Data(), "d", dir_.Sub("more"));
  json stats_before = CliJson({"stats", "--data-dir", Data()});

  json report = CliJson({"restore", "--repo", RepoUrl(), "--data-dir", Data()});
  EXPECT_EQ(report["snapshot"], snap);
  const std::string aside = report["moved_aside"];
  ASSERT_FALSE(aside.empty());
  EXPECT_NE(aside.find(".before-restore-"), std::string::npos);
  // The old data is kept, whole, for forensics.
  json stats_aside = CliJson({"stats", "--data-dir", aside});
  EXPECT_EQ(stats_aside["documents"], stats_before["documents"]);
  const json& window = report["data_loss_window"];
  EXPECT_EQ(window["lost_journal_entries"], 4);
  EXPECT_FALSE(window["newest_damaged_commit"].get<std::string>().empty());
  EXPECT_EQ(Query(Data(), "d", "badgers setts"), at_snapshot);
  json stats_after = CliJson({"stats", "--data-dir", Data()});
  EXPECT_EQ(stats_after["documents"], 6);
}

TEST_F(BackupE2eTest, AHalfRestoredDirectoryIsRefused) {
  WriteDocs(dir_.Sub("docs"), "eps", 2);
  Ingest(Data(), "e", dir_.Sub("docs"));
  WriteTestFile(Data() + "/RESTORE_IN_PROGRESS", "{}");
  CliRun stats = Cli({"stats", "--data-dir", Data()});
  EXPECT_NE(stats.exit_code, 0);
  EXPECT_NE(stats.err.find("RESTORE_IN_PROGRESS"), std::string::npos) << stats.err;
  ServerProcess server(Data(), dir_.Sub("server.log"));
  EXPECT_FALSE(server.Start(10000));
  EXPECT_NE(server.Log().find("restore"), std::string::npos) << server.Log();
}

TEST_F(BackupE2eTest, RestoresAndASecondServerAreRefusedWhileAServerRuns) {
  WriteDocs(dir_.Sub("docs"), "zeta", 3);
  Ingest(Data(), "z", dir_.Sub("docs"));
  InitRepo();
  ASSERT_FALSE(Backup(Data()).empty());
  {
    ServerProcess server(Data(), dir_.Sub("server.log"));
    ASSERT_TRUE(server.Start()) << server.Log();
    CliRun whole = Cli({"restore", "--repo", RepoUrl(), "--data-dir", Data()});
    EXPECT_NE(whole.exit_code, 0);
    EXPECT_NE(whole.err.find("in use"), std::string::npos) << whole.err;
    EXPECT_NE(whole.err.find("\"role\":\"server\""), std::string::npos) << whole.err;
    CliRun one = Cli({"restore", "--repo", RepoUrl(), "--data-dir", Data(), "--project", "z"});
    EXPECT_NE(one.exit_code, 0);
    EXPECT_NE(one.err.find("--url"), std::string::npos) << one.err;
    ServerProcess second(Data(), dir_.Sub("second.log"));
    EXPECT_FALSE(second.Start(10000));
    EXPECT_NE(second.Log().find("in use"), std::string::npos) << second.Log();
    // Nothing was moved, staged or left behind (the server's own files aside).
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      const std::string name = e.path().filename().string();
      EXPECT_EQ(name.find("before-restore"), std::string::npos) << name;
      EXPECT_EQ(name.find("restoring"), std::string::npos) << name;
    }
  }
  // Once the server is gone the same restore goes through.
  CliRun after = Cli({"restore", "--repo", RepoUrl(), "--data-dir", Data()});
  EXPECT_EQ(after.exit_code, 0) << after.err;
}

TEST_F(BackupE2eTest, DamagedNewestSnapshotIsNamedAndLatestValidSkipsIt) {
  WriteDocs(dir_.Sub("docs"), "zeta", 6);
  Ingest(Data(), "z", dir_.Sub("docs"));
  InitRepo();
  const std::string first = Backup(Data());
  const json at_first = Query(Data(), "z", "herons rivers");
  const std::set<std::string> packs_before = FilesBelow(RepoDir() + "/data");
  WriteDocs(dir_.Sub("more"), "zeta", 6, 50);
  Ingest(Data(), "z", dir_.Sub("more"));
  const std::string second = Backup(Data());
  std::vector<std::string> new_packs;
  for (const std::string& p : FilesBelow(RepoDir() + "/data")) {
    if (!packs_before.count(p)) new_packs.push_back(p);
  }
  ASSERT_FALSE(new_packs.empty());
  // Flip one byte in the middle of a pack only the second snapshot uses.
  {
    const std::string path = RepoDir() + "/data/" + new_packs.front();
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const std::streamoff mid = f.tellg() / 2;
    f.seekg(mid);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x20);
    f.seekp(mid);
    f.write(&c, 1);
  }
  CliRun verify = Cli({"backup", "verify", "--repo", RepoUrl(), "--read-data"});
  EXPECT_EQ(verify.exit_code, 1) << verify.out;
  EXPECT_NE(verify.out.find(second + "  DAMAGED"), std::string::npos) << verify.out;
  EXPECT_NE(verify.out.find(first + "  OK"), std::string::npos) << verify.out;
  EXPECT_NE(verify.out.find(new_packs.front().substr(3)), std::string::npos)
      << "the damaged object is named: " << verify.out;

  const std::string restored = dir_.Sub("restored");
  CliRun r = Cli({"restore", "--repo", RepoUrl(), "--data-dir", restored, "--latest-valid",
                  "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["snapshot"], first);
  EXPECT_NE(r.err.find("skipped snapshot " + second), std::string::npos) << r.err;
  EXPECT_EQ(Query(restored, "z", "herons rivers"), at_first);
  // Restoring the damaged one on purpose fails and leaves nothing behind.
  const std::string other = dir_.Sub("other");
  CliRun bad = Cli({"restore", "--repo", RepoUrl(), "--data-dir", other, "--snapshot", second});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_FALSE(fs::exists(other));
}

// Logical damage in the live data (pages SQLite still opens, rows changed behind the store's
// back): the backup stores it but marks it and exits 1; `backup list` shows the mark; and
// `restore --latest-valid` passes that snapshot by and restores the state before it.
TEST_F(BackupE2eTest, LiveDamageIsMarkedByTheBackupAndLatestValidRestoresTheStateBefore) {
  WriteDocs(dir_.Sub("docs"), "zeta", 6);
  Ingest(Data(), "z", dir_.Sub("docs"));
  InitRepo();
  const std::string first = Backup(Data());
  const json at_first = Query(Data(), "z", "herons rivers");
  std::string db;
  for (const auto& e : fs::directory_iterator(Data() + "/projects")) db = e.path() / "kb.db";
  ASSERT_TRUE(fs::exists(db));
  ASSERT_FALSE(fs::exists(db + "-wal") && fs::file_size(db + "-wal") > 0);
  {
    std::ifstream in(db, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    size_t changed = 0;
    for (size_t at = bytes.find("herons and rivers"); at != std::string::npos;
         at = bytes.find("herons and rivers", at)) {
      bytes.replace(at, 6, "HERONS");
      ++changed;
    }
    ASSERT_GT(changed, 0u);
    WriteTestFile(db, bytes);
  }
  CliRun damaged = Cli({"backup", "--data-dir", Data(), "--repo", RepoUrl(), "--json"});
  EXPECT_EQ(damaged.exit_code, 1) << damaged.out << damaged.err;
  EXPECT_NE(damaged.err.find("source check"), std::string::npos) << damaged.err;
  const json j = damaged.Json();
  const std::string second = j.value("snapshot", "");
  ASSERT_FALSE(second.empty()) << damaged.out;
  ASSERT_EQ(j["source_check_failures"].size(), 1u) << damaged.out;
  EXPECT_NE(j["source_check_failures"][0].get<std::string>().find("content_checksum"),
            std::string::npos);

  CliRun list = Cli({"backup", "list", "--repo", RepoUrl()});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("SOURCE DAMAGED: z"), std::string::npos) << list.out;

  const std::string restored = dir_.Sub("restored");
  CliRun r =
      Cli({"restore", "--repo", RepoUrl(), "--data-dir", restored, "--latest-valid", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.Json()["snapshot"], first);
  EXPECT_NE(r.err.find("skipped snapshot " + second), std::string::npos) << r.err;
  EXPECT_EQ(r.Json()["skipped"].size(), 1u);
  EXPECT_EQ(Query(restored, "z", "herons rivers"), at_first);
}

TEST_F(BackupE2eTest, SigkillDuringBackupsLeavesTheRepositoryValid) {
  // Enough data that a backup takes a while: ~40 documents x 8 KB, several packs.
  WriteDocs(dir_.Sub("docs"), "eta", 60);
  Ingest(Data(), "h", dir_.Sub("docs"));
  InitRepo();
  // Kill backups at increasing delays; some die before, some during, some after the upload.
  int killed = 0;
  for (int delay_ms : {5, 20, 60, 120, 250, 400}) {
    pid_t pid = SpawnProcess(KB_BINARY,
                             {"backup", "--data-dir", Data(), "--repo", RepoUrl()},
                             {{"KB_BACKUP_PASSWORD", kPassword}}, dir_.path(),
                             dir_.Sub("kill.out"), dir_.Sub("kill.err"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    kill(pid, SIGKILL);
    if (WaitProcess(pid) == 128 + SIGKILL) ++killed;
    ExpectRepoClean();
  }
  EXPECT_GT(killed, 0);
  json full = CliJson({"backup", "--data-dir", Data(), "--repo", RepoUrl()});
  ASSERT_FALSE(full.value("snapshot", "").empty());
  ExpectRepoClean();
  json verify = CliJson({"backup", "verify", "--repo", RepoUrl(), "--read-data"});
  EXPECT_TRUE(verify["ok"].get<bool>()) << verify.dump();
  // No staging directories left by the killed runs survive a later successful one? They may:
  // a killed process cannot clean up. They are never read as data.
  const std::string restored = dir_.Sub("restored");
  CliJson({"restore", "--repo", RepoUrl(), "--data-dir", restored});
  EXPECT_EQ(Query(restored, "h", "herons rivers"), Query(Data(), "h", "herons rivers"));
}

TEST_F(BackupE2eTest, ForgetByPolicyThenPruneKeepsWhatTheKeptSnapshotsNeed) {
  WriteDocs(dir_.Sub("docs"), "theta", 4);
  Ingest(Data(), "t", dir_.Sub("docs"));
  InitRepo();
  std::vector<std::string> snaps;
  for (int i = 0; i < 3; ++i) {
    WriteDocs(dir_.Sub("more" + std::to_string(i)), "theta", 3, 100 * (i + 1));
    Ingest(Data(), "t", dir_.Sub("more" + std::to_string(i)));
    snaps.push_back(Backup(Data()));
  }
  // An empty policy is refused (it would be "forget everything" or "keep everything").
  EXPECT_EQ(Cli({"backup", "forget", "--repo", RepoUrl()}).exit_code, 2);
  json dry = CliJson({"backup", "forget", "--repo", RepoUrl(), "--keep-last", "1", "--dry-run"});
  EXPECT_EQ(dry["forgotten"], 0);
  EXPECT_EQ(CliJson({"backup", "list", "--repo", RepoUrl()})["count"], 3);
  json forgot = CliJson({"backup", "forget", "--repo", RepoUrl(), "--keep-last", "1"});
  EXPECT_EQ(forgot["forgotten"], 2);
  json list = CliJson({"backup", "list", "--repo", RepoUrl()});
  ASSERT_EQ(list["count"], 1);
  EXPECT_EQ(list["snapshots"][0]["id"], snaps.back());
  // Another data directory's snapshot shares no project pages with the kept one: once it is
  // forgotten, its packs are garbage. Prune is two-phase: the first run only marks them, a run
  // after the grace period deletes exactly those.
  WriteDocs(dir_.Sub("other-docs"), "iota", 5);
  Ingest(dir_.Sub("other"), "o", dir_.Sub("other-docs"));
  const std::set<std::string> packs_before = FilesBelow(RepoDir() + "/data");
  const std::string other = Backup(dir_.Sub("other"));
  const size_t other_packs = FilesBelow(RepoDir() + "/data").size() - packs_before.size();
  ASSERT_GT(other_packs, 0u);
  CliJson({"backup", "forget", "--repo", RepoUrl(), other});
  json mark = CliJson({"prune", "--repo", RepoUrl(), "--grace", "1h"});
  EXPECT_EQ(mark["packs_deleted"], 0);
  EXPECT_GE(mark["packs_marked"].get<size_t>(), other_packs);
  EXPECT_EQ(FilesBelow(RepoDir() + "/data").size(), packs_before.size() + other_packs);
  json sweep =
      CliJson({"prune", "--repo", RepoUrl(), "--grace", "0s", "--max-clock-skew", "0"});
  EXPECT_EQ(sweep["packs_deleted"], mark["packs_marked"]);
  EXPECT_LE(FilesBelow(RepoDir() + "/data").size(), packs_before.size());
  ExpectRepoClean();
  json verify = CliJson({"backup", "verify", "--repo", RepoUrl(), "--read-data"});
  EXPECT_TRUE(verify["ok"].get<bool>()) << verify.dump();
  const std::string restored = dir_.Sub("restored");
  CliJson({"restore", "--repo", RepoUrl(), "--data-dir", restored});
  EXPECT_EQ(Query(restored, "t", "herons rivers"), Query(Data(), "t", "herons rivers"));
}

class BackupServerE2eTest : public BackupE2eTest {
 protected:
  HttpResp Do(const std::string& method, const std::string& path, const std::string& body = "") {
    return Call(*client_, method, path, kE2eAdminToken, body);
  }
  void StartServer() {
    server_ = std::make_unique<ServerProcess>(Data(), dir_.Sub("server.log"));
    ASSERT_TRUE(server_->Start()) << server_->Log();
    client_ = server_->Client();
  }
  void TearDown() override {
    if (server_) server_->Stop(SIGTERM);
  }
  void Put(const std::string& project, const std::string& source, const std::string& text) {
    HttpResp r = Do("POST", "/api/v1/projects/" + project + "/documents",
                    json{{"content", text}, {"source", source}}.dump());
    ASSERT_TRUE(r.status == 201 || r.status == 200) << r.raw;
  }
  int64_t Count(const std::string& project) {
    HttpResp r = Do("GET", "/api/v1/projects/" + project + "/documents?limit=100");
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.body.value("total", int64_t{-1});
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(BackupServerE2eTest, ServerBacksUpLocallyAndRestoresOneProjectAlone) {
  StartServer();
  ASSERT_EQ(Do("POST", "/api/v1/projects", R"({"name":"alpha"})").status, 201);
  ASSERT_EQ(Do("POST", "/api/v1/projects", R"({"name":"beta"})").status, 201);
  Put("alpha", "a1.md", "# One\n\nHerons wade in shallow rivers.");
  Put("beta", "b1.md", "# One\n\nBadgers dig setts.");

  // No repository configured: a local one, and the server says plainly it is not off-site.
  HttpResp stats = Do("GET", "/api/v1/stats");
  ASSERT_EQ(stats.status, 200);
  EXPECT_FALSE(stats.body["backups"]["off_site"].get<bool>());
  EXPECT_NE(stats.body["backups"]["warning"].get<std::string>().find("disk"), std::string::npos);

  HttpResp made = Do("POST", "/api/v1/admin/backups", "{}");
  ASSERT_EQ(made.status, 201) << made.raw;
  const std::string snap = made.body["snapshot"]["id"];
  EXPECT_EQ(made.body["snapshot"]["scope"], "full");

  // After the snapshot: alpha gets a new document, beta too.
  Put("alpha", "a2.md", "# Two\n\nHerons nest in colonies.");
  Put("beta", "b2.md", "# Two\n\nBadgers are nocturnal.");
  ASSERT_EQ(Count("alpha"), 2);

  HttpResp restored = Do("POST", "/api/v1/admin/projects/alpha/restore",
                         json{{"snapshot", snap}}.dump());
  ASSERT_EQ(restored.status, 200) << restored.raw;
  EXPECT_EQ(restored.body["mode"], "replace");
  const std::string undo = restored.body["pre_restore_snapshot"];
  EXPECT_FALSE(undo.empty());
  EXPECT_EQ(Count("alpha"), 1);  // back to the snapshot
  EXPECT_EQ(Count("beta"), 2);   // untouched, newer data kept
  HttpResp q = Do("GET", "/api/v1/query/alpha?q=herons+colonies");
  ASSERT_EQ(q.status, 200);
  for (const json& hit : q.body["results"]) EXPECT_NE(hit["source"], "a2.md");

  // The replaced state was kept as a snapshot: restoring it undoes the restore.
  HttpResp redo = Do("POST", "/api/v1/admin/projects/alpha/restore", json{{"snapshot", undo}}.dump());
  ASSERT_EQ(redo.status, 200) << redo.raw;
  EXPECT_EQ(Count("alpha"), 2);

  HttpResp list = Do("GET", "/api/v1/admin/backups");
  ASSERT_EQ(list.status, 200);
  std::set<std::string> triggers;
  for (const json& s : list.body["snapshots"]) triggers.insert(s["trigger"]);
  EXPECT_TRUE(triggers.count("api"));
  EXPECT_TRUE(triggers.count("pre-restore"));

  HttpResp metrics = Do("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.raw.find("kb_backup_last_success_timestamp_seconds 0\n"), std::string::npos);
  EXPECT_NE(metrics.raw.find("kb_backup_last_success_timestamp_seconds "), std::string::npos);
  EXPECT_NE(metrics.raw.find("kb_backup_failures_total 0"), std::string::npos);

  // Bad requests are 4xx with a JSON error, and change nothing.
  EXPECT_EQ(Do("POST", "/api/v1/admin/projects/alpha/restore", R"({"snapshot":1})").status, 400);
  EXPECT_EQ(Do("POST", "/api/v1/admin/projects/alpha/restore",
               R"({"snapshot":"x","before":"2026-01-01T00:00:00Z"})").status, 400);
  EXPECT_EQ(Do("POST", "/api/v1/admin/projects/alpha/restore", R"({"snapshot":"../../etc"})").status / 100, 4);
  EXPECT_EQ(Do("POST", "/api/v1/admin/projects/nope/restore", "{}").status, 404);
  EXPECT_EQ(Do("POST", "/api/v1/admin/backups", R"({"projects":"alpha"})").status, 400);
  EXPECT_EQ(Count("alpha"), 2);
}

// The schedule follows the repository (issue 12): a restarted server knows the last backup, is
// due one interval after it, and a server whose repository has no snapshot backs up at once.
TEST_F(BackupServerE2eTest, TheScheduleAndItsMetricsComeFromTheRepository) {
  InitRepo();
  WriteTestFile(dir_.Sub("docs/a.md"), "# A\n\nHerons wade.");
  Ingest(Data(), "alpha", dir_.Sub("docs"));
  json made = CliJson({"backup", "--data-dir", Data(), "--repo", RepoUrl()});
  const int64_t made_ms = ParseIso8601(made.value("time", "")).value_or(-1);
  ASSERT_GT(made_ms, 0) << made.dump();

  setenv("KB_BACKUP_INTERVAL", "1h", 1);
  setenv("KB_BACKUP_REPOSITORY", RepoUrl().c_str(), 1);
  setenv("KB_BACKUP_PASSWORD", kPassword, 1);
  StartServer();
  auto backups = [&] {
    HttpResp r = Do("GET", "/api/v1/admin/backups");
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.body;
  };
  // The repository is read in the background right after start.
  json listed;
  for (int i = 0; i < 500; ++i) {
    listed = backups();
    if (!listed["repository"]["next_scheduled_backup"].is_null()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(listed["repository"]["next_scheduled_backup"].is_null()) << listed.dump();
  EXPECT_EQ(ParseIso8601(listed["repository"]["next_scheduled_backup"].get<std::string>()),
            made_ms + 3'600'000);
  EXPECT_EQ(ParseIso8601(listed["repository"]["last_success"].get<std::string>()), made_ms);
  EXPECT_EQ(listed["count"], 1);  // the CLI's snapshot is recent: no backup at start
  HttpResp metrics = Do("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const std::string name = "\nkb_backup_last_success_timestamp_seconds ";
  const size_t at = metrics.raw.find(name);
  ASSERT_NE(at, std::string::npos) << metrics.raw;
  EXPECT_NEAR(std::stod(metrics.raw.substr(at + name.size())), made_ms / 1000.0, 0.002);
  server_->Stop(SIGTERM);

  // A repository without a snapshot: the server backs up at once.
  const std::string empty_repo = "file://" + dir_.Sub("repo2");
  ASSERT_EQ(Cli({"repo", "init", "--repo", empty_repo}).exit_code, 0);
  setenv("KB_BACKUP_REPOSITORY", empty_repo.c_str(), 1);
  StartServer();
  for (int i = 0; i < 1500 && backups()["count"] != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  json fresh = backups();
  ASSERT_EQ(fresh["count"], 1) << fresh.dump();
  EXPECT_EQ(fresh["snapshots"][0]["trigger"], "schedule");
  unsetenv("KB_BACKUP_INTERVAL");
  unsetenv("KB_BACKUP_REPOSITORY");
  unsetenv("KB_BACKUP_PASSWORD");
}

// restore_if_empty (issue 12): a server started on a fresh volume restores the latest valid
// snapshot before it serves, says so in the audit log, and does nothing on a directory that has
// its data; an empty repository is a first start; an unreadable one stops the start.
TEST_F(BackupServerE2eTest, RestoreIfEmptyBringsBackTheDataOfAFreshVolume) {
  InitRepo();
  WriteTestFile(dir_.Sub("docs/a.md"), "# A\n\nHerons wade in shallow rivers.");
  Ingest(Data(), "alpha", dir_.Sub("docs"));
  const std::string snap = Backup(Data());
  ASSERT_FALSE(snap.empty());

  setenv("KB_BACKUP_REPOSITORY", RepoUrl().c_str(), 1);
  setenv("KB_BACKUP_PASSWORD", kPassword, 1);
  const std::string fresh = dir_.Sub("fresh-volume/data");  // nothing there yet
  server_ = std::make_unique<ServerProcess>(fresh, dir_.Sub("fresh.log"),
                                            std::vector<std::string>{"--restore-if-empty"});
  ASSERT_TRUE(server_->Start()) << server_->Log();
  client_ = server_->Client();
  EXPECT_EQ(Count("alpha"), 1);
  HttpResp q = Do("GET", "/api/v1/query/alpha?q=herons");
  ASSERT_EQ(q.status, 200);
  ASSERT_FALSE(q.body["results"].empty());
  EXPECT_EQ(q.body["results"][0]["source"], "a.md");
  Put("alpha", "b.md", "# B\n\nHerons nest in colonies.");
  server_->Stop(SIGTERM);
  CliRun audit = Cli({"audit", "list", "--key", "cli", "--json", "--data-dir", fresh});
  bool recorded = false;
  bool old_trail = false;  // the fresh volume had no audit log: the snapshot's came back
  const json page = audit.Json();
  for (const json& e : page["entries"]) {
    const std::string detail = e["detail"];
    recorded = recorded || (e["action"] == "data.restore" &&
                            detail.find("restore_if_empty") != std::string::npos &&
                            detail.find(snap) != std::string::npos &&
                            detail.find("audit log: snapshot") != std::string::npos);
    old_trail = old_trail || e["action"] == "document.create";
  }
  EXPECT_TRUE(recorded) << snap << "\n" << audit.out << audit.err;
  EXPECT_TRUE(old_trail) << audit.out;
  EXPECT_EQ(Cli({"audit", "verify", "--data-dir", fresh}).exit_code, 0);

  // Started again on the same directory: it has its data, nothing is restored over it.
  ASSERT_TRUE(server_->Start()) << server_->Log();
  client_ = server_->Client();
  EXPECT_EQ(Count("alpha"), 2);
  server_->Stop(SIGTERM);

  // An empty repository: a first start, served empty.
  const std::string empty_repo = "file://" + dir_.Sub("repo-empty");
  ASSERT_EQ(Cli({"repo", "init", "--repo", empty_repo}).exit_code, 0);
  setenv("KB_BACKUP_REPOSITORY", empty_repo.c_str(), 1);
  server_ = std::make_unique<ServerProcess>(dir_.Sub("first/data"), dir_.Sub("first.log"),
                                            std::vector<std::string>{"--restore-if-empty"});
  ASSERT_TRUE(server_->Start()) << server_->Log();
  client_ = server_->Client();
  EXPECT_EQ(Do("GET", "/api/v1/projects").body["projects"].size(), 0u);
  server_->Stop(SIGTERM);

  // A repository that cannot be read: the server does not start (serving an empty directory
  // would hide the loss), and says why.
  setenv("KB_BACKUP_REPOSITORY", ("file://" + dir_.Sub("no-such-repo")).c_str(), 1);
  server_ = std::make_unique<ServerProcess>(dir_.Sub("lost/data"), dir_.Sub("lost.log"),
                                            std::vector<std::string>{"--restore-if-empty"});
  EXPECT_FALSE(server_->Start(10000));
  EXPECT_NE(server_->Log().find("restore_if_empty"), std::string::npos) << server_->Log();
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("lost/data/catalog.db")));
  server_.reset();
  unsetenv("KB_BACKUP_REPOSITORY");
  unsetenv("KB_BACKUP_PASSWORD");
}

// The plan's breach runbook (issue 12): keys leak, the admin revokes them all and locks the
// server down, the data is restored from before the breach. The restore brings the data back but
// keeps the security state of now: the revoked keys stay dead, the new admin key works, the
// lockdown stays until lifted. --security-state-from-snapshot takes the snapshot's instead.
TEST_F(BackupServerE2eTest, ABreachRestoreKeepsRevokedKeysDeadAndTheNewAdminKey) {
  InitRepo();
  setenv("KB_BACKUP_REPOSITORY", RepoUrl().c_str(), 1);
  setenv("KB_BACKUP_PASSWORD", kPassword, 1);
  StartServer();
  ASSERT_EQ(Do("POST", "/api/v1/projects", R"({"name":"alpha"})").status, 201);
  Put("alpha", "a1.md", "# One\n\nHerons wade in shallow rivers.");
  HttpResp key = Do("POST", "/api/v1/admin/api-keys", R"({"name":"ci","scope":"write"})");
  ASSERT_EQ(key.status, 201) << key.raw;
  const std::string leaked = key.body["secret"];
  HttpResp made = Do("POST", "/api/v1/admin/backups", "{}");
  ASSERT_EQ(made.status, 201) << made.raw;
  const std::string snap = made.body["snapshot"]["id"];

  // The breach: an intruder writes with the leaked key; the admin revokes every key (a new
  // admin key comes back once) and locks the server down.
  ASSERT_EQ(Call(*client_, "POST", "/api/v1/projects/alpha/documents", leaked,
                 json{{"content", "planted"}, {"source", "evil.md"}}.dump())
                .status,
            201);
  HttpResp revoked = Do("POST", "/api/v1/admin/api-keys/revoke-all", R"({"include_admin":true})");
  ASSERT_EQ(revoked.status, 200) << revoked.raw;
  const std::string admin = revoked.body["new_admin_key"]["secret"];
  ASSERT_EQ(Call(*client_, "POST", "/api/v1/admin/lockdown", admin,
                 R"({"mode":"lockdown","reason":"investigating a leaked key"})")
                .status,
            200);
  server_->Stop(SIGTERM);

  json restored =
      CliJson({"restore", "--repo", RepoUrl(), "--data-dir", Data(), "--snapshot", snap});
  EXPECT_EQ(restored["security_state"], "live") << restored.dump();
  StartServer();
  EXPECT_EQ(Call(*client_, "GET", "/api/v1/projects", leaked).status, 401);
  EXPECT_EQ(Call(*client_, "GET", "/api/v1/projects", kE2eAdminToken).status, 401);
  HttpResp mode = Call(*client_, "GET", "/api/v1/admin/lockdown", admin);
  ASSERT_EQ(mode.status, 200) << mode.raw;
  EXPECT_EQ(mode.body["mode"], "lockdown");
  ASSERT_EQ(Call(*client_, "POST", "/api/v1/admin/lockdown", admin, R"({"mode":"off"})").status,
            200);
  HttpResp docs = Call(*client_, "GET", "/api/v1/projects/alpha/documents?limit=100", admin);
  ASSERT_EQ(docs.status, 200) << docs.raw;
  EXPECT_EQ(docs.body["total"], 1);  // the planted document is gone
  server_->Stop(SIGTERM);

  // Asked for: the snapshot's security state (the leaked key lives again, the new admin key
  // does not exist there).
  CliRun back = Cli({"restore", "--repo", RepoUrl(), "--data-dir", Data(), "--snapshot", snap,
                     "--security-state-from-snapshot"});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_NE(back.out.find("the snapshot's"), std::string::npos) << back.out;
  EXPECT_NE(back.err.find("keys revoked since the snapshot work again"), std::string::npos)
      << back.err;
  StartServer();
  EXPECT_EQ(Call(*client_, "GET", "/api/v1/projects", leaked).status, 200);
  EXPECT_EQ(Call(*client_, "GET", "/api/v1/projects", admin).status, 401);
  unsetenv("KB_BACKUP_REPOSITORY");
  unsetenv("KB_BACKUP_PASSWORD");
}

TEST_F(BackupServerE2eTest, MergeBringsBackOnlyWhatTheLiveProjectLost) {
  StartServer();
  ASSERT_EQ(Do("POST", "/api/v1/projects", R"({"name":"gamma"})").status, 201);
  Put("gamma", "keep.md", "# Keep\n\nOtters hold hands while sleeping.");
  Put("gamma", "lost.md", "# Lost\n\nKingfishers dive for fish.");
  Put("gamma", "edited.md", "# Edited\n\nVersion one of the edited note.");
  HttpResp made = Do("POST", "/api/v1/admin/backups", "{}");
  ASSERT_EQ(made.status, 201) << made.raw;
  const std::string snap = made.body["snapshot"]["id"];

  HttpResp docs = Do("GET", "/api/v1/projects/gamma/documents?limit=10");
  std::string lost_id, edited_id;
  for (const json& d : docs.body["documents"]) {
    if (d["source"] == "lost.md") lost_id = d["id"];
    if (d["source"] == "edited.md") edited_id = d["id"];
  }
  ASSERT_FALSE(lost_id.empty());
  // The live project moves on: one document edited, one soft-deleted.
  Put("gamma", "edited.md", "# Edited\n\nVersion two, newer than the snapshot.");
  ASSERT_EQ(Do("DELETE", "/api/v1/projects/gamma/documents/" + lost_id).status, 204);

  // Soft-deleted documents still exist live: merge must not resurrect or overwrite them.
  HttpResp merged = Do("POST", "/api/v1/admin/projects/gamma/restore",
                       json{{"snapshot", snap}, {"merge", true}}.dump());
  ASSERT_EQ(merged.status, 200) << merged.raw;
  EXPECT_EQ(merged.body["mode"], "merge");
  EXPECT_EQ(merged.body["restored"], 0);
  EXPECT_EQ(merged.body["skipped"], 3);
  HttpResp edited = Do("GET", "/api/v1/projects/gamma/documents/" + edited_id);
  ASSERT_EQ(edited.status, 200);
  EXPECT_EQ(Count("gamma"), 2);
  HttpResp q = Do("GET", "/api/v1/query/gamma?q=version+two+newer");
  ASSERT_EQ(q.status, 200);
  ASSERT_GT(q.body["count"].get<int>(), 0);
  EXPECT_EQ(q.body["results"][0]["document_id"], edited_id);
}

}  // namespace
}  // namespace kb::testing
