// The restore test's check of a restored data directory (see restore_check.h).
#include "backup/restore_check.h"

#include <filesystem>

#include "common/data_layout.h"
#include "service/integrity_check.h"
#include "store/project_reader.h"

namespace kb::backup {

using repo::ProjectSnapshot;
using repo::SnapshotManifest;

namespace {

// meta.content_checksum and meta.last_lsn of a restored kb.db (a temporary copy), read
// through the store's read-only reader.
Status ReadMeta(const std::string& path, std::string* checksum, int64_t* lsn) {
  auto reader = store::ProjectReader::Open(path);
  if (!reader.ok()) return reader.status();
  auto meta = (*reader)->Meta();
  if (!meta.ok()) return meta.status();
  *checksum = meta->content_checksum;
  *lsn = meta->last_lsn;
  return Status::OK();
}

// The restored state must be the one the manifest describes: same content checksum (which the
// integrity check has proven equal to the rows) and same journal position.
void CompareWithManifest(const std::string& dir, const ProjectSnapshot& p,
                         std::vector<std::string>* problems) {
  std::string where = layout::RelativeProjectDb(p.id);
  std::string checksum;
  int64_t lsn = 0;
  Status s = ReadMeta(layout::ProjectDb(dir, p.id), &checksum, &lsn);
  if (!s.ok()) {
    problems->push_back(where + ": " + s.message());
    return;
  }
  if (!p.content_checksum.empty() && checksum != p.content_checksum) {
    problems->push_back(where + ": content checksum " + checksum + " differs from the manifest's " +
                        p.content_checksum);
  }
  if (lsn != p.lsn) {
    problems->push_back(where + ": journal LSN " + std::to_string(lsn) +
                        " differs from the manifest's " + std::to_string(p.lsn));
  }
}

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
  for (const ProjectSnapshot& p : m.projects) {
    if (std::filesystem::exists(layout::ProjectDb(dir, p.id))) {
      CompareWithManifest(dir, p, &problems);
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
