// Soft-delete administration and the API key lifecycle (admin, unrestricted keys only):
// restore what was deleted, list what is deleted, rotate / revoke-all / reinstate keys.
// docs/API.md "Deleted items" and "Key lifecycle". Creating, listing and revoking single keys
// are in routes_v1.cc. Each handler decodes, makes one KnowledgeBase call and encodes.
#include "api/http_status.h"
#include "api/json_encoding.h"
#include "api/request_decoding.h"
#include "api/router.h"

namespace kb::api {

using nlohmann::json;

std::vector<Route> MakeLifecycleRoutes(ApiContext* api) {
  std::vector<Route> routes;
  const auto kAdmin = KeyScope::kAdmin;
  auto add = [&](std::string method, std::string pattern, RouteHandler h) {
    routes.push_back(Route{std::move(method), std::move(pattern), kAdmin, "",
                           /*unrestricted_only=*/true, std::move(h)});
  };

  // --- deleted items ---
  add("POST", "/api/v1/admin/restore", [api](RequestContext& ctx) -> Result<Reply> {
    KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
    KB_ASSIGN_OR_RETURN(RestoreDeletedRequest req, DecodeRestoreDeleted(body));
    ctx.audit_project = req.project;
    KB_ASSIGN_OR_RETURN(RestoreDeletedReport report, api->kb->RestoreDeleted(req, ctx.actor));
    ctx.audit_project = report.project_id;
    ctx.audit_document_ids = report.restored_documents;
    return Reply::Json(200, EncodeRestoreDeletedReport(report));
  });
  routes.back().action = "undelete";
  add("GET", "/api/v1/admin/deleted", [api](RequestContext& ctx) -> Result<Reply> {
    QueryParams params(ctx.http.params.begin(), ctx.http.params.end());
    KB_ASSIGN_OR_RETURN(PageParams page, DecodePageParams(params));
    std::string project;
    if (auto it = params.find("project"); it != params.end()) project = it->second;
    KB_ASSIGN_OR_RETURN(DeletedListing listing,
                        api->kb->ListDeleted(project, page.limit, page.offset));
    json projects = json::array(), documents = json::array();
    for (const auto& p : listing.projects) projects.push_back(EncodeDeletedProject(p));
    for (const auto& d : listing.documents) documents.push_back(EncodeDeletedDocument(d));
    json out = {{"projects", std::move(projects)},
                {"documents", std::move(documents)},
                {"total", listing.total},
                {"limit", page.limit},
                {"offset", page.offset}};
    if (listing.project) out["project"] = EncodeDeletedProject(*listing.project);
    return Reply::Json(200, out);
  });

  // --- key lifecycle ---
  add("POST", "/api/v1/admin/api-keys/revoke-all", [api](RequestContext& ctx) -> Result<Reply> {
    KB_RETURN_IF_ERROR(RequireJsonBodyType(ctx));
    KB_ASSIGN_OR_RETURN(bool include_admin, DecodeRevokeAll(ctx.http.body));
    KB_ASSIGN_OR_RETURN(RevokeAllResult r, api->kb->keys().RevokeAllKeys(ctx.key ? ctx.key->id : "",
                                                                         include_admin, ctx.actor));
    json out = {{"revoked", r.revoked}, {"count", r.revoked.size()}};
    if (r.new_admin) {
      out["new_admin_key"] = {{"key", EncodeKey(r.new_admin->record)},
                              {"secret", r.new_admin->secret}};
    }
    return Reply::Json(200, out);
  });
  add("POST", "/api/v1/admin/api-keys/{id}/rotate", [api](RequestContext& ctx) -> Result<Reply> {
    KB_RETURN_IF_ERROR(RequireJsonBodyType(ctx));
    KB_ASSIGN_OR_RETURN(int64_t overlap, DecodeRotateKey(ctx.http.body));
    KB_ASSIGN_OR_RETURN(CreatedKey k,
                        api->kb->keys().RotateKey(ctx.Param("id"), overlap, ctx.actor));
    return Reply::Json(200, {{"key", EncodeKey(k.record)}, {"secret", k.secret}});
  });
  add("POST", "/api/v1/admin/api-keys/{id}/reinstate", [api](RequestContext& ctx) -> Result<Reply> {
    KB_RETURN_IF_ERROR(api->kb->keys().ReinstateKey(ctx.Param("id"), ctx.actor));
    KB_ASSIGN_OR_RETURN(auto keys, api->kb->keys().ListKeys());
    for (const auto& k : keys) {
      if (k.id == ctx.Param("id")) return Reply::Json(200, {{"key", EncodeKey(k)}});
    }
    return Status::NotFound("api key " + ctx.Param("id") + " does not exist");
  });
  return routes;
}

}  // namespace kb::api
