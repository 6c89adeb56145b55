// The MCP core (see mcp.h): JSON-RPC framing, the lifecycle methods, the tool table with its
// schemas, and the resources. Tools call the KnowledgeBase as the REST routes do, decode their
// arguments with the REST decoders (api/request_decoding.h) after the schema check, and encode
// records with api/json_encoding.h, so a search over MCP and over REST are the same search.
#include "api/mcp.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "api/auth.h"
#include "api/http_status.h"
#include "api/json_encoding.h"
#include "api/request_decoding.h"
#include "backup/service.h"
#include "common/logging.h"

#ifndef KB_VERSION
#define KB_VERSION "dev"
#endif

namespace kb::api {

using nlohmann::json;

bool McpProtocolVersionSupported(std::string_view version) {
  for (const char* v : kMcpProtocolVersions) {
    if (version == v) return true;
  }
  return false;
}

// --- the JSON Schema subset --------------------------------------------------------------------

namespace {

std::string FieldName(const std::string& path) { return "field '" + path + "'"; }

std::string JsonTypeOf(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

bool MatchesType(const json& v, const std::string& type) {
  if (type == "integer") {
    if (v.is_number_integer() || v.is_number_unsigned()) return true;
    // JSON does not distinguish 3 from 3.0; JSON Schema counts 3.0 as an integer.
    // (Range first: casting 1e30 to an integer is undefined.)
    const double d = v.is_number_float() ? v.get<double>() : 0.5;
    return std::isfinite(d) && std::fabs(d) < 9.0e18 && std::trunc(d) == d;
  }
  if (type == "number") return v.is_number();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "null") return v.is_null();
  return false;
}

// "an integer", "a string", ...
std::string WithArticle(const std::string& type) {
  return (type == "integer" || type == "array" || type == "object" ? "an " : "a ") + type;
}

// UTF-8 code points, as JSON Schema counts string length.
size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

Status ValidateJsonSchema(const json& schema, const json& value, const std::string& path) {
  const std::string name = path.empty() ? "arguments" : FieldName(path);
  if (auto t = schema.find("type"); t != schema.end()) {
    std::vector<std::string> types;
    if (t->is_string()) {
      types.push_back(t->get<std::string>());
    } else {
      for (const auto& x : *t) types.push_back(x.get<std::string>());
    }
    bool ok = false;
    for (const auto& ty : types) ok = ok || MatchesType(value, ty);
    if (!ok) {
      std::string want;
      for (size_t i = 0; i < types.size(); ++i) {
        want += (i ? " or " : "") + WithArticle(types[i]);
      }
      return Status::InvalidArgument(name + " must be " + want + ", not " +
                                     WithArticle(JsonTypeOf(value)));
    }
  }
  if (auto e = schema.find("enum"); e != schema.end()) {
    if (std::find(e->begin(), e->end(), value) == e->end()) {
      std::string list;
      for (size_t i = 0; i < e->size(); ++i) list += (i ? ", " : "") + (*e)[i].dump();
      return Status::InvalidArgument(name + " must be one of " + list);
    }
  }
  if (value.is_number()) {
    const double d = value.get<double>();
    if (auto m = schema.find("minimum"); m != schema.end() && d < m->get<double>()) {
      return Status::InvalidArgument(name + " must be >= " + m->dump());
    }
    if (auto m = schema.find("maximum"); m != schema.end() && d > m->get<double>()) {
      return Status::InvalidArgument(name + " must be <= " + m->dump());
    }
  }
  if (value.is_string()) {
    const size_t n = CodePoints(value.get_ref<const std::string&>());
    if (auto m = schema.find("minLength"); m != schema.end() && n < m->get<size_t>()) {
      return Status::InvalidArgument(m->get<size_t>() == 1
                                         ? name + " must not be empty"
                                         : name + " must be at least " + m->dump() + " characters");
    }
    if (auto m = schema.find("maxLength"); m != schema.end() && n > m->get<size_t>()) {
      return Status::InvalidArgument(name + " must be at most " + m->dump() + " characters");
    }
  }
  if (value.is_array()) {
    if (auto m = schema.find("minItems"); m != schema.end() && value.size() < m->get<size_t>()) {
      return Status::InvalidArgument(name + " must have at least " + m->dump() + " items");
    }
    if (auto m = schema.find("maxItems"); m != schema.end() && value.size() > m->get<size_t>()) {
      return Status::InvalidArgument(name + " must have at most " + m->dump() + " items");
    }
    if (auto items = schema.find("items"); items != schema.end()) {
      for (size_t i = 0; i < value.size(); ++i) {
        KB_RETURN_IF_ERROR(
            ValidateJsonSchema(*items, value[i], path + "[" + std::to_string(i) + "]"));
      }
    }
  }
  if (value.is_object()) {
    const json props = schema.value("properties", json::object());
    if (auto req = schema.find("required"); req != schema.end()) {
      for (const auto& r : *req) {
        const std::string key = r.get<std::string>();
        if (!value.contains(key)) {
          return Status::InvalidArgument(FieldName(path.empty() ? key : path + "." + key) +
                                         " is required");
        }
      }
    }
    const bool closed = schema.contains("additionalProperties") &&
                        schema["additionalProperties"].is_boolean() &&
                        !schema["additionalProperties"].get<bool>();
    for (const auto& [key, v] : value.items()) {
      const std::string sub = path.empty() ? key : path + "." + key;
      auto p = props.find(key);
      if (p == props.end()) {
        if (closed) return Status::InvalidArgument(FieldName(sub) + " is not a known field");
        continue;
      }
      KB_RETURN_IF_ERROR(ValidateJsonSchema(*p, v, sub));
    }
  }
  return Status::OK();
}

// --- the tool table ----------------------------------------------------------------------------

namespace {

json Str(const std::string& description, int max_length = 0) {
  json j = {{"type", "string"}, {"minLength", 1}, {"description", description}};
  if (max_length > 0) j["maxLength"] = max_length;
  return j;
}

json ObjectSchema(json properties, std::vector<std::string> required) {
  json j = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) j["required"] = std::move(required);
  j["additionalProperties"] = false;
  return j;
}

// Output schemas describe what is always there; extra members are allowed (open objects), so
// a field added to a record later does not break a client that validates.
json OpenObject(json properties, std::vector<std::string> required) {
  json j = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) j["required"] = std::move(required);
  return j;
}

const json& ProjectSchema() {
  static const json kSchema = OpenObject({{"id", {{"type", "string"}}},
                                          {"name", {{"type", "string"}}},
                                          {"description", {{"type", "string"}}},
                                          {"metadata", {{"type", "object"}}}},
                                         {"id", "name"});
  return kSchema;
}

const json& DocumentSchema() {
  static const json kSchema = OpenObject({{"id", {{"type", "string"}}},
                                          {"title", {{"type", "string"}}},
                                          {"source", {{"type", "string"}}},
                                          {"content_type", {{"type", "string"}}},
                                          {"metadata", {{"type", "object"}}},
                                          {"chunk_count", {{"type", "integer"}}},
                                          {"bytes", {{"type", "integer"}}},
                                          {"created_at", {{"type", "string"}}},
                                          {"updated_at", {{"type", "string"}}}},
                                         {"id", "title", "source", "chunk_count"});
  return kSchema;
}

json IngestOutputSchema() {
  return OpenObject(
      {{"document", DocumentSchema()},
       {"outcome", {{"type", "string"}, {"enum", {"created", "replaced", "unchanged"}}}}},
      {"document", "outcome"});
}

const json kProjectArg = Str("Project id or name.", 100);
const json kMetadataArg = {{"type", "object"},
                           {"description",
                            "JSON object stored with the document; searchable by "
                            "`filters`."}};

// The document's text rebuilt from its chunks: chunks are slices [start, end) of the parsed
// text and may overlap, so each chunk adds only what lies past the text so far. If the offsets
// do not describe the chunk text (never expected), chunks are joined by a blank line instead.
std::string DocumentText(const std::vector<ChunkRecord>& chunks) {
  bool slices = true;
  for (const auto& c : chunks) {
    slices = slices && c.end_offset >= c.start_offset &&
             static_cast<size_t>(c.end_offset - c.start_offset) == c.text.size();
  }
  std::string out;
  if (!slices) {
    for (size_t i = 0; i < chunks.size(); ++i) out += (i ? "\n\n" : "") + chunks[i].text;
    return out;
  }
  int64_t end = 0;
  for (const auto& c : chunks) {
    if (c.start_offset >= end) {
      if (!out.empty() && c.start_offset > end) out += "\n";
      out += c.text;
    } else if (c.end_offset > end) {
      out += c.text.substr(static_cast<size_t>(end - c.start_offset));
    }
    end = std::max(end, c.end_offset);
  }
  return out;
}

// True if `path` is `root` or below it (both absolute and normalised by realpath).
bool PathWithin(const std::string& path, const std::string& root) {
  if (root == "/") return true;
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          path[root.size()] == '/');
}

