// `knowledgebeast audit verify | list | export`: inspect a data directory's audit log
// (docs/format/AUDIT_LOG.md) without a server, or, with `--snapshot ID --repo URL`, the copy of it
// that a full backup holds (read into a temporary directory, which is removed afterwards). The
// log is opened read-only: inspecting it never appends to it or rewrites its head file, so it may
// run beside a server on the same directory.
#include <stdlib.h>

#include <filesystem>
#include <iostream>

#include "audit/audit_log.h"
#include "backup/restore.h"
#include "cli/backup_settings.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"
#include "common/data_layout.h"
#include "repo/repository.h"

namespace kb::cli {
namespace {

struct AuditCommandOptions {
  CommonOptions common;
  std::string since, until, action, project, key, remote, cursor;
  int status = 0;
  int limit = audit::kDefaultAuditQueryLimit;
  std::string snapshot;  // --snapshot ID | latest: the audit log a backup holds
};

// An audit log open for inspection. One read from a snapshot lives in a temporary directory
// that goes away with this object (the log is closed first).
class InspectedLog {
 public:
  InspectedLog(std::unique_ptr<audit::AuditLog> log, std::string temp_dir, std::string snapshot)
      : log_(std::move(log)), temp_dir_(std::move(temp_dir)), snapshot_(std::move(snapshot)) {}
  ~InspectedLog() {
    log_.reset();
    if (!temp_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(temp_dir_, ec);
    }
  }
  InspectedLog(const InspectedLog&) = delete;
  InspectedLog& operator=(const InspectedLog&) = delete;
  audit::AuditLog* operator->() { return log_.get(); }
  // The snapshot id it was read from; empty for the data directory's own log.
  const std::string& snapshot() const { return snapshot_; }

