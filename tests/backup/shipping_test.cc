// Continuous journal shipping and restore to a point in time, in-process on a real knowledge base
// and a real local (file://) repository: segments appear for every write, a restarted shipper
// resumes exactly where the repository says, a repository that refuses writes is retried and
// caught up without a gap, and a project restored to a second between two changes holds exactly
// the state of that second (content checksum equal), refusing when a segment is missing.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "backup/point_in_time.h"
#include "backup/shipper.h"
#include "backup/source.h"
#include "blob/blob_store.h"
#include "common/clock.h"
#include "common/data_layout.h"
#include "faulty_blob_store.h"
#include "repo/segments.h"
#include "service/knowledge_base.h"
#include "store/project_reader.h"
#include "test_util.h"

namespace kb::backup {
namespace {

using kb::testing::Faults;
using kb::testing::FaultyBlobStore;
using kb::testing::TempDir;

class ShippingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_.passphrase = "shipping test passphrase";
    repo::RepositoryParams params;
    params.scrypt_log2_n = 14;
    auto store = blob::OpenBlobStore(RepoUrl(), {}, /*create=*/true);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto repo = repo::Repository::Init(std::move(store).value(), key_, "test", params, &clock_);
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(repo).value();
    KbOptions o;
    o.data_dir = dir_.Sub("data");
    o.clock = &clock_;
    o.index_save_interval_ms = 0;
    auto kb = KnowledgeBase::Open(o);
    ASSERT_TRUE(kb.ok()) << kb.status().ToString();
    kb_ = std::move(kb).value();
    CreateProjectRequest req;
    req.name = "p";
    auto p = kb_->CreateProject(req, Actor{});
    ASSERT_TRUE(p.ok());
    project_id_ = p->id;
  }
  void TearDown() override {
    shipper_.reset();
    if (kb_) kb_->Close();
  }

  std::string RepoUrl() { return "file://" + dir_.Sub("repo"); }

  ShipperOptions Options() {
    ShipperOptions o;
    o.interval_ms = 20;
    o.open_repository = [this]() -> Result<std::unique_ptr<repo::Repository>> {
      KB_ASSIGN_OR_RETURN(auto inner, blob::OpenBlobStore(RepoUrl(), {}));
      return repo::Repository::Open(std::make_unique<FaultyBlobStore>(std::move(inner), faults_),
                                    key_, &clock_);
    };
    return o;
  }
  void NewShipper() {
    shipper_.reset();
    shipper_ = JournalShipper::CreateForTest(kb_.get(), Options());
  }

  std::string Put(const std::string& source, const std::string& text) {
    clock_.Advance(1'000);
    IngestRequest req;
    req.content = text;
    req.filename = source;
    auto r = kb_->Ingest("p", req, Actor{"test", "test"});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->document.id : "";
  }
  void Snapshot() {
    clock_.Advance(1'000);
    auto m = BackupDataDirectory(*repo_, dir_.Sub("data"), {}, {});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
  }
  store::ProjectMeta Meta() {
    auto r = store::ProjectReader::Open(layout::ProjectDb(dir_.Sub("data"), project_id_));
    EXPECT_TRUE(r.ok());
    auto m = (*r)->Meta();
    EXPECT_TRUE(m.ok());
    return *m;
  }
  std::vector<repo::SegmentName> Segments() {
    auto names = repo::ListSegments(*repo_, project_id_);
    EXPECT_TRUE(names.ok()) << names.status().ToString();
    return names.ok() ? *names : std::vector<repo::SegmentName>{};
  }
  std::set<std::string> LiveDocuments() {
    auto page = kb_->ListDocuments("p", 1000, 0);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    std::set<std::string> ids;
    if (page.ok()) {
      for (const DocumentRecord& d : page->documents) {
        if (!d.deleted_at_ms) ids.insert(d.id);
      }
    }
    return ids;
  }

  ManualClock clock_{1'790'000'000'000};
  TempDir dir_;
  repo::KeySource key_;
  std::shared_ptr<Faults> faults_ = std::make_shared<Faults>();
  std::unique_ptr<repo::Repository> repo_;
  std::unique_ptr<KnowledgeBase> kb_;
  std::string project_id_;
  std::unique_ptr<JournalShipper> shipper_;
};

TEST_F(ShippingTest, WritesBecomeSegmentsContinuingTheSnapshot) {
  Put("a.md", "# A\n\nAlpha herons.");
  Snapshot();
  const int64_t snapshot_lsn = Meta().last_lsn;
  Put("b.md", "# B\n\nBravo badgers.");
  Put("c.md", "# C\n\nCharlie otters.");
  NewShipper();
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  std::vector<repo::SegmentName> names = Segments();
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0].first_lsn, snapshot_lsn + 1) << "shipping starts after the snapshot";
  EXPECT_EQ(names[0].last_lsn, Meta().last_lsn);
  EXPECT_EQ(shipper_->counters().segments.load(), 1);
  // Nothing new: nothing written.
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  EXPECT_EQ(Segments().size(), 1u);
  auto projects = shipper_->Projects();
  ASSERT_EQ(projects.size(), 1u);
  EXPECT_EQ(projects[0].lag_seconds, 0);
  EXPECT_EQ(projects[0].shipped.lsn, Meta().last_lsn);
}

