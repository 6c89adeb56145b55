// AuditLog on real SQLite files: tampering with audit.db directly (as an attacker with file
// access would) must make Verify() fail and name the first bad entry.
#include "audit/audit_log.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <set>
#include <thread>

#include "common/text_util.h"
#include "test_util.h"

namespace kb::audit {
namespace {

using kb::testing::TempDir;

constexpr int64_t kT0 = 1'790'000'000'000;  // 2026-09
constexpr int64_t kDay = 24LL * 60 * 60 * 1000;

AuditEvent Event(int i, const std::string& key = "key-a", const std::string& project = "p1") {
  AuditEvent e;
  e.request_id = "req-" + std::to_string(i);
  e.actor_id = key;
  e.actor_name = "name-" + key;
  e.remote = "10.0.0." + std::to_string(i % 4);
  e.method = "POST";
  e.route = "/api/v1/projects/{project}/documents";
  e.action = "document.create";
  e.project = project;
  e.document_ids = {"doc-" + std::to_string(i)};
  e.outcome = "ok";
  e.status = 201;
  return e;
}

// Runs SQL on the file directly, outside the AuditLog.
void Tamper(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

class AuditLogTest : public ::testing::Test {
 protected:
  std::string DbPath() const { return dir_.Sub("audit.db"); }
  std::unique_ptr<AuditLog> OpenLog(AuditLogOptions options = {}) {
    auto log = AuditLog::Open(DbPath(), &clock_, options);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? std::move(log).value() : nullptr;
  }
  // Records n events one day apart from kT0 and closes the log.
  void WriteEvents(int n) {
    auto log = OpenLog();
    for (int i = 1; i <= n; ++i) {
      AuditEvent e = Event(i);
      e.time_ms = kT0 + i * 1000;
      log->Record(e);
    }
    log->Close();
  }
  VerifyReport VerifyNow() {
    auto log = OpenLog();
    auto report = log->Verify();
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? *report : VerifyReport{};
  }

  TempDir dir_;
  ManualClock clock_{kT0};
};

TEST_F(AuditLogTest, IntactChainVerifiesAndCountsEveryEntry) {
  WriteEvents(20);
  VerifyReport r = VerifyNow();
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.entries, 20);
  EXPECT_EQ(r.first_seq, 1);
  EXPECT_EQ(r.last_seq, 20);
  EXPECT_EQ(r.head_seq, 20);
}

// The test vector of docs/format/AUDIT_LOG.md section 3: the spec and the code agree.
TEST_F(AuditLogTest, HashFollowsTheSpecifiedEncoding) {
  AuditEntry e;
  e.seq = 1;
  e.kind = "event";
  e.event.time_ms = 1790000000000;
  e.event.request_id = "req-1";
  e.event.actor_id = "key_0123";
  e.event.actor_name = "admin";
  e.event.remote = "127.0.0.1";
  e.event.method = "DELETE";
  e.event.route = "/api/v1/projects/{project}";
  e.event.action = "project.delete";
  e.event.project = "p-1";
  e.document_ids_json = "[]";
  e.event.outcome = "ok";
  e.event.status = 204;
  e.prev_hash = std::string(64, '0');
  EXPECT_EQ(ComputeEntryHash(e),
            "ddcd760771eb4c5ff639f178349b6aad273f2dd50a84d3f17cb1d10f79a8a865");
}

TEST_F(AuditLogTest, EmptyLogVerifies) {
  VerifyReport r = VerifyNow();
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.entries, 0);
}

TEST_F(AuditLogTest, DeletedRowIsNamed) {
  WriteEvents(10);
  Tamper(DbPath(), "DELETE FROM audit_entries WHERE seq = 5");
  VerifyReport r = VerifyNow();
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.chain_intact);
  EXPECT_EQ(r.bad_seq, 5);
  EXPECT_NE(r.problem.find("entry 5 is missing"), std::string::npos) << r.problem;
}

TEST_F(AuditLogTest, DeletedOldestRowIsNamed) {
  WriteEvents(10);
  Tamper(DbPath(), "DELETE FROM audit_entries WHERE seq = 1");
  VerifyReport r = VerifyNow();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_seq, 1);
}

