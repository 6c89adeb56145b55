// The HTTP side of the audit log: which requests are recorded, and what each entry says.
//
// Recorded (docs/format/AUDIT_LOG.md section 5): every request to a route that can change
// something (POST, PUT, PATCH, DELETE on a route a read-scope key cannot call — searching by
// POST is a read), every refused request (401, 403, 413, 429, and 503 from any route but /health
// and /ready: lockdown, read-only, not configured), whether or not a route matched; with
// `audit_reads`, every other request to an authenticated route too.
//
// Called once per request at the end of the server's middleware (and for errors httplib answers
// before routing). Never throws, never changes the response.
//
// Thread-safety: stateless; safe from every worker thread.
#pragma once

#include <httplib.h>

#include <string>

#include "api/router.h"

namespace kb::api {

// "project.create" from ("POST", "/api/v1/projects"); see audit_hook.cc for the rule.
std::string DeriveAction(const std::string& method, const std::string& pattern);
// The route's own action, else the derived one.
std::string RouteAction(const Route& route);

// What the middleware knows about one finished request. `route` is null when none matched;
// `ctx` may be null (then no actor, project or documents are known).
struct AuditedRequest {
  const httplib::Request& http;
  const httplib::Response& response;
  const std::string& request_id;
  const Route* route = nullptr;
  const RequestContext* ctx = nullptr;
};

void AuditRequest(ApiContext* api, const AuditedRequest& request);

// {"ok", "events", "write_failures", "dropped"} for /health: ok is false once anything was lost.
nlohmann::json AuditHealthJson(const audit::AuditLog& log);

}  // namespace kb::api
