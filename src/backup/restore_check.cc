// The restore test's check of a restored data directory (see restore_check.h).
#include "backup/restore_check.h"

#include <filesystem>

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
  return problems;
}

repo::VerifyOptions WithRestoredCheck(repo::VerifyOptions options) {
  if (options.restore_test && !options.restored_check)
    options.restored_check = CheckRestoredDatabases;
  return options;
}

}  // namespace kb::backup
