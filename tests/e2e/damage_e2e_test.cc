// Damage stops writes where it is found (issue 17), against the real binary: bytes flipped in a
// project's kb.db while the server is stopped — once on a page of the chunks table (found by the
// content checksum), once on an overflow page of the journal (found only by decoding every journal
// entry) — are found by the start-up integrity check; the project becomes read-only (writes 503
// naming the problem and the way out, reads go on), /ready stays 200 and lists it, /health and
// /metrics show it, the audit log records it; the other project is untouched.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cctype>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

using nlohmann::json;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The pages of one b-tree of `db_path` (dbstat), optionally only its overflow pages.
std::vector<int64_t> Pages(const std::string& db_path, const std::string& name, bool overflow) {
  std::vector<int64_t> out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return out;
  }
  const std::string sql = "SELECT pageno FROM dbstat WHERE name = ?1" +
                          std::string(overflow ? " AND pagetype = 'overflow'" : "");
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) out.push_back(sqlite3_column_int64(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

constexpr size_t kPageSize = 4096;  // docs/format/DATABASE.md

// Offset of a byte to flip: in the chunks table, the second letter of "keeper"; in the journal's
// overflow pages, the middle of a run of 40 base64 characters (an embedding).
size_t FindTarget(const std::string& db_path, bool journal) {
  const std::string bytes = Slurp(db_path);
  for (int64_t page : Pages(db_path, journal ? "journal" : "chunks", journal)) {
    const size_t start = static_cast<size_t>(page - 1) * kPageSize;
    if (!journal) {
      const size_t at = bytes.substr(start, kPageSize).find("keeper");
      if (at != std::string::npos) return start + at + 1;
      continue;
    }
    size_t run = 0;
    for (size_t i = start + 4; i < start + kPageSize && i < bytes.size(); ++i) {
      const char c = bytes[i];
      run = (std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/') ? run + 1 : 0;
      if (run == 40) return i - 20;
    }
  }
  return std::string::npos;
}

std::string LongMarkdown(const std::string& topic) {
  std::string text = "# " + topic + "\n\n";
  for (int i = 0; i < 30; ++i) {
    text += "Section " + std::to_string(i) + " of " + topic +
            ": the keeper trims the lamp wick at dusk, logs the passing ships, and watches the "
            "fog roll over the harbour wall until morning comes.\n\n";
  }
  return text;
}

class DamageE2eTest : public ::testing::TestWithParam<bool> {  // true: the journal
 protected:
  HttpResp Do(const std::string& method, const std::string& path, const std::string& body = "") {
    auto c = server_->Client();
    return Call(*c, method, path, kE2eAdminToken, body);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_P(DamageE2eTest, ADamagedProjectBecomesReadOnlyWhileTheRestServes) {
  const bool journal = GetParam();
  server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), dir_.Sub("server.log"));
  ASSERT_TRUE(server_->Start()) << server_->Log();
  std::string hurt_id;
  for (const std::string name : {"hurt", "fine"}) {
    HttpResp p = Do("POST", "/api/v1/projects", json{{"name", name}}.dump());
    ASSERT_EQ(p.status, 201) << p.raw;
    if (name == "hurt") hurt_id = p.body["id"];
    HttpResp d = Do("POST", "/api/v1/projects/" + name + "/documents",
                    json{{"content", LongMarkdown(name)}, {"source", name + ".md"}}.dump());
    ASSERT_EQ(d.status, 201) << d.raw;
  }
  server_->Stop(SIGTERM);

  const std::string db = dir_.Sub("data") + "/projects/" + hurt_id + "/kb.db";
  const size_t at = FindTarget(db, journal);
  ASSERT_NE(at, std::string::npos);
  {
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(journal ? '!' : 'E');  // "keeper" -> "kEeper"; base64 -> not base64
  }

  server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), dir_.Sub("server.log"));
  ASSERT_TRUE(server_->Start()) << server_->Log();
  // The start-up integrity check runs in the background: wait for its report.
  HttpResp health;
  for (int i = 0; i < 200; ++i) {
    health = Do("GET", "/health");
    if (health.body.is_object() && !health.body["checks"]["integrity"].is_null()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(health.body["checks"]["integrity"].is_null()) << health.raw;
  EXPECT_EQ(health.status, 503) << health.raw;
  ASSERT_EQ(health.body["checks"]["read_only_projects"].size(), 1u) << health.raw;
  EXPECT_EQ(health.body["checks"]["read_only_projects"][0]["id"], hurt_id);
  const std::string problem = health.body["checks"]["read_only_projects"][0]["problem"];
  EXPECT_NE(problem.find(journal ? "journal" : "content_checksum"), std::string::npos) << problem;

  HttpResp ready = Do("GET", "/ready");
  EXPECT_EQ(ready.status, 200) << ready.raw;
  ASSERT_EQ(ready.body["degraded_projects"].size(), 1u) << ready.raw;
  EXPECT_EQ(ready.body["degraded_projects"][0]["name"], "hurt");

  // Writes to the damaged project: 503 naming the problem and the way out.
  HttpResp refused = Do("POST", "/api/v1/projects/hurt/documents",
                        R"({"content":"more text","source":"more.txt"})");
  EXPECT_EQ(refused.status, 503) << refused.raw;
  EXPECT_EQ(refused.body["error"]["code"], "unavailable");
  const std::string message = refused.body["error"]["message"];
  EXPECT_NE(message.find("read-only"), std::string::npos) << message;
  EXPECT_NE(message.find("knowledgebeast check"), std::string::npos) << message;
  EXPECT_NE(message.find("/restore"), std::string::npos) << message;
  // Reads go on; the other project takes writes.
  EXPECT_EQ(Do("GET", "/api/v1/projects/hurt/documents").status, 200);
  EXPECT_EQ(Do("POST", "/api/v1/projects/hurt/query", R"({"query":"lamp wick"})").status, 200);
  EXPECT_EQ(Do("POST", "/api/v1/projects/fine/documents",
               R"({"content":"more text","source":"more.txt"})")
                .status,
            201);

  HttpResp metrics = Do("GET", "/metrics");
  EXPECT_NE(metrics.raw.find("kb_project_degraded{project=\"hurt\"} 1"), std::string::npos);
  EXPECT_NE(metrics.raw.find("kb_project_degraded{project=\"fine\"} 0"), std::string::npos);

  HttpResp audit = Do("GET", "/api/v1/admin/audit?action=project.read_only");
  ASSERT_EQ(audit.status, 200) << audit.raw;
  ASSERT_EQ(audit.body["entries"].size(), 1u) << audit.raw;
  EXPECT_EQ(audit.body["entries"][0]["project"], hurt_id);
  server_->Stop(SIGTERM);
}

INSTANTIATE_TEST_SUITE_P(TablePageOrJournal, DamageE2eTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("JournalOverflowPage")
                                             : std::string("ChunksTablePage");
                         });

}  // namespace
}  // namespace kb::testing
