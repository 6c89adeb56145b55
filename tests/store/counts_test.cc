// The maintained counts of a project (kb.db schema 3, `doc_counts`, issue 16): kept by triggers
// through every mutation and replay, equal to the counts from the rows, backfilled by the
// migration, and a tampered row is found by the integrity check.
#include <gtest/gtest.h>

#include "store/migrations.h"
#include "store/project_rows.h"
#include "store/project_store.h"
#include "store/sqlite.h"
#include "store_test_util.h"
#include "test_util.h"

namespace kb {
namespace {

using kb::testing::kTestDimension;
using kb::testing::TempDir;
using kb::testing::TestChunks;
using kb::testing::TestDoc;

struct Expected {
  int64_t documents, chunks, bytes, deleted;
};

void ExpectCounts(ProjectStore& store, const std::string& path, Expected e) {
  auto kept = store.Counts();
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(kept->documents, e.documents);
  EXPECT_EQ(kept->chunks, e.chunks);
  EXPECT_EQ(kept->content_bytes, e.bytes);
  EXPECT_EQ(kept->deleted_documents, e.deleted);
  // And the rows agree (the integrity check compares the two).
  auto db = sql::Database::Open(path, {.read_only = true});
  ASSERT_TRUE(db.ok());
  auto rows = store::ReadCounts(db->get());
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->documents, e.documents);
  EXPECT_EQ(rows->chunks, e.chunks);
  EXPECT_EQ(rows->content_bytes, e.bytes);
  EXPECT_EQ(rows->deleted_documents, e.deleted);
  EXPECT_TRUE(store.IntegrityCheck().ok());
}

class CountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = ProjectStore::Open(path_, "proj-1", kTestDimension, &clock_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  std::string Put(const std::string& source, int chunks, int64_t bytes, const std::string& hash) {
    DocumentRecord d = TestDoc(source, hash);
    d.bytes = bytes;
    std::vector<std::string> texts;
    for (int i = 0; i < chunks; ++i) texts.push_back(source + " part " + std::to_string(i));
    auto r = store_->PutDocument(d, TestChunks(texts), "tester");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->document.id : std::string();
  }

  TempDir dir_;
  std::string path_ = dir_.Sub("p/kb.db");
  ManualClock clock_{1'764'000'000'000};
  std::unique_ptr<ProjectStore> store_;
};

TEST_F(CountsTest, FollowEveryMutation) {
  ExpectCounts(*store_, path_, {0, 0, 0, 0});
  const std::string a = Put("a.md", 3, 300, "h-a");
  const std::string b = Put("b.md", 2, 50, "h-b");
  ExpectCounts(*store_, path_, {2, 5, 350, 0});
  Put("a.md", 3, 300, "h-a");  // unchanged: nothing written
  ExpectCounts(*store_, path_, {2, 5, 350, 0});
  Put("a.md", 1, 120, "h-a2");  // replaced: fewer chunks, other size
  ExpectCounts(*store_, path_, {2, 3, 170, 0});
  ASSERT_TRUE(store_->DeleteDocument(b, "tester").ok());
  ExpectCounts(*store_, path_, {1, 1, 120, 1});
  ASSERT_TRUE(store_->UndeleteDocument(b, "tester").ok());
  ExpectCounts(*store_, path_, {2, 3, 170, 0});
  ASSERT_TRUE(store_->DeleteDocument(a, "tester").ok());
  ASSERT_TRUE(store_->PurgeDocument(a, "tester").ok());  // a deleted document purged
  ExpectCounts(*store_, path_, {1, 2, 50, 0});
  ASSERT_TRUE(store_->PurgeDocument(b, "tester").ok());  // a live one
  ExpectCounts(*store_, path_, {0, 0, 0, 0});
}

TEST_F(CountsTest, ReplayKeepsThemToo) {
  const std::string a = Put("a.md", 3, 300, "h-a");
  Put("b.md", 2, 50, "h-b");
  Put("a.md", 2, 200, "h-a2");
  ASSERT_TRUE(store_->DeleteDocument(a, "tester").ok());
  auto entries = store_->ReadJournal(0, 100);
  ASSERT_TRUE(entries.ok());
  TempDir other;
  const std::string copy = other.Sub("p/kb.db");
  auto replica = ProjectStore::Open(copy, "proj-1", kTestDimension, &clock_);
  ASSERT_TRUE(replica.ok());
  for (const JournalEntry& e : *entries) ASSERT_TRUE((*replica)->ApplyJournalEntry(e).ok());
  ExpectCounts(**replica, copy, {1, 2, 50, 1});
}

TEST_F(CountsTest, TamperedRowIsFoundByTheIntegrityCheck) {
  Put("a.md", 3, 300, "h-a");
  {
    auto db = sql::Database::Open(path_);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("UPDATE doc_counts SET live_chunks = live_chunks + 1").ok());
  }
  Status s = store_->IntegrityCheck();
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("maintained counts"), std::string::npos) << s.message();
}

// A schema-2 file with live and deleted documents gets its counts from the migration.
TEST(CountsMigrationTest, SchemaTwoFileIsBackfilled) {
  TempDir dir;
  const std::string path = dir.Sub("kb.db");
  const store::SchemaSpec& latest = store::ProjectSchema();
  ASSERT_GE(latest.latest_version(), 3);
  const store::SchemaSpec v2{latest.kind, latest.application_id, latest.migrations.first(2)};
  {
    auto db = sql::Database::Open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(store::ApplyMigrations(db->get(), v2).ok());
    ASSERT_TRUE((*db)
                    ->Exec("INSERT INTO documents(id, title, source, content_type, content_hash, "
                           "metadata, chunk_count, bytes, created_at, updated_at, deleted_at) "
                           "VALUES ('d1', 't', 'a', 'text/plain', 'h', '{}', 2, 10, 1, 1, NULL),"
                           "('d2', 't', 'b', 'text/plain', 'h', '{}', 1, 7, 1, 1, NULL),"
                           "('d3', 't', 'c', 'text/plain', 'h', '{}', 4, 99, 1, 1, 5)")
                    .ok());
    ASSERT_TRUE(store::ApplyMigrations(db->get(), latest).ok());
    auto kept = store::ReadMaintainedCounts(db->get());
    ASSERT_TRUE(kept.ok()) << kept.status().ToString();
    EXPECT_EQ(kept->documents, 2);
    EXPECT_EQ(kept->chunks, 3);
    EXPECT_EQ(kept->content_bytes, 17);
    EXPECT_EQ(kept->deleted_documents, 1);
  }
}

}  // namespace
}  // namespace kb
