// Containment against the real `knowledgebeast serve` process: lockdown and read-only through
// the API and through the CLI on the data directory (running and stopped server), persistence
// across restarts, rate limits with Retry-After, address rules (including the self-lockout
// guard, a forced deny of our own address and the way back), and HTTPS with a certificate
// generated at test time.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

using nlohmann::json;

struct CliResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs the real binary with `args`; output captured through a file. The timeout keeps a `serve`
// that wrongly starts from hanging the test.
CliResult RunBinary(const std::vector<std::string>& args, const std::string& out_path) {
  std::string cmd = "timeout 60 " + ShellQuote(KB_BINARY);
  for (const std::string& a : args) cmd += " " + ShellQuote(a);
  cmd += " > " + ShellQuote(out_path) + " 2>&1";
  const int rc = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.output = ReadAll(out_path);
  return r;
}

class ContainmentE2eTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra = {}) {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), dir_.Sub("server.log"), extra);
    if (!tls_ca_.empty()) server_->UseTls(tls_ca_);
    ASSERT_TRUE(server_->Start()) << server_->Log();
    client_ = server_->Client();
  }
  void Restart() {
    server_->Stop(SIGTERM);
    StartServer(extra_);
  }
  void TearDown() override {
    if (server_) server_->Stop(SIGTERM);
  }
  HttpResp Do(const std::string& method, const std::string& path,
              const std::string& key = kE2eAdminToken, const std::string& body = "") {
    return Call(*client_, method, path, key, body);
  }
  std::string NewKey(const std::string& scope) {
    HttpResp r = Do("POST", "/api/v1/admin/api-keys", kE2eAdminToken,
                    json{{"name", "containment " + scope}, {"scope", scope}}.dump());
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.body.value("secret", "");
  }
  CliResult Cli(std::vector<std::string> args) {
    return RunBinary(args, dir_.Sub("cli-" + std::to_string(++cli_runs_) + ".out"));
  }
  // Polls until `path` answers `status` for `key` (the server re-reads settings every second).
  bool Eventually(int status, const std::string& path, const std::string& key) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Do("GET", path, key).status == status) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void ExpectError(const HttpResp& r, int status, const std::string& code,
                   const std::vector<std::string>& needles) {
    EXPECT_EQ(r.status, status) << r.raw;
    ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << r.raw;
    EXPECT_EQ(r.body["error"]["code"], code) << r.raw;
    EXPECT_TRUE(r.body["error"].contains("request_id")) << r.raw;
    const std::string message = r.body["error"].value("message", "");
    for (const std::string& n : needles) {
      EXPECT_NE(message.find(n), std::string::npos) << "'" << n << "' not in: " << message;
    }
  }

  TempDir dir_;
  std::vector<std::string> extra_;
  std::string tls_ca_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<httplib::Client> client_;
  int cli_runs_ = 0;
};

