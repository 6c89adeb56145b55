// The `knowledgebeast` command line: one function that runs it (RunCli, used by main.cc) and
// the registration functions each subcommand file provides.
//
// Each subcommand registers its options on a CLI11 App and a `run` function. RunCli parses,
// then calls the one leaf command that was selected. Commands stay thin: load the configuration,
// open a backend (direct or remote), make one service call, print text or --json.
//
// Thread-safety: RunCli is called once per process.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cli/backend.h"
#include "cli/config.h"

namespace kb::cli {

// Runs the program; returns the process exit code (see output.h). Never throws.
int RunCli(int argc, char** argv);

// Options most commands share. Storage must outlive parsing, so each command owns one.
struct CommonOptions {
  FlagValues flags;
  bool json = false;
};

// Loads the configuration for a command; on error prints it and sets *exit_code to 2.
// Also initialises logging: text to stderr at warn level unless configured otherwise
// (`server_defaults` selects the server's defaults: JSON at info level).
std::optional<Config> LoadCommandConfig(const CommonOptions& common, bool server_defaults,
                                        int* exit_code);

// Loads the configuration and opens the backend it selects (remote if a URL is configured);
// on failure prints why, sets *exit_code and returns null.
std::unique_ptr<Backend> ConnectForCommand(const CommonOptions& common, int* exit_code);

// Adds --config, --data-dir, --log-level, --log-format to `app`.
void AddConfigOptions(CLI::App* app, CommonOptions* common);
// Adds --json.
void AddJsonFlag(CLI::App* app, CommonOptions* common);
// The options of every client command: AddConfigOptions, --url and --api-key (remote mode),
// and --json.
void AddClientOptions(CLI::App* app, CommonOptions* common);
// A subcommand of `parent` with the client options and kDirectModeNote as its --help footer.
CLI::App* AddClientSubcommand(CLI::App* parent, const std::string& name, const std::string& help,
                              CommonOptions* common);
// Binds an option whose absence must be distinguishable from an empty value.
CLI::Option* AddOptionalString(CLI::App* app, const std::string& name,
                               std::optional<std::string>* target, const std::string& help);

// The text appended to --help of commands that can write directly to a data directory.
extern const char kDirectModeNote[];

struct CommandRegistry {
  struct Entry {
    CLI::App* app;
    std::function<int()> run;
  };
  std::vector<Entry> entries;
  void Add(CLI::App* app, std::function<int()> run) { entries.push_back({app, std::move(run)}); }
};

void RegisterServeCommand(CLI::App* root, CommandRegistry* registry);
void RegisterInitCommand(CLI::App* root, CommandRegistry* registry);
void RegisterIngestCommand(CLI::App* root, CommandRegistry* registry);
void RegisterQueryCommand(CLI::App* root, CommandRegistry* registry);
void RegisterProjectsCommand(CLI::App* root, CommandRegistry* registry);
void RegisterStatsCommand(CLI::App* root, CommandRegistry* registry);
void RegisterKeysCommand(CLI::App* root, CommandRegistry* registry);
void RegisterCheckCommand(CLI::App* root, CommandRegistry* registry);
// purge, undelete, deleted (deletion_command.cc).
void RegisterDeletionCommands(CLI::App* root, CommandRegistry* registry);
// repo, backup, prune, restore (backup_command.cc).
void RegisterBackupCommands(CLI::App* root, CommandRegistry* registry);
// lockdown on | read-only | off | status; ip-rules show | clear (lockdown_command.cc).
void RegisterLockdownCommand(CLI::App* root, CommandRegistry* registry);
// mcp: the MCP stdio transport on a data directory (mcp_command.cc).
void RegisterMcpCommand(CLI::App* root, CommandRegistry* registry);
void RegisterIpRulesCommand(CLI::App* root, CommandRegistry* registry);
// audit verify, list, export (audit_command.cc).
void RegisterAuditCommands(CLI::App* root, CommandRegistry* registry);
// `doctor`: the security and backup posture (doctor_command.cc).
void RegisterDoctorCommand(CLI::App* root, CommandRegistry* registry);
// `audit reads on|off|status` (lockdown_command.cc: it shares the direct / --url plumbing).
void RegisterAuditReadsCommand(CLI::App* audit, CommandRegistry* registry);

}  // namespace kb::cli
