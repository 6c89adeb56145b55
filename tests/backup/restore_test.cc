// Restore orchestration in-process, on real data directories and a real local repository:
// snapshot selection (--before, --latest-valid), project replace with the pre-restore snapshot,
// merge of purged documents with their ids and vectors, and the refusal cases.
#include "backup/restore.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "audit/audit_log.h"
#include "backup/source.h"
#include "backup_test_util.h"
#include "common/clock.h"
#include "common/data_layout.h"
#include "common/file_util.h"
#include "service/knowledge_base.h"
#include "store/project_store.h"
#include "store/sqlite.h"
#include "test_util.h"

namespace kb::backup {
namespace {

namespace fs = std::filesystem;
using kb::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class RestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_.passphrase = "restore test passphrase";
    repo_ = kb::testing::InitLocalTestRepository(dir_.Sub("repo"), key_, &clock_);
    ASSERT_NE(repo_, nullptr);
    OpenKb();
  }

  // A knowledge base on `data_dir` (null, with a test failure, if it does not open).
  std::unique_ptr<KnowledgeBase> OpenKbAt(const std::string& data_dir) {
    return kb::testing::OpenTestKnowledgeBase(data_dir, &clock_);
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

  repo::SnapshotManifest Snapshot(const std::string& trigger = "manual") {
    clock_.Advance(60'000);
    auto prepared = PrepareSnapshotSource(dir_.Sub("data"), dir_.Sub("staging"), {});
    EXPECT_TRUE(prepared.ok()) << prepared.status().ToString();
    repo::BackupOptions bo;
    bo.trigger = trigger;
    auto m = repo_->CreateSnapshot(prepared->source(), bo);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : repo::SnapshotManifest{};
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
  repo::KeySource key_;
  std::unique_ptr<repo::Repository> repo_;
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
    repo::BackupOptions bo;
    auto m = BackupDataDirectory(*repo_, dir_.Sub("data"), so, bo);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : repo::SnapshotManifest{};
  };
  auto index_files = [](const repo::ProjectSnapshot& p) {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    for (const repo::SnapshotFile& f : p.files) {
      if (f.path.rfind("index/", 0) == 0) out.emplace_back(f.path, f.trees);
    }
    return out;
  };
  repo::SnapshotManifest first = backup(0.05);
  ASSERT_EQ(first.projects.size(), 1u);
  const repo::ProjectSnapshot& p1 = first.projects[0];
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
  repo::SnapshotManifest second = backup(0.05);
  ASSERT_EQ(second.projects.size(), 1u);
  const repo::ProjectSnapshot& p2 = second.projects[0];
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
  repo::SnapshotManifest third = backup(0.0);
  const repo::ProjectSnapshot& p3 = third.projects.at(0);
  EXPECT_EQ(p3.index_lsn, p3.lsn);
  EXPECT_EQ(p3.index_checksum, p3.content_checksum);
  EXPECT_NE(index_files(p3), index_files(p1));

  // The live index is the one `third` stored: named again whatever the lag allowance.
  Put("p", "later.md", "# Later\n\nHerons again.");
  repo::SnapshotManifest fourth = backup(0.0);  // the server has not saved its index since
  const repo::ProjectSnapshot& p4 = fourth.projects.at(0);
  EXPECT_EQ(p4.lsn, p3.lsn + 1);
  EXPECT_EQ(p4.index_lsn, p3.index_lsn);
  EXPECT_EQ(index_files(p4), index_files(p3));
}

// The one "does a restored project match its snapshot" check: a faithful restore has no
// problem; each recorded value that differs is named (checksum, LSN, each count).
TEST_F(RestoreTest, RestoredProjectThatDiffersFromItsSnapshotIsNamed) {
  NewProject("p");
  Put("p", "a.md", "# A\n\nNotes on herons.");
  Put("p", "b.md", "# B\n\nNotes on badgers.");
  repo::SnapshotManifest m = Snapshot();
  auto found = FindProject(m, "p");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  const repo::ProjectSnapshot& p = **found;
  const std::string restored = dir_.Sub("restored");
  ASSERT_TRUE(repo_->RestoreFiles(m, {p.id}, restored).ok());
  const std::string project_dir = layout::ProjectDir(restored, p.id);
  EXPECT_THAT(CheckProjectMatchesSnapshot(project_dir, p), ElementsAre());

  repo::ProjectSnapshot other_checksum = p;
  other_checksum.content_checksum = std::string(64, 'f');
  EXPECT_THAT(CheckProjectMatchesSnapshot(project_dir, other_checksum),
              ElementsAre(HasSubstr("project p: content checksum " + p.content_checksum +
                                    " differs from the snapshot's " + std::string(64, 'f'))));

  repo::ProjectSnapshot other_lsn = p;
  other_lsn.lsn = p.lsn + 5;
  EXPECT_THAT(CheckProjectMatchesSnapshot(project_dir, other_lsn),
              ElementsAre("project p: journal LSN " + std::to_string(p.lsn) +
                          " differs from the snapshot's " + std::to_string(p.lsn + 5)));

  repo::ProjectSnapshot other_counts = p;
  other_counts.counts = {{"documents", 3}, {"chunks", 99}, {"deleted_documents", 1}};
  EXPECT_THAT(CheckProjectMatchesSnapshot(project_dir, other_counts),
              ElementsAre("project p: 2 live documents, the snapshot recorded 3",
                          HasSubstr("live chunks, the snapshot recorded 99"),
                          "project p: 0 deleted documents, the snapshot recorded 1"));
}

TEST_F(RestoreTest, RestoredProjectWithChangedRowsOrNoDatabaseIsNamed) {
  NewProject("p");
  Put("p", "a.md", "# A\n\nNotes on herons.");
  repo::SnapshotManifest m = Snapshot();
  auto found = FindProject(m, "p");
  ASSERT_TRUE(found.ok());
  const repo::ProjectSnapshot& p = **found;
  const std::string restored = dir_.Sub("restored");
  ASSERT_TRUE(repo_->RestoreFiles(m, {p.id}, restored).ok());
  const std::string project_dir = layout::ProjectDir(restored, p.id);
  {
    // A row edited behind the store's back: the rows no longer sum to the maintained checksum.
    auto db = sql::Database::Open(layout::ProjectDbIn(project_dir));
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("UPDATE documents SET title = 'edited'").ok());
  }
  EXPECT_THAT(CheckProjectMatchesSnapshot(project_dir, p),
              ElementsAre(HasSubstr("content checksum recomputed from the rows is")));

  EXPECT_THAT(CheckProjectMatchesSnapshot(dir_.Sub("nowhere"), p),
              ElementsAre(HasSubstr("project p: not_found")));
}

TEST_F(RestoreTest, SelectsByTimeAndRefusesWhatDoesNotExist) {
  NewProject("p");
  Put("p", "a.md", "# A\n\nAlpha text about herons.");
  repo::SnapshotManifest first = Snapshot();
  Put("p", "b.md", "# B\n\nBeta text about badgers.");
  repo::SnapshotManifest second = Snapshot();

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
  repo::SnapshotManifest snap = Snapshot();
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
  repo::SnapshotManifest snap = Snapshot();
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
  repo::SnapshotManifest snap = Snapshot();
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
  auto m = repo_->CreateSnapshot(prepared->source(), repo::BackupOptions{});
  ASSERT_TRUE(m.ok());
  auto r = RestoreDataDirectory(*repo_, *m, dir_.Sub("elsewhere"), &clock_);
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(dir_.Sub("elsewhere")));
}

