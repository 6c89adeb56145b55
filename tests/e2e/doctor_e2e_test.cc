// `knowledgebeast doctor` through the real binary, both ways in (--data-dir and --url against a
// running server): a fresh install with the local default repository fails naming "backups only
// local"; a configured one (a repository outside the data directory, backed up and verified,
// audit_reads on) has no failure; an unreadable repository, an old backup, a target that cannot
// be read and bad flags each give their exit code.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "process.h"
#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::set<std::string> kCheckIds = {"backups_off_site", "backup_age",    "backup_verification",
                                         "keys_expiry",      "admin_keys",    "tls",
                                         "metrics_auth",     "address_rules", "audit_reads",
                                         "audit_off_site"};

class DoctorE2eTest : public ::testing::Test {
 protected:
  std::string Data() const { return dir_.Sub("data"); }
  std::string RepoUrl() const { return "file://" + dir_.Sub("repo"); }

  CliRun Cli(std::vector<std::string> args, EnvMap env = {}) {
    env["KB_LOG_LEVEL"] = "error";
    return RunProcess(KB_BINARY, args, env, dir_.path());
  }
  // The verdict of each check in a --json report (and that every check is there once).
  std::map<std::string, std::string> Verdicts(const CliRun& r) {
    json j = r.Json();
    std::map<std::string, std::string> out;
    EXPECT_TRUE(j.is_object() && j["checks"].is_array()) << r.out << r.err;
    if (!j.is_object() || !j["checks"].is_array()) return out;
    for (const json& c : j["checks"]) {
      EXPECT_TRUE(c["finding"].is_string() && c["fix"].is_string()) << c.dump();
      EXPECT_TRUE(out.emplace(c.value("id", ""), c.value("verdict", "")).second) << c.dump();
    }
    std::set<std::string> ids;
    for (const auto& [id, verdict] : out) ids.insert(id);
    EXPECT_EQ(ids, kCheckIds) << r.out;
    out["overall"] = j.value("verdict", "");
    return out;
  }
  // A repository outside the data directory holding one verified full backup of Data(), and a
  // config file that names it (with audit_reads on).
  std::string ConfigureRepository() {
    const std::string key = dir_.Sub("repo.key");
    WriteTestFile(key, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
    fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
    for (std::vector<std::string> args :
         {std::vector<std::string>{"repo", "init", "--repo", RepoUrl(), "--key-file", key},
          {"backup", "--data-dir", Data(), "--repo", RepoUrl(), "--key-file", key},
          {"backup", "verify", "--repo", RepoUrl(), "--key-file", key}}) {
      CliRun r = Cli(args);
      EXPECT_EQ(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.err << r.out;
    }
    const std::string config = dir_.Sub("kb.json");
    WriteTestFile(
        config,
        json{{"backup_repository", RepoUrl()}, {"backup_key_file", key}, {"audit_reads", true}}
            .dump());
    return config;
  }

  TempDir dir_;
};

TEST_F(DoctorE2eTest, FreshServerWithTheLocalDefaultFailsBothWays) {
  ServerProcess server(Data(), dir_.Sub("server.log"));
  ASSERT_TRUE(server.Start()) << server.Log();
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port());

  CliRun remote = Cli({"doctor", "--url", url, "--api-key", kE2eAdminToken});
  EXPECT_EQ(remote.exit_code, 1) << remote.err << remote.out;
  EXPECT_NE(remote.out.find("backups only local"), std::string::npos) << remote.out;
  EXPECT_NE(remote.out.find("fix: "), std::string::npos) << remote.out;
  EXPECT_NE(remote.out.find("verdict: fail"), std::string::npos) << remote.out;

  CliRun direct = Cli({"doctor", "--data-dir", Data()});
  EXPECT_EQ(direct.exit_code, 1) << direct.err << direct.out;
  EXPECT_NE(direct.out.find("backups only local"), std::string::npos) << direct.out;

  for (const std::vector<std::string>& way :
       {std::vector<std::string>{"--url", url, "--api-key", kE2eAdminToken},
        std::vector<std::string>{"--data-dir", Data()}}) {
    std::vector<std::string> args = {"doctor", "--json"};
    args.insert(args.end(), way.begin(), way.end());
    CliRun r = Cli(args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    std::map<std::string, std::string> v = Verdicts(r);
    EXPECT_EQ(v["overall"], "fail");
    EXPECT_EQ(v["backups_off_site"], "fail") << way[0];
    EXPECT_EQ(v["backup_age"], "fail") << way[0];  // the schedule is off in e2e servers
    EXPECT_EQ(v["audit_off_site"], "warn") << way[0];
    EXPECT_EQ(v["audit_reads"], "warn") << way[0];
    EXPECT_EQ(v["keys_expiry"], "warn") << way[0];  // the admin key never expires
    EXPECT_EQ(v["tls"], "ok") << way[0];            // loopback
    EXPECT_EQ(v["address_rules"], "ok") << way[0];
  }

  // Nothing was created by asking: the local default repository still does not exist.
  EXPECT_FALSE(fs::exists(Data() + "/backups/repository/config"));

  // A key that may not administer cannot read the report: the target is unreadable (2).
  HttpResp key = Call(*server.Client(), "POST", "/api/v1/admin/api-keys", kE2eAdminToken,
                      R"({"name":"reader","scope":"read"})");
  ASSERT_EQ(key.status, 201) << key.raw;
  CliRun refused =
      Cli({"doctor", "--url", url, "--api-key", key.body["secret"].get<std::string>()});
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_NE(refused.err.find("HTTP 403"), std::string::npos) << refused.err;
  // A bad limit is refused by the route too (400), not ignored.
  HttpResp bad =
      Call(*server.Client(), "GET", "/api/v1/admin/posture?backup_objective=soon", kE2eAdminToken);
  EXPECT_EQ(bad.status, 400) << bad.raw;
  server.Stop(SIGTERM);
}

TEST_F(DoctorE2eTest, ConfiguredInstallationHasNoFailureBothWays) {
  ASSERT_EQ(Cli({"init", "--data-dir", Data()}).exit_code, 0);
  const std::string config = ConfigureRepository();

  CliRun direct = Cli({"doctor", "--json", "--data-dir", Data(), "--config", config});
  EXPECT_EQ(direct.exit_code, 0) << direct.err << direct.out;
  std::map<std::string, std::string> v = Verdicts(direct);
  EXPECT_EQ(v["overall"], "warn");
  // A directory of this host is off-site only if it is a mount: doctor cannot know, so warns.
  EXPECT_EQ(v["backups_off_site"], "warn");
  EXPECT_EQ(v["backup_age"], "ok");
  EXPECT_EQ(v["backup_verification"], "ok");
  EXPECT_EQ(v["audit_reads"], "ok");
  // Warnings fail only with --strict.
  EXPECT_EQ(Cli({"doctor", "--strict", "--data-dir", Data(), "--config", config}).exit_code, 1);

  // The objective is the caller's: one second, two seconds after the backup, fails.
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  CliRun late = Cli(
      {"doctor", "--json", "--data-dir", Data(), "--config", config, "--backup-objective", "1s"});
  EXPECT_EQ(late.exit_code, 1) << late.out;
  EXPECT_EQ(Verdicts(late)["backup_age"], "fail");

  // The running server, started with the same configuration, reports the same.
  ServerProcess server(Data(), dir_.Sub("server.log"), {"--config", config});
  ASSERT_TRUE(server.Start()) << server.Log();
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port());
  CliRun remote = Cli({"doctor", "--json", "--url", url, "--api-key", kE2eAdminToken});
  EXPECT_EQ(remote.exit_code, 0) << remote.err << remote.out;
  std::map<std::string, std::string> rv = Verdicts(remote);
  EXPECT_EQ(rv["backups_off_site"], "warn");
  EXPECT_EQ(rv["backup_verification"], "warn");  // e2e servers run without scheduled verify
  EXPECT_EQ(rv["audit_reads"], "ok");
  CliRun remote_late = Cli(
      {"doctor", "--json", "--url", url, "--api-key", kE2eAdminToken, "--backup-objective", "1s"});
  EXPECT_EQ(remote_late.exit_code, 1) << remote_late.out;
  EXPECT_EQ(Verdicts(remote_late)["backup_age"], "fail");
  server.Stop(SIGTERM);
}

TEST_F(DoctorE2eTest, AnUnreadableRepositoryIsAFailureNotACrash) {
  ASSERT_EQ(Cli({"init", "--data-dir", Data()}).exit_code, 0);
  const std::string config = ConfigureRepository();
  // Another key than the repository's: nothing can be read, so nothing can be restored.
  WriteTestFile(dir_.Sub("repo.key"),
                "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\n");
  CliRun r = Cli({"doctor", "--json", "--data-dir", Data(), "--config", config});
  EXPECT_EQ(r.exit_code, 1) << r.err << r.out;
  std::map<std::string, std::string> v = Verdicts(r);
  EXPECT_EQ(v["backup_age"], "fail");
  EXPECT_EQ(v["backup_verification"], "fail");
  EXPECT_NE(r.out.find("cannot read the backup repository"), std::string::npos) << r.out;
}

TEST_F(DoctorE2eTest, ListenAddressAndTlsAreJudgedAsConfiguredAndAsRunning) {
  ASSERT_EQ(Cli({"init", "--data-dir", Data()}).exit_code, 0);
  const std::string cert = dir_.Sub("cert.pem"), key = dir_.Sub("key.pem");
  const std::string gen =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
      "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '" +
      key + "' -out '" + cert + "' > /dev/null 2>&1";
  ASSERT_EQ(std::system(gen.c_str()), 0);

  // Configured for every interface without TLS: a failure, and /metrics and rules warnings.
  CliRun open = Cli({"doctor", "--json", "--data-dir", Data()}, {{"KB_HOST", "0.0.0.0"}});
  EXPECT_EQ(open.exit_code, 1) << open.out;
  std::map<std::string, std::string> v = Verdicts(open);
  EXPECT_EQ(v["tls"], "fail");
  EXPECT_EQ(v["metrics_auth"], "warn");
  EXPECT_EQ(v["address_rules"], "warn");
  CliRun closed =
      Cli({"doctor", "--json", "--data-dir", Data()}, {{"KB_HOST", "0.0.0.0"},
                                                       {"KB_TLS_CERT_FILE", cert},
                                                       {"KB_TLS_KEY_FILE", key},
                                                       {"KB_METRICS_REQUIRE_AUTH", "true"}});
  v = Verdicts(closed);
  EXPECT_EQ(v["tls"], "ok");
  EXPECT_EQ(v["metrics_auth"], "ok");

  // The running server says what it runs with: HTTPS, and the rules set through the API.
  ServerProcess server(Data(), dir_.Sub("server.log"),
                       {"--tls-cert-file", cert, "--tls-key-file", key});
  server.UseTls(cert);
  ASSERT_TRUE(server.Start()) << server.Log();
  HttpResp rules = Call(*server.Client(), "PUT", "/api/v1/admin/ip-rules", kE2eAdminToken,
                        R"({"allow":["127.0.0.0/8"]})");
  ASSERT_EQ(rules.status, 200) << rules.raw;
  const std::string url = "https://127.0.0.1:" + std::to_string(server.port());
  CliRun remote =
      Cli({"doctor", "--url", url, "--api-key", kE2eAdminToken}, {{"SSL_CERT_FILE", cert}});
  EXPECT_EQ(remote.exit_code, 1) << remote.err << remote.out;  // the local default still fails
  EXPECT_NE(remote.out.find("HTTPS on 127.0.0.1"), std::string::npos) << remote.out;
  EXPECT_NE(remote.out.find("1 allow and 0 deny rules"), std::string::npos) << remote.out;
  server.Stop(SIGTERM);
}

TEST_F(DoctorE2eTest, UnreadableTargetsAndBadFlagsExitTwo) {
  // Not a data directory: said so, and nothing is created there.
  CliRun none = Cli({"doctor", "--data-dir", dir_.Sub("nowhere")});
  EXPECT_EQ(none.exit_code, 2) << none.out;
  EXPECT_NE(none.err.find("not a data directory"), std::string::npos) << none.err;
  EXPECT_FALSE(fs::exists(dir_.Sub("nowhere")));
  // No server there.
  CliRun dead = Cli(
      {"doctor", "--url", "http://127.0.0.1:" + std::to_string(PickFreePort()), "--api-key", "x"});
  EXPECT_EQ(dead.exit_code, 2) << dead.out;
  EXPECT_NE(dead.err.find("cannot reach"), std::string::npos) << dead.err;
  // Bad limits, named by their flags.
  ASSERT_EQ(Cli({"init", "--data-dir", Data()}).exit_code, 0);
  CliRun objective = Cli({"doctor", "--data-dir", Data(), "--backup-objective", "soon"});
  EXPECT_EQ(objective.exit_code, 2);
  EXPECT_NE(objective.err.find("--backup-objective"), std::string::npos) << objective.err;
  CliRun admins = Cli({"doctor", "--data-dir", Data(), "--max-admin-keys=-2"});
  EXPECT_EQ(admins.exit_code, 2);
  EXPECT_NE(admins.err.find("--max-admin-keys"), std::string::npos) << admins.err;
}

}  // namespace
}  // namespace kb::testing
