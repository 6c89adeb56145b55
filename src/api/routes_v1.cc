// The v1 REST API and the operational endpoints (/health, /ready, /metrics). docs/API.md is
// the contract; each handler decodes (request_decoding.h), makes one KnowledgeBase call and
// encodes (json_encoding.h). Errors are returned as Status and mapped in http_status.cc.
#include <algorithm>

#include "api/access_control.h"
#include "api/audit_hook.h"
#include "api/http_status.h"
#include "api/json_encoding.h"
#include "api/request_decoding.h"
#include "api/router.h"
#include "backup/service.h"
#include "backup/shipper.h"
#include "common/clock.h"

#ifndef KB_VERSION
#define KB_VERSION "dev"
#endif

namespace kb::api {

using nlohmann::json;

namespace {

constexpr const char* kProject = "project";

// JSON bodies only: anything declared as another type is refused before parsing.
QueryParams Params(const RequestContext& ctx) {
  return QueryParams(ctx.http.params.begin(), ctx.http.params.end());
}

Reply IngestReply(const IngestResult& r) {
  return Reply::Json(
      r.outcome == PutOutcome::kCreated ? 201 : 200,
      {{"document", EncodeDocument(r.document)}, {"outcome", std::string(OutcomeName(r.outcome))}});
}

// Runs a list of decoded documents; one result per item, HTTP 200 if all succeeded else 207.
Reply IngestMany(ApiContext* api, RequestContext& ctx, const std::string& project,
                 std::vector<DecodedIngestItem>& items) {
  json results = json::array();
  int ok = 0, failed = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    json item = {{"index", i}};
    Status s = items[i].status;
    if (s.ok()) {
      auto r = api->kb->Ingest(project, items[i].request, ctx.actor);
      if (r.ok()) {
        ctx.audit_document_ids.push_back(r->document.id);
        item["status"] = r->outcome == PutOutcome::kCreated ? 201 : 200;
        item["outcome"] = std::string(OutcomeName(r->outcome));
        item["document"] = EncodeDocument(r->document);
        ++ok;
        results.push_back(std::move(item));
        continue;
      }
      s = r.status();
    }
    item["status"] = HttpStatusFor(s.code());
    item["error"] = ErrorObject(s, ctx.request_id);
    ++failed;
    results.push_back(std::move(item));
  }
  return Reply::Json(failed == 0 ? 200 : 207,
                     {{"results", std::move(results)}, {"succeeded", ok}, {"failed", failed}});
}

Result<Reply> IngestMultipart(ApiContext* api, RequestContext& ctx, const std::string& project) {
  const auto& files = ctx.http.files;
  std::string metadata_json = "{}";
  std::string title, source;
  for (const auto& [name, part] : files) {
    if (name == "metadata") {
      KB_ASSIGN_OR_RETURN(json meta, ParseJsonObject(part.content));
      metadata_json = DumpJson(meta);
    } else if (name == "title") {
      title = part.content;
    } else if (name == "source") {
      source = part.content;
    }
  }
  std::vector<DecodedIngestItem> items;
  for (const auto& [name, part] : files) {
    if (name != "file") continue;
    IngestRequest req;
    req.content = part.content;
    req.declared_mime = part.content_type;
    req.filename = part.filename;
    req.metadata_json = metadata_json;
    items.push_back({Status::OK(), std::move(req)});
  }
  if (items.empty()) {
    return Status::InvalidArgument("multipart upload needs at least one 'file' part");
  }
  if (items.size() == 1) {
    IngestRequest& one = items[0].request;
    one.title = title;
    one.source = source;
    KB_ASSIGN_OR_RETURN(IngestResult r, api->kb->Ingest(project, one, ctx.actor));
    ctx.audit_document_ids.push_back(r.document.id);
    return IngestReply(r);
  }
  if (!title.empty() || !source.empty()) {
    return Status::InvalidArgument("'title' and 'source' parts apply to a single file only");
  }
  return IngestMany(api, ctx, project, items);
}

Result<Reply> Ingest(ApiContext* api, RequestContext& ctx) {
  const std::string& project = ctx.Param(kProject);
  if (ctx.http.is_multipart_form_data()) return IngestMultipart(api, ctx, project);
  KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
  KB_ASSIGN_OR_RETURN(DecodedIngestBody decoded, DecodeIngestBody(body));
  if (decoded.batch) {
    // The project must exist for a batch to mean anything: fail whole rather than per item.
    KB_RETURN_IF_ERROR(api->kb->GetProject(project).status());
    return IngestMany(api, ctx, project, decoded.items);
  }
  KB_ASSIGN_OR_RETURN(IngestResult r,
                      api->kb->Ingest(project, decoded.items[0].request, ctx.actor));
  ctx.audit_document_ids.push_back(r.document.id);
  return IngestReply(r);
}

Result<Reply> RunQuery(ApiContext* api, const std::string& project, const QueryRequest& q) {
  KB_ASSIGN_OR_RETURN(QueryResponse resp, api->kb->Query(project, q));
  return Reply::Json(200, EncodeQueryResponse(q, resp));
}

// Appends one route to `routes`. The router tries routes in the order they were added, so the
// makers below add theirs in the order of docs/API.md, and MakeV1Routes calls them in that order.
void Add(std::vector<Route>& routes, std::string method, std::string pattern,
         std::optional<KeyScope> scope, std::string project_param, bool unrestricted_only,
         RouteHandler h) {
  routes.push_back(Route{std::move(method), std::move(pattern), scope, std::move(project_param),
                         unrestricted_only, std::move(h)});
}

constexpr auto kRead = KeyScope::kRead;
constexpr auto kWrite = KeyScope::kWrite;
constexpr auto kAdmin = KeyScope::kAdmin;

Result<Reply> Health(ApiContext* api) {
  HealthReport h = api->kb->Health();
  const int64_t uptime = (MonotonicMicros() - api->started_mono_us) / 1'000'000;
  Reply reply = Reply::Json(h.status == "unhealthy" ? 503 : 200,
                            {{"status", h.status},
                             {"version", KB_VERSION},
                             {"uptime_seconds", uptime},
                             {"checks",
                              {{"ready", h.ready},
                               {"problems", h.problems},
                               {"integrity", EncodeIntegritySummary(h.integrity)}}}});
  json read_only = json::array();
  for (const auto& p : h.read_only_projects) {
    read_only.push_back({{"id", p.id}, {"name", p.name}, {"problem", p.problem}});
  }
  reply.body["checks"]["read_only_projects"] = std::move(read_only);
  // The mode only: its reason may describe an incident, and these routes are public.
  if (api->access) reply.body["mode"] = std::string(ServiceModeName(api->access->mode().mode));
  if (api->audit) reply.body["checks"]["audit"] = AuditHealthJson(*api->audit);
  return reply;
}

// --- operational: /livez, /health, /ready, /metrics ---
void AddOperationalRoutes(ApiContext* api, std::vector<Route>& routes) {
  // Liveness: the process answers. Nothing a restart cannot fix makes it fail (a damaged
  // database, a lockdown, a failed backup are /health's business), so it reads no state.
  Add(routes, "GET", "/livez", std::nullopt, "", false, [api](RequestContext&) -> Result<Reply> {
    const int64_t uptime = (MonotonicMicros() - api->started_mono_us) / 1'000'000;
    return Reply::Json(200, {{"alive", true}, {"uptime_seconds", uptime}});
  });
  Add(routes, "GET", "/health", std::nullopt, "", false,
      [api](RequestContext&) { return Health(api); });
  Add(routes, "GET", "/ready", std::nullopt, "", false, [api](RequestContext&) -> Result<Reply> {
    const bool ready = api->kb->Ready();
    json body = {{"ready", ready}};
    // Damaged projects are read-only but the server still serves: ready stays true, and says
    // which projects are degraded (the problems are in /health).
    json degraded = json::array();
    for (const auto& p : api->kb->ReadOnlyProjects()) {
      degraded.push_back({{"id", p.id}, {"name", p.name}, {"read_only", true}});
    }
    body["degraded_projects"] = std::move(degraded);
    if (api->access) body["mode"] = std::string(ServiceModeName(api->access->mode().mode));
    return Reply::Json(ready ? 200 : 503, std::move(body));
  });
  // Authenticated only when ServerOptions::metrics_require_auth (decided in the middleware).
  Add(routes, "GET", "/metrics", kRead, "", false, [api](RequestContext&) -> Result<Reply> {
    api->refresh_metrics();
    Reply r;
    r.text = api->metrics->Render();
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  });
}

// --- projects ---
void AddProjectRoutes(ApiContext* api, std::vector<Route>& routes) {
  Add(routes, "GET", "/api/v1/projects", kRead, "", false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(auto projects, api->kb->ListProjects());
        json list = json::array();
        for (const auto& p : projects) {
          if (ctx.KeyAllowsProject(p.id)) list.push_back(EncodeProject(p));
        }
        const size_t n = list.size();
        return Reply::Json(200, {{"projects", std::move(list)}, {"count", n}});
      });
  Add(routes, "POST", "/api/v1/projects", kWrite, "", true,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
        KB_ASSIGN_OR_RETURN(CreateProjectRequest req, DecodeCreateProject(body));
        KB_ASSIGN_OR_RETURN(ProjectRecord p, api->kb->CreateProject(req, ctx.actor));
        ctx.audit_project = p.id;
        return Reply::Json(201, EncodeProject(p));
      });
  Add(routes, "GET", "/api/v1/projects/{project}", kRead, kProject, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(ProjectRecord p, api->kb->GetProject(ctx.Param(kProject)));
        return Reply::Json(200, EncodeProject(p));
      });
  Add(routes, "PATCH", "/api/v1/projects/{project}", kWrite, kProject, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
        KB_ASSIGN_OR_RETURN(UpdateProjectRequest req, DecodeUpdateProject(body));
        KB_ASSIGN_OR_RETURN(ProjectRecord p,
                            api->kb->UpdateProject(ctx.Param(kProject), req, ctx.actor));
        return Reply::Json(200, EncodeProject(p));
      });
  Add(routes, "DELETE", "/api/v1/projects/{project}", kAdmin, kProject, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_RETURN_IF_ERROR(api->kb->DeleteProject(ctx.Param(kProject), ctx.actor));
        return Reply::NoContent();
      });
}

