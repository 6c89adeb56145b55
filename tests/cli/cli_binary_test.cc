// The `knowledgebeast` binary as users and scripts run it: a child process in a temporary
// directory, judged by its exit code, stdout and stderr. Nothing here calls the CLI in-process,
// so argument parsing, exit codes and output streams are tested for real.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "process.h"
#include "test_util.h"

namespace kb {
namespace {

using kb::testing::TempDir;
using kb::testing::WriteTestFile;
using nlohmann::json;

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string Slurp(const std::string& path) { return kb::testing::ReadWholeFile(path); }

pid_t Spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
            const std::string& cwd, const std::string& out_path, const std::string& err_path) {
  return kb::testing::SpawnProcess(KB_CLI_BINARY, args, env, cwd, out_path, err_path);
}

int WaitExit(pid_t pid) { return kb::testing::WaitProcess(pid); }

// The first API key secret ("kb_" + at least 20 base64url characters) in `text`, or "".
// (Hand-rolled rather than std::regex, which trips GCC 12's -Wmaybe-uninitialized under ASan.)
std::string FindKey(const std::string& text) {
  for (size_t at = text.find("kb_"); at != std::string::npos; at = text.find("kb_", at + 1)) {
    size_t end = at + 3;
    while (end < text.size() && (std::isalnum(static_cast<unsigned char>(text[end])) ||
                                 text[end] == '_' || text[end] == '-')) {
      ++end;
    }
    if (end - at - 3 >= 20) return text.substr(at, end - at);
  }
  return "";
}

// The URL in serve's "serving DIR at http://127.0.0.1:PORT" line, or "".
std::string FindUrl(const std::string& text) {
  const std::string prefix = "at http://127.0.0.1:";
  size_t at = text.find(prefix);
  if (at == std::string::npos) return "";
  size_t end = at + prefix.size();
  while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
  if (end == at + prefix.size() || end == text.size()) return "";  // line not complete yet
  return text.substr(at + 3, end - at - 3);
}

class CliTest : public ::testing::Test {
 protected:
  RunResult Run(const std::vector<std::string>& args,
                const std::map<std::string, std::string>& env = {}) {
    const std::string out = dir_.Sub("stdout.txt"), err = dir_.Sub("stderr.txt");
    pid_t pid = Spawn(args, env, dir_.path(), out, err);
    RunResult r;
    r.exit_code = WaitExit(pid);
    r.out = Slurp(out);
    r.err = Slurp(err);
    return r;
  }

