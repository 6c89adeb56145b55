// Restore orchestration in-process, on real data directories and a real local repository:
// snapshot selection (--before, --latest-valid), project replace with the pre-restore snapshot,
// merge of purged documents with their ids and vectors, and the refusal cases.
#include "backup/restore.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "backup/source.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "service/knowledge_base.h"
#include "store/project_store.h"
#include "test_util.h"

namespace kb::backup {
namespace {

namespace fs = std::filesystem;
using kb::testing::TempDir;

class RestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_.passphrase = "restore test passphrase";
    RepositoryParams params;
    params.scrypt_log2_n = 14;
    auto store = blob::OpenBlobStore("file://" + dir_.Sub("repo"), {}, /*create=*/true);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto repo = Repository::Init(std::move(store).value(), key_, "test", params, &clock_);
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(repo).value();
    OpenKb();
  }

  // A knowledge base on `data_dir` (null, with a test failure, if it does not open).
  std::unique_ptr<KnowledgeBase> OpenKbAt(const std::string& data_dir) {
    KbOptions o;
    o.data_dir = data_dir;
    o.clock = &clock_;
    o.index_save_interval_ms = 0;
    auto kb = KnowledgeBase::Open(o);
    EXPECT_TRUE(kb.ok()) << kb.status().ToString();
    return kb.ok() ? std::move(kb).value() : nullptr;
  }
  void OpenKb() {
    kb_ = OpenKbAt(dir_.Sub("data"));
    ASSERT_NE(kb_, nullptr);
  }

  std::string Put(const std::string& project, const std::string& source, const std::string& text) {
    IngestRequest req;
    req.content = text;
    req.filename = source;
    auto r = kb_->Ingest(project, req, Actor{"test", "test"});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->document.id : "";
  }

  void NewProject(const std::string& name) {
    CreateProjectRequest req;
    req.name = name;
    ASSERT_TRUE(kb_->CreateProject(req, Actor{}).ok());
  }

  SnapshotManifest Snapshot(const std::string& trigger = "manual") {
    clock_.Advance(60'000);
    auto prepared = PrepareSnapshotSource(dir_.Sub("data"), dir_.Sub("staging"), {});
    EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
    BackupOptions bo;
    bo.trigger = trigger;
    auto m = repo_->CreateSnapshot(prepared->source(), bo);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : SnapshotManifest{};
  }

  std::vector<std::pair<std::string, double>> Search(const std::string& project,
                                                     const std::string& q) {
    QueryRequest req;
    req.text = q;
    auto r = kb_->Query(project, req);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::pair<std::string, double>> out;
    if (r.ok()) {
      for (const QueryHit& h : r->hits) out.emplace_back(h.document_id, h.score);
    }
    return out;
  }

  ManualClock clock_{1'790'000'000'000};  // 2026-09-21
  TempDir dir_;
  KeySource key_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<KnowledgeBase> kb_;
};

// Vector index reuse end to end: an incremental backup names the previous snapshot's index when
// the journal grew little, the restored server replays the rest into it and answers like the
// live one; past the allowed lag, or with reuse off, the live index is stored again.
TEST_F(RestoreTest, AnIncrementalBackupReusesTheIndexAndTheRestoredServerCatchesUp) {
  NewProject("p");
  for (int i = 0; i < 40; ++i) {
    Put("p", "doc-" + std::to_string(i) + ".md",
        "# Doc " + std::to_string(i) + "\n\nNotes on herons, badgers and backup number " +
            std::to_string(i * 13) + ".");
  }
  kb_->Close();  // saves the index at the newest LSN
  OpenKb();
  auto backup = [&](double max_lag) {
    clock_.Advance(60'000);
    SourceOptions so;
    so.index_max_lag = max_lag;
    BackupOptions bo;
    auto m = BackupDataDirectory(*repo_, dir_.Sub("data"), so, bo);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : SnapshotManifest{};
  };
  auto index_files = [](const ProjectSnapshot& p) {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    for (const SnapshotFile& f : p.files) {
      if (f.path.rfind("index/", 0) == 0) out.emplace_back(f.path, f.trees);
    }
    return out;
  };
  SnapshotManifest first = backup(0.05);
  ASSERT_EQ(first.projects.size(), 1u);
  const ProjectSnapshot& p1 = first.projects[0];
  EXPECT_EQ(p1.index_lsn, p1.lsn);
  EXPECT_FALSE(p1.index_checksum.empty());
  EXPECT_EQ(p1.index_checksum, p1.content_checksum);  // the index is at the newest state
  ASSERT_EQ(index_files(p1).size(), 2u);

  // Two more changes (within 5% of 41 documents), then the server saves a new index.
  Put("p", "doc-3.md", "# Doc 3\n\nRewritten: now about otters and retention.");
  Put("p", "new.md", "# New\n\nA fresh note about kingfishers.");
  kb_->Close();
  OpenKb();
  const auto live = Search("p", "otters kingfishers herons");
  SnapshotManifest second = backup(0.05);
  ASSERT_EQ(second.projects.size(), 1u);
  const ProjectSnapshot& p2 = second.projects[0];
  EXPECT_EQ(p2.lsn, p1.lsn + 2);
  EXPECT_EQ(p2.index_lsn, p1.index_lsn) << "the earlier index is named again";
  EXPECT_EQ(p2.index_checksum, p1.index_checksum);
  EXPECT_EQ(index_files(p2), index_files(p1));

  // Restored, the server replays the two entries into that index and answers the same.
  ASSERT_TRUE(repo_->RestoreFiles(second, {}, dir_.Sub("restored")).ok());
  {
    std::unique_ptr<KnowledgeBase> restored = OpenKbAt(dir_.Sub("restored"));
    ASSERT_NE(restored, nullptr);
    auto stats = restored->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->per_project.at(0).index_lsn, p2.lsn);
    EXPECT_EQ(stats->per_project.at(0).index_vectors, static_cast<size_t>(stats->chunks));
    QueryRequest req;
    req.text = "otters kingfishers herons";
    auto r = restored->Query("p", req);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::pair<std::string, double>> got;
    for (const QueryHit& h : r->hits) got.emplace_back(h.document_id, h.score);
    EXPECT_EQ(got, live);
    restored->Close();
  }

  // No lag allowed: the live index (saved at the newest LSN) is stored.
  SnapshotManifest third = backup(0.0);
  const ProjectSnapshot& p3 = third.projects.at(0);
  EXPECT_EQ(p3.index_lsn, p3.lsn);
  EXPECT_EQ(p3.index_checksum, p3.content_checksum);
  EXPECT_NE(index_files(p3), index_files(p1));

  // The live index is the one `third` stored: named again whatever the lag allowance.
  Put("p", "later.md", "# Later\n\nHerons again.");
  SnapshotManifest fourth = backup(0.0);  // the server has not saved its index since
  const ProjectSnapshot& p4 = fourth.projects.at(0);
  EXPECT_EQ(p4.lsn, p3.lsn + 1);
  EXPECT_EQ(p4.index_lsn, p3.index_lsn);
  EXPECT_EQ(index_files(p4), index_files(p3));
}

TEST_F(RestoreTest, SelectsByTimeAndRefusesWhatDoesNotExist) {
  NewProject("p");
  Put("p", "a.md", "# A\n\nAlpha text about herons.");
  SnapshotManifest first = Snapshot();
  Put("p", "b.md", "# B\n\nBeta text about badgers.");
  SnapshotManifest second = Snapshot();

  SnapshotSelector newest;
  auto s = SelectSnapshot(*repo_, newest);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->manifest.id, second.id);

