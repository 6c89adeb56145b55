// PrepareSnapshotSource on real data directories made by the real KnowledgeBase: the catalog copy
// and the streamed database copies (each produced as a backup produces it, into a file here) are
// sound SQLite files at one committed state, their recorded metadata matches them and the live
// stores, the vector index pair is consistent, and the page layout is the source's.
#include "backup/source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "backup/restore.h"
#include "common/file_util.h"
#include "index/vector_index.h"
#include "service/knowledge_base.h"
#include "store/catalog.h"
#include "store/project_store.h"
#include "store/sqlite.h"
#include "test_util.h"

namespace kb::backup {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kStart = 1'795'688'400'000;  // 2026-11-26T10:20:00Z
constexpr int kPageSize = 4096;

std::string Doc(int i) {
  return "# Note " + std::to_string(i) + "\n\nThe backup of note " + std::to_string(i) +
         " mentions sourdough, encryption and retention number " + std::to_string(i * 7) + ".\n";
}

// "ok" or SQLite's report.
std::string IntegrityCheck(const std::string& path) {
  sql::OpenOptions ro;
  ro.read_only = true;
  auto db = sql::Database::Open(path, ro);
  if (!db.ok()) return db.status().ToString();
  auto st = (*db)->Prepare("PRAGMA integrity_check");
  if (!st.ok()) return st.status().ToString();
  std::string report;
  while (true) {
    auto row = st->Step();
    if (!row.ok()) return row.status().ToString();
    if (!*row) break;
    if (!report.empty()) report += "; ";
    report += st->ColumnText(0);
  }
  return report;
}

int64_t QueryIntOn(const std::string& path, const std::string& sql) {
  sql::OpenOptions ro;
  ro.read_only = true;
  auto db = sql::Database::Open(path, ro);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  if (!db.ok()) return -1;
  auto v = (*db)->QueryInt(sql);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : -1;
}

std::string ReadAll(const std::string& path) {
  auto r = ReadFile(path);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : "";
}

std::vector<std::string> Paths(const std::vector<repo::SourceFile>& files) {
  std::vector<std::string> out;
  for (const repo::SourceFile& f : files) out.push_back(f.path);
  return out;
}

// Runs `step(i)` for i = 100, 101, ... on a thread until stopped or destroyed (so it stops on
// every way out of a test, failed ASSERTs included). A failing step is a test failure and ends it.
class BackgroundWriter {
 public:
  explicit BackgroundWriter(std::function<Status(int)> step)
      : thread_([this, step = std::move(step)] {
          for (int i = 100; !stop_.load(); ++i) {
            Status s = step(i);
            if (!s.ok()) {
              ADD_FAILURE() << s.ToString();
              failed_.store(true);
              return;
            }
            written_.fetch_add(1);
          }
        }) {}
  ~BackgroundWriter() { Stop(); }
  BackgroundWriter(const BackgroundWriter&) = delete;
  BackgroundWriter& operator=(const BackgroundWriter&) = delete;

  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  int written() const { return written_.load(); }
  bool failed() const { return failed_.load(); }
  // Until `n` steps have succeeded (or one failed).
  void WaitFor(int n) const {
    while (written_.load() < n && !failed_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> written_{0};
  std::atomic<bool> failed_{false};
  std::thread thread_;  // last: starts once the flags exist
};

class SourceTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenKb(); }

  void OpenKb(int64_t save_interval_ms = 0) {
    kb_.reset();
    KbOptions o;
    o.data_dir = data_dir_;
    o.clock = &clock_;
    o.index_save_interval_ms = save_interval_ms;
    auto r = KnowledgeBase::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    kb_ = std::move(r).value();
  }
  void CloseKb() {
    if (kb_) kb_->Close();
    kb_.reset();
  }