// --- documents ---
void AddDocumentRoutes(ApiContext* api, std::vector<Route>& routes) {
  Add(routes, "POST", "/api/v1/projects/{project}/documents", kWrite, kProject, false,
      [api](RequestContext& ctx) { return Ingest(api, ctx); });
  Add(routes, "GET", "/api/v1/projects/{project}/documents", kRead, kProject, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(PageParams page, DecodePageParams(Params(ctx)));
        KB_ASSIGN_OR_RETURN(auto result,
                            api->kb->ListDocuments(ctx.Param(kProject), page.limit, page.offset));
        json docs = json::array();
        for (const auto& d : result.documents) docs.push_back(EncodeDocument(d));
        return Reply::Json(200, {{"documents", std::move(docs)},
                                 {"total", result.total},
                                 {"limit", page.limit},
                                 {"offset", page.offset}});
      });
  Add(routes, "GET", "/api/v1/projects/{project}/documents/{id}", kRead, kProject, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(DocumentRecord d,
                            api->kb->GetDocument(ctx.Param(kProject), ctx.Param("id")));
        return Reply::Json(200, EncodeDocument(d));
      });
  Add(routes, "DELETE", "/api/v1/projects/{project}/documents/{id}", kWrite, kProject, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_RETURN_IF_ERROR(
            api->kb->DeleteDocument(ctx.Param(kProject), ctx.Param("id"), ctx.actor));
        return Reply::NoContent();
      });
}

