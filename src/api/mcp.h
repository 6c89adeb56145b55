// McpServer: the Model Context Protocol (MCP, revision 2025-11-25 / 2025-06-18) over a
// KnowledgeBase, independent of how messages travel. Two thin transports carry it: stdio
// (`knowledgebeast mcp`, src/cli/mcp_command.cc: one JSON-RPC message per line) and Streamable
// HTTP (POST /mcp on the running server, src/api/routes_mcp.cc). docs/MCP.md is the user's view.
//
// What a message gets:
//  - JSON-RPC 2.0: a parse error is -32700, a message that is not a request object -32600 (JSON
//    arrays too: batches were removed from MCP in 2025-06-18), an unknown method -32601, bad
//    params -32602. Notifications (no "id") and responses from the client get no answer.
//  - `initialize` answers with the client's protocolVersion when supported, else the latest we
//    speak; `ping`; `tools/list`, `tools/call`; `resources/list`, `resources/templates/list`,
//    `resources/read` (each live document is `kb://{project-id}/documents/{document-id}`).
//  - A tool that fails (bad arguments, not allowed, not found, the service refused) is a
//    successful JSON-RPC response with `isError: true` and a text naming the problem (bad input
//    names the field); only an unknown tool or malformed `tools/call` params are protocol errors.
//    A tool that succeeds returns its result as `structuredContent` (matching the `outputSchema`
//    tools/list declares) and the same JSON as text.
//
// Permissions are the REST API's: the caller's key (McpCaller::key) must have the tool's scope
// (api::CheckScope, read ⊂ write ⊂ admin), a key limited to projects sees only those, tools the
// REST API reserves for unrestricted keys (create_project, backup_status) refuse limited keys,
// and writing tools pass McpCaller::check_write (the server's read-only mode). A caller without
// a key is the local administrator (stdio on a data directory, like other direct commands).
//
// Thread-safety: HandleText/HandleMessage may be called concurrently (the server's workers);
// the object holds only immutable state after construction.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/audit_sink.h"
#include "common/status.h"
#include "service/knowledge_base.h"
#include "store/catalog.h"

namespace kb::backup {
class BackupService;
}  // namespace kb::backup

namespace kb::api {

// Protocol revisions we answer with, newest first; initialize falls back to the first.
inline constexpr const char* kMcpProtocolVersions[] = {"2025-11-25", "2025-06-18"};
// resources/list page size (the cursor is an opaque offset).
inline constexpr int64_t kMcpResourcePageSize = 100;

// JSON-RPC error codes (JSON-RPC 2.0; -32002 is MCP's "resource not found").
inline constexpr int kJsonRpcParseError = -32700;
inline constexpr int kJsonRpcInvalidRequest = -32600;
inline constexpr int kJsonRpcMethodNotFound = -32601;
inline constexpr int kJsonRpcInvalidParams = -32602;
inline constexpr int kJsonRpcInternalError = -32603;
inline constexpr int kMcpResourceNotFound = -32002;

bool McpProtocolVersionSupported(std::string_view version);

// Who is calling, as the transport established it.
struct McpCaller {
  std::optional<ApiKeyRecord> key;  // nullopt: the local administrator (stdio, direct mode)
  Actor actor;
  std::string request_id;            // for logs and the audit log; may be empty
  std::string remote;                // client address, for the audit log
  std::string audit_method = "MCP";  // AuditEvent::method ("POST" over HTTP, "CLI" on stdio)
  std::string audit_route = "/mcp";  // AuditEvent::route
  // Called before a writing tool runs (OK to proceed); null = always allowed. The HTTP transport
  // passes the service mode check (read_only refuses writes).
  std::function<Status()> check_write;
};

struct McpOptions {
  // Directories ingest_file may read below (after resolving symlinks and ".."); empty = the
  // tool refuses every path.
  std::vector<std::string> import_roots;
  // backup_status reads it; null = the tool says backups are not available here.
  backup::BackupService* backups = nullptr;
  // Writing tools are recorded here (actor, action, project, documents); null = not recorded.
  AuditSink* audit = nullptr;
  int64_t max_document_bytes = kDefaultMaxDocumentBytes;  // ingest_file's size limit
};

// One tool as tools/list describes it (plus what the server needs to run it).
struct McpToolInfo {
  std::string name;
  std::string title;
  std::string description;
  nlohmann::json input_schema;
  nlohmann::json output_schema;
  KeyScope scope = KeyScope::kRead;
  bool writes = false;             // changes knowledge data: refused in read-only mode
  bool unrestricted_only = false;  // refused to keys limited to projects
};

// Checks `value` against the subset of JSON Schema our tool schemas use (type, properties,
// required, additionalProperties: false, enum, minimum/maximum, minLength/maxLength, items,
// minItems/maxItems). InvalidArgument naming the field ("field 'top_k' must be an integer >= 1").
[[nodiscard]] Status ValidateJsonSchema(const nlohmann::json& schema, const nlohmann::json& value,
                                        const std::string& path = "");

class McpServer {
 public:
  McpServer(KnowledgeBase* kb, McpOptions options);