// The audit log is the node's history, not data to roll back: a whole restore over an existing
// data directory carries audit.db, its WAL and audit.head over from the moved-aside directory
// (which keeps its copy), byte for byte, and reports no warning.
TEST_F(RestoreTest, WholeRestoreOverADataDirectoryKeepsItsAuditLog) {
  NewProject("p");
  Put("p", "a.md", "# A\n\nText.");
  repo::SnapshotManifest m = Snapshot();
  const std::string data = dir_.Sub("data");
  // Written after the snapshot: only the carry-over can bring these into the restored directory.
  const std::map<std::string, std::string> audit = {
      {layout::AuditDb(data), "audit database bytes"},
      {layout::AuditDb(data) + "-wal", "audit wal bytes"},
      {layout::AuditHead(data), "{\"seq\": 7}"}};
  for (const auto& [path, bytes] : audit) ASSERT_TRUE(AtomicWriteFile(path, bytes).ok()) << path;
  kb_->Close();
  kb_.reset();

  auto r = RestoreDataDirectory(*repo_, m, data, &clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(r->moved_aside.empty());
  EXPECT_TRUE(r->warnings.empty()) << r->warnings.front();
  for (const auto& [path, bytes] : audit) {
    auto restored = ReadFile(path);
    ASSERT_TRUE(restored.ok()) << path;
    EXPECT_EQ(*restored, bytes) << path;
    auto kept = ReadFile(r->moved_aside + "/" + fs::path(path).filename().string());
    ASSERT_TRUE(kept.ok()) << path;  // the forensic copy keeps its log too
    EXPECT_EQ(*kept, bytes) << path;
  }
  EXPECT_FALSE(r->ToJson().contains("warnings"));
  OpenKb();  // and the restored directory opens
}

// What the CLI's end-to-end test asserts of a whole restore (tests/e2e/audit_e2e_test.cc), at the
// restore level on a real audit log: the entries recorded before and after the snapshot are all
// in the restored directory, an entry appended afterwards (the CLI's "data.restore") continues the
// same chain, and the chain and its head file verify; the moved-aside copy verifies too.
TEST_F(RestoreTest, WholeRestoreKeepsTheAuditChainAndItContinues) {
  NewProject("p");
  Put("p", "a.md", "# A\n\nText.");
  const std::string data = dir_.Sub("data");
  auto record = [&](const std::string& dir, const std::string& action) {
    auto log = audit::AuditLog::Open(layout::AuditDb(dir), &clock_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    AuditEvent e;
    e.actor_id = "cli";
    e.method = "CLI";
    e.route = action;
    e.action = action;
    e.outcome = "ok";
    (*log)->Record(e);
    (*log)->Close();
  };
  record(data, "project.create");
  repo::SnapshotManifest m = Snapshot();
  record(data, "project.delete");  // after the snapshot: only the carry-over keeps it
  kb_->Close();
  kb_.reset();

  auto r = RestoreDataDirectory(*repo_, m, data, &clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(r->moved_aside.empty());
  EXPECT_TRUE(r->warnings.empty()) << r->warnings.front();
  record(data, "data.restore");

  auto verified = [&](const std::string& dir) {
    audit::AuditLogOptions ro;
    ro.read_only = true;
    auto log = audit::AuditLog::Open(layout::AuditDb(dir), &clock_, ro);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    if (!log.ok()) return std::pair<audit::VerifyReport, std::vector<std::string>>{};
    auto report = (*log)->Verify();
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    audit::AuditQuery q;
    q.key = "cli";
    auto page = (*log)->Query(q);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    std::vector<std::string> actions;
    if (page.ok()) {
      for (const audit::AuditEntry& e : page->entries) actions.push_back(e.event.action);
    }
    return std::make_pair(report.ok() ? *report : audit::VerifyReport{}, actions);
  };
  auto [restored, restored_actions] = verified(data);
  EXPECT_TRUE(restored.ok) << restored.problem;
  EXPECT_EQ(restored.entries, 3);
  EXPECT_EQ(restored.head_seq, restored.last_seq);
  EXPECT_EQ(restored_actions,
            (std::vector<std::string>{"data.restore", "project.delete", "project.create"}));
  auto [kept, kept_actions] = verified(r->moved_aside);
  EXPECT_TRUE(kept.ok) << kept.problem;
  EXPECT_EQ(kept_actions, (std::vector<std::string>{"project.delete", "project.create"}));
  OpenKb();  // and the restored directory opens
}

TEST_F(RestoreTest, WholeRestoreIntoANewDirectoryHasNoAuditLogToCarry) {
  NewProject("p");
  Put("p", "a.md", "# A\n\nText.");
  repo::SnapshotManifest m = Snapshot();
  const std::string target = dir_.Sub("new-data");
  auto r = RestoreDataDirectory(*repo_, m, target, &clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->moved_aside.empty());
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_FALSE(fs::exists(layout::AuditHead(target)));
}

}  // namespace
}  // namespace kb::backup
