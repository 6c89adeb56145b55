// AuditLog: the writer thread, the hash chain, the head file, verification, queries, export and
// retention (see audit_log.h; the format is docs/format/AUDIT_LOG.md).
#include "audit/audit_log.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "common/crypto_util.h"
#include "common/data_layout.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/text_util.h"
#include "store/sqlite.h"

namespace kb::audit {

using nlohmann::json;

namespace {

constexpr char kGenesisHash[] = "0000000000000000000000000000000000000000000000000000000000000000";
constexpr char kHashDomain[] = "KBAUDIT1";
constexpr char kHeadMagic[] = "KBAUDITHEAD 1";
constexpr char kKindEvent[] = "event";
constexpr char kKindAnchor[] = "anchor";
constexpr int64_t kRetryDelayMs = 50;
constexpr char kHeadMismatchAction[] = "audit.head_mismatch";

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS audit_entries (
  seq          INTEGER PRIMARY KEY,
  kind         TEXT    NOT NULL,
  time_ms      INTEGER NOT NULL,
  request_id   TEXT    NOT NULL,
  actor_id     TEXT    NOT NULL,
  actor_name   TEXT    NOT NULL,
  remote       TEXT    NOT NULL,
  method       TEXT    NOT NULL,
  route        TEXT    NOT NULL,
  action       TEXT    NOT NULL,
  project      TEXT    NOT NULL,
  document_ids TEXT    NOT NULL,
  outcome      TEXT    NOT NULL,
  status       INTEGER NOT NULL,
  detail       TEXT    NOT NULL,
  anchor_seq   INTEGER NOT NULL,
  anchor_hash  TEXT    NOT NULL,
  prev_hash    TEXT    NOT NULL,
  hash         TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries(time_ms);
CREATE INDEX IF NOT EXISTS audit_entries_actor ON audit_entries(actor_id, seq);
CREATE INDEX IF NOT EXISTS audit_entries_project ON audit_entries(project, seq);
CREATE INDEX IF NOT EXISTS audit_entries_remote ON audit_entries(remote, seq);
)sql";

constexpr char kColumns[] =
    "seq, kind, time_ms, request_id, actor_id, actor_name, remote, method, route, action, "
    "project, document_ids, outcome, status, detail, anchor_seq, anchor_hash, prev_hash, hash";

// Cuts `s` to at most `max` bytes at a UTF-8 boundary (after repairing it), marking the cut.
std::string Bounded(std::string_view s, size_t max) {
  std::string clean = IsValidUtf8(s) ? std::string(s) : SanitizeUtf8(s);
  if (clean.size() <= max) return clean;
  size_t cut = max - 3;
  while (cut > 0 && (static_cast<unsigned char>(clean[cut]) & 0xC0) == 0x80) --cut;
  clean.resize(cut);
  return clean + "...";
}

void BoundEvent(AuditEvent* e) {
  for (std::string* f : {&e->request_id, &e->actor_id, &e->actor_name, &e->remote, &e->method,
                         &e->route, &e->action, &e->project, &e->outcome}) {
    *f = Bounded(*f, kMaxAuditFieldBytes);
  }
  e->detail = Bounded(e->detail, kMaxAuditDetailBytes);
  if (e->document_ids.size() > kMaxAuditDocumentIds) {
    const size_t more = e->document_ids.size() - kMaxAuditDocumentIds;
    e->document_ids.resize(kMaxAuditDocumentIds);
    // In front, so that cutting a long detail never hides it.
    e->detail = Bounded(std::to_string(more) + " more document ids not listed" +
                            (e->detail.empty() ? "" : "; ") + e->detail,
                        kMaxAuditDetailBytes);
  }
  for (std::string& id : e->document_ids) id = Bounded(id, kMaxAuditFieldBytes);
}

void PutU64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (i * 8)) & 0xFF));
}
void PutStr(std::string* out, std::string_view s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  for (int i = 3; i >= 0; --i) out->push_back(static_cast<char>((n >> (i * 8)) & 0xFF));
  out->append(s);
}

