// The integrity check on real data directories: clean ones pass (and are not modified), and each
// kind of damage — a row changed behind the store's back, a flipped byte in a chunk, a broken
// b-tree page, a broken journal or keyword index, a missing, truncated, stale or wrong vector
// index, orphan and missing project directories — is reported precisely, offline and by a
// running KnowledgeBase, which also rebuilds damaged vector indexes by itself.
#include "service/integrity_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/crypto_util.h"
#include "service/knowledge_base.h"
#include "store/journal_codec.h"
#include "store/project_store.h"
#include "store/sqlite.h"
#include "test_util.h"

namespace kb {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr int kDim = 384;  // the builtin-hash embedder's default

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs SQL on a database file through a read-write connection of its own.
void ExecSql(const std::string& path, const std::string& sql_text) {
  auto db = sql::Database::Open(path);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  Status s = (*db)->Exec(sql_text);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

int64_t QueryInt(const std::string& path, const std::string& sql_text) {
  auto db = sql::Database::Open(path);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  if (!db.ok()) return -1;
  auto v = (*db)->QueryInt(sql_text);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : -1;
}

std::string QueryText(const std::string& path, const std::string& sql_text) {
  auto db = sql::Database::Open(path);
  EXPECT_TRUE(db.ok());
  if (!db.ok()) return "";
  auto st = (*db)->Prepare(sql_text);
  EXPECT_TRUE(st.ok());
  if (!st.ok()) return "";
  auto row = st->Step();
  return row.ok() && *row ? st->ColumnText(0) : "";
}

class IntegrityCheckTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open(int64_t check_interval_ms = 0) {
    kb_.reset();
    KbOptions o;
    o.data_dir = DataDir();
    o.index_save_interval_ms = 0;
    o.integrity_check_interval_ms = check_interval_ms;
    auto r = KnowledgeBase::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    kb_ = std::move(r).value();
  }
  void Close() { kb_.reset(); }

  std::string DataDir() const { return dir_.Sub("data"); }
  std::string ProjectDir(const std::string& id) const { return DataDir() + "/projects/" + id; }
  std::string Db(const std::string& id) const { return ProjectDir(id) + "/kb.db"; }
  std::string IndexDir(const std::string& id) const { return ProjectDir(id) + "/index"; }

  ProjectRecord MakeProject(const std::string& name) {
    CreateProjectRequest req;
    req.name = name;
    auto r = kb_->CreateProject(req, actor_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ProjectRecord{};
  }
  IngestResult Put(const std::string& project, const std::string& source,
                   const std::string& content) {
    IngestRequest req;
    req.content = content;
    req.filename = source;
    auto r = kb_->Ingest(project, req, actor_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : IngestResult{};
  }
  std::vector<int64_t> Ask(const std::string& project, const std::string& text) {
    QueryRequest q;
    q.text = text;
    q.mode = SearchMode::kVector;
    q.use_cache = false;
    auto r = kb_->Query(project, q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<int64_t> ids;
    if (r.ok()) {
      for (const auto& h : r->hits) ids.push_back(h.chunk_id);
    }
    return ids;
  }

  // A project "docs" with three documents; the knowledge base is closed afterwards so that the
  // files are at rest (WAL checkpointed, index saved).
  ProjectRecord Populate() {
    ProjectRecord p = MakeProject("docs");
    Put("docs", "quokka.md", "# Quokkas\n\nThe quokka lives on Rottnest island.\n");
    Put("docs", "kayak.txt", "Kayaks are narrow boats moved with a double-bladed paddle.\n");
    Put("docs", "bread.txt", "Sourdough bread needs flour, water and patience.\n");
    before_ = Ask("docs", "island animals");
    Close();
    return p;
  }

  IntegrityReport Check(bool repair = false) {
    IntegrityCheckOptions o;
    o.repair_index = repair;
    auto r = CheckDataDirectory(DataDir(), o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : IntegrityReport{};
  }

  static const DatabaseCheckReport* FindDb(const IntegrityReport& r, const std::string& id) {
    for (const auto& d : r.databases) {
      if (d.project_id == id) return &d;
    }
    return nullptr;
  }
  static CheckResult FindCheck(const IntegrityReport& r, const std::string& id,
                               std::string_view name) {
    const DatabaseCheckReport* d = FindDb(r, id);
    if (d == nullptr) {
      ADD_FAILURE() << "no report for project " << id;
      return {};
    }
    for (const CheckResult& c : d->checks) {
      if (c.name == name) return c;
    }
    ADD_FAILURE() << "no check " << name << " for project " << id;
    return {};
  }
  static std::string Dump(const IntegrityReport& r) { return IntegrityReportToJson(r).dump(2); }

  testing::TempDir dir_;
  Actor actor_{"tester", "tester"};
  std::unique_ptr<KnowledgeBase> kb_;
  std::vector<int64_t> before_;
};

// ---------------------------------------------------------------------------------------------
// Offline

TEST_F(IntegrityCheckTest, CleanDataDirectoryPassesEveryCheckAndIsNotModified) {
  ProjectRecord p = MakeProject("docs");
  Put("docs", "a.txt", "alpha bravo charlie");
  ProjectRecord gone = MakeProject("gone");
  Put("gone", "b.txt", "delta echo foxtrot");
  IngestResult del = Put("docs", "c.txt", "golf hotel india");
  ASSERT_TRUE(kb_->DeleteDocument("docs", del.document.id, actor_).ok());
  ASSERT_TRUE(kb_->DeleteProject("gone", actor_).ok());
  Close();
  const std::string catalog_before = Sha256Hex(Slurp(DataDir() + "/catalog.db"));
  const std::string db_before = Sha256Hex(Slurp(Db(p.id)));
  const std::string manifest_before = Sha256Hex(Slurp(IndexDir(p.id) + "/VECTOR_INDEX"));

  IntegrityReport r = Check();
  EXPECT_EQ(r.severity(), CheckSeverity::kOk) << Dump(r);
  EXPECT_FALSE(r.found_problem()) << Dump(r);
  EXPECT_TRUE(r.Problems().empty());
  ASSERT_EQ(r.databases.size(), 3u) << Dump(r);  // the catalog, a live and a deleted project
  EXPECT_EQ(r.databases[0].kind, "catalog");
  const DatabaseCheckReport* live = FindDb(r, p.id);
  ASSERT_NE(live, nullptr);
  EXPECT_EQ(live->project_name, "docs");
  std::vector<std::string> names;
  for (const auto& c : live->checks) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"sqlite", "schema", "journal", "chunks",
                                             "content_checksum", "keyword_index", "vector_index"}));
  const DatabaseCheckReport* deleted = FindDb(r, gone.id);
  ASSERT_NE(deleted, nullptr);
  EXPECT_TRUE(deleted->project_deleted);
  EXPECT_EQ(FindCheck(r, gone.id, kCheckVectorIndex).severity, CheckSeverity::kOk);

  // Read-only: the databases and the index are byte-for-byte what they were.
  EXPECT_EQ(Sha256Hex(Slurp(DataDir() + "/catalog.db")), catalog_before);
  EXPECT_EQ(Sha256Hex(Slurp(Db(p.id))), db_before);
  EXPECT_EQ(Sha256Hex(Slurp(IndexDir(p.id) + "/VECTOR_INDEX")), manifest_before);

  json j = IntegrityReportToJson(r);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["problems_found"], false);
  EXPECT_EQ(j["databases"].size(), 3u);
  EXPECT_EQ(j["databases"][1]["checks"][0]["name"], "sqlite");
  EXPECT_EQ(j["databases"][1]["checks"][0]["ok"], true);
  EXPECT_TRUE(j["databases"][1]["checks"][0]["problem"].is_null());
}

// A stop that arrives while a project is being checked (a shutdown) ends the check inside
// SQLite, and what was half-checked is not reported: an interrupted statement must never read
// as damage.
TEST_F(IntegrityCheckTest, ACheckStoppedInsideAProjectReportsNothingOfIt) {
  ProjectRecord p = MakeProject("docs");
  for (int i = 0; i < 200; ++i) {
    Put("docs", "note-" + std::to_string(i) + ".txt",
        "Note " + std::to_string(i) + ": the quokka lives on Rottnest island with its friends.\n");
  }
  Close();
  int asked = 0;
  IntegrityCheckOptions o;
  // The first question (before the first project) says go on; every later one, asked by
  // SQLite's progress handler inside the project's checks, says stop.
  o.cancelled = [&] { return ++asked > 1; };
  auto r = CheckDataDirectory(DataDir(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->cancelled);
  EXPECT_GT(asked, 2) << "SQLite never asked: the stop was not noticed inside the project";
  EXPECT_EQ(FindDb(*r, p.id), nullptr) << Dump(*r);
  EXPECT_FALSE(r->found_problem()) << Dump(*r);
  // Not cancelled, the same files pass.
  IntegrityReport full = Check();
  EXPECT_FALSE(full.cancelled);
  EXPECT_NE(FindDb(full, p.id), nullptr);
  EXPECT_FALSE(full.found_problem()) << Dump(full);
}

TEST_F(IntegrityCheckTest, SomethingThatIsNotADataDirectoryIsRefused) {
  auto missing = CheckDataDirectory(dir_.Sub("nowhere"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("does not exist"));

  fs::create_directories(dir_.Sub("empty"));
  auto empty = CheckDataDirectory(dir_.Sub("empty"));
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(empty.status().message(),
            dir_.Sub("empty") + " is not a KnowledgeBeast data directory: it has no catalog.db");

  testing::WriteTestFile(dir_.Sub("file"), "x");
  auto file = CheckDataDirectory(dir_.Sub("file"));
  EXPECT_EQ(file.status().code(), Code::kFailedPrecondition);
}

// The counts schema 3 keeps (doc_counts) are compared with the rows by the check operators run
// (`check`, POST /admin/check, the periodic one), not only by the store's own.
TEST_F(IntegrityCheckTest, MaintainedCountsThatDifferFromTheRowsFailTheChunksCheck) {
  ProjectRecord p = Populate();
  ExecSql(Db(p.id), "UPDATE doc_counts SET live_documents = live_documents + 1");
  IntegrityReport r = Check();
  EXPECT_EQ(r.severity(), CheckSeverity::kUnhealthy) << Dump(r);
  CheckResult c = FindCheck(r, p.id, kCheckChunks);
  EXPECT_EQ(c.severity, CheckSeverity::kUnhealthy);
  EXPECT_THAT(c.problem, HasSubstr("the maintained counts (4 live documents"));
  EXPECT_THAT(c.problem, HasSubstr("differ from the rows (3 live documents"));
  EXPECT_EQ(FindCheck(r, p.id, kCheckContentChecksum).severity, CheckSeverity::kOk);
}

TEST_F(IntegrityCheckTest, RowChangedBehindTheStoresBackFailsTheContentChecksum) {
  ProjectRecord p = Populate();
  const std::string maintained = QueryText(Db(p.id), "SELECT content_checksum FROM meta");
  // The triggers keep the keyword index in step; only the content checksum can notice.
  ExecSql(Db(p.id), "UPDATE chunks SET text = 'tampered' WHERE id = (SELECT min(id) FROM chunks)");

  IntegrityReport r = Check();
  EXPECT_EQ(r.severity(), CheckSeverity::kUnhealthy) << Dump(r);
  CheckResult c = FindCheck(r, p.id, kCheckContentChecksum);
  EXPECT_EQ(c.severity, CheckSeverity::kUnhealthy);
  EXPECT_THAT(c.problem, HasSubstr("the content checksum recomputed from the rows of 3 documents"));
  EXPECT_THAT(c.problem, HasSubstr("but meta.content_checksum is " + maintained));
  EXPECT_EQ(FindCheck(r, p.id, kCheckSqlite).severity, CheckSeverity::kOk);
  EXPECT_EQ(FindCheck(r, p.id, kCheckKeywordIndex).severity, CheckSeverity::kOk);
  // The problem line names the file.
  ASSERT_EQ(r.Problems().size(), 1u) << Dump(r);
  EXPECT_EQ(r.Problems()[0].rfind(Db(p.id) + " (project 'docs'): content_checksum: ", 0), 0u)
      << r.Problems()[0];
}

TEST_F(IntegrityCheckTest, FlippedByteInAChunkOnDiskFailsTheContentChecksum) {
  ProjectRecord p = Populate();
  // Find "Rottnest" on the chunks table's own pages (the journal and FTS hold it too) and flip
  // one of its bytes in the file.
  std::vector<int64_t> pages;
  {
    auto db = sql::Database::Open(Db(p.id));
    ASSERT_TRUE(db.ok());
    auto st = (*db)->Prepare("SELECT pageno FROM dbstat WHERE name = 'chunks'");
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    while (true) {
      auto row = st->Step();
      ASSERT_TRUE(row.ok());
      if (!*row) break;
      pages.push_back(st->ColumnInt64(0));
    }
  }
  const int64_t page_size = QueryInt(Db(p.id), "PRAGMA page_size");
  std::string bytes = Slurp(Db(p.id));
  size_t at = std::string::npos;
  for (int64_t page : pages) {
    const size_t start = static_cast<size_t>((page - 1) * page_size);
    const size_t found = bytes.substr(start, static_cast<size_t>(page_size)).find("Rottnest");
    if (found != std::string::npos) at = start + found;
  }
  ASSERT_NE(at, std::string::npos) << "chunk text not found on the chunks table's pages";
  {
    std::fstream f(Db(p.id), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at + 1));
    f.put('O');  // "Rottnest" -> "ROttnest"
  }

  IntegrityReport r = Check();
  EXPECT_EQ(FindCheck(r, p.id, kCheckSqlite).severity, CheckSeverity::kOk) << Dump(r);
  CheckResult c = FindCheck(r, p.id, kCheckContentChecksum);
  EXPECT_EQ(c.severity, CheckSeverity::kUnhealthy) << Dump(r);
  EXPECT_THAT(c.problem, HasSubstr("content checksum recomputed from the rows"));
  EXPECT_EQ(r.severity(), CheckSeverity::kUnhealthy);
}

// The offset in kb.db of a byte inside an embedding's base64 text on one of the journal's
// overflow pages (SQLite's integrity_check never reads those bytes): the middle of a run of 40
// base64 characters, which chunk text (with its spaces) does not have.
size_t JournalOverflowBase64Byte(const std::string& db_path) {
  std::vector<int64_t> pages;
  {
    auto db = sql::Database::Open(db_path);
    EXPECT_TRUE(db.ok());
    if (!db.ok()) return std::string::npos;
    auto st = (*db)->Prepare(
        "SELECT pageno FROM dbstat WHERE name = 'journal' AND pagetype = 'overflow'");
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    while (st.ok()) {
      auto row = st->Step();
      if (!row.ok() || !*row) break;
      pages.push_back(st->ColumnInt64(0));
    }
  }
  EXPECT_FALSE(pages.empty()) << "the journal has no overflow pages";
  const int64_t page_size = QueryInt(db_path, "PRAGMA page_size");
  const std::string bytes = Slurp(db_path);
  for (int64_t page : pages) {
    const size_t start =
        static_cast<size_t>((page - 1) * page_size) + 4;  // past the next-page link
    size_t run = 0;
    for (size_t i = start; i < start + static_cast<size_t>(page_size) - 4; ++i) {
      const char c = bytes[i];
      run = (std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/') ? run + 1 : 0;
      if (run == 40) return i - 20;
    }
  }
  return std::string::npos;
}

void WriteByte(const std::string& path, size_t at, char c) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at));
  f.put(c);
}