TEST_F(AuditLogTest, EditOfAnyFieldOfOneRowIsNamed) {
  WriteEvents(10);
  const std::vector<std::string> edits = {
      "time_ms = time_ms + 1", "request_id = 'forged'", "actor_id = 'someone-else'",
      "actor_name = 'x'",      "remote = '1.2.3.4'",    "method = 'GET'",
      "route = '/x'",          "action = 'nothing'",    "project = 'p2'",
      "document_ids = '[]'",   "outcome = 'refused'",   "status = 200",
      "detail = 'innocent'",   "kind = 'anchor'",       "anchor_seq = 3",
      "anchor_hash = 'ab'",    "prev_hash = 'cd'",      "hash = 'ef'"};
  for (const std::string& edit : edits) {
    SCOPED_TRACE(edit);
    TempDir copy;
    // Work on a copy so that each edit is the only one.
    Tamper(DbPath(), "VACUUM INTO '" + copy.Sub("audit.db") + "'");
    std::filesystem::copy_file(dir_.Sub("audit.head"), copy.Sub("audit.head"));
    Tamper(copy.Sub("audit.db"), "UPDATE audit_entries SET " + edit + " WHERE seq = 7");
    auto log = AuditLog::Open(copy.Sub("audit.db"), &clock_);
    ASSERT_TRUE(log.ok());
    auto r = (*log)->Verify();
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->ok);
    EXPECT_FALSE(r->chain_intact);
    // An edited hash (or previous hash) is caught at that entry or where the next one chains.
    EXPECT_TRUE(r->bad_seq == 7 || (edit.rfind("hash", 0) == 0 && r->bad_seq == 8))
        << r->bad_seq << ": " << r->problem;
  }
}

TEST_F(AuditLogTest, TruncationOfNewestEntriesIsCaughtThroughTheHeadFile) {
  WriteEvents(10);
  Tamper(DbPath(), "DELETE FROM audit_entries WHERE seq >= 9");
  VerifyReport r = VerifyNow();
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.chain_intact);
  EXPECT_EQ(r.bad_seq, 9);
  EXPECT_NE(r.problem.find("head file"), std::string::npos) << r.problem;
}

TEST_F(AuditLogTest, ReopeningATruncatedLogRecordsTheTruncationInTheChain) {
  WriteEvents(10);
  Tamper(DbPath(), "DELETE FROM audit_entries WHERE seq >= 9");
  auto log = OpenLog();
  log->Flush();  // the head file now names the new entry; the evidence must be in the chain
  AuditQuery q;
  q.action = "audit.head_mismatch";
  auto page = log->Query(q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_NE(page->entries[0].event.detail.find("names entry 10"), std::string::npos);
  EXPECT_EQ(page->entries[0].seq, 9);
  // The chain is intact again, but verify keeps naming the recorded loss (and says the chain
  // itself is whole: a restore may take this log).
  auto r = log->Verify();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_TRUE(r->chain_intact);
  EXPECT_EQ(r->bad_seq, 9);
}

TEST_F(AuditLogTest, ReadOnlyOpenNeitherCreatesNorAppends) {
  AuditLogOptions ro;
  ro.read_only = true;
  EXPECT_EQ(AuditLog::Open(DbPath(), &clock_, ro).status().code(), Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(DbPath()));
  WriteEvents(10);
  Tamper(DbPath(), "DELETE FROM audit_entries WHERE seq >= 9");
  auto log = AuditLog::Open(DbPath(), &clock_, ro);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  auto r = (*log)->Verify();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->bad_seq, 9);  // the head file was not overwritten by opening
  (*log)->Record(Event(1));
  EXPECT_EQ((*log)->counters().dropped.load(), 1);
}

TEST_F(AuditLogTest, EditedHeadFileIsRefusedByVerify) {
  WriteEvents(3);
  kb::testing::WriteTestFile(dir_.Sub("audit.head"), "KBAUDITHEAD 1\nseq 2\nhash x\nsha256 00\n");
  auto log = OpenLog();
  EXPECT_EQ(log->Verify().status().code(), Code::kCorruption);
}

