// The restore test's check of restored databases (restore_check.h), through the engine's
// Verify: a restored copy of a real KnowledgeBase passes, and a manifest that claims another
// state of the project (content checksum, journal LSN) is caught.
#include "backup/restore_check.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "backup/source.h"
#include "service/knowledge_base.h"
#include "repo/repository_format.h"
#include "repository_test_util.h"

namespace kb::backup {
namespace {

namespace fs = std::filesystem;
using kb::testing::MemoryRepo;

bool AnyContains(const std::vector<std::string>& problems, const std::string& needle) {
  for (const std::string& p : problems) {
    if (p.find(needle) != std::string::npos) return true;
  }
  return false;
}

class RestoreTestVerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KbOptions o;
    o.data_dir = data_dir_;
    o.clock = &clock_;
    o.index_save_interval_ms = 0;
    auto kb = KnowledgeBase::Open(o);
    ASSERT_TRUE(kb.ok()) << kb.status().ToString();
    Actor actor{"tester", "tester"};
    CreateProjectRequest req;
    req.name = "handbook";
    ASSERT_TRUE((*kb)->CreateProject(req, actor).ok());
    for (int i = 0; i < 5; ++i) {
      IngestRequest doc;
      doc.content = "# Note " + std::to_string(i) + "\n\nBackups of note " + std::to_string(i) +
                    " are encrypted and verified.\n";
      doc.filename = "note-" + std::to_string(i) + ".md";
      ASSERT_TRUE((*kb)->Ingest("handbook", doc, actor).ok());
      clock_.Advance(1000);
    }
    (*kb)->Close();
  }

  kb::testing::TempDir dir_;
  std::string data_dir_ = dir_.Sub("data");
  ManualClock clock_{kb::testing::kTestStart};
  MemoryRepo r_;
};

TEST_F(RestoreTestVerifyTest, ARealDataDirectoryPassesAndAWrongChecksumIsCaught) {
  auto prepared = PrepareSnapshotSource(data_dir_, dir_.Sub("staging"));
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  auto m = r_.repo->CreateSnapshot(prepared->source(), {});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  repo::VerifyOptions o;
  o.restore_test = true;
  o.restored_check = CheckRestoredDatabases;
  o.temp_dir = dir_.Sub("tmp");
  fs::create_directories(o.temp_dir);
  auto reports = r_.repo->Verify({m->id}, o);
  ASSERT_TRUE(reports.ok());
  EXPECT_TRUE((*reports)[0].ok) << kb::testing::Joined((*reports)[0].problems);
  EXPECT_TRUE(fs::is_empty(o.temp_dir));  // the restored copy is removed

  // A manifest that claims another state of the project: the restore test must notice.
  auto ctx = kb::testing::OpenTestContext(r_.store.get(), &r_.clock);
  nlohmann::json j = m->ToJson();
  std::string id = "20300101T000000Z-0000000d";
  j["id"] = id;
  j["projects"][0]["content_checksum"] = std::string(64, 'f');
  j["projects"][0]["lsn"] = 999;
  ASSERT_TRUE(ctx->WriteSealedJson(repo::SnapshotKey(id), repo::SnapshotAad(id), j).ok());
  reports = r_.repo->Verify({id}, o);
  ASSERT_TRUE(reports.ok());
  EXPECT_FALSE((*reports)[0].ok);
  EXPECT_TRUE(AnyContains((*reports)[0].problems, "content checksum"));
  EXPECT_TRUE(AnyContains((*reports)[0].problems, "journal LSN"));
}

}  // namespace
}  // namespace kb::backup
