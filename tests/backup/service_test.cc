// The server's BackupService: the local default repository (created on first use, reported as
// not off-site), the schedule with retention applied after each scheduled backup, one backup at
// a time, and a clean Stop; the schedule follows the repository's newest snapshot, not the
// process (a restart never postpones a backup, a backup made elsewhere moves the next one, a
// failure is retried with backoff), and the last-success figure is the repository's.
#include "backup/service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/data_layout.h"
#include "common/file_util.h"
#include "service/knowledge_base.h"
#include "store/sqlite.h"
#include "test_util.h"

namespace kb::backup {
namespace {

using kb::testing::TempDir;

// Collects what the service reports (the real AuditLog is tested in tests/audit).
class CollectingSink final : public AuditSink {
 public:
  void Record(AuditEvent e) override {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  std::vector<AuditEvent> Events(const std::string& action) {
    std::lock_guard lock(mu_);
    std::vector<AuditEvent> out;
    for (const auto& e : events_) {
      if (e.action == action) out.push_back(e);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<AuditEvent> events_;
};

// A knowledge base on `data_dir` with one project, "p"; null (and a test failure) on error.
std::unique_ptr<KnowledgeBase> OpenWithProject(const std::string& data_dir,
                                               const Clock* clock = nullptr) {
  KbOptions o;
  o.data_dir = data_dir;
  o.index_save_interval_ms = 0;
  o.clock = clock;  // null: the system clock
  auto kb = KnowledgeBase::Open(o);
  EXPECT_TRUE(kb.ok()) << kb.status().ToString();
  if (!kb.ok()) return nullptr;
  CreateProjectRequest req;
  req.name = "p";
  EXPECT_TRUE((*kb)->CreateProject(req, Actor{}).ok());
  return std::move(kb).value();
}

class BackupServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kb_ = OpenWithProject(dir_.Sub("data"));
    ASSERT_NE(kb_, nullptr);
    IngestRequest doc;
    doc.content = "# Note\n\nHerons wade in shallow rivers.";
    doc.filename = "note.md";
    ASSERT_TRUE(kb_->Ingest("p", doc, Actor{}).ok());
  }

  TempDir dir_;
  std::unique_ptr<KnowledgeBase> kb_;
};

TEST_F(BackupServiceTest, LocalDefaultIsCreatedOnFirstUseAndSaysItIsNotOffSite) {
  BackupServiceOptions o;
  o.interval_ms = 0;
  auto svc = BackupService::Start(kb_.get(), o);
  ASSERT_TRUE(svc.ok()) << svc.status().ToString();
  EXPECT_FALSE((*svc)->off_site());
  EXPECT_NE((*svc)->StatusJson()["warning"].get<std::string>().find("disk"), std::string::npos);
  EXPECT_FALSE(PathExists(dir_.Sub("data/backups/repository/config")));
  auto m = (*svc)->RunBackup("api", {}, {});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(PathExists(dir_.Sub("data/backups/repository/config")));
  EXPECT_TRUE(PathExists(dir_.Sub("data/backups/repository.key")));
  EXPECT_EQ((*svc)->counters().successes.load(), 1);
  EXPECT_GT((*svc)->counters().last_success_ms.load(), 0);
  auto list = (*svc)->ListSnapshots();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().trigger, "api");
}

TEST_F(BackupServiceTest, RepositoryFactsAreReadWithoutCreatingTheLocalDefault) {
  BackupServiceOptions o;
  o.interval_ms = 0;
  o.verify_interval_ms = 0;
  RepositoryTarget target = ResolveRepositoryTarget(o, dir_.Sub("data"));
  EXPECT_TRUE(target.local_default);
  EXPECT_EQ(target.url, "file://" + dir_.Sub("data") + "/backups/repository");
  // Before any backup: no facts, and nothing created by asking (doctor, the posture route).
  auto none = ReadRepositoryFacts(target, {}, nullptr);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->snapshots, 0);
  EXPECT_FALSE(none->newest_full_ms.has_value());
  auto svc = BackupService::Start(kb_.get(), o);
  ASSERT_TRUE(svc.ok());
  auto asked = (*svc)->ReadFacts();
  ASSERT_TRUE(asked.ok());
  EXPECT_EQ(asked->snapshots, 0);
  EXPECT_FALSE(PathExists(dir_.Sub("data/backups/repository/config")));
  EXPECT_FALSE(PathExists(dir_.Sub("data/backups/repository.key")));