 private:
  std::unique_ptr<audit::AuditLog> log_;
  std::string temp_dir_;
  std::string snapshot_;
};

Result<std::unique_ptr<audit::AuditLog>> OpenReadOnly(const std::string& path) {
  audit::AuditLogOptions options;
  options.read_only = true;
  return audit::AuditLog::Open(path, nullptr, options);
}

// The audit log of snapshot `o.snapshot` (an id, or "latest": the newest full snapshot) of the
// configured repository, read into a fresh temporary directory; on failure prints why and sets
// *exit_code.
std::unique_ptr<InspectedLog> OpenSnapshotLog(const AuditCommandOptions& o, const Config& config,
                                              int* exit_code) {
  if (config.backup_repository.empty()) {
    *exit_code =
        ReportError("--snapshot needs a repository: give --repo URL or set KB_BACKUP_REPOSITORY",
                    /*usage=*/true);
    return nullptr;
  }
  if (KeyFromConfig(config).empty()) {
    *exit_code = ReportError(
        "no repository key: set KB_BACKUP_PASSWORD, or give --key-file / KB_BACKUP_KEY_FILE",
        /*usage=*/true);
    return nullptr;
  }
  auto repo = repo::OpenRepository(config.backup_repository, KeyFromConfig(config),
                                   BlobOptionsFromConfig(config));
  if (!repo.ok()) {
    *exit_code = ReportError(repo.status());
    return nullptr;
  }
  backup::SnapshotSelector selector;
  if (o.snapshot == "latest") {
    selector.need_full = true;  // only full snapshots hold the audit log
  } else {
    selector.snapshot_id = o.snapshot;
  }
  auto selection = backup::SelectSnapshot(**repo, selector);
  if (!selection.ok()) {
    *exit_code = ReportError(selection.status());
    return nullptr;
  }
  std::error_code ec;
  std::string tmpl = (std::filesystem::temp_directory_path(ec) / "kb-audit-XXXXXX").string();
  if (ec || mkdtemp(tmpl.data()) == nullptr) {
    *exit_code = ReportError("cannot create a temporary directory in " +
                             std::filesystem::temp_directory_path(ec).string() + " (set TMPDIR)");
    return nullptr;
  }
  const std::string& id = selection->manifest.id;
  // From here on the directory is removed by InspectedLog (or right here on failure).
  auto cleanup = [&tmpl] {
    std::error_code ignored;
    std::filesystem::remove_all(tmpl, ignored);
  };
  if (Status s = backup::RestoreAuditLog(**repo, selection->manifest, tmpl); !s.ok()) {
    cleanup();
    *exit_code = ReportError(s);
    return nullptr;
  }
  auto log = OpenReadOnly(layout::AuditDb(tmpl));
  if (!log.ok()) {
    cleanup();
    *exit_code = ReportError(log.status().WithContext("the audit log of snapshot " + id));
    return nullptr;
  }
  return std::make_unique<InspectedLog>(std::move(log).value(), tmpl, id);
}

// Opens <data>/audit.db, or the audit log of --snapshot, read-only; on failure prints why and
// sets *exit_code.
std::unique_ptr<InspectedLog> OpenForInspection(const AuditCommandOptions& o, int* exit_code) {
  std::optional<Config> config = LoadCommandConfig(o.common, /*server_defaults=*/false, exit_code);
  if (!config) return nullptr;
  if (!o.snapshot.empty()) return OpenSnapshotLog(o, *config, exit_code);
  auto log = OpenReadOnly(layout::AuditDb(config->data_dir));
  if (!log.ok()) {
    *exit_code = ReportError(log.status().code() == Code::kNotFound
                                 ? log.status().message() +
                                       " (name the data directory with --data-dir or KB_DATA_DIR)"
                                 : log.status().ToString());
    return nullptr;
  }
  return std::make_unique<InspectedLog>(std::move(log).value(), "", "");
}

// Parses an optional ISO-8601 flag; prints a usage error and returns false if malformed.
bool ParseTimeFlag(const std::string& flag, const std::string& text, std::optional<int64_t>* out,
                   int* exit_code) {
  if (text.empty()) return true;
  *out = ParseIso8601(text);
  if (!*out) {
    *exit_code = ReportError(flag + " must be an ISO-8601 time, e.g. 2026-11-26T10:00:00Z", true);
    return false;
  }
  return true;
}

int RunVerify(const AuditCommandOptions& o) {
  int exit_code = kExitOk;
  auto opened = OpenForInspection(o, &exit_code);
  if (!opened) return exit_code;
  InspectedLog& log = *opened;
  Result<audit::VerifyReport> r = log->Verify();
  if (!r.ok()) return ReportError(r.status().WithContext("audit log not verifiable"));
  const std::string what =
      log.snapshot().empty() ? "audit log" : "audit log of snapshot " + log.snapshot();
  if (o.common.json) {
    nlohmann::json j = {{"ok", r->ok},
                        {"entries", r->entries},
                        {"first_seq", r->first_seq},
                        {"last_seq", r->last_seq},
                        {"head_seq", r->head_seq}};
    if (!log.snapshot().empty()) j["snapshot"] = log.snapshot();
    if (!r->ok) {
      j["bad_seq"] = r->bad_seq;
      j["problem"] = r->problem;
    }
    PrintJson(j);
    return r->ok ? kExitOk : kExitFailure;
  }
  if (!r->ok)
    return ReportError(what + " damaged at entry " + std::to_string(r->bad_seq) + ": " +
                       r->problem);
  std::cout << what << " intact: " << r->entries << " entries";
  if (r->entries > 0) std::cout << " (seq " << r->first_seq << ".." << r->last_seq << ")";
  std::cout << std::endl;
  return kExitOk;
}

int RunList(const AuditCommandOptions& o) {
  int exit_code = kExitOk;
  audit::AuditQuery q;
  if (!ParseTimeFlag("--since", o.since, &q.since_ms, &exit_code)) return exit_code;
  if (!ParseTimeFlag("--until", o.until, &q.until_ms, &exit_code)) return exit_code;
  q.action = o.action;
  if (!o.project.empty()) q.projects = {o.project};
  q.key = o.key;
  q.remote = o.remote;
  if (o.status) q.status = o.status;
  q.limit = o.limit;
  q.cursor = o.cursor;
  auto log = OpenForInspection(o, &exit_code);
  if (!log) return exit_code;
  auto page = (*log)->Query(q);
  if (!page.ok()) return ReportError(page.status(), page.status().code() == Code::kInvalidArgument);
  if (o.common.json) {
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& e : page->entries) entries.push_back(audit::EntryToJson(e));
    PrintJson({{"entries", entries},
               {"count", page->entries.size()},
               {"next_cursor", page->next_cursor.empty() ? nlohmann::json(nullptr)
                                                         : nlohmann::json(page->next_cursor)}});
    return kExitOk;
  }
  for (const auto& e : page->entries) {
    const AuditEvent& ev = e.event;
    std::cout << e.seq << "  " << FormatIso8601(ev.time_ms) << "  " << ev.action << "  "
              << ev.outcome << "  " << (ev.status ? std::to_string(ev.status) : "-") << "  "
              << (ev.actor_id.empty() ? "(no key)" : ev.actor_id) << "  "
              << (ev.remote.empty() ? "-" : ev.remote) << "  " << ev.method << " " << ev.route;
    if (!ev.project.empty()) std::cout << "  project=" << ev.project;
    if (!ev.detail.empty()) std::cout << "  " << ev.detail;
    std::cout << "\n";
  }
  if (!page->next_cursor.empty()) std::cout << "(more: --cursor " << page->next_cursor << ")\n";
  return kExitOk;
}

int RunExport(const AuditCommandOptions& o) {
  int exit_code = kExitOk;
  std::optional<int64_t> since, until;
  if (!ParseTimeFlag("--since", o.since, &since, &exit_code)) return exit_code;
  if (!ParseTimeFlag("--until", o.until, &until, &exit_code)) return exit_code;
  auto log = OpenForInspection(o, &exit_code);
  if (!log) return exit_code;
  Status s =
      (*log)->Export(since, until, [](const std::string& line) { std::cout << line << "\n"; });
  std::cout.flush();
  if (!s.ok()) return ReportError(s);
  return kExitOk;
}

// --snapshot and the repository flags of the backup commands (docs/CONFIG.md).
void AddSnapshotOptions(CLI::App* cmd, AuditCommandOptions* o) {
  cmd->add_option("--snapshot", o->snapshot,
                  "read the audit log a full backup holds: a snapshot id, or 'latest' (the "
                  "newest full snapshot); needs --repo and the repository key");
  AddOptionalString(cmd, "--repo", &o->common.flags.backup_repository,
                    "repository URL for --snapshot ($KB_BACKUP_REPOSITORY)");
  AddOptionalString(cmd, "--key-file", &o->common.flags.backup_key_file,
                    "repository key file ($KB_BACKUP_KEY_FILE); else the passphrase in "
                    "$KB_BACKUP_PASSWORD");
}

void AddFilterOptions(CLI::App* cmd, AuditCommandOptions* o) {
  cmd->add_option("--since", o->since, "entries at or after this ISO-8601 time");
  cmd->add_option("--until", o->until, "entries before this ISO-8601 time");
  cmd->add_option("--action", o->action, "only this action, e.g. project.delete");
  cmd->add_option("--project", o->project, "only this project id (or name as recorded)");
  cmd->add_option("--key", o->key, "only this actor: an API key id, 'cli' or 'system'");
  cmd->add_option("--remote", o->remote, "only this client address");
  cmd->add_option("--status", o->status, "only this HTTP status")->check(CLI::Range(100, 599));
  cmd->add_option("--limit", o->limit, "entries per page (1-1000, default 100)")
      ->check(CLI::Range(1, audit::kMaxAuditQueryLimit));
  cmd->add_option("--cursor", o->cursor, "continue after a previous page");
}

}  // namespace