// A tool failure as the client sees it: isError with the reason as text. Server-side failures
// (5xx in REST terms) keep their detail in the log, as the REST API does.
json ToolError(const Status& s, const McpCaller& caller) {
  // ErrorObject keeps the detail of server-side failures in the log, as the REST API does.
  const json err = ErrorObject(s, caller.request_id);
  return {{"content", json::array({{{"type", "text"},
                                    {"text", err["code"].get<std::string>() + ": " +
                                                 err["message"].get<std::string>()}}})},
          {"isError", true}};
}

json ToolSuccess(json structured) {
  return {{"content", json::array({{{"type", "text"}, {"text", DumpJson(structured)}}})},
          {"structuredContent", std::move(structured)},
          {"isError", false}};
}

json RpcError(const json& id, int code, const std::string& message) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

}  // namespace

McpServer::McpServer(KnowledgeBase* kb, McpOptions options)
    : kb_(kb), options_(std::move(options)) {
  for (const std::string& root : options_.import_roots) {
    std::error_code ec;
    std::filesystem::path real = std::filesystem::canonical(root, ec);
    if (ec) {
      // A root that does not exist allows nothing; say so once rather than on every call.
      LogWarn("mcp import root ignored", DumpJson({{"root", root}, {"reason", ec.message()}}));
      continue;
    }
    resolved_roots_.push_back(real.string());
  }
  BuildTools();
}