TEST_F(AuditLogTest, RetentionRemovesOldEntriesAndVerifyStillPasses) {
  AuditLogOptions options;
  options.retention_ms = 90 * kDay;
  {
    auto log = OpenLog(options);
    for (int i = 1; i <= 10; ++i) {
      AuditEvent e = Event(i);
      e.time_ms = kT0 + i * 10 * kDay;  // days 10, 20, ..., 100
      log->Record(e);
    }
    log->Flush();
    auto removed = log->ApplyRetention(kT0 + 125 * kDay);  // cutoff day 35: 1..3 go
    ASSERT_TRUE(removed.ok()) << removed.status().ToString();
    EXPECT_EQ(*removed, 3);
    auto again = log->ApplyRetention(kT0 + 125 * kDay);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, 0);
    log->Record(Event(11));
    log->Close();
  }
  VerifyReport r = VerifyNow();
  EXPECT_TRUE(r.ok) << r.bad_seq << ": " << r.problem;
  EXPECT_EQ(r.first_seq, 4);
  EXPECT_EQ(r.last_seq, 12);  // 10 events + anchor (11) + one more event
  EXPECT_EQ(r.entries, 9);

  // Removing the oldest kept entry is still caught after retention.
  Tamper(DbPath(), "DELETE FROM audit_entries WHERE seq = 4");
  r = VerifyNow();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad_seq, 4);
}

TEST_F(AuditLogTest, RetentionOfEverythingLeavesAVerifiableAnchor) {
  AuditLogOptions options;
  options.retention_ms = kDay;
  auto log = OpenLog(options);
  for (int i = 1; i <= 5; ++i) log->Record(Event(i));
  log->Flush();
  auto removed = log->ApplyRetention(kT0 + 10 * kDay);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 5);
  auto r = log->Verify();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->problem;
  EXPECT_EQ(r->entries, 1);
  EXPECT_EQ(r->first_seq, 6);
}

TEST_F(AuditLogTest, ConcurrentRecordersLoseNothing) {
  auto log = OpenLog();
  constexpr int kThreads = 8, kPerThread = 400;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) log->Record(Event(i, "key-" + std::to_string(t)));
    });
  }
  for (auto& t : threads) t.join();
  log->Flush();
  EXPECT_EQ(log->counters().events.load(), kThreads * kPerThread);
  EXPECT_EQ(log->counters().dropped.load(), 0);
  EXPECT_EQ(log->counters().write_failures.load(), 0);
  auto r = log->Verify();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->problem;
  EXPECT_EQ(r->entries, kThreads * kPerThread);
  AuditQuery q;
  q.key = "key-3";
  q.limit = 1000;
  auto page = log->Query(q);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->entries.size(), static_cast<size_t>(kPerThread));
}

TEST_F(AuditLogTest, AFullQueueBlocksBrieflyThenCountsWhatItDrops) {
  AuditLogOptions options;
  options.queue_capacity = 1;
  options.max_block_ms = 0;
  auto log = OpenLog(options);
  for (int i = 0; i < 2000; ++i) log->Record(Event(i));
  log->Flush();
  const int64_t written = log->counters().events.load();
  const int64_t dropped = log->counters().dropped.load();
  EXPECT_EQ(written + dropped, 2000);
  auto r = log->Verify();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok);
  EXPECT_EQ(r->entries, written);
}

TEST_F(AuditLogTest, RecordAfterCloseIsCountedAsDropped) {
  auto log = OpenLog();
  log->Close();
  log->Record(Event(1));
  EXPECT_EQ(log->counters().dropped.load(), 1);
}

