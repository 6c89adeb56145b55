// ProjectReader: the read-only view of a kb.db for code outside the store. Real files written by
// a ProjectStore, then read; damaged, foreign and too-new files give a Status naming the file,
// never a crash; the reader never writes.
#include "store/project_reader.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "store/migrations.h"
#include "store/project_store.h"
#include "store/sqlite.h"
#include "store_test_util.h"
#include "test_util.h"

namespace kb::store {
namespace {

using kb::testing::kTestDimension;
using kb::testing::TempDir;
using kb::testing::TestChunks;
using kb::testing::TestDoc;

class ProjectReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = ProjectStore::Open(path_, "proj-1", kTestDimension, &clock_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  std::unique_ptr<ProjectReader> OpenReader() {
    auto r = ProjectReader::Open(path_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  // Runs SQL on the file behind the store's back (to damage it).
  void Tamper(const std::string& sql_text) {
    auto db = sql::Database::Open(path_);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE((*db)->Exec(sql_text).ok());
  }

  TempDir dir_;
  std::string path_ = dir_.Sub("p/kb.db");
  ManualClock clock_{1'764'000'000'000};
  std::unique_ptr<ProjectStore> store_;
};

TEST_F(ProjectReaderTest, ReadsWhatTheStoreMaintains) {
  auto a = store_->PutDocument(TestDoc("a.txt"), TestChunks({"alpha one", "alpha two"}), "k");
  ASSERT_TRUE(a.ok());
  clock_.Advance(1000);
  ASSERT_TRUE(store_->PutDocument(TestDoc("b.txt"), TestChunks({"beta"}), "k").ok());
  clock_.Advance(1000);
  ASSERT_TRUE(store_->DeleteDocument(a->document.id, "k").ok());

  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  auto meta = reader->Meta();
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  EXPECT_EQ(meta->project_id, "proj-1");
  EXPECT_EQ(meta->dimension, kTestDimension);
  EXPECT_EQ(meta->last_lsn, 3);
  EXPECT_EQ(meta->content_checksum, *store_->ContentChecksum());
  EXPECT_EQ(meta->schema_version, ProjectSchema().latest_version());

  auto newest = reader->NewestCommit();
  ASSERT_TRUE(newest.ok());
  ASSERT_TRUE(newest->has_value());
  EXPECT_EQ((*newest)->lsn, 3);
  EXPECT_EQ((*newest)->ts_ms, 1'764'000'002'000);

  auto journal = store_->ReadJournal(0, 10);
  ASSERT_TRUE(journal.ok());
  auto at2 = reader->JournalChecksumAt(2);
  ASSERT_TRUE(at2.ok());
  EXPECT_EQ(at2->value_or(""), journal->at(1).checksum);
  auto at9 = reader->JournalChecksumAt(9);
  ASSERT_TRUE(at9.ok());
  EXPECT_FALSE(at9->has_value());

  auto counts = reader->Counts();
  ASSERT_TRUE(counts.ok());
  auto store_counts = store_->Counts();
  EXPECT_EQ(counts->documents, 1);
  EXPECT_EQ(counts->chunks, 1);
  EXPECT_EQ(counts->deleted_documents, 1);
  EXPECT_EQ(counts->content_bytes, store_counts->content_bytes);
  EXPECT_EQ(*reader->LiveDocuments(), 1);

  EXPECT_EQ(*reader->RecomputeContentChecksum(), meta->content_checksum);
  // The recomputation covers every document row, the deleted one too.
  int64_t documents = -1;
  EXPECT_EQ(*reader->RecomputeContentChecksum(&documents), meta->content_checksum);
  EXPECT_EQ(documents, 2);
  EXPECT_EQ(*reader->MetaRowCount(), 1);
  EXPECT_TRUE(reader->CheckIntegrity().ok()) << reader->CheckIntegrity().ToString();
}

TEST_F(ProjectReaderTest, EmptyProjectHasNoNewestCommit) {
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  auto newest = reader->NewestCommit();
  ASSERT_TRUE(newest.ok());
  EXPECT_FALSE(newest->has_value());
  EXPECT_EQ(reader->Meta()->last_lsn, 0);
  EXPECT_EQ(*reader->RecomputeContentChecksum(), std::string(64, '0'));
}

TEST_F(ProjectReaderTest, PurgedAfterSeesOnlyLaterPurges) {
  auto a = store_->PutDocument(TestDoc("a.txt"), TestChunks({"alpha"}), "k");  // LSN 1
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(store_->PurgeDocument(a->document.id, "k").ok());                        // LSN 2
  ASSERT_TRUE(store_->PutDocument(TestDoc("b.txt"), TestChunks({"beta"}), "k").ok());  // LSN 3
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  EXPECT_TRUE(*reader->PurgedAfter(0));
  EXPECT_TRUE(*reader->PurgedAfter(1));
  EXPECT_FALSE(*reader->PurgedAfter(2));
  EXPECT_FALSE(*reader->PurgedAfter(3));
}

TEST_F(ProjectReaderTest, SnapshotHoldsOneCommitWhileTheStoreWrites) {
  ASSERT_TRUE(store_->PutDocument(TestDoc("a.txt"), TestChunks({"alpha"}), "k").ok());
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->BeginSnapshot().ok());
  EXPECT_EQ(reader->BeginSnapshot().code(), Code::kFailedPrecondition);
  EXPECT_EQ(reader->Meta()->last_lsn, 1);
  ASSERT_TRUE(store_->PutDocument(TestDoc("b.txt"), TestChunks({"beta"}), "k").ok());
  EXPECT_EQ(reader->Meta()->last_lsn, 1);
  EXPECT_EQ(reader->Counts()->documents, 1);
  ASSERT_TRUE(reader->EndSnapshot().ok());
  EXPECT_EQ(reader->Meta()->last_lsn, 2);
  EXPECT_EQ(reader->Counts()->documents, 2);
}

TEST_F(ProjectReaderTest, NeverWritesTheFile) {
  ASSERT_TRUE(store_->PutDocument(TestDoc("a.txt"), TestChunks({"alpha"}), "k").ok());
  store_.reset();  // checkpointed and closed
  const auto size = std::filesystem::file_size(path_);
  const auto mtime = std::filesystem::last_write_time(path_);
  {
    auto reader = OpenReader();
    ASSERT_NE(reader, nullptr);
    EXPECT_TRUE(reader->CheckIntegrity().ok());
    EXPECT_TRUE(reader->RecomputeContentChecksum().ok());
    EXPECT_TRUE(reader->Counts().ok());
  }
  EXPECT_EQ(std::filesystem::file_size(path_), size);
  EXPECT_EQ(std::filesystem::last_write_time(path_), mtime);
}

TEST_F(ProjectReaderTest, ReadsJournalAndChunksForIndexChecks) {
  auto a = store_->PutDocument(TestDoc("a.txt"), TestChunks({"alpha", "beta"}, 1), "k");
  ASSERT_TRUE(a.ok());
  auto b = store_->PutDocument(TestDoc("b.txt"), TestChunks({"gamma"}, 5), "k");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(store_->DeleteDocument(b->document.id, "k").ok());
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);

  auto span = reader->Journal();
  ASSERT_TRUE(span.ok());
  EXPECT_EQ(span->entries, 3);
  EXPECT_EQ(span->first_lsn, 1);
  EXPECT_EQ(span->last_lsn, 3);
  auto entries = reader->ReadJournal(1, 2);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ(entries->at(0).lsn, 2);
  EXPECT_EQ(entries->at(0).op, "put_document");
  EXPECT_EQ(entries->at(0).payload, store_->ReadJournal(1, 1)->at(0).payload);

  std::vector<int64_t> live;
  ASSERT_TRUE(reader->ForEachLiveChunkId([&](int64_t id) { live.push_back(id); }).ok());
  EXPECT_EQ(live, a->chunk_ids);
  std::vector<int64_t> embedded;
  ASSERT_TRUE(reader
                  ->ForEachLiveEmbedding([&](int64_t id, std::string_view bytes) {
                    EXPECT_EQ(bytes.size(), 4u * kTestDimension);
                    embedded.push_back(id);
                    return Status::OK();
                  })
                  .ok());
  EXPECT_EQ(embedded, a->chunk_ids);
  auto deleted_chunk = reader->ChunkEmbedding(b->chunk_ids.at(0));  // deleted chunks keep rows
  ASSERT_TRUE(deleted_chunk.ok());
  ASSERT_TRUE(deleted_chunk->has_value());
  EXPECT_EQ((*deleted_chunk)->size(), 4u * kTestDimension);
  EXPECT_FALSE(reader->ChunkEmbedding(999)->has_value());

  int wrong = 0;
  ASSERT_TRUE(reader
                  ->ForEachChunkWithEmbeddingSizeOtherThan(4 * kTestDimension,
                                                           [&](int64_t, int64_t) { ++wrong; })
                  .ok());
  EXPECT_EQ(wrong, 0);
  ASSERT_TRUE(
      reader->ForEachChunkWithEmbeddingSizeOtherThan(8, [&](int64_t, int64_t) { ++wrong; }).ok());
  EXPECT_EQ(wrong, 3);
  EXPECT_TRUE(reader->KeywordIndexIsLiveOnly());
  std::vector<int64_t> not_indexed, not_content;
  auto compared = reader->CompareKeywordIndex([&](int64_t id) { not_indexed.push_back(id); },
                                              [&](int64_t id) { not_content.push_back(id); });
  ASSERT_TRUE(compared.ok());
  EXPECT_TRUE(*compared);
  EXPECT_TRUE(not_indexed.empty());
  EXPECT_TRUE(not_content.empty());
  EXPECT_EQ(*reader->SqliteIntegrityReport(), std::vector<std::string>{"ok"});
}

TEST_F(ProjectReaderTest, OpenUncheckedReadsAForeignFileForAChecker) {
  const std::string foreign = dir_.Sub("foreign.db");
  {
    auto db = sql::Database::Open(foreign);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(
        (*db)->Exec("PRAGMA application_id=42; PRAGMA user_version=9; CREATE TABLE t(x)").ok());
  }
  auto r = ProjectReader::OpenUnchecked(foreign);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto id = (*r)->Identity();
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->application_id, 42);
  EXPECT_EQ(id->schema_version, 9);
  EXPECT_EQ(*(*r)->SqliteIntegrityReport(), std::vector<std::string>{"ok"});
  auto meta = (*r)->Meta();
  EXPECT_FALSE(meta.ok());
  EXPECT_NE(meta.status().message().find("foreign.db"), std::string::npos);
}

TEST_F(ProjectReaderTest, MissingFileIsNotFound) {
  auto r = ProjectReader::Open(dir_.Sub("nope/kb.db"));
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("nope/kb.db"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("nope/kb.db")));
}