void McpServer::BuildTools() {
  const KeyScope kRead = KeyScope::kRead, kWrite = KeyScope::kWrite, kAdmin = KeyScope::kAdmin;
  auto add = [this](McpToolInfo info, std::string action,
                    std::function<ToolResult(const json&, const McpCaller&, AuditEvent*)> run) {
    tool_impls_.push_back(Tool{std::move(info), std::move(run), std::move(action)});
  };

  add({"search", "Search a project",
       "Hybrid (vector + keyword), vector or keyword search over one project's documents. "
       "Returns the best passages with their document ids, sources and scores.",
       ObjectSchema(
           {{"project", kProjectArg},
            {"query", Str("What to search for.", static_cast<int>(kMaxQueryBytes))},
            {"mode",
             {{"type", "string"},
              {"enum", {"hybrid", "vector", "keyword"}},
              {"description", "hybrid (default), vector or keyword."}}},
            {"top_k",
             {{"type", "integer"},
              {"minimum", 1},
              {"maximum", kMaxTopK},
              {"description", "How many results (default 10)."}}},
            {"offset", {{"type", "integer"}, {"minimum", 0}, {"description", "Results to skip."}}},
            {"alpha",
             {{"type", "number"},
              {"minimum", 0},
              {"maximum", 1},
              {"description", "Weight of the vector score in hybrid mode."}}},
            {"filters",
             {{"type", "object"},
              {"description", "Metadata filters, as the REST API takes them (docs/API.md)."}}},
            {"use_cache",
             {{"type", "boolean"},
              {"description", "Answer from the query cache when possible (default true)."}}}},
           {"project", "query"}),
       OpenObject({{"project", {{"type", "string"}}},
                   {"query", {{"type", "string"}}},
                   {"mode", {{"type", "string"}}},
                   {"took_ms", {{"type", "number"}}},
                   {"results",
                    {{"type", "array"},
                     {"items", OpenObject({{"document_id", {{"type", "string"}}},
                                           {"chunk_id", {{"type", "integer"}}},
                                           {"title", {{"type", "string"}}},
                                           {"source", {{"type", "string"}}},
                                           {"text", {{"type", "string"}}},
                                           {"score", {{"type", "number"}}},
                                           {"vector_score", {{"type", {"number", "null"}}}},
                                           {"keyword_score", {{"type", {"number", "null"}}}},
                                           {"rank", {{"type", "integer"}}}},
                                          {"document_id", "chunk_id", "source", "text", "score",
                                           "rank"})}}}},
                  {"project", "query", "results"}),
       kRead},
      "", [this](const json& a, const McpCaller&, AuditEvent*) { return Search(a); });

  add({"ingest_text", "Add a document from text",
       "Stores a document given as text (plain, Markdown or HTML): it is chunked, embedded and "
       "searchable at once. A document with the same source replaces the previous one.",
       ObjectSchema({{"project", kProjectArg},
                     {"content", Str("The document's text.")},
                     {"title", {{"type", "string"}, {"maxLength", kMaxTitleBytes}}},
                     {"source",
                      {{"type", "string"},
                       {"maxLength", kMaxSourceBytes},
                       {"description",
                        "Where it came from (unique per project: the same source "
                        "replaces)."}}},
                     {"content_type",
                      {{"type", "string"},
                       {"enum", {"text/plain", "text/markdown", "text/html"}},
                       {"description", "Default: detected."}}},
                     {"metadata", kMetadataArg}},
                    {"project", "content"}),
       IngestOutputSchema(), kWrite, /*writes=*/true},
      "document.create",
      [this](const json& a, const McpCaller& c, AuditEvent* e) { return IngestText(a, c, e); });

  add({"ingest_file", "Add a document from a file on the server",
       "Reads a file below one of the server's import roots (mcp_import_roots) and stores it. "
       "Any other path is refused.",
       ObjectSchema({{"project", kProjectArg},
                     {"path", Str("Absolute path of the file on the server.", 4096)},
                     {"title", {{"type", "string"}, {"maxLength", kMaxTitleBytes}}},
                     {"source", {{"type", "string"}, {"maxLength", kMaxSourceBytes}}},
                     {"metadata", kMetadataArg}},
                    {"project", "path"}),
       IngestOutputSchema(), kWrite, /*writes=*/true},
      "document.create",
      [this](const json& a, const McpCaller& c, AuditEvent* e) { return IngestFile(a, c, e); });

  add({"list_projects", "List projects", "The projects this key may see.",
       ObjectSchema(json::object(), {}),
       OpenObject({{"projects", {{"type", "array"}, {"items", ProjectSchema()}}},
                   {"count", {{"type", "integer"}}}},
                  {"projects", "count"}),
       kRead},
      "", [this](const json&, const McpCaller& c, AuditEvent*) { return ListProjects(c); });

  add({"create_project", "Create a project", "Creates an empty project.",
       ObjectSchema({{"name", Str("Unique project name.", 100)},
                     {"description", {{"type", "string"}, {"maxLength", kMaxDescriptionBytes}}},
                     {"metadata", {{"type", "object"}}},
                     {"chunk_size", {{"type", "integer"}, {"minimum", 1}}},
                     {"chunk_overlap", {{"type", "integer"}, {"minimum", 0}}}},
                    {"name"}),
       OpenObject({{"project", ProjectSchema()}}, {"project"}), kWrite, /*writes=*/true,
       /*unrestricted_only=*/true},
      "project.create",
      [this](const json& a, const McpCaller& c, AuditEvent* e) { return CreateProject(a, c, e); });

  add({"list_documents", "List documents", "A page of a project's documents, newest first.",
       ObjectSchema({{"project", kProjectArg},
                     {"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", kMaxListLimit}}},
                     {"offset", {{"type", "integer"}, {"minimum", 0}}}},
                    {"project"}),
       OpenObject({{"documents", {{"type", "array"}, {"items", DocumentSchema()}}},
                   {"total", {{"type", "integer"}}},
                   {"limit", {{"type", "integer"}}},
                   {"offset", {{"type", "integer"}}}},
                  {"documents", "total"}),
       kRead},
      "", [this](const json& a, const McpCaller&, AuditEvent*) { return ListDocuments(a); });

  add({"get_document", "Get a document",
       "One document's record (title, source, metadata, size). Its text is the resource "
       "kb://{project}/documents/{id}.",
       ObjectSchema({{"project", kProjectArg}, {"document_id", Str("Document id.", 100)}},
                    {"project", "document_id"}),
       OpenObject({{"document", DocumentSchema()}, {"uri", {{"type", "string"}}}},
                  {"document", "uri"}),
       kRead},
      "", [this](const json& a, const McpCaller&, AuditEvent*) { return GetDocument(a); });

  add({"delete_document", "Delete a document",
       "Deletes a document (soft delete: an administrator can restore it until it is purged).",
       ObjectSchema({{"project", kProjectArg}, {"document_id", Str("Document id.", 100)}},
                    {"project", "document_id"}),
       OpenObject({{"deleted", {{"type", "boolean"}}}, {"document_id", {{"type", "string"}}}},
                  {"deleted", "document_id"}),
       kWrite, /*writes=*/true},
      "document.delete",
      [this](const json& a, const McpCaller& c, AuditEvent* e) { return DeleteDocument(a, c, e); });

  add({"stats", "Statistics", "Counts of projects, documents and chunks, and sizes.",
       ObjectSchema(json::object(), {}),
       OpenObject({{"projects", {{"type", "integer"}}},
                   {"documents", {{"type", "integer"}}},
                   {"chunks", {{"type", "integer"}}},
                   {"per_project", {{"type", "array"}}}},
                  {"projects", "documents", "chunks"}),
       kRead},
      "", [this](const json&, const McpCaller& c, AuditEvent*) { return Stats(c); });

  add({"backup_status", "Backup status",
       "The backup repository, the last backup and verification, and the schedule.",
       ObjectSchema(json::object(), {}),
       OpenObject({{"backups", {{"type", "object"}}}}, {"backups"}), kAdmin, /*writes=*/false,
       /*unrestricted_only=*/true},
      "", [this](const json&, const McpCaller&, AuditEvent*) { return BackupStatus(); });

  for (const Tool& t : tool_impls_) tools_.push_back(t.info);
}

