// Crash safety (docs/format/BACKUP_REPOSITORY.md, "Backup (writer)": "A crash at any step leaves
// objects that no snapshot references"). A backup is stopped after every possible number of
// successful Puts, from 0 to all of them: each time the repository must check clean, show no
// snapshot for the interrupted backup, keep every earlier snapshot verifiable, and the next
// backup must succeed and reuse the packs the interrupted one had indexed. Single failed Puts and
// Gets are survived the same way.
#include <gtest/gtest.h>

#include <filesystem>

#include "faulty_blob_store.h"
#include "repo/repository.h"
#include "repo/snapshot.h"
#include "repository_test_util.h"

namespace kb::repo {
namespace {

namespace fs = std::filesystem;
using kb::testing::Faults;
using kb::testing::FaultyBlobStore;
using kb::testing::MemoryBlobStore;

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = kb::testing::MakeSourceTree(dir_.Sub("src"), 300);
    auto first = base_.repo->CreateSnapshot(tree_.source, {});
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    first_ = *first;
    // The second backup has ~2.5 MB of new, incompressible data: three packs, and (with an
    // index object after every pack) three index objects before the manifest.
    kb::testing::WriteBytes(dir_.Sub("new.bin"), kb::testing::TestBytes(2'500'000, 31, false));
    second_ = tree_.source;
    second_.catalog_files.push_back(kb::testing::Src("new.bin", dir_.Sub("new.bin")));
    kb::testing::UpdateSqliteRows(tree_.ProjectPath("p-alpha", "kb.db"), {5, 150}, 9);
  }

  // A copy of the base repository behind a fault injector.
  struct Copy {
    MemoryBlobStore store;
    std::shared_ptr<Faults> faults = std::make_shared<Faults>();
    std::unique_ptr<FaultyBlobStore> faulty;
    std::unique_ptr<RepoContext> ctx;
  };
  std::unique_ptr<Copy> CopyOfBase() {
    auto c = std::make_unique<Copy>();
    for (const auto& [key, value] : base_.store->Snapshot()) c->store.SetRaw(key, value);
    c->faulty = std::make_unique<FaultyBlobStore>(c->store.Handle(), c->faults);
    c->ctx = kb::testing::OpenTestContext(c->faulty.get(), &base_.clock);
    c->ctx->packs_per_index = 1;
    return c;
  }

  Result<SnapshotManifest> Backup(Copy& c) { return WriteSnapshot(*c.ctx, second_, {}); }

  kb::testing::TempDir dir_;
  kb::testing::MemoryRepo base_;
  kb::testing::SourceTree tree_;
  SnapshotManifest first_;
  SnapshotSource second_;
};

TEST_F(CrashTest, InterruptedAfterEveryPutTheRepositoryChecksCleanAndTheNextBackupReuses) {
  // A clean run counts the Puts and the new data.
  auto clean = CopyOfBase();
  auto full = Backup(*clean);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  const int64_t total_puts = clean->faults->puts;
  ASSERT_GE(total_puts, 8) << kb::testing::Joined(
      clean->faults->log);  // lock, 3x(pack, index), manifest

  for (int64_t n = 0; n <= total_puts; ++n) {
    SCOPED_TRACE("crash after " + std::to_string(n) + " puts");
    auto c = CopyOfBase();
    c->faults->crash_after_puts = n;
    auto crashed = Backup(*c);
    if (n < total_puts) {
      ASSERT_FALSE(crashed.ok());
    } else {
      ASSERT_TRUE(crashed.ok()) << crashed.status().ToString();  // committed; only unlock failed
    }
    c->faults->Reset();  // "restart": the store accepts writes again

    auto repo = Repository::Open(c->store.Handle(), kb::testing::Passphrase(), &base_.clock);
    ASSERT_TRUE(repo.ok());
    auto check = (*repo)->Check(false);
    ASSERT_TRUE(check.ok());
    EXPECT_TRUE(check->ok) << kb::testing::Joined(check->problems);
    EXPECT_EQ(check->snapshots, n < total_puts ? 1 : 2);
    VerifyOptions all;
    all.data = VerifyOptions::Data::kAll;
    auto verified = (*repo)->Verify({first_.id}, all);
    ASSERT_TRUE(verified.ok());
    EXPECT_TRUE((*verified)[0].ok) << kb::testing::Joined((*verified)[0].problems);

    auto next = Backup(*c);
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    // Packs named by an index object before the crash are reused, not stored again.
    int64_t indexed_before_crash = 0;
    for (int64_t i = 0; i < std::min(n, total_puts); ++i) {
      indexed_before_crash += clean->faults->log[i].rfind("put index/", 0) == 0;
    }
    if (n < total_puts) {
      if (indexed_before_crash > 0) {
        EXPECT_LT(next->stats.added_bytes, full->stats.added_bytes);
      } else {
        EXPECT_EQ(next->stats.added_bytes, full->stats.added_bytes);
      }
    } else {
      EXPECT_EQ(next->stats.new_chunks, 0);
    }
    auto next_verified = (*repo)->Verify({next->id}, all);
    ASSERT_TRUE(next_verified.ok());
    EXPECT_TRUE((*next_verified)[0].ok) << kb::testing::Joined((*next_verified)[0].problems);
    if (n == total_puts / 2) {  // one full restore (restores fsync every file: slow-ish)
      std::string target = dir_.Sub("restore");
      ASSERT_TRUE((*repo)->RestoreFiles(*next, {}, target).ok());
      auto expected = kb::testing::ExpectedRestore(tree_);
      expected["new.bin"] = kb::testing::ReadBytes(dir_.Sub("new.bin"));
      EXPECT_TRUE(kb::testing::DirContents(target) == expected);
    }
  }
}

TEST_F(CrashTest, AFailedPutFailsTheBackupAndTheRetrySucceeds) {
  auto clean = CopyOfBase();
  ASSERT_TRUE(Backup(*clean).ok());
  const int64_t total_puts = clean->faults->puts;
  for (int64_t n = 0; n < total_puts; ++n) {
    SCOPED_TRACE("failing put " + std::to_string(n));
    auto c = CopyOfBase();
    c->faults->fail_put_at = n;
    auto failed = Backup(*c);
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.status().code(), Code::kIOError);
    EXPECT_TRUE(c->store.Keys("locks/").empty());  // a failed backup removes its lock
    EXPECT_EQ(c->store.Keys("snapshots/").size(), 1u);
    ASSERT_TRUE(Backup(*c).ok());
  }
}

TEST_F(CrashTest, AFailedReadDuringRestoreLeavesNothingBehind) {
  auto c = CopyOfBase();
  auto m = Backup(*c);
  ASSERT_TRUE(m.ok());
  auto repo = Repository::Open(std::make_unique<FaultyBlobStore>(c->store.Handle(), c->faults),
                               kb::testing::Passphrase(), &base_.clock);
  ASSERT_TRUE(repo.ok());
  for (int64_t n : {3, 10, 20}) {
    c->faults->Reset();
    c->faults->fail_get_at = n;
    std::string target = dir_.Sub("t" + std::to_string(n));
    Status s = (*repo)->RestoreFiles(*m, {}, target);
    EXPECT_EQ(s.code(), Code::kIOError) << n << ": " << s.ToString();
    EXPECT_FALSE(fs::exists(target));
  }
}

}  // namespace
}  // namespace kb::repo