TEST_F(AuditLogTest, QueryFiltersAndPagesWithACursor) {
  auto log = OpenLog();
  for (int i = 1; i <= 30; ++i) {
    AuditEvent e = Event(i, i % 3 == 0 ? "key-b" : "key-a", i % 2 ? "p1" : "p2");
    e.time_ms = kT0 + i * 1000;
    if (i == 17) {
      e.status = 403;
      e.outcome = "refused";
      e.action = "project.delete";
    }
    log->Record(e);
  }
  log->Flush();

  AuditQuery by_key;
  by_key.key = "key-b";
  by_key.limit = 4;
  std::vector<int64_t> seqs;
  for (int page_no = 0; page_no < 10; ++page_no) {
    auto page = log->Query(by_key);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const auto& e : page->entries) {
      EXPECT_EQ(e.event.actor_id, "key-b");
      seqs.push_back(e.seq);
    }
    if (page->next_cursor.empty()) break;
    by_key.cursor = page->next_cursor;
  }
  EXPECT_EQ(seqs, (std::vector<int64_t>{30, 27, 24, 21, 18, 15, 12, 9, 6, 3}));

  AuditQuery window;
  window.since_ms = kT0 + 10 * 1000;
  window.until_ms = kT0 + 20 * 1000;
  window.projects = {"p2"};
  auto page = log->Query(window);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 5u);  // 10, 12, 14, 16, 18
  EXPECT_EQ(page->entries.front().seq, 18);
  EXPECT_EQ(page->entries.back().seq, 10);

  AuditQuery refused;
  refused.status = 403;
  refused.action = "project.delete";
  refused.remote = "10.0.0.1";
  page = log->Query(refused);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].event.request_id, "req-17");
  EXPECT_EQ(page->entries[0].event.document_ids, std::vector<std::string>{"doc-17"});

  AuditQuery bad;
  bad.cursor = "abc";
  EXPECT_EQ(log->Query(bad).status().code(), Code::kInvalidArgument);
  bad.cursor.clear();
  bad.limit = 0;
  EXPECT_EQ(log->Query(bad).status().code(), Code::kInvalidArgument);
}

TEST_F(AuditLogTest, HostileStringsAreStoredLiterallyAndBounded) {
  auto log = OpenLog();
  AuditEvent e = Event(1);
  const std::string injection = "p1'; DROP TABLE audit_entries; --";
  e.project = injection;
  e.actor_name = std::string("bad\xff\xfe utf8 \xc3", 12);
  e.detail = std::string(100'000, 'x');
  e.route = std::string(5000, 'r');
  e.document_ids.assign(5000, "d");
  log->Record(e);
  log->Flush();

  AuditQuery q;
  q.projects = {injection};
  auto page = log->Query(q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->entries.size(), 1u);
  const AuditEntry& got = page->entries[0];
  EXPECT_EQ(got.event.project, injection);
  EXPECT_TRUE(IsValidUtf8(got.event.actor_name));
  EXPECT_EQ(got.event.actor_name.rfind("bad", 0), 0u);
  EXPECT_LE(got.event.detail.size(), kMaxAuditDetailBytes);
  EXPECT_LE(got.event.route.size(), kMaxAuditFieldBytes);
  EXPECT_EQ(got.event.document_ids.size(), kMaxAuditDocumentIds);
  EXPECT_NE(got.event.detail.find("more document ids"), std::string::npos);
  auto r = log->Verify();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok);
  // The JSON form is always printable.
  EXPECT_FALSE(EntryToJson(got).dump().empty());
}

TEST_F(AuditLogTest, ExportWritesOneJsonLinePerEntryOldestFirst) {
  auto log = OpenLog();
  for (int i = 1; i <= 6; ++i) {
    AuditEvent e = Event(i);
    e.time_ms = kT0 + i * 1000;
    log->Record(e);
  }
  log->Flush();
  std::vector<nlohmann::json> lines;
  ASSERT_TRUE(
      log->Export(kT0 + 2000, kT0 + 5000,
                  [&](const std::string& line) { lines.push_back(nlohmann::json::parse(line)); })
          .ok());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["seq"], 2);
  EXPECT_EQ(lines[2]["seq"], 4);
  EXPECT_EQ(lines[1]["request_id"], "req-3");
  EXPECT_EQ(lines[1]["time"], FormatIso8601(kT0 + 3000));
  EXPECT_EQ(lines[1]["prev_hash"], lines[0]["hash"]);
}

TEST_F(AuditLogTest, ANewerFormatIsRefused) {
  WriteEvents(1);
  Tamper(DbPath(), "PRAGMA user_version = 2");
  auto log = AuditLog::Open(DbPath(), &clock_);
  EXPECT_EQ(log.status().code(), Code::kFailedPrecondition);
}

TEST_F(AuditLogTest, AnotherDatabaseIsRefused) {
  Tamper(DbPath(), "CREATE TABLE projects (id TEXT)");
  auto log = AuditLog::Open(DbPath(), &clock_);
  EXPECT_EQ(log.status().code(), Code::kCorruption);
}

}  // namespace
}  // namespace kb::audit