// --- JSON-RPC ----------------------------------------------------------------------------------

std::optional<json> McpServer::HandleText(std::string_view text, const McpCaller& caller) {
  if (!CheckJsonDepth(text).ok()) {
    return RpcError(nullptr, kJsonRpcParseError, "parse error: nested too deeply");
  }
  json message = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded()) return RpcError(nullptr, kJsonRpcParseError, "parse error");
  return HandleMessage(message, caller);
}

std::optional<json> McpServer::HandleMessage(const json& message, const McpCaller& caller) {
  try {
    if (message.is_array()) {
      return RpcError(nullptr, kJsonRpcInvalidRequest,
                      "JSON-RPC batches are not supported (MCP 2025-06-18 removed them)");
    }
    if (!message.is_object()) {
      return RpcError(nullptr, kJsonRpcInvalidRequest, "a message must be a JSON object");
    }
    const bool has_id = message.contains("id");
    json id = has_id ? message["id"] : json(nullptr);
    const bool id_ok =
        has_id && (id.is_string() || id.is_number_integer() || id.is_number_unsigned());
    if (has_id && !id_ok) id = nullptr;
    if (!message.contains("method")) {
      // A response to a request of ours (we send none) or garbage: responses get no answer.
      if (message.contains("result") || message.contains("error")) return std::nullopt;
      return RpcError(id, kJsonRpcInvalidRequest, "a request needs 'method'");
    }
    if (message.value("jsonrpc", json()) != "2.0") {
      return has_id ? std::optional<json>(
                          RpcError(id, kJsonRpcInvalidRequest, "'jsonrpc' must be \"2.0\""))
                    : std::nullopt;
    }
    if (!message["method"].is_string()) {
      return has_id ? std::optional<json>(
                          RpcError(id, kJsonRpcInvalidRequest, "'method' must be a string"))
                    : std::nullopt;
    }
    const std::string method = message["method"].get<std::string>();
    if (!has_id) {
      // Notifications: initialized, cancelled, progress, roots changed. Nothing to do and
      // nothing to answer, whatever they are.
      return std::nullopt;
    }
    if (!id_ok) {
      return RpcError(nullptr, kJsonRpcInvalidRequest, "'id' must be a string or an integer");
    }
    const json params = message.contains("params") ? message["params"] : json::object();
    if (!params.is_object()) {
      return RpcError(id, kJsonRpcInvalidParams, "'params' must be an object");
    }
    Result<json> result = Dispatch(method, params, caller);
    if (!result.ok()) {
      const Status& s = result.status();
      int code = kJsonRpcInternalError;
      if (s.code() == Code::kInvalidArgument) code = kJsonRpcInvalidParams;
      if (s.code() == Code::kNotFound) code = kJsonRpcMethodNotFound;
      if (s.code() == Code::kFailedPrecondition) code = kMcpResourceNotFound;
      // A server-side failure keeps its detail in the log (as REST's 500s do); a refusal the
      // client can act on (unavailable while a project is restored, ...) says what it is.
      if (code == kJsonRpcInternalError && HttpStatusFor(s.code()) >= 500 &&
          s.code() != Code::kUnavailable) {
        LogError("mcp request failed", DumpJson({{"method", method}, {"error", s.ToString()}}));
        return RpcError(id, code, "internal error");
      }
      return RpcError(id, code, s.message());
    }
    return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result).value()}};
  } catch (const std::exception& e) {
    // Not expected (every json access above is checked); never let it reach a transport.
    LogError("mcp exception", DumpJson({{"error", e.what()}}));
    return RpcError(nullptr, kJsonRpcInternalError, "internal error");
  }
}