TEST_F(ProjectReaderTest, NotSqliteIsCorruption) {
  const std::string garbage = dir_.Sub("garbage.db");
  kb::testing::WriteTestFile(garbage, std::string(8192, 'x'));
  auto r = ProjectReader::Open(garbage);
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find("garbage.db"), std::string::npos);
}

TEST_F(ProjectReaderTest, ForeignDatabaseIsCorruption) {
  const std::string foreign = dir_.Sub("foreign.db");
  {
    auto db = sql::Database::Open(foreign);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA application_id=42; CREATE TABLE t(x)").ok());
  }
  auto r = ProjectReader::Open(foreign);
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find("not a KnowledgeBeast project database"), std::string::npos);
}

TEST_F(ProjectReaderTest, NewerSchemaVersionIsFailedPrecondition) {
  store_.reset();
  Tamper("PRAGMA user_version=7");
  auto r = ProjectReader::Open(path_);
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  EXPECT_NE(r.status().message().find("schema version 7"), std::string::npos);
}

TEST_F(ProjectReaderTest, MissingTableIsCorruption) {
  store_.reset();
  Tamper("DROP TABLE journal");
  auto r = ProjectReader::Open(path_);
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find("journal table is missing"), std::string::npos);
}

TEST_F(ProjectReaderTest, MissingMetaRowIsCorruption) {
  store_.reset();
  Tamper("DELETE FROM meta");
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  auto meta = reader->Meta();
  EXPECT_EQ(meta.status().code(), Code::kCorruption);
  EXPECT_NE(meta.status().message().find("meta row is missing"), std::string::npos);
}