std::string LongMarkdown() {
  std::string text = "# Lighthouses\n\n";
  for (int i = 0; i < 30; ++i) {
    text += "Section " + std::to_string(i) +
            " describes a lighthouse keeper who trims the lamp wick at dusk, logs the passing "
            "ships, and watches the fog roll over the harbour wall until morning comes.\n\n";
  }
  return text;
}

TEST_F(IntegrityCheckTest, FlippedByteInAJournalOverflowPageFailsTheJournalCheck) {
  ProjectRecord p = MakeProject("docs");
  Put("docs", "long.md", LongMarkdown());
  Close();
  const size_t at = JournalOverflowBase64Byte(Db(p.id));
  ASSERT_NE(at, std::string::npos);
  WriteByte(Db(p.id), at, '!');  // no longer base64: the embedding cannot be decoded

  IntegrityReport r = Check();
  EXPECT_EQ(FindCheck(r, p.id, kCheckSqlite).severity, CheckSeverity::kOk) << Dump(r);
  CheckResult c = FindCheck(r, p.id, kCheckJournal);
  EXPECT_EQ(c.severity, CheckSeverity::kUnhealthy) << Dump(r);
  EXPECT_THAT(c.problem, HasSubstr("1 journal entry is damaged (LSN 1: its put_document payload "
                                   "does not decode"));
  EXPECT_EQ(r.severity(), CheckSeverity::kUnhealthy);
}