  // One message as text: the response to send, or nullopt when nothing is to be sent
  // (notifications, client responses). Never throws.
  std::optional<nlohmann::json> HandleText(std::string_view text, const McpCaller& caller);
  // One parsed message (same contract).
  std::optional<nlohmann::json> HandleMessage(const nlohmann::json& message,
                                              const McpCaller& caller);

  const std::vector<McpToolInfo>& tools() const { return tools_; }

 private:
  using ToolResult = Result<nlohmann::json>;
  struct Tool {
    McpToolInfo info;
    std::function<ToolResult(const nlohmann::json& args, const McpCaller& caller,
                             AuditEvent* audit)>
        run;
    std::string action;  // audit action for writing tools
  };

  void BuildTools();
  Result<nlohmann::json> Dispatch(const std::string& method, const nlohmann::json& params,
                                  const McpCaller& caller);
  nlohmann::json Initialize(const nlohmann::json& params);
  nlohmann::json ListTools() const;
  Result<nlohmann::json> CallTool(const nlohmann::json& params, const McpCaller& caller);
  Result<nlohmann::json> ListResources(const nlohmann::json& params, const McpCaller& caller);
  Result<nlohmann::json> ReadResource(const nlohmann::json& params, const McpCaller& caller);
  // Whether the caller may use the tool (scope, restricted keys, project, service mode).
  Status Authorize(const Tool& tool, const nlohmann::json& args, const McpCaller& caller);
  // OK if the caller's key may see `project` (an id or name); PermissionDenied otherwise.
  Status CheckProjectAccess(const std::string& project, const McpCaller& caller);

  ToolResult Search(const nlohmann::json& args);
  ToolResult IngestText(const nlohmann::json& args, const McpCaller& caller, AuditEvent* audit);
  ToolResult IngestFile(const nlohmann::json& args, const McpCaller& caller, AuditEvent* audit);
  ToolResult ListProjects(const McpCaller& caller);
  ToolResult CreateProject(const nlohmann::json& args, const McpCaller& caller, AuditEvent* audit);
  ToolResult ListDocuments(const nlohmann::json& args);
  ToolResult GetDocument(const nlohmann::json& args);
  ToolResult DeleteDocument(const nlohmann::json& args, const McpCaller& caller, AuditEvent* audit);
  ToolResult Stats(const McpCaller& caller);
  ToolResult BackupStatus();

  KnowledgeBase* kb_;
  McpOptions options_;
  std::vector<std::string> resolved_roots_;  // realpath of each import root that exists
  std::vector<Tool> tool_impls_;
  std::vector<McpToolInfo> tools_;
};

}  // namespace kb::api