// --- search ---
void AddQueryRoutes(ApiContext* api, std::vector<Route>& routes) {
  Add(routes, "GET", "/api/v1/query/{project}", kRead, kProject, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(QueryRequest q, DecodeQueryParams(Params(ctx)));
        return RunQuery(api, ctx.Param(kProject), q);
      });
  Add(routes, "POST", "/api/v1/projects/{project}/query", kRead, kProject, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
        KB_ASSIGN_OR_RETURN(QueryRequest q, DecodeQueryBody(body));
        return RunQuery(api, ctx.Param(kProject), q);
      });
}

// GET /api/v1/documents: what changed since a time, over the projects the key may see.
Result<Reply> ChangedDocuments(ApiContext* api, RequestContext& ctx) {
  KB_ASSIGN_OR_RETURN(ChangesParams c, DecodeChangesParams(Params(ctx)));
  if (!c.project.empty() && ctx.KeyRestricted()) {
    auto p = api->kb->GetProject(c.project);
    if (!p.ok() || !ctx.KeyAllowsProject(p->id)) {
      return Status::PermissionDenied("this key is not allowed on project '" + c.project + "'");
    }
  }
  KB_ASSIGN_OR_RETURN(auto changed, api->kb->DocumentsChangedSince(c.since_ms, c.project, c.limit));
  json docs = json::array();
  for (const auto& ch : changed) {
    if (!ctx.KeyAllowsProject(ch.project_id)) continue;
    json d = EncodeDocument(ch.document);
    d["project_id"] = ch.project_id;
    d["project_name"] = ch.project_name;
    d["deleted"] = ch.document.deleted_at_ms.has_value();
    docs.push_back(std::move(d));
  }
  const size_t n = docs.size();
  return Reply::Json(
      200, {{"documents", std::move(docs)}, {"count", n}, {"since", FormatIso8601(c.since_ms)}});
}

