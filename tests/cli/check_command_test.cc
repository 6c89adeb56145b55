// `knowledgebeast check` as scripts run it: the real binary in a child process, judged by its
// exit code (0 clean, 1 problems found, 2 could not check), stdout and stderr.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "store/sqlite.h"
#include "process.h"
#include "test_util.h"

namespace kb {
namespace {

namespace fs = std::filesystem;
using kb::testing::TempDir;
using kb::testing::WriteTestFile;
using nlohmann::json;

struct Ran {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class CheckCommandTest : public ::testing::Test {
 protected:
  // Runs the binary with `args` in the temp dir, without any KB_* variable of the caller's.
  Ran Run(const std::vector<std::string>& args) {
    kb::testing::CliRun r = kb::testing::RunProcess(KB_CLI_BINARY, args, {}, dir_.path());
    return Ran{r.exit_code, r.out, r.err};
  }

  std::string Data() const { return dir_.Sub("data"); }
  std::string DataFlag() const { return "--data-dir=" + Data(); }

  // A project with two documents, made through the CLI; returns its id.
  std::string Populate() {
    WriteTestFile(dir_.Sub("docs/quokka.md"),
                  "# Quokkas\n\nThe quokka lives on Rottnest island.\n");
    WriteTestFile(dir_.Sub("docs/kayak.txt"), "Kayaks are moved with a double-bladed paddle.\n");
    Ran r = Run({"ingest", dir_.Sub("docs"), "--project", "docs", "--create", DataFlag()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    Ran p = Run({"projects", "show", "docs", DataFlag(), "--json"});
    return json::parse(p.out, nullptr, false).value("id", "");
  }
  std::string Query() {
    Ran r =
        Run({"query", "-p", "docs", "island animals", "--mode", "vector", DataFlag(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out, nullptr, false);
    for (auto& hit : j["results"]) hit.erase("score");  // compared by identity and order
    return j["results"].dump();
  }

  TempDir dir_;
};

TEST_F(CheckCommandTest, HelpNamesTheRepairFlagAndTheExitStatuses) {
  Ran r = Run({"check", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--repair-index"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Exit status: 0 nothing wrong, 1 a problem was found"), std::string::npos)
      << r.out;
}

TEST_F(CheckCommandTest, CleanDataDirectoryExitsZero) {
  Populate();
  Ran r = Run({"check", DataFlag()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("No problems found in 2 databases."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ok" + std::string(9, ' ') + Data() + "/catalog.db"), std::string::npos)
      << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;

  Ran j = Run({"check", DataFlag(), "--json"});
  EXPECT_EQ(j.exit_code, 0);
  json report = json::parse(j.out, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << j.out;
  EXPECT_EQ(report["status"], "ok");
  EXPECT_EQ(report["databases"].size(), 2u);
  EXPECT_EQ(report["databases"][1]["project_name"], "docs");
}

TEST_F(CheckCommandTest, SomethingThatIsNotADataDirectoryIsRefusedWithExitTwo) {
  fs::create_directories(dir_.Sub("empty"));
  Ran r = Run({"check", "--data-dir", dir_.Sub("empty")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "error: " + dir_.Sub("empty") +
                       " is not a KnowledgeBeast data directory: it has no catalog.db (name the "
                       "data directory with --data-dir or KB_DATA_DIR)\n");
  EXPECT_TRUE(r.out.empty());
  // Nothing was created there.
  EXPECT_TRUE(fs::is_empty(dir_.Sub("empty")));

  Ran missing = Run({"check", "--data-dir", dir_.Sub("nowhere")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(dir_.Sub("nowhere")));

  Ran bad = Run({"check", "--repair"});
  EXPECT_EQ(bad.exit_code, 2);
}

TEST_F(CheckCommandTest, DamagedIndexExitsOneAndRepairIndexRebuildsIt) {
  const std::string id = Populate();
  ASSERT_FALSE(id.empty());
  const std::string before = Query();
  const std::string index = Data() + "/projects/" + id + "/index";
  for (const auto& e : fs::directory_iterator(index)) {
    if (e.path().filename().string().rfind("graph-", 0) == 0) fs::resize_file(e.path(), 64);
  }
  Ran r = Run({"check", DataFlag()});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("DEGRADED   " + Data() + "/projects/" + id + "/kb.db (project 'docs')"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("vector_index [degraded]: vector index graph file " + index + "/graph-"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("has 64 bytes, manifest says"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "error: 1 problem(s) found in " + Data() +
                       " (degraded); --repair-index rebuilds damaged vector indexes\n");

  Ran repaired = Run({"check", DataFlag(), "--repair-index"});
  EXPECT_EQ(repaired.exit_code, 1) << repaired.out;
  EXPECT_NE(repaired.out.find("vector_index: repaired: rebuilt from kb.db at LSN 2 (2 vectors)"),
            std::string::npos)
      << repaired.out;
  EXPECT_NE(repaired.err.find("all were repaired: run check again to confirm"), std::string::npos)
      << repaired.err;

  Ran again = Run({"check", DataFlag()});
  EXPECT_EQ(again.exit_code, 0) << again.out;
  EXPECT_EQ(Query(), before);
}

TEST_F(CheckCommandTest, DamagedDatabaseExitsOneAndIsNamed) {
  const std::string id = Populate();
  const std::string db = Data() + "/projects/" + id + "/kb.db";
  {
    auto conn = sql::Database::Open(db);
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(
        (*conn)->Exec("UPDATE documents SET title = 'changed' WHERE source = 'kayak.txt'").ok());
  }
  Ran r = Run({"check", DataFlag()});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("UNHEALTHY  " + db + " (project 'docs')"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("content_checksum [unhealthy]: the content checksum recomputed from the "
                       "rows of 2 documents is "),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.err, "error: 1 problem(s) found in " + Data() + " (unhealthy)\n");
  // --repair-index does not touch databases.
  Ran repair = Run({"check", DataFlag(), "--repair-index", "--json"});
  EXPECT_EQ(repair.exit_code, 1);
  json j = json::parse(repair.out, nullptr, false);
  EXPECT_EQ(j["status"], "unhealthy");
}

}  // namespace
}  // namespace kb