AuditEntry ReadRow(const sql::Statement& st) {
  AuditEntry e;
  e.seq = st.ColumnInt64(0);
  e.kind = st.ColumnText(1);
  e.event.time_ms = st.ColumnInt64(2);
  e.event.request_id = st.ColumnText(3);
  e.event.actor_id = st.ColumnText(4);
  e.event.actor_name = st.ColumnText(5);
  e.event.remote = st.ColumnText(6);
  e.event.method = st.ColumnText(7);
  e.event.route = st.ColumnText(8);
  e.event.action = st.ColumnText(9);
  e.event.project = st.ColumnText(10);
  e.document_ids_json = st.ColumnText(11);
  e.event.outcome = st.ColumnText(12);
  e.event.status = static_cast<int>(st.ColumnInt64(13));
  e.event.detail = st.ColumnText(14);
  e.anchor_seq = st.ColumnInt64(15);
  e.anchor_hash = st.ColumnText(16);
  e.prev_hash = st.ColumnText(17);
  e.hash = st.ColumnText(18);
  json ids = json::parse(e.document_ids_json, nullptr, /*allow_exceptions=*/false);
  if (ids.is_array()) {
    for (const json& id : ids) {
      if (id.is_string()) e.event.document_ids.push_back(id.get<std::string>());
    }
  }
  return e;
}

struct Head {
  int64_t seq = 0;
  std::string hash;
};

std::string EncodeHead(const Head& h) {
  std::string body =
      std::string(kHeadMagic) + "\nseq " + std::to_string(h.seq) + "\nhash " + h.hash + "\n";
  return body + "sha256 " + Sha256Hex(body) + "\n";
}

// nullopt: no head file. Corruption: a head file that is not one (or was edited).
Result<std::optional<Head>> ReadHead(const std::string& path) {
  if (!PathExists(path)) return std::optional<Head>();
  KB_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  const size_t sum_at = text.rfind("sha256 ");
  if (text.rfind(std::string(kHeadMagic) + "\n", 0) != 0 || sum_at == std::string::npos) {
    return Status::Corruption(path + " is not an audit head file (format " +
                              std::to_string(kAuditFormatVersion) + ")");
  }
  const std::string body = text.substr(0, sum_at);
  if (text.substr(sum_at) != "sha256 " + Sha256Hex(body) + "\n") {
    return Status::Corruption(path + ": checksum does not match its contents");
  }
  Head h;
  const size_t seq_at = body.find("\nseq ");
  const size_t hash_at = body.find("\nhash ");
  if (seq_at == std::string::npos || hash_at == std::string::npos) {
    return Status::Corruption(path + ": missing seq or hash");
  }
  try {
    h.seq = std::stoll(body.substr(seq_at + 5, hash_at - seq_at - 5));
  } catch (...) {
    return Status::Corruption(path + ": bad seq");
  }
  h.hash = body.substr(hash_at + 6);
  while (!h.hash.empty() && h.hash.back() == '\n') h.hash.pop_back();
  return std::optional<Head>(h);
}

}  // namespace

std::string HeadPathFor(const std::string& db_path) {
  return layout::AuditHead(std::filesystem::path(db_path).parent_path().string());
}

std::string ComputeEntryHash(const AuditEntry& e) {
  std::string buf = kHashDomain;
  PutU64(&buf, static_cast<uint64_t>(e.seq));
  PutStr(&buf, e.kind);
  PutU64(&buf, static_cast<uint64_t>(e.event.time_ms));
  PutStr(&buf, e.event.request_id);
  PutStr(&buf, e.event.actor_id);
  PutStr(&buf, e.event.actor_name);
  PutStr(&buf, e.event.remote);
  PutStr(&buf, e.event.method);
  PutStr(&buf, e.event.route);
  PutStr(&buf, e.event.action);
  PutStr(&buf, e.event.project);
  PutStr(&buf, e.document_ids_json);
  PutStr(&buf, e.event.outcome);
  PutU64(&buf, static_cast<uint64_t>(static_cast<int64_t>(e.event.status)));
  PutStr(&buf, e.event.detail);
  PutU64(&buf, static_cast<uint64_t>(e.anchor_seq));
  PutStr(&buf, e.anchor_hash);
  PutStr(&buf, e.prev_hash);
  return Sha256Hex(buf);
}

