// Purge for good (issue 4): a purged document leaves no bytes behind in the live database files
// (rows, keyword index, journal, freed pages, WAL), its journal entries are scrubbed but keep
// their LSNs, and a v1 catalog migrates to the key-lifecycle columns.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/crypto_util.h"
#include "store/catalog.h"
#include "store/journal_codec.h"
#include "store/migrations.h"
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

constexpr char kMarker[] = "zqxjmarkerfourtyone";

// True if `path` exists and holds `needle` anywhere in its raw bytes.
bool FileContains(const std::string& path, const std::string& needle) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return bytes.find(needle) != std::string::npos;
}

class PurgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = ProjectStore::Open(path_, "proj-1", kTestDimension, &clock_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  bool AnyFileContains(const std::string& needle) {
    return FileContains(path_, needle) || FileContains(path_ + "-wal", needle);
  }

  TempDir dir_;
  std::string path_ = dir_.Sub("p/kb.db");
  ManualClock clock_{1'764'000'000'000};
  std::unique_ptr<ProjectStore> store_;
};

TEST_F(PurgeTest, PurgedDocumentLeavesNoBytesInDatabaseOrWal) {
  DocumentRecord secret = TestDoc(std::string("secret-") + kMarker + ".txt");
  secret.title = std::string("Title ") + kMarker;
  const std::string text = std::string("the launch code is ") + kMarker + " do not share";
  auto put = store_->PutDocument(secret, TestChunks({text, "second chunk " + text}), "key_a");
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  // Replaced once, so that two put_document entries carry it.
  DocumentRecord again = secret;
  again.content_hash = "h2";
  ASSERT_TRUE(store_->PutDocument(again, TestChunks({text + " v2"}), "key_a").ok());
  auto keep = store_->PutDocument(TestDoc("keep.txt"), TestChunks({"ordinary badger text"}), "k");
  ASSERT_TRUE(keep.ok());
  const std::string id = put->document.id;
  ASSERT_TRUE(store_->DeleteDocument(id, "key_a").ok());
  ASSERT_TRUE(store_->UndeleteDocument(id, "key_a").ok());  // an undelete entry carries vectors
  ASSERT_TRUE(store_->DeleteDocument(id, "key_a").ok());
  // The test can fail: soft-deleted content is still on disk.
  ASSERT_TRUE(AnyFileContains(kMarker));

  auto purged = store_->PurgeDocument(id, "system");
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  ASSERT_TRUE(store_->CompactAfterPurge().ok());
  EXPECT_FALSE(AnyFileContains(kMarker)) << "purged text still in " << path_ << " or its WAL";

  // Gone from rows and the keyword index; the other document is untouched and consistent.
  EXPECT_EQ(store_->GetDocument(id, /*include_deleted=*/true).status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->KeywordSearch(kMarker, 10)->empty());
  EXPECT_EQ(store_->KeywordSearch("badger", 10)->size(), 1u);
  EXPECT_TRUE(store_->IntegrityCheck().ok());
  EXPECT_TRUE(store_->VerifyContentChecksum().ok());

  // The journal keeps every LSN; the purged document's content-carrying entries are scrubbed.
  auto journal = store_->ReadJournal(0, 100);
  ASSERT_TRUE(journal.ok());
  ASSERT_EQ(journal->size(), 7u);
  int scrubbed = 0;
  for (size_t i = 0; i < journal->size(); ++i) {
    const JournalEntry& e = (*journal)[i];
    EXPECT_EQ(e.lsn, static_cast<int64_t>(i + 1));
    EXPECT_EQ(e.payload.find(kMarker), std::string::npos) << "lsn " << e.lsn;
    if (e.op == store::kOpScrubbed) {
      ++scrubbed;
      auto p = store::DecodeScrubbedPayload(e.payload);
      ASSERT_TRUE(p.ok());
      EXPECT_EQ(p->document_id, id);
      EXPECT_EQ(p->purged_at_lsn, 7);
    }
  }
  EXPECT_EQ(scrubbed, 3);  // two puts and the undelete
  EXPECT_EQ((*journal)[2].op, store::kOpPutDocument);  // the other document's entry stays whole

  // Closing (the last connection checkpoints and removes the WAL) leaves nothing either.
  store_.reset();
  EXPECT_FALSE(AnyFileContains(kMarker));
}

TEST_F(PurgeTest, ScrubbedEntriesCatchUpAnIndexButRefuseReplay) {
  auto put = store_->PutDocument(TestDoc("a.txt"), TestChunks({"alpha", "beta"}), "k");
  ASSERT_TRUE(put.ok());
  ASSERT_TRUE(store_->PurgeDocument(put->document.id, "system").ok());
  auto journal = store_->ReadJournal(0, 10);
  ASSERT_TRUE(journal.ok());
  ASSERT_EQ(journal->size(), 2u);
  ASSERT_EQ((*journal)[0].op, store::kOpScrubbed);
  // Index catch-up across it: the chunks it once added are removed.
  auto delta = DecodeIndexDelta((*journal)[0]);
  ASSERT_TRUE(delta.ok()) << delta.status().ToString();
  EXPECT_EQ(delta->removals, put->chunk_ids);
  EXPECT_TRUE(delta->upserts.empty());
  // Replay into an empty copy cannot cross it, and says why.
  auto copy = ProjectStore::Open(dir_.Sub("copy/kb.db"), "proj-1", kTestDimension, &clock_);
  ASSERT_TRUE(copy.ok());
  Status s = (*copy)->ApplyJournalEntry((*journal)[0]);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("scrubbed"), std::string::npos) << s.ToString();
}