TEST_F(IntegrityCheckTest, ADamagedProjectBecomesReadOnlyAndWritableAgainWhenItPasses) {
  ProjectRecord p = MakeProject("docs");
  Put("docs", "long.md", LongMarkdown());
  MakeProject("other");
  Close();
  const size_t at = JournalOverflowBase64Byte(Db(p.id));
  ASSERT_NE(at, std::string::npos);
  const char original = Slurp(Db(p.id))[at];
  WriteByte(Db(p.id), at, '!');

  Open();
  auto report = kb_->RunIntegrityCheck();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  // Writes to the damaged project are refused, naming the problem and the way out...
  IngestRequest req;
  req.content = "a new document";
  req.filename = "new.txt";
  auto refused = kb_->Ingest("docs", req, actor_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kUnavailable);
  EXPECT_THAT(refused.status().message(), HasSubstr("is read-only: its database is damaged"));
  EXPECT_THAT(refused.status().message(), HasSubstr("journal"));
  EXPECT_THAT(refused.status().message(), HasSubstr("knowledgebeast check"));
  auto listed = kb_->ListDocuments("docs", 10, 0);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->documents.size(), 1u);
  EXPECT_EQ(kb_->DeleteDocument("docs", listed->documents[0].id, actor_).code(),
            Code::kUnavailable);
  // ...reads go on, other projects take writes, and the state is visible.
  EXPECT_FALSE(Ask("docs", "lighthouse keeper").empty());
  EXPECT_TRUE(kb_->Ingest("other", req, actor_).ok());
  auto read_only = kb_->ReadOnlyProjects();
  ASSERT_EQ(read_only.size(), 1u);
  EXPECT_EQ(read_only[0].id, p.id);
  EXPECT_EQ(kb_->Health().read_only_projects.size(), 1u);

  // Repaired behind the server's back (as a restore would): the next check makes it writable.
  WriteByte(Db(p.id), at, original);
  ASSERT_TRUE(kb_->RunIntegrityCheck().ok());
  EXPECT_TRUE(kb_->ReadOnlyProjects().empty());
  EXPECT_TRUE(kb_->Ingest("docs", req, actor_).ok());
}