  ProjectRecord MakeProject(const std::string& name, int docs) {
    CreateProjectRequest req;
    req.name = name;
    req.description = "project " + name;
    req.metadata_json = R"({"team":"docs"})";
    auto r = kb_->CreateProject(req, actor_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    for (int i = 0; i < docs; ++i) Put(name, i);
    return r.ok() ? *r : ProjectRecord{};
  }

  IngestResult Put(const std::string& project, int i) {
    IngestRequest req;
    req.content = Doc(i);
    req.filename = "note-" + std::to_string(i) + ".md";
    auto r = kb_->Ingest(project, req, actor_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    clock_.Advance(1000);
    return r.ok() ? *r : IngestResult{};
  }

  Result<PreparedSource> Prepare(const SourceOptions& options = {}) {
    return PrepareSnapshotSource(data_dir_, staging_, options);
  }

  std::string ProjectDir(const std::string& id) const { return data_dir_ + "/projects/" + id; }

  // What a backup stores for a project's database: its bytes (streamed into a fresh file here)
  // and the project metadata completed from the same read transaction.
  struct Copy {
    std::string path;
    repo::ProjectSnapshot meta;
  };
  Copy CopyOf(const repo::ProjectSource& p) {
    Copy c{dir_.Sub("copy-" + std::to_string(++copies_) + "/kb.db"), p.meta};
    fs::create_directories(fs::path(c.path).parent_path());
    EXPECT_EQ(p.files.at(0).path, "kb.db");
    EXPECT_TRUE(p.files.at(0).produce) << "kb.db is copied while the backup runs";
    if (!p.files.at(0).produce) return c;
    auto size = ProduceToFile(p.files.at(0), c.path, &c.meta);
    EXPECT_TRUE(size.ok()) << size.status().ToString();
    if (size.ok()) {
      EXPECT_EQ(static_cast<int64_t>(fs::file_size(c.path)), *size);
    }
    return c;
  }

  testing::TempDir dir_;
  std::string data_dir_ = dir_.Sub("data");
  std::string staging_ = dir_.Sub("staging");
  ManualClock clock_{kStart};
  Actor actor_{"tester", "tester"};
  std::unique_ptr<KnowledgeBase> kb_;
  int copies_ = 0;
};

// ---------------------------------------------------------------------------------------------

TEST_F(SourceTest, FullSnapshotStagesCatalogAndEveryProjectWithMatchingMetadata) {
  ProjectRecord alpha = MakeProject("alpha", 4);
  ProjectRecord beta = MakeProject("beta", 2);
  auto listed = kb_->ListDocuments("alpha", 10, 0);
  ASSERT_TRUE(listed.ok());
  ASSERT_TRUE(kb_->DeleteDocument("alpha", listed->documents[0].id, actor_).ok());
  CloseKb();  // saves the vector indexes

  auto prepared = Prepare();
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  const repo::SnapshotSource& src = prepared->source();
  EXPECT_EQ(src.scope, "full");
  ASSERT_EQ(Paths(src.catalog_files), std::vector<std::string>{"catalog.db"});
  EXPECT_EQ(src.catalog_files[0].local_path, staging_ + "/catalog.db");
  EXPECT_EQ(IntegrityCheck(src.catalog_files[0].local_path), "ok");
  EXPECT_TRUE(prepared->notes().empty());
  ASSERT_EQ(src.projects.size(), 2u);

  auto catalog = Catalog::Open(data_dir_ + "/catalog.db", &clock_);
  ASSERT_TRUE(catalog.ok());
  std::map<std::string, repo::ProjectSnapshot> copied;
  for (const repo::ProjectSource& p : src.projects) {
    SCOPED_TRACE(p.meta.name);
    // Nothing of the database is read before the backup reaches it.
    EXPECT_EQ(p.meta.lsn, 0);
    EXPECT_EQ(p.meta.content_checksum, "");
    const Copy copy = CopyOf(p);
    const repo::ProjectSnapshot& meta = copy.meta;
    copied[p.meta.id] = meta;
    auto record = (*catalog)->GetProject(p.meta.id);
    ASSERT_TRUE(record.ok());
    auto live = ProjectStore::Open(ProjectDir(p.meta.id) + "/kb.db", p.meta.id,
                                   record->embedding_dimension, &clock_);
    ASSERT_TRUE(live.ok()) << live.status().ToString();
    EXPECT_EQ(p.meta.name, record->name);
    EXPECT_FALSE(p.meta.deleted);
    EXPECT_EQ(p.meta.catalog_row, ProjectRecordToJson(*record));
    EXPECT_EQ(meta.lsn, *(*live)->LastLsn());
    EXPECT_EQ(meta.content_checksum, *(*live)->ContentChecksum());
    StoreCounts counts = *(*live)->Counts();
    EXPECT_EQ(meta.counts, (nlohmann::json{{"documents", counts.documents},
                                           {"chunks", counts.chunks},
                                           {"deleted_documents", counts.deleted_documents}}));
    EXPECT_EQ(p.meta.embedder, (nlohmann::json{{"fingerprint", record->embedder_fingerprint},
                                               {"dimension", record->embedding_dimension}}));
    VectorIndexOptions iopts;
    iopts.dimension = record->embedding_dimension;
    auto live_index = VectorIndex::Load(ProjectDir(p.meta.id) + "/index", iopts);
    ASSERT_TRUE(live_index.ok()) << live_index.status().ToString();
    EXPECT_EQ(p.meta.index_lsn, (*live_index)->lsn());
    EXPECT_EQ(p.meta.index_lsn, meta.lsn);  // saved at close: fully caught up

    // kb.db (produced from the live file), the manifest and the graph it names (staged).
    ASSERT_EQ(p.files.size(), 3u);
    EXPECT_EQ(p.files[0].path, "kb.db");
    EXPECT_EQ(p.files[0].local_path, ProjectDir(p.meta.id) + "/kb.db");
    EXPECT_EQ(p.files[1].path, "index/VECTOR_INDEX");
    EXPECT_THAT(p.files[2].path, ::testing::MatchesRegex("index/graph-[0-9a-f]{16}\\.hnsw"));
    for (const repo::SourceFile& f : p.files) EXPECT_EQ(f.mode, 0600);
    for (size_t i = 1; i < p.files.size(); ++i) {
      EXPECT_FALSE(p.files[i].produce);
      EXPECT_EQ(p.files[i].local_path, staging_ + "/projects/" + p.meta.id + "/" + p.files[i].path);
    }
    for (size_t i = 1; i < p.files.size(); ++i) {  // index files are the live ones, verbatim
      EXPECT_TRUE(ReadAll(p.files[i].local_path) ==
                  ReadAll(ProjectDir(p.meta.id) + "/" + p.files[i].path))
          << p.files[i].path;
    }
    EXPECT_EQ(IntegrityCheck(copy.path), "ok");
  }
  EXPECT_EQ(copied.at(alpha.id).counts["documents"], 3);
  EXPECT_EQ(copied.at(alpha.id).counts["deleted_documents"], 1);
  EXPECT_NE(beta.id, alpha.id);
  EXPECT_GT(prepared->total_bytes(), 0);
}

TEST_F(SourceTest, MetadataMatchesTheRunningServer) {
  ProjectRecord p = MakeProject("live", 5);
  // The server stays open: its WAL holds recent commits that the copy must include.
  auto prepared = Prepare();
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  ASSERT_EQ(prepared->source().projects.size(), 1u);
  const Copy copied = CopyOf(prepared->source().projects[0]);
  const repo::ProjectSnapshot& meta = copied.meta;
  auto stats = kb_->Stats();
  ASSERT_TRUE(stats.ok());
  const ProjectStats& ps = stats->per_project.at(0);
  EXPECT_EQ(meta.lsn, ps.journal_lsn);
  EXPECT_EQ(meta.counts["documents"], ps.counts.documents);
  EXPECT_EQ(meta.counts["chunks"], ps.counts.chunks);
  EXPECT_EQ(meta.counts["deleted_documents"], ps.counts.deleted_documents);
  EXPECT_EQ(meta.catalog_row, ProjectRecordToJson(ps.project));
  EXPECT_LE(meta.index_lsn, meta.lsn);  // the index on disk is the one saved at creation
  EXPECT_TRUE(prepared->notes().empty());
  // The copy, opened like the server opens it, proves the recorded values.
  const std::string& copy = copied.path;
  auto store = ProjectStore::Open(copy, p.id, p.embedding_dimension, &clock_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(*(*store)->VerifyContentChecksum(), meta.content_checksum);
  EXPECT_EQ(*(*store)->LastLsn(), meta.lsn);
  EXPECT_TRUE((*store)->IntegrityCheck().ok());
}

TEST_F(SourceTest, CopyTakenDuringIngestionIsOneCommittedState) {
  OpenKb(/*save_interval_ms=*/5);  // the index saver races with the index copy, too
  ProjectRecord p = MakeProject("busy", 3);
  BackgroundWriter writer([&](int i) -> Status {
    IngestRequest req;
    req.content = Doc(i);
    req.filename = "busy-" + std::to_string(i) + ".md";
    auto r = kb_->Ingest("busy", req, actor_);
    Status s = r.status();
    if (s.ok() && i % 5 == 0) s = kb_->DeleteDocument("busy", r->document.id, actor_);
    return s;
  });
  writer.WaitFor(3);

  std::set<int64_t> lsns;
  int rounds_with_index = 0;
  const int kRounds = 6;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string staging = dir_.Sub("staging-" + std::to_string(round));
    auto prepared = PrepareSnapshotSource(data_dir_, staging);
    ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
    const repo::ProjectSource& ps = prepared->source().projects.at(0);
    const Copy copied = CopyOf(ps);
    auto live_stats = kb_->Stats();  // after the copy: the live store is at least as new
    ASSERT_TRUE(live_stats.ok());
    const repo::ProjectSnapshot& meta = copied.meta;
    lsns.insert(meta.lsn);
    EXPECT_LE(meta.lsn, live_stats->per_project.at(0).journal_lsn);
    EXPECT_LE(meta.index_lsn, meta.lsn);
    const std::string& copy = copied.path;
    EXPECT_EQ(IntegrityCheck(copy), "ok");
    {
      // Rows, checksum and LSN of the copy agree with each other and with what was recorded.
      auto store = ProjectStore::Open(copy, p.id, p.embedding_dimension, &clock_);
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      auto recomputed = (*store)->VerifyContentChecksum();
      ASSERT_TRUE(recomputed.ok()) << recomputed.status().ToString();
      EXPECT_EQ(*recomputed, meta.content_checksum);
      EXPECT_EQ(*(*store)->LastLsn(), meta.lsn);
      StoreCounts c = *(*store)->Counts();
      EXPECT_EQ(meta.counts["documents"], c.documents);
      EXPECT_EQ(meta.counts["chunks"], c.chunks);
      EXPECT_EQ(meta.counts["deleted_documents"], c.deleted_documents);
      EXPECT_TRUE((*store)->IntegrityCheck().ok());
      // The newest journal entry's checksum is the state's checksum: no half transaction.
      auto entries = (*store)->ReadJournal(meta.lsn - 1, 1);
      ASSERT_TRUE(entries.ok());
      ASSERT_EQ(entries->size(), 1u);
      EXPECT_EQ(entries->at(0).checksum, meta.content_checksum);
    }
    if (ps.files.size() > 1) {
      ++rounds_with_index;
      VectorIndexOptions iopts;
      iopts.dimension = p.embedding_dimension;
      auto index = VectorIndex::Load(staging + "/projects/" + p.id + "/index", iopts);
      ASSERT_TRUE(index.ok()) << index.status().ToString();
      EXPECT_EQ((*index)->lsn(), meta.index_lsn);
    }
    // Let a few more commits land before the next round.
    writer.WaitFor(writer.written() + 2);
  }
  writer.Stop();
  EXPECT_FALSE(writer.failed());
  EXPECT_GE(lsns.size(), 2u) << "the copies should see different committed states";
  EXPECT_GE(rounds_with_index, 1);
}

// With writes going on in every project, each project's copy is still one committed state of its
// own project, its recorded metadata is its own, and the source lists the projects in the
// catalog's order.
TEST_F(SourceTest, ProjectsCopiedWhileAllAreWrittenAreEachOneCommittedState) {
  const std::vector<std::string> names = {"p0", "p1", "p2", "p3", "p4"};
  std::vector<ProjectRecord> records;
  for (const std::string& name : names) records.push_back(MakeProject(name, 2));
  BackgroundWriter writer([&](int i) -> Status {
    IngestRequest req;
    req.content = Doc(i);
    req.filename = "multi-" + std::to_string(i) + ".md";
    return kb_->Ingest(names[i % names.size()], req, actor_).status();
  });
  writer.WaitFor(5);
  auto catalog_order = kb_->ListProjects();
  ASSERT_TRUE(catalog_order.ok()) << catalog_order.status().ToString();
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto prepared = PrepareSnapshotSource(data_dir_, dir_.Sub("multi-" + std::to_string(round)));
    ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
    const auto& projects = prepared->source().projects;
    ASSERT_EQ(projects.size(), catalog_order->size());
    for (size_t i = 0; i < projects.size(); ++i) {
      const Copy copied = CopyOf(projects[i]);
      const repo::ProjectSnapshot& meta = copied.meta;
      const ProjectRecord& rec = (*catalog_order)[i];
      EXPECT_EQ(meta.id, rec.id);
      const std::string& copy = copied.path;
      auto store = ProjectStore::Open(copy, rec.id, rec.embedding_dimension, &clock_);
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      auto recomputed = (*store)->VerifyContentChecksum();
      ASSERT_TRUE(recomputed.ok()) << recomputed.status().ToString();
      EXPECT_EQ(*recomputed, meta.content_checksum) << rec.name;
      EXPECT_EQ(*(*store)->LastLsn(), meta.lsn) << rec.name;
      EXPECT_EQ(meta.counts["documents"], (*store)->Counts()->documents) << rec.name;
      EXPECT_LE(meta.index_lsn, meta.lsn);
    }
  }
  writer.Stop();
  EXPECT_FALSE(writer.failed());
}

TEST_F(SourceTest, ProjectsAreSelectedByNameOrIdWithoutTheCatalog) {
  ProjectRecord alpha = MakeProject("alpha", 1);
  ProjectRecord beta = MakeProject("beta", 1);
  MakeProject("gamma", 1);
  struct Case {
    std::vector<std::string> wanted;
    std::vector<std::string> ids;
  };
  const Case cases[] = {
      {{"beta"}, {beta.id}},
      {{beta.id}, {beta.id}},
      {{"beta", alpha.id}, {beta.id, alpha.id}},
      {{"alpha", alpha.id, "alpha"}, {alpha.id}},  // one project, however it is named
  };
  for (const Case& c : cases) {
    SourceOptions o;
    o.projects = c.wanted;
    auto prepared = Prepare(o);
    ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
    EXPECT_EQ(prepared->source().scope, "projects");
    EXPECT_TRUE(prepared->source().catalog_files.empty());
    EXPECT_FALSE(fs::exists(staging_ + "/catalog.db"));
    std::vector<std::string> ids;
    for (const repo::ProjectSource& p : prepared->source().projects) ids.push_back(p.meta.id);
    EXPECT_EQ(ids, c.ids);
  }
}

TEST_F(SourceTest, UnknownProjectIsNotFoundAndLeavesNoStaging) {
  MakeProject("alpha", 1);
  SourceOptions o;
  o.projects = {"alpha", "nope"};
  auto prepared = Prepare(o);
  ASSERT_FALSE(prepared.ok());
  EXPECT_EQ(prepared.status().code(), Code::kNotFound);
  EXPECT_THAT(prepared.status().message(), HasSubstr("'nope'"));
  EXPECT_FALSE(fs::exists(staging_));
}

TEST_F(SourceTest, DeletedProjectsAreInFullSnapshotsAndOnlyByRequestOtherwise) {
  ProjectRecord gone = MakeProject("gone", 2);
  MakeProject("kept", 1);
  ASSERT_TRUE(kb_->DeleteProject("gone", actor_).ok());

  auto full = Prepare();
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  ASSERT_EQ(full->source().projects.size(), 2u);
  const repo::ProjectSnapshot& g = full->source().projects[0].meta;
  EXPECT_EQ(g.id, gone.id);
  EXPECT_TRUE(g.deleted);
  EXPECT_TRUE(g.catalog_row["deleted_at_ms"].is_number());
  EXPECT_EQ(CopyOf(full->source().projects[0]).meta.counts["documents"], 2);
  full = Status::Internal("released");  // removes the staging directory

  SourceOptions live_only;
  live_only.include_deleted = false;
  auto lv = Prepare(live_only);
  ASSERT_TRUE(lv.ok()) << lv.status().ToString();
  ASSERT_EQ(lv->source().projects.size(), 1u);
  EXPECT_EQ(lv->source().projects[0].meta.name, "kept");
  lv = Status::Internal("released");

  SourceOptions named;
  named.projects = {"gone"};
  auto refused = Prepare(named);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kNotFound);
  EXPECT_THAT(refused.status().message(), HasSubstr("deleted"));