json EntryToJson(const AuditEntry& e) {
  json j = {{"seq", e.seq},
            {"kind", e.kind},
            {"time", FormatIso8601(e.event.time_ms)},
            {"time_ms", e.event.time_ms},
            {"request_id", e.event.request_id},
            {"actor_id", e.event.actor_id},
            {"actor_name", e.event.actor_name},
            {"remote", e.event.remote},
            {"method", e.event.method},
            {"route", e.event.route},
            {"action", e.event.action},
            {"project", e.event.project},
            {"document_ids", e.event.document_ids},
            {"outcome", e.event.outcome},
            {"status", e.event.status},
            {"detail", e.event.detail},
            {"prev_hash", e.prev_hash},
            {"hash", e.hash}};
  if (e.kind == kKindAnchor) {
    j["anchor_seq"] = e.anchor_seq;
    j["anchor_hash"] = e.anchor_hash;
  }
  return j;
}

AuditLog::AuditLog(std::string path, const Clock* clock, const AuditLogOptions& options)
    : path_(std::move(path)),
      head_path_(HeadPathFor(path_)),
      clock_(clock ? clock : SystemClock::Default()),
      options_(options) {}

AuditLog::~AuditLog() { Close(); }

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path, const Clock* clock,
                                                 const AuditLogOptions& options) {
  if (options.queue_capacity == 0) return Status::InvalidArgument("audit queue capacity is 0");
  if (options.retention_ms < 0) return Status::InvalidArgument("audit retention is negative");
  std::unique_ptr<AuditLog> log(new AuditLog(path, clock, options));
  KB_RETURN_IF_ERROR(log->Init().WithContext("audit log " + path));
  if (!options.read_only) log->writer_ = std::thread([raw = log.get()] { raw->WriterLoop(); });
  return log;
}

Status AuditLog::Init() {
  // Nothing is shared yet (the writer starts after Init): the locks are uncontended, and taking
  // them lets the analysis check every access below like any other.
  MutexLock write_lock(write_mu_);
  MutexLock read_lock(read_mu_);
  MutexLock queue_lock(mu_);
  if (options_.read_only) {
    if (!PathExists(path_)) return Status::NotFound("no audit log at " + path_);
    sql::OpenOptions ro;
    ro.read_only = true;
    KB_ASSIGN_OR_RETURN(reader_db_, sql::Database::Open(path_, ro));
    KB_ASSIGN_OR_RETURN(int64_t version, reader_db_->QueryInt("PRAGMA user_version"));
    if (version != kAuditFormatVersion) {
      return version > kAuditFormatVersion
                 ? Status::FailedPrecondition("format version " + std::to_string(version) +
                                              " is newer than this program's")
                 : Status::Corruption("not an audit database");
    }
    stopping_ = closed_ = true;
    return Status::OK();
  }
  KB_ASSIGN_OR_RETURN(writer_db_, sql::Database::Open(path_));
  KB_ASSIGN_OR_RETURN(int64_t version, writer_db_->QueryInt("PRAGMA user_version"));
  if (version > kAuditFormatVersion) {
    return Status::FailedPrecondition("format version " + std::to_string(version) +
                                      " is newer than this program's (" +
                                      std::to_string(kAuditFormatVersion) + ")");
  }
  if (version == 0) {
    KB_ASSIGN_OR_RETURN(int64_t tables,
                        writer_db_->QueryInt("SELECT count(*) FROM sqlite_schema WHERE "
                                             "type='table' AND name <> 'audit_entries'"));
    if (tables > 0) return Status::Corruption("not an audit database (it holds other tables)");
    KB_RETURN_IF_ERROR(writer_db_->Exec(kSchema));
    KB_RETURN_IF_ERROR(
        writer_db_->Exec("PRAGMA user_version=" + std::to_string(kAuditFormatVersion)));
  }
  KB_ASSIGN_OR_RETURN(reader_db_, sql::Database::Open(path_));

  // The chain's tail, and a check that the head file agrees with it: if the newest entries are
  // gone, say so now, in the chain itself, before new entries overwrite the head file.
  KB_RETURN_IF_ERROR(ReadTailLocked());
  Result<std::optional<Head>> head = ReadHead(head_path_);
  std::string head_problem;
  if (!head.ok()) {
    head_problem = head.status().message();
  } else if (head->has_value() && (*head)->seq > last_seq_) {
    head_problem = "the head file names entry " + std::to_string((*head)->seq) +
                   " but the log ends at entry " + std::to_string(last_seq_) +
                   ": newest entries are missing";
  } else if (head->has_value() && (*head)->seq == last_seq_ && (*head)->hash != last_hash_) {
    head_problem =
        "the head file's hash of entry " + std::to_string(last_seq_) + " differs from the log's";
  }
  if (!head_problem.empty()) {
    LogError("audit log tampering suspected", json{{"path", path_}, {"problem", head_problem}}.dump(
                                                  -1, ' ', false, json::error_handler_t::replace));
    AuditEvent e;
    e.actor_id = "system";
    e.method = "SYSTEM";
    e.route = "audit.open";
    e.action = kHeadMismatchAction;
    e.outcome = "failed";
    e.detail = head_problem;
    queue_.push_back(std::move(e));
    queue_.back().time_ms = clock_->NowMillis();
    ++accepted_;
  }
  return Status::OK();
}