void RegisterAuditCommands(CLI::App* root, CommandRegistry* registry) {
  CLI::App* audit = root->add_subcommand("audit", "Inspect the audit log of a data directory");
  audit->require_subcommand(1);
  audit->footer(
      "The audit log (<data>/audit.db) records every mutating and every refused API request, "
      "background actions and direct-mode CLI commands in a hash chain. verify, list and export "
      "open it read-only; reads switches the auditing of reads. Format and threat model: "
      "docs/format/AUDIT_LOG.md.");

  auto verify = std::make_shared<AuditCommandOptions>();
  CLI::App* v = audit->add_subcommand("verify", "Check the audit log's hash chain and head");
  v->footer(
      "Recomputes every entry's hash, checks that each chains to the one before, that nothing "
      "is missing at the start (retention anchors) or at the end (the head file audit.head). "
      "With --snapshot ID --repo URL it checks the copy a full backup holds (downloaded into a "
      "temporary directory, removed afterwards). "
      "Exit status: 0 intact (prints the entry count), 1 damaged (names the first bad entry), "
      "2 the log could not be read.");
  AddConfigOptions(v, &verify->common);
  AddJsonFlag(v, &verify->common);
  AddSnapshotOptions(v, verify.get());
  registry->Add(v, [verify] { return RunVerify(*verify); });

  auto list = std::make_shared<AuditCommandOptions>();
  CLI::App* l = audit->add_subcommand("list", "List audit entries, newest first, with filters");
  l->footer("The same filters as GET /api/v1/admin/audit (docs/API.md).");
  AddConfigOptions(l, &list->common);
  AddJsonFlag(l, &list->common);
  AddSnapshotOptions(l, list.get());
  AddFilterOptions(l, list.get());
  registry->Add(l, [list] { return RunList(*list); });

  auto exp = std::make_shared<AuditCommandOptions>();
  CLI::App* x = audit->add_subcommand("export", "Print audit entries as JSON lines, oldest first");
  x->footer(
      "One JSON object per line on stdout (the fields of docs/format/AUDIT_LOG.md, hashes "
      "included), for archiving or shipping off-site.");
  AddConfigOptions(x, &exp->common);
  AddSnapshotOptions(x, exp.get());
  x->add_option("--since", exp->since, "entries at or after this ISO-8601 time")->required();
  x->add_option("--until", exp->until, "entries before this ISO-8601 time");
  registry->Add(x, [exp] { return RunExport(*exp); });

  RegisterAuditReadsCommand(audit, registry);
}

}  // namespace kb::cli
