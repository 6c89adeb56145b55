// The restore test's check of a restored data directory (see restore_check.h).
#include "backup/restore_check.h"

#include <filesystem>

#include "audit/audit_log.h"
#include "backup/restore.h"
#include "common/data_layout.h"
#include "service/integrity_check.h"

namespace kb::backup {

using repo::ProjectSnapshot;
using repo::SnapshotManifest;

namespace {

int ManifestDimension(const ProjectSnapshot& p) {
  auto it = p.embedder.find("dimension");
  if (it == p.embedder.end() || !it->is_number_integer()) return 0;
  return it->get<int>();
}

}  // namespace

std::vector<std::string> CheckRestoredDatabases(const std::string& dir, const SnapshotManifest& m) {
  std::vector<std::string> problems;
  // The data directory's own check (src/service/integrity_check.h): every database, the journal,
  // the content checksum recomputed from the rows, the vector index. A projects-only snapshot has
  // no catalog: its project directories are checked one by one.
  if (std::filesystem::exists(layout::CatalogDb(dir))) {
    auto report = CheckDataDirectory(dir);
    if (!report.ok()) {
      problems.push_back("integrity check: " + report.status().ToString());
    } else {
      for (std::string& p : report->Problems()) problems.push_back(std::move(p));
    }
  } else {
    for (const ProjectSnapshot& p : m.projects) {
      std::string project_dir = layout::ProjectDir(dir, p.id);
      if (!std::filesystem::exists(layout::ProjectDbIn(project_dir))) continue;
      DatabaseCheckReport r = CheckProjectDirectory(
          project_dir, ExpectedProject{p.id, p.name, ManifestDimension(p), p.deleted});
      for (const CheckResult& c : r.checks) {
        if (c.outstanding() != CheckSeverity::kOk) {
          problems.push_back(layout::RelativeProjectDb(p.id) + ": " + c.name + ": " + c.problem);
        }
      }
    }
  }
  // The state the manifest describes (content checksum, journal LSN, counts): the same check a
  // restore makes before it swaps a project in (backup/restore.h).
  for (const ProjectSnapshot& p : m.projects) {
    if (std::filesystem::exists(layout::ProjectDb(dir, p.id))) {
      for (std::string& problem : CheckProjectMatchesSnapshot(layout::ProjectDir(dir, p.id), p)) {
        problems.push_back(std::move(problem));
      }
    }
  }
  // The audit log of a full snapshot: its chain must be whole (a tampered copy is named).
  for (std::string& p : CheckRestoredAuditLog(dir)) problems.push_back(std::move(p));
  return problems;
}

std::vector<std::string> CheckRestoredAuditLog(const std::string& dir, std::string* recorded_loss) {
  namespace fs = std::filesystem;
  const std::string db = layout::AuditDb(dir);
  std::error_code ec;
  if (!fs::exists(db, ec)) return {};
  std::vector<std::string> problems;
  {
    audit::AuditLogOptions ro;
    ro.read_only = true;  // never appends, never rewrites the head file it is checking
    auto log = audit::AuditLog::Open(db, nullptr, ro);
    if (!log.ok()) {
      problems.push_back("audit log: " + log.status().ToString());
    } else if (auto report = (*log)->Verify(); !report.ok()) {
      problems.push_back("audit log: not verifiable: " + report.status().ToString());
    } else if (!report->chain_intact) {
      problems.push_back("audit log: damaged at entry " + std::to_string(report->bad_seq) + ": " +
                         report->problem);
    } else if (!report->ok && recorded_loss != nullptr) {
      *recorded_loss = report->problem;
    }
  }
  // The read-only connection (closed by now) leaves SQLite's -shm index and an empty -wal
  // behind: the directory should hold what the snapshot held. No connection is open on this
  // restored copy, so the -shm is rebuilt by the next opener; a -wal holding data is kept.
  fs::remove(db + "-shm", ec);
  if (fs::exists(db + "-wal", ec) && fs::file_size(db + "-wal", ec) == 0 && !ec) {
    fs::remove(db + "-wal", ec);
  }
  return problems;
}

repo::VerifyOptions WithRestoredCheck(repo::VerifyOptions options) {
  if (options.restore_test && !options.restored_check)
    options.restored_check = CheckRestoredDatabases;
  return options;
}

}  // namespace kb::backup