  auto full = (*svc)->RunBackup("api", {}, {});
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  ASSERT_TRUE((*svc)->RunBackup("api", {"p"}, {}).ok());  // one project: not a full backup
  ASSERT_TRUE((*svc)->Verify({full->id}, repo::VerifyOptions{}).ok());
  auto facts = ReadRepositoryFacts(target, {}, nullptr);
  ASSERT_TRUE(facts.ok()) << facts.status().ToString();
  EXPECT_EQ(facts->snapshots, 2);
  ASSERT_TRUE(facts->newest_full_ms.has_value());
  EXPECT_EQ(*facts->newest_full_ms, *ParseIso8601(full->time));
  EXPECT_TRUE(facts->newest_verified_ms.has_value());
  // The service's own reading says the same.
  auto same = (*svc)->ReadFacts();
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->newest_full_ms, facts->newest_full_ms);

  // A configured repository without a key is an error, not a guess.
  o.repository_url = "file://" + dir_.Sub("elsewhere");
  RepositoryTarget configured = ResolveRepositoryTarget(o, dir_.Sub("data"));
  EXPECT_FALSE(configured.local_default);
  EXPECT_EQ(ReadRepositoryFacts(configured, {}, nullptr).status().code(), Code::kInvalidArgument);
}

TEST(RepositoryFactsTest, OnlyReadableFullSnapshotsCountAsBackups) {
  auto summary = [](std::string id, std::string time, std::string scope, std::string verified,
                    std::string problem = "") {
    repo::SnapshotSummary s;
    s.id = std::move(id);
    s.time = std::move(time);
    s.scope = std::move(scope);
    s.verified = std::move(verified);
    s.problem = std::move(problem);
    return s;
  };
  RepositoryFacts f = SummarizeSnapshots({
      summary("a", "2026-12-01T10:00:00Z", "full", "2026-12-02T00:00:00Z"),
      summary("b", "2026-12-03T10:00:00Z", "projects", "2026-12-04T00:00:00Z"),
      summary("c", "", "", "", "corruption: manifest does not authenticate"),
      summary("d", "2026-12-01T11:00:00Z", "full", ""),
  });
  EXPECT_EQ(f.snapshots, 3);
  EXPECT_EQ(f.unreadable, 1);
  EXPECT_EQ(f.newest_full_ms, ParseIso8601("2026-12-01T11:00:00Z"));
  EXPECT_EQ(f.newest_verified_ms, ParseIso8601("2026-12-04T00:00:00Z"));
  EXPECT_FALSE(SummarizeSnapshots({}).newest_full_ms.has_value());
}

// A damaged live state is stored, but counted, audited and said in the result.
TEST_F(BackupServiceTest, ASourceThatFailsItsCheckIsCountedAndAudited) {
  auto project = kb_->GetProject("p");
  ASSERT_TRUE(project.ok());
  {
    // A row edited behind the store's back: the rows no longer sum to the maintained checksum.
    auto db = sql::Database::Open(layout::ProjectDb(dir_.Sub("data"), project->id));
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE((*db)->Exec("UPDATE documents SET title = 'edited behind its back'").ok());
  }
  CollectingSink audit;
  BackupServiceOptions o;
  o.interval_ms = 0;
  o.verify_interval_ms = 0;
  o.audit = &audit;
  auto svc = BackupService::Start(kb_.get(), o);
  ASSERT_TRUE(svc.ok()) << svc.status().ToString();
  auto m = (*svc)->RunBackup("api", {}, {});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->projects.at(0).source_check.result, "failed");
  EXPECT_EQ((*svc)->counters().source_check_failures.load(), 1);
  EXPECT_EQ((*svc)->counters().successes.load(), 1);  // stored: it may be all there is
  auto events = audit.Events("backup.source_check");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].outcome, "failed");
  EXPECT_NE(events[0].detail.find(m->id), std::string::npos) << events[0].detail;
}

TEST_F(BackupServiceTest, AConfiguredRepositoryNeedsAKey) {
  BackupServiceOptions o;
  o.repository_url = "file://" + dir_.Sub("elsewhere");
  auto svc = BackupService::Start(kb_.get(), o);
  EXPECT_EQ(svc.status().code(), Code::kInvalidArgument);
}

