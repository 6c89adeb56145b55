// The route table: what every handler receives and returns, and how a request path finds its
// route.
//
// We route ourselves instead of registering each regex with httplib so that (1) every request
// passes through one middleware (request id, auth, headers, metrics, access log), (2) a path
// that exists under another method answers 405 with an Allow header instead of 404, and (3) the
// metrics and logs can name the route PATTERN ("/api/v1/projects/{project}") rather than the raw
// path, which would give Prometheus unbounded label cardinality.
//
// Patterns are '/'-separated; a segment "{name}" matches any one non-empty segment and is
// captured (already percent-decoded by httplib).
//
// Thread-safety: a Router is built once at start and then only read.
#pragma once

#include <httplib.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "api/metrics.h"
#include "common/status.h"
#include "service/knowledge_base.h"
#include "store/catalog.h"

namespace kb::backup {
class BackupService;
class JournalShipper;
}  // namespace kb::backup

namespace kb::audit {
class AuditLog;
}  // namespace kb::audit

namespace kb::api {

class AccessControl;
class McpServer;

// What one request carries through the middleware into its handler.
struct RequestContext {
  const httplib::Request& http;
  std::string request_id;
  std::map<std::string, std::string> path_params;
  std::optional<ApiKeyRecord> key;  // set on authenticated routes
  Actor actor;                      // the key id, for the audit trail
  // Set by handlers for the audit log (api/audit_hook.h) when the target is not in the path:
  // the project a request created, the documents it wrote.
  std::string audit_project = "";
  std::vector<std::string> audit_document_ids = {};

  const std::string& Param(const std::string& name) const {
    static const std::string kEmpty;
    auto it = path_params.find(name);
    return it == path_params.end() ? kEmpty : it->second;
  }
  // True if the key may see `project_id` (unrestricted keys see every project).
  bool KeyAllowsProject(const std::string& project_id) const;
  // True if the key is limited to a set of projects.
  bool KeyRestricted() const { return key && !key->projects.empty(); }
};

// The request's body as one JSON object: 415 (UnsupportedMedia) if a non-empty body declares a
// Content-Type that is not JSON (none declared is taken as JSON); 400 if it is not one JSON
// object. An empty body is `{}` when `empty_is_object` (routes whose fields are all optional),
// else refused like any other non-object.
Result<nlohmann::json> JsonObjectBody(const RequestContext& ctx, bool empty_is_object = false);
// Only the media-type check of JsonObjectBody, for handlers that decode the raw body themselves.
Status RequireJsonBodyType(const RequestContext& ctx);

// A successful response. Errors are returned as a Status and rendered by http_status.cc.
struct Reply {
  int status = 200;
  nlohmann::json body;  // sent as application/json unless `text` is set
  std::optional<std::string> text;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;

  static Reply Json(int status, nlohmann::json body) {
    Reply r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
  static Reply NoContent() {
    Reply r;
    r.status = 204;
    r.text = "";
    return r;
  }
};

using RouteHandler = std::function<Result<Reply>(RequestContext&)>;

struct Route {
  std::string method;   // GET, POST, PUT, PATCH, DELETE
  std::string pattern;  // "/api/v1/projects/{project}"
  // Minimum key scope; nullopt = no authentication (health, readiness).
  std::optional<KeyScope> scope;
  // Path parameter naming a project (id or name) that project-limited keys are checked against.
  std::string project_param;
  // Only keys not limited to projects may call it (creating projects, managing all keys).
  bool unrestricted_only = false;
  RouteHandler handler;
  // The audit log's name for what the route does ("project.create", "apikey.revoke"); empty =
  // derived from the method and pattern (DeriveAction in api/audit_hook.h), so no route lacks one.
  std::string action = "";
};

// Shared state handed to the route builders.
struct ApiContext {
  KnowledgeBase* kb = nullptr;
  backup::BackupService* backups = nullptr;  // null: backup routes answer 503
  backup::JournalShipper* shipper = nullptr;  // null: not shipping (no `shipping` in stats)
  AccessControl* access = nullptr;  // lockdown, address rules, rate limits (access_control.h)
  audit::AuditLog* audit = nullptr;          // null: nothing is audited, the audit route answers 503
  AuditSink* audit_sink = nullptr;           // where requests are recorded; null: `audit` itself
  bool audit_reads = false;                  // audit successful reads too
  MetricsRegistry* metrics = nullptr;
  int64_t started_mono_us = 0;
  bool metrics_require_auth = false;
  int64_t max_body_bytes = 0;
  McpServer* mcp = nullptr;               // POST /mcp (api/mcp.h); null: it answers 503
  std::vector<std::string> cors_origins;  // also the origins /mcp accepts (routes_mcp.cc)
  // Where and how the server listens, for the posture report (api/posture.h).
  std::string host;
  bool tls = false;
  // Refreshes the gauges that are read at scrape time (per-project sizes, counters, uptime).
  std::function<void()> refresh_metrics;
};

std::vector<Route> MakeV1Routes(ApiContext* ctx);
std::vector<Route> MakeV2Routes(ApiContext* ctx);
std::vector<Route> MakeBackupRoutes(ApiContext* ctx);  // routes_backup.cc
std::vector<Route> MakeContainmentRoutes(ApiContext* ctx);  // routes_containment.cc
// Soft-delete administration and the key lifecycle (routes_lifecycle.cc).
std::vector<Route> MakeLifecycleRoutes(ApiContext* ctx);
std::vector<Route> MakeAuditRoutes(ApiContext* ctx);   // routes_audit.cc
std::vector<Route> MakeMcpRoutes(ApiContext* ctx);     // routes_mcp.cc: POST /mcp

class Router {
 public:
  void Add(Route route);

  enum class Outcome { kFound, kNotFound, kMethodNotAllowed };
  struct Match {
    const Route* route = nullptr;
    std::string pattern;  // of the first route on this path (any method), for labels
    std::map<std::string, std::string> params;
    std::vector<std::string> allowed_methods;  // for 405 and OPTIONS
  };
  // HEAD matches GET routes.
  Outcome Find(const std::string& method, const std::string& path, Match* out) const;

  const std::vector<Route>& routes() const { return routes_; }

 private:
  static std::vector<std::string> Split(const std::string& path);
  std::vector<Route> routes_;
  std::vector<std::vector<std::string>> segments_;  // parallel to routes_
};

}  // namespace kb::api