// Notifications from the real server: a lockdown switched through the API reaches a webhook
// (a receiver on a loopback port) with who did it and why, and /metrics counts it.
TEST_F(ContainmentE2eTest, ALockdownIsToldToTheWebhook) {
  httplib::Server hook;
  std::mutex mu;
  std::vector<json> got;
  hook.Post("/hook", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu);
    got.push_back(json::parse(req.body, nullptr, false));
    res.status = 204;
  });
  hook.set_keep_alive_max_count(1);  // the server's curl keeps connections: close each at once
  const int port = hook.bind_to_any_port("127.0.0.1");
  std::thread hook_thread([&] { hook.listen_after_bind(); });
  struct Stop {
    httplib::Server& s;
    std::thread& t;
    ~Stop() {
      s.stop();
      t.join();
    }
  } stop{hook, hook_thread};
  const std::string config = dir_.Sub("notify.json");
  WriteTestFile(
      config,
      json{{"notify_webhook_url", {"http://127.0.0.1:" + std::to_string(port) + "/hook"}}}.dump());
  StartServer({"--config", config});
  HttpResp set = Do("POST", "/api/v1/admin/lockdown", kE2eAdminToken,
                    R"({"mode":"lockdown","reason":"incident 9: key leak"})");
  ASSERT_EQ(set.status, 200) << set.raw;
  json message;
  for (int i = 0; i < 500 && message.is_null(); ++i) {
    {
      std::lock_guard lock(mu);
      if (!got.empty()) message = got.front();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(message.is_object()) << "no notification; server log:\n" << server_->Log();
  EXPECT_EQ(message["event"], "lockdown.set");
  EXPECT_EQ(message["status"], "changed");
  EXPECT_NE(message["text"].get<std::string>().find("lockdown"), std::string::npos) << message;
  HttpResp metrics = Do("GET", "/metrics", kE2eAdminToken);
  EXPECT_NE(metrics.raw.find("kb_notify_sent_total 1"), std::string::npos) << metrics.raw;
}

TEST_F(ContainmentE2eTest, LockdownServesOnlyAdminsSurvivesRestartAndLifts) {
  StartServer();
  ASSERT_EQ(Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"vault"})").status, 201);
  const std::string read = NewKey("read");
  ASSERT_EQ(Do("GET", "/api/v1/projects", read).status, 200);

  HttpResp bad = Do("POST", "/api/v1/admin/lockdown", kE2eAdminToken, R"({"mode":"lockdown"})");
  ExpectError(bad, 400, "invalid_argument", {"reason"});
  ExpectError(Do("POST", "/api/v1/admin/lockdown", kE2eAdminToken, R"({"mode":"sideways"})"), 400,
              "invalid_argument", {"mode"});
  ExpectError(Do("POST", "/api/v1/admin/lockdown", read, R"({"mode":"lockdown","reason":"x"})"),
              403, "permission_denied", {});

  HttpResp set = Do("POST", "/api/v1/admin/lockdown", kE2eAdminToken,
                    R"({"mode":"lockdown","reason":"incident 7: key leak"})");
  ASSERT_EQ(set.status, 200) << set.raw;
  EXPECT_EQ(set.body["mode"], "lockdown");
  EXPECT_EQ(set.body["reason"], "incident 7: key leak");
  EXPECT_TRUE(set.body["since"].is_string());

  ExpectError(Do("GET", "/api/v1/projects", read), 503, "unavailable",
              {"lockdown", "incident 7: key leak"});
  ExpectError(Do("POST", "/api/v1/projects/vault/query", read, R"({"query":"x"})"), 503,
              "unavailable", {"lockdown"});
  EXPECT_EQ(Do("GET", "/api/v1/projects", "").status, 401) << "no key is still 401";
  EXPECT_EQ(Do("GET", "/api/v1/projects").status, 200) << "the admin still works";
  HttpResp health = Do("GET", "/health", "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body["mode"], "lockdown");
  EXPECT_EQ(health.raw.find("incident 7"), std::string::npos) << "public: the mode, not why";
  HttpResp ready = Do("GET", "/ready", "");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body["mode"], "lockdown");

  Restart();
  ExpectError(Do("GET", "/api/v1/projects", read), 503, "unavailable", {"incident 7"});
  EXPECT_EQ(Do("GET", "/api/v1/admin/lockdown").body["mode"], "lockdown");

  HttpResp lift = Do("POST", "/api/v1/admin/lockdown", kE2eAdminToken, R"({"mode":"off"})");
  ASSERT_EQ(lift.status, 200) << lift.raw;
  EXPECT_EQ(Do("GET", "/api/v1/projects", read).status, 200);
  EXPECT_EQ(Do("GET", "/health", "").body["mode"], "off");
}

TEST_F(ContainmentE2eTest, ReadOnlyServesReadsAndRefusesWrites) {
  StartServer();
  ASSERT_EQ(Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"books"})").status, 201);
  ASSERT_EQ(Do("POST", "/api/v1/projects/books/documents", kE2eAdminToken,
               R"({"content":"Owls hunt at night.","source":"owls.txt"})")
                .status,
            201);
  const std::string write = NewKey("write");
  ASSERT_EQ(Do("POST", "/api/v1/admin/lockdown", kE2eAdminToken,
               R"({"mode":"read_only","reason":"storage migration"})")
                .status,
            200);

  EXPECT_EQ(Do("GET", "/api/v1/projects/books/documents", write).status, 200);
  EXPECT_EQ(Do("POST", "/api/v1/projects/books/query", write, R"({"query":"owls"})").status, 200);
  EXPECT_EQ(Do("GET", "/api/v1/query/books?q=owls", write).status, 200);
  ExpectError(Do("POST", "/api/v1/projects/books/documents", write,
                 R"({"content":"Bats too.","source":"bats.txt"})"),
              503, "unavailable", {"read-only", "storage migration"});
  ExpectError(Do("POST", "/api/v1/projects/books/documents", kE2eAdminToken,
                 R"({"content":"Bats too.","source":"bats.txt"})"),
              503, "unavailable", {"read-only"});
  ExpectError(Do("DELETE", "/api/v1/projects/books"), 503, "unavailable", {"read-only"});
  // Node administration keeps working: keys can still be created and revoked.
  EXPECT_EQ(Do("POST", "/api/v1/admin/api-keys", kE2eAdminToken,
               R"({"name":"incident responder","scope":"read"})")
                .status,
            201);
  EXPECT_EQ(Do("GET", "/api/v1/projects/books/documents").body["total"], 1) << "nothing written";

  ASSERT_EQ(Do("POST", "/api/v1/admin/lockdown", kE2eAdminToken, R"({"mode":"off"})").status, 200);
  EXPECT_EQ(Do("POST", "/api/v1/projects/books/documents", write,
               R"({"content":"Bats too.","source":"bats.txt"})")
                .status,
            201);
}