// Status codes carry the JSON-RPC error class out of the methods: InvalidArgument -> -32602,
// NotFound -> -32601 (unknown method), FailedPrecondition -> -32002 (resource not found).
Result<json> McpServer::Dispatch(const std::string& method, const json& params,
                                 const McpCaller& caller) {
  if (method == "initialize") {
    if (!params.contains("protocolVersion") || !params["protocolVersion"].is_string()) {
      return Status::InvalidArgument("initialize needs 'protocolVersion' (a string)");
    }
    return Initialize(params);
  }
  if (method == "ping") return json::object();
  if (method == "tools/list") return ListTools();
  if (method == "tools/call") return CallTool(params, caller);
  if (method == "resources/list") return ListResources(params, caller);
  if (method == "resources/templates/list") {
    return json{
        {"resourceTemplates", json::array({{{"uriTemplate", "kb://{project}/documents/{id}"},
                                            {"name", "document"},
                                            {"title", "A document's text"},
                                            {"mimeType", "text/plain"}}})}};
  }
  if (method == "resources/read") return ReadResource(params, caller);
  return Status::NotFound("method not found: " + method);
}

json McpServer::Initialize(const json& params) {
  const std::string asked = params["protocolVersion"].get<std::string>();
  const std::string version = McpProtocolVersionSupported(asked) ? asked : kMcpProtocolVersions[0];
  return {{"protocolVersion", version},
          {"capabilities",
           {{"tools", {{"listChanged", false}}},
            {"resources", {{"listChanged", false}, {"subscribe", false}}}}},
          {"serverInfo",
           {{"name", "knowledgebeast"}, {"title", "KnowledgeBeast"}, {"version", KB_VERSION}}},
          {"instructions",
           "A knowledge base of projects of documents. Use list_projects to find a project, "
           "search to find passages, and the kb:// resources or get_document to read a "
           "document."}};
}

json McpServer::ListTools() const {
  json list = json::array();
  for (const McpToolInfo& t : tools_) {
    list.push_back({{"name", t.name},
                    {"title", t.title},
                    {"description", t.description},
                    {"inputSchema", t.input_schema},
                    {"outputSchema", t.output_schema},
                    {"annotations",
                     {{"readOnlyHint", !t.writes},
                      {"destructiveHint", t.name == "delete_document"},
                      {"idempotentHint", !t.writes || t.name == "delete_document"},
                      {"openWorldHint", false}}}});
  }
  return {{"tools", std::move(list)}};
}

Status McpServer::CheckProjectAccess(const std::string& project, const McpCaller& caller) {
  if (!caller.key || caller.key->projects.empty()) return Status::OK();
  auto p = kb_->GetProject(project);
  // Unknown projects are refused too: a limited key must not probe names (as in REST).
  if (!p.ok() || std::find(caller.key->projects.begin(), caller.key->projects.end(), p->id) ==
                     caller.key->projects.end()) {
    return Status::PermissionDenied("this key is not allowed on project '" + project + "'");
  }
  return Status::OK();
}

