// `knowledgebeast mcp`: the MCP stdio transport. An MCP client (an editor, a desktop assistant)
// starts it as a child process and exchanges newline-delimited JSON-RPC messages on its stdin
// and stdout; the protocol itself is the core's (api/mcp.h). stdout carries MCP messages only;
// logs and errors go to stderr.
//
// It works directly on a data directory, acting as the local administrator like every other
// direct-mode command (no API key: whoever can run it can read the files anyway), and records
// its changes in the audit log as actor "cli". It holds the data directory's lock for as long as
// it runs, as `serve` does: a server and an MCP process on one directory would each keep a
// vector index the other's writes never reach. To share a running server, use its /mcp.
//
// SIGINT and SIGTERM end it cleanly (indexes saved), as does the end of stdin.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "api/json_encoding.h"
#include "api/mcp.h"
#include "api/server.h"
#include "audit/audit_log.h"
#include "cli/backend.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/dir_lock.h"
#include "common/file_util.h"
#include "common/logging.h"

namespace kb::cli {
namespace {

volatile sig_atomic_t g_mcp_stop = 0;

void OnStopSignal(int) { g_mcp_stop = 1; }

// Reads stdin one line at a time with read(2), so that a signal interrupts the wait (EINTR)
// and a line longer than the limit is skipped without being held in memory.
class LineReader {
 public:
  explicit LineReader(size_t max_line) : max_line_(max_line) {}
  enum class Got { kLine, kTooLong, kEnd, kStopped };
  Got Next(std::string* line) {
    line->clear();
    bool too_long = false;
    while (true) {
      const size_t nl = buffer_.find('\n', scanned_);
      if (nl != std::string::npos) {
        too_long = too_long || nl > max_line_;  // a whole long line may arrive in one read
        if (!too_long) line->assign(buffer_, 0, nl);
        buffer_.erase(0, nl + 1);
        scanned_ = 0;
        return too_long ? Got::kTooLong : Got::kLine;
      }
      scanned_ = buffer_.size();
      if (buffer_.size() > max_line_) {
        too_long = true;  // keep reading to the end of this line, dropping what arrives
        buffer_.clear();
        scanned_ = 0;
      }
      if (g_mcp_stop) return Got::kStopped;
      char chunk[65536];
      const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;  // g_mcp_stop is checked above
      if (n <= 0) {
        if (too_long || buffer_.size() > max_line_) {
          buffer_.clear();
          scanned_ = 0;
          return Got::kTooLong;
        }
        if (buffer_.empty()) return Got::kEnd;
        line->swap(buffer_);  // a last message without a newline
        buffer_.clear();
        scanned_ = 0;
        return Got::kLine;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  size_t max_line_;
  std::string buffer_;
  size_t scanned_ = 0;
};

bool WriteMessage(const nlohmann::json& message) {
  const std::string line = api::DumpJson(message) + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // the client went away
    done += static_cast<size_t>(n);
  }
  return true;
}

int RunMcp(const CommonOptions& common) {
  int exit_code = kExitOk;
  std::optional<Config> config = LoadCommandConfig(common, /*server_defaults=*/false, &exit_code);
  if (!config) return exit_code;
  Status made = MakeDirs(config->data_dir);
  if (!made.ok()) return ReportError(made);
  auto lock = DataDirLock::Acquire(config->data_dir, "mcp");
  if (!lock.ok()) {
    return ReportError(lock.status().WithContext(
        "knowledgebeast mcp works on a data directory no other process owns; to share a "
        "running server, connect the client to its /mcp"));
  }
  std::unique_ptr<audit::AuditLog> audit = OpenCliAuditLog(config->data_dir);
  KbOptions kb_options = MakeKbOptions(*config);
  kb_options.audit = audit.get();
  auto kb = KnowledgeBase::Open(kb_options);
  if (!kb.ok()) return ReportError(kb.status());

  api::McpOptions options;
  options.import_roots = config->mcp_import_roots;
  options.audit = audit.get();
  options.max_document_bytes = (*kb)->options().max_document_bytes;
  api::McpServer server(kb->get(), std::move(options));
  api::McpCaller caller;  // no key: the local administrator
  caller.actor = Actor{"cli", "cli"};
  caller.audit_method = "CLI";
  caller.audit_route = "mcp";

  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnStopSignal;  // no SA_RESTART: a blocked read returns EINTR
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a vanished client is a failed write, not a dead process

  LogInfo("mcp: serving on stdio", api::DumpJson({{"data_dir", config->data_dir}}));
  LineReader reader(static_cast<size_t>(config->max_body_bytes.value_or(kDefaultMaxBodyBytes)));
  std::string line;
  bool running = true;
  while (running) {
    switch (reader.Next(&line)) {
      case LineReader::Got::kEnd:
      case LineReader::Got::kStopped:
        running = false;
        break;
      case LineReader::Got::kTooLong:
        running = WriteMessage(
            {{"jsonrpc", "2.0"},
             {"id", nullptr},
             {"error", {{"code", api::kJsonRpcParseError}, {"message", "message too large"}}}});
        break;
      case LineReader::Got::kLine: {
        if (line.find_first_not_of(" \t\r") == std::string::npos) break;  // blank line
        std::optional<nlohmann::json> response = server.HandleText(line, caller);
        if (response) running = WriteMessage(*response);
        break;
      }
    }
  }
  (*kb)->Close();
  if (audit) audit->Close();
  return kExitOk;
}

}  // namespace

void RegisterMcpCommand(CLI::App* root, CommandRegistry* registry) {
  auto common = std::make_shared<CommonOptions>();
  CLI::App* cmd = root->add_subcommand(
      "mcp",
      "Serve the Model Context Protocol on stdin/stdout for an MCP client, directly on a data "
      "directory (as the local administrator; takes the directory's lock). For a running "
      "server, point the client at its /mcp instead. docs/MCP.md.");
  AddConfigOptions(cmd, common.get());
  AddOptionalString(cmd, "--mcp-import-roots", &common->flags.mcp_import_roots,
                    "comma-separated directories the ingest_file tool may read below "
                    "($KB_MCP_IMPORT_ROOTS)");
  registry->Add(cmd, [common] { return RunMcp(*common); });
}

}  // namespace kb::cli