TEST_F(IntegrityCheckTest, BrokenBtreePageFailsSqliteIntegrityCheck) {
  ProjectRecord p = Populate();
  const int64_t page_size = QueryInt(Db(p.id), "PRAGMA page_size");
  const int64_t root =
      QueryInt(Db(p.id), "SELECT rootpage FROM sqlite_schema WHERE name = 'documents_created'");
  ASSERT_GT(root, 1);
  {
    // The root of a 3-entry index is a leaf; zero its cell count (bytes 3-4 of the page header).
    std::fstream f(Db(p.id), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>((root - 1) * page_size));
    ASSERT_EQ(f.get(), 0x0A) << "not a leaf index page";
    f.seekp(static_cast<std::streamoff>((root - 1) * page_size + 3));
    f.put('\0');
    f.put('\0');
  }
  IntegrityReport r = Check();
  CheckResult c = FindCheck(r, p.id, kCheckSqlite);
  EXPECT_EQ(c.severity, CheckSeverity::kUnhealthy) << Dump(r);
  EXPECT_THAT(c.problem, HasSubstr("PRAGMA integrity_check reports"));
  EXPECT_THAT(c.problem, HasSubstr("missing from index documents_created"));
  EXPECT_THAT(c.problem, HasSubstr("wrong # of entries in index documents_created"));
  EXPECT_EQ(r.severity(), CheckSeverity::kUnhealthy);
}