TEST_F(ShippingTest, RestartResumesAtTheRepositorysPointWithoutReshippingOrSkipping) {
  Snapshot();
  Put("a.md", "# A\n\nAlpha.");
  NewShipper();
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  const int64_t first_end = Meta().last_lsn;
  Put("b.md", "# B\n\nBravo.");
  Put("c.md", "# C\n\nCharlie.");
  NewShipper();  // a restart: the new shipper knows only the repository
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  std::vector<repo::SegmentName> names = Segments();
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[1].first_lsn, first_end + 1);
  EXPECT_EQ(names[1].last_lsn, Meta().last_lsn);
  // The chain from the empty project... no: from the snapshot, reaches the live state.
  auto walk = repo::FollowChain(*repo_, project_id_, {0, "", 0}, {}, nullptr);
  ASSERT_TRUE(walk.ok());
  EXPECT_TRUE(walk->complete()) << walk->gap;
  EXPECT_EQ(walk->reached.lsn, Meta().last_lsn);
  EXPECT_EQ(walk->reached.checksum, Meta().content_checksum);
}

TEST_F(ShippingTest, ALongBacklogIsSplitIntoBoundedSegmentsInOneRound) {
  Snapshot();
  for (int i = 0; i < 5; ++i)
    Put("n" + std::to_string(i) + ".md", "# N\n\nNote " + std::to_string(i));
  ShipperOptions o = Options();
  o.max_segment_entries = 2;
  shipper_ = JournalShipper::CreateForTest(kb_.get(), o);
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  std::vector<repo::SegmentName> names = Segments();
  ASSERT_EQ(names.size(), 3u);
  for (const repo::SegmentName& n : names) EXPECT_LE(n.last_lsn - n.first_lsn + 1, 2);
  auto walk = repo::FollowChain(*repo_, project_id_, {0, "", 0}, {}, nullptr);
  ASSERT_TRUE(walk.ok());
  EXPECT_TRUE(walk->complete()) << walk->gap;
  EXPECT_EQ(walk->reached.lsn, Meta().last_lsn);
  EXPECT_EQ(walk->reached.checksum, Meta().content_checksum);
}

