// Continuous journal shipping through the real binary (issue 13, first slice): a server with
// ship_interval ships every acknowledged write; after SIGKILL, `restore --project --at now` into
// another data directory brings back every write acknowledged earlier than ship_interval + 1 s
// before the kill (the RPO), with the same ids; the metrics say what was shipped.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "process.h"
#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

using nlohmann::json;

constexpr char kShipPassword[] = "correct horse battery staple";
constexpr int64_t kShipIntervalMs = 100;

class ShippingE2eTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("KB_BACKUP_REPOSITORY");
    unsetenv("KB_BACKUP_PASSWORD");
    unsetenv("KB_SHIP_INTERVAL");
    unsetenv("KB_BACKUP_INTERVAL");
    unsetenv("KB_VERIFY_INTERVAL");
  }
  std::string RepoUrl() const { return "file://" + dir_.Sub("repo"); }
  CliRun Cli(std::vector<std::string> args) {
    EnvMap env;
    env["KB_BACKUP_PASSWORD"] = kShipPassword;
    env["KB_LOG_LEVEL"] = "error";
    return RunProcess(KB_BINARY, args, env, dir_.path());
  }
  static double Metric(const std::string& text, const std::string& line_start) {
    const size_t at = text.find("\n" + line_start + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + line_start.size() + 2));
  }

  TempDir dir_;
};