  // Runs and parses stdout as JSON, failing the test on a non-zero exit or bad JSON.
  json RunJson(const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {}) {
    RunResult r = Run(args, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out;
    return j;
  }

  std::string DataDir() const { return dir_.Sub("data"); }

  TempDir dir_;
};

TEST_F(CliTest, EveryCommandHasHelp) {
  for (std::vector<std::string> cmd : {std::vector<std::string>{},
                                       {"serve"},
                                       {"init"},
                                       {"ingest"},
                                       {"query"},
                                       {"projects"},
                                       {"projects", "create"},
                                       {"stats"},
                                       {"keys"},
                                       {"keys", "create"},
                                       {"keys", "rotate"},
                                       {"keys", "revoke-all"},
                                       {"keys", "reinstate"},
                                       {"purge"},
                                       {"undelete"},
                                       {"deleted"},
                                       {"check"},
                                       {"repo", "init"},
                                       {"repo", "check"},
                                       {"repo", "key", "add"},
                                       {"backup"},
                                       {"backup", "list"},
                                       {"backup", "verify"},
                                       {"backup", "forget"},
                                       {"prune"},
                                       {"restore"},
                                       {"lockdown"},
                                       {"ip-rules"}}) {
    cmd.push_back("--help");
    RunResult r = Run(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd[0];
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd[0] << ": " << r.out;
  }
  RunResult ingest = Run({"ingest", "--help"});
  EXPECT_NE(ingest.out.find("--url"), std::string::npos);
  EXPECT_NE(ingest.out.find("no server has it open"), std::string::npos) << ingest.out;
  RunResult lockdown = Run({"lockdown", "--help"});
  EXPECT_NE(lockdown.out.find("read-only"), std::string::npos) << lockdown.out;
  EXPECT_NE(lockdown.out.find("within about a second"), std::string::npos) << lockdown.out;
  RunResult serve = Run({"serve", "--help"});
  EXPECT_NE(serve.out.find("--tls-cert-file"), std::string::npos) << serve.out;
  EXPECT_NE(serve.out.find("--rate-limit-per-second"), std::string::npos) << serve.out;
}

TEST_F(CliTest, InitPrintsTheAdminKeyOnlyTheFirstTime) {
  RunResult first = Run({"init", "--data-dir", DataDir()});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string key = FindKey(first.out);
  ASSERT_FALSE(key.empty()) << first.out;
  EXPECT_NE(first.out.find("will NOT be shown again"), std::string::npos);

  RunResult second = Run({"init", "--data-dir", DataDir()});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out.find(key), std::string::npos) << second.out;
  EXPECT_EQ(FindKey(second.out), "") << second.out;

  json again = RunJson({"init", "--data-dir", DataDir(), "--json"});
  EXPECT_TRUE(again["admin_key"].is_null());
}

TEST_F(CliTest, DataDirComesFromTheEnvironment) {
  json j = RunJson({"init", "--json"}, {{"KB_DATA_DIR", DataDir()}});
  EXPECT_TRUE(j["admin_key"].is_string());
  EXPECT_EQ(access((DataDir() + "/catalog.db").c_str(), F_OK), 0);
}

TEST_F(CliTest, BadFlagsAreUsageErrors) {
  RunResult r = Run({"projects", "list", "--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;

  r = Run({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("error:"), std::string::npos);

  r = Run({"serve", "--port", "http"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--port"), std::string::npos) << r.err;

  r = Run({"stats", "--data-dir", DataDir()}, {{"KB_PORT", "70000"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("KB_PORT"), std::string::npos) << r.err;

  r = Run({"query", "--project", "p", "--top-k", "0", "x"});
  EXPECT_EQ(r.exit_code, 2) << r.err;

  r = Run({"stats", "--url", "localhost:8080"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--url"), std::string::npos) << r.err;
}

TEST_F(CliTest, ConfigFileErrorsAreUsageErrors) {
  WriteTestFile(dir_.Sub("kb.json"), R"({"data_dir": "d", "colour": "blue"})");
  RunResult r = Run({"stats", "--config", dir_.Sub("kb.json")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("colour"), std::string::npos) << r.err;

  r = Run({"stats"}, {{"KB_CONFIG", dir_.Sub("missing.json")}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing.json"), std::string::npos) << r.err;
}

TEST_F(CliTest, ProjectsCreateListShowDelete) {
  const std::string d = "--data-dir=" + DataDir();
  json created =
      RunJson({"projects", "create", "Team Docs", "--description", "handbook", d, "--json"});
  EXPECT_EQ(created["name"], "Team Docs");
  EXPECT_EQ(created["description"], "handbook");
  const std::string id = created["id"];

  json list = RunJson({"projects", "list", d, "--json"});
  ASSERT_EQ(list["projects"].size(), 1u);
  EXPECT_EQ(list["projects"][0]["id"], id);

  json shown = RunJson({"projects", "show", "Team Docs", d, "--json"});
  EXPECT_EQ(shown["id"], id);
  EXPECT_EQ(RunJson({"projects", "show", id, d, "--json"})["name"], "Team Docs");

  RunResult dup = Run({"projects", "create", "Team Docs", d});
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_EQ(dup.err.rfind("error: ", 0), 0u) << dup.err;

  RunJson({"projects", "delete", "Team Docs", d, "--json"});
  EXPECT_TRUE(RunJson({"projects", "list", d, "--json"})["projects"].empty());

  RunResult text = Run({"projects", "list", d});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("No projects"), std::string::npos);
}

TEST_F(CliTest, UnknownProjectIsAnOperationFailure) {
  const std::string d = "--data-dir=" + DataDir();
  for (std::vector<std::string> cmd : {std::vector<std::string>{"projects", "show", "nope", d},
                                       {"projects", "delete", "nope", d},
                                       {"query", "--project", "nope", "hello", d}}) {
    RunResult r = Run(cmd);
    EXPECT_EQ(r.exit_code, 1) << cmd[1];
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST_F(CliTest, IngestsATreeOfSupportedFilesAndSkipsTheRest) {
  const std::string tree = dir_.Sub("docs");
  WriteTestFile(tree + "/guide.md", "# Guide\n\nInstall the flux capacitor carefully.\n");
  WriteTestFile(tree + "/notes/plain.txt", "Plain notes about zanzibarine cartography.\n");
  WriteTestFile(tree + "/web/page.html",
                "<html><head><title>Page</title></head><body><p>Hello web</p></body></html>");
  WriteTestFile(tree + "/blob.bin", std::string("\x00\x01\x02\x03", 4));
  WriteTestFile(tree + "/.hidden/secret.md", "# hidden\n");
  const std::string d = "--data-dir=" + DataDir();

  RunResult missing = Run({"ingest", tree, "--project", "docs", d});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("--create"), std::string::npos) << missing.err;

  json j = RunJson({"ingest", tree, "--project", "docs", "--create", d, "--json"});
  EXPECT_EQ(j["ingested"], 3);
  EXPECT_EQ(j["created"], 3);
  EXPECT_EQ(j["skipped"], 1);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_GE(j["chunks"].get<int>(), 3);
  ASSERT_EQ(j["skipped_files"].size(), 1u);
  EXPECT_NE(j["skipped_files"][0].get<std::string>().find("blob.bin"), std::string::npos);

  // The same tree again changes nothing, and says so.
  json again = RunJson({"ingest", tree, "--project", "docs", d, "--json"});
  EXPECT_EQ(again["ingested"], 0);
  EXPECT_EQ(again["unchanged"], 3);

  RunResult text = Run({"ingest", tree + "/guide.md", "--project", "docs", d});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("unchanged"), std::string::npos) << text.out;

  json stats = RunJson({"stats", d, "--json"});
  EXPECT_EQ(stats["documents"], 3);
}

TEST_F(CliTest, IngestFailuresAreListedAndExitNonZero) {
  const std::string tree = dir_.Sub("docs");
  WriteTestFile(tree + "/good.md", "# Good\n\nfine text\n");
  WriteTestFile(tree + "/empty.txt", "");
  WriteTestFile(tree + "/blob.bin", std::string("\x00\x01\x02", 3));
  RunResult r = Run(
      {"ingest", tree, "--all", "--project", "p", "--create", "--data-dir=" + DataDir(), "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["ingested"], 1);
  EXPECT_EQ(j["failed"], 2);
  EXPECT_NE(r.err.find("blob.bin"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("empty.txt"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("error: 2 file(s) failed"), std::string::npos) << r.err;
}

TEST_F(CliTest, QueryFindsADocumentByADistinctiveWord) {
  const std::string tree = dir_.Sub("docs");
  WriteTestFile(tree + "/a.md", "# Alpha\n\nThe quokka lives on Rottnest island.\n");
  WriteTestFile(tree + "/b.md", "# Beta\n\nCompilers translate source code to machine code.\n");
  WriteTestFile(tree + "/c.txt", "Gardening tips for tomatoes and basil.\n");
  const std::string d = "--data-dir=" + DataDir();
  RunJson({"ingest", tree, "--project", "zoo", "--create", d, "--json"});

  json j = RunJson({"query", "--project", "zoo", "quokka", d, "--json", "--top-k", "2"});
  ASSERT_FALSE(j["results"].empty()) << j.dump();
  EXPECT_EQ(j["results"][0]["source"], "a.md");
  EXPECT_LE(j["results"].size(), 2u);

  for (const char* mode : {"keyword", "vector"}) {
    json m = RunJson({"query", "-p", "zoo", "quokka", d, "--json", "--mode", mode});
    ASSERT_FALSE(m["results"].empty()) << mode;
    EXPECT_EQ(m["results"][0]["source"], "a.md") << mode;
  }

  RunResult text = Run({"query", "--project", "zoo", "quokka", "island", d});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out.rfind("1. ", 0), 0u) << text.out;
  EXPECT_NE(text.out.find("Alpha"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("quokka"), std::string::npos) << text.out;
}

TEST_F(CliTest, KeysCreateListRevoke) {
  const std::string d = "--data-dir=" + DataDir();
  RunJson({"projects", "create", "p1", d, "--json"});
  json created = RunJson({"keys", "create", "--name", "reader", "--scope", "read", "--project",
                          "p1", "--expires-in-days", "30", d, "--json"});
  const std::string id = created["key"]["id"];
  EXPECT_EQ(created["key"]["scope"], "read");
  EXPECT_EQ(created["key"]["projects"].size(), 1u);
  EXPECT_EQ(created["secret"].get<std::string>().rfind("kb_", 0), 0u);

  json list = RunJson({"keys", "list", d, "--json"});
  bool found = false;
  for (const json& k : list["keys"]) {
    if (k["id"] == id) {
      found = true;
      EXPECT_TRUE(k["revoked_at"].is_null());
      EXPECT_FALSE(k.contains("secret"));
    }
  }
  EXPECT_TRUE(found);

  RunJson({"keys", "revoke", id, d, "--json"});
  json after = RunJson({"keys", "list", d, "--json"});
  for (const json& k : after["keys"]) {
    if (k["id"] == id) {
      EXPECT_FALSE(k["revoked_at"].is_null());
    }
  }

  RunResult bad_scope = Run({"keys", "create", "--name", "x", "--scope", "root", d});
  EXPECT_EQ(bad_scope.exit_code, 2);
  RunResult unknown = Run({"keys", "revoke", "key_0000000000000000", d});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.err.rfind("error: ", 0), 0u);
}

// Direct mode on a data directory: rotate, revoke-all, reinstate; delete -> deleted ->
// undelete; purge --dry-run lists nothing within the grace period and, with a zero grace
// period, lists and then purges for good.
TEST_F(CliTest, KeyLifecycleAndDeletedItemsInDirectMode) {
  const std::string d = "--data-dir=" + DataDir();
  RunJson({"projects", "create", "p1", d, "--json"});
  json key = RunJson({"keys", "create", "--name", "w", "--scope", "write", "--project", "p1", d,
                      "--json"});
  const std::string id = key["key"]["id"];
  json rotated = RunJson({"keys", "rotate", id, "--overlap-seconds", "30", d, "--json"});
  EXPECT_NE(rotated["secret"], key["secret"]);
  EXPECT_TRUE(rotated["key"]["previous_secret_expires_at"].is_string());
  RunResult too_long = Run({"keys", "rotate", id, "--overlap-seconds", "9999999", d});
  EXPECT_EQ(too_long.exit_code, 2);

  // Deleting the project revokes the key; reinstate brings it back after an undelete.
  RunJson({"projects", "delete", "p1", d, "--json"});
  json deleted = RunJson({"deleted", d, "--json"});
  ASSERT_EQ(deleted["projects"].size(), 1u) << deleted.dump();
  EXPECT_EQ(deleted["projects"][0]["deleted_by"], "cli");
  RunResult early = Run({"keys", "reinstate", id, d});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_NE(early.err.find("restore the project first"), std::string::npos) << early.err;
  json undone = RunJson({"undelete", "--project", "p1", "--before", "2000-01-01T00:00:00Z", d,
                         "--json"});
  EXPECT_EQ(undone["project_restored"], true) << undone.dump();
  RunJson({"keys", "reinstate", id, d, "--json"});
  RunResult usage = Run({"undelete", "--project", "p1", d});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(Run({"undelete", "--project", "p1", "--before", "soon", d}).exit_code, 2);

  // revoke-all without a calling key needs --include-admin, which prints a new admin key.
  RunResult refused = Run({"keys", "revoke-all", d});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("include_admin"), std::string::npos) << refused.err;
  json all = RunJson({"keys", "revoke-all", "--include-admin", d, "--json"});
  EXPECT_GE(all["count"].get<int>(), 1);
  EXPECT_EQ(all["new_admin_key"]["secret"].get<std::string>().rfind("kb_", 0), 0u);

  // Purge: nothing is due within the default 30 days; with a zero grace period the deleted
  // project goes (dry run first: it only lists).
  RunJson({"projects", "delete", "p1", d, "--json"});
  json none = RunJson({"purge", "--dry-run", d, "--json"});
  EXPECT_TRUE(none["projects"].empty()) << none.dump();
  json dry = RunJson({"purge", "--dry-run", "--deletion-grace-period", "0", d, "--json"});
  ASSERT_EQ(dry["projects"].size(), 1u) << dry.dump();
  EXPECT_EQ(dry["dry_run"], true);
  EXPECT_EQ(RunJson({"deleted", d, "--json"})["projects"].size(), 1u);
  json done = RunJson({"purge", "--deletion-grace-period", "0", d, "--json"});
  ASSERT_EQ(done["projects"].size(), 1u) << done.dump();
  EXPECT_TRUE(RunJson({"deleted", d, "--json"})["projects"].empty());
  EXPECT_EQ(Run({"purge", "--deletion-grace-period", "forever", d}).exit_code, 2);
}

// A running server: first start prints the URL and the admin key once; commands work through
// --url; SIGTERM stops it cleanly (exit 0) and a restart does not print the key again.
TEST_F(CliTest, ServeThenRemoteCommandsThenCleanShutdown) {
  // Each start gets fresh output files, so nothing from the previous run can be mistaken for
  // the new one's.
  std::string out, err;
  int starts = 0;
  auto start = [&] {
    ++starts;
    out = dir_.Sub("serve" + std::to_string(starts) + ".out");
    err = dir_.Sub("serve" + std::to_string(starts) + ".err");
    return Spawn({"serve", "--port", "0", "--data-dir", DataDir()}, {}, dir_.path(), out, err);
  };
  // Waits for the "serving ... at URL" line.
  auto wait_url = [&](pid_t pid) -> std::string {
    for (int i = 0; i < 300; ++i) {
      std::string url = FindUrl(Slurp(out));
      if (!url.empty()) return url;
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "no URL; stderr: " << Slurp(err);
    return "";
  };

  pid_t pid = start();
  std::string url = wait_url(pid);
  ASSERT_FALSE(url.empty());
  const std::string admin = FindKey(Slurp(out));
  ASSERT_FALSE(admin.empty()) << Slurp(out);

  const std::map<std::string, std::string> env = {{"KB_URL", url}, {"KB_API_KEY", admin}};
  json created = RunJson({"projects", "create", "remote", "--json"}, env);
  EXPECT_EQ(created["name"], "remote");
  const std::string tree = dir_.Sub("docs");
  WriteTestFile(tree + "/wombat.md", "# Wombats\n\nWombats produce cube-shaped droppings.\n");
  WriteTestFile(tree + "/skip.bin", std::string("\x00\x01", 2));
  json ingested = RunJson({"ingest", tree, "--project", "remote", "--json"}, env);
  EXPECT_EQ(ingested["ingested"], 1);
  EXPECT_EQ(ingested["skipped"], 1);
  json hits = RunJson({"query", "-p", "remote", "wombats", "--json"}, env);
  ASSERT_FALSE(hits["results"].empty());
  EXPECT_EQ(hits["results"][0]["source"], "wombat.md");
  EXPECT_EQ(RunJson({"stats", "--json"}, env)["documents"], 1);
  json k = RunJson({"keys", "create", "--name", "w", "--scope", "write", "--json"}, env);
  EXPECT_FALSE(k["secret"].get<std::string>().empty());
  RunJson({"keys", "revoke", k["key"]["id"].get<std::string>(), "--json"}, env);

  RunResult unauth = Run({"projects", "list", "--url", url, "--api-key", "kb_wrong"});
  EXPECT_EQ(unauth.exit_code, 1);
  EXPECT_EQ(unauth.err.rfind("error: ", 0), 0u) << unauth.err;
  RunResult missing = Run({"projects", "show", "nope", "--json"}, env);
  EXPECT_EQ(missing.exit_code, 1);

  // A second server cannot take the same port: a clean error, not a crash.
  const std::string port = url.substr(url.rfind(':') + 1);
  RunResult taken = Run({"serve", "--port", port, "--data-dir", dir_.Sub("other")});
  EXPECT_EQ(taken.exit_code, 1);
  EXPECT_NE(taken.err.find("error: cannot start the server"), std::string::npos) << taken.err;

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  EXPECT_EQ(WaitExit(pid), 0) << Slurp(err);

  pid = start();
  url = wait_url(pid);
  ASSERT_FALSE(url.empty());
  EXPECT_EQ(Slurp(out).find(admin), std::string::npos);
  EXPECT_EQ(FindKey(Slurp(out)), "");
  // The data survived the restart.
  EXPECT_EQ(RunJson({"stats", "--json", "--url", url, "--api-key", admin})["documents"], 1);
  ASSERT_EQ(kill(pid, SIGINT), 0);
  EXPECT_EQ(WaitExit(pid), 0) << Slurp(err);

  RunResult down = Run({"stats", "--url", url, "--api-key", admin});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.err.find("cannot reach server"), std::string::npos) << down.err;
}

}  // namespace
}  // namespace kb