TEST_F(IntegrityCheckTest, JournalAndKeywordIndexDamageIsNamed) {
  ProjectRecord p = Populate();
  ExecSql(Db(p.id), "DELETE FROM journal WHERE lsn = 3");
  const int64_t chunk = QueryInt(Db(p.id), "SELECT min(id) FROM chunks");
  ExecSql(Db(p.id),
          "INSERT INTO chunks_fts(chunks_fts, rowid, text) SELECT 'delete', id, text "
          "FROM chunks WHERE id = " +
              std::to_string(chunk));
  IntegrityReport r = Check();
  CheckResult journal = FindCheck(r, p.id, kCheckJournal);
  EXPECT_EQ(journal.severity, CheckSeverity::kUnhealthy);
  EXPECT_THAT(journal.problem,
              HasSubstr("the newest journal entry is LSN 2 but meta.last_lsn is 3"));
  CheckResult fts = FindCheck(r, p.id, kCheckKeywordIndex);
  EXPECT_EQ(fts.severity, CheckSeverity::kDegraded);
  EXPECT_EQ(fts.problem,
            "the FTS5 index chunks_fts does not match the live chunks: 1 chunk is "
            "not indexed (ids " +
                std::to_string(chunk) + ")");
}

TEST_F(IntegrityCheckTest, DamagedVectorIndexIsDegradedAndRepairIndexRebuildsIt) {
  ProjectRecord p = Populate();
  auto graph_file = [&] {
    for (const auto& e : fs::directory_iterator(IndexDir(p.id))) {
      if (e.path().filename().string().rfind("graph-", 0) == 0) return e.path().string();
    }
    return std::string();
  };
  struct Damage {
    std::string what;
    std::function<void()> apply;
    std::string expected;  // in the problem text
  };
  const std::vector<Damage> damages = {
      {"deleted", [&] { fs::remove_all(IndexDir(p.id)); },
       "no saved vector index in " + IndexDir(p.id) + " (its manifest VECTOR_INDEX is missing)"},
      {"truncated", [&] { fs::resize_file(graph_file(), 100); }, " has 100 bytes, manifest says "},
      {"flipped",
       [&] {
         std::fstream f(IndexDir(p.id) + "/VECTOR_INDEX",
                        std::ios::in | std::ios::out | std::ios::binary);
         f.seekp(30);
         f.put('\x7f');
       },
       "vector index manifest " + IndexDir(p.id) + "/VECTOR_INDEX"},
  };
  for (const Damage& d : damages) {
    SCOPED_TRACE(d.what);
    d.apply();
    IntegrityReport r = Check();
    EXPECT_EQ(r.severity(), CheckSeverity::kDegraded) << Dump(r);
    CheckResult c = FindCheck(r, p.id, kCheckVectorIndex);
    EXPECT_EQ(c.severity, CheckSeverity::kDegraded);
    EXPECT_FALSE(c.repaired);
    EXPECT_THAT(c.problem, HasSubstr(d.expected));
    // The databases are fine.
    EXPECT_EQ(FindCheck(r, p.id, kCheckContentChecksum).severity, CheckSeverity::kOk);

    IntegrityReport repaired = Check(/*repair=*/true);
    CheckResult rc = FindCheck(repaired, p.id, kCheckVectorIndex);
    EXPECT_TRUE(rc.repaired) << Dump(repaired);
    EXPECT_EQ(rc.note, "rebuilt from kb.db at LSN 3 (3 vectors)");
    EXPECT_TRUE(repaired.found_problem());
    EXPECT_EQ(repaired.severity(), CheckSeverity::kOk);
    EXPECT_EQ(repaired.Repairs().size(), 1u);

    IntegrityReport again = Check();
    EXPECT_FALSE(again.found_problem()) << Dump(again);
  }
  // The repaired index loads without a rebuild and answers as before.
  Open();
  EXPECT_EQ(kb_->counters().index_rebuilds.load(), 0);
  EXPECT_EQ(Ask("docs", "island animals"), before_);
}