void AuditLog::ReportLost(const AuditEvent& e, const char* why) {
  // The server log keeps the event, so that losing it from the audit log is never silent.
  LogError(why, json{{"time_ms", e.time_ms},
                     {"request_id", e.request_id},
                     {"actor_id", e.actor_id},
                     {"remote", e.remote},
                     {"method", e.method},
                     {"route", e.route},
                     {"action", e.action},
                     {"project", e.project},
                     {"status", e.status},
                     {"outcome", e.outcome}}
                    .dump(-1, ' ', false, json::error_handler_t::replace));
}

void AuditLog::Record(AuditEvent event) {
  if (event.time_ms == 0) event.time_ms = clock_->NowMillis();
  BoundEvent(&event);
  MutexLock lock(mu_);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.max_block_ms);
  while (queue_.size() >= options_.queue_capacity && !stopping_) {
    if (!space_cv_.WaitUntil(mu_, deadline)) break;
  }
  if (stopping_ || queue_.size() >= options_.queue_capacity) {
    const bool closed = stopping_;  // read under the lock: Close() writes it concurrently
    lock.Unlock();
    counters_.dropped.fetch_add(1);
    ReportLost(event, closed ? "audit event dropped: audit log closed"
                             : "audit event dropped: audit queue full");
    return;
  }
  queue_.push_back(std::move(event));
  ++accepted_;
  work_cv_.Signal();
}

void AuditLog::Flush() {
  MutexLock lock(mu_);
  const uint64_t target = accepted_;
  work_cv_.Signal();
  while (processed_ < target && !closed_) done_cv_.Wait(mu_);
}

void AuditLog::Close() {
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  work_cv_.SignalAll();
  space_cv_.SignalAll();
  if (writer_.joinable()) writer_.join();
  MutexLock lock(mu_);
  closed_ = true;
  done_cv_.SignalAll();
}