TEST_F(ShippingTest, UnreachableRepositoryIsRetriedCountedAndCaughtUpWithoutAGap) {
  Snapshot();
  NewShipper();
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  {
    std::lock_guard<std::mutex> lock(faults_->mu);
    faults_->crash_after_puts = 0;  // every write refused from now on
    faults_->puts = 0;
  }
  Put("a.md", "# A\n\nAlpha.");
  Put("b.md", "# B\n\nBravo.");
  const int64_t oldest_unshipped_ms = clock_.NowMillis() - 1'000;
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(2'000);
    EXPECT_FALSE(shipper_->ShipOnce().ok());
  }
  EXPECT_EQ(shipper_->counters().failures.load(), 3);
  EXPECT_TRUE(Segments().empty());
  ASSERT_EQ(shipper_->Projects().size(), 1u);
  EXPECT_DOUBLE_EQ(shipper_->Projects()[0].lag_seconds,
                   static_cast<double>(clock_.NowMillis() - oldest_unshipped_ms) / 1000.0);
  EXPECT_FALSE(shipper_->StatusJson()["last_error"].get<std::string>().empty());
  Put("c.md", "# C\n\nCharlie, written while the repository was away.");
  {
    std::lock_guard<std::mutex> lock(faults_->mu);
    faults_->crash_after_puts = -1;
  }
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  EXPECT_EQ(shipper_->Projects()[0].lag_seconds, 0);
  auto walk = repo::FollowChain(*repo_, project_id_, {0, "", 0}, {}, nullptr);
  ASSERT_TRUE(walk.ok());
  EXPECT_TRUE(walk->complete()) << walk->gap;
  EXPECT_EQ(walk->reached.lsn, Meta().last_lsn);
  EXPECT_EQ(walk->reached.checksum, Meta().content_checksum);
  EXPECT_TRUE(shipper_->StatusJson()["last_error"].get<std::string>().empty());
}

TEST_F(ShippingTest, TheThreadShipsWithinAFewIntervals) {
  auto started = JournalShipper::Start(kb_.get(), Options());
  ASSERT_TRUE(started.ok());
  shipper_ = std::move(started).value();
  ASSERT_NE(shipper_, nullptr);
  Put("a.md", "# A\n\nAlpha.");
  const int64_t lsn = Meta().last_lsn;
  bool shipped = false;
  for (int i = 0; i < 200 && !shipped; ++i) {  // 20 ms interval: well within 2 s
    std::vector<repo::SegmentName> names = Segments();
    shipped = !names.empty() && names.back().last_lsn == lsn;
    if (!shipped) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(shipped);
  ShipperOptions off = Options();
  off.interval_ms = 0;
  auto none = JournalShipper::Start(kb_.get(), off);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr) << "ship_interval 0 is off";
}

// Write A at t1, B at t2, delete A at t3: a restore to a second between t2 and t3 has A and B,
// with the content checksum the live journal recorded after B.
TEST_F(ShippingTest, RestoreToASecondBetweenChangesHoldsExactlyThatState) {
  Snapshot();
  const std::string a = Put("a.md", "# A\n\nAlpha herons by the river.");
  const std::string b = Put("b.md", "# B\n\nBravo badgers in the wood.");
  const int64_t t2 = clock_.NowMillis();
  const store::ProjectMeta after_b = Meta();
  clock_.Advance(5'000);
  ASSERT_TRUE(kb_->DeleteDocument("p", a, Actor{"test", "test"}).ok());
  const int64_t t3 = clock_.NowMillis();
  const std::string c = Put("c.md", "# C\n\nCharlie otters.");
  NewShipper();
  ASSERT_TRUE(shipper_->ShipOnce().ok());

  PointInTimeTarget target;
  target.at_ms = t2 + 2'000;  // between t2 and t3
  ASSERT_LT(*target.at_ms, t3);
  ProjectRestoreOptions options;
  auto report = RestoreProjectToPoint(*repo_, "p", target, *kb_, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->lsn, after_b.last_lsn);
  EXPECT_EQ(report->content_checksum, after_b.content_checksum);
  EXPECT_EQ(report->commit_time, FormatIso8601(t2));
  EXPECT_GE(report->entries_replayed, 2);
  EXPECT_FALSE(report->pre_restore_snapshot.empty());
  EXPECT_FALSE(report->target_beyond_chain);
  EXPECT_EQ(LiveDocuments(), (std::set<std::string>{a, b}));
  EXPECT_EQ(Meta().content_checksum, after_b.content_checksum);
  // Searchable after the swap (the index caught up from the replayed journal).
  QueryRequest q;
  q.text = "badgers";
  auto hits = kb_->Query("p", q);
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  ASSERT_FALSE(hits->hits.empty());
  EXPECT_EQ(hits->hits[0].document_id, b);

  // The restored project ships its new history; a later point of it restores too.
  const std::string d = Put("d.md", "# D\n\nDelta kingfishers, after the restore.");
  const store::ProjectMeta after_d = Meta();
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  PointInTimeTarget now;
  now.at_ms = clock_.NowMillis();
  auto again = RestoreProjectToPoint(*repo_, "p", now, *kb_, options);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->content_checksum, after_d.content_checksum);
  EXPECT_EQ(LiveDocuments(), (std::set<std::string>{a, b, d}));
  (void)c;
}

