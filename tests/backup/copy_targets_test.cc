// The server's copies into second repositories (backup/copy_targets.h) on real local
// repositories: each destination gets what it lacks, keeps its own retention when it has one
// (the primary's is untouched), and reports its lag.
#include "backup/copy_targets.h"

#include <gtest/gtest.h>

#include "backup/source.h"
#include "backup_test_util.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "repo/retention.h"
#include "service/knowledge_base.h"
#include "test_util.h"

namespace kb::backup {
namespace {

using kb::testing::TempDir;
using kb::testing::WriteTestFile;

class CopyTargetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    primary_ = InitRepo("primary", "primary passphrase");
    dest_key_file_ = dir_.Sub("dest.key");
    WriteTestFile(dest_key_file_, std::string(64, 'd') + "\n");
    repo::KeySource dest_key;
    dest_key.key_file = dest_key_file_;
    ASSERT_NE(InitRepoWithKey("dest", dest_key), nullptr);
    kb_ = kb::testing::OpenTestKnowledgeBase(dir_.Sub("data"), &clock_);
    ASSERT_NE(kb_, nullptr);
    CreateProjectRequest req;
    req.name = "p";
    ASSERT_TRUE(kb_->CreateProject(req, Actor{}).ok());
  }

  std::unique_ptr<repo::Repository> InitRepoWithKey(const std::string& name,
                                                    const repo::KeySource& key) {
    return kb::testing::InitLocalTestRepository(dir_.Sub(name), key, &clock_);
  }
  std::unique_ptr<repo::Repository> InitRepo(const std::string& name, const std::string& pass) {
    repo::KeySource key;
    key.passphrase = pass;
    return InitRepoWithKey(name, key);
  }

  // A document, then a full backup into the primary, an hour after the previous one.
  void BackupAnHourLater(int n) {
    clock_.Advance(3'600'000);
    IngestRequest doc;
    doc.content = "# Note " + std::to_string(n) + "\n\nHerons wade in river " + std::to_string(n);
    doc.filename = "note-" + std::to_string(n) + ".md";
    ASSERT_TRUE(kb_->Ingest("p", doc, Actor{}).ok());
    auto m =
        BackupDataDirectory(*primary_, dir_.Sub("data"), SourceOptions{}, repo::BackupOptions{});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
  }

  CopyTarget Dest(std::optional<repo::RetentionPolicy> retention) {
    CopyTarget t;
    t.url = "file://" + dir_.Sub("dest");
    t.key.key_file = dest_key_file_;
    t.retention = std::move(retention);
    return t;
  }

  size_t Snapshots(const std::string& name, const repo::KeySource& key) {
    auto repo = repo::OpenRepository("file://" + dir_.Sub(name), key, {}, &clock_);
    EXPECT_TRUE(repo.ok()) << repo.status().ToString();
    auto list = (*repo)->ListSnapshots();
    EXPECT_TRUE(list.ok());
    return list.ok() ? list->size() : 0;
  }

  ManualClock clock_{1'790'000'000'000};
  TempDir dir_;
  std::string dest_key_file_;
  std::unique_ptr<repo::Repository> primary_;
  std::unique_ptr<KnowledgeBase> kb_;
};

TEST_F(CopyTargetsTest, ADestinationWithItsOwnRetentionKeepsThatAndThePrimaryKeepsAll) {
  repo::RetentionPolicy keep_one;
  keep_one.keep_last = 1;
  repo::RetentionPolicy keep_all;
  keep_all.keep_last = 100;
  CopyTargets copies({Dest(keep_one)}, {}, &clock_, keep_all, repo::PruneOptions{}, {});
  for (int i = 0; i < 3; ++i) {
    BackupAnHourLater(i);
    copies.CopyNew(*primary_);
  }
  repo::KeySource dest_key;
  dest_key.key_file = dest_key_file_;
  repo::KeySource primary_key;
  primary_key.passphrase = "primary passphrase";
  EXPECT_EQ(Snapshots("dest", dest_key), 1u);
  EXPECT_EQ(Snapshots("primary", primary_key), 3u);
  const std::vector<CopyTargetStatus> figures = copies.Figures();
  ASSERT_EQ(figures.size(), 1u);
  EXPECT_EQ(figures[0].copied, 3);
  EXPECT_EQ(figures[0].failures, 0) << figures[0].last_error;
  EXPECT_TRUE(figures[0].lag_known);
  EXPECT_EQ(figures[0].lag_seconds, 0);
}

TEST_F(CopyTargetsTest, WithoutItsOwnRetentionADestinationKeepsWhatTheServiceKeeps) {
  repo::RetentionPolicy keep_two;
  keep_two.keep_last = 2;
  CopyTargets copies({Dest(std::nullopt)}, {}, &clock_, keep_two, repo::PruneOptions{}, {});
  for (int i = 0; i < 3; ++i) {
    BackupAnHourLater(i);
    copies.CopyNew(*primary_);
  }
  repo::KeySource dest_key;
  dest_key.key_file = dest_key_file_;
  EXPECT_EQ(Snapshots("dest", dest_key), 2u);
}

}  // namespace
}  // namespace kb::backup
