// Logical damage: a live database whose pages SQLite still opens but whose content is wrong.
// A backup copies such a state faithfully (every repository byte then verifies), so two things
// must catch it: the backup's source check, which marks the snapshot, and the restore's check
// of the restored databases. `--latest-valid` (whole and per project) must walk back past both
// kinds of snapshot to the newest one whose data is sound, naming each one it passed by.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "backup/restore.h"
#include "backup/source.h"
#include "backup_test_util.h"
#include "common/clock.h"
#include "common/data_layout.h"
#include "common/file_util.h"
#include "service/knowledge_base.h"
#include "test_util.h"

namespace kb::backup {
namespace {

namespace fs = std::filesystem;
using kb::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kMarker[] = "MARKERWORDQQQ";  // appears once in a chunk's text

class LogicalDamageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_.passphrase = "logical damage test";
    repo_ = kb::testing::InitLocalTestRepository(dir_.Sub("repo"), key_, &clock_);
    ASSERT_NE(repo_, nullptr);
    kb_ = OpenKbAt(data_);
    ASSERT_NE(kb_, nullptr);
    for (const char* name : {"damaged", "sound"}) {
      CreateProjectRequest req;
      req.name = name;
      ASSERT_TRUE(kb_->CreateProject(req, Actor{}).ok());
    }
    Put("damaged", "a.md", std::string("# A\n\nHerons nest in ") + kMarker + " colonies.");
    Put("damaged", "b.md", "# B\n\nBadgers dig setts.");
    Put("sound", "c.md", "# C\n\nOtters hold their breath.");
  }

  std::unique_ptr<KnowledgeBase> OpenKbAt(const std::string& data_dir) {
    return kb::testing::OpenTestKnowledgeBase(data_dir, &clock_);
  }