TEST_F(ShippingTest, RestoreToAnLsnAndTheChainsEnd) {
  Snapshot();
  Put("a.md", "# A\n\nAlpha.");
  const store::ProjectMeta after_a = Meta();
  Put("b.md", "# B\n\nBravo.");
  const store::ProjectMeta after_b = Meta();
  NewShipper();
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  PointInTimeTarget by_lsn;
  by_lsn.lsn = after_a.last_lsn;
  auto r = RestoreProjectToPoint(*repo_, "p", by_lsn, *kb_, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->content_checksum, after_a.content_checksum);
  // Beyond the chain: restored to its end, and said so.
  PointInTimeTarget later;
  later.at_ms = clock_.NowMillis() + 3'600'000;
  // The live project is at after_a now, which is in the chain: the chain's end is after_b.
  auto end = RestoreProjectToPoint(*repo_, "p", later, *kb_, {});
  ASSERT_TRUE(end.ok()) << end.status().ToString();
  EXPECT_TRUE(end->target_beyond_chain);
  EXPECT_EQ(end->content_checksum, after_b.content_checksum);
  // An LSN the chain does not reach is refused.
  PointInTimeTarget too_far;
  too_far.lsn = after_b.last_lsn + 5;
  EXPECT_EQ(RestoreProjectToPoint(*repo_, "p", too_far, *kb_, {}).status().code(), Code::kNotFound);
}

TEST_F(ShippingTest, MissingSegmentRefusesNamingItAndChangesNothing) {
  Snapshot();
  Put("a.md", "# A\n\nAlpha.");
  NewShipper();
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  Put("b.md", "# B\n\nBravo.");
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  Put("c.md", "# C\n\nCharlie.");
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  std::vector<repo::SegmentName> names = Segments();
  ASSERT_EQ(names.size(), 3u);
  ASSERT_TRUE(repo_->store().Delete(names[1].key).ok());
  const std::set<std::string> before = LiveDocuments();
  const std::string checksum_before = Meta().content_checksum;
  PointInTimeTarget now;
  now.at_ms = clock_.NowMillis();
  auto r = RestoreProjectToPoint(*repo_, "p", now, *kb_, {});
  ASSERT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  EXPECT_NE(r.status().message().find(names[2].key), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("unreachable"), std::string::npos);
  EXPECT_EQ(LiveDocuments(), before);
  EXPECT_EQ(Meta().content_checksum, checksum_before);

  // A flipped byte in a segment: the same refusal, naming it.
  auto& objects = *repo_;
  (void)objects;
  PointInTimeTarget early;
  early.lsn = names[0].last_lsn;
  EXPECT_TRUE(RestoreProjectToPoint(*repo_, "p", early, *kb_, {}).ok())
      << "a point before the gap is still reachable";
}

TEST_F(ShippingTest, CorruptSegmentRefusesNamingIt) {
  Snapshot();
  Put("a.md", "# A\n\nAlpha.");
  NewShipper();
  ASSERT_TRUE(shipper_->ShipOnce().ok());
  std::vector<repo::SegmentName> names = Segments();
  ASSERT_EQ(names.size(), 1u);
  {
    std::lock_guard<std::mutex> lock(faults_->mu);
    faults_->corrupt_prefix = "segments/";
  }
  // Read through the faulty store: every segment read comes back with a flipped byte.
  auto damaged = Options().open_repository();
  ASSERT_TRUE(damaged.ok());
  PointInTimeTarget now;
  now.at_ms = clock_.NowMillis();
  auto r = RestoreProjectToPoint(**damaged, "p", now, *kb_, {});
  ASSERT_EQ(r.status().code(), Code::kFailedPrecondition) << r.status().ToString();
  EXPECT_NE(r.status().message().find(names[0].key), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace kb::backup