TEST_F(ContainmentE2eTest, CliSetsTheModeInTheDataDirectoryOfARunningAndAStoppedServer) {
  StartServer();
  const std::string read = NewKey("read");
  const std::string data = dir_.Sub("data");

  CliResult no_reason = Cli({"lockdown", "on", "--data-dir", data});
  EXPECT_NE(no_reason.exit_code, 0);
  EXPECT_NE(no_reason.output.find("reason"), std::string::npos) << no_reason.output;
  CliResult not_data = Cli({"lockdown", "status", "--data-dir", dir_.Sub("nowhere")});
  EXPECT_NE(not_data.exit_code, 0);
  EXPECT_NE(not_data.output.find("not a data directory"), std::string::npos) << not_data.output;

  CliResult on = Cli({"lockdown", "on", "--reason", "cli drill", "--data-dir", data});
  ASSERT_EQ(on.exit_code, 0) << on.output;
  EXPECT_NE(on.output.find("LOCKDOWN"), std::string::npos) << on.output;
  EXPECT_TRUE(Eventually(503, "/api/v1/projects", read)) << "the running server picked it up";
  ExpectError(Do("GET", "/api/v1/projects", read), 503, "unavailable", {"cli drill"});

  CliResult status = Cli({"lockdown", "status", "--json", "--data-dir", data});
  ASSERT_EQ(status.exit_code, 0) << status.output;
  json s = json::parse(status.output, nullptr, false);
  ASSERT_TRUE(s.is_object()) << status.output;
  EXPECT_EQ(s["mode"], "lockdown");
  EXPECT_EQ(s["set_by"], "cli");

  // Through the server (--url) as well.
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->port());
  CliResult remote_bad = Cli({"lockdown", "off", "--url", url, "--api-key", read});
  EXPECT_NE(remote_bad.exit_code, 0) << remote_bad.output;
  CliResult remote = Cli({"lockdown", "off", "--url", url, "--api-key", kE2eAdminToken, "--json"});
  ASSERT_EQ(remote.exit_code, 0) << remote.output;
  EXPECT_EQ(json::parse(remote.output, nullptr, false)["mode"], "off");
  EXPECT_EQ(Do("GET", "/api/v1/projects", read).status, 200);

  // A stopped server starts in the mode the data directory holds.
  server_->Stop(SIGTERM);
  CliResult ro =
      Cli({"lockdown", "read-only", "--reason", "offline maintenance", "--data-dir", data});
  ASSERT_EQ(ro.exit_code, 0) << ro.output;
  StartServer();
  EXPECT_EQ(Do("GET", "/health", "").body["mode"], "read_only");
  ExpectError(Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"new"})"), 503,
              "unavailable", {"offline maintenance"});
  EXPECT_EQ(Do("GET", "/api/v1/projects", read).status, 200);
}

