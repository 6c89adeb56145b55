// The audit log in backups (docs/format/AUDIT_LOG.md, "Backups"), on real data directories, a real
// audit log and a real local repository: a full snapshot holds audit.db and audit.head (a
// one-project snapshot does not), the copy taken while the log is being appended to is a valid
// chain, a whole restore keeps the live log or, when there is none, brings back the snapshot's
// after verifying it, and a snapshot whose audit data was edited is refused by that check.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "audit/audit_log.h"
#include "backup/restore.h"
#include "backup/restore_check.h"
#include "backup/source.h"
#include "common/clock.h"
#include "common/data_layout.h"
#include "common/file_util.h"
#include "service/knowledge_base.h"
#include "test_util.h"

namespace kb::backup {
namespace {

namespace fs = std::filesystem;
using kb::testing::TempDir;
using ::testing::HasSubstr;

class AuditBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_.passphrase = "audit backup test passphrase";
    repo::RepositoryParams params;
    params.scrypt_log2_n = 14;
    auto store = blob::OpenBlobStore("file://" + dir_.Sub("repo"), {}, /*create=*/true);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto repo = repo::Repository::Init(std::move(store).value(), key_, "test", params, &clock_);
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(repo).value();
    KbOptions o;
    o.data_dir = data_;
    o.clock = &clock_;
    o.index_save_interval_ms = 0;
    auto kb = KnowledgeBase::Open(o);
    ASSERT_TRUE(kb.ok()) << kb.status().ToString();
    CreateProjectRequest req;
    req.name = "herons";
    ASSERT_TRUE((*kb)->CreateProject(req, Actor{}).ok());
    IngestRequest doc;
    doc.content = "# Herons\n\nHerons stand still in shallow water.";
    doc.filename = "herons.md";
    ASSERT_TRUE((*kb)->Ingest("herons", doc, Actor{}).ok());
    (*kb)->Close();
  }