void AuditLog::WriterLoop() {
  const bool retain = options_.retention_interval_ms > 0 && options_.retention_ms > 0;
  auto next_retention = std::chrono::steady_clock::now();
  while (true) {
    if (retain && std::chrono::steady_clock::now() >= next_retention) {
      Result<int64_t> removed = ApplyRetention(clock_->NowMillis());
      if (!removed.ok()) LogError("audit retention failed", removed.status().ToString());
      next_retention = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(options_.retention_interval_ms);
    }
    std::vector<AuditEvent> batch;
    {
      MutexLock lock(mu_);
      while (queue_.empty() && !stopping_) {
        if (!retain) {
          work_cv_.Wait(mu_);
        } else if (!work_cv_.WaitUntil(mu_, next_retention)) {
          break;  // time for retention
        }
      }
      if (queue_.empty()) {
        if (stopping_) break;
        continue;
      }
      const size_t n = std::min(queue_.size(), kMaxAuditBatch);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    space_cv_.SignalAll();
    WriteBatch(batch);
    MutexLock lock(mu_);
    processed_ += batch.size();
    done_cv_.SignalAll();
  }
}

void AuditLog::WriteBatch(std::vector<AuditEvent>& batch) {
  MutexLock lock(write_mu_);
  Status s = AppendLocked(batch);
  if (!s.ok()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(kRetryDelayMs));
    s = AppendLocked(batch);
  }
  if (!s.ok()) {
    LogError("audit write failed", s.ToString());
    counters_.write_failures.fetch_add(static_cast<int64_t>(batch.size()));
    for (const AuditEvent& e : batch) ReportLost(e, "audit event lost: write failed");
    return;
  }
  counters_.events.fetch_add(static_cast<int64_t>(batch.size()));
  WriteHeadLocked();
}