  SnapshotSelector before;
  before.before_ms = *ParseIso8601(second.time);
  s = SelectSnapshot(*repo_, before);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->manifest.id, first.id);

  before.before_ms = *ParseIso8601(first.time);
  s = SelectSnapshot(*repo_, before);
  EXPECT_EQ(s.status().code(), Code::kNotFound);

  SnapshotSelector other;
  other.projects = {"no-such-project"};
  EXPECT_EQ(SelectSnapshot(*repo_, other).status().code(), Code::kNotFound);

  SnapshotSelector named;
  named.snapshot_id = "20000101T000000Z-00000000";
  EXPECT_FALSE(SelectSnapshot(*repo_, named).ok());
}

TEST_F(RestoreTest, ReplaceRestoresOneProjectAndKeepsTheReplacedStateAsASnapshot) {
  NewProject("p");
  NewProject("q");
  Put("p", "a.md", "# A\n\nHerons wade in rivers.");
  Put("q", "x.md", "# X\n\nBadgers dig setts.");
  SnapshotManifest snap = Snapshot();
  const auto at_snapshot = Search("p", "herons rivers");
  Put("p", "b.md", "# B\n\nHerons nest in tall trees near rivers.");
  Put("q", "y.md", "# Y\n\nBadgers sleep by day.");

  ProjectRestoreOptions po;
  auto report = RestoreProject(*repo_, snap, "p", *kb_, po);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->mode, "replace");
  EXPECT_FALSE(report->pre_restore_snapshot.empty());
  EXPECT_TRUE(fs::exists(report->moved_aside));
  EXPECT_EQ(Search("p", "herons rivers"), at_snapshot);
  EXPECT_EQ(kb_->ListDocuments("p", 10, 0)->total, 1);
  EXPECT_EQ(kb_->ListDocuments("q", 10, 0)->total, 2);  // untouched
  // Writes work on the restored project, and the undo snapshot brings b.md back.
  Put("p", "c.md", "# C\n\nA third note.");
  auto undo = repo_->ReadSnapshot(report->pre_restore_snapshot);
  ASSERT_TRUE(undo.ok());
  EXPECT_EQ(undo->trigger, "pre-restore");
  EXPECT_EQ(undo->scope, "projects");
  auto back = RestoreProject(*repo_, *undo, "p", *kb_, po);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(kb_->ListDocuments("p", 10, 0)->total, 2);
  // The restored project survives a restart with its index loaded, not rebuilt.
  kb_->Close();
  kb_.reset();
  OpenKb();
  EXPECT_EQ(kb_->ListDocuments("p", 10, 0)->total, 2);
  EXPECT_EQ(kb_->counters().index_rebuilds.load(), 0);
}

