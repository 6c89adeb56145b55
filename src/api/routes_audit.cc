// The audit log's route (admin, keys for all projects only): GET /api/v1/admin/audit lists
// entries newest first with filters and a cursor — "everything one key or one address did".
// docs/API.md "Audit log"; the entry fields are docs/format/AUDIT_LOG.md.
#include <set>

#include "api/router.h"
#include "audit/audit_log.h"
#include "common/clock.h"

namespace kb::api {

using nlohmann::json;

namespace {

constexpr size_t kMaxFilterBytes = 512;

Result<int64_t> TimeParam(const std::string& name, const std::string& value) {
  std::optional<int64_t> ms = ParseIso8601(value);
  if (!ms) {
    return Status::InvalidArgument("parameter '" + name +
                                   "' must be an ISO-8601 time, e.g. 2026-11-26T10:00:00Z");
  }
  return *ms;
}

Result<int> IntParam(const std::string& name, const std::string& value, int lo, int hi) {
  int64_t v = 0;
  bool ok = !value.empty() && value.size() <= 9;
  for (char c : value) {
    if (c < '0' || c > '9') ok = false;
    if (ok) v = v * 10 + (c - '0');
  }
  if (!ok || v < lo || v > hi) {
    return Status::InvalidArgument("parameter '" + name + "' must be an integer from " +
                                   std::to_string(lo) + " to " + std::to_string(hi));
  }
  return static_cast<int>(v);
}

Result<audit::AuditQuery> DecodeAuditQuery(ApiContext* api, const httplib::Params& params) {
  static const std::set<std::string> kKnown = {"since",  "until",  "action", "project", "key",
                                               "remote", "status", "limit",  "cursor"};
  audit::AuditQuery q;
  std::set<std::string> seen;
  for (const auto& [name, value] : params) {
    if (!kKnown.count(name)) {
      return Status::InvalidArgument("unknown parameter '" + name +
                                     "' (filters: since, until, action, project, key, remote, "
                                     "status, limit, cursor)");
    }
    if (!seen.insert(name).second) {
      return Status::InvalidArgument("parameter '" + name + "' given more than once");
    }
    if (value.size() > kMaxFilterBytes) {
      return Status::InvalidArgument("parameter '" + name + "' is longer than " +
                                     std::to_string(kMaxFilterBytes) + " bytes");
    }
    if (name == "since") {
      KB_ASSIGN_OR_RETURN(q.since_ms, TimeParam(name, value));
    } else if (name == "until") {
      KB_ASSIGN_OR_RETURN(q.until_ms, TimeParam(name, value));
    } else if (name == "action") {
      q.action = value;
    } else if (name == "project") {
      // Entries name the project by id (or by the name given, when it did not resolve).
      q.projects.push_back(value);
      auto project = api->kb->GetProject(value);
      if (project.ok() && project->id != value) q.projects.push_back(project->id);
    } else if (name == "key") {
      q.key = value;
    } else if (name == "remote") {
      q.remote = value;
    } else if (name == "status") {
      KB_ASSIGN_OR_RETURN(q.status, IntParam(name, value, 100, 599));
    } else if (name == "limit") {
      KB_ASSIGN_OR_RETURN(q.limit, IntParam(name, value, 1, audit::kMaxAuditQueryLimit));
    } else if (name == "cursor") {
      q.cursor = value;
    }
  }
  if (q.since_ms && q.until_ms && *q.since_ms > *q.until_ms) {
    return Status::InvalidArgument("'since' is after 'until'");
  }
  return q;
}

}  // namespace

std::vector<Route> MakeAuditRoutes(ApiContext* api) {
  std::vector<Route> routes;
  routes.push_back(Route{
      "GET", "/api/v1/admin/audit", KeyScope::kAdmin, "", /*unrestricted_only=*/true,
      [api](RequestContext& ctx) -> Result<Reply> {
        if (!api->audit) return Status::Unavailable("the audit log is not enabled on this server");
        KB_ASSIGN_OR_RETURN(audit::AuditQuery q, DecodeAuditQuery(api, ctx.http.params));
        // Every request answered before this one was recorded before its response was sent:
        // waiting for the current batch makes them all visible here.
        api->audit->Flush();
        KB_ASSIGN_OR_RETURN(audit::AuditPage page, api->audit->Query(q));
        json entries = json::array();
        for (const audit::AuditEntry& e : page.entries) entries.push_back(audit::EntryToJson(e));
        const size_t n = entries.size();
        return Reply::Json(
            200,
            {{"entries", std::move(entries)},
             {"count", n},
             {"next_cursor", page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor)}});
      },
      "audit.list"});
  return routes;
}

}  // namespace kb::api
