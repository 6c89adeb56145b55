// Copies into a second repository (CopySnapshot; docs/format/BACKUP_REPOSITORY.md, "Copy") and
// incomplete snapshots (a manifest whose packs or index objects are absent): the copy restores
// the same bytes under the same id with the destination's own keys, is idempotent, deduplicates
// against what the destination holds, and a copy interrupted after any write leaves no visible
// snapshot. A snapshot missing objects is reported as incomplete, distinct from corruption.
#include <gtest/gtest.h>

#include <filesystem>

#include "blob/blob_store.h"
#include "faulty_blob_store.h"
#include "repo/repository.h"
#include "repository_test_util.h"

namespace kb::repo {
namespace {

namespace fs = std::filesystem;
using kb::testing::Faults;
using kb::testing::FaultyBlobStore;
using kb::testing::MemoryBlobStore;
using kb::testing::MemoryRepo;

constexpr char kOtherPassphrase[] = "a different passphrase for the second repository";

std::unique_ptr<Repository> InitOn(std::unique_ptr<blob::BlobStore> store, const Clock* clock,
                                   const RepositoryParams& params = kb::testing::TestParams()) {
  auto r = Repository::Init(std::move(store), kb::testing::Passphrase(kOtherPassphrase), "b",
                            params, clock);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

class CopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = kb::testing::MakeSourceTree(dir_.Sub("src"), 400);
    BackupOptions bo;
    bo.trigger = "schedule";
    bo.tags = {"nightly"};
    auto m = a_.repo->CreateSnapshot(tree_.source, bo);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    first_ = *m;
    b_ = InitOn(b_store_.Handle(), &a_.clock);
    ASSERT_TRUE(b_ != nullptr);
  }

  std::map<std::string, std::string> Restored(Repository& r, const std::string& id,
                                              const std::string& name) {
    auto m = r.ReadSnapshot(id);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    if (!m.ok()) return {};
    Status s = r.RestoreFiles(*m, {}, dir_.Sub(name));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return kb::testing::DirContents(dir_.Sub(name));
  }

  kb::testing::TempDir dir_;
  MemoryRepo a_;
  MemoryBlobStore b_store_;
  std::unique_ptr<Repository> b_;
  kb::testing::SourceTree tree_;
  SnapshotManifest first_;
};

TEST_F(CopyTest, TheCopyIsTheSameSnapshotReKeyedAndRestoresTheSameBytes) {
  auto copied = CopySnapshot(*a_.repo, *b_, first_.id);
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_TRUE(copied->copied);
  EXPECT_TRUE(copied->verified);

  auto m = b_->ReadSnapshot(first_.id);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->time, first_.time);
  EXPECT_EQ(m->finished, first_.finished);
  EXPECT_EQ(m->trigger, "schedule");
  EXPECT_EQ(m->tags, first_.tags);
  EXPECT_EQ(m->scope, first_.scope);
  EXPECT_EQ(m->copied_from.repository, a_.repo->id());
  EXPECT_TRUE(first_.copied_from.repository.empty());
  ASSERT_EQ(m->projects.size(), first_.projects.size());
  for (size_t i = 0; i < m->projects.size(); ++i) {
    EXPECT_EQ(m->projects[i].id, first_.projects[i].id);
    EXPECT_EQ(m->projects[i].lsn, first_.projects[i].lsn);
    EXPECT_EQ(m->projects[i].content_checksum, first_.projects[i].content_checksum);
    EXPECT_EQ(m->projects[i].counts, first_.projects[i].counts);
    EXPECT_EQ(m->projects[i].index_lsn, first_.projects[i].index_lsn);
    EXPECT_EQ(m->projects[i].catalog_row, first_.projects[i].catalog_row);
  }
  // Chunk ids are keyed with each repository's own key: the same bytes get other tree ids.
  ASSERT_FALSE(m->catalog_files.empty());
  EXPECT_NE(m->catalog_files[0].trees, first_.catalog_files[0].trees);
  EXPECT_EQ(m->catalog_files[0].size, first_.catalog_files[0].size);

  EXPECT_EQ(Restored(*b_, first_.id, "from-b"), kb::testing::ExpectedRestore(tree_));
  // B has its own master key: A's passphrase does not open it, and B's verify record says so.
  auto with_a_key = Repository::Open(b_store_.Handle(), kb::testing::Passphrase(), &a_.clock);
  EXPECT_EQ(with_a_key.status().code(), Code::kUnauthenticated);
  auto listed = b_->ListSnapshots();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_FALSE(listed->front().verified.empty());
  auto check = b_->Check(true);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << kb::testing::Joined(check->problems);
}

