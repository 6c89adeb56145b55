// The query plans of the statements on the hot paths (issue 16): writing a document, reading
// one, searching, deleting and undeleting must never make SQLite read a whole table of
// documents or chunks — such a statement gets slower with every document stored (it once made
// adding 1,000 one-chunk documents take 1.5 s in an empty project and 17.7 s in a full one).
//
// How: every SQLite connection the process opens gets a statement trace (installed with
// sqlite3_auto_extension, so the product code is not touched); the hot calls run through a real
// KnowledgeBase on real files while the trace records; then each distinct statement recorded
// is explained (EXPLAIN QUERY PLAN, on a separate connection to the same database) and no line
// of its plan may scan `documents` or `chunks` (FTS5 tables are searched through their own
// index and are not in question here), except an ordered walk of an index that stops after
// its LIMIT (a page of the listing). A statement added to a hot path later is checked without
// editing this test.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "service/knowledge_base.h"
#include "test_util.h"

namespace kb {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_recording{false};
std::mutex g_mu;
std::set<std::string> g_statements;  // guarded by g_mu

int TraceStatement(unsigned type, void*, void* p, void*) {
  if (type != SQLITE_TRACE_STMT || !g_recording.load()) return 0;
  const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(p));
  if (sql == nullptr) return 0;
  std::lock_guard<std::mutex> lock(g_mu);
  g_statements.insert(sql);
  return 0;
}

int InstallTrace(sqlite3* db, const char**, const struct sqlite3_api_routines*) {
  sqlite3_trace_v2(db, SQLITE_TRACE_STMT, TraceStatement, nullptr);
  return SQLITE_OK;
}

// The plan of `sql` on `db`, one line per step ("SEARCH documents USING INDEX ...").
std::vector<std::string> PlanOf(sqlite3* db, const std::string& sql) {
  std::vector<std::string> lines;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &st, nullptr) !=
      SQLITE_OK) {
    ADD_FAILURE() << "cannot explain: " << sql << ": " << sqlite3_errmsg(db);
    return lines;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    lines.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 3)));
  }
  sqlite3_finalize(st);
  return lines;
}

// A scan of a whole table or of a whole index of it ("SCAN documents", "SCAN chunks USING
// INDEX ..."); "SCAN chunks_fts VIRTUAL TABLE ..." is FTS5's own lookup.
bool ScansABigTable(const std::string& line) {
  static const std::regex kScan(R"(\bSCAN (documents|chunks)\b(?!_))");
  return std::regex_search(line, kScan);
}

TEST(ScanPatternTest, SeesTableAndIndexScansButNotFts) {
  EXPECT_TRUE(ScansABigTable("SCAN documents"));
  EXPECT_TRUE(ScansABigTable("SCAN chunks USING INDEX sqlite_autoindex_chunks_1"));
  EXPECT_FALSE(ScansABigTable("SCAN chunks_fts VIRTUAL TABLE INDEX 0:M2"));
  EXPECT_FALSE(ScansABigTable("SEARCH documents USING INDEX documents_live_source (source=?)"));
  EXPECT_FALSE(ScansABigTable("SEARCH c USING INTEGER PRIMARY KEY (rowid=?)"));
}

class QueryPlanTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sqlite3_auto_extension(reinterpret_cast<void (*)()>(InstallTrace));
  }
  static void TearDownTestSuite() {
    sqlite3_cancel_auto_extension(reinterpret_cast<void (*)()>(InstallTrace));
  }

  void SetUp() override {
    KbOptions o;
    o.data_dir = dir_.Sub("data");
    o.clock = &clock_;
    auto r = KnowledgeBase::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    kb_ = std::move(r).value();
    CreateProjectRequest req;
    req.name = "plans";
    auto p = kb_->CreateProject(req, actor_);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    project_id_ = p->id;
    // Enough rows that a scan and a search are different plans for the planner to choose.
    for (int i = 0; i < 50; ++i) Put("note-" + std::to_string(i) + ".md", Text(i));
  }

  static std::string Text(int i) {
    return "# Note " + std::to_string(i) + "\n\nThe backup of project " + std::to_string(i) +
           " runs hourly and keeps snapshots encrypted.\n\n## Restore\n\nPick a snapshot.\n";
  }

  IngestResult Put(const std::string& source, const std::string& content,
                   const std::string& metadata = "{}") {
    IngestRequest req;
    req.content = content;
    req.filename = source;
    req.metadata_json = metadata;
    auto r = kb_->Ingest("plans", req, actor_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : IngestResult{};
  }

  // Each recorded statement with the plan lines that scan a big table (empty: none do).
  std::vector<std::pair<std::string, std::vector<std::string>>> Explain(
      const std::string& db_path) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    std::lock_guard<std::mutex> lock(g_mu);
    for (const std::string& sql : g_statements) {
      // Trigger bodies are traced as comments; transaction control and PRAGMAs have no plan
      // worth checking; statements on tables this database does not have belong to another
      // database (the catalog's, checked with it).
      if (sql.rfind("--", 0) == 0) continue;
      std::vector<std::string> bad;
      sqlite3_stmt* probe = nullptr;
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &probe, nullptr) != SQLITE_OK) {
        sqlite3_finalize(probe);
        continue;
      }
      sqlite3_finalize(probe);
      // An alias ("FROM chunks c") is what the plan names: map it back to its table.
      std::string normalized = sql;
      for (const std::string& line : PlanOf(db, sql)) {
        std::smatch m;
        static const std::regex kAlias(R"(\bSCAN (\w+))");
        std::string table;
        if (std::regex_search(line, m, kAlias)) table = m[1];
        bool big = ScansABigTable(line);
        if (!big && !table.empty() && table != "documents" && table != "chunks") {
          const std::regex aliased("\\b(documents|chunks)\\s+(AS\\s+)?" + table + "\\b",
                                   std::regex::icase);
          big = std::regex_search(sql, aliased);
        }
        // An ordered walk of an index that stops after LIMIT rows (a page of a listing) reads
        // what the page needs, however large the project: allowed.
        const bool ordered_walk = line.find(" USING INDEX ") != std::string::npos &&
                                  sql.find(" ORDER BY ") != std::string::npos &&
                                  sql.find(" LIMIT ") != std::string::npos;
        if (big && !ordered_walk) bad.push_back(line);
      }
      out.emplace_back(sql, std::move(bad));
    }
    sqlite3_close(db);
    return out;
  }

  testing::TempDir dir_;
  ManualClock clock_{1'795'688'400'000};
  Actor actor_{"tester", "tester"};
  std::unique_ptr<KnowledgeBase> kb_;
  std::string project_id_;
};

TEST_F(QueryPlanTest, HotStatementsNeverScanDocumentsOrChunks) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_statements.clear();
  }
  g_recording = true;
  // Write: a new document by source, the same again (unchanged), new content under the same
  // source (replaced), one without a source, one bringing its own id.
  IngestResult created = Put("fresh.md", Text(1000), R"({"team":"ops"})");
  Put("fresh.md", Text(1000), R"({"team":"ops"})");
  Put("fresh.md", Text(1001), R"({"team":"ops"})");
  IngestRequest nameless;
  nameless.content = "A note without a name about restores.";
  ASSERT_TRUE(kb_->Ingest("plans", nameless, actor_).ok());
  // Read: one document, a page of the listing.
  ASSERT_TRUE(kb_->GetDocument("plans", created.document.id).ok());
  ASSERT_TRUE(kb_->ListDocuments("plans", 20, 20).ok());
  // Search, every mode, with and without a metadata filter.
  for (SearchMode mode : {SearchMode::kHybrid, SearchMode::kKeyword, SearchMode::kVector}) {
    QueryRequest q;
    q.text = "restore snapshot hourly";
    q.mode = mode;
    auto r = kb_->Query("plans", q);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_FALSE(r->hits.empty());
    q.filters_json = R"({"team":"ops"})";
    ASSERT_TRUE(kb_->Query("plans", q).ok());
  }
  // Delete and undelete.
  ASSERT_TRUE(kb_->DeleteDocument("plans", created.document.id, actor_).ok());
  RestoreDeletedRequest undelete;
  undelete.project = "plans";
  undelete.document_ids = {created.document.id};
  auto restored = kb_->RestoreDeleted(undelete, actor_);
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  ASSERT_TRUE(kb_->DeleteDocument("plans", created.document.id, actor_).ok());
  Put("fresh.md", Text(1002));  // the source is free again: a new document takes it
  g_recording = false;

  const std::string db_path = kb_->ProjectDir(project_id_) + "/kb.db";
  ASSERT_TRUE(fs::exists(db_path));
  auto explained = Explain(db_path);
  ASSERT_GT(explained.size(), 10u) << "the trace recorded too few statements to mean anything";
  size_t on_documents = 0;
  for (const auto& [sql, bad] : explained) {
    if (sql.find("documents") != std::string::npos) ++on_documents;
    EXPECT_TRUE(bad.empty()) << "this statement on a hot path scans a whole table:\n  " << sql
                             << "\nplan: " << ::testing::PrintToString(bad);
  }
  EXPECT_GT(on_documents, 3u);
}

}  // namespace
}  // namespace kb