  static AuditEvent Event(const std::string& action) {
    AuditEvent e;
    e.actor_id = "cli";
    e.method = "CLI";
    e.route = action;
    e.action = action;
    e.outcome = "ok";
    return e;
  }
  // Appends `actions` to the audit log of `dir` as a direct-mode command does (opened, recorded,
  // closed).
  void Record(const std::string& dir, const std::vector<std::string>& actions) {
    auto log = audit::AuditLog::Open(layout::AuditDb(dir), &clock_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    for (const std::string& a : actions) (*log)->Record(Event(a));
    (*log)->Close();
  }

  struct Read {
    audit::VerifyReport report;
    std::vector<std::string> actions;  // oldest first
  };
  // Verifies the audit log in `dir` (read-only) and lists its actions.
  Read ReadLog(const std::string& dir) {
    Read out;
    audit::AuditLogOptions ro;
    ro.read_only = true;
    auto log = audit::AuditLog::Open(layout::AuditDb(dir), &clock_, ro);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    if (!log.ok()) return out;
    auto report = (*log)->Verify();
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    if (report.ok()) out.report = *report;
    Status s = (*log)->Export(std::nullopt, std::nullopt, [&](const std::string& line) {
      out.actions.push_back(nlohmann::json::parse(line)["action"].get<std::string>());
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  repo::SnapshotManifest Backup(const SourceOptions& so = {}) {
    clock_.Advance(60'000);
    auto m = BackupDataDirectory(*repo_, data_, so, repo::BackupOptions{});
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : repo::SnapshotManifest{};
  }

  static std::vector<std::string> CatalogPaths(const repo::SnapshotManifest& m) {
    std::vector<std::string> out;
    for (const repo::SnapshotFile& f : m.catalog_files) out.push_back(f.path);
    return out;
  }

  static void Exec(const std::string& db_path, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  ManualClock clock_{1'795'688'400'000};  // 2026-11-26T10:20:00Z
  TempDir dir_;
  const std::string data_ = dir_.Sub("data");
  repo::KeySource key_;
  std::unique_ptr<repo::Repository> repo_;
};

TEST_F(AuditBackupTest, AFullSnapshotHoldsTheAuditLogAndItsHeadAndAProjectSnapshotDoesNot) {
  Record(data_, {"project.create", "document.create", "apikey.create"});
  repo::SnapshotManifest full = Backup();
  EXPECT_EQ(CatalogPaths(full), (std::vector<std::string>{"catalog.db", "audit.db", "audit.head"}));

  // What `audit verify --repo --snapshot` reads: the two files alone, a chain that verifies.
  const std::string out = dir_.Sub("audit-of-full");
  ASSERT_TRUE(RestoreAuditLog(*repo_, full, out).ok());
  EXPECT_TRUE(fs::exists(layout::AuditHead(out)));
  EXPECT_FALSE(fs::exists(layout::CatalogDb(out)));  // nothing but the audit log is fetched
  EXPECT_FALSE(fs::exists(layout::ProjectsDir(out)));
  Read read = ReadLog(out);
  EXPECT_TRUE(read.report.ok) << read.report.problem;
  EXPECT_EQ(read.report.entries, 3);
  EXPECT_EQ(read.report.head_seq, 3);
  EXPECT_EQ(read.actions,
            (std::vector<std::string>{"project.create", "document.create", "apikey.create"}));

  SourceOptions one;
  one.projects = {"herons"};
  repo::SnapshotManifest partial = Backup(one);
  EXPECT_TRUE(partial.catalog_files.empty());
  Status none = RestoreAuditLog(*repo_, partial, dir_.Sub("audit-of-partial"));
  EXPECT_EQ(none.code(), Code::kNotFound);
  EXPECT_THAT(none.message(), HasSubstr("holds no audit log"));
  EXPECT_FALSE(fs::exists(dir_.Sub("audit-of-partial")));
}

TEST_F(AuditBackupTest, ADataDirectoryWithoutAnAuditLogBacksUpWithoutOne) {
  ASSERT_FALSE(fs::exists(layout::AuditDb(data_)));
  repo::SnapshotManifest m = Backup();
  EXPECT_EQ(CatalogPaths(m), std::vector<std::string>{"catalog.db"});
  EXPECT_FALSE(fs::exists(layout::AuditDb(data_)));  // the backup did not create one
  Status none = RestoreAuditLog(*repo_, m, dir_.Sub("out"));
  EXPECT_EQ(none.code(), Code::kNotFound);
  // And a whole restore into a fresh directory says it has none.
  auto r = RestoreDataDirectory(*repo_, m, dir_.Sub("fresh"), &clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->audit_log, "none");
  EXPECT_EQ(r->ToJson()["audit_log"], "none");
  EXPECT_FALSE(fs::exists(layout::AuditDb(dir_.Sub("fresh"))));
}

// The server's writer keeps appending while backups run: each snapshot's copy must be a chain that
// verifies, with its head file (read before the copy) never beyond the copied entries. The hook
// appends a batch between the head read and the copy, so every copy holds entries its head does
// not name yet; the background writer appends throughout.
TEST_F(AuditBackupTest, ACopyTakenWhileTheLogIsAppendedToIsAValidChain) {
  audit::AuditLogOptions options;
  options.max_block_ms = 5000;
  auto log = audit::AuditLog::Open(layout::AuditDb(data_), &clock_, options);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  audit::AuditLog& writer = **log;
  std::atomic<bool> stop{false};
  std::atomic<int> recorded{0};
  std::thread background([&] {
    while (!stop.load()) {
      writer.Record(Event("document.create"));
      if (recorded.fetch_add(1) % 16 == 0) writer.Flush();  // many small commits
    }
  });
  while (recorded.load() < 200) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  SourceOptions so;
  so.after_audit_head_read = [&] {
    for (int i = 0; i < 20; ++i) writer.Record(Event("backup.create"));
    writer.Flush();
  };
  std::vector<repo::SnapshotManifest> snapshots;
  for (int round = 0; round < 4; ++round) snapshots.push_back(Backup(so));
  stop.store(true);
  background.join();
  writer.Flush();

  int64_t previous_last = 0;
  for (const repo::SnapshotManifest& m : snapshots) {
    SCOPED_TRACE(m.id);
    const std::string out = dir_.Sub("audit-" + m.id);
    ASSERT_TRUE(RestoreAuditLog(*repo_, m, out).ok());
    Read read = ReadLog(out);
    EXPECT_TRUE(read.report.ok) << read.report.bad_seq << ": " << read.report.problem;
    EXPECT_EQ(read.report.first_seq, 1);
    EXPECT_GT(read.report.head_seq, 0);
    // The batch appended after the head was read is in the copy: the head lags, never leads.
    EXPECT_GE(read.report.last_seq, read.report.head_seq + 20);
    EXPECT_GT(read.report.last_seq, previous_last);  // each later copy holds more
    previous_last = read.report.last_seq;
    EXPECT_TRUE(CheckRestoredAuditLog(out).empty());
  }
  // The live log went on and is intact as well.
  writer.Close();
  Read live = ReadLog(data_);
  EXPECT_TRUE(live.report.ok) << live.report.problem;
  EXPECT_GT(live.report.last_seq, previous_last);
}

// The host is gone: a whole restore onto a fresh directory brings back the snapshot's trail
// (checked before the swap), and the restore event continues that chain.
TEST_F(AuditBackupTest, AWholeRestoreOntoAFreshDirectoryBringsBackTheSnapshotsAuditLog) {
  Record(data_, {"project.create", "document.create"});
  repo::SnapshotManifest m = Backup();
  Record(data_, {"project.delete"});  // after the snapshot: lost with the host

  const std::string fresh = dir_.Sub("new-host/data");
  auto r = RestoreDataDirectory(*repo_, m, fresh, &clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->audit_log, "snapshot");
  EXPECT_EQ(r->ToJson()["audit_log"], "snapshot");
  EXPECT_TRUE(r->warnings.empty()) << r->warnings.front();
  // Only the snapshot's files: no leftover -shm/-wal of the check's read-only connection.
  EXPECT_FALSE(fs::exists(layout::AuditDb(fresh) + "-shm"));
  Record(fresh, {"data.restore"});  // what the CLI appends after the restore
  Read read = ReadLog(fresh);
  EXPECT_TRUE(read.report.ok) << read.report.problem;
  EXPECT_EQ(read.report.head_seq, 3);
  EXPECT_EQ(read.actions,
            (std::vector<std::string>{"project.create", "document.create", "data.restore"}));
}

// A live audit log is never rolled back: the snapshot's copy is dropped, the live one (with the
// entries written after the snapshot) is carried over and continues.
TEST_F(AuditBackupTest, AWholeRestoreOverALiveAuditLogKeepsTheLiveOne) {
  Record(data_, {"project.create"});
  repo::SnapshotManifest m = Backup();
  Record(data_, {"project.delete", "apikey.revoke"});
  auto r = RestoreDataDirectory(*repo_, m, data_, &clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->audit_log, "live");
  EXPECT_TRUE(r->warnings.empty()) << r->warnings.front();
  Record(data_, {"data.restore"});
  Read read = ReadLog(data_);
  EXPECT_TRUE(read.report.ok) << read.report.problem;
  EXPECT_EQ(read.report.head_seq, 4);  // the live head, not the snapshot's (which named 1)
  EXPECT_EQ(read.actions, (std::vector<std::string>{"project.create", "project.delete",
                                                    "apikey.revoke", "data.restore"}));
}

// A failed restore onto a fresh volume records its failure there, leaving a directory with an
// audit log but no catalog. The next attempt must still bring back the snapshot's trail: that
// lone log is not a node's history; it stays in the moved-aside directory, said in a warning.
TEST_F(AuditBackupTest, ALoneAuditLogWithoutADataDirectoryDoesNotPushOutTheSnapshots) {
  Record(data_, {"project.create", "document.create"});
  repo::SnapshotManifest m = Backup();
  const std::string fresh = dir_.Sub("fresh");
  fs::create_directories(fresh);
  Record(fresh, {"data.restore"});  // the failed attempt, recorded by the CLI
  ASSERT_FALSE(fs::exists(layout::CatalogDb(fresh)));
  auto r = RestoreDataDirectory(*repo_, m, fresh, &clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->audit_log, "snapshot");
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_THAT(r->warnings[0], HasSubstr("stays in " + r->moved_aside));
  EXPECT_EQ(ReadLog(fresh).actions,
            (std::vector<std::string>{"project.create", "document.create"}));
  EXPECT_EQ(ReadLog(r->moved_aside).actions, std::vector<std::string>{"data.restore"});
}

// A snapshot made from a data directory whose audit.db was edited by hand: the restore test
// names it, reading it from the snapshot fails verification, and a whole restore that would
// install it is refused before the swap (nothing is left behind).
TEST_F(AuditBackupTest, ASnapshotWithEditedAuditDataFailsVerificationAndIsNotRestored) {
  Record(data_, {"project.create", "document.create", "document.delete", "apikey.create"});
  Exec(layout::AuditDb(data_), "UPDATE audit_entries SET detail = 'nothing to see' WHERE seq = 3");
  repo::SnapshotManifest m = Backup();

  const std::string out = dir_.Sub("audit-copy");
  ASSERT_TRUE(RestoreAuditLog(*repo_, m, out).ok());
  Read read = ReadLog(out);
  EXPECT_FALSE(read.report.ok);
  EXPECT_FALSE(read.report.chain_intact);
  EXPECT_EQ(read.report.bad_seq, 3);

  repo::VerifyOptions vo;
  vo.restore_test = true;
  vo.temp_dir = dir_.Sub("verify-tmp");
  fs::create_directories(vo.temp_dir);
  auto reports = repo_->Verify({m.id}, WithRestoredCheck(vo));
  ASSERT_TRUE(reports.ok()) << reports.status().ToString();
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_FALSE(reports->front().ok);
  std::string all;
  for (const std::string& p : reports->front().problems) all += p + "\n";
  EXPECT_THAT(all, HasSubstr("audit log: damaged at entry 3")) << all;

  const std::string fresh = dir_.Sub("fresh");
  auto r = RestoreDataDirectory(*repo_, m, fresh, &clock_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_THAT(r.status().message(), HasSubstr("audit log"));
  EXPECT_THAT(r.status().message(), HasSubstr("entry 3"));
  EXPECT_FALSE(fs::exists(fresh));
  for (const auto& entry : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().filename().string().find("fresh.restoring-"), std::string::npos)
        << entry.path();
  }
}

// --latest-valid (and --restore-if-empty, which uses it) walks back past a snapshot whose audit
// log fails verification, as past one whose databases fail their check; naming the snapshot alone
// stops there.
TEST_F(AuditBackupTest, LatestValidWalksBackPastASnapshotWhoseAuditLogWasEdited) {
  Record(data_, {"project.create", "document.create"});
  repo::SnapshotManifest good = Backup();
  Exec(layout::AuditDb(data_), "UPDATE audit_entries SET actor_id = 'someone' WHERE seq = 2");
  repo::SnapshotManifest edited = Backup();

  SnapshotSelector named;
  named.snapshot_id = edited.id;
  named.need_full = true;
  auto stopped = RestoreDataDirectoryFrom(*repo_, named, dir_.Sub("a"), &clock_, {}, nullptr);
  EXPECT_EQ(stopped.status().code(), Code::kCorruption);
  EXPECT_FALSE(fs::exists(dir_.Sub("a")));

  SnapshotSelector latest_valid;
  latest_valid.latest_valid = true;
  latest_valid.need_full = true;
  Selection chosen;
  auto r = RestoreDataDirectoryFrom(*repo_, latest_valid, dir_.Sub("b"), &clock_, {}, &chosen);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->snapshot_id, good.id);
  EXPECT_EQ(r->audit_log, "snapshot");
  ASSERT_EQ(chosen.skipped.size(), 1u);
  EXPECT_EQ(chosen.skipped[0].id, edited.id);
  EXPECT_THAT(chosen.skipped[0].reason, HasSubstr("audit log: damaged at entry 2"));
  Read read = ReadLog(dir_.Sub("b"));
  EXPECT_TRUE(read.report.ok) << read.report.problem;
  EXPECT_EQ(read.actions, (std::vector<std::string>{"project.create", "document.create"}));
}

// A log that once was found cut short holds an audit.head_mismatch entry: verify keeps failing
// on it, but the chain is whole. A restore takes it (that record is the history) and warns.
TEST_F(AuditBackupTest, ASnapshotLogThatRecordsAnEarlierLossIsRestoredWithAWarning) {
  Record(data_, {"project.create", "document.create", "document.delete"});
  Exec(layout::AuditDb(data_), "DELETE FROM audit_entries WHERE seq = 3");
  Record(data_, {"apikey.create"});  // the opener records the mismatch first
  repo::SnapshotManifest m = Backup();
  auto r = RestoreDataDirectory(*repo_, m, dir_.Sub("fresh"), &clock_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->audit_log, "snapshot");
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_THAT(r->warnings[0], HasSubstr("records an earlier loss"));
  Read read = ReadLog(dir_.Sub("fresh"));
  EXPECT_TRUE(read.report.chain_intact);
  EXPECT_EQ(read.actions, (std::vector<std::string>{"project.create", "document.create",
                                                    "audit.head_mismatch", "apikey.create"}));
}

}  // namespace
}  // namespace kb::backup