TEST_F(BackupServiceTest, ScheduledBackupsRunAndRetentionKeepsThePolicy) {
  BackupServiceOptions o;
  o.interval_ms = 150;  // no snapshot yet: the first is due at once
  o.retention = repo::RetentionPolicy{};
  o.retention.keep_last = 2;
  CollectingSink audit;
  o.audit = &audit;
  auto svc = BackupService::Start(kb_.get(), o);
  ASSERT_TRUE(svc.ok()) << svc.status().ToString();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((*svc)->counters().successes.load() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  (*svc)->Stop();  // joins the scheduler: no backup runs after this returns
  ASSERT_GE((*svc)->counters().successes.load(), 4);
  EXPECT_EQ((*svc)->counters().failures.load(), 0);
  auto list = (*svc)->ListSnapshots();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->size(), 2u);
  for (const repo::SnapshotSummary& s : *list) EXPECT_EQ(s.trigger, "schedule");

  // Each scheduled backup and each retention run is in the audit trail, as the system.
  const auto backups = audit.Events("backup.create");
  EXPECT_EQ(static_cast<int64_t>(backups.size()), (*svc)->counters().successes.load());
  for (const AuditEvent& e : backups) {
    EXPECT_EQ(e.actor_id, "system");
    EXPECT_EQ(e.method, "SYSTEM");
    EXPECT_EQ(e.outcome, "ok");
    EXPECT_NE(e.detail.find("snapshot"), std::string::npos);
  }
  EXPECT_EQ(audit.Events("backup.retention").size(), backups.size());

  // So is a restore, naming who asked for it.
  auto restored =
      (*svc)->RestoreProject("p", SnapshotSelector{}, /*merge=*/false, Actor{"key_asker", "asker"});
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  const auto restores = audit.Events("project.restore");
  ASSERT_EQ(restores.size(), 1u);
  EXPECT_EQ(restores[0].actor_id, "system");
  EXPECT_EQ(restores[0].outcome, "ok");
  EXPECT_EQ(restores[0].project, restored->project_id);
  EXPECT_NE(restores[0].detail.find("requested by key_asker"), std::string::npos);
}

// The schedule on a manual clock: every due time is exact. The scheduler thread reacts within
// milliseconds of real time (it sleeps in short real waits while the manual clock stands still).
class BackupScheduleTest : public ::testing::Test {
 protected:
  static constexpr int64_t kHour = 3'600'000;

  void SetUp() override {
    kb_ = OpenWithProject(dir_.Sub("data"), &clock_);
    ASSERT_NE(kb_, nullptr);
  }

  // A backup made by someone else (the CLI, another process): a service without a schedule.
  int64_t BackupElsewhere() {
    BackupServiceOptions o;
    o.interval_ms = 0;
    o.verify_interval_ms = 0;
    auto other = BackupService::Start(kb_.get(), o);
    EXPECT_TRUE(other.ok());
    auto m = (*other)->RunBackup("manual", {}, {});
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? ParseIso8601(m->time).value_or(-1) : -1;
  }

  std::unique_ptr<BackupService> StartScheduled(BackupServiceOptions o) {
    auto svc = BackupService::Start(kb_.get(), o);
    EXPECT_TRUE(svc.ok()) << svc.status().ToString();
    return svc.ok() ? std::move(svc).value() : nullptr;
  }