  named.include_deleted = true;
  for (const std::string& wanted : {std::string("gone"), gone.id}) {
    named.projects = {wanted};
    auto ok = Prepare(named);
    ASSERT_TRUE(ok.ok()) << ok.status().ToString();
    ASSERT_EQ(ok->source().projects.size(), 1u);
    EXPECT_TRUE(ok->source().projects[0].meta.deleted);
  }
}

TEST_F(SourceTest, DirectoriesThatAreNotDataDirectoriesAreRefused) {
  CloseKb();
  auto missing = PrepareSnapshotSource(dir_.Sub("absent"), staging_);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);

  fs::create_directories(dir_.Sub("empty"));
  auto empty = PrepareSnapshotSource(dir_.Sub("empty"), staging_);
  EXPECT_EQ(empty.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(empty.status().message(), HasSubstr("not a KnowledgeBeast data directory"));

  // A SQLite file that is not a catalog.
  fs::create_directories(dir_.Sub("foreign"));
  {
    auto db = sql::Database::Open(dir_.Sub("foreign/catalog.db"));
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA application_id=42; CREATE TABLE t(x)").ok());
  }
  auto foreign = PrepareSnapshotSource(dir_.Sub("foreign"), staging_);
  EXPECT_EQ(foreign.status().code(), Code::kFailedPrecondition) << foreign.status().ToString();
  EXPECT_FALSE(fs::exists(staging_));

  // Not SQLite at all.
  fs::create_directories(dir_.Sub("garbage"));
  testing::WriteTestFile(dir_.Sub("garbage/catalog.db"), std::string(8192, 'x'));
  auto garbage = PrepareSnapshotSource(dir_.Sub("garbage"), staging_);
  EXPECT_EQ(garbage.status().code(), Code::kCorruption) << garbage.status().ToString();
  EXPECT_FALSE(fs::exists(staging_));
}

TEST_F(SourceTest, StagingDirectoryMustBeEmptyAndOutsideTheProjects) {
  MakeProject("alpha", 1);
  testing::WriteTestFile(staging_ + "/mine.txt", "keep me");
  auto busy = Prepare();
  EXPECT_EQ(busy.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(ReadAll(staging_ + "/mine.txt"), "keep me");

  auto inside = PrepareSnapshotSource(data_dir_, data_dir_ + "/projects/.staging");
  EXPECT_EQ(inside.status().code(), Code::kFailedPrecondition);

  // An existing empty directory is fine (and is removed afterwards).
  const std::string empty = dir_.Sub("empty-staging");
  fs::create_directories(empty);
  {
    auto ok = PrepareSnapshotSource(data_dir_, empty);
    ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  }
  EXPECT_FALSE(fs::exists(empty));
}

TEST_F(SourceTest, PreparedSourceOwnsTheStagingDirectory) {
  MakeProject("alpha", 1);
  auto prepared = Prepare();
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_TRUE(fs::exists(staging_ + "/catalog.db"));
  {
    PreparedSource moved = std::move(prepared).value();
    EXPECT_EQ(moved.staging_dir(), staging_);
    EXPECT_TRUE(fs::exists(moved.source().catalog_files.at(0).local_path));
    PreparedSource again = std::move(moved);
    EXPECT_TRUE(fs::exists(staging_));  // the moved-from objects did not remove it
  }
  EXPECT_FALSE(fs::exists(staging_));
  // No WAL or shared-memory files were left anywhere in a prepared staging directory.
  auto p2 = Prepare();
  ASSERT_TRUE(p2.ok());
  for (const auto& e : fs::recursive_directory_iterator(staging_)) {
    std::string name = e.path().filename().string();
    EXPECT_FALSE(name.ends_with("-wal") || name.ends_with("-shm") || name.ends_with("-journal"))
        << e.path();
  }
}

// ---------------------------------------------------------------------------------------------
// The vector index pair

TEST_F(SourceTest, MissingIndexIsLeftOutSilently) {
  ProjectRecord p = MakeProject("alpha", 2);
  CloseKb();
  fs::remove_all(ProjectDir(p.id) + "/index");
  auto prepared = Prepare();
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(Paths(prepared->source().projects.at(0).files), std::vector<std::string>{"kb.db"});
  EXPECT_EQ(prepared->source().projects.at(0).meta.index_lsn, 0);
  EXPECT_TRUE(prepared->notes().empty());
  EXPECT_FALSE(fs::exists(staging_ + "/projects/" + p.id + "/index"));
}

class SourceIndexTest : public SourceTest, public ::testing::WithParamInterface<bool> {};

TEST_P(SourceIndexTest, GraphReplacedAfterTheManifestWasReadIsRetried) {
  ProjectRecord p = MakeProject("alpha", 3);
  CloseKb();
  const std::string index_dir = ProjectDir(p.id) + "/index";
  VectorIndexOptions iopts;
  iopts.dimension = p.embedding_dimension;
  auto first = VectorIndex::Load(index_dir, iopts);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const int64_t first_lsn = (*first)->lsn();

  int calls = 0;
  SourceOptions o;
  o.link_index_files = GetParam();
  o.after_index_manifest_read = [&](const std::string& project_id) {
    EXPECT_EQ(project_id, p.id);
    if (++calls == 1) {
      // A save lands between reading the manifest and copying the graph: the graph the
      // manifest named is deleted.
      ASSERT_TRUE((*first)->Save(index_dir, first_lsn - 1).ok());
    }
  };
  auto prepared = Prepare(o);
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(calls, 2);
  const repo::ProjectSource& ps = prepared->source().projects.at(0);
  EXPECT_EQ(ps.meta.index_lsn, first_lsn - 1);  // the pair from the second read
  ASSERT_EQ(ps.files.size(), 3u);
  // The staged pair loads (manifest checksum, graph size and SHA-256 all verified).
  auto staged = VectorIndex::Load(staging_ + "/projects/" + p.id + "/index", iopts);
  ASSERT_TRUE(staged.ok()) << staged.status().ToString();
  EXPECT_EQ((*staged)->lsn(), first_lsn - 1);
  EXPECT_EQ((*staged)->Size(), (*first)->Size());
  // Exactly the manifest and the graph it names: no file of the first attempt is left.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(staging_ + "/projects/" + p.id + "/index")) {
    names.insert(e.path().filename().string());
  }
  EXPECT_EQ(names, (std::set<std::string>{"VECTOR_INDEX", ps.files[2].path.substr(6)}));
  EXPECT_TRUE(prepared->notes().empty());
}

INSTANTIATE_TEST_SUITE_P(LinkOrCopy, SourceIndexTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Link" : "Copy"; });

TEST_F(SourceTest, IndexThatNeverSettlesIsLeftOutWithANote) {
  ProjectRecord p = MakeProject("alpha", 2);
  CloseKb();
  const std::string index_dir = ProjectDir(p.id) + "/index";
  VectorIndexOptions iopts;
  iopts.dimension = p.embedding_dimension;
  auto index = VectorIndex::Load(index_dir, iopts);
  ASSERT_TRUE(index.ok());
  SourceOptions o;
  o.after_index_manifest_read = [&](const std::string&) {
    ASSERT_TRUE((*index)->Save(index_dir, (*index)->lsn()).ok());
  };
  auto prepared = Prepare(o);
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  const repo::ProjectSource& ps = prepared->source().projects.at(0);
  EXPECT_EQ(Paths(ps.files), std::vector<std::string>{"kb.db"});
  EXPECT_EQ(ps.meta.index_lsn, 0);
  ASSERT_EQ(prepared->notes().size(), 1u);
  EXPECT_THAT(prepared->notes()[0], HasSubstr("kept changing"));
  EXPECT_FALSE(fs::exists(staging_ + "/projects/" + p.id + "/index"));
}

TEST_F(SourceTest, DamagedIndexIsLeftOutWithANoteAndTheDatabaseStillStaged) {
  ProjectRecord p = MakeProject("alpha", 2);
  CloseKb();
  const std::string index_dir = ProjectDir(p.id) + "/index";
  std::string graph;
  for (const auto& e : fs::directory_iterator(index_dir)) {
    if (e.path().extension() == ".hnsw") graph = e.path().string();
  }
  ASSERT_FALSE(graph.empty());
  {
    std::fstream f(graph, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
  }
  auto prepared = Prepare();
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(Paths(prepared->source().projects.at(0).files), std::vector<std::string>{"kb.db"});
  ASSERT_EQ(prepared->notes().size(), 1u);
  EXPECT_THAT(prepared->notes()[0], HasSubstr("does not match its manifest"));

  // A damaged manifest: the same.
  prepared = Status::Internal("released");
  std::string manifest = ReadAll(index_dir + "/VECTOR_INDEX");
  manifest[20] ^= 1;
  testing::WriteTestFile(index_dir + "/VECTOR_INDEX", manifest);
  prepared = Prepare();
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(prepared->source().projects.at(0).files.size(), 1u);
  EXPECT_THAT(prepared->notes().at(0), HasSubstr("checksum mismatch"));
}

// ---------------------------------------------------------------------------------------------
// Vector index reuse (SourceOptions::previous_indexes)

class IndexReuseTest : public SourceTest {
 protected:
  // A project of `docs` documents whose index the server saved at its newest LSN.
  void SetUpProject(int docs) {
    project_ = MakeProject("alpha", docs);
    CloseKb();
    OpenKb();
  }
  std::string JournalChecksum(int64_t lsn) {
    auto store = ProjectStore::Open(ProjectDir(project_.id) + "/kb.db", project_.id,
                                    project_.embedding_dimension, &clock_);
    EXPECT_TRUE(store.ok());
    if (!store.ok()) return "";
    auto entries = (*store)->ReadJournal(lsn - 1, 1);
    EXPECT_TRUE(entries.ok() && entries->size() == 1u);
    return entries.ok() && !entries->empty() ? entries->at(0).checksum : "";
  }
  // What an earlier snapshot would hold for the current live index (trees are not looked at
  // here: the backup checks them, SnapshotTest.StoredFiles*).
  PreviousIndex PreviousFromLive() {
    VectorIndexOptions iopts;
    iopts.dimension = project_.embedding_dimension;
    auto index = VectorIndex::Load(ProjectDir(project_.id) + "/index", iopts);
    EXPECT_TRUE(index.ok()) << index.status().ToString();
    PreviousIndex prev;
    prev.snapshot_id = "20261126T100000Z-00000000";
    prev.index_lsn = index.ok() ? (*index)->lsn() : 0;
    prev.index_checksum = JournalChecksum(prev.index_lsn);
    prev.embedder = nlohmann::json{{"fingerprint", project_.embedder_fingerprint},
                                   {"dimension", project_.embedding_dimension}};
    for (const auto& e : fs::directory_iterator(ProjectDir(project_.id) + "/index")) {
      repo::SnapshotFile f;
      f.path = "index/" + e.path().filename().string();
      f.size = static_cast<int64_t>(fs::file_size(e.path()));
      f.trees = {std::string(32, 'a')};
      prev.files.push_back(f);
    }
    std::sort(
        prev.files.begin(), prev.files.end(),
        [](const repo::SnapshotFile& a, const repo::SnapshotFile& b) { return a.path < b.path; });
    return prev;
  }
  // Whether a preparation with `prev` names it; checks the rest of what it says either way.
  bool Reused(const PreviousIndex& prev, double max_lag) {
    SourceOptions o;
    o.previous_indexes[project_.id] = prev;
    o.index_max_lag = max_lag;
    auto prepared = PrepareSnapshotSource(data_dir_, dir_.Sub("s" + std::to_string(++round_)), o);
    EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
    if (!prepared.ok()) return false;
    const repo::ProjectSource& ps = prepared->source().projects.at(0);
    bool reused = ps.files.size() > 1 && ps.files[1].stored.has_value();
    if (reused) {
      EXPECT_EQ(ps.meta.index_lsn, prev.index_lsn);
      EXPECT_EQ(ps.meta.index_checksum, prev.index_checksum);
      EXPECT_EQ(ps.files.size(), 1 + prev.files.size());
      for (size_t i = 1; i < ps.files.size(); ++i)
        EXPECT_EQ(*ps.files[i].stored, prev.files[i - 1]);
      EXPECT_FALSE(fs::exists(prepared->staging_dir() + "/projects/" + project_.id + "/index"));
      // The producer confirms the choice in its own transaction and completes the metadata.
      Copy c = CopyOf(ps);
      EXPECT_EQ(c.meta.index_checksum, prev.index_checksum);
      EXPECT_GE(c.meta.lsn, prev.index_lsn);
    } else {
      for (const repo::SourceFile& f : ps.files) EXPECT_FALSE(f.stored.has_value());
      EXPECT_EQ(ps.meta.index_checksum, "");  // read by the producer
      Copy c = CopyOf(ps);
      EXPECT_EQ(c.meta.index_checksum, JournalChecksum(ps.meta.index_lsn));
    }
    return reused;
  }

  ProjectRecord project_;
  int round_ = 0;
};

TEST_F(IndexReuseTest, AnIndexIsReusedWhileTheJournalGrewWithinTheAllowance) {
  SetUpProject(20);
  const PreviousIndex prev = PreviousFromLive();
  ASSERT_GT(prev.index_lsn, 0);
  EXPECT_TRUE(Reused(prev, 0.05));
  EXPECT_TRUE(Reused(prev, 0.0));  // the live index is that index: no lag at all
  Put("alpha", 100);               // lag 1 of an allowed 0.05 x 21 = 1
  CloseKb();                       // the server saves a new index: no longer the same one
  OpenKb();
  EXPECT_TRUE(Reused(prev, 0.05));
  EXPECT_FALSE(Reused(prev, 0.0));
  Put("alpha", 101);  // lag 2 > 0.05 x 22 = 1
  EXPECT_FALSE(Reused(prev, 0.05));
  EXPECT_TRUE(Reused(prev, 0.10));
}

TEST_F(IndexReuseTest, AnIndexOfAnotherHistoryOrEmbedderIsNotReused) {
  SetUpProject(10);
  PreviousIndex prev = PreviousFromLive();
  ASSERT_TRUE(Reused(prev, 1.0));
  PreviousIndex other_history = prev;
  other_history.index_checksum = std::string(64, '0');
  EXPECT_FALSE(Reused(other_history, 1.0));
  PreviousIndex ahead = prev;
  ahead.index_lsn += 5;  // no such journal entry yet
  EXPECT_FALSE(Reused(ahead, 1.0));
  PreviousIndex other_embedder = prev;
  other_embedder.embedder["fingerprint"] = "something-else";
  EXPECT_FALSE(Reused(other_embedder, 1.0));
  PreviousIndex no_files = prev;
  no_files.files.clear();
  EXPECT_FALSE(Reused(no_files, 1.0));
}

TEST_F(IndexReuseTest, AnIndexFromBeforeAPurgeIsNotReused) {
  SetUpProject(10);
  const PreviousIndex prev = PreviousFromLive();
  ASSERT_TRUE(Reused(prev, 1.0));
  auto listed = kb_->ListDocuments("alpha", 10, 0);
  ASSERT_TRUE(listed.ok());
  ASSERT_TRUE(kb_->DeleteDocument("alpha", listed->documents[0].id, actor_).ok());
  EXPECT_TRUE(Reused(prev, 1.0));  // soft-deleted: still in the database, and the lag is 1
  clock_.Advance(31LL * 24 * 3600 * 1000);
  auto purged = kb_->Purge(/*dry_run=*/false, actor_);
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  ASSERT_EQ(purged->documents.size(), 1u);
  // The earlier index still holds the purged document's vectors: never carried forward.
  EXPECT_FALSE(Reused(prev, 1.0));
}

TEST_F(IndexReuseTest, TheProducerRefusesAnIndexTheDatabaseNoLongerPassesThrough) {
  SetUpProject(5);
  auto prepared = Prepare();
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  const repo::ProjectSource& ps = prepared->source().projects.at(0);
  ASSERT_GT(ps.meta.index_lsn, 0);
  const std::string out = dir_.Sub("refused.db");
  {
    repo::ProjectSnapshot meta = ps.meta;
    meta.index_checksum = std::string(64, 'f');  // chosen for a state this journal never had
    auto size = ProduceToFile(ps.files.at(0), out, &meta);
    ASSERT_FALSE(size.ok());
    EXPECT_EQ(size.status().code(), Code::kUnavailable);
    EXPECT_THAT(size.status().message(), HasSubstr("run the backup again"));
    EXPECT_FALSE(fs::exists(out));
  }
  {
    repo::ProjectSnapshot meta = ps.meta;
    meta.index_lsn = 1000;  // ahead of the database
    auto size = ProduceToFile(ps.files.at(0), out, &meta);
    ASSERT_FALSE(size.ok());
    EXPECT_EQ(size.status().code(), Code::kUnavailable);
    EXPECT_THAT(size.status().message(), HasSubstr("ahead of its database"));
  }
}

// ---------------------------------------------------------------------------------------------
// Page layout and the server's open path

TEST_F(SourceTest, CopyOfAnIdleDatabaseKeepsThePageLayout) {
  ProjectRecord p = MakeProject("alpha", 6);
  CloseKb();  // checkpointed: the main file holds every page
  const std::string live = ProjectDir(p.id) + "/kb.db";
  ASSERT_FALSE(fs::exists(live + "-wal"));
  auto prepared = Prepare();
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  const std::string copy = CopyOf(prepared->source().projects.at(0)).path;

  EXPECT_EQ(QueryIntOn(copy, "PRAGMA page_size"), kPageSize);
  EXPECT_EQ(QueryIntOn(live, "PRAGMA page_size"), kPageSize);
  std::string a = ReadAll(live), b = ReadAll(copy);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size() % kPageSize, 0u);
  ASSERT_GT(a.size() / kPageSize, 10u);
  // Every page but the first is byte-identical.
  for (size_t page = 1; page < a.size() / kPageSize; ++page) {
    EXPECT_EQ(a.compare(page * kPageSize, kPageSize, b, page * kPageSize, kPageSize), 0)
        << "page " << page + 1;
  }
  // Page 1 differs only in header fields the backup API rewrites for the new file: the file
  // change counter (24..27), the schema cookie (40..43) and version-valid-for / SQLite version
  // number (92..99). Bytes 18/19 (WAL read/write versions) are the source's: the copy is a WAL
  // database like the live one.
  std::set<size_t> differing;
  for (size_t i = 0; i < kPageSize; ++i) {
    if (a[i] != b[i]) differing.insert(i);
  }
  for (size_t i : differing) {
    EXPECT_TRUE((i >= 24 && i < 28) || (i >= 40 && i < 44) || (i >= 92 && i < 100))
        << "header byte " << i;
  }
  EXPECT_EQ(b[18], 2);
  EXPECT_EQ(b[19], 2);

  // The streamed copy is exactly what SQLite's backup API writes into a new file.
  const std::string plain = dir_.Sub("plain.db");
  ASSERT_TRUE(CopySqliteDatabase(live, plain).ok());
  EXPECT_TRUE(ReadAll(plain) == b);
}

TEST_F(SourceTest, StagedFilesOpenAsADataDirectoryWithTheServersOpenPath) {
  ProjectRecord alpha = MakeProject("alpha", 3);
  MakeProject("beta", 2);
  auto before = kb_->Stats();
  ASSERT_TRUE(before.ok());
  auto prepared = Prepare();  // the server is running
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  CloseKb();

  // Lay the staged files out as a restore would: catalog paths under the data directory, project
  // paths under projects/<id>/.
  const std::string restored = dir_.Sub("restored");
  for (const repo::SourceFile& f : prepared->source().catalog_files) {
    fs::create_directories(fs::path(restored + "/" + f.path).parent_path());
    fs::copy_file(f.local_path, restored + "/" + f.path);
  }
  for (const repo::ProjectSource& p : prepared->source().projects) {
    for (const repo::SourceFile& f : p.files) {
      std::string to = restored + "/projects/" + p.meta.id + "/" + f.path;
      fs::create_directories(fs::path(to).parent_path());
      if (f.produce) {
        repo::ProjectSnapshot meta = p.meta;
        auto size = ProduceToFile(f, to, &meta);
        ASSERT_TRUE(size.ok()) << size.status().ToString();
      } else {
        fs::copy_file(f.local_path, to);
      }
    }
  }
  KbOptions o;
  o.data_dir = restored;
  o.clock = &clock_;
  o.index_save_interval_ms = 0;
  auto kb = KnowledgeBase::Open(o);
  ASSERT_TRUE(kb.ok()) << kb.status().ToString();
  EXPECT_TRUE((*kb)->Ready());
  auto after = (*kb)->Stats();
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->per_project.size(), before->per_project.size());
  for (size_t i = 0; i < after->per_project.size(); ++i) {
    EXPECT_EQ(after->per_project[i].project.id, before->per_project[i].project.id);
    EXPECT_EQ(after->per_project[i].journal_lsn, before->per_project[i].journal_lsn);
    EXPECT_EQ(after->per_project[i].counts.chunks, before->per_project[i].counts.chunks);
  }
  QueryRequest q;
  q.text = "sourdough retention";
  auto hits = (*kb)->Query("alpha", q);
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  EXPECT_FALSE(hits->hits.empty());
  (*kb)->Close();
  EXPECT_EQ(QueryIntOn(restored + "/projects/" + alpha.id + "/kb.db",
                       "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"),
            1);
}

TEST_F(SourceTest, CopySqliteDatabaseRefusesAnExistingDestinationAndAMissingSource) {
  CloseKb();
  const std::string dest = dir_.Sub("dest.db");
  testing::WriteTestFile(dest, "already here");
  Status exists = CopySqliteDatabase(data_dir_ + "/catalog.db", dest);
  EXPECT_EQ(exists.code(), Code::kFailedPrecondition);
  EXPECT_EQ(ReadAll(dest), "already here");
  Status missing = CopySqliteDatabase(dir_.Sub("nope.db"), dir_.Sub("out.db"));
  EXPECT_EQ(missing.code(), Code::kNotFound);
  EXPECT_FALSE(fs::exists(dir_.Sub("out.db")));
}

}  // namespace
}  // namespace kb::backup
