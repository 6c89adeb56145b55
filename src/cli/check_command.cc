// `check`: the integrity check of a data directory (kb/integrity_check.h), run offline on the
// files: every database with PRAGMA integrity_check and its content checksum, every saved vector
// index against its database. Nothing is written unless --repair-index is given, and then only
// the damaged projects' index/ directories, rebuilt from their kb.db.
//
// Exit codes (the scripts' contract): 0 nothing wrong; 1 a problem was found — even one that
// --repair-index repaired (run check again to confirm); 2 the check could not run: bad flags or
// configuration, or the directory is not a data directory.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "service/integrity_check.h"

namespace kb::cli {
namespace {

struct CheckCommandOptions {
  CommonOptions common;
  bool repair_index = false;
};

std::string StatusWord(const DatabaseCheckReport& d) {
  switch (d.severity()) {
    case CheckSeverity::kUnhealthy:
      return "UNHEALTHY";
    case CheckSeverity::kDegraded:
      return "DEGRADED ";
    case CheckSeverity::kOk:
      break;
  }
  return d.found_problem() ? "repaired " : "ok       ";
}

void PrintReport(const IntegrityReport& report) {
  std::cout << "Checked " << report.data_dir << " in " << report.duration_ms << " ms\n";
  for (const DatabaseCheckReport& d : report.databases) {
    std::cout << "  " << StatusWord(d) << "  " << d.path;
    if (!d.project_name.empty()) {
      std::cout << " (project '" << d.project_name << "'" << (d.project_deleted ? ", deleted" : "")
                << ")";
    }
    std::cout << "\n";
    for (const CheckResult& c : d.checks) {
      if (!c.found_problem()) continue;
      std::cout << "      " << c.name << " [" << CheckSeverityName(c.severity) << "]: " << c.problem
                << "\n";
      if (c.repaired) {
        std::cout << "      " << c.name << ": repaired" << (c.note.empty() ? "" : ": " + c.note)
                  << "\n";
      } else if (!c.note.empty()) {
        std::cout << "      " << c.name << ": " << c.note << "\n";
      }
    }
  }
  std::cout << std::flush;
}

int RunCheck(const CheckCommandOptions& opts) {
  int exit_code = kExitOk;
  std::optional<Config> config =
      LoadCommandConfig(opts.common, /*server_defaults=*/false, &exit_code);
  if (!config) return exit_code;
  IntegrityCheckOptions options;
  options.repair_index = opts.repair_index;
  Result<IntegrityReport> report = CheckDataDirectory(config->data_dir, options);
  if (!report.ok()) {
    // Not damage: there was nothing to check (a wrong --data-dir, most likely).
    return ReportError(report.status().message() +
                           " (name the data directory with --data-dir or "
                           "KB_DATA_DIR)",
                       /*usage=*/true);
  }
  if (opts.common.json) {
    PrintJson(IntegrityReportToJson(*report));
  } else {
    PrintReport(*report);
  }
  const std::vector<std::string> found = report->Problems(/*outstanding_only=*/false);
  if (found.empty()) {
    if (!opts.common.json) {
      std::cout << "No problems found in " << report->databases.size() << " databases."
                << std::endl;
    }
    return kExitOk;
  }
  const size_t outstanding = report->Problems(/*outstanding_only=*/true).size();
  const std::string what = std::to_string(found.size()) + " problem(s) found in " +
                           report->data_dir + " (" +
                           std::string(CheckSeverityName(report->severity())) + ")";
  if (outstanding == 0) {
    return ReportError(what + "; all were repaired: run check again to confirm");
  }
  return ReportError(what + (opts.repair_index || report->severity() != CheckSeverity::kDegraded
                                 ? ""
                                 : "; --repair-index rebuilds damaged vector indexes"));
}

}  // namespace

void RegisterCheckCommand(CLI::App* root, CommandRegistry* registry) {
  auto opts = std::make_shared<CheckCommandOptions>();
  CLI::App* cmd = root->add_subcommand(
      "check", "Check every database and vector index of a data directory for damage");
  cmd->footer(
      "Runs PRAGMA integrity_check and recomputes the content checksum of catalog.db and every "
      "project's kb.db (soft-deleted projects included), and compares each saved vector index "
      "with its database. The databases are only read. Run it while no server has the directory "
      "open (a running server checks itself: POST /api/v1/admin/check). Exit status: 0 nothing "
      "wrong, 1 a problem was found (even if repaired), 2 the check could not run. What each "
      "check costs: src/service/integrity_check.h.");
  AddConfigOptions(cmd, &opts->common);
  AddJsonFlag(cmd, &opts->common);
  cmd->add_flag("--repair-index", opts->repair_index,
                "rebuild damaged vector indexes from their kb.db (writes only projects/*/index/)");
  registry->Add(cmd, [opts] { return RunCheck(*opts); });
}

}  // namespace kb::cli