TEST_F(CopyTest, CopyingASnapshotTheDestinationHoldsWritesNothing) {
  ASSERT_TRUE(CopySnapshot(*a_.repo, *b_, first_.id).ok());
  const auto before = b_store_.Snapshot();
  auto again = CopySnapshot(*a_.repo, *b_, first_.id);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->copied);
  EXPECT_EQ(b_store_.Snapshot(), before);
}

TEST_F(CopyTest, ASecondSimilarSnapshotAddsLittleToTheDestination) {
  auto one = CopySnapshot(*a_.repo, *b_, first_.id);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  kb::testing::UpdateSqliteRows(tree_.ProjectPath("p-alpha", "kb.db"), {3, 200}, 77);
  a_.clock.Advance(3'600'000);
  auto second = a_.repo->CreateSnapshot(tree_.source, {});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  auto two = CopySnapshot(*a_.repo, *b_, second->id);
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_TRUE(two->copied);
  // Two rows changed: a few pages (+ trees) are new in B, against the whole tree the first time.
  EXPECT_GT(one->stats.added_bytes, 0);
  EXPECT_LT(two->stats.added_bytes * 20, one->stats.added_bytes)
      << "first copy added " << one->stats.added_bytes << ", second " << two->stats.added_bytes;
  EXPECT_LE(two->stats.added_bytes, second->stats.added_bytes * 2);
  EXPECT_EQ(Restored(*b_, second->id, "second"), kb::testing::ExpectedRestore(tree_));
}

TEST_F(CopyTest, ADestinationWithAnotherChunkSizeGetsTheSameBytes) {
  RepositoryParams params = kb::testing::TestParams();
  params.chunk_size = 8192;
  params.tree_fanout = 32;
  MemoryBlobStore store;
  auto c = InitOn(store.Handle(), &a_.clock, params);
  ASSERT_TRUE(c != nullptr);
  auto copied = CopySnapshot(*a_.repo, *c, first_.id);
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(Restored(*c, first_.id, "from-c"), kb::testing::ExpectedRestore(tree_));
}

TEST_F(CopyTest, AnUnknownSnapshotOrTheSameRepositoryIsRefused) {
  EXPECT_EQ(CopySnapshot(*a_.repo, *b_, "20200101T000000Z-00000000").status().code(),
            Code::kNotFound);
  EXPECT_EQ(CopySnapshot(*a_.repo, *b_, "../config").status().code(), Code::kInvalidArgument);
  auto same = a_.Reopen();
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(CopySnapshot(*a_.repo, **same, first_.id).status().code(), Code::kInvalidArgument);
}

TEST_F(CopyTest, ACopyInterruptedAfterAnyWriteLeavesNoVisibleSnapshot) {
  // A clean run into a faulty-wrapped destination counts the writes up to the manifest.
  auto run = [&](int64_t crash_after, std::vector<std::string>* log) {
    MemoryBlobStore store;
    auto faults = std::make_shared<Faults>();
    auto dest = InitOn(std::make_unique<FaultyBlobStore>(store.Handle(), faults), &a_.clock);
    EXPECT_TRUE(dest != nullptr);
    faults->Reset();
    faults->crash_after_puts = crash_after;
    auto copied = CopySnapshot(*a_.repo, *dest, first_.id);
    if (log != nullptr) *log = faults->log;
    // Whatever happened, the destination opened without faults shows a snapshot only if the
    // copy succeeded, and it always checks clean.
    auto reopened =
        Repository::Open(store.Handle(), kb::testing::Passphrase(kOtherPassphrase), &a_.clock);
    EXPECT_TRUE(reopened.ok());
    auto ids = (*reopened)->ListSnapshotIds();
    EXPECT_TRUE(ids.ok());
    EXPECT_EQ(ids->size(), copied.ok() ? 1u : 0u);
    auto check = (*reopened)->Check(false);
    EXPECT_TRUE(check.ok() && check->ok) << kb::testing::Joined(check->problems);
    if (!copied.ok()) {  // and the next copy (no faults) completes, reusing what was written
      auto retry = CopySnapshot(*a_.repo, **reopened, first_.id);
      EXPECT_TRUE(retry.ok()) << retry.status().ToString();
      EXPECT_EQ(Restored(**reopened, first_.id, "retry-" + std::to_string(crash_after)),
                kb::testing::ExpectedRestore(tree_));
    }
    return copied.ok();
  };
  std::vector<std::string> log;
  ASSERT_TRUE(run(-1, &log));
  int64_t manifest_at = -1;
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i].rfind("put snapshots/", 0) == 0) manifest_at = static_cast<int64_t>(i);
  }
  ASSERT_GE(manifest_at, 3) << kb::testing::Joined(log);  // lock, packs, index, then manifest
  for (int64_t n = 0; n <= manifest_at; ++n) {
    SCOPED_TRACE("crash after " + std::to_string(n) + " puts");
    EXPECT_FALSE(run(n, nullptr));
  }
}

