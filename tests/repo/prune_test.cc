// Two-phase prune (docs/format/BACKUP_REPOSITORY.md, "Prune (two-phase)"): unreferenced packs
// are marked, then swept after the grace period; a dry run changes nothing; stale locks are
// removed; and a backup running at the same time — started before or after the plan, finishing
// normally or losing its lock — never ends with a snapshot that names a deleted pack.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "faulty_blob_store.h"
#include "repo/chunk_index.h"
#include "repo/locks.h"
#include "repo/repository.h"
#include "repo/repository_format.h"
#include "repo/snapshot.h"
#include "repository_test_util.h"

namespace kb::repo {
namespace {

using kb::testing::Faults;
using kb::testing::FaultyBlobStore;

constexpr int64_t kMinute = 60 * 1000;

class PruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kb::testing::WriteBytes(dir_.Sub("a.bin"), kb::testing::TestBytes(1'500'000, 41, false));
    kb::testing::WriteBytes(dir_.Sub("b.bin"), kb::testing::TestBytes(1'500'000, 42, false));
    only_a_.catalog_files = {kb::testing::Src("a.bin", dir_.Sub("a.bin"))};
    a_and_b_.catalog_files = {kb::testing::Src("a.bin", dir_.Sub("a.bin")),
                              kb::testing::Src("b.bin", dir_.Sub("b.bin"))};
  }

  SnapshotManifest Backup(Repository& repo, const SnapshotSource& source) {
    auto m = repo.CreateSnapshot(source, {});
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    r_.clock.Advance(1000);
    return m.ok() ? *m : SnapshotManifest{};
  }

  PruneReport Prune(Repository& repo, PruneOptions o = {}) {
    auto report = repo.Prune(o);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? *report : PruneReport{};
  }

  // A backup on the same objects whose Puts can be hooked, with a lock refreshed every
  // millisecond of real time, so that AdvanceKeepingLocksFresh can simulate hours of a live
  // backup.
  Result<SnapshotManifest> HookedBackup(const SnapshotSource& source) {
    FaultyBlobStore store(r_.store->Handle(), faults_);
    auto ctx = kb::testing::OpenTestContext(&store, &r_.clock);
    LockTiming timing;
    timing.refresh_ms = 1;
    auto m = WriteSnapshot(*ctx, source, {}, timing);
    r_.clock.Advance(1000);
    return m;
  }

