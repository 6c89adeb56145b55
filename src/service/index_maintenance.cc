// Saving, checking and rebuilding the vector indexes: see index_maintenance.h.
#include "service/index_maintenance.h"

#include <nlohmann/json.hpp>

#include "common/data_layout.h"
#include "common/logging.h"

namespace kb {

using nlohmann::json;

IndexMaintenance::IndexMaintenance(const KbOptions& options, const Clock* clock,
                                   ProjectRegistry* registry, KbCounters* counters,
                                   StopSignal* stop)
    : options_(options), clock_(clock), registry_(registry), counters_(counters), stop_(stop) {}

void IndexMaintenance::Start() {
  if (options_.index_save_interval_ms > 0) saver_ = std::thread([this] { SaverLoop(); });
  // After readiness: the first check runs in the background and never delays the start.
  if (options_.integrity_check_interval_ms > 0) checker_ = std::thread([this] { CheckerLoop(); });
}

void IndexMaintenance::Join() {
  // A running check notices the stop between projects (IntegrityCheckOptions::cancelled).
  if (checker_.joinable()) checker_.join();
  if (saver_.joinable()) saver_.join();
}

void IndexMaintenance::SaverLoop() {
  while (!stop_->WaitFor(options_.index_save_interval_ms)) SaveAll();
}

void IndexMaintenance::CheckerLoop() {
  while (!stop_->Stopping()) {
    auto report = RunIntegrityCheck();
    if (!report.ok() && report.status().code() != Code::kUnavailable) {
      LogError("integrity check could not run", json{{"error", report.status().ToString()}}.dump());
    }
    if (stop_->WaitFor(options_.integrity_check_interval_ms)) break;
  }
}

Status IndexMaintenance::SaveIndex(ProjectHandle& h) {
  MutexLock save(h.save_mu);
  MutexLock lock(h.write_mu);
  if (!h.dirty || h.index_stale) return Status::OK();
  KB_RETURN_IF_ERROR(h.index->Save(h.index_dir(), h.applied_lsn));
  h.dirty = false;
  return Status::OK();
}

void IndexMaintenance::SaveAll() {
  for (auto& h : registry_->All()) {
    Status s = SaveIndex(*h);
    if (!s.ok()) LogError("saving vector index failed", json{{"error", s.ToString()}}.dump());
  }
}

Status IndexMaintenance::RebuildIndex(ProjectHandle& h) {
  const int dimension = h.Record().embedding_dimension;
  VectorIndexOptions iopts = options_.index;
  iopts.dimension = dimension;
  // The expensive part, without any lock: queries keep using the old index meanwhile.
  KB_ASSIGN_OR_RETURN(std::unique_ptr<VectorIndex> fresh,
                      BuildVectorIndexFromDatabase(layout::ProjectDbIn(h.dir), dimension, iopts));
  {
    MutexLock lock(h.write_mu);
    // Catch up with what was committed while it was built; then swap.
    KB_ASSIGN_OR_RETURN(int64_t last_lsn, h.store->LastLsn());
    KB_ASSIGN_OR_RETURN(int64_t after, ReplayJournal(*h.store, fresh.get(), fresh->lsn(), last_lsn,
                                                     nullptr, nullptr));
    fresh->set_lsn(after);
    {
      MutexLock ptr(h.index_ptr_mu);
      h.index = std::move(fresh);
    }
    h.applied_lsn = after;
    h.index_stale = false;
    h.dirty = true;
    h.generation++;  // results may differ: drop cached ones
  }
  counters_->index_rebuilds++;
  return SaveIndex(h);
}

std::optional<IntegritySummary> IndexMaintenance::LastCheck() const {
  MutexLock lock(check_mu_);
  return last_check_;
}

Result<IntegrityReport> IndexMaintenance::RunIntegrityCheck() {
  MutexLock run(check_run_mu_);
  if (stop_->Stopping()) return Status::Unavailable("the knowledge base is closing");
  IntegrityCheckOptions o;
  o.index = options_.index;
  o.clock = clock_;
  o.cancelled = [this] { return stop_->Stopping(); };
  o.check_vector_index = [this](const ExpectedProject& p, const std::string& dir) {
    return CheckProjectIndex(p, dir);
  };
  KB_ASSIGN_OR_RETURN(IntegrityReport report, CheckDataDirectory(options_.data_dir, o));
  if (report.cancelled) {
    return Status::Unavailable("integrity check interrupted: the knowledge base is closing");
  }
  RecordCheck(report);
  return report;
}

// Counters, the log line and the summary Health() shows, for one completed check.
void IndexMaintenance::RecordCheck(const IntegrityReport& report) {
  const int64_t finished = report.started_at_ms + report.duration_ms;
  counters_->integrity_check_last_duration_ms = report.duration_ms;
  if (report.found_problem()) counters_->integrity_check_failures++;
  if (report.severity() == CheckSeverity::kOk) {
    counters_->integrity_check_last_success_ms = finished;
  }
  IntegritySummary summary;
  summary.finished_at_ms = finished;
  summary.duration_ms = report.duration_ms;
  summary.status = report.severity();
  summary.problems = report.Problems(/*outstanding_only=*/true);
  summary.repaired = report.Repairs();
  if (int64_t ok_at = counters_->integrity_check_last_success_ms.load(); ok_at > 0) {
    summary.last_success_at_ms = ok_at;
  }
  json fields = {{"status", std::string(CheckSeverityName(summary.status))},
                 {"databases", report.databases.size()},
                 {"duration_ms", report.duration_ms}};
  if (!report.found_problem()) {
    LogInfo("integrity check passed", fields.dump());
  } else {
    fields["problems"] = report.Problems(/*outstanding_only=*/false);
    if (summary.status == CheckSeverity::kUnhealthy) {
      LogError("integrity check found damage", fields.dump());
    } else {
      LogWarn("integrity check found damage", fields.dump());
    }
  }
  {
    MutexLock lock(check_mu_);
    last_check_ = std::move(summary);
  }
  ApplyDamage(report);
  // Counted only once Health() can see this run: whoever waits for the count reads its summary.
  counters_->integrity_checks++;
}

// Damage stops writes where it is found: a project whose database failed a check (severity
// unhealthy, i.e. kb.db itself, not derived data) becomes read-only; one that passes again
// becomes writable. Each change is logged and audited.
void IndexMaintenance::ApplyDamage(const IntegrityReport& report) {
  for (const DatabaseCheckReport& db : report.databases) {
    if (db.kind != "project" || db.project_id.empty()) continue;
    bool restoring = false;
    std::shared_ptr<ProjectHandle> h = registry_->FindById(db.project_id, &restoring);
    if (!h) continue;
    std::string problem;
    for (const CheckResult& c : db.checks) {
      if (c.outstanding() != CheckSeverity::kUnhealthy) continue;
      problem += (problem.empty() ? "" : "; ") + c.name + ": " + c.problem;
    }
    const std::optional<std::string> before = h->store->Damage();
    if (!problem.empty() && before != problem) {
      h->store->MarkDamaged(problem);
      LogError("project is read-only: its database is damaged",
               json{{"project", db.project_id}, {"problem", problem}}.dump(
                   -1, ' ', false, json::error_handler_t::replace));
      AuditDamage(db.project_id, "project.read_only", problem);
    } else if (problem.empty() && before) {
      h->store->ClearDamage();
      LogInfo("project is writable again: its database passed the integrity check",
              json{{"project", db.project_id}}.dump());
      AuditDamage(db.project_id, "project.writable", "was: " + *before);
    }
  }
}

void IndexMaintenance::AuditDamage(const std::string& project_id, const std::string& action,
                                   const std::string& detail) {
  if (options_.audit == nullptr) return;
  // Bounded: the audit log keeps short notes.
  options_.audit->Record(
      SystemAuditEvent("integrity.check", action, project_id, "ok",
                       detail.size() > 1000 ? detail.substr(0, 1000) + "..." : detail));
}

// The online vector_index check of one project: the saved files (read while no save can replace
// them) and the in-memory index (compared with kb.db at exactly the LSN it reflects, which needs
// the write mutex only while its labels are copied and the database snapshot is pinned). Any
// disagreement is answered by a rebuild from kb.db.
CheckResult IndexMaintenance::CheckProjectIndex(const ExpectedProject& project,
                                                const std::string& project_dir) {
  CheckResult result{std::string(kCheckVectorIndex), CheckSeverity::kOk, "", false, ""};
  bool restoring = false;
  std::shared_ptr<ProjectHandle> h = registry_->FindById(project.id, &restoring);
  if (!h) {
    result.note = std::string("not checked: the server has not loaded this project (") +
                  (restoring         ? "it is being restored"
                   : project.deleted ? "it is deleted"
                                     : "it failed to open") +
                  ")";
    return result;
  }
  std::string at_load;
  {
    MutexLock lock(h->write_mu);
    at_load.swap(h->load_repair);
  }
  std::vector<std::string> problems;
  {
    MutexLock save(h->save_mu);
    CheckResult saved = CheckSavedVectorIndex(project_dir, project.dimension, options_.index);
    if (saved.found_problem()) problems.push_back("saved index: " + saved.problem);
  }
  CompareInMemoryIndex(*h, project, project_dir, &problems);
  if (!at_load.empty()) problems.insert(problems.begin(), at_load);
  if (problems.empty()) return result;

  result.severity = CheckSeverity::kDegraded;
  for (const std::string& p : problems) result.problem += (result.problem.empty() ? "" : "; ") + p;
  if (problems.size() == 1 && !at_load.empty()) {
    result.repaired = true;  // already rebuilt when loaded, and sound now
    return result;
  }
  LogWarn("vector index damaged; rebuilding from the database",
          json{{"project", project.id}, {"problem", result.problem}}.dump());
  Status rebuilt = RebuildIndex(*h);
  if (rebuilt.ok()) {
    result.repaired = true;
    result.note = "rebuilt from kb.db";
  } else {
    result.problem += "; rebuilding it failed: " + rebuilt.message();
    LogError("vector index rebuild failed",
             json{{"project", project.id}, {"error", rebuilt.ToString()}}.dump());
  }
  return result;
}

void IndexMaintenance::CompareInMemoryIndex(ProjectHandle& h, const ExpectedProject& project,
                                            const std::string& project_dir,
                                            std::vector<std::string>* problems) {
  auto cmp = IndexComparison::Open(layout::ProjectDbIn(project_dir), project.dimension);
  if (!cmp.ok()) {
    problems->push_back("in-memory index: cannot read kb.db to compare: " + cmp.status().message());
    return;
  }
  std::shared_ptr<VectorIndex> index;
  std::vector<int64_t> labels;
  int64_t applied = 0, db_lsn = 0;
  bool stale = false;
  Status pinned;
  {
    // No commit can happen while write_mu is held, so the snapshot pinned here is the state
    // the in-memory index reflects.
    MutexLock lock(h.write_mu);
    index = h.index;
    labels = index->Labels();
    applied = h.applied_lsn;
    stale = h.index_stale;
    auto lsn = (*cmp)->Pin();
    if (lsn.ok())
      db_lsn = *lsn;
    else
      pinned = lsn.status();
  }
  if (!pinned.ok()) {
    problems->push_back("in-memory index: cannot read kb.db to compare: " + pinned.message());
  } else if (stale) {
    problems->push_back(
        "in-memory index: an update failed after a commit, so it misses "
        "changes (kb.db is at LSN " +
        std::to_string(db_lsn) + ")");
  } else if (applied != db_lsn) {
    problems->push_back("in-memory index: it reflects LSN " + std::to_string(applied) +
                        " but kb.db is at LSN " + std::to_string(db_lsn) +
                        " (written by another process while the server runs?)");
  } else {
    auto diff = (*cmp)->Compare(*index, labels);
    if (!diff.ok()) {
      problems->push_back("in-memory index: cannot compare with kb.db: " + diff.status().message());
    } else if (!diff->empty()) {
      problems->push_back("in-memory index: " + *diff);
    }
  }
}

}  // namespace kb