TEST_F(ShippingE2eTest, AfterSigkillRestoreAtNowHasEveryWriteAcknowledgedBeforeTheRpo) {
  ASSERT_EQ(Cli({"repo", "init", "--repo", RepoUrl()}).exit_code, 0);
  setenv("KB_BACKUP_REPOSITORY", RepoUrl().c_str(), 1);
  setenv("KB_BACKUP_PASSWORD", kShipPassword, 1);
  setenv("KB_SHIP_INTERVAL", (std::to_string(kShipIntervalMs) + "ms").c_str(), 1);
  setenv("KB_BACKUP_INTERVAL", "1h", 1);  // the server backs up once at start (empty repository)
  setenv("KB_VERIFY_INTERVAL", "0", 1);

  ServerProcess server(dir_.Sub("data"), dir_.Sub("server.log"));
  ASSERT_TRUE(server.Start()) << server.Log();
  auto c = server.Client();
  ASSERT_EQ(Call(*c, "POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"rpo"})").status, 201);
  // The restore starts from a snapshot holding the project: one made now (the scheduled one at
  // start may have run before the project existed).
  ASSERT_EQ(Call(*c, "POST", "/api/v1/admin/backups", kE2eAdminToken, "{}").status / 100, 2)
      << server.Log();

  struct Acked {
    std::string id;
    int64_t at_ms;
  };
  std::mutex mu;
  std::map<std::string, Acked> acked;  // source -> id, acknowledgement time
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    auto w = server.Client();
    w->set_read_timeout(10, 0);
    for (int i = 0; !stop; ++i) {
      const std::string source = "note-" + std::to_string(i) + ".md";
      HttpResp r =
          Call(*w, "POST", "/api/v1/projects/rpo/documents", kE2eAdminToken,
               json{{"content", "# Note " + std::to_string(i) + "\n\nHerons and badgers, entry " +
                                    std::to_string(i * 7) + "."},
                    {"source", source}}
                   .dump());
      if (r.status == 0) break;  // the server is gone
      if (r.status / 100 == 2) {
        std::lock_guard lock(mu);
        acked[source] = {r.body["document"]["id"], SystemClock::Default()->NowMillis()};
      }
    }
  });
  // Write for a while (well over the interval + 1 s, so that the RPO window holds writes), look
  // at the metrics, then kill without warning mid-write.
  std::this_thread::sleep_for(std::chrono::milliseconds(2'500));
  HttpResp metrics = Call(*c, "GET", "/metrics", kE2eAdminToken);
  ASSERT_EQ(metrics.status, 200);
  EXPECT_GT(Metric(metrics.raw, "kb_ship_segments_total"), 0) << metrics.raw;
  EXPECT_EQ(Metric(metrics.raw, "kb_ship_failures_total"), 0) << metrics.raw;
  EXPECT_GT(Metric(metrics.raw, "kb_ship_last_success_timestamp_seconds"), 0);
  EXPECT_NE(metrics.raw.find("kb_ship_lag_seconds{project=\"rpo\"}"), std::string::npos);
  // The same figures in the stats, per project.
  HttpResp stats = Call(*c, "GET", "/api/v1/stats", kE2eAdminToken);
  ASSERT_EQ(stats.status, 200) << stats.raw;
  const json& shipping = stats.body["shipping"];
  ASSERT_TRUE(shipping.is_object()) << stats.raw;
  EXPECT_GT(shipping["segments"].get<int64_t>(), 0);
  EXPECT_TRUE(shipping["last_success"].is_string()) << stats.raw;
  ASSERT_EQ(shipping["projects"].size(), 1u) << stats.raw;
  EXPECT_EQ(shipping["projects"][0]["project"], "rpo");
  EXPECT_GT(shipping["projects"][0]["shipped_lsn"].get<int64_t>(), 0) << stats.raw;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int64_t kill_ms = SystemClock::Default()->NowMillis();
  server.Stop(SIGKILL);
  stop = true;
  writer.join();

  std::map<std::string, Acked> must;  // acknowledged before kill - interval - 1 s
  {
    std::lock_guard lock(mu);
    for (const auto& [source, a] : acked) {
      if (a.at_ms < kill_ms - kShipIntervalMs - 1'000) must[source] = a;
    }
    ASSERT_GE(must.size(), 10u) << "too few writes to prove anything: " << acked.size();
  }

  // Restore the project into another data directory, at now.
  const std::string other = dir_.Sub("other");
  CliRun restore = Cli({"restore", "--repo", RepoUrl(), "--data-dir", other, "--project", "rpo",
                        "--at", "now", "--json"});
  ASSERT_EQ(restore.exit_code, 0) << restore.err << restore.out;
  json report = restore.Json();
  EXPECT_GT(report.value("entries_replayed", 0), 0) << restore.out;
  // Measured, for the report: how far before the kill the restored state's last commit lies.
  const int64_t last_commit = ParseIso8601(report.value("commit_time", "")).value_or(0);
  std::cout << "acknowledged " << acked.size() << " writes; restored to LSN "
            << report.value("lsn", 0) << ", last commit " << (kill_ms - last_commit)
            << " ms before the kill" << std::endl;

  // backup list shows the project's restorable window: up to the commit just restored.
  CliRun list = Cli({"backup", "list", "--repo", RepoUrl(), "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  json windows = list.Json()["restorable"];
  ASSERT_EQ(windows.size(), 1u) << list.out;
  EXPECT_EQ(windows[0]["project"], "rpo");
  EXPECT_EQ(windows[0]["latest"], report["commit_time"]) << list.out;
  EXPECT_EQ(windows[0]["latest_lsn"], report["lsn"]);
  EXPECT_LT(ParseIso8601(windows[0]["earliest"].get<std::string>()).value_or(INT64_MAX),
            last_commit);
  EXPECT_FALSE(windows[0].contains("gap"));

  unsetenv("KB_SHIP_INTERVAL");
  setenv("KB_SHIP_INTERVAL", "0", 1);
  ServerProcess restored(other, dir_.Sub("restored.log"));
  ASSERT_TRUE(restored.Start()) << restored.Log();
  auto rc = restored.Client();
  for (const auto& [source, a] : must) {
    HttpResp doc = Call(*rc, "GET", "/api/v1/projects/rpo/documents/" + a.id, kE2eAdminToken);
    ASSERT_EQ(doc.status, 200) << source << " acknowledged " << (kill_ms - a.at_ms)
                               << " ms before the kill is missing: " << doc.raw;
    EXPECT_EQ(doc.body["source"], source);
  }
  restored.Stop(SIGTERM);

  // In the restarted server: the API restores the project to a second in the middle of the
  // writes (a write's commit follows the previous write's acknowledgement, so the split is exact).
  std::vector<Acked> order;
  for (int i = 0; acked.count("note-" + std::to_string(i) + ".md"); ++i) {
    order.push_back(acked["note-" + std::to_string(i) + ".md"]);
  }
  ASSERT_GE(order.size(), 20u);
  const size_t k = order.size() / 2;
  const int64_t t = order[k].at_ms;
  size_t first_after = k + 1;
  while (first_after < order.size() && order[first_after - 1].at_ms < t + 2) ++first_after;
  ASSERT_LT(first_after, order.size());
  setenv("KB_SHIP_INTERVAL", "100ms", 1);
  ASSERT_TRUE(server.Start()) << server.Log();
  auto again = server.Client();
  HttpResp bad_at = Call(*again, "POST", "/api/v1/admin/projects/rpo/restore", kE2eAdminToken,
                         json{{"at", "not a time"}}.dump());
  EXPECT_EQ(bad_at.status, 400) << bad_at.raw;
  HttpResp r = Call(*again, "POST", "/api/v1/admin/projects/rpo/restore", kE2eAdminToken,
                    json{{"at", FormatIso8601(t)}}.dump());
  ASSERT_EQ(r.status, 200) << r.raw << server.Log();
  EXPECT_LE(ParseIso8601(r.body.value("commit_time", "")).value_or(INT64_MAX), t) << r.raw;
  EXPECT_FALSE(r.body.value("pre_restore_snapshot", "").empty()) << r.raw;
  EXPECT_EQ(
      Call(*again, "GET", "/api/v1/projects/rpo/documents/" + order[k].id, kE2eAdminToken).status,
      200);
  EXPECT_EQ(
      Call(*again, "GET", "/api/v1/projects/rpo/documents/" + order[first_after].id, kE2eAdminToken)
          .status,
      404)
      << "a write committed after the point is back";
  server.Stop(SIGTERM);

  // A wrong --at is refused with a clear message and a non-zero exit.
  CliRun bad = Cli({"restore", "--repo", RepoUrl(), "--data-dir", dir_.Sub("third"), "--project",
                    "rpo", "--at", "yesterday-ish"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("RFC 3339"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace kb::testing