namespace {

Status InsertEntry(sql::Database* db, const AuditEntry& e) {
  KB_ASSIGN_OR_RETURN(auto st,
                      db->PrepareCached(std::string("INSERT INTO audit_entries (") + kColumns +
                                        ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  st.Bind(1, e.seq)
      .Bind(2, e.kind)
      .Bind(3, e.event.time_ms)
      .Bind(4, e.event.request_id)
      .Bind(5, e.event.actor_id)
      .Bind(6, e.event.actor_name)
      .Bind(7, e.event.remote)
      .Bind(8, e.event.method)
      .Bind(9, e.event.route)
      .Bind(10, e.event.action)
      .Bind(11, e.event.project)
      .Bind(12, e.document_ids_json)
      .Bind(13, e.event.outcome)
      .Bind(14, static_cast<int64_t>(e.event.status))
      .Bind(15, e.event.detail)
      .Bind(16, e.anchor_seq)
      .Bind(17, e.anchor_hash)
      .Bind(18, e.prev_hash)
      .Bind(19, e.hash);
  return st.Run();
}

}  // namespace

// The chain's tail as committed, read under the write lock: another process (a direct-mode CLI
// command next to a server) may have appended since this one last did.
Status AuditLog::ReadTailLocked() {
  KB_ASSIGN_OR_RETURN(auto st, writer_db_->Prepare("SELECT seq, hash FROM audit_entries "
                                                   "ORDER BY seq DESC LIMIT 1"));
  KB_ASSIGN_OR_RETURN(bool row, st.Step());
  last_seq_ = row ? st.ColumnInt64(0) : 0;
  last_hash_ = row ? st.ColumnText(1) : kGenesisHash;
  return Status::OK();
}

Status AuditLog::AppendLocked(const std::vector<AuditEvent>& batch) {
  KB_ASSIGN_OR_RETURN(auto txn, sql::Transaction::Begin(writer_db_.get()));
  KB_RETURN_IF_ERROR(ReadTailLocked());
  int64_t seq = last_seq_;
  std::string prev = last_hash_;
  for (const AuditEvent& ev : batch) {
    AuditEntry e;
    e.seq = ++seq;
    e.kind = kKindEvent;
    e.event = ev;
    e.document_ids_json =
        json(ev.document_ids).dump(-1, ' ', false, json::error_handler_t::replace);
    e.prev_hash = prev;
    e.hash = ComputeEntryHash(e);
    KB_RETURN_IF_ERROR(InsertEntry(writer_db_.get(), e));
    prev = e.hash;
  }
  KB_RETURN_IF_ERROR(txn.Commit());
  last_seq_ = seq;
  last_hash_ = prev;
  return Status::OK();
}

void AuditLog::WriteHeadLocked() {
  Status s = AtomicWriteFile(head_path_, EncodeHead({last_seq_, last_hash_}));
  if (!s.ok()) LogError("audit head file not written", s.ToString());
}

Result<int64_t> AuditLog::ApplyRetention(int64_t now_ms) {
  if (options_.read_only) return Status::FailedPrecondition("the audit log is open read-only");
  if (options_.retention_ms <= 0) return int64_t{0};
  const int64_t cutoff = now_ms - options_.retention_ms;
  MutexLock lock(write_mu_);
  sql::Database* db = writer_db_.get();
  KB_ASSIGN_OR_RETURN(auto txn, sql::Transaction::Begin(db));
  KB_RETURN_IF_ERROR(ReadTailLocked());
  // Everything before the first entry young enough to keep: an entry stamped late never takes
  // younger ones with it.
  KB_ASSIGN_OR_RETURN(int64_t first,
                      db->QueryInt("SELECT coalesce(min(seq), 0) FROM audit_entries"));
  if (first == 0) return int64_t{0};
  int64_t through = last_seq_;
  {
    KB_ASSIGN_OR_RETURN(auto st,
                        db->Prepare("SELECT min(seq) FROM audit_entries WHERE time_ms >= ?"));
    st.Bind(1, cutoff);
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row && !st.ColumnIsNull(0)) through = st.ColumnInt64(0) - 1;
  }
  if (through < first) return int64_t{0};
  std::string through_hash;
  {
    KB_ASSIGN_OR_RETURN(auto st, db->Prepare("SELECT hash FROM audit_entries WHERE seq = ?"));
    st.Bind(1, through);
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Status::Corruption("entry " + std::to_string(through) + " is missing");
    through_hash = st.ColumnText(0);
  }
  {
    KB_ASSIGN_OR_RETURN(auto st, db->Prepare("DELETE FROM audit_entries WHERE seq <= ?"));
    st.Bind(1, through);
    KB_RETURN_IF_ERROR(st.Run());
  }
  const int64_t removed = db->Changes();
  AuditEntry anchor;
  anchor.seq = last_seq_ + 1;
  anchor.kind = kKindAnchor;
  anchor.event.time_ms = now_ms;
  anchor.event.actor_id = "system";
  anchor.event.method = "SYSTEM";
  anchor.event.route = "audit.retention";
  anchor.event.action = "audit.retention";
  anchor.event.outcome = "ok";
  anchor.event.detail = "removed entries " + std::to_string(first) + ".." +
                        std::to_string(through) + " (older than " + FormatIso8601(cutoff) + ")";
  anchor.document_ids_json = "[]";
  anchor.anchor_seq = through;
  anchor.anchor_hash = through_hash;
  anchor.prev_hash = last_hash_;
  anchor.hash = ComputeEntryHash(anchor);
  KB_RETURN_IF_ERROR(InsertEntry(db, anchor));
  KB_RETURN_IF_ERROR(txn.Commit());
  last_seq_ = anchor.seq;
  last_hash_ = anchor.hash;
  counters_.events.fetch_add(1);
  WriteHeadLocked();
  LogInfo("audit retention", json{{"removed", removed}, {"through_seq", through}}.dump());
  return removed;
}

Result<VerifyReport> AuditLog::Verify() {
  MutexLock lock(read_mu_);
  sql::Database* db = reader_db_.get();
  VerifyReport r;
  auto bad = [&r](int64_t seq, std::string problem) {
    r.ok = false;
    r.chain_intact = false;
    r.bad_seq = seq;
    r.problem = std::move(problem);
    return r;
  };
  // One read transaction: the chain, the anchor and the head are compared at one state.
  KB_ASSIGN_OR_RETURN(auto txn, sql::Transaction::Begin(db, sql::Transaction::Mode::kDeferred));
  std::optional<AuditEntry> anchor;
  {
    KB_ASSIGN_OR_RETURN(auto st, db->Prepare(std::string("SELECT ") + kColumns +
                                             " FROM audit_entries WHERE kind = 'anchor' "
                                             "ORDER BY seq DESC LIMIT 1"));
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) anchor = ReadRow(st);
  }
  KB_ASSIGN_OR_RETURN(
      auto st, db->Prepare(std::string("SELECT ") + kColumns + " FROM audit_entries ORDER BY seq"));
  std::optional<AuditEntry> prev;
  std::optional<AuditEntry> loss_recorded;  // the first "audit.head_mismatch" entry
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    AuditEntry e = ReadRow(st);
    if (!loss_recorded && e.event.action == kHeadMismatchAction) loss_recorded = e;
    if (e.kind != kKindEvent && e.kind != kKindAnchor) {
      return bad(e.seq, "entry " + std::to_string(e.seq) + " has an unknown kind '" + e.kind + "'");
    }
    if (!prev) {
      r.first_seq = e.seq;
      if (e.seq == 1) {
        if (e.prev_hash != kGenesisHash) {
          return bad(1, "entry 1 does not start the chain (its previous hash is not zero)");
        }
      } else if (!anchor) {
        return bad(1, "entries 1.." + std::to_string(e.seq - 1) +
                          " are missing and no retention anchor accounts for them");
      } else if (anchor->anchor_seq < e.seq - 1) {
        return bad(anchor->anchor_seq + 1, "entries " + std::to_string(anchor->anchor_seq + 1) +
                                               ".." + std::to_string(e.seq - 1) +
                                               " are missing (retention removed only up to " +
                                               std::to_string(anchor->anchor_seq) + ")");
      } else if (anchor->anchor_seq > e.seq - 1) {
        return bad(e.seq, "entry " + std::to_string(e.seq) +
                              " should have been removed by retention (anchor at entry " +
                              std::to_string(anchor->seq) + ")");
      } else if (anchor->anchor_hash != e.prev_hash) {
        return bad(e.seq, "entry " + std::to_string(e.seq) +
                              " does not follow the entry retention removed last");
      }
    } else {
      if (e.seq != prev->seq + 1) {
        const int64_t missing = prev->seq + 1;
        return bad(missing, "entry " + std::to_string(missing) +
                                (e.seq - 1 > missing ? ".." + std::to_string(e.seq - 1) : "") +
                                " is missing (entry " + std::to_string(e.seq) + " follows entry " +
                                std::to_string(prev->seq) + ")");
      }
      if (e.prev_hash != prev->hash) {
        return bad(e.seq, "entry " + std::to_string(e.seq) + " does not chain to entry " +
                              std::to_string(prev->seq) +
                              " (its previous hash differs: one of the two was altered)");
      }
    }
    if (ComputeEntryHash(e) != e.hash) {
      return bad(e.seq, "entry " + std::to_string(e.seq) +
                            " was altered (its contents do not match its hash)");
    }
    ++r.entries;
    r.last_seq = e.seq;
    prev = std::move(e);
  }
  KB_ASSIGN_OR_RETURN(std::optional<Head> head, ReadHead(head_path_));
  if (head) {
    r.head_seq = head->seq;
    if (head->seq > r.last_seq) {
      return bad(r.last_seq + 1,
                 "entries " + std::to_string(r.last_seq + 1) + ".." + std::to_string(head->seq) +
                     " are missing (the head file names entry " + std::to_string(head->seq) +
                     "; the log ends at " + std::to_string(r.last_seq) + ")");
    }
    if (head->seq >= r.first_seq && head->seq > 0) {
      auto hs = db->Prepare("SELECT hash FROM audit_entries WHERE seq = ?");
      if (!hs.ok()) return hs.status();
      hs->Bind(1, head->seq);
      KB_ASSIGN_OR_RETURN(bool row, hs->Step());
      if (row && hs->ColumnText(0) != head->hash) {
        return bad(head->seq, "entry " + std::to_string(head->seq) +
                                  " differs from the one the head file recorded");
      }
    }
  }
  if (loss_recorded) {
    // Every link checked out: the chain is whole, it only records a loss (VerifyReport).
    bad(loss_recorded->seq, "entry " + std::to_string(loss_recorded->seq) +
                                " records that the log was found cut short when it was "
                                "opened: " +
                                loss_recorded->event.detail);
    r.chain_intact = true;
  }
  return r;
}