TEST_F(ContainmentE2eTest, RateLimitAnswers429WithRetryAfter) {
  extra_ = {"--rate-limit-per-second", "1", "--rate-limit-burst", "3"};
  StartServer(extra_);
  const std::string a = NewKey("read");  // the admin key's own bucket pays for these two
  const std::string b = NewKey("read");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Do("GET", "/api/v1/projects", a).status, 200) << i;
  HttpResp limited = Do("GET", "/api/v1/projects", a);
  ExpectError(limited, 429, "rate_limited", {"rate limit"});
  auto it = limited.headers.find("Retry-After");
  ASSERT_NE(it, limited.headers.end()) << limited.raw;
  const int retry = std::atoi(it->second.c_str());
  EXPECT_GE(retry, 1);
  EXPECT_EQ(std::to_string(retry), it->second) << "an integer number of seconds";
  EXPECT_EQ(Do("GET", "/api/v1/projects", b).status, 200) << "another key has its own bucket";
  EXPECT_EQ(Do("GET", "/health", "").status, 200) << "probes are not rate limited";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100 * retry));
  EXPECT_EQ(Do("GET", "/api/v1/projects", a).status, 200) << "refilled after Retry-After";
  // Unauthenticated requests are limited per address: key guessing is slowed too.
  int last = 0;
  for (int i = 0; i < 6; ++i)
    last = Do("GET", "/api/v1/projects", "kb_guess" + std::to_string(i)).status;
  EXPECT_EQ(last, 429);
}

TEST_F(ContainmentE2eTest, AddressRulesRefuseWith403AndGuardTheAdminsOwnAddress) {
  StartServer();
  HttpResp initial = Do("GET", "/api/v1/admin/ip-rules");
  ASSERT_EQ(initial.status, 200) << initial.raw;
  EXPECT_EQ(initial.body["your_address"], "127.0.0.1");
  EXPECT_TRUE(initial.body["allow"].empty());

  ExpectError(Do("PUT", "/api/v1/admin/ip-rules", kE2eAdminToken,
                 R"({"deny":["203.0.113.0/24","10.0.0.300/8"]})"),
              400, "invalid_argument", {"'deny' entry 1", "10.0.0.300/8"});
  ExpectError(Do("PUT", "/api/v1/admin/ip-rules", kE2eAdminToken, R"({"deny":"10.0.0.0/8"})"), 400,
              "invalid_argument", {"deny"});
  ExpectError(Do("PUT", "/api/v1/admin/ip-rules", kE2eAdminToken, R"({"allow":["10.0.0.0/8"]})"),
              409, "failed_precondition", {"lock you out", "127.0.0.1", "force"});
  ExpectError(Do("PUT", "/api/v1/admin/ip-rules", kE2eAdminToken, R"({"deny":["127.0.0.0/8"]})"),
              409, "failed_precondition", {"127.0.0.0/8"});
  EXPECT_TRUE(Do("GET", "/api/v1/admin/ip-rules").body["allow"].empty()) << "nothing applied";

  // Rules for other addresses apply and do not affect us; an allow list that includes us works.
  HttpResp other = Do("PUT", "/api/v1/admin/ip-rules", kE2eAdminToken,
                      R"({"allow":["127.0.0.0/8","::1"],"deny":["203.0.113.0/24"]})");
  ASSERT_EQ(other.status, 200) << other.raw;
  EXPECT_EQ(other.body["deny"], json({"203.0.113.0/24"}));
  EXPECT_EQ(other.body["allow"], json({"127.0.0.0/8", "::1/128"}));
  EXPECT_EQ(Do("GET", "/api/v1/projects").status, 200);

  Restart();
  EXPECT_EQ(Do("GET", "/api/v1/admin/ip-rules").body["deny"], json({"203.0.113.0/24"}))
      << "rules survive a restart";

  // Forced: our own address is denied, before authentication, on every route.
  HttpResp forced =
      Do("PUT", "/api/v1/admin/ip-rules", kE2eAdminToken, R"({"deny":["127.0.0.1"],"force":true})");
  ASSERT_EQ(forced.status, 200) << forced.raw;
  ExpectError(Do("GET", "/api/v1/projects"), 403, "permission_denied", {"127.0.0.1", "denied"});
  ExpectError(Do("GET", "/health", ""), 403, "permission_denied", {});
  ExpectError(Do("GET", "/api/v1/nowhere", ""), 403, "permission_denied", {});

  // The way back: clear the rules in the data directory; the running server picks it up.
  CliResult clear = Cli({"ip-rules", "clear", "--data-dir", dir_.Sub("data")});
  ASSERT_EQ(clear.exit_code, 0) << clear.output;
  EXPECT_TRUE(Eventually(200, "/api/v1/projects", kE2eAdminToken));
  CliResult show = Cli({"ip-rules", "show", "--json", "--data-dir", dir_.Sub("data")});
  ASSERT_EQ(show.exit_code, 0) << show.output;
  EXPECT_TRUE(json::parse(show.output, nullptr, false)["deny"].empty()) << show.output;
}