Status McpServer::Authorize(const Tool& tool, const json& args, const McpCaller& caller) {
  if (caller.key) {
    Status scope = CheckScope(*caller.key, tool.info.scope);
    if (!scope.ok()) {
      return Status::PermissionDenied("tool '" + tool.info.name + "' needs a key with '" +
                                      std::string(KeyScopeName(tool.info.scope)) +
                                      "' scope; this key has '" +
                                      std::string(KeyScopeName(caller.key->scope)) + "'");
    }
    if (tool.info.unrestricted_only && !caller.key->projects.empty()) {
      return Status::PermissionDenied("tool '" + tool.info.name +
                                      "' needs a key for all projects; this key is limited to "
                                      "projects");
    }
    if (args.contains("project")) {
      KB_RETURN_IF_ERROR(CheckProjectAccess(args["project"].get<std::string>(), caller));
    }
  }
  if (tool.info.writes && caller.check_write) KB_RETURN_IF_ERROR(caller.check_write());
  return Status::OK();
}

Result<json> McpServer::CallTool(const json& params, const McpCaller& caller) {
  if (!params.contains("name") || !params["name"].is_string()) {
    return Status::InvalidArgument("tools/call needs 'name' (a string)");
  }
  const std::string name = params["name"].get<std::string>();
  const Tool* tool = nullptr;
  for (const Tool& t : tool_impls_) {
    if (t.info.name == name) tool = &t;
  }
  if (tool == nullptr) return Status::InvalidArgument("unknown tool: " + name);
  const json args = params.contains("arguments") ? params["arguments"] : json::object();
  // Invalid input is the tool's error (isError), so that the model sees it and can correct
  // itself; the schema names the field.
  if (!args.is_object()) {
    return ToolError(Status::InvalidArgument("arguments must be an object"), caller);
  }
  Status valid = ValidateJsonSchema(tool->info.input_schema, args);
  if (!valid.ok()) return ToolError(valid, caller);

  AuditEvent event;
  const bool audited = tool->info.writes && options_.audit != nullptr;
  if (audited) {
    event.request_id = caller.request_id;
    event.actor_id = caller.actor.id;
    event.actor_name = caller.actor.name;
    event.remote = caller.remote;
    event.method = caller.audit_method;
    event.route = caller.audit_route;
    event.action = tool->action;
    event.detail = "mcp tool " + name;
    if (args.contains("project")) event.project = args["project"].get<std::string>();
  }
  Status allowed = Authorize(*tool, args, caller);
  ToolResult result = allowed.ok() ? tool->run(args, caller, &event) : ToolResult(allowed);
  if (audited) {
    if (!result.ok()) {
      const Code c = result.status().code();
      event.outcome =
          c == Code::kPermissionDenied || c == Code::kUnavailable ? "refused" : "failed";
      event.detail += ": " + result.status().ToString();
    } else {
      event.outcome = "ok";
    }
    options_.audit->Record(std::move(event));
  }
  if (!result.ok()) return ToolError(result.status(), caller);
  return ToolSuccess(std::move(result).value());
}

// --- resources ---------------------------------------------------------------------------------

namespace {

std::string DocumentUri(const std::string& project_id, const std::string& document_id) {
  return "kb://" + project_id + "/documents/" + document_id;
}

}  // namespace

Result<json> McpServer::ListResources(const json& params, const McpCaller& caller) {
  if (caller.key) KB_RETURN_IF_ERROR(CheckScope(*caller.key, KeyScope::kRead));
  int64_t start = 0;
  if (params.contains("cursor")) {
    const json& c = params["cursor"];
    const std::string text = c.is_string() ? c.get<std::string>() : "";
    char* end = nullptr;
    errno = 0;
    const long long v = text.empty() ? -1 : std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || errno != 0 || *end != '\0' || v < 0) {
      return Status::InvalidArgument("invalid cursor");
    }
    start = v;
  }
  KB_ASSIGN_OR_RETURN(auto projects, kb_->ListProjects());
  json resources = json::array();
  int64_t skipped = 0;  // documents before this page, over every visible project in order
  bool more = false;
  for (const ProjectRecord& p : projects) {
    if (caller.key && !caller.key->projects.empty() &&
        std::find(caller.key->projects.begin(), caller.key->projects.end(), p.id) ==
            caller.key->projects.end()) {
      continue;
    }
    if (static_cast<int64_t>(resources.size()) >= kMcpResourcePageSize) {
      more = true;
      break;
    }
    auto head = kb_->ListDocuments(p.id, 1, 0);
    if (!head.ok()) continue;  // a project being restored or dropped: skipped, not an error
    const int64_t total = head->total;
    if (skipped + total <= start) {
      skipped += total;
      continue;
    }
    int64_t offset = std::max<int64_t>(0, start - skipped);
    while (offset < total && static_cast<int64_t>(resources.size()) < kMcpResourcePageSize) {
      const int64_t want =
          std::min<int64_t>(kMcpResourcePageSize - resources.size(), kMaxListLimit);
      auto page = kb_->ListDocuments(p.id, want, offset);
      if (!page.ok() || page->documents.empty()) break;
      for (const DocumentRecord& d : page->documents) {
        resources.push_back({{"uri", DocumentUri(p.id, d.id)},
                             {"name", d.title.empty() ? d.id : d.title},
                             {"title", d.title.empty() ? d.source : d.title},
                             {"description", "Document in project " + p.name +
                                                 (d.source.empty() ? "" : " (" + d.source + ")")},
                             {"mimeType", "text/plain"},
                             {"size", d.bytes}});
      }
      offset += static_cast<int64_t>(page->documents.size());
    }
    if (offset < total) more = true;
    skipped += total;
    if (more) break;
  }
  json out = {{"resources", std::move(resources)}};
  if (more)
    out["nextCursor"] = std::to_string(start + static_cast<int64_t>(out["resources"].size()));
  return out;
}

