// A second repository through the real binary (issue 12): `repo copy` into a repository with a
// new master key — the way out of a leaked key — and the server's backup_copy_to, which copies
// each backup it makes, shows every repository with its lag in GET /api/v1/admin/backups and
// `backup list`, and exports kb_backup_copy_lag_seconds.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "common/clock.h"
#include "process.h"
#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kOldPassword[] = "the passphrase that leaked";
constexpr char kNewPassword[] = "a fresh passphrase nobody has seen";

class CopyE2eTest : public ::testing::Test {
 protected:
  std::string Data() const { return dir_.Sub("data"); }
  std::string UrlA() const { return "file://" + dir_.Sub("repo-a"); }
  std::string UrlB() const { return "file://" + dir_.Sub("repo-b"); }

  CliRun Cli(std::vector<std::string> args, EnvMap env = {}) {
    env["KB_LOG_LEVEL"] = "error";
    return RunProcess(KB_BINARY, args, env, dir_.path());
  }
  json CliJson(std::vector<std::string> args, EnvMap env = {}) {
    args.push_back("--json");
    CliRun r = Cli(args, env);
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    return r.Json();
  }
  void Ingest(const std::string& name, const std::string& text) {
    WriteTestFile(dir_.Sub("docs/" + name), text);
    CliRun r = Cli({"ingest", "--data-dir", Data(), "--project", "alpha", "--create",
                    "--no-progress", dir_.Sub("docs")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  json Query(const std::string& data, const std::string& q) {
    json j = CliJson({"query", "--data-dir", data, "--project", "alpha", "--top-k", "10", q});
    json out = json::array();
    for (const json& h : j["results"]) out.push_back({h["document_id"], h["chunk_id"], h["score"]});
    return out;
  }

  TempDir dir_;
};

// docs/SECURITY.md, "A leaked backup key": copy into a fresh repository with a new master key,
// switch, retire the old one.
TEST_F(CopyE2eTest, ALeakedKeyIsLeftBehindByCopyingIntoAFreshRepository) {
  const EnvMap old_key{{"KB_BACKUP_PASSWORD", kOldPassword}};
  Ingest("a.md", "# Herons\n\nHerons wade in shallow rivers and wait for fish.");
  ASSERT_EQ(Cli({"repo", "init", "--repo", UrlA()}, old_key).exit_code, 0);
  const std::string first =
      CliJson({"backup", "--data-dir", Data(), "--repo", UrlA()}, old_key).value("snapshot", "");
  Ingest("b.md", "# Badgers\n\nBadgers dig setts under old oak trees.");
  const std::string second =
      CliJson({"backup", "--data-dir", Data(), "--repo", UrlA()}, old_key).value("snapshot", "");
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(second.empty());

  ASSERT_EQ(
      Cli({"repo", "init", "--repo", UrlB()}, {{"KB_BACKUP_PASSWORD", kNewPassword}}).exit_code, 0);
  // Without a destination key the copy is refused before anything is read.
  CliRun no_key = Cli({"repo", "copy", "--from", UrlA(), "--to", UrlB()}, old_key);
  EXPECT_EQ(no_key.exit_code, 2) << no_key.err;
  EXPECT_NE(no_key.err.find("KB_BACKUP_TO_PASSWORD"), std::string::npos) << no_key.err;

  EnvMap both = old_key;
  both["KB_BACKUP_TO_PASSWORD"] = kNewPassword;
  json copied = CliJson({"repo", "copy", "--from", UrlA(), "--to", UrlB(), "--latest", "2"}, both);
  ASSERT_EQ(copied["snapshots"].size(), 2u) << copied.dump();
  EXPECT_EQ(copied["failed"], 0);
  for (const json& row : copied["snapshots"]) {
    EXPECT_TRUE(row["copied"].get<bool>()) << row.dump();
    EXPECT_TRUE(row["verified"].get<bool>()) << row.dump();
  }
  // Again: nothing to do.
  json again = CliJson({"repo", "copy", "--from", UrlA(), "--to", UrlB(), "--latest", "2"}, both);
  for (const json& row : again["snapshots"]) EXPECT_FALSE(row["copied"].get<bool>()) << row.dump();

  // B holds the same snapshots (same ids) under its own master key: the old passphrase does not
  // open it, the new one does, and a restore from B answers as the live data does.
  CliRun with_old = Cli({"backup", "list", "--repo", UrlB()}, old_key);
  EXPECT_NE(with_old.exit_code, 0);
  EXPECT_NE(with_old.err.find("does not open"), std::string::npos) << with_old.err;
  json listed =
      CliJson({"backup", "list", "--repo", UrlB()}, {{"KB_BACKUP_PASSWORD", kNewPassword}});
  ASSERT_EQ(listed["count"], 2) << listed.dump();
  EXPECT_EQ(listed["snapshots"][0]["id"], first);
  EXPECT_EQ(listed["snapshots"][1]["id"], second);
  CliRun check = Cli({"repo", "check", "--repo", UrlB(), "--read-data"},
                     {{"KB_BACKUP_PASSWORD", kNewPassword}});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  const std::string restored = dir_.Sub("restored");
  CliJson({"restore", "--repo", UrlB(), "--data-dir", restored, "--snapshot", second},
          {{"KB_BACKUP_PASSWORD", kNewPassword}});
  EXPECT_EQ(Query(restored, "badgers setts"), Query(Data(), "badgers setts"));
  EXPECT_EQ(Query(restored, "herons rivers"), Query(Data(), "herons rivers"));
}

// A replica made by copying objects in no particular order (bucket replication, a `cp -r` still
// running): its manifest is there, a pack is not yet. `restore` says "incomplete snapshot",
// exits 1 and writes nothing; `backup verify` names it the same way.
TEST_F(CopyE2eTest, RestoringAReplicaThatLacksAPackSaysIncompleteSnapshot) {
  const EnvMap key{{"KB_BACKUP_PASSWORD", kOldPassword}};
  Ingest("a.md", "# Herons\n\nHerons wade in shallow rivers and wait for fish.");
  ASSERT_EQ(Cli({"repo", "init", "--repo", UrlA()}, key).exit_code, 0);
  const std::string id =
      CliJson({"backup", "--data-dir", Data(), "--repo", UrlA()}, key).value("snapshot", "");
  ASSERT_FALSE(id.empty());
  fs::copy(dir_.Sub("repo-a"), dir_.Sub("replica"), fs::copy_options::recursive);
  std::vector<fs::path> packs;
  for (const auto& e : fs::recursive_directory_iterator(dir_.Sub("replica/data"))) {
    if (e.is_regular_file()) packs.push_back(e.path());
  }
  ASSERT_FALSE(packs.empty());
  fs::remove(packs.front());
  const std::string replica = "file://" + dir_.Sub("replica");

  CliRun restore = Cli({"restore", "--repo", replica, "--data-dir", dir_.Sub("restored")}, key);
  EXPECT_EQ(restore.exit_code, 1) << restore.out << restore.err;
  EXPECT_NE(restore.err.find("incomplete snapshot " + id + ": 1 objects missing"),
            std::string::npos)
      << restore.err;
  EXPECT_NE(restore.err.find("replication"), std::string::npos) << restore.err;
  EXPECT_EQ(restore.err.find("corruption"), std::string::npos) << restore.err;
  EXPECT_FALSE(fs::exists(dir_.Sub("restored/catalog.db")));
  CliRun verify = Cli({"backup", "verify", "--repo", replica}, key);
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_NE((verify.out + verify.err).find("incomplete snapshot " + id), std::string::npos)
      << verify.out << verify.err;
  // The original is whole: the same restore from it works.
  CliRun ok = Cli({"restore", "--repo", UrlA(), "--data-dir", dir_.Sub("restored-a")}, key);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST_F(CopyE2eTest, TheServerCopiesEachBackupAndReportsTheLag) {
  const std::string key_file = dir_.Sub("b.key");
  WriteTestFile(key_file, std::string(48, 'k') + "0123456789abcdef");
  ASSERT_EQ(
      Cli({"repo", "init", "--repo", UrlA()}, {{"KB_BACKUP_PASSWORD", kOldPassword}}).exit_code, 0);
  ASSERT_EQ(Cli({"repo", "init", "--repo", UrlB(), "--key-file", key_file}).exit_code, 0);
  Ingest("a.md", "# Herons\n\nHerons wade in shallow rivers and wait for fish.");

  setenv("KB_BACKUP_REPOSITORY", UrlA().c_str(), 1);
  setenv("KB_BACKUP_PASSWORD", kOldPassword, 1);
  setenv("KB_BACKUP_INTERVAL", "0", 1);  // backups only when asked: the test decides when
  ServerProcess server(Data(), dir_.Sub("server.log"),
                       {"--backup-copy-to", UrlB() + " key_file=" + key_file});
  ASSERT_TRUE(server.Start()) << server.Log();
  unsetenv("KB_BACKUP_REPOSITORY");
  unsetenv("KB_BACKUP_PASSWORD");
  unsetenv("KB_BACKUP_INTERVAL");
  auto client = server.Client();

  HttpResp made = Call(*client, "POST", "/api/v1/admin/backups", kE2eAdminToken, "{}");
  ASSERT_EQ(made.status, 201) << made.raw;
  const std::string id = made.body["snapshot"]["id"];

  HttpResp listed = Call(*client, "GET", "/api/v1/admin/backups", kE2eAdminToken);
  ASSERT_EQ(listed.status, 200) << listed.raw;
  const json copies = listed.body["repository"]["copies"];
  ASSERT_EQ(copies.size(), 1u) << listed.raw;
  EXPECT_EQ(copies[0]["repository"], UrlB());
  EXPECT_EQ(copies[0]["last_copied"], id);
  EXPECT_EQ(copies[0]["failures"], 0);
  ASSERT_FALSE(copies[0]["lag_seconds"].is_null()) << listed.raw;
  EXPECT_EQ(copies[0]["lag_seconds"].get<double>(), 0.0);

  // The copy is a snapshot of B under B's key, with the same id.
  json in_b = CliJson({"backup", "list", "--repo", UrlB(), "--key-file", key_file});
  ASSERT_EQ(in_b["count"], 1) << in_b.dump();
  EXPECT_EQ(in_b["snapshots"][0]["id"], id);

  HttpResp metrics = Call(*client, "GET", "/metrics", kE2eAdminToken);
  ASSERT_EQ(metrics.status, 200);
  const std::string series = "kb_backup_copy_lag_seconds{repository=\"" + UrlB() + "\"} ";
  const size_t at = metrics.raw.find(series);
  ASSERT_NE(at, std::string::npos) << metrics.raw;
  EXPECT_EQ(std::stod(metrics.raw.substr(at + series.size())), 0.0);
  EXPECT_NE(metrics.raw.find("kb_backup_copy_failures_total{repository=\"" + UrlB() + "\"} 0"),
            std::string::npos);

  // B becomes unusable (its key file is gone): the next backup still succeeds in A, the copy
  // fails and is counted, and the lag is how far B is behind A's newest full snapshot.
  server.Stop(SIGTERM);
  fs::rename(key_file, key_file + ".moved");
  setenv("KB_BACKUP_REPOSITORY", UrlA().c_str(), 1);
  setenv("KB_BACKUP_PASSWORD", kOldPassword, 1);
  setenv("KB_BACKUP_INTERVAL", "0", 1);
  ServerProcess again(Data(), dir_.Sub("server2.log"),
                      {"--backup-copy-to", UrlB() + " key_file=" + key_file});
  ASSERT_TRUE(again.Start()) << again.Log();
  unsetenv("KB_BACKUP_REPOSITORY");
  unsetenv("KB_BACKUP_PASSWORD");
  unsetenv("KB_BACKUP_INTERVAL");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // ids sort to the second
  auto client2 = again.Client();
  HttpResp second = Call(*client2, "POST", "/api/v1/admin/backups", kE2eAdminToken, "{}");
  ASSERT_EQ(second.status, 201) << second.raw;
  fs::rename(key_file + ".moved", key_file);
  HttpResp after = Call(*client2, "GET", "/api/v1/admin/backups", kE2eAdminToken);
  const json c = after.body["repository"]["copies"][0];
  EXPECT_EQ(c["failures"], 1) << after.raw;
  EXPECT_FALSE(c["last_error"].is_null()) << after.raw;
  // `backup list` (KB_BACKUP_COPY_TO names the copy) shows B one snapshot behind: lag = the time
  // between the two full snapshots.
  json both = CliJson({"backup", "list", "--repo", UrlA()},
                      {{"KB_BACKUP_PASSWORD", kOldPassword},
                       {"KB_BACKUP_COPY_TO", UrlB() + " key_file=" + key_file}});
  ASSERT_EQ(both["copies"].size(), 1u) << both.dump();
  const int64_t t1 = ParseIso8601(made.body["snapshot"]["time"].get<std::string>()).value_or(0);
  const int64_t t2 = ParseIso8601(second.body["snapshot"]["time"].get<std::string>()).value_or(0);
  ASSERT_GT(t2, t1);
  EXPECT_NEAR(both["copies"][0]["lag_seconds"].get<double>(), (t2 - t1) / 1000.0, 0.002)
      << both.dump();
  again.Stop(SIGTERM);
}

}  // namespace
}  // namespace kb::testing