Result<AuditPage> AuditLog::Query(const AuditQuery& q) {
  if (q.limit < 1 || q.limit > kMaxAuditQueryLimit) {
    return Status::InvalidArgument("limit must be between 1 and " +
                                   std::to_string(kMaxAuditQueryLimit));
  }
  std::optional<int64_t> before;
  if (!q.cursor.empty()) {
    int64_t v = 0;
    bool ok = q.cursor.size() <= 18;
    for (char c : q.cursor) {
      if (c < '0' || c > '9') ok = false;
      if (ok) v = v * 10 + (c - '0');
    }
    if (!ok || v < 1) return Status::InvalidArgument("cursor is not one this server issued");
    before = v;
  }
  std::string sql = std::string("SELECT ") + kColumns + " FROM audit_entries WHERE 1=1";
  if (q.since_ms) sql += " AND time_ms >= ?";
  if (q.until_ms) sql += " AND time_ms < ?";
  if (!q.action.empty()) sql += " AND action = ?";
  if (!q.projects.empty()) {
    sql += " AND project IN (";
    for (size_t i = 0; i < q.projects.size(); ++i) sql += (i ? ",?" : "?");
    sql += ")";
  }
  if (!q.key.empty()) sql += " AND actor_id = ?";
  if (!q.remote.empty()) sql += " AND remote = ?";
  if (q.status) sql += " AND status = ?";
  if (before) sql += " AND seq < ?";
  sql += " ORDER BY seq DESC LIMIT ?";

  MutexLock lock(read_mu_);
  KB_ASSIGN_OR_RETURN(auto st, reader_db_->Prepare(sql));
  // Bind in the order the placeholders were added (one ? each).
  int i = 0;
  if (q.since_ms) st.Bind(++i, *q.since_ms);
  if (q.until_ms) st.Bind(++i, *q.until_ms);
  if (!q.action.empty()) st.Bind(++i, q.action);
  for (const std::string& p : q.projects) st.Bind(++i, p);
  if (!q.key.empty()) st.Bind(++i, q.key);
  if (!q.remote.empty()) st.Bind(++i, q.remote);
  if (q.status) st.Bind(++i, static_cast<int64_t>(*q.status));
  if (before) st.Bind(++i, *before);
  st.Bind(++i, static_cast<int64_t>(q.limit) + 1);
  AuditPage page;
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    if (static_cast<int>(page.entries.size()) == q.limit) {
      page.next_cursor = std::to_string(page.entries.back().seq);
      break;
    }
    page.entries.push_back(ReadRow(st));
  }
  return page;
}

Status AuditLog::Export(std::optional<int64_t> since_ms, std::optional<int64_t> until_ms,
                        const std::function<void(const std::string& line)>& out) {
  std::string sql = std::string("SELECT ") + kColumns + " FROM audit_entries WHERE 1=1";
  if (since_ms) sql += " AND time_ms >= ?";
  if (until_ms) sql += " AND time_ms < ?";
  sql += " ORDER BY seq";
  MutexLock lock(read_mu_);
  KB_ASSIGN_OR_RETURN(auto txn,
                      sql::Transaction::Begin(reader_db_.get(), sql::Transaction::Mode::kDeferred));
  KB_ASSIGN_OR_RETURN(auto st, reader_db_->Prepare(sql));
  int i = 0;
  if (since_ms) st.Bind(++i, *since_ms);
  if (until_ms) st.Bind(++i, *until_ms);
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out(EntryToJson(ReadRow(st)).dump(-1, ' ', false, json::error_handler_t::replace));
  }
  return Status::OK();
}

}  // namespace kb::audit