  // Lets `ms` pass in steps of 10 minutes, waiting at each step until every backup lock has been
  // refreshed at the new time (by the running backup's refresh thread).
  void AdvanceKeepingLocksFresh(int64_t ms) {
    auto ctx = kb::testing::OpenTestContext(r_.store.get(), &r_.clock);
    for (int64_t done = 0; done < ms; done += 10 * kMinute) {
      r_.clock.Advance(10 * kMinute);
      for (int spin = 0; spin < 5000; ++spin) {
        std::vector<std::string> unreadable;
        auto locks = ListLocks(*ctx, &unreadable);
        ASSERT_TRUE(locks.ok());
        bool fresh = true;
        for (const LockRecord& l : *locks) fresh = fresh && l.refreshed_ms == r_.clock.NowMillis();
        if (fresh) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }

  // A second Repository on the same objects whose Puts can be hooked.
  std::unique_ptr<Repository> Hooked() {
    auto repo = Repository::Open(std::make_unique<FaultyBlobStore>(r_.store->Handle(), faults_),
                                 kb::testing::Passphrase(), &r_.clock);
    EXPECT_TRUE(repo.ok());
    return repo.ok() ? std::move(repo).value() : nullptr;
  }

  // Every snapshot verifies reading all data, and the repository checks clean.
  void ExpectIntact() {
    VerifyOptions all;
    all.data = VerifyOptions::Data::kAll;
    auto reports = r_.repo->Verify({}, all);
    ASSERT_TRUE(reports.ok());
    for (const VerifyReport& r : *reports) {
      EXPECT_TRUE(r.ok) << r.snapshot_id << "\n" << kb::testing::Joined(r.problems);
    }
    auto check = r_.repo->Check(false);
    ASSERT_TRUE(check.ok());
    EXPECT_TRUE(check->ok) << kb::testing::Joined(check->problems);
  }

  std::set<std::string> Packs() {
    auto keys = r_.store->Keys("data/");
    return {keys.begin(), keys.end()};
  }

  kb::testing::TempDir dir_;
  kb::testing::MemoryRepo r_;
  std::shared_ptr<Faults> faults_ = std::make_shared<Faults>();
  SnapshotSource only_a_, a_and_b_;
};

TEST_F(PruneTest, PacksOfAForgottenSnapshotAreMarkedThenSweptAfterTheGrace) {
  SnapshotManifest s1 = Backup(*r_.repo, only_a_);
  std::set<std::string> a_packs = Packs();
  SnapshotManifest s2 = Backup(*r_.repo, a_and_b_);
  std::set<std::string> all_packs = Packs();
  ASSERT_GT(all_packs.size(), a_packs.size());
  ASSERT_TRUE(r_.repo->ForgetSnapshot(s2.id).ok());

  PruneReport mark = Prune(*r_.repo);
  EXPECT_EQ(mark.packs_marked, static_cast<int64_t>(all_packs.size() - a_packs.size()));
  EXPECT_EQ(mark.packs_deleted, 0);
  EXPECT_EQ(r_.store->Keys("prune/").size(), 1u);
  EXPECT_EQ(Packs(), all_packs);  // marking deletes nothing

  r_.clock.Advance(30 * kMinute);  // within the grace: the plan waits, nothing is marked twice
  PruneReport early = Prune(*r_.repo);
  EXPECT_EQ(early.packs_deleted, 0);
  EXPECT_EQ(early.packs_marked, 0);
  EXPECT_EQ(Packs(), all_packs);

  r_.clock.Advance(31 * kMinute);
  PruneReport sweep = Prune(*r_.repo);
  EXPECT_EQ(sweep.plans_swept, 1);
  EXPECT_EQ(sweep.packs_deleted, mark.packs_marked);
  EXPECT_GT(sweep.bytes_deleted, 1'000'000);
  EXPECT_EQ(sweep.packs_marked, 0);
  EXPECT_EQ(Packs(), a_packs);
  EXPECT_TRUE(r_.store->Keys("prune/").empty());
  EXPECT_TRUE(r_.store->Keys("locks/").empty());
  ExpectIntact();
  ASSERT_TRUE(r_.repo->RestoreFiles(s1, {}, dir_.Sub("out")).ok());
  EXPECT_TRUE(kb::testing::ReadBytes(dir_.Sub("out/a.bin")) ==
              kb::testing::ReadBytes(dir_.Sub("a.bin")));
}

TEST_F(PruneTest, DryRunChangesNothingAndReportsWhatItWouldDo) {
  Backup(*r_.repo, only_a_);
  SnapshotManifest s2 = Backup(*r_.repo, a_and_b_);
  ASSERT_TRUE(r_.repo->ForgetSnapshot(s2.id).ok());
  PruneOptions dry;
  dry.dry_run = true;
  auto before = r_.store->Snapshot();
  PruneReport would_mark = Prune(*r_.repo, dry);
  EXPECT_GT(would_mark.packs_marked, 0);
  EXPECT_EQ(r_.store->Snapshot(), before);

  Prune(*r_.repo);  // a real mark
  r_.clock.Advance(2 * 60 * kMinute);
  before = r_.store->Snapshot();
  PruneReport would_sweep = Prune(*r_.repo, dry);
  EXPECT_EQ(would_sweep.packs_deleted, would_mark.packs_marked);
  EXPECT_EQ(r_.store->Snapshot(), before);
}

TEST_F(PruneTest, StaleLocksAreRemovedAndLiveOnesKept) {
  Backup(*r_.repo, only_a_);
  auto ctx = kb::testing::OpenTestContext(r_.store.get(), &r_.clock);
  LockRecord stale{"00000000000000aa", "backup", "old-host", 1, 0, 0};
  stale.created_ms = stale.refreshed_ms = r_.clock.NowMillis() - 31 * kMinute;
  LockRecord live{"00000000000000bb", "backup", "busy-host", 2, 0, 0};
  live.created_ms = r_.clock.NowMillis() - 2 * 60 * kMinute;  // long-running, refreshed
  live.refreshed_ms = r_.clock.NowMillis() - kMinute;
  ASSERT_TRUE(WriteLock(*ctx, stale).ok());
  ASSERT_TRUE(WriteLock(*ctx, live).ok());
  PruneReport report = Prune(*r_.repo);
  EXPECT_EQ(report.stale_locks_removed, 1);
  EXPECT_EQ(r_.store->Keys("locks/"), std::vector<std::string>{"locks/00000000000000bb"});
}

TEST_F(PruneTest, ASecondPruneIsRefusedWhileOneHoldsItsLock) {
  Backup(*r_.repo, only_a_);
  auto ctx = kb::testing::OpenTestContext(r_.store.get(), &r_.clock);
  LockRecord other{"00000000000000cc",  "prune", "other-host", 3, r_.clock.NowMillis(),
                   r_.clock.NowMillis()};
  ASSERT_TRUE(WriteLock(*ctx, other).ok());
  auto refused = r_.repo->Prune({});
  EXPECT_EQ(refused.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(r_.store->Keys("locks/").size(), 1u);  // its own lock is gone again
}

TEST_F(PruneTest, ABackupThatStartedBeforeThePlanDefersTheSweepAndKeepsItsPacks) {
  SnapshotManifest s0 = Backup(*r_.repo, only_a_);
  SnapshotManifest s1 = Backup(*r_.repo, a_and_b_);  // b's data and trees in packs of their own
  ASSERT_TRUE(r_.repo->ForgetSnapshot(s0.id).ok());
  ASSERT_TRUE(r_.repo->ForgetSnapshot(s1.id).ok());  // every pack is now unreferenced
  std::set<std::string> a_and_b_packs = Packs();
  // A backup of a.bin starts now and reuses a's packs (nothing is planned yet). Just before it
  // writes its manifest, prune marks every pack, and later (after the grace) tries to sweep.
  PruneReport mark, deferred;
  faults_->hook_prefix = "snapshots/";
  faults_->hook = [&](const std::string&) {
    mark = Prune(*r_.repo);
    AdvanceKeepingLocksFresh(2 * 60 * kMinute);  // the backup is slow, but alive
    deferred = Prune(*r_.repo);
  };
  auto committed = HookedBackup(only_a_);
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  SnapshotManifest s2 = *committed;
  EXPECT_EQ(s2.stats.new_chunks, 0);  // it reused the packs
  EXPECT_EQ(mark.packs_marked, static_cast<int64_t>(a_and_b_packs.size()));
  EXPECT_EQ(deferred.plans_deferred, 1);
  EXPECT_EQ(deferred.packs_deleted, 0);
  EXPECT_EQ(Packs(), a_and_b_packs);
  ExpectIntact();

  // Now the backup is done: the sweep keeps what s2 uses and deletes only b's packs.
  PruneReport sweep = Prune(*r_.repo);
  EXPECT_EQ(sweep.plans_swept, 1);
  EXPECT_GT(sweep.packs_deleted, 0);
  EXPECT_LT(sweep.packs_deleted, static_cast<int64_t>(a_and_b_packs.size()));
  ExpectIntact();
  ASSERT_TRUE(r_.repo->RestoreFiles(s2, {}, dir_.Sub("out")).ok());
}

TEST_F(PruneTest, ABackupThatStartedAfterThePlanDoesNotReusePlannedPacks) {
  SnapshotManifest s1 = Backup(*r_.repo, only_a_);
  ASSERT_TRUE(r_.repo->ForgetSnapshot(s1.id).ok());
  std::set<std::string> old_packs = Packs();
  Prune(*r_.repo);                // plan: every pack
  r_.clock.Advance(6 * kMinute);  // beyond max_clock_skew
  // While this backup runs (at its first index object), the plan becomes due and is swept.
  PruneReport sweep;
  faults_->hook_prefix = "index/";
  faults_->hook = [&](const std::string&) {
    AdvanceKeepingLocksFresh(2 * 60 * kMinute);
    sweep = Prune(*r_.repo);
  };
  auto committed = HookedBackup(only_a_);
  ASSERT_TRUE(committed.ok()) << committed.status().ToString();
  SnapshotManifest s2 = *committed;
  EXPECT_GT(s2.stats.new_chunks, 300);  // stored again: the planned packs were excluded
  EXPECT_EQ(sweep.plans_swept, 1);
  EXPECT_EQ(sweep.packs_deleted, static_cast<int64_t>(old_packs.size()));
  for (const std::string& p : old_packs) EXPECT_FALSE(r_.store->Stat(p).ok());
  ExpectIntact();
  ASSERT_TRUE(r_.repo->RestoreFiles(s2, {}, dir_.Sub("out")).ok());
}

TEST_F(PruneTest, ABackupWhoseLockWentStaleDuringASweepCommitsNothing) {
  SnapshotManifest s1 = Backup(*r_.repo, a_and_b_);
  ASSERT_TRUE(r_.repo->ForgetSnapshot(s1.id).ok());
  // The backup reuses every pack; as it uploads its one new pack it is "suspended" for 2 hours:
  // its lock goes stale, prune marks and then sweeps everything the backup relies on. The
  // backup finds its lock gone before it writes an index object or a manifest.
  faults_->hook_prefix = "data/";
  faults_->hook = [&](const std::string&) {
    Prune(*r_.repo);
    r_.clock.Advance(2 * 60 * kMinute);
    PruneReport sweep = Prune(*r_.repo);
    EXPECT_EQ(sweep.stale_locks_removed, 1);
    EXPECT_GT(sweep.packs_deleted, 0);
  };
  SnapshotSource changed = a_and_b_;
  kb::testing::WriteBytes(dir_.Sub("c.bin"), "a new small file");
  changed.catalog_files.push_back(kb::testing::Src("c.bin", dir_.Sub("c.bin")));
  auto hooked = Hooked();
  auto lost = hooked->CreateSnapshot(changed, {});
  EXPECT_EQ(lost.status().code(), Code::kUnavailable) << lost.status().ToString();
  EXPECT_TRUE(r_.store->Keys("snapshots/").empty());
  EXPECT_TRUE(r_.store->Keys("index/").empty());  // the sweep emptied it; nothing was added
  ExpectIntact();
  // The next backup starts over and succeeds.
  SnapshotManifest s3 = Backup(*r_.repo, changed);
  ExpectIntact();
  ASSERT_TRUE(r_.repo->RestoreFiles(s3, {}, dir_.Sub("out")).ok());
}

TEST_F(PruneTest, ABackupPausedBetweenItsLockCheckAndItsManifestWithdrawsTheManifest) {
  SnapshotManifest s1 = Backup(*r_.repo, a_and_b_);
  ASSERT_TRUE(r_.repo->ForgetSnapshot(s1.id).ok());
  // The pause falls after the last lock check, right before the manifest Put: prune takes the
  // lock for dead, removes it and sweeps the packs the backup reuses. The manifest lands anyway,
  // then the backup sees its lock gone and withdraws it.
  faults_->hook_prefix = "snapshots/";
  faults_->hook = [&](const std::string&) {
    Prune(*r_.repo);
    r_.clock.Advance(2 * 60 * kMinute);
    EXPECT_GT(Prune(*r_.repo).packs_deleted, 0);
  };
  auto hooked = Hooked();
  auto lost = hooked->CreateSnapshot(only_a_, {});
  EXPECT_EQ(lost.status().code(), Code::kUnavailable) << lost.status().ToString();
  EXPECT_TRUE(r_.store->Keys("snapshots/").empty());
  ExpectIntact();
}

TEST_F(PruneTest, AnIndexNamingASweptPackIsNotUsedByTheNextBackup) {
  SnapshotManifest s1 = Backup(*r_.repo, only_a_);
  ASSERT_TRUE(r_.repo->ForgetSnapshot(s1.id).ok());
  // The pathological pause: after its lock check and before its index Put, so the index object
  // lands naming packs the sweep deleted. The backup then fails; its index object stays.
  faults_->hook_prefix = "index/";
  faults_->hook = [&](const std::string&) {
    Prune(*r_.repo);
    r_.clock.Advance(2 * 60 * kMinute);
    Prune(*r_.repo);
  };
  SnapshotSource changed = a_and_b_;
  auto hooked = Hooked();
  EXPECT_EQ(hooked->CreateSnapshot(changed, {}).status().code(), Code::kUnavailable);
  auto check = r_.repo->Check(false);
  EXPECT_TRUE(check->problems.empty() ||
              check->problems[0].find("which does not exist") != std::string::npos)
      << kb::testing::Joined(check->problems);
  // The next backup does not deduplicate against packs that are gone.
  SnapshotManifest s3 = Backup(*r_.repo, changed);
  VerifyOptions all;
  all.data = VerifyOptions::Data::kAll;
  auto reports = r_.repo->Verify({s3.id}, all);
  ASSERT_TRUE(reports.ok());
  EXPECT_TRUE((*reports)[0].ok) << kb::testing::Joined((*reports)[0].problems);
  ASSERT_TRUE(r_.repo->RestoreFiles(s3, {}, dir_.Sub("out")).ok());
}

TEST_F(PruneTest, AnUnreadableIndexStopsPruneBeforeItDeletesAnything) {
  SnapshotManifest s1 = Backup(*r_.repo, only_a_);
  SnapshotManifest s2 = Backup(*r_.repo, a_and_b_);
  ASSERT_TRUE(r_.repo->ForgetSnapshot(s2.id).ok());
  Prune(*r_.repo);
  r_.clock.Advance(2 * 60 * kMinute);
  r_.store->FlipByte(r_.store->Keys("index/")[0], 10);
  auto before = Packs();
  auto refused = r_.repo->Prune({});
  EXPECT_EQ(refused.status().code(), Code::kCorruption);
  EXPECT_NE(refused.status().message().find("repo check"), std::string::npos);
  EXPECT_EQ(Packs(), before);
}

TEST_F(PruneTest, PacksOfAKilledBackupThatNoIndexNamesArePruned) {
  Backup(*r_.repo, only_a_);
  std::set<std::string> kept = Packs();
  // A backup dies after uploading packs but before any index object.
  faults_->crash_after_puts = 2;  // its lock and one pack
  auto hooked = Hooked();
  ASSERT_FALSE(hooked->CreateSnapshot(a_and_b_, {}).ok());
  faults_->Reset();
  ASSERT_GT(Packs().size(), kept.size());
  auto check = r_.repo->Check(false);
  EXPECT_TRUE(check->ok) << kb::testing::Joined(check->problems);
  EXPECT_GE(check->unreferenced_packs, 1);
  PruneOptions o;
  o.stale_lock_ms = 30 * kMinute;
  Prune(*r_.repo, o);
  r_.clock.Advance(2 * 60 * kMinute);  // the dead backup's lock is stale now
  PruneReport sweep = Prune(*r_.repo, o);
  EXPECT_EQ(sweep.stale_locks_removed, 1);
  EXPECT_EQ(Packs(), kept);
  ExpectIntact();
}

TEST_F(PruneTest, OptionsBelowTheClockSkewAreRefused) {
  PruneOptions o;
  o.grace_ms = kMinute;
  EXPECT_EQ(r_.repo->Prune(o).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace kb::repo
