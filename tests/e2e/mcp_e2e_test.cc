// MCP against the real binary with the official TypeScript SDK as the client
// (tests/e2e/mcp_client.cjs): over Streamable HTTP on `serve` (POST /mcp, with an admin key, a
// read key and no key) and over stdio (`knowledgebeast mcp` on a data directory). The SDK is
// installed by scripts/install-deps.sh; without it (or node) the test FAILS, it never skips.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include "process.h"
#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

using nlohmann::json;

constexpr const char* kNode = "/usr/bin/node";
const std::string kSdk =
    std::string(KB_SOURCE_DIR) + "/.cache/mcp-sdk/node_modules/@modelcontextprotocol/sdk";
const std::string kScript = std::string(KB_SOURCE_DIR) + "/tests/e2e/mcp_client.cjs";

class E2eMcpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kNode)) << "node is needed: scripts/install-deps.sh";
    ASSERT_TRUE(std::filesystem::exists(kSdk + "/package.json"))
        << "the MCP SDK is not installed at " << kSdk << ": run scripts/install-deps.sh";
    WriteTestFile(dir_.Sub("imports/guide.md"), "# Guide\n\nBadgers dig burrows called setts.\n");
    WriteTestFile(dir_.Sub("private/secret.txt"), "not for MCP");
  }
  CliRun RunClient(EnvMap env) {
    env["KB_SOURCE_DIR"] = KB_SOURCE_DIR;
    env["IMPORT_FILE"] = dir_.Sub("imports/guide.md");
    env["OUTSIDE_FILE"] = dir_.Sub("private/secret.txt");
    return RunProcess(kNode, {kScript}, env, dir_.path());
  }
  TempDir dir_;
};

TEST_F(E2eMcpTest, SdkClientOverStreamableHttp) {
  ServerProcess server(dir_.Sub("data"), dir_.Sub("server.log"),
                       {"--mcp-import-roots", dir_.Sub("imports")});
  ASSERT_TRUE(server.Start()) << server.Log();
  auto client = server.Client();
  HttpResp key = Call(*client, "POST", "/api/v1/admin/api-keys", kE2eAdminToken,
                      json{{"name", "mcp reader"}, {"scope", "read"}}.dump());
  ASSERT_EQ(key.status, 201) << key.raw;
  CliRun run = RunClient({{"MODE", "http"},
                          {"URL", "http://127.0.0.1:" + std::to_string(server.port())},
                          {"ADMIN_KEY", kE2eAdminToken},
                          {"READ_KEY", key.body["secret"].get<std::string>()}});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("all checks passed"), std::string::npos) << run.out << run.err;
  // The writes the client made are in the audit log as its key's.
  HttpResp audit =
      Call(*client, "GET", "/api/v1/admin/audit?action=document.create", kE2eAdminToken);
  ASSERT_EQ(audit.status, 200) << audit.raw;
  EXPECT_NE(audit.raw.find("mcp tool ingest_text"), std::string::npos) << audit.raw;
  server.Stop(SIGTERM);
}

TEST_F(E2eMcpTest, SdkClientOverStdio) {
  CliRun run = RunClient({{"MODE", "stdio"},
                          {"KB_BINARY", KB_BINARY},
                          {"DATA_DIR", dir_.Sub("data")},
                          {"IMPORT_ROOT", dir_.Sub("imports")}});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("all checks passed"), std::string::npos) << run.out << run.err;
  // The process ended with the client and left the data behind, readable by the next one.
  CliRun list = RunProcess(
      KB_BINARY, {"projects", "list", "--data-dir", dir_.Sub("data"), "--json"}, {}, dir_.path());
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("\"e2e\""), std::string::npos) << list.out;
}

// stdout carries one JSON-RPC message per line and nothing else: a blank line and a
// notification get no answer, garbage gets a parse error, a line over max_body_bytes is skipped
// with an error, and the messages after each still work; the end of stdin ends the process.
TEST_F(E2eMcpTest, StdioFramingKeepsStdoutForMessages) {
  const std::string input = dir_.Sub("input.jsonl");
  WriteTestFile(
      input,
      std::string(
          R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}})") +
          "\n\n" + R"({"jsonrpc":"2.0","method":"notifications/initialized"})" + "\n" +
          "not json\n" + R"({"jsonrpc":"2.0","id":2,"method":"ping"})" + "\n" +
          R"({"jsonrpc":"2.0","id":3,"method":"ping","params":{"pad":")" + std::string(5000, 'x') +
          "\"}}\n" + R"({"jsonrpc":"2.0","id":4,"method":"tools/list"})" + "\r\n" +
          R"({"jsonrpc":"2.0","id":5,"method":"ping"})");  // no final newline
  CliRun run = RunProcess("/bin/sh",
                          {"-c", std::string("exec \"") + KB_BINARY + "\" mcp --data-dir \"" +
                                     dir_.Sub("data") + "\" < \"" + input + "\""},
                          {{"KB_MAX_BODY_BYTES", "1000"}}, dir_.path());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<json> lines;
  size_t start = 0;
  while (start < run.out.size()) {
    size_t nl = run.out.find('\n', start);
    ASSERT_NE(nl, std::string::npos) << "unterminated output line: " << run.out.substr(start);
    lines.push_back(json::parse(run.out.substr(start, nl - start), nullptr, false));
    ASSERT_FALSE(lines.back().is_discarded()) << run.out.substr(start, nl - start);
    start = nl + 1;
  }
  ASSERT_EQ(lines.size(), 6u) << run.out;
  EXPECT_EQ(lines[0]["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(lines[1]["error"]["code"], -32700);  // not json
  EXPECT_EQ(lines[2]["id"], 2);
  EXPECT_EQ(lines[3]["error"]["code"], -32700);  // the line over the limit
  EXPECT_NE(lines[3]["error"]["message"].get<std::string>().find("too large"), std::string::npos);
  EXPECT_EQ(lines[4]["id"], 4);
  EXPECT_EQ(lines[4]["result"]["tools"].size(), 10u);
  EXPECT_EQ(lines[5]["id"], 5);
}

TEST_F(E2eMcpTest, StdioRefusesADirectoryAServerOwns) {
  ServerProcess server(dir_.Sub("data"), dir_.Sub("server.log"));
  ASSERT_TRUE(server.Start()) << server.Log();
  CliRun run = RunProcess(KB_BINARY, {"mcp", "--data-dir", dir_.Sub("data")}, {}, dir_.path());
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("/mcp"), std::string::npos) << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;  // stdout is for MCP messages only
  server.Stop(SIGTERM);
}

}  // namespace
}  // namespace kb::testing
