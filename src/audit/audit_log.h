// AuditLog: the tamper-evident record of who did what (audit.db in the data directory). It is
// the AuditSink the HTTP layer, the knowledge base, the backup service and direct-mode CLI
// commands report to. Format, hash chain, retention and threat model: docs/format/AUDIT_LOG.md
// (the constants below are quoted there).
//
// Writing: Record() only validates, bounds and enqueues; one writer thread appends whatever has
// queued up in one SQLite transaction (group commit, synchronous=FULL: a batch is durable when
// its transaction returns) and then rewrites the head file (`audit.head`), a second copy of the
// newest entry's seq and hash that lets Verify() notice the newest entries being cut off. When
// the queue is full, Record() blocks up to AuditLogOptions::max_block_ms for space; if there is
// still none the event is dropped, counted (dropped_total) and logged with its fields, so that a
// loss is never silent. A batch whose transaction fails is retried once, then counted in
// write_failures_total and logged the same way. Recording never fails the recorded action.
//
// Reading (Verify, Query, Export) uses its own connection and sees committed entries only; call
// Flush() first to include everything recorded so far.
//
// A chain that is intact but holds an "audit.head_mismatch" entry (written when the log was
// opened and found cut short) still fails Verify(), naming that entry: the loss it records
// cannot be undone, only aged out by retention.
//
// Several processes may write one audit.db (a direct-mode CLI command beside a server): each
// batch reads the chain's tail inside its write transaction.
//
// Thread-safety: every method may be called from any thread. Close() (also run by the
// destructor) drains the queue and joins the writer; Record() after Close() drops and counts.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/audit_sink.h"
#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"

namespace kb::sql {
class Database;
}  // namespace kb::sql

namespace kb::audit {

// Numbers in one place (docs/format/AUDIT_LOG.md and docs/CONFIG.md quote them).
inline constexpr int kAuditFormatVersion = 1;
inline constexpr int64_t kDefaultAuditRetentionMs = 90LL * 24 * 60 * 60 * 1000;
inline constexpr int64_t kAuditRetentionIntervalMs = 24LL * 60 * 60 * 1000;
inline constexpr size_t kDefaultAuditQueueCapacity = 10000;
inline constexpr int64_t kDefaultAuditMaxBlockMs = 200;
inline constexpr size_t kMaxAuditBatch = 1000;
// Field bounds: longer values are cut at a UTF-8 boundary and marked with "...".
inline constexpr size_t kMaxAuditFieldBytes = 512;
inline constexpr size_t kMaxAuditDetailBytes = 2048;
inline constexpr size_t kMaxAuditDocumentIds = 100;
inline constexpr int kDefaultAuditQueryLimit = 100;
inline constexpr int kMaxAuditQueryLimit = 1000;

struct AuditLogOptions {
  // Entries older than this are removed by ApplyRetention (0 = keep everything).
  int64_t retention_ms = kDefaultAuditRetentionMs;
  // The writer thread applies retention once after Open and then this often (0 = never by
  // itself: direct-mode CLI commands and tests; `serve` passes kAuditRetentionIntervalMs).
  int64_t retention_interval_ms = 0;
  size_t queue_capacity = kDefaultAuditQueueCapacity;
  int64_t max_block_ms = kDefaultAuditMaxBlockMs;
  // For inspection (`audit verify/list/export`): no writer, nothing created or appended, and the
  // head file is left alone. Record() drops and counts.
  bool read_only = false;
};

// One stored entry: an event, or a retention anchor (kind "anchor", docs/format/AUDIT_LOG.md).
struct AuditEntry {
  int64_t seq = 0;
  std::string kind;  // "event" | "anchor"
  AuditEvent event;
  std::string document_ids_json;  // as stored (and hashed)
  int64_t anchor_seq = 0;         // anchors: the last removed entry
  std::string anchor_hash;        // anchors: its hash
  std::string prev_hash;
  std::string hash;
};

struct VerifyReport {
  bool ok = true;
  int64_t entries = 0;    // rows checked
  int64_t first_seq = 0;  // 0 when empty
  int64_t last_seq = 0;
  int64_t head_seq = 0;  // from the head file; 0 if it is missing
  int64_t bad_seq = 0;   // the first bad entry when !ok
  std::string problem;   // what is wrong with it
  // False when the chain or its head file is damaged (bad_seq names where). True with !ok when
  // the only finding is an "audit.head_mismatch" entry: the chain is whole, and it records a
  // loss found earlier (a restore may take such a log; it may not take a broken chain).
  bool chain_intact = true;
};

struct AuditQuery {
  std::optional<int64_t> since_ms;    // time_ms >= since
  std::optional<int64_t> until_ms;    // time_ms < until
  std::string action;                 // exact; empty = any
  std::vector<std::string> projects;  // any of these (id and name); empty = any
  std::string key;                    // actor id (a key id, "cli", "system")
  std::string remote;                 // exact client address
  std::optional<int> status;
  int limit = kDefaultAuditQueryLimit;
  std::string cursor;  // from a previous page; empty = newest first
};

struct AuditPage {
  std::vector<AuditEntry> entries;  // newest first
  std::string next_cursor;          // empty when there is nothing older
};

struct AuditCounters {
  std::atomic<int64_t> events{0};          // entries committed (events and anchors)
  std::atomic<int64_t> write_failures{0};  // events lost because their batch could not commit
  std::atomic<int64_t> dropped{0};         // events refused because the queue stayed full
};

class AuditLog final : public AuditSink {
 public:
  // Opens (creating if needed) the audit database at `path` (its head file sits beside it as
  // layout::kAuditHeadName) and starts the writer. FailedPrecondition for a newer format version,
  // Corruption if the file is not an audit database. `clock` null = the system clock.
  static Result<std::unique_ptr<AuditLog>> Open(const std::string& path, const Clock* clock,
                                                const AuditLogOptions& options = {});
  ~AuditLog() override;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Enqueues (see the file comment). Stamps time_ms with the clock when it is 0.
  void Record(AuditEvent event) override EXCLUDES(mu_);
  // Returns once everything recorded before the call is committed (or counted as failed).
  void Flush() EXCLUDES(mu_);
  // Drains the queue and stops the writer. Idempotent.
  void Close() EXCLUDES(mu_);