TEST_F(IntegrityCheckTest, IndexAheadOfTheDatabaseIsReported) {
  ProjectRecord p = MakeProject("docs");
  Put("docs", "a.txt", "first document about kayaks");
  Close();
  fs::copy_file(Db(p.id), dir_.Sub("kb-lsn1.db"));
  Open();
  Put("docs", "b.txt", "second document about canoes");
  Close();
  // The database goes back to LSN 1; the saved index stays at LSN 2.
  fs::copy_file(dir_.Sub("kb-lsn1.db"), Db(p.id), fs::copy_options::overwrite_existing);
  IntegrityReport r = Check();
  CheckResult c = FindCheck(r, p.id, kCheckVectorIndex);
  EXPECT_EQ(c.severity, CheckSeverity::kDegraded) << Dump(r);
  EXPECT_EQ(c.problem, "the saved index in " + IndexDir(p.id) +
                           " reflects LSN 2, ahead of kb.db's journal (LSN 1): it belongs to a "
                           "newer state of the database");
}

TEST_F(IntegrityCheckTest, IndexThatDisagreesWithTheDatabaseIsReportedPrecisely) {
  ProjectRecord p = Populate();
  std::vector<std::pair<int64_t, std::vector<float>>> live;
  {
    auto db = sql::Database::Open(Db(p.id));
    ASSERT_TRUE(db.ok());
    auto st = (*db)->Prepare("SELECT id, embedding FROM chunks ORDER BY id");
    ASSERT_TRUE(st.ok());
    while (true) {
      auto row = st->Step();
      ASSERT_TRUE(row.ok());
      if (!*row) break;
      live.emplace_back(st->ColumnInt64(0), *store::EmbeddingFromBytes(st->ColumnBlobView(1)));
    }
  }
  ASSERT_EQ(live.size(), 3u);
  VectorIndexOptions o;
  o.dimension = kDim;
  // A checksum-valid index at the right LSN that lacks one vector.
  {
    auto index = VectorIndex::Create(o);
    for (size_t i = 1; i < live.size(); ++i)
      ASSERT_TRUE(index->Upsert(live[i].first, live[i].second).ok());
    ASSERT_TRUE(index->Save(IndexDir(p.id), 3).ok());
    CheckResult c = CheckSavedVectorIndex(ProjectDir(p.id), kDim, o);
    EXPECT_EQ(c.severity, CheckSeverity::kDegraded);
    EXPECT_THAT(c.problem, HasSubstr("disagrees with kb.db: it holds 2 vectors but kb.db has 3 "
                                     "live chunks at LSN 3: 1 live chunk is missing from the "
                                     "index (ids " +
                                     std::to_string(live[0].first) + ")"));
  }
  // One that has every label, but a wrong vector for one of them.
  {
    auto index = VectorIndex::Create(o);
    for (size_t i = 0; i < live.size(); ++i) {
      ASSERT_TRUE(index->Upsert(live[i].first, live[(i + 1) % live.size()].second).ok());
    }
    ASSERT_TRUE(index->Save(IndexDir(p.id), 3).ok());
    CheckResult c = CheckSavedVectorIndex(ProjectDir(p.id), kDim, o);
    EXPECT_EQ(c.severity, CheckSeverity::kDegraded);
    EXPECT_THAT(c.problem, HasSubstr("chunk " + std::to_string(live[0].first) +
                                     ": the index's vector differs from the embedding in kb.db"));
  }
}

