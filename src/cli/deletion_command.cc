// `purge`, `undelete` and `deleted`: the soft-delete lifecycle from the command line.
//   purge [--dry-run]      removes for good what was deleted longer than deletion_grace_period
//                          ago (direct mode only: a running server does this on its own)
//   undelete --project P (--before T | --document ID...)   brings deleted items back
//   deleted [--project P]  lists what is deleted, with when and by whom
// Each is one Backend call; --json prints the API's own shapes (docs/API.md).
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/json_encoding.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"

namespace kb::cli {
namespace {

using Json = nlohmann::json;

struct DeletionOptions {
  CommonOptions common;
  bool dry_run = false;
  std::string project;
  std::string before;
  std::vector<std::string> document_ids;
  int64_t limit = kDefaultListLimit;
  int64_t offset = 0;
};

std::string When(const std::optional<int64_t>& ms) { return ms ? FormatIso8601(*ms) : "-"; }

int RunPurge(const DeletionOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Result<PurgeReport> r = backend->Purge(opts.dry_run);
  if (!r.ok()) return ReportError(r.status());
  if (opts.common.json) {
    PrintJson(api::EncodePurgeReport(*r));
  } else {
    std::cout << (r->dry_run ? "Would purge" : "Purged") << " items deleted at or before "
              << FormatIso8601(r->cutoff_ms) << ":\n";
    for (const PurgedItem& p : r->projects) {
      std::cout << "  project  " << p.project_id << "  '" << p.project_name << "'  deleted "
                << FormatIso8601(p.deleted_at_ms) << " by " << p.deleted_by << "\n";
    }
    for (const PurgedItem& d : r->documents) {
      std::cout << "  document " << d.document_id << "  in '" << d.project_name << "'  deleted "
                << FormatIso8601(d.deleted_at_ms) << " by " << d.deleted_by << "\n";
    }
    std::cout << r->projects.size() << " projects, " << r->documents.size() << " documents\n";
    for (const std::string& p : r->problems) std::cout << "  problem: " << p << "\n";
    std::cout << std::flush;
  }
  return r->problems.empty() ? kExitOk : kExitFailure;
}

int RunUndelete(const DeletionOptions& opts) {
  RestoreDeletedRequest req;
  req.project = opts.project;
  req.document_ids = opts.document_ids;
  if (!opts.before.empty()) {
    req.before_ms = ParseIso8601(opts.before);
    if (!req.before_ms) {
      return ReportError("--before must be an ISO-8601 time, e.g. 2026-01-31T12:00:00Z",
                         /*usage=*/true);
    }
  }
  if (!req.before_ms && req.document_ids.empty()) {
    return ReportError("give --before or at least one --document", /*usage=*/true);
  }
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Result<RestoreDeletedReport> r = backend->RestoreDeleted(req);
  if (!r.ok()) return ReportError(r.status());
  if (opts.common.json) {
    PrintJson(api::EncodeRestoreDeletedReport(*r));
    return kExitOk;
  }
  if (r->project_restored) std::cout << "Restored project '" << r->project_name << "'\n";
  std::cout << "Restored " << r->restored_documents.size() << " documents in '"
            << r->project_name << "'\n";
  for (const std::string& id : r->restored_documents) std::cout << "  " << id << "\n";
  for (const RestoreSkip& s : r->skipped) {
    std::cout << "  skipped " << s.id << ": " << s.reason << " (" << s.detail << ")\n";
  }
  std::cout << std::flush;
  return kExitOk;
}

int RunDeleted(const DeletionOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Result<DeletedListing> r = backend->ListDeleted(opts.project, opts.limit, opts.offset);
  if (!r.ok()) return ReportError(r.status());
  if (opts.common.json) {
    Json projects = Json::array(), documents = Json::array();
    for (const auto& p : r->projects) projects.push_back(api::EncodeDeletedProject(p));
    for (const auto& d : r->documents) documents.push_back(api::EncodeDeletedDocument(d));
    Json out = {{"projects", projects}, {"documents", documents}, {"total", r->total},
                {"limit", opts.limit}, {"offset", opts.offset}};
    if (r->project) out["project"] = api::EncodeDeletedProject(*r->project);
    PrintJson(out);
    return kExitOk;
  }
  for (const ProjectRecord& p : r->projects) {
    std::cout << "project  " << p.id << "  '" << p.name << "'  deleted " << When(p.deleted_at_ms)
              << " by " << p.deleted_by << "\n";
  }
  for (const DocumentRecord& d : r->documents) {
    std::cout << "document " << d.id << "  " << d.source << "  deleted " << When(d.deleted_at_ms)
              << " by " << d.deleted_by << "\n";
  }
  std::cout << r->total << " deleted in all" << std::endl;
  return kExitOk;
}

}  // namespace

void RegisterDeletionCommands(CLI::App* root, CommandRegistry* registry) {
  auto purge = std::make_shared<DeletionOptions>();
  CLI::App* cmd = root->add_subcommand(
      "purge", "Remove for good what was soft-deleted longer than deletion_grace_period ago");
  cmd->footer(
      "Works on the data directory (--data-dir); a running server runs the same purge every "
      "purge_interval, so use this while no server has the directory open. Purged documents "
      "and projects are gone from the live databases (rows, keyword and vector index, journal "
      "content); backups still hold them until their retention drops those snapshots. "
      "Exit code 1 if an item could not be purged.");
  AddConfigOptions(cmd, &purge->common);
  AddJsonFlag(cmd, &purge->common);
  AddOptionalString(cmd, "--deletion-grace-period", &purge->common.flags.deletion_grace_period,
                    "purge what was deleted longer ago than this, e.g. 7d (default 30d; "
                    "$KB_DELETION_GRACE_PERIOD)");
  cmd->add_flag("--dry-run", purge->dry_run, "only list what would be purged");
  registry->Add(cmd, [purge] { return RunPurge(*purge); });

  auto undelete = std::make_shared<DeletionOptions>();
  cmd = AddClientSubcommand(root, "undelete",
                            "Restore soft-deleted documents (and their project, if deleted)",
                            &undelete->common);
  cmd->add_option("-p,--project", undelete->project, "project id or name (live or deleted)")
      ->required();
  cmd->add_option("--before", undelete->before,
                  "restore everything deleted at or after this ISO-8601 time");
  cmd->add_option("-d,--document", undelete->document_ids,
                  "restore just this document id; repeatable");
  registry->Add(cmd, [undelete] { return RunUndelete(*undelete); });

  auto deleted = std::make_shared<DeletionOptions>();
  cmd = AddClientSubcommand(root, "deleted",
                            "List soft-deleted projects, or one project's deleted documents",
                            &deleted->common);
  cmd->add_option("-p,--project", deleted->project, "list this project's deleted documents");
  cmd->add_option("--limit", deleted->limit, "at most this many (1-1000, default 100)")
      ->check(CLI::Range(int64_t{1}, int64_t{kMaxListLimit}));
  cmd->add_option("--offset", deleted->offset, "skip this many")->check(CLI::NonNegativeNumber);
  registry->Add(cmd, [deleted] { return RunDeleted(*deleted); });
}

}  // namespace kb::cli