// GET /api/v1/stats: node-wide totals, or the key's own projects' for a project-limited key.
Result<Reply> Stats(ApiContext* api, RequestContext& ctx) {
  KB_ASSIGN_OR_RETURN(KbStats s, api->kb->Stats());
  if (ctx.KeyRestricted()) {
    // A project-limited key sees totals over its own projects only.
    s = s.OnlyProjects([&](const std::string& id) { return ctx.KeyAllowsProject(id); });
  }
  json body = EncodeStats(s);
  // Where backups go (and whether that is off-site) is node-wide: unrestricted keys only.
  if (api->backups && !ctx.KeyRestricted()) body["backups"] = api->backups->StatusJson();
  // Journal shipping, node-wide as the backups are (the kb_ship_* metrics, per project).
  if (api->shipper && !ctx.KeyRestricted()) body["shipping"] = api->shipper->StatusJson();
  return Reply::Json(200, body);
}

// --- changes and stats ---
void AddChangesAndStatsRoutes(ApiContext* api, std::vector<Route>& routes) {
  Add(routes, "GET", "/api/v1/documents", kRead, "", false,
      [api](RequestContext& ctx) { return ChangedDocuments(api, ctx); });
  Add(routes, "GET", "/api/v1/stats", kRead, "", false,
      [api](RequestContext& ctx) { return Stats(api, ctx); });
}

// POST /api/v1/admin/api-keys: project names in the body become ids; unknown ones are refused.
Result<Reply> CreateKey(ApiContext* api, RequestContext& ctx) {
  KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
  KB_ASSIGN_OR_RETURN(CreateKeyRequest req, DecodeCreateKey(body));
  std::vector<std::string> ids;
  for (const std::string& p : req.projects) {
    auto project = api->kb->GetProject(p);
    if (!project.ok()) {
      return Status::InvalidArgument("field 'projects': no project '" + p + "'");
    }
    ids.push_back(project->id);
  }
  KB_ASSIGN_OR_RETURN(CreatedKey k,
                      api->kb->keys().CreateKey(req.name, req.scope, ids, req.expires_in_days,
                                                ctx.actor, req.expires_at_ms));
  return Reply::Json(201, {{"key", EncodeKey(k.record)}, {"secret", k.secret}});
}

// --- API keys (admin) ---
void AddKeyRoutes(ApiContext* api, std::vector<Route>& routes) {
  Add(routes, "POST", "/api/v1/admin/api-keys", kAdmin, "", true,
      [api](RequestContext& ctx) { return CreateKey(api, ctx); });
  Add(routes, "GET", "/api/v1/admin/api-keys", kAdmin, "", true,
      [api](RequestContext&) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(auto keys, api->kb->keys().ListKeys());
        json list = json::array();
        for (const auto& k : keys) list.push_back(EncodeKey(k));
        const size_t n = list.size();
        return Reply::Json(200, {{"keys", std::move(list)}, {"count", n}});
      });
  Add(routes, "DELETE", "/api/v1/admin/api-keys/{id}", kAdmin, "", true,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_RETURN_IF_ERROR(api->kb->keys().RevokeKey(ctx.Param("id"), ctx.actor));
        return Reply::NoContent();
      });
  routes.back().action = "apikey.revoke";
}

// --- integrity (admin) ---
void AddIntegrityRoutes(ApiContext* api, std::vector<Route>& routes) {
  // Runs the check now, on this request's thread (it reads every database: seconds to minutes
  // on large data); damage is in the report, with 200.
  Add(routes, "POST", "/api/v1/admin/check", kAdmin, "", true,
      [api](RequestContext&) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(IntegrityReport report, api->kb->RunIntegrityCheck());
        return Reply::Json(200, IntegrityReportToJson(report));
      });
  routes.back().action = "integrity.check";
}

}  // namespace

std::vector<Route> MakeV1Routes(ApiContext* api) {
  std::vector<Route> routes;
  AddOperationalRoutes(api, routes);
  AddProjectRoutes(api, routes);
  AddDocumentRoutes(api, routes);
  AddQueryRoutes(api, routes);
  AddChangesAndStatsRoutes(api, routes);
  AddKeyRoutes(api, routes);
  AddIntegrityRoutes(api, routes);
  return routes;
}

}  // namespace kb::api