TEST_F(PurgeTest, DeletedBeforeListsOnlyDueDocumentsOldestFirst) {
  auto a = store_->PutDocument(TestDoc("a.txt"), TestChunks({"alpha"}), "k");
  auto b = store_->PutDocument(TestDoc("b.txt"), TestChunks({"beta"}), "k");
  auto c = store_->PutDocument(TestDoc("c.txt"), TestChunks({"gamma"}), "k");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  clock_.Advance(1000);
  ASSERT_TRUE(store_->DeleteDocument(b->document.id, "k").ok());
  clock_.Advance(1000);
  ASSERT_TRUE(store_->DeleteDocument(a->document.id, "k").ok());
  const int64_t cutoff = clock_.NowMillis();
  clock_.Advance(1000);
  ASSERT_TRUE(store_->DeleteDocument(c->document.id, "k").ok());
  auto due = store_->DeletedBefore(cutoff, 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].id, b->document.id);
  EXPECT_EQ((*due)[1].id, a->document.id);
  // Paged listing of deleted documents, newest first.
  auto page = store_->ListDeletedDocuments(2, 1);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].id, a->document.id);
  EXPECT_EQ((*page)[1].id, b->document.id);
}

// A catalog written by the previous version (schema 1) opens, gains the key-lifecycle columns
// and keeps its keys usable.
TEST(CatalogMigrationTest, VersionOneCatalogMigratesAndKeepsKeys) {
  TempDir dir;
  ManualClock clock{1'764'000'000'000};
  {
    auto db = std::move(sql::Database::Open(dir.Sub("catalog.db")).value());
    ASSERT_TRUE(db->Exec(store::CatalogSchema().migrations[0].sql).ok());
    ASSERT_TRUE(db->Exec("PRAGMA application_id=" +
                         std::to_string(store::kCatalogApplicationId)).ok());
    ASSERT_TRUE(db->Exec("PRAGMA user_version=1").ok());
    ASSERT_TRUE(db->Exec("INSERT INTO api_keys(id, name, secret_hash, scope, projects, "
                         "created_by, created_at, revoked_at) VALUES ('key_old', 'old', '" +
                         Sha256Hex("old-secret") + "', 'write', '[\"p1\"]', 'system', 5, 9)")
                    .ok());
  }
  auto cat = Catalog::Open(dir.Sub("catalog.db"), &clock);
  ASSERT_TRUE(cat.ok()) << cat.status().ToString();
  auto key = (*cat)->FindKeyBySecretHash(Sha256Hex("old-secret"));
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->id, "key_old");
  EXPECT_EQ(key->revoked_at_ms, 9);
  EXPECT_EQ(key->revoked_reason, "");  // revoked before reasons were recorded
  EXPECT_FALSE(key->previous_secret_hash.has_value());
  // The new columns work on the migrated file.
  ASSERT_TRUE((*cat)->ReinstateKey("key_old").ok());
  ASSERT_TRUE((*cat)->RotateKey("key_old", Sha256Hex("new-secret"), 1'764'000'060'000,
                                clock.NowMillis())
                  .ok());
  auto by_old = (*cat)->FindKeyBySecretHash(Sha256Hex("old-secret"));
  ASSERT_TRUE(by_old.ok());
  EXPECT_EQ(by_old->previous_expires_at_ms, 1'764'000'060'000);
  EXPECT_EQ(by_old->secret_hash, Sha256Hex("new-secret"));
}

TEST(CatalogLifecycleTest, ProjectDeleteRevokesOnlyKeysLimitedToIt) {
  TempDir dir;
  ManualClock clock{1'764'000'000'000};
  auto cat = std::move(Catalog::Open(dir.Sub("catalog.db"), &clock).value());
  ProjectRecord p;
  p.id = "p1";
  p.name = "one";
  p.embedder_spec_json = "{}";
  ASSERT_TRUE(cat->CreateProject(p).ok());
  auto key = [&](const std::string& id, std::vector<std::string> projects) {
    ApiKeyRecord k;
    k.id = id;
    k.name = id;
    k.secret_hash = Sha256Hex(id);
    k.scope = KeyScope::kWrite;
    k.projects = std::move(projects);
    k.created_by = "system";
    ASSERT_TRUE(cat->CreateKey(k).ok());
  };
  key("key_only", {"p1"});
  key("key_both", {"p2", "p1"});
  key("key_other", {"p2"});
  key("key_similar", {"p10"});  // a LIKE '%p1%' would wrongly match this one
  key("key_all", {});
  std::vector<std::string> revoked;
  ASSERT_TRUE(cat->MarkProjectDeleted("p1", "key_admin", 100, &revoked).ok());
  EXPECT_EQ(revoked, (std::vector<std::string>{"key_both", "key_only"}));
  EXPECT_EQ(cat->GetKey("key_only")->revoked_reason, kRevokedProjectDeleted);
  EXPECT_EQ(cat->GetKey("key_only")->revoked_at_ms, 100);
  for (const char* live : {"key_other", "key_similar", "key_all"}) {
    EXPECT_FALSE(cat->GetKey(live)->revoked_at_ms.has_value()) << live;
  }
  // Undeleting the project brings no key back.
  ASSERT_TRUE(cat->UnmarkProjectDeleted("p1").ok());
  EXPECT_TRUE(cat->GetKey("key_only")->revoked_at_ms.has_value());
  // Revoke-all spares the caller and keeps earlier reasons.
  auto all = cat->RevokeAllKeys("key_all", 200, kRevokedRevokeAll);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<std::string>{"key_other", "key_similar"}));
  EXPECT_FALSE(cat->GetKey("key_all")->revoked_at_ms.has_value());
  EXPECT_EQ(cat->GetKey("key_only")->revoked_reason, kRevokedProjectDeleted);
  EXPECT_EQ(cat->GetKey("key_other")->revoked_reason, kRevokedRevokeAll);
}

}  // namespace
}  // namespace kb