  void Put(const std::string& project, const std::string& source, const std::string& text) {
    IngestRequest req;
    req.content = text;
    req.filename = source;
    auto r = kb_->Ingest(project, req, Actor{"test", "test"});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  repo::SnapshotManifest Snapshot(SourceCheckLevel level = SourceCheckLevel::kFull) {
    clock_.Advance(60'000);
    SourceOptions so;
    so.source_check = level;
    auto prepared = PrepareSnapshotSource(data_, dir_.Sub("staging"), so);
    EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
    if (!prepared.ok()) return {};
    auto m = repo_->CreateSnapshot(prepared->source(), repo::BackupOptions{});
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : repo::SnapshotManifest{};
  }

  std::string DamagedDb() {
    auto p = kb_->GetProject("damaged");
    EXPECT_TRUE(p.ok());
    return layout::ProjectDb(data_, p.ok() ? p->id : "");
  }

  // Closes the knowledge base (its last connection checkpoints the WAL into the file) and
  // replaces every occurrence of the marker in the database file: the pages stay well-formed,
  // the text of a row changes behind the store's back.
  void AlterMarkerText() {
    const std::string db = DamagedDb();
    kb_.reset();
    ASSERT_FALSE(PathExists(db + "-wal") && fs::file_size(db + "-wal") > 0);
    std::string bytes = ReadAll(db);
    size_t found = 0;
    for (size_t at = bytes.find(kMarker); at != std::string::npos; at = bytes.find(kMarker, at)) {
      bytes.replace(at, sizeof(kMarker) - 1, "MARKERWORDZZZ");
      ++found;
    }
    ASSERT_GT(found, 0u);
    WriteAll(db, bytes);
  }

  static std::string ReadAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void WriteAll(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  static const repo::ProjectSnapshot& Project(const repo::SnapshotManifest& m,
                                              const std::string& name) {
    auto p = FindProject(m, name);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return **p;
  }

  ManualClock clock_{1'790'000'000'000};
  TempDir dir_;
  const std::string data_ = dir_.Sub("data");
  repo::KeySource key_;
  std::unique_ptr<repo::Repository> repo_;
  std::unique_ptr<KnowledgeBase> kb_;
};

TEST_F(LogicalDamageTest, ASoundSourcePassesEveryCheckAndTheManifestSaysWhichRan) {
  repo::SnapshotManifest m = Snapshot();
  for (const char* name : {"damaged", "sound"}) {
    const repo::SourceCheck& c = Project(m, name).source_check;
    EXPECT_EQ(c.result, "passed") << name;
    EXPECT_THAT(c.checks, ElementsAre("journal", "counts", "content_checksum", "quick_check"));
    EXPECT_THAT(c.problems, ElementsAre());
  }
  EXPECT_THAT(SourceCheckFailures(m), ElementsAre());
  // Read back from the repository, not only as written.
  auto read = repo_->ReadSnapshot(m.id);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(Project(*read, "sound").source_check.result, "passed");

  repo::SnapshotManifest unchecked = Snapshot(SourceCheckLevel::kOff);
  EXPECT_FALSE(Project(unchecked, "damaged").source_check.recorded());
  repo::SnapshotManifest cheaper = Snapshot(SourceCheckLevel::kChecksum);
  EXPECT_THAT(Project(cheaper, "damaged").source_check.checks,
              ElementsAre("journal", "counts", "content_checksum"));
}

TEST_F(LogicalDamageTest, ADamagedSourceIsStoredMarkedAndNamed) {
  AlterMarkerText();
  repo::SnapshotManifest m = Snapshot();
  ASSERT_FALSE(m.id.empty()) << "the damaged state must still be backed up";
  const repo::SourceCheck& bad = Project(m, "damaged").source_check;
  EXPECT_EQ(bad.result, "failed");
  EXPECT_THAT(bad.problems, ElementsAre(HasSubstr("content_checksum: recomputed from the rows")));
  EXPECT_EQ(Project(m, "sound").source_check.result, "passed");
  EXPECT_THAT(SourceCheckFailures(m), ElementsAre(HasSubstr("project damaged (")));
  auto listed = repo_->ListSnapshots();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(listed->back().source_check_failed, ElementsAre("damaged"));
  // Its bytes are what the disk held: the repository verifies it as sound.
  repo::VerifyOptions vo;
  vo.data = repo::VerifyOptions::Data::kAll;
  auto reports = repo_->Verify({m.id}, vo);
  ASSERT_TRUE(reports.ok());
  EXPECT_TRUE(reports->front().ok);
}

TEST_F(LogicalDamageTest, ABrokenPageIsAFindingNotAFailedBackup) {
  const std::string db = DamagedDb();
  kb_.reset();
  // Scribble over the b-tree page header of the page holding the marker: SQLite still opens
  // the file, but reading that page's rows reports it corrupt.
  std::string bytes = ReadAll(db);
  const size_t at = bytes.find(kMarker);
  ASSERT_NE(at, std::string::npos);
  const size_t page_size = 4096;
  const size_t page_start = at / page_size * page_size;
  ASSERT_GT(page_start, 0u);
  for (size_t i = 0; i < 8; ++i) bytes[page_start + i] = static_cast<char>(0xEE);
  WriteAll(db, bytes);

  repo::SnapshotManifest m = Snapshot();
  ASSERT_FALSE(m.id.empty());
  const repo::SourceCheck& bad = Project(m, "damaged").source_check;
  EXPECT_EQ(bad.result, "failed");
  ASSERT_FALSE(bad.problems.empty());
  EXPECT_THAT(bad.problems.back(), HasSubstr("quick_check"));
}

TEST_F(LogicalDamageTest, LatestValidWalksBackPastAMarkedSnapshotWithoutReadingIt) {
  repo::SnapshotManifest good = Snapshot();
  AlterMarkerText();
  repo::SnapshotManifest marked = Snapshot();
  ASSERT_EQ(Project(marked, "damaged").source_check.result, "failed");

  SnapshotSelector latest_valid;
  latest_valid.latest_valid = true;
  latest_valid.need_full = true;
  Selection chosen;
  const std::string target = dir_.Sub("restored");
  auto report = RestoreDataDirectoryFrom(*repo_, latest_valid, target, &clock_, {}, &chosen);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->snapshot_id, good.id);
  ASSERT_EQ(chosen.skipped.size(), 1u);
  EXPECT_EQ(chosen.skipped[0].id, marked.id);
  EXPECT_THAT(chosen.skipped[0].reason, HasSubstr("source check failed"));
  EXPECT_THAT(chosen.skipped[0].reason, HasSubstr("project damaged"));

  auto restored = OpenKbAt(target);
  ASSERT_NE(restored, nullptr);
  QueryRequest q;
  q.text = kMarker;
  auto hits = restored->Query("damaged", q);
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  EXPECT_FALSE(hits->hits.empty()) << "the restored text is the sound one";
}

// A snapshot whose backup did not check its source (an older binary, or backup_source_check
// off): only the restore's own check of the restored databases can see the damage.
TEST_F(LogicalDamageTest, LatestValidWalksBackPastARestoreThatFailsItsCheck) {
  repo::SnapshotManifest good = Snapshot();
  AlterMarkerText();
  repo::SnapshotManifest unchecked = Snapshot(SourceCheckLevel::kOff);

  // Without --latest-valid: the newest is tried, fails its check, and nothing is left behind.
  SnapshotSelector latest;
  latest.need_full = true;
  const std::string target = dir_.Sub("restored");
  auto plain = RestoreDataDirectoryFrom(*repo_, latest, target, &clock_, {}, nullptr);
  EXPECT_EQ(plain.status().code(), Code::kCorruption);
  EXPECT_THAT(plain.status().message(), HasSubstr("content checksum"));
  EXPECT_FALSE(PathExists(target));

  SnapshotSelector latest_valid = latest;
  latest_valid.latest_valid = true;
  Selection chosen;
  auto report = RestoreDataDirectoryFrom(*repo_, latest_valid, target, &clock_, {}, &chosen);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->snapshot_id, good.id);
  ASSERT_EQ(chosen.skipped.size(), 1u);
  EXPECT_EQ(chosen.skipped[0].id, unchecked.id);
  EXPECT_THAT(chosen.skipped[0].reason, HasSubstr("failed verification"));
}

TEST_F(LogicalDamageTest, WithNothingValidLeftTheErrorNamesEverySnapshotSkipped) {
  AlterMarkerText();
  repo::SnapshotManifest marked = Snapshot();
  repo::SnapshotManifest unchecked = Snapshot(SourceCheckLevel::kOff);
  SnapshotSelector latest_valid;
  latest_valid.latest_valid = true;
  latest_valid.need_full = true;
  const std::string target = dir_.Sub("restored");
  auto report = RestoreDataDirectoryFrom(*repo_, latest_valid, target, &clock_, {}, nullptr);
  EXPECT_EQ(report.status().code(), Code::kNotFound);
  EXPECT_THAT(report.status().message(), HasSubstr(marked.id));
  EXPECT_THAT(report.status().message(), HasSubstr(unchecked.id));
  EXPECT_FALSE(PathExists(target));
}

TEST_F(LogicalDamageTest, ProjectRestoreWalksBackOnlyForTheDamagedProject) {
  repo::SnapshotManifest good = Snapshot();
  const std::string damaged_db = DamagedDb();
  AlterMarkerText();
  kb_ = OpenKbAt(data_);  // the live data is still the damaged state
  ASSERT_NE(kb_, nullptr);
  repo::SnapshotManifest unchecked = Snapshot(SourceCheckLevel::kOff);
  repo::SnapshotManifest marked = Snapshot();

  SnapshotSelector latest_valid;
  latest_valid.latest_valid = true;
  latest_valid.projects = {"damaged"};
  ProjectRestoreOptions po;
  Selection chosen;
  auto report = RestoreProjectFrom(*repo_, latest_valid, "damaged", *kb_, po, &chosen);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->snapshot_id, good.id);
  ASSERT_EQ(report->skipped_snapshots.size(), 2u);
  EXPECT_EQ(report->skipped_snapshots[0].id, marked.id);
  EXPECT_EQ(report->skipped_snapshots[1].id, unchecked.id);
  EXPECT_EQ(report->ToJson()["skipped_snapshots"].size(), 2u);
  QueryRequest q;
  q.text = kMarker;
  auto hits = kb_->Query("damaged", q);
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  EXPECT_FALSE(hits->hits.empty());

  // The sound project's newest snapshot is the marked one: its own state there passed, so a
  // restore of it does not walk back.
  SnapshotSelector sound;
  sound.latest_valid = true;
  sound.projects = {"sound"};
  auto other = RestoreProjectFrom(*repo_, sound, "sound", *kb_, po, nullptr);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(other->snapshot_id, marked.id);
  EXPECT_TRUE(other->skipped_snapshots.empty());
}

}  // namespace
}  // namespace kb::backup
