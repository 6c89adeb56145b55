// Turns a finished HTTP request into an AuditEvent (see audit_hook.h for which ones).
#include "api/audit_hook.h"

#include <nlohmann/json.hpp>

#include "api/access_control.h"
#include "api/auth.h"
#include "audit/audit_log.h"
#include "common/logging.h"

namespace kb::api {
namespace {

// Path segments that name the API, not a resource.
bool IsPrefixSegment(const std::string& s) {
  return s == "api" || s == "v1" || s == "v2" || s == "admin";
}
bool IsParam(const std::string& s) { return s.size() > 2 && s.front() == '{' && s.back() == '}'; }

// "api-keys" -> "apikey", "projects" -> "project", "backups" -> "backup".
std::string Singular(std::string s) {
  std::string out;
  for (char c : s) {
    if (c != '-' && c != '_') out.push_back(c);
  }
  if (out.size() > 3 && out.ends_with("ies")) return out.substr(0, out.size() - 3) + "y";
  if (out.size() > 3 && out.back() == 's' && !out.ends_with("ss")) out.pop_back();
  return out;
}

std::string VerbFor(const std::string& method, bool item) {
  if (method == "POST") return "create";
  if (method == "PUT") return "replace";
  if (method == "PATCH") return "update";
  if (method == "DELETE") return "delete";
  return item ? "read" : "list";
}

bool IsMutatingMethod(const std::string& m) {
  return m == "POST" || m == "PUT" || m == "PATCH" || m == "DELETE";
}

bool IsRefusal(int status, const std::string& pattern) {
  if (status == 401 || status == 403 || status == 413 || status == 429) return true;
  return status == 503 && pattern != "/health" && pattern != "/ready";
}

// "code: message" from our JSON error body; empty if the body is not one.
std::string ErrorSummary(const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return "";
  const nlohmann::json& e = j["error"];
  std::string out = e.value("code", "");
  if (e.contains("message") && e["message"].is_string()) {
    out += ": " + e["message"].get<std::string>();
  }
  return out;
}

}  // namespace

// "resource.verb": the resource is the last literal segment (singular, without '-'); the verb
// comes from the method (create, replace, update, delete; read for an item, list for a
// collection) unless the path ends in a non-plural literal, which is the verb itself.
std::string DeriveAction(const std::string& method, const std::string& pattern) {
  std::vector<std::string> segs;
  size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] == '/') {
      ++i;
      continue;
    }
    size_t j = pattern.find('/', i);
    if (j == std::string::npos) j = pattern.size();
    std::string s = pattern.substr(i, j - i);
    if (!IsPrefixSegment(s)) segs.push_back(std::move(s));
    i = j;
  }
  if (segs.empty()) return "root." + VerbFor(method, false);
  const std::string& last = segs.back();
  if (IsParam(last)) {
    for (size_t k = segs.size(); k-- > 0;) {
      if (!IsParam(segs[k])) return Singular(segs[k]) + "." + VerbFor(method, true);
    }
    return "item." + VerbFor(method, true);
  }
  // A plural literal is a collection ("/projects/{project}/documents"); any other is a verb
  // on the resource named before it ("/projects/{project}/query", "/backups/verify").
  const bool collection = last.size() > 1 && last.back() == 's' && !last.ends_with("ss");
  if (!collection) {
    for (size_t k = segs.size() - 1; k-- > 0;) {
      if (!IsParam(segs[k])) return Singular(segs[k]) + "." + last;
    }
  }
  return Singular(last) + "." + VerbFor(method, false);
}

std::string RouteAction(const Route& route) {
  return route.action.empty() ? DeriveAction(route.method, route.pattern) : route.action;
}

void AuditRequest(ApiContext* api, const AuditedRequest& r) {
  if (api == nullptr || api->audit == nullptr) return;
  try {
    const int status = r.response.status;
    const std::string method = r.http.method == "HEAD" ? "GET" : r.http.method;
    const std::string pattern = r.route ? r.route->pattern : "";
    const bool refused = IsRefusal(status, pattern);
    const bool writes = r.route && IsMutatingMethod(method) && r.route->scope.has_value() &&
                        *r.route->scope != KeyScope::kRead;
    // audit_reads as switched at run time, else as configured.
    const bool reads_on = api->access
                              ? api->access->audit_reads().enabled.value_or(api->audit_reads)
                              : api->audit_reads;
    const bool read = r.route && r.route->scope.has_value() && reads_on;
    if (!refused && !writes && !read) return;

    AuditEvent e;
    e.request_id = r.request_id;
    e.remote = r.http.remote_addr;
    e.method = method;
    e.status = status;
    e.route = r.route ? r.route->pattern : "(unmatched)";
    e.action = r.route ? RouteAction(*r.route) : "request.refused";
    e.outcome = refused ? "refused" : (status < 400 ? "ok" : "failed");
    if (r.ctx) {
      // A refused key that exists is named by its id; an unknown secret never is (nor stored).
      if (r.ctx->key) {
        e.actor_id = r.ctx->key->id;
        e.actor_name = r.ctx->key->name;
      } else if (r.ctx->actor.id != "system") {
        e.actor_id = r.ctx->actor.id;
      } else if (status == 413) {
        // Refused before authentication (the body was too large to read): name the key anyway.
        const std::string secret = PresentedSecret(r.http.get_header_value("Authorization"),
                                                   r.http.get_header_value("X-API-Key"));
        if (!secret.empty()) {
          auto key = api->kb->keys().Authenticate(secret);
          if (key.ok()) {
            e.actor_id = key->id;
            e.actor_name = key->name;
          }
        }
      }
      e.document_ids = r.ctx->audit_document_ids;
      e.project = r.ctx->audit_project;
      std::string targets;
      for (const auto& [name, value] : r.ctx->path_params) {
        if (r.route && name == r.route->project_param) {
          if (e.project.empty()) {
            // The id when the name resolves (so that queries by id find it), else as given.
            auto project = api->kb->GetProject(value);
            e.project = project.ok() ? project->id : value;
          }
        } else if (pattern.find("/documents/{" + name + "}") != std::string::npos) {
          e.document_ids.push_back(value);
        } else {
          targets += (targets.empty() ? "" : " ") + name + "=" + value;
        }
      }
      e.detail = targets;
    }
    if (status >= 400) {
      const std::string error = ErrorSummary(r.response.body);
      if (!error.empty()) e.detail += (e.detail.empty() ? "" : "; ") + error;
    } else if (status == 207) {
      e.detail += (e.detail.empty() ? "" : "; ") + std::string("some items failed");
    }
    (api->audit_sink ? api->audit_sink : api->audit)->Record(std::move(e));
  } catch (const std::exception& ex) {
    LogError("audit hook failed", ex.what());
  } catch (...) {
    LogError("audit hook failed", "unknown exception");
  }
}

nlohmann::json AuditHealthJson(const audit::AuditLog& log) {
  const audit::AuditCounters& c = log.counters();
  const int64_t failures = c.write_failures.load(), dropped = c.dropped.load();
  return {{"ok", failures == 0 && dropped == 0},
          {"events", c.events.load()},
          {"write_failures", failures},
          {"dropped", dropped}};
}

}  // namespace kb::api