TEST_F(IntegrityCheckTest, OrphanAndMissingProjectDirectoriesAreReported) {
  ProjectRecord a = MakeProject("a");
  ProjectRecord b = MakeProject("b");
  Close();
  fs::remove_all(ProjectDir(b.id));
  const std::string orphan = "0f0f0f0f-0000-4000-8000-000000000000";
  fs::create_directories(ProjectDir(orphan));
  IntegrityReport r = Check();
  EXPECT_EQ(r.severity(), CheckSeverity::kUnhealthy) << Dump(r);
  CheckResult missing = FindCheck(r, b.id, kCheckCatalog);
  EXPECT_EQ(missing.severity, CheckSeverity::kUnhealthy);
  EXPECT_EQ(missing.problem, "the catalog lists this live project but its directory " +
                                 ProjectDir(b.id) + " is missing");
  CheckResult stray = FindCheck(r, orphan, kCheckCatalog);
  EXPECT_EQ(stray.severity, CheckSeverity::kDegraded);
  EXPECT_THAT(stray.problem, HasSubstr("no catalog row names this project directory"));
  EXPECT_EQ(FindDb(r, orphan)->path, ProjectDir(orphan));
  EXPECT_FALSE(FindDb(r, a.id)->found_problem());
}

// ---------------------------------------------------------------------------------------------
// Online: a running KnowledgeBase

TEST_F(IntegrityCheckTest, RunningKnowledgeBaseReportsACleanCheckInHealth) {
  MakeProject("docs");
  Put("docs", "a.txt", "alpha bravo charlie");
  EXPECT_FALSE(kb_->Health().integrity.has_value());
  auto r = kb_->RunIntegrityCheck();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->found_problem()) << Dump(*r);
  HealthReport h = kb_->Health();
  EXPECT_EQ(h.status, "healthy");
  ASSERT_TRUE(h.integrity.has_value());
  EXPECT_EQ(h.integrity->status, CheckSeverity::kOk);
  EXPECT_TRUE(h.integrity->problems.empty());
  ASSERT_TRUE(h.integrity->last_success_at_ms.has_value());
  EXPECT_EQ(*h.integrity->last_success_at_ms, h.integrity->finished_at_ms);
  EXPECT_EQ(kb_->counters().integrity_checks.load(), 1);
  EXPECT_EQ(kb_->counters().integrity_check_failures.load(), 0);
  EXPECT_GT(kb_->counters().integrity_check_last_success_ms.load(), 0);
}

TEST_F(IntegrityCheckTest, RunningKnowledgeBaseRebuildsADamagedSavedIndex) {
  ProjectRecord p = Populate();
  Open();
  fs::remove_all(IndexDir(p.id));
  auto r = kb_->RunIntegrityCheck();
  ASSERT_TRUE(r.ok());
  CheckResult c = FindCheck(*r, p.id, kCheckVectorIndex);
  EXPECT_EQ(c.severity, CheckSeverity::kDegraded) << Dump(*r);
  EXPECT_TRUE(c.repaired);
  EXPECT_THAT(c.problem, HasSubstr("saved index: no saved vector index in " + IndexDir(p.id)));
  EXPECT_EQ(r->severity(), CheckSeverity::kOk);
  EXPECT_EQ(kb_->counters().index_rebuilds.load(), 1);
  EXPECT_EQ(kb_->counters().integrity_check_failures.load(), 1);
  HealthReport h = kb_->Health();
  EXPECT_EQ(h.status, "healthy");  // repaired: back to ok
  ASSERT_EQ(h.integrity->repaired.size(), 1u);
  EXPECT_THAT(h.integrity->repaired[0], HasSubstr("vector_index: saved index: "));
  EXPECT_TRUE(fs::exists(IndexDir(p.id) + "/VECTOR_INDEX"));

  auto again = kb_->RunIntegrityCheck();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->found_problem()) << Dump(*again);
  EXPECT_EQ(Ask("docs", "island animals"), before_);
}