TEST_F(RestoreTest, ReplaceBringsBackADeletedProject) {
  NewProject("gone");
  Put("gone", "a.md", "# A\n\nOtters hold hands.");
  SnapshotManifest snap = Snapshot();
  ASSERT_TRUE(kb_->DeleteProject("gone", Actor{}).ok());
  EXPECT_FALSE(kb_->GetProject("gone").ok());
  auto report = RestoreProject(*repo_, snap, "gone", *kb_, ProjectRestoreOptions{});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->pre_restore_snapshot.empty());  // nothing live to keep
  ASSERT_TRUE(kb_->GetProject("gone").ok());
  EXPECT_EQ(Search("gone", "otters").size(), 1u);
}

TEST_F(RestoreTest, MergeRestoresPurgedDocumentsWithTheirIdsAndTouchesNothingLive) {
  NewProject("m");
  const std::string keep = Put("m", "keep.md", "# Keep\n\nKingfishers dive for fish.");
  const std::string purged = Put("m", "purged.md", "# Purged\n\nOtters hold hands while asleep.");
  const std::string edited = Put("m", "edited.md", "# Edited\n\nThe first version.");
  const std::string soft = Put("m", "soft.md", "# Soft\n\nSoft deleted later.");
  SnapshotManifest snap = Snapshot();
  const auto purged_hits = Search("m", "otters hold hands asleep");
  ASSERT_FALSE(purged_hits.empty());
  ASSERT_EQ(purged_hits.front().first, purged);

  // The live project moves on: one edit, one soft delete, one hard delete (purge).
  Put("m", "edited.md", "# Edited\n\nThe second version, newer than the snapshot.");
  ASSERT_TRUE(kb_->DeleteDocument("m", soft, Actor{}).ok());
  const std::string project_id = kb_->GetProject("m")->id;
  kb_->Close();
  kb_.reset();
  {
    auto store = ProjectStore::Open(dir_.Sub("data/projects/" + project_id + "/kb.db"), project_id,
                                    384, &clock_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->PurgeDocument(purged, "test").ok());
  }
  OpenKb();
  EXPECT_TRUE(Search("m", "otters hold hands asleep").empty() ||
              Search("m", "otters hold hands asleep").front().first != purged);

  ProjectRestoreOptions po;
  po.merge = true;
  auto report = RestoreProject(*repo_, snap, "m", *kb_, po);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->restored_documents, std::vector<std::string>{purged});
  EXPECT_EQ(report->skipped_documents.size(), 3u);  // keep, edited (live), soft (soft-deleted)
  // Back with the same id and the same score (the other hits differ: the live project moved on).
  const auto merged_hits = Search("m", "otters hold hands asleep");
  ASSERT_FALSE(merged_hits.empty());
  EXPECT_EQ(merged_hits.front(), purged_hits.front());
  auto e = kb_->GetDocument("m", edited);
  ASSERT_TRUE(e.ok());
  auto chunks_hit = Search("m", "second version newer");
  ASSERT_FALSE(chunks_hit.empty());
  EXPECT_EQ(chunks_hit.front().first, edited);
  EXPECT_FALSE(kb_->GetDocument("m", soft).ok());  // still soft-deleted
  EXPECT_TRUE(kb_->GetDocument("m", keep).ok());
  // A second merge finds nothing more to do.
  auto again = RestoreProject(*repo_, snap, "m", *kb_, po);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->restored_documents.empty());
}

TEST_F(RestoreTest, WholeRestoreRefusesAPartialSnapshotAndLeavesNothing) {
  NewProject("p");
  Put("p", "a.md", "# A\n\nText.");
  SourceOptions only_p;
  only_p.projects = {"p"};
  auto prepared = PrepareSnapshotSource(dir_.Sub("data"), dir_.Sub("staging"), only_p);
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  auto m = repo_->CreateSnapshot(prepared->source(), BackupOptions{});
  ASSERT_TRUE(m.ok());
  auto r = RestoreDataDirectory(*repo_, *m, dir_.Sub("elsewhere"), &clock_);
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(dir_.Sub("elsewhere")));
}

}  // namespace
}  // namespace kb::backup