TEST_F(ProjectReaderTest, MetaRowCountLetsACheckerReportAWrongCount) {
  store_.reset();
  // A second row past the singleton CHECK, as only a hand edit could make it.
  Tamper(
      "PRAGMA ignore_check_constraints = ON; INSERT INTO meta SELECT 2, project_id, dimension, "
      "content_checksum, last_lsn FROM meta");
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  auto rows = reader->MetaRowCount();
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(*rows, 2);
  EXPECT_EQ(reader->Meta().status().code(), Code::kCorruption);
}

TEST_F(ProjectReaderTest, RowsChangedBehindTheStoreAreFound) {
  ASSERT_TRUE(store_->PutDocument(TestDoc("a.txt"), TestChunks({"alpha", "beta"}), "k").ok());
  store_.reset();
  Tamper("UPDATE documents SET title = 'edited'; UPDATE documents SET chunk_count = 5");
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  EXPECT_NE(*reader->RecomputeContentChecksum(), reader->Meta()->content_checksum);
  Status s = reader->CheckIntegrity();
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("chunk_count differs"), std::string::npos) << s.ToString();
}

TEST_F(ProjectReaderTest, KeywordIndexMissingRowsIsCorruption) {
  ASSERT_TRUE(store_->PutDocument(TestDoc("a.txt"), TestChunks({"alpha", "beta"}), "k").ok());
  store_.reset();
  Tamper("DELETE FROM chunks_fts_docsize");
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  Status s = reader->CheckIntegrity();
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("2 chunks are not indexed"), std::string::npos) << s.ToString();
}

TEST_F(ProjectReaderTest, DamagedPagesGiveAStatusNotACrash) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(store_
                    ->PutDocument(TestDoc("d" + std::to_string(i) + ".txt"),
                                  TestChunks({std::string(2000, 'a' + i % 26), "more"}, i), "k")
                    .ok());
  }
  store_.reset();
  {
    // Overwrite pages after the first (the header and schema stay readable).
    std::FILE* f = std::fopen(path_.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, 4096 * 3, SEEK_SET);
    std::string junk(4096 * 4, '\x5a');
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  auto r = ProjectReader::Open(path_);
  if (!r.ok()) {
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
    return;
  }
  Status integrity = (*r)->CheckIntegrity();
  EXPECT_FALSE(integrity.ok());
  EXPECT_EQ(integrity.code(), Code::kCorruption) << integrity.ToString();
  EXPECT_NE(integrity.message().find(path_), std::string::npos) << integrity.ToString();
  // Every other call returns (a value or a Status) rather than crashing.
  (void)(*r)->Meta();
  (void)(*r)->Counts();
  (void)(*r)->RecomputeContentChecksum();
  (void)(*r)->NewestCommit();
}

}  // namespace
}  // namespace kb::store