  // Checks the whole chain and the head file; the report names the first bad entry.
  Result<VerifyReport> Verify() EXCLUDES(read_mu_);
  Result<AuditPage> Query(const AuditQuery& query) EXCLUDES(read_mu_);
  // Every entry with since <= time_ms < until, oldest first, one JSON object per call of `out`.
  Status Export(std::optional<int64_t> since_ms, std::optional<int64_t> until_ms,
                const std::function<void(const std::string& line)>& out) EXCLUDES(read_mu_);
  // Removes entries older than now - retention_ms and appends an anchor (in the chain) naming
  // the last removed entry and its hash. Returns how many entries were removed.
  Result<int64_t> ApplyRetention(int64_t now_ms) EXCLUDES(write_mu_);

  const AuditCounters& counters() const { return counters_; }
  const std::string& path() const { return path_; }

 private:
  AuditLog(std::string path, const Clock* clock, const AuditLogOptions& options);
  Status Init() EXCLUDES(write_mu_, read_mu_, mu_);
  void WriterLoop() EXCLUDES(mu_, write_mu_);
  void WriteBatch(std::vector<AuditEvent>& batch) EXCLUDES(write_mu_);
  Status ReadTailLocked() REQUIRES(write_mu_);
  Status AppendLocked(const std::vector<AuditEvent>& batch) REQUIRES(write_mu_);
  void WriteHeadLocked() REQUIRES(write_mu_);
  void ReportLost(const AuditEvent& event, const char* why);

  const std::string path_;
  const std::string head_path_;
  const Clock* clock_;
  const AuditLogOptions options_;
  AuditCounters counters_;

  // The writer's connection and the chain's tail. Init() takes it, then mu_; nothing else nests.
  Mutex write_mu_ ACQUIRED_BEFORE(mu_);
  std::unique_ptr<sql::Database> writer_db_ GUARDED_BY(write_mu_);
  int64_t last_seq_ GUARDED_BY(write_mu_) = 0;
  std::string last_hash_ GUARDED_BY(write_mu_);

  // Readers' connection.
  Mutex read_mu_;
  std::unique_ptr<sql::Database> reader_db_ GUARDED_BY(read_mu_);

  // The queue.
  Mutex mu_;
  CondVar work_cv_;   // queue_ not empty, or stopping_
  CondVar space_cv_;  // queue_ below capacity, or stopping_
  CondVar done_cv_;   // processed_ grew, or closed_
  std::deque<AuditEvent> queue_ GUARDED_BY(mu_);
  uint64_t accepted_ GUARDED_BY(mu_) = 0;
  uint64_t processed_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  bool closed_ GUARDED_BY(mu_) = false;
  // Started by Open() after Init(), joined by the first Close() (the one that sets stopping_).
  std::thread writer_;
};

// The head-file path for an audit database path (audit.db -> audit.head beside it).
std::string HeadPathFor(const std::string& db_path);

// The canonical JSON of an entry (the API, `audit export` and `audit list` print this).
nlohmann::json EntryToJson(const AuditEntry& entry);

// The chain hash of an entry from its stored fields (docs/format/AUDIT_LOG.md section 3).
std::string ComputeEntryHash(const AuditEntry& entry);

}  // namespace kb::audit
