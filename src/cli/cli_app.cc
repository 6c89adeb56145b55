// RunCli: builds the command tree, parses, dispatches, and turns every failure — bad flags,
// bad configuration, escaped exceptions — into one "error: ..." line and an exit code, so no
// input can make the program crash or print a stack of text a script cannot read.
#include <exception>
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/logging.h"

namespace kb::cli {

const char kDirectModeNote[] =
    "Without --url the command works directly on the data directory (--data-dir). A running "
    "server keeps its own in-memory vector indexes, so write to a data directory directly only "
    "while no server has it open; otherwise use --url (KB_URL) and --api-key (KB_API_KEY).";

CLI::Option* AddOptionalString(CLI::App* app, const std::string& name,
                               std::optional<std::string>* target, const std::string& help) {
  return app->add_option_function<std::string>(
      name, [target](const std::string& v) { *target = v; }, help);
}

void AddConfigOptions(CLI::App* app, CommonOptions* common) {
  app->add_option("--config", common->flags.config_file,
                  "JSON config file (default: $KB_CONFIG); see docs/CONFIG.md");
  AddOptionalString(app, "--data-dir", &common->flags.data_dir,
                    "data directory (default ./data; $KB_DATA_DIR)");
  AddOptionalString(app, "--log-level", &common->flags.log_level,
                    "debug, info, warn or error ($KB_LOG_LEVEL)");
  AddOptionalString(app, "--log-format", &common->flags.log_format,
                    "json or text ($KB_LOG_FORMAT)");
}

void AddJsonFlag(CLI::App* app, CommonOptions* common) {
  app->add_flag("--json", common->json, "print machine-readable JSON on stdout");
}

void AddClientOptions(CLI::App* app, CommonOptions* common) {
  AddConfigOptions(app, common);
  AddOptionalString(app, "--url", &common->flags.url,
                    "talk to a running server at this base URL instead ($KB_URL)");
  AddOptionalString(app, "--api-key", &common->flags.api_key, "API key for --url ($KB_API_KEY)");
  AddJsonFlag(app, common);
}

CLI::App* AddClientSubcommand(CLI::App* parent, const std::string& name, const std::string& help,
                              CommonOptions* common) {
  CLI::App* cmd = parent->add_subcommand(name, help);
  cmd->footer(kDirectModeNote);
  AddClientOptions(cmd, common);
  return cmd;
}

std::optional<Config> LoadCommandConfig(const CommonOptions& common, bool server_defaults,
                                        int* exit_code) {
  Result<Config> config = LoadConfig(common.flags, ProcessEnvironment());
  if (!config.ok()) {
    *exit_code = ReportError(config.status(), /*usage=*/true);
    return std::nullopt;
  }
  LogLevel level = server_defaults ? LogLevel::kInfo : LogLevel::kWarn;
  if (!config->log_level.empty()) ParseLogLevel(config->log_level, &level);
  bool json = server_defaults;
  if (!config->log_format.empty()) json = config->log_format == "json";
  InitLogging(level, json);
  return std::move(config).value();
}

std::unique_ptr<Backend> ConnectForCommand(const CommonOptions& common, int* exit_code) {
  std::optional<Config> config = LoadCommandConfig(common, /*server_defaults=*/false, exit_code);
  if (!config) return nullptr;
  Result<std::unique_ptr<Backend>> backend = OpenBackend(*config);
  if (!backend.ok()) {
    *exit_code = ReportError(backend.status());
    return nullptr;
  }
  return std::move(backend).value();
}

namespace {

int Run(int argc, char** argv) {
  CLI::App app{
      "KnowledgeBeast: a knowledge-base server with hybrid search.\n"
      "Run 'knowledgebeast COMMAND --help' for a command's options.",
      "knowledgebeast"};
  app.set_version_flag("--version", std::string(KB_VERSION));
  app.require_subcommand(1);
  app.fallthrough(false);

  CommandRegistry registry;
  RegisterServeCommand(&app, &registry);
  RegisterInitCommand(&app, &registry);
  RegisterIngestCommand(&app, &registry);
  RegisterQueryCommand(&app, &registry);
  RegisterProjectsCommand(&app, &registry);
  RegisterStatsCommand(&app, &registry);
  RegisterKeysCommand(&app, &registry);
  RegisterCheckCommand(&app, &registry);
  RegisterDeletionCommands(&app, &registry);
  RegisterBackupCommands(&app, &registry);
  RegisterLockdownCommand(&app, &registry);
  RegisterIpRulesCommand(&app, &registry);
  RegisterAuditCommands(&app, &registry);
  RegisterDoctorCommand(&app, &registry);
  RegisterMcpCommand(&app, &registry);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return ReportError(std::string(e.what()) + " (see 'knowledgebeast --help')", /*usage=*/true);
  }

  for (const CommandRegistry::Entry& entry : registry.entries) {
    if (entry.app->parsed()) return entry.run();
  }
  return ReportError("no command given", /*usage=*/true);
}

}  // namespace

int RunCli(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    return ReportError(std::string("internal error: ") + e.what());
  } catch (...) {
    return ReportError("internal error: unknown exception");
  }
}

}  // namespace kb::cli
