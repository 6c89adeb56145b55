// The Python-compatibility API (/api/v2): the routes and JSON shapes of the Python
// KnowledgeBeast server, so that its clients keep working against this one. Differences from
// v1 that clients rely on: projects are {project_id, name, description, embedding_model,
// collection_name, created_at, updated_at, metadata}; a duplicate project name is 400 (with
// "already exists" in the message), not 409; errors also carry FastAPI's "detail" field (added
// by the middleware). Everything else (auth, limits, error mapping) is shared with v1.
#include <algorithm>

#include "api/json_encoding.h"
#include "api/request_decoding.h"
#include "api/router.h"

namespace kb::api {

using nlohmann::json;

namespace {

constexpr const char* kProjectId = "project_id";

// The Python server answered a duplicate name with 400; its clients test for that.
Status DuplicateAsBadRequest(const Status& s) {
  if (s.code() != Code::kAlreadyExists) return s;
  std::string msg = s.message();
  if (msg.find("already exists") == std::string::npos) msg += " (already exists)";
  return Status::InvalidArgument(msg);
}

bool KeyBelongsTo(const ApiKeyRecord& k, const std::string& project_id) {
  return std::find(k.projects.begin(), k.projects.end(), project_id) != k.projects.end();
}

}  // namespace

std::vector<Route> MakeV2Routes(ApiContext* api) {
  std::vector<Route> routes;
  auto add = [&](std::string method, std::string pattern, KeyScope scope, std::string project_param,
                 bool unrestricted_only, RouteHandler h) {
    routes.push_back(Route{std::move(method), std::move(pattern), scope, std::move(project_param),
                           unrestricted_only, std::move(h)});
  };
  const auto kRead = KeyScope::kRead;
  const auto kWrite = KeyScope::kWrite;
  const auto kAdmin = KeyScope::kAdmin;

  add("POST", "/api/v2/projects", kWrite, "", true, [api](RequestContext& ctx) -> Result<Reply> {
    KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
    KB_ASSIGN_OR_RETURN(CreateProjectRequest req, DecodeV2CreateProject(body));
    auto p = api->kb->CreateProject(req, ctx.actor);
    if (!p.ok()) return DuplicateAsBadRequest(p.status());
    ctx.audit_project = p->id;
    return Reply::Json(201, EncodeV2Project(*p));
  });
  add("GET", "/api/v2/projects", kRead, "", false, [api](RequestContext& ctx) -> Result<Reply> {
    KB_ASSIGN_OR_RETURN(auto projects, api->kb->ListProjects());
    json list = json::array();
    for (const auto& p : projects) {
      if (ctx.KeyAllowsProject(p.id)) list.push_back(EncodeV2Project(p));
    }
    const size_t n = list.size();
    return Reply::Json(200, {{"projects", std::move(list)}, {"count", n}});
  });
  add("GET", "/api/v2/projects/{project_id}", kRead, kProjectId, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(ProjectRecord p, api->kb->GetProject(ctx.Param(kProjectId)));
        return Reply::Json(200, EncodeV2Project(p));
      });
  add("PUT", "/api/v2/projects/{project_id}", kWrite, kProjectId, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
        KB_ASSIGN_OR_RETURN(UpdateProjectRequest req, DecodeV2UpdateProject(body));
        if (!req.name && !req.description && !req.metadata_json) {
          KB_ASSIGN_OR_RETURN(ProjectRecord p, api->kb->GetProject(ctx.Param(kProjectId)));
          return Reply::Json(200, EncodeV2Project(p));
        }
        auto p = api->kb->UpdateProject(ctx.Param(kProjectId), req, ctx.actor);
        if (!p.ok()) return DuplicateAsBadRequest(p.status());
        return Reply::Json(200, EncodeV2Project(*p));
      });
  add("DELETE", "/api/v2/projects/{project_id}", kAdmin, kProjectId, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(ProjectRecord p, api->kb->GetProject(ctx.Param(kProjectId)));
        KB_RETURN_IF_ERROR(api->kb->DeleteProject(p.id, ctx.actor));
        return Reply::Json(
            200,
            {{"success", true}, {"project_id", p.id}, {"message", "Project " + p.id + " deleted"}});
      });
  add("POST", "/api/v2/projects/{project_id}/query", kRead, kProjectId, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
        KB_ASSIGN_OR_RETURN(QueryRequest q, DecodeV2Query(body));
        KB_ASSIGN_OR_RETURN(QueryResponse resp, api->kb->Query(ctx.Param(kProjectId), q));
        json results = json::array();
        for (const auto& h : resp.hits) results.push_back(EncodeV2Hit(h));
        const size_t n = results.size();
        return Reply::Json(200, {{"results", std::move(results)},
                                 {"count", n},
                                 {"cached", resp.cached},
                                 {"query", q.text}});
      });
  add("POST", "/api/v2/projects/{project_id}/ingest", kWrite, kProjectId, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
        KB_ASSIGN_OR_RETURN(V2IngestRequest req, DecodeV2Ingest(body));
        Result<IngestResult> r = Status::Internal("unset");
        if (!req.file_path.empty()) {
          // IngestFile confines the path to the configured ingest root.
          r = api->kb->IngestFile(ctx.Param(kProjectId), req.file_path, req.metadata_json,
                                  ctx.actor);
        } else {
          IngestRequest in;
          in.content = req.content;
          in.declared_mime = "text/plain";
          in.metadata_json = req.metadata_json;
          r = api->kb->Ingest(ctx.Param(kProjectId), in, ctx.actor);
        }
        if (!r.ok()) return r.status();
        ctx.audit_document_ids.push_back(r->document.id);
        return Reply::Json(200, {{"success", true},
                                 {"doc_id", r->document.id},
                                 {"message", "Document " + std::string(OutcomeName(r->outcome))}});
      });
  routes.back().action = "document.create";  // as v1's upload, so one filter finds both
  add("POST", "/api/v2/projects/{project_id}/api-keys", kAdmin, kProjectId, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
        KB_ASSIGN_OR_RETURN(CreateKeyRequest req, DecodeV2CreateKey(body));
        KB_ASSIGN_OR_RETURN(ProjectRecord p, api->kb->GetProject(ctx.Param(kProjectId)));
        KB_ASSIGN_OR_RETURN(
            CreatedKey k,
            api->kb->keys().CreateKey(req.name, req.scope, {p.id}, req.expires_in_days, ctx.actor));
        json out = EncodeV2Key(k.record, p.id);
        out["api_key"] = k.secret;  // shown once
        return Reply::Json(201, out);
      });
  add("GET", "/api/v2/projects/{project_id}/api-keys", kAdmin, kProjectId, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(ProjectRecord p, api->kb->GetProject(ctx.Param(kProjectId)));
        KB_ASSIGN_OR_RETURN(auto keys, api->kb->keys().ListKeys());
        json list = json::array();
        for (const auto& k : keys) {
          if (KeyBelongsTo(k, p.id)) list.push_back(EncodeV2Key(k, p.id));
        }
        const size_t n = list.size();
        return Reply::Json(200, {{"api_keys", std::move(list)}, {"count", n}});
      });
  add("DELETE", "/api/v2/projects/{project_id}/api-keys/{key_id}", kAdmin, kProjectId, false,
      [api](RequestContext& ctx) -> Result<Reply> {
        KB_ASSIGN_OR_RETURN(ProjectRecord p, api->kb->GetProject(ctx.Param(kProjectId)));
        KB_ASSIGN_OR_RETURN(auto keys, api->kb->keys().ListKeys());
        const std::string& key_id = ctx.Param("key_id");
        auto it = std::find_if(keys.begin(), keys.end(),
                               [&](const ApiKeyRecord& k) { return k.id == key_id; });
        // A key of another project is "not found" here, not revocable through this project.
        if (it == keys.end() || !KeyBelongsTo(*it, p.id)) {
          return Status::NotFound("no API key '" + key_id + "' in project " + p.id);
        }
        KB_RETURN_IF_ERROR(api->kb->keys().RevokeKey(key_id, ctx.actor));
        return Reply::Json(200, {{"success", true}, {"message", "API key " + key_id + " revoked"}});
      });
  routes.back().action = "apikey.revoke";
  return routes;
}

}  // namespace kb::api
