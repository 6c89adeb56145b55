// Service-level tests: a real KnowledgeBase on real SQLite files in a temp directory.
#include "service/knowledge_base.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/file_util.h"
#include "index/vector_index.h"
#include "test_util.h"

namespace kb {
namespace {

constexpr int64_t kStart = 1'795'688'400'000;  // 2026-11-26T10:20:00Z

class KnowledgeBaseTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(int64_t index_save_interval_ms = 0) {
    kb_.reset();
    KbOptions o;
    o.data_dir = dir_.Sub("data");
    o.clock = &clock_;
    o.index_save_interval_ms = index_save_interval_ms;
    o.ingest_root = dir_.Sub("inbox");
    auto r = KnowledgeBase::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    kb_ = std::move(r).value();
  }

  ProjectRecord MakeProject(const std::string& name, EmbedderSpec spec = {}) {
    CreateProjectRequest req;
    req.name = name;
    req.embedder = spec;
    auto r = kb_->CreateProject(req, actor_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : ProjectRecord{};
  }

  IngestResult Put(const std::string& project, const std::string& source,
                   const std::string& content, const std::string& metadata = "{}") {
    IngestRequest req;
    req.content = content;
    req.filename = source;
    req.metadata_json = metadata;
    auto r = kb_->Ingest(project, req, actor_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : IngestResult{};
  }

  QueryResponse Ask(const std::string& project, const std::string& text,
                    SearchMode mode = SearchMode::kHybrid) {
    QueryRequest q;
    q.text = text;
    q.mode = mode;
    auto r = kb_->Query(project, q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : QueryResponse{};
  }

  testing::TempDir dir_;
  ManualClock clock_{kStart};
  Actor actor_{"tester", "tester"};
  std::unique_ptr<KnowledgeBase> kb_;
};

const char* kGuide =
    "# Backup guide\n\nBackups run every hour and are encrypted with AES-256.\n\n"
    "## Restore\n\nTo restore a project, pick a snapshot and run the restore command.\n";
const char* kRecipes =
    "# Kitchen\n\nThe sourdough starter needs flour and water every day.\n";

TEST_F(KnowledgeBaseTest, IngestedDocumentIsFoundByEveryMode) {
  MakeProject("docs");
  IngestResult r = Put("docs", "guide.md", kGuide);
  EXPECT_EQ(r.outcome, PutOutcome::kCreated);
  EXPECT_EQ(r.document.title, "Backup guide");
  EXPECT_EQ(r.document.content_type, "text/markdown");
  Put("docs", "recipes.md", kRecipes);
  for (SearchMode mode : {SearchMode::kHybrid, SearchMode::kVector, SearchMode::kKeyword}) {
    QueryResponse resp = Ask("docs", "sourdough flour", mode);
    ASSERT_FALSE(resp.hits.empty()) << SearchModeName(mode);
    EXPECT_EQ(resp.hits[0].source, "recipes.md") << SearchModeName(mode);
    EXPECT_EQ(resp.hits[0].rank, 1);
  }
  QueryResponse restore = Ask("docs", "restore a snapshot", SearchMode::kHybrid);
  ASSERT_FALSE(restore.hits.empty());
  EXPECT_EQ(restore.hits[0].heading_path, "Backup guide > Restore");
  EXPECT_TRUE(restore.hits[0].vector_score.has_value());
  EXPECT_TRUE(restore.hits[0].keyword_score.has_value());
}

TEST_F(KnowledgeBaseTest, ReingestingSameSourceReplacesAndSameContentIsUnchanged) {
  MakeProject("docs");
  IngestResult first = Put("docs", "a.txt", "alpha bravo charlie");
  IngestResult same = Put("docs", "a.txt", "alpha bravo charlie");
  EXPECT_EQ(same.outcome, PutOutcome::kUnchanged);
  EXPECT_EQ(same.document.id, first.document.id);
  IngestResult changed = Put("docs", "a.txt", "delta echo foxtrot");
  EXPECT_EQ(changed.outcome, PutOutcome::kReplaced);
  EXPECT_EQ(changed.document.id, first.document.id);
  EXPECT_TRUE(Ask("docs", "bravo", SearchMode::kKeyword).hits.empty());
  auto hits = Ask("docs", "foxtrot", SearchMode::kKeyword).hits;
  ASSERT_EQ(hits.size(), 1u);
  // The replaced version's vectors are gone from the index too.
  auto vhits = Ask("docs", "alpha bravo charlie", SearchMode::kVector).hits;
  ASSERT_EQ(vhits.size(), 1u);
  EXPECT_EQ(vhits[0].text, "delta echo foxtrot");
  auto page = kb_->ListDocuments("docs", 10, 0).value();
  EXPECT_EQ(page.total, 1);
}

TEST_F(KnowledgeBaseTest, DeletedDocumentDisappearsFromSearchAndListings) {
  MakeProject("docs");
  IngestResult r = Put("docs", "recipes.md", kRecipes);
  ASSERT_TRUE(kb_->DeleteDocument("docs", r.document.id, actor_).ok());
  EXPECT_TRUE(Ask("docs", "sourdough").hits.empty());
  EXPECT_EQ(kb_->ListDocuments("docs", 10, 0).value().total, 0);
  EXPECT_EQ(kb_->GetDocument("docs", r.document.id).status().code(), Code::kNotFound);
  EXPECT_EQ(kb_->DeleteDocument("docs", r.document.id, actor_).code(), Code::kNotFound);
}

TEST_F(KnowledgeBaseTest, QueryCacheIsInvalidatedByEveryWrite) {
  MakeProject("docs");
  Put("docs", "a.txt", "zebra crossing near the station");
  QueryResponse first = Ask("docs", "zebra");
  EXPECT_FALSE(first.cached);
  QueryResponse second = Ask("docs", "zebra");
  EXPECT_TRUE(second.cached);
  ASSERT_EQ(second.hits.size(), first.hits.size());
  Put("docs", "b.txt", "a zebra at the zoo");
  QueryResponse third = Ask("docs", "zebra");
  EXPECT_FALSE(third.cached);
  EXPECT_EQ(third.hits.size(), 2u);
}

TEST_F(KnowledgeBaseTest, RestartLoadsTheSavedIndexAndAnswersTheSame) {
  MakeProject("docs");
  Put("docs", "guide.md", kGuide);
  Put("docs", "recipes.md", kRecipes);
  QueryResponse before = Ask("docs", "encrypted backups every hour");
  Reopen();
  EXPECT_EQ(kb_->counters().index_rebuilds.load(), 0);
  QueryResponse after = Ask("docs", "encrypted backups every hour");
  ASSERT_EQ(before.hits.size(), after.hits.size());
  for (size_t i = 0; i < before.hits.size(); ++i) {
    EXPECT_EQ(before.hits[i].chunk_id, after.hits[i].chunk_id);
    EXPECT_DOUBLE_EQ(before.hits[i].score, after.hits[i].score);
  }
}

TEST_F(KnowledgeBaseTest, DamagedIndexIsRebuiltFromTheDatabase) {
  ProjectRecord p = MakeProject("docs");
  Put("docs", "guide.md", kGuide);
  QueryResponse before = Ask("docs", "restore command");
  kb_.reset();
  // Damage every file of the saved index.
  std::string idx = dir_.Sub("data/projects/" + p.id + "/index");
  ASSERT_TRUE(std::filesystem::exists(idx));
  for (auto& e : std::filesystem::directory_iterator(idx)) {
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f << "garbage!";
  }
  Reopen();
  EXPECT_EQ(kb_->counters().index_rebuilds.load(), 1);
  QueryResponse after = Ask("docs", "restore command");
  ASSERT_EQ(before.hits.size(), after.hits.size());
  EXPECT_EQ(before.hits[0].chunk_id, after.hits[0].chunk_id);
}

TEST_F(KnowledgeBaseTest, MissingIndexIsRebuiltAndStaleIndexCatchesUpFromJournal) {
  ProjectRecord p = MakeProject("docs");
  Put("docs", "a.txt", "first document about kayaks");
  kb_.reset();
  std::string idx = dir_.Sub("data/projects/" + p.id + "/index");
  std::string saved = dir_.Sub("saved-index");
  std::filesystem::copy(idx, saved, std::filesystem::copy_options::recursive);
  Reopen();
  Put("docs", "b.txt", "second document about canoes");
  kb_.reset();
  // Put back the older index: it is behind the journal by one entry.
  std::filesystem::remove_all(idx);
  std::filesystem::copy(saved, idx, std::filesystem::copy_options::recursive);
  Reopen();
  EXPECT_EQ(kb_->counters().index_rebuilds.load(), 0);
  auto hits = Ask("docs", "canoes", SearchMode::kVector).hits;
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].source, "b.txt");
  kb_.reset();
  std::filesystem::remove_all(idx);
  Reopen();
  EXPECT_EQ(kb_->counters().index_rebuilds.load(), 1);
  EXPECT_EQ(Ask("docs", "kayaks", SearchMode::kVector).hits[0].source, "a.txt");
}

// A replayed index answers at once but is written by the saver (or at close), not before the
// server is ready; a rebuilt one, or one without a saver, is written at open.
TEST_F(KnowledgeBaseTest, AReplayedIndexIsSavedByTheSaverNotBeforeReady) {
  ProjectRecord p = MakeProject("docs");
  Put("docs", "a.txt", "first document about kayaks");
  kb_.reset();
  const std::string idx = dir_.Sub("data/projects/" + p.id + "/index");
  const std::string saved = dir_.Sub("saved-index");
  std::filesystem::copy(idx, saved, std::filesystem::copy_options::recursive);
  Reopen();
  Put("docs", "b.txt", "second document about canoes");
  kb_.reset();
  auto put_back_old_index = [&] {
    std::filesystem::remove_all(idx);
    std::filesystem::copy(saved, idx, std::filesystem::copy_options::recursive);
  };
  auto lsn_on_disk = [&]() -> int64_t {
    VectorIndexOptions iopts;
    iopts.dimension = p.embedding_dimension;
    auto index = VectorIndex::Load(idx, iopts);
    EXPECT_TRUE(index.ok()) << index.status().ToString();
    return index.ok() ? (*index)->lsn() : -1;
  };
  put_back_old_index();
  const int64_t behind = lsn_on_disk();

  Reopen(/*index_save_interval_ms=*/3'600'000);
  auto hits = Ask("docs", "canoes", SearchMode::kVector).hits;
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].source, "b.txt");  // caught up in memory
  EXPECT_EQ(lsn_on_disk(), behind);     // not written while opening
  kb_.reset();                          // Close saves it
  EXPECT_EQ(lsn_on_disk(), behind + 1);

