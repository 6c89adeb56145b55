// Backups to a real S3-compatible server (s3rver on loopback) through a fault-injecting proxy:
// transient errors and resets mid-upload are retried and the backup succeeds; a failure that
// outlasts the retries leaves no snapshot and a repository that checks clean, and the next
// backup succeeds reusing what was uploaded; 403 and a missing bucket fail fast and clearly.
#include <gtest/gtest.h>

#include "fault_proxy.h"
#include "repo/repository.h"
#include "repository_test_util.h"
#include "s3rver_fixture.h"

namespace kb::testing {
namespace {

class S3BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    server_ = SharedS3rver(&error);
    ASSERT_NE(server_, nullptr) << error;
    proxy_ = std::make_unique<FaultProxy>(server_->port());
    ASSERT_TRUE(proxy_->Start().ok());
    tree_ = MakeSourceTree(dir_.Sub("src"), 1500);
    prefix_ = UniqueTestPrefix();
  }

  blob::BlobStoreOptions Options() const {
    blob::BlobStoreOptions o;
    o.s3 = server_->Options();
    o.s3.endpoint = proxy_->endpoint();
    o.s3.max_attempts = 4;
    o.s3.backoff_initial_ms = 5;
    o.s3.backoff_max_ms = 20;
    o.s3.request_timeout_ms = 3'000;
    o.s3.operation_deadline_ms = 10'000;
    o.s3.multipart_threshold = 512 * 1024;  // packs (1 MiB in tests) go multipart
    o.s3.multipart_part_size = 256 * 1024;
    return o;
  }
  std::string Url() const { return std::string("s3://") + kS3rverBucket + "/" + prefix_; }

  std::unique_ptr<repo::Repository> Init() {
    auto store = blob::OpenBlobStore(Url(), Options());
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    auto repo =
        repo::Repository::Init(std::move(store).value(), Passphrase(), "s3 test", TestParams());
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    return repo.ok() ? std::move(repo).value() : nullptr;
  }
  std::unique_ptr<repo::Repository> Open() {
    auto repo = repo::OpenRepository(Url(), Passphrase(), Options());
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    return repo.ok() ? std::move(repo).value() : nullptr;
  }
  void ExpectClean(repo::Repository& repo) {
    auto check = repo.Check(/*read_data=*/true);
    ASSERT_TRUE(check.ok()) << check.status().ToString();
    EXPECT_TRUE(check->ok) << ::testing::PrintToString(check->problems);
  }
  int CountFaults(const std::string& fault) {
    int n = 0;
    for (const auto& r : proxy_->requests()) n += r.fault == fault;
    return n;
  }

  S3rverProcess* server_ = nullptr;
  std::unique_ptr<FaultProxy> proxy_;
  TempDir dir_;
  SourceTree tree_;
  std::string prefix_;
};

TEST_F(S3BackupTest, TransientErrorsAndResetsAreRetriedAndTheBackupRestoresExactly) {
  auto repo = Init();
  ASSERT_NE(repo, nullptr);
  proxy_->FailNext(2, 503, "SlowDown", "/data/");
  proxy_->FailNext(1, 500, "InternalError", "/index/");
  proxy_->DelayNext(2, 200, "/data/");
  proxy_->ResetNext(1, 100'000, "/data/");
  auto snap = repo->CreateSnapshot(tree_.source, repo::BackupOptions{});
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(CountFaults("error 503"), 2);
  EXPECT_EQ(CountFaults("error 500"), 1);
  EXPECT_EQ(CountFaults("reset"), 1);
  proxy_->ClearFaults();
  ExpectClean(*repo);
  // A fresh client reads it back byte for byte.
  auto reopened = Open();
  ASSERT_NE(reopened, nullptr);
  auto m = reopened->ReadSnapshot(snap->id);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(reopened->RestoreFiles(*m, {}, dir_.Sub("out")).ok());
  EXPECT_EQ(ReadBytes(dir_.Sub("out/catalog.db")), ReadBytes(tree_.CatalogPath()));
  EXPECT_EQ(ReadBytes(dir_.Sub("out/projects/p-alpha/kb.db")),
            ReadBytes(tree_.ProjectPath("p-alpha", "kb.db")));
  EXPECT_EQ(ReadBytes(dir_.Sub("out/projects/p-alpha/index/graph-1.hnsw")),
            ReadBytes(tree_.ProjectPath("p-alpha", "index/graph-1.hnsw")));
}

TEST_F(S3BackupTest, AFailureBeyondTheRetriesLeavesNoSnapshotAndTheNextBackupReusesTheUpload) {
  auto repo = Init();
  ASSERT_NE(repo, nullptr);
  // The manifest can never be written: everything else is uploaded first.
  proxy_->FailNext(1000, 503, "ServiceUnavailable", "/snapshots/");
  auto failed = repo->CreateSnapshot(tree_.source, repo::BackupOptions{});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Code::kUnavailable) << failed.status().ToString();
  proxy_->ClearFaults();
  auto list = repo->ListSnapshots();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());  // nothing visible
  ExpectClean(*repo);

  auto second = Open()->CreateSnapshot(tree_.source, repo::BackupOptions{});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->stats.new_chunks, 0) << "the packs of the failed run are reused";
  ExpectClean(*repo);
  repo::VerifyOptions read_all;
  read_all.data = repo::VerifyOptions::Data::kAll;
  auto reports = repo->Verify({second->id}, read_all);
  ASSERT_TRUE(reports.ok());
  EXPECT_TRUE(reports->at(0).ok) << ::testing::PrintToString(reports->at(0).problems);
}