  // Waits (real time, at most 30 s) until `done` holds.
  template <typename F>
  static bool WaitFor(F done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  TempDir dir_;
  ManualClock clock_{1'795'000'000'000};
  std::unique_ptr<KnowledgeBase> kb_;
};

TEST_F(BackupScheduleTest, AfterARestartTheNextBackupIsDueOneIntervalAfterTheNewestSnapshot) {
  const int64_t made = BackupElsewhere();
  clock_.Advance(20 * 60'000);  // restarted 20 minutes later
  BackupServiceOptions o;
  o.interval_ms = kHour;
  auto svc = StartScheduled(o);
  ASSERT_TRUE(WaitFor([&] { return svc->counters().next_due_ms.load() != 0; }));
  // Not one interval after the start (that was the defect): one after the snapshot.
  EXPECT_EQ(svc->counters().next_due_ms.load(), made + kHour);
  // The figure /metrics exports is the repository's, though this process never backed up.
  EXPECT_EQ(svc->counters().last_success_ms.load(), made);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(svc->counters().successes.load(), 0);
  svc->Stop();
}

TEST_F(BackupScheduleTest, ANewestSnapshotOlderThanTheIntervalMeansABackupAtOnce) {
  const int64_t made = BackupElsewhere();
  clock_.Advance(2 * kHour);
  BackupServiceOptions o;
  o.interval_ms = kHour;
  auto svc = StartScheduled(o);
  ASSERT_TRUE(WaitFor([&] { return svc->counters().successes.load() == 1; }));
  const int64_t now = clock_.NowMillis();
  ASSERT_TRUE(WaitFor([&] { return svc->counters().next_due_ms.load() == now + kHour; }))
      << svc->counters().next_due_ms.load() - now;
  EXPECT_EQ(svc->counters().last_success_ms.load(), now);
  EXPECT_GT(now, made);
  svc->Stop();
}

TEST_F(BackupScheduleTest, ABackupMadeElsewhereMovesTheNextOne) {
  BackupElsewhere();
  BackupServiceOptions o;
  o.interval_ms = kHour;
  o.refresh_ms = 1000;
  auto svc = StartScheduled(o);
  ASSERT_TRUE(WaitFor([&] { return svc->counters().next_due_ms.load() != 0; }));
  clock_.Advance(10 * 60'000);
  const int64_t second = BackupElsewhere();
  clock_.Advance(1000);  // the next refresh
  ASSERT_TRUE(WaitFor([&] { return svc->counters().next_due_ms.load() == second + kHour; }))
      << svc->counters().next_due_ms.load() - second;
  EXPECT_EQ(svc->counters().last_success_ms.load(), second);
  EXPECT_EQ(svc->counters().successes.load(), 0);
  svc->Stop();
}

TEST_F(BackupScheduleTest, AFailedBackupIsRetriedWithDoublingBackoffCappedAtTheInterval) {
  // A repository that cannot exist: its directory would be below a regular file.
  ASSERT_TRUE(AtomicWriteFile(dir_.Sub("not-a-dir"), "x").ok());
  BackupServiceOptions o;
  o.repository_url = "file://" + dir_.Sub("not-a-dir/repo");
  o.key.passphrase = "correct horse battery staple";
  o.interval_ms = 400;
  o.retry_base_ms = 50;
  auto svc = StartScheduled(o);
  // Due at once (nothing readable), then 50, 100, 200, 400, 400 ms after each failure.
  for (int64_t expected_wait : {50, 100, 200, 400, 400}) {
    const int64_t failures_before = svc->counters().failures.load();
    ASSERT_TRUE(WaitFor([&] {
      return svc->counters().failures.load() == failures_before + 1 &&
             svc->counters().next_due_ms.load() > clock_.NowMillis();
    })) << "no failed run";
    EXPECT_EQ(svc->counters().next_due_ms.load() - clock_.NowMillis(), expected_wait);
    EXPECT_EQ(svc->counters().consecutive_failures.load(), failures_before + 1);
    clock_.Advance(expected_wait);
  }
  EXPECT_EQ(svc->counters().successes.load(), 0);
  EXPECT_EQ(svc->StatusJson()["consecutive_failures"].get<int64_t>(), 5);
  svc->Stop();
}

TEST_F(BackupScheduleTest, VerificationIsScheduledFromTheRepositoryAndReadsOneSliceARun) {
  BackupElsewhere();
  BackupServiceOptions o;
  o.interval_ms = 0;
  o.verify_interval_ms = kHour;
  o.verify_full_cycle_ms = 4 * kHour;
  CollectingSink audit;
  o.audit = &audit;
  auto svc = StartScheduled(o);
  // Never verified: at once; then one interval later.
  const int64_t now = clock_.NowMillis();
  ASSERT_TRUE(WaitFor([&] { return svc->counters().next_verify_ms.load() == now + kHour; }));
  EXPECT_EQ(svc->counters().last_verified_ms.load(), now);  // recorded in the repository
  EXPECT_EQ(svc->counters().verify_failures.load(), 0);
  auto runs = audit.Events("backup.verify");
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].outcome, "ok");
  // Slice (now / interval) mod 4, counted from 1 in the words.
  const std::string slice = std::to_string((now / kHour) % 4 + 1) + "/4";
  EXPECT_NE(runs[0].detail.find("pack slice " + slice), std::string::npos) << runs[0].detail;
  auto list = svc->ListSnapshots();
  ASSERT_TRUE(list.ok());
  EXPECT_FALSE(list->front().verified.empty());
  svc->Stop();

  // A restart within the interval does not verify again: due one interval after the record.
  clock_.Advance(10 * 60'000);
  auto again = StartScheduled(o);
  ASSERT_TRUE(WaitFor([&] { return again->counters().next_verify_ms.load() != 0; }));
  EXPECT_EQ(again->counters().next_verify_ms.load(), now + kHour);
  again->Stop();
  EXPECT_EQ(audit.Events("backup.verify").size(), 1u);
}

}  // namespace
}  // namespace kb::backup