Result<json> McpServer::ReadResource(const json& params, const McpCaller& caller) {
  if (!params.contains("uri") || !params["uri"].is_string()) {
    return Status::InvalidArgument("resources/read needs 'uri' (a string)");
  }
  if (caller.key) KB_RETURN_IF_ERROR(CheckScope(*caller.key, KeyScope::kRead));
  const std::string uri = params["uri"].get<std::string>();
  static const std::string kScheme = "kb://";
  static const std::string kMiddle = "/documents/";
  const size_t mid = uri.find(kMiddle);
  if (uri.rfind(kScheme, 0) != 0 || mid == std::string::npos || mid <= kScheme.size()) {
    return Status::FailedPrecondition("resource not found: " + uri +
                                      " (expected kb://{project}/documents/{id})");
  }
  const std::string project = uri.substr(kScheme.size(), mid - kScheme.size());
  const std::string id = uri.substr(mid + kMiddle.size());
  if (id.empty() || id.find('/') != std::string::npos) {
    return Status::FailedPrecondition("resource not found: " + uri);
  }
  // A project the key may not see reads as absent, not as forbidden: no probing of names.
  if (!CheckProjectAccess(project, caller).ok()) {
    return Status::FailedPrecondition("resource not found: " + uri);
  }
  auto chunks = kb_->GetDocumentChunks(project, id);
  if (!chunks.ok()) {
    if (chunks.status().code() == Code::kNotFound) {
      return Status::FailedPrecondition("resource not found: " + uri);
    }
    return chunks.status();
  }
  return json{
      {"contents",
       json::array({{{"uri", uri}, {"mimeType", "text/plain"}, {"text", DocumentText(*chunks)}}})}};
}

// --- the tools ---------------------------------------------------------------------------------

McpServer::ToolResult McpServer::Search(const json& args) {
  json body = args;
  const std::string project = body["project"].get<std::string>();
  body.erase("project");
  KB_ASSIGN_OR_RETURN(QueryRequest q, DecodeQueryBody(body));
  KB_ASSIGN_OR_RETURN(QueryResponse resp, kb_->Query(project, q));
  json results = json::array();
  for (const QueryHit& h : resp.hits) results.push_back(EncodeHit(h));
  return json{
      {"project", project},      {"query", q.text},       {"mode", args.value("mode", "hybrid")},
      {"took_ms", resp.took_ms}, {"cached", resp.cached}, {"results", std::move(results)}};
}

namespace {

json IngestJson(const IngestResult& r) {
  return {{"document", EncodeDocument(r.document)},
          {"outcome", std::string(OutcomeName(r.outcome))}};
}

std::string MetadataArg(const json& args) {
  return args.contains("metadata") ? DumpJson(args["metadata"]) : "{}";
}

}  // namespace

McpServer::ToolResult McpServer::IngestText(const json& args, const McpCaller& caller,
                                            AuditEvent* audit) {
  IngestRequest req;
  req.content = args["content"].get<std::string>();
  req.title = args.value("title", "");
  req.source = args.value("source", "");
  // No file name: it would become the default source, and sources are unique per project, so
  // every unnamed text would replace the previous one. Without a source each text is new.
  req.declared_mime = args.value("content_type", "");
  req.metadata_json = MetadataArg(args);
  const std::string project = args["project"].get<std::string>();
  KB_ASSIGN_OR_RETURN(IngestResult r, kb_->Ingest(project, req, caller.actor));
  audit->document_ids.push_back(r.document.id);
  if (auto p = kb_->GetProject(project); p.ok()) audit->project = p->id;
  return IngestJson(r);
}