TEST_F(ContainmentE2eTest, HttpsRoundTripAndPlainHttpIsRefused) {
  const std::string cert = dir_.Sub("cert.pem"), key = dir_.Sub("key.pem");
  const std::string gen =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
      "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
      ShellQuote(key) + " -out " + ShellQuote(cert) + " > " + ShellQuote(dir_.Sub("openssl.log")) +
      " 2>&1";
  ASSERT_EQ(std::system(gen.c_str()), 0) << ReadAll(dir_.Sub("openssl.log"));

  tls_ca_ = cert;
  extra_ = {"--tls-cert-file", cert, "--tls-key-file", key};
  StartServer(extra_);
  HttpResp health = Do("GET", "/health", "");
  ASSERT_EQ(health.status, 200) << health.raw;
  ASSERT_EQ(Do("POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"tls"})").status, 201);
  EXPECT_EQ(Do("GET", "/api/v1/projects").body["count"], 1);
  EXPECT_NE(server_->Log().find("https://127.0.0.1"), std::string::npos) << server_->Log();

  httplib::Client plain("127.0.0.1", server_->port());
  plain.set_connection_timeout(2, 0);
  plain.set_read_timeout(2, 0);
  auto r = plain.Get("/health");
  EXPECT_FALSE(r && r->status == 200) << "plain HTTP must not be served on the TLS port";

  // A client that offers only TLS 1.1 (its own security level lowered so that it really does)
  // is refused.
  const std::string old_tls =
      "echo | openssl s_client -connect 127.0.0.1:" + std::to_string(server_->port()) +
      " -tls1_1 -cipher DEFAULT@SECLEVEL=0 > /dev/null 2>&1";
  EXPECT_NE(std::system(old_tls.c_str()), 0);
  const std::string tls12 =
      "echo | openssl s_client -connect 127.0.0.1:" + std::to_string(server_->port()) +
      " -tls1_2 > /dev/null 2>&1";
  EXPECT_EQ(std::system(tls12.c_str()), 0);
}

TEST_F(ContainmentE2eTest, BadTlsFilesFailServeAtStartWithAClearMessage) {
  const std::string c1 = dir_.Sub("c1.pem"), k1 = dir_.Sub("k1.pem"), c2 = dir_.Sub("c2.pem"),
                    k2 = dir_.Sub("k2.pem");
  for (auto [c, k] : {std::pair{c1, k1}, std::pair{c2, k2}}) {
    const std::string gen =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
        "-subj /CN=127.0.0.1 -keyout " +
        ShellQuote(k) + " -out " + ShellQuote(c) + " > /dev/null 2>&1";
    ASSERT_EQ(std::system(gen.c_str()), 0);
  }
  WriteTestFile(dir_.Sub("garbage.pem"), "-----BEGIN CERTIFICATE-----\nnope\n");
  const std::string port = std::to_string(PickFreePort());
  auto serve = [&](const std::string& cert, const std::string& key) {
    std::vector<std::string> args = {"serve", "--data-dir", dir_.Sub("data"), "--port", port};
    if (!cert.empty()) args.insert(args.end(), {"--tls-cert-file", cert});
    if (!key.empty()) args.insert(args.end(), {"--tls-key-file", key});
    return Cli(args);
  };
  CliResult mismatched = serve(c1, k2);
  EXPECT_NE(mismatched.exit_code, 0);
  EXPECT_NE(mismatched.output.find("does not match"), std::string::npos) << mismatched.output;
  CliResult missing = serve(dir_.Sub("absent.pem"), k1);
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("absent.pem"), std::string::npos) << missing.output;
  CliResult garbage = serve(dir_.Sub("garbage.pem"), k1);
  EXPECT_NE(garbage.exit_code, 0);
  EXPECT_NE(garbage.output.find("cannot load the TLS certificate"), std::string::npos)
      << garbage.output;
  CliResult half = serve(c1, "");
  EXPECT_NE(half.exit_code, 0);
  EXPECT_NE(half.output.find("tls_key_file"), std::string::npos) << half.output;
}

}  // namespace
}  // namespace kb::testing