TEST_F(S3BackupTest, ResetsOnEveryAttemptFailCleanlyAndNothingIsVisible) {
  auto repo = Init();
  ASSERT_NE(repo, nullptr);
  proxy_->ResetNext(1000, 10'000, "/data/");
  auto failed = repo->CreateSnapshot(tree_.source, repo::BackupOptions{});
  ASSERT_FALSE(failed.ok());
  proxy_->ClearFaults();
  EXPECT_TRUE(repo->ListSnapshots()->empty());
  ExpectClean(*repo);
  auto ok = repo->CreateSnapshot(tree_.source, repo::BackupOptions{});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  ExpectClean(*repo);
}

TEST_F(S3BackupTest, AccessDeniedFailsFastWithOneAttempt) {
  auto repo = Init();
  ASSERT_NE(repo, nullptr);
  proxy_->ClearRequests();
  proxy_->FailNext(1000, 403, "AccessDenied", "/data/");
  auto failed = repo->CreateSnapshot(tree_.source, repo::BackupOptions{});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Code::kPermissionDenied) << failed.status().ToString();
  EXPECT_NE(failed.status().message().find("AccessDenied"), std::string::npos);
  EXPECT_EQ(CountFaults("error 403"), 1);
  EXPECT_EQ(failed.status().message().find(kS3rverSecretKey + std::string("\n")),
            std::string::npos);
}

TEST_F(S3BackupTest, AMissingBucketIsAClearError) {
  blob::BlobStoreOptions o = Options();
  auto store = blob::OpenBlobStore("s3://no-such-bucket-kb/x", o);
  ASSERT_TRUE(store.ok());
  auto repo = repo::Repository::Init(std::move(store).value(), Passphrase(), "x", TestParams());
  ASSERT_FALSE(repo.ok());
  EXPECT_EQ(repo.status().code(), Code::kFailedPrecondition) << repo.status().ToString();
  EXPECT_NE(repo.status().message().find("no-such-bucket-kb"), std::string::npos);
}

// A second repository on S3 (repo copy / backup_copy_to): the copy goes through the same retried
// uploads as a backup, and an S3 destination restores the source's bytes with its own key.
TEST_F(S3BackupTest, ACopyIntoAnS3RepositoryRidesOutTransientErrorsAndRestoresExactly) {
  MemoryRepo source;
  auto snap = source.repo->CreateSnapshot(tree_.source, repo::BackupOptions{});
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  auto store = blob::OpenBlobStore(Url(), Options());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto dest = repo::Repository::Init(std::move(store).value(), Passphrase("the copy's own key"),
                                     "copy", TestParams());
  ASSERT_TRUE(dest.ok()) << dest.status().ToString();
  proxy_->FailNext(2, 503, "SlowDown", "/data/");
  proxy_->FailNext(1, 500, "InternalError", "/snapshots/");
  auto copied = repo::CopySnapshot(*source.repo, **dest, snap->id);
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_TRUE(copied->copied);
  EXPECT_TRUE(copied->verified);
  EXPECT_GE(CountFaults("error 503"), 2);
  auto reopened = repo::OpenRepository(Url(), Passphrase("the copy's own key"), Options());
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  auto m = (*reopened)->ReadSnapshot(snap->id);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_TRUE((*reopened)->RestoreFiles(*m, {}, dir_.Sub("copy-out")).ok());
  EXPECT_EQ(DirContents(dir_.Sub("copy-out")), ExpectedRestore(tree_));
  ExpectClean(**reopened);
}

}  // namespace
}  // namespace kb::testing