McpServer::ToolResult McpServer::IngestFile(const json& args, const McpCaller& caller,
                                            AuditEvent* audit) {
  const std::string path = args["path"].get<std::string>();
  if (resolved_roots_.empty()) {
    return Status::PermissionDenied(
        "field 'path': ingest_file is disabled: no import roots are configured "
        "(mcp_import_roots)");
  }
  if (path.empty() || path[0] != '/') {
    return Status::InvalidArgument("field 'path' must be an absolute path");
  }
  std::error_code ec;
  const std::filesystem::path real = std::filesystem::canonical(path, ec);
  if (ec) return Status::NotFound("field 'path': cannot resolve " + path + ": " + ec.message());
  auto within = [this](const std::string& p) {
    for (const std::string& root : resolved_roots_) {
      if (PathWithin(p, root)) return true;
    }
    return false;
  };
  if (!within(real.string())) {
    return Status::PermissionDenied("field 'path': " + path +
                                    " is outside the import roots (mcp_import_roots)");
  }
  // Opened without following a last symlink, then the descriptor's own path checked again: a
  // component swapped for a symlink between the check above and the open is caught here.
  const int fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return Status::NotFound("field 'path': cannot open " + path + ": " + std::strerror(errno));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  char link[PATH_MAX + 1];
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(proc.c_str(), link, PATH_MAX);
  if (n <= 0 || !within(std::string(link, static_cast<size_t>(n)))) {
    return Status::PermissionDenied("field 'path': " + path +
                                    " is outside the import roots (mcp_import_roots)");
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("field 'path': " + path + " is not a regular file");
  }
  if (st.st_size > options_.max_document_bytes) {
    return Status::PayloadTooLarge("field 'path': " + path + " is larger than " +
                                   std::to_string(options_.max_document_bytes) + " bytes");
  }
  std::string content;
  content.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < content.size()) {
    const ssize_t r = ::read(fd, content.data() + got, content.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::IOError("reading " + path + ": " + std::strerror(errno));
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  content.resize(got);
  IngestRequest req;
  req.content = std::move(content);
  req.filename = real.filename().string();
  req.title = args.value("title", "");
  // The resolved path is the default source: re-ingesting the file replaces its document.
  req.source = args.value("source", real.string());
  req.metadata_json = MetadataArg(args);
  const std::string project = args["project"].get<std::string>();
  KB_ASSIGN_OR_RETURN(IngestResult r, kb_->Ingest(project, req, caller.actor));
  audit->document_ids.push_back(r.document.id);
  audit->detail += " " + real.string();
  if (auto p = kb_->GetProject(project); p.ok()) audit->project = p->id;
  return IngestJson(r);
}

McpServer::ToolResult McpServer::ListProjects(const McpCaller& caller) {
  KB_ASSIGN_OR_RETURN(auto projects, kb_->ListProjects());
  json list = json::array();
  for (const ProjectRecord& p : projects) {
    if (caller.key && !caller.key->projects.empty() &&
        std::find(caller.key->projects.begin(), caller.key->projects.end(), p.id) ==
            caller.key->projects.end()) {
      continue;
    }
    list.push_back(EncodeProject(p));
  }
  const size_t n = list.size();
  return json{{"projects", std::move(list)}, {"count", n}};
}

McpServer::ToolResult McpServer::CreateProject(const json& args, const McpCaller& caller,
                                               AuditEvent* audit) {
  KB_ASSIGN_OR_RETURN(CreateProjectRequest req, DecodeCreateProject(args));
  audit->project = req.name;
  KB_ASSIGN_OR_RETURN(ProjectRecord p, kb_->CreateProject(req, caller.actor));
  audit->project = p.id;
  return json{{"project", EncodeProject(p)}};
}

McpServer::ToolResult McpServer::ListDocuments(const json& args) {
  const int64_t limit = args.value("limit", static_cast<int64_t>(kDefaultListLimit));
  const int64_t offset = args.value("offset", static_cast<int64_t>(0));
  KB_ASSIGN_OR_RETURN(auto page,
                      kb_->ListDocuments(args["project"].get<std::string>(), limit, offset));
  json docs = json::array();
  for (const DocumentRecord& d : page.documents) docs.push_back(EncodeDocument(d));
  return json{
      {"documents", std::move(docs)}, {"total", page.total}, {"limit", limit}, {"offset", offset}};
}

McpServer::ToolResult McpServer::GetDocument(const json& args) {
  const std::string project = args["project"].get<std::string>();
  KB_ASSIGN_OR_RETURN(ProjectRecord p, kb_->GetProject(project));
  KB_ASSIGN_OR_RETURN(DocumentRecord d,
                      kb_->GetDocument(p.id, args["document_id"].get<std::string>()));
  return json{{"document", EncodeDocument(d)}, {"uri", DocumentUri(p.id, d.id)}};
}

McpServer::ToolResult McpServer::DeleteDocument(const json& args, const McpCaller& caller,
                                                AuditEvent* audit) {
  const std::string project = args["project"].get<std::string>();
  const std::string id = args["document_id"].get<std::string>();
  audit->document_ids.push_back(id);
  if (auto p = kb_->GetProject(project); p.ok()) audit->project = p->id;
  KB_RETURN_IF_ERROR(kb_->DeleteDocument(project, id, caller.actor));
  return json{{"deleted", true}, {"document_id", id}};
}

McpServer::ToolResult McpServer::Stats(const McpCaller& caller) {
  KB_ASSIGN_OR_RETURN(KbStats s, kb_->Stats());
  if (caller.key && !caller.key->projects.empty()) {
    // As GET /api/v1/stats: a limited key sees totals over its own projects only.
    const std::vector<std::string>& own = caller.key->projects;
    s = s.OnlyProjects(
        [&](const std::string& id) { return std::find(own.begin(), own.end(), id) != own.end(); });
  }
  return EncodeStats(s);
}

McpServer::ToolResult McpServer::BackupStatus() {
  if (options_.backups == nullptr) {
    return Status::Unavailable(
        "backups are not available here: backup_status works on the server's /mcp; on a data "
        "directory use `knowledgebeast backup list`");
  }
  return json{{"backups", options_.backups->StatusJson()}};
}

}  // namespace kb::api