TEST_F(CopyTest, ACopyThatFailsVerificationIsWithdrawn) {
  // Packs read back from the destination come back damaged (a bad disk, a broken proxy): the
  // copy's own verification must catch it, and no snapshot may stay visible there.
  MemoryBlobStore store;
  auto faults = std::make_shared<Faults>();
  auto dest = InitOn(std::make_unique<FaultyBlobStore>(store.Handle(), faults), &a_.clock);
  ASSERT_TRUE(dest != nullptr);
  faults->corrupt_prefix = "data/";
  auto copied = CopySnapshot(*a_.repo, *dest, first_.id);
  ASSERT_EQ(copied.status().code(), Code::kCorruption) << copied.status().ToString();
  EXPECT_NE(copied.status().message().find("failed verification"), std::string::npos);
  EXPECT_NE(copied.status().message().find("withdrawn"), std::string::npos);
  auto ids = dest->ListSnapshotIds();
  ASSERT_TRUE(ids.ok());
  EXPECT_TRUE(ids->empty());
  // Without the fault the same copy succeeds (and CopySnapshot did not take the withdrawn
  // copy for one that is present).
  faults->corrupt_prefix.clear();
  auto retry = CopySnapshot(*a_.repo, *dest, first_.id);
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_TRUE(retry->copied);
}

// --- incomplete snapshots: a manifest whose objects have not (all) arrived -------------------

class IncompleteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = kb::testing::MakeSourceTree(dir_.Sub("src"), 300);
    auto store = blob::OpenBlobStore("file://" + dir_.Sub("repo"), {}, /*create=*/true);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto r = Repository::Init(std::move(store).value(), kb::testing::Passphrase(), "k",
                              kb::testing::TestParams());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    repo_ = std::move(r).value();
    auto m = repo_->CreateSnapshot(tree_.source, {});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    m_ = *m;
  }

  std::vector<fs::path> Files(const std::string& sub) {
    std::vector<fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_.Sub("repo/" + sub))) {
      if (e.is_regular_file()) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  Status Restore() { return repo_->RestoreFiles(m_, {}, dir_.Sub("out")); }

  kb::testing::TempDir dir_;
  kb::testing::SourceTree tree_;
  std::unique_ptr<Repository> repo_;
  SnapshotManifest m_;
};

TEST_F(IncompleteTest, AMissingPackIsAnIncompleteSnapshotNotCorruption) {
  auto packs = Files("data");
  ASSERT_GE(packs.size(), 1u);
  fs::remove(packs.back());
  Status s = Restore();
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("incomplete snapshot " + m_.id + ": 1 objects missing"),
            std::string::npos)
      << s.ToString();
  EXPECT_NE(s.message().find("replication"), std::string::npos);
  EXPECT_TRUE(kb::testing::DirIsEmptyOrAbsent(dir_.Sub("out")));

  auto reports = repo_->Verify({m_.id}, {});
  ASSERT_TRUE(reports.ok()) << reports.status().ToString();
  ASSERT_FALSE(reports->front().ok);
  EXPECT_EQ(reports->front().problems.front().rfind("incomplete snapshot " + m_.id, 0), 0u)
      << kb::testing::Joined(reports->front().problems);
}

TEST_F(IncompleteTest, MissingIndexObjectsAreAnIncompleteSnapshot) {
  for (const fs::path& p : Files("index")) fs::remove(p);
  Status s = Restore();
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("incomplete snapshot"), std::string::npos) << s.ToString();
}

TEST_F(IncompleteTest, ADamagedPackIsStillCorruption) {
  auto packs = Files("data");
  ASSERT_FALSE(packs.empty());
  for (const fs::path& p : packs) {  // flip a byte in the middle of every pack
    std::string bytes = kb::testing::ReadBytes(p.string());
    bytes[bytes.size() / 2] ^= 0x01;
    kb::testing::WriteBytes(p.string(), bytes);
  }
  Status s = Restore();
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_EQ(s.message().find("incomplete"), std::string::npos) << s.ToString();
}

TEST_F(IncompleteTest, CopyingAnIncompleteSnapshotSaysSoAndWritesNoSnapshot) {
  fs::remove(Files("data").front());
  MemoryBlobStore store;
  auto dest = InitOn(store.Handle(), SystemClock::Default());
  ASSERT_TRUE(dest != nullptr);
  auto copied = CopySnapshot(*repo_, *dest, m_.id);
  EXPECT_EQ(copied.status().code(), Code::kUnavailable) << copied.status().ToString();
  EXPECT_NE(copied.status().message().find("incomplete snapshot"), std::string::npos);
  auto ids = dest->ListSnapshotIds();
  ASSERT_TRUE(ids.ok());
  EXPECT_TRUE(ids->empty());
}

}  // namespace
}  // namespace kb::repo