TEST_F(IntegrityCheckTest, RunningKnowledgeBaseRebuildsAnInMemoryIndexThatMissesChanges) {
  ProjectRecord p = Populate();
  Open();
  {
    // Another process writes the database while the server runs: its in-memory index misses it.
    auto other = ProjectStore::Open(Db(p.id), p.id, kDim, SystemClock::Default());
    ASSERT_TRUE(other.ok()) << other.status().ToString();
    DocumentRecord d;
    d.title = "Wombats";
    d.source = "wombat.txt";
    d.content_type = "text/plain";
    d.content_hash = Sha256Hex("wombat");
    ChunkRecord chunk;
    chunk.text = "Wombats produce cube-shaped droppings.";
    chunk.end_offset = static_cast<int64_t>(chunk.text.size());
    chunk.embedding.assign(kDim, 0.0f);
    chunk.embedding[7] = 1.0f;
    d.chunk_count = 1;
    auto put = (*other)->PutDocument(d, {chunk}, "other");
    ASSERT_TRUE(put.ok()) << put.status().ToString();
  }
  auto r = kb_->RunIntegrityCheck();
  ASSERT_TRUE(r.ok());
  CheckResult c = FindCheck(*r, p.id, kCheckVectorIndex);
  EXPECT_EQ(c.problem,
            "in-memory index: it reflects LSN 3 but kb.db is at LSN 4 (written by "
            "another process while the server runs?)")
      << Dump(*r);
  EXPECT_TRUE(c.repaired);
  EXPECT_EQ(kb_->Stats()->per_project[0].index_vectors, 4u);
  auto again = kb_->RunIntegrityCheck();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->found_problem()) << Dump(*again);
}

TEST_F(IntegrityCheckTest, RunningKnowledgeBaseReportsADamagedDatabaseAsUnhealthy) {
  ProjectRecord p = Populate();
  Open();
  ExecSql(Db(p.id), "UPDATE documents SET title = 'tampered' WHERE source = 'kayak.txt'");
  auto r = kb_->RunIntegrityCheck();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->severity(), CheckSeverity::kUnhealthy) << Dump(*r);
  EXPECT_EQ(FindCheck(*r, p.id, kCheckContentChecksum).severity, CheckSeverity::kUnhealthy);
  HealthReport h = kb_->Health();
  EXPECT_EQ(h.status, "unhealthy");
  ASSERT_EQ(h.integrity->problems.size(), 1u);
  EXPECT_THAT(h.integrity->problems[0], HasSubstr("content_checksum: the content checksum"));
  EXPECT_EQ(h.problems, h.integrity->problems);
  EXPECT_EQ(kb_->counters().integrity_check_failures.load(), 1);
  EXPECT_EQ(kb_->counters().integrity_check_last_success_ms.load(), 0);
}

TEST_F(IntegrityCheckTest, IndexRebuiltAtLoadIsReportedByTheFirstCheck) {
  ProjectRecord p = Populate();
  fs::resize_file(IndexDir(p.id) + "/VECTOR_INDEX", 10);
  Open(/*check_interval_ms=*/3'600'000);
  // The first background check runs right after Open.
  for (int i = 0; i < 500 && kb_->counters().integrity_checks.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(kb_->counters().integrity_checks.load(), 1);
  EXPECT_EQ(kb_->counters().integrity_check_failures.load(), 1);
  EXPECT_EQ(kb_->counters().index_rebuilds.load(), 1);
  HealthReport h = kb_->Health();
  EXPECT_EQ(h.status, "healthy");
  ASSERT_TRUE(h.integrity.has_value());
  ASSERT_EQ(h.integrity->repaired.size(), 1u);
  EXPECT_THAT(h.integrity->repaired[0],
              HasSubstr("rebuilt from kb.db when the project was loaded: vector index manifest"));
  // Close does not wait for the next period.
  const auto start = std::chrono::steady_clock::now();
  Close();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(IntegrityCheckTest, ConcurrentWritesDuringOnlineChecksAreNotReportedAsDamage) {
  MakeProject("docs");
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 30; ++i) {
      Put("docs", "doc" + std::to_string(i) + ".txt",
          "document number " + std::to_string(i) + " about rivers and lakes");
    }
    done = true;
  });
  int runs = 0;
  while (!done || runs < 2) {
    auto r = kb_->RunIntegrityCheck();
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->found_problem()) << Dump(*r);
    ++runs;
  }
  writer.join();
}

}  // namespace
}  // namespace kb