  put_back_old_index();
  Reopen(/*index_save_interval_ms=*/20);
  for (int i = 0; i < 500 && lsn_on_disk() != behind + 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(lsn_on_disk(), behind + 1) << "the saver writes the replayed index";

  kb_.reset();
  put_back_old_index();
  Reopen();  // no saver: written at open
  EXPECT_EQ(lsn_on_disk(), behind + 1);
}

TEST_F(KnowledgeBaseTest, ProjectNamesAreUniqueAndValidated) {
  MakeProject("docs");
  CreateProjectRequest req;
  req.name = "docs";
  EXPECT_EQ(kb_->CreateProject(req, actor_).status().code(), Code::kAlreadyExists);
  for (std::string bad : std::vector<std::string>{"", "a/b", "x\ny", std::string(101, 'a'), "../etc"}) {
    req.name = bad;
    EXPECT_EQ(kb_->CreateProject(req, actor_).status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(kb_->ListProjects().value().size(), 1u);
}

TEST_F(KnowledgeBaseTest, DescriptionsAllowLineBreaksButNotOtherControlCharacters) {
  CreateProjectRequest req;
  req.name = "described";
  req.description = "Line one.\nLine two.\tTabbed.";
  ASSERT_TRUE(kb_->CreateProject(req, actor_).ok());
  UpdateProjectRequest u;
  u.description = std::string("bell\x07");
  EXPECT_EQ(kb_->UpdateProject("described", u, actor_).status().code(), Code::kInvalidArgument);
  u.description = std::string(10001, 'a');
  EXPECT_EQ(kb_->UpdateProject("described", u, actor_).status().code(), Code::kInvalidArgument);
  u.description = "\xff";
  EXPECT_EQ(kb_->UpdateProject("described", u, actor_).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(kb_->GetProject("described").value().description, "Line one.\nLine two.\tTabbed.");
}

TEST_F(KnowledgeBaseTest, ChunkingOptionsAreValidatedAndRecorded) {
  CreateProjectRequest req;
  req.name = "sized";
  req.chunk_size = 0;
  EXPECT_EQ(kb_->CreateProject(req, actor_).status().code(), Code::kInvalidArgument);
  req.chunk_size = 500;
  req.chunk_overlap = -1;
  EXPECT_EQ(kb_->CreateProject(req, actor_).status().code(), Code::kInvalidArgument);
  req.chunk_overlap = 500;
  EXPECT_EQ(kb_->CreateProject(req, actor_).status().code(), Code::kInvalidArgument);
  req.chunk_overlap = 50;
  auto p = kb_->CreateProject(req, actor_);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->chunk_size, 500);
  EXPECT_EQ(p->chunk_overlap, 50);
  std::string para = "A sentence about tide pools and the creatures in them. ";
  std::string text;
  for (int i = 0; i < 40; ++i) text += para;
  IngestResult r = Put("sized", "long.txt", text);
  EXPECT_GE(r.document.chunk_count, 4);  // ~2,240 bytes in chunks of ~500
}

TEST_F(KnowledgeBaseTest, ProjectIsFoundByIdOrNameAndRenamed) {
  ProjectRecord p = MakeProject("docs");
  EXPECT_EQ(kb_->GetProject(p.id).value().name, "docs");
  UpdateProjectRequest u;
  u.name = "handbook";
  u.metadata_json = R"({"team":"ops"})";
  ASSERT_TRUE(kb_->UpdateProject("docs", u, actor_).ok());
  EXPECT_EQ(kb_->GetProject("handbook").value().id, p.id);
  EXPECT_EQ(kb_->GetProject("docs").status().code(), Code::kNotFound);
  Reopen();
  EXPECT_EQ(kb_->GetProject("handbook").value().metadata_json, R"({"team":"ops"})");
}

TEST_F(KnowledgeBaseTest, DeletedProjectIsGoneAndItsNameReusable) {
  MakeProject("docs");
  ASSERT_TRUE(kb_->DeleteProject("docs", actor_).ok());
  EXPECT_EQ(kb_->GetProject("docs").status().code(), Code::kNotFound);
  EXPECT_TRUE(kb_->ListProjects().value().empty());
  MakeProject("docs");
  Reopen();
  EXPECT_EQ(kb_->ListProjects().value().size(), 1u);
}

TEST_F(KnowledgeBaseTest, BadDocumentsAreRefusedAndNothingIsStored) {
  MakeProject("docs");
  IngestRequest req;
  req.filename = "x.bin";
  req.content = std::string("\x7f" "ELF\x02\x01\x01\x00\x00\x00", 10);
  EXPECT_EQ(kb_->Ingest("docs", req, actor_).status().code(), Code::kUnsupportedMedia);
  req.filename = "broken.pdf";
  req.content = "%PDF-1.7 this is not really a pdf";
  EXPECT_EQ(kb_->Ingest("docs", req, actor_).status().code(), Code::kUnprocessable);
  req.filename = "a.txt";
  req.content = "fine text";
  req.metadata_json = "[1,2]";
  EXPECT_EQ(kb_->Ingest("docs", req, actor_).status().code(), Code::kInvalidArgument);
  req.metadata_json = "{}";
  req.title = "bad\x01title";
  EXPECT_EQ(kb_->Ingest("docs", req, actor_).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(kb_->Ingest("nope", req, actor_).status().code(), Code::kNotFound);
  EXPECT_EQ(kb_->ListDocuments("docs", 10, 0).value().total, 0);
  EXPECT_EQ(kb_->counters().ingest_failures.load(), 5);
}

TEST_F(KnowledgeBaseTest, QueryParametersAreValidated) {
  MakeProject("docs");
  QueryRequest q;
  q.text = "x";
  q.top_k = 0;
  EXPECT_EQ(kb_->Query("docs", q).status().code(), Code::kInvalidArgument);
  q.top_k = 101;
  EXPECT_EQ(kb_->Query("docs", q).status().code(), Code::kInvalidArgument);
  q.top_k = 10;
  q.alpha = 1.5;
  EXPECT_EQ(kb_->Query("docs", q).status().code(), Code::kInvalidArgument);
  q.alpha = 0.5;
  q.text = "   ";
  EXPECT_EQ(kb_->Query("docs", q).status().code(), Code::kInvalidArgument);
  q.text = std::string(kMaxQueryBytes + 1, 'a');
  EXPECT_EQ(kb_->Query("docs", q).status().code(), Code::kInvalidArgument);
  q.text = "ok";
  q.filters_json = "[]";
  EXPECT_EQ(kb_->Query("docs", q).status().code(), Code::kInvalidArgument);
  q.filters_json = "";
  q.vector = {1, 0, 0};
  EXPECT_EQ(kb_->Query("docs", q).status().code(), Code::kInvalidArgument);
}

TEST_F(KnowledgeBaseTest, FiltersAndPaginationNarrowResults) {
  MakeProject("docs");
  for (int i = 0; i < 12; ++i) {
    Put("docs", "doc" + std::to_string(i) + ".txt",
        "shared topic lighthouse number " + std::to_string(i),
        i % 3 == 0 ? R"({"team":"red"})" : R"({"team":"blue"})");
  }
  QueryRequest q;
  q.text = "lighthouse";
  q.filters_json = R"({"team":"red"})";
  auto r = kb_->Query("docs", q).value();
  ASSERT_EQ(r.hits.size(), 4u);
  for (auto& h : r.hits) EXPECT_EQ(h.metadata_json, R"({"team":"red"})");
  q.filters_json = "";
  q.top_k = 5;
  auto page1 = kb_->Query("docs", q).value();
  q.offset = 5;
  auto page2 = kb_->Query("docs", q).value();
  ASSERT_EQ(page1.hits.size(), 5u);
  ASSERT_EQ(page2.hits.size(), 5u);
  EXPECT_EQ(page2.hits[0].rank, 6);
  for (auto& a : page1.hits)
    for (auto& b : page2.hits) EXPECT_NE(a.chunk_id, b.chunk_id);
}

TEST_F(KnowledgeBaseTest, ExternalProjectTakesCallerVectorsAndRefusesBadOnes) {
  EmbedderSpec spec;
  spec.kind = "external";
  spec.dimension = 3;
  MakeProject("vecs", spec);
  IngestRequest req;
  req.source = "v1";
  req.chunks = {{"north pole", {0, 0, 1}}, {"east coast", {1, 0, 0}}};
  ASSERT_TRUE(kb_->Ingest("vecs", req, actor_).ok());

  QueryRequest q;
  q.vector = {0.1f, 0, 2};
  q.mode = SearchMode::kVector;
  auto r = kb_->Query("vecs", q).value();
  ASSERT_EQ(r.hits.size(), 2u);
  EXPECT_EQ(r.hits[0].text, "north pole");
  EXPECT_NEAR(*r.hits[0].vector_score, 2 / std::sqrt(4.01), 1e-5);

  q.text = "coast";
  q.mode = SearchMode::kHybrid;
  q.alpha = 0.0;
  EXPECT_EQ(kb_->Query("vecs", q).value().hits[0].text, "east coast");

  req.source = "v2";
  req.chunks = {{"bad", {0, 1}}};
  EXPECT_EQ(kb_->Ingest("vecs", req, actor_).status().code(), Code::kInvalidArgument);
  req.chunks = {{"bad", {0, NAN, 1}}};
  EXPECT_EQ(kb_->Ingest("vecs", req, actor_).status().code(), Code::kInvalidArgument);
  req.chunks = {{"bad", {0, INFINITY, 1}}};
  EXPECT_EQ(kb_->Ingest("vecs", req, actor_).status().code(), Code::kInvalidArgument);
  req.chunks = {{"no vector", {}}};
  EXPECT_EQ(kb_->Ingest("vecs", req, actor_).status().code(), Code::kInvalidArgument);
  IngestRequest plain;
  plain.content = "text only";
  plain.filename = "t.txt";
  EXPECT_EQ(kb_->Ingest("vecs", plain, actor_).status().code(), Code::kFailedPrecondition);
  q.vector = {1, 2};
  EXPECT_EQ(kb_->Query("vecs", q).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(kb_->ListDocuments("vecs", 10, 0).value().total, 1);
}

TEST_F(KnowledgeBaseTest, BuiltinProjectRefusesCallerVectors) {
  MakeProject("docs");
  IngestRequest req;
  req.source = "v";
  req.chunks = {{"text", std::vector<float>(384, 0.1f)}};
  EXPECT_EQ(kb_->Ingest("docs", req, actor_).status().code(), Code::kInvalidArgument);
  req.chunks = {{"pre-split text without vectors", {}}};
  auto r = kb_->Ingest("docs", req, actor_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Ask("docs", "pre-split").hits.size(), 1u);
}

TEST_F(KnowledgeBaseTest, ChangedSinceListsDocumentsAcrossProjects) {
  MakeProject("one");
  MakeProject("two");
  Put("one", "a.txt", "apple");
  clock_.Advance(60'000);
  const int64_t mark = clock_.NowMillis();
  Put("two", "b.txt", "banana");
  clock_.Advance(1000);
  Put("one", "c.txt", "cherry");
  auto all = kb_->DocumentsChangedSince(mark, "", 100).value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].document.source, "b.txt");
  EXPECT_EQ(all[0].project_name, "two");
  EXPECT_EQ(all[1].document.source, "c.txt");
  auto one = kb_->DocumentsChangedSince(mark, "one", 100).value();
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(kb_->DocumentsChangedSince(mark, "missing", 100).status().code(), Code::kNotFound);
}

TEST_F(KnowledgeBaseTest, KeysAuthenticateUntilRevokedOrExpired) {
  MakeProject("docs");
  auto created = kb_->keys().CreateKey("reader", KeyScope::kRead, {"docs"}, 1, actor_).value();
  EXPECT_EQ(created.secret.rfind("kb_", 0), 0u);
  auto key = kb_->keys().Authenticate(created.secret);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->scope, KeyScope::kRead);
  ASSERT_EQ(key->projects.size(), 1u);
  EXPECT_EQ(key->projects[0], kb_->GetProject("docs").value().id);
  EXPECT_EQ(kb_->keys().Authenticate("kb_wrong").status().code(), Code::kUnauthenticated);

  clock_.Advance(86'400'000);
  std::string id;
  auto expired = kb_->keys().Authenticate(created.secret, &id);
  EXPECT_EQ(expired.status().code(), Code::kUnauthenticated);
  EXPECT_EQ(id, created.record.id);

  auto other = kb_->keys().CreateKey("writer", KeyScope::kWrite, {}, std::nullopt, actor_).value();
  ASSERT_TRUE(kb_->keys().Authenticate(other.secret).ok());
  ASSERT_TRUE(kb_->keys().RevokeKey(other.record.id, actor_).ok());
  EXPECT_EQ(kb_->keys().Authenticate(other.secret).status().code(), Code::kUnauthenticated);
  EXPECT_EQ(kb_->keys()
                .CreateKey("x", KeyScope::kRead, {"missing"}, std::nullopt, actor_)
                .status()
                .code(),
            Code::kNotFound);
}

TEST_F(KnowledgeBaseTest, AdminKeyIsCreatedOnceAndShownOnce) {
  auto first = kb_->keys().EnsureAdminKey("").value();
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(kb_->keys().Authenticate(*first).ok());
  EXPECT_FALSE(kb_->keys().EnsureAdminKey("").value().has_value());
  Reopen();
  EXPECT_FALSE(kb_->keys().EnsureAdminKey("").value().has_value());
  // Nothing readable is stored: the secret does not appear in the catalog file.
  std::string catalog = ReadFile(dir_.Sub("data/catalog.db")).value();
  std::string wal = ReadFile(dir_.Sub("data/catalog.db-wal")).ok()
                        ? ReadFile(dir_.Sub("data/catalog.db-wal")).value()
                        : "";
  EXPECT_EQ(catalog.find(*first), std::string::npos);
  EXPECT_EQ(wal.find(*first), std::string::npos);
}

TEST_F(KnowledgeBaseTest, AdminTokenFromEnvironmentBecomesAnAdminKey) {
  EXPECT_FALSE(kb_->keys().EnsureAdminKey("a-long-enough-admin-token").value().has_value());
  auto key = kb_->keys().Authenticate("a-long-enough-admin-token");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->scope, KeyScope::kAdmin);
  EXPECT_EQ(kb_->keys().EnsureAdminKey("short").status().code(), Code::kInvalidArgument);
}

TEST_F(KnowledgeBaseTest, IngestFileStaysInsideTheIngestRoot) {
  MakeProject("docs");
  testing::WriteTestFile(dir_.Sub("inbox/sub/notes.md"), "# Notes\n\nmeeting about lanterns\n");
  testing::WriteTestFile(dir_.Sub("secret.txt"), "top secret");
  std::filesystem::create_symlink(dir_.Sub("secret.txt"), dir_.Sub("inbox/link.txt"));
  auto ok = kb_->IngestFile("docs", "sub/notes.md", "{}", actor_);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->document.source, "sub/notes.md");
  EXPECT_EQ(kb_->IngestFile("docs", "../secret.txt", "{}", actor_).status().code(),
            Code::kPermissionDenied);
  EXPECT_EQ(kb_->IngestFile("docs", dir_.Sub("secret.txt"), "{}", actor_).status().code(),
            Code::kPermissionDenied);
  EXPECT_EQ(kb_->IngestFile("docs", "link.txt", "{}", actor_).status().code(),
            Code::kPermissionDenied);
  EXPECT_EQ(kb_->IngestFile("docs", "missing.md", "{}", actor_).status().code(), Code::kNotFound);
}

TEST_F(KnowledgeBaseTest, StatsCountLiveDocumentsAndChunks) {
  MakeProject("docs");
  Put("docs", "guide.md", kGuide);
  IngestResult r = Put("docs", "recipes.md", kRecipes);
  ASSERT_TRUE(kb_->DeleteDocument("docs", r.document.id, actor_).ok());
  KbStats st = kb_->Stats().value();
  EXPECT_EQ(st.projects, 1);
  EXPECT_EQ(st.documents, 1);
  ASSERT_EQ(st.per_project.size(), 1u);
  EXPECT_EQ(st.per_project[0].counts.chunks, st.chunks);
  EXPECT_EQ(static_cast<int64_t>(st.per_project[0].index_vectors), st.chunks);
  EXPECT_GT(st.disk_bytes, 0);
  EXPECT_EQ(kb_->Health().status, "healthy");
  EXPECT_TRUE(kb_->Ready());
}

TEST_F(KnowledgeBaseTest, ConcurrentIngestAndQueryKeepIndexConsistent) {
  MakeProject("docs");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        IngestRequest req;
        req.filename = "t" + std::to_string(t) + "-" + std::to_string(i % 10) + ".txt";
        req.content = "thread " + std::to_string(t) + " version " + std::to_string(i) +
                      " concurrency marmalade";
        auto r = kb_->Ingest("docs", req, actor_);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        QueryRequest q;
        q.text = "marmalade";
        ASSERT_TRUE(kb_->Query("docs", q).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  KbStats st = kb_->Stats().value();
  EXPECT_EQ(st.documents, 40);
  EXPECT_EQ(static_cast<int64_t>(st.per_project[0].index_vectors), st.chunks);
  Reopen();
  st = kb_->Stats().value();
  EXPECT_EQ(static_cast<int64_t>(st.per_project[0].index_vectors), st.chunks);
}

}  // namespace
}  // namespace kb
