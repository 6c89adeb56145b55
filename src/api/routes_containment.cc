// The containment admin routes: the service mode (lockdown / read-only) and the address rules.
// docs/API.md is the contract. Both are admin-only and stay usable in every mode, so that the
// administrator who set a mode can always lift it (ClassifyRoute: kAdminControl).
#include "api/access_control.h"
#include "api/json_encoding.h"
#include "api/request_decoding.h"
#include "api/router.h"

namespace kb::api {

using nlohmann::json;

namespace {

json RulesReply(const AddressRules& rules, const RequestContext& ctx) {
  json body = rules.ToJson();
  body["your_address"] = ctx.http.remote_addr;
  return body;
}

}  // namespace

std::vector<Route> MakeContainmentRoutes(ApiContext* api) {
  std::vector<Route> routes;
  auto add = [&](const char* method, const char* pattern, RouteHandler handler) {
    routes.push_back(Route{method, pattern, KeyScope::kAdmin, "", /*unrestricted_only=*/true,
                           std::move(handler)});
  };

  add("GET", "/api/v1/admin/lockdown", [api](RequestContext&) -> Result<Reply> {
    return Reply::Json(200, api->access->mode().ToJson());
  });

  // {"mode": "lockdown" | "read_only" | "off", "reason": "..."}; reason required unless "off".
  add("POST", "/api/v1/admin/lockdown", [api](RequestContext& ctx) -> Result<Reply> {
    KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
    KB_RETURN_IF_ERROR(RequireKnownFields(body, {"mode", "reason"}));
    if (!body.contains("mode") || !body["mode"].is_string()) {
      return Status::InvalidArgument(
          "field 'mode' is required: one of \"lockdown\", \"read_only\", \"off\"");
    }
    std::optional<ServiceMode> mode = ParseServiceMode(body["mode"].get_ref<const std::string&>());
    if (!mode) {
      return Status::InvalidArgument(
          "field 'mode' must be one of \"lockdown\", \"read_only\", \"off\"");
    }
    std::string reason;
    if (body.contains("reason")) {
      if (!body["reason"].is_string()) {
        return Status::InvalidArgument("field 'reason' must be a string");
      }
      reason = body["reason"].get<std::string>();
    }
    KB_ASSIGN_OR_RETURN(ModeState m, api->access->SetMode(*mode, reason, ctx.actor.id));
    return Reply::Json(200, m.ToJson());
  });
  routes.back().action = "lockdown.set";

  // audit_reads at run time: {"enabled": bool}. Recorded in the audit log like every change.
  add("GET", "/api/v1/admin/audit/reads", [api](RequestContext&) -> Result<Reply> {
    return Reply::Json(200, api->access->audit_reads().ToJson(api->audit_reads));
  });
  add("PUT", "/api/v1/admin/audit/reads", [api](RequestContext& ctx) -> Result<Reply> {
    KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
    KB_RETURN_IF_ERROR(RequireKnownFields(body, {"enabled"}));
    if (!body.contains("enabled") || !body["enabled"].is_boolean()) {
      return Status::InvalidArgument("field 'enabled' is required: true or false");
    }
    KB_ASSIGN_OR_RETURN(AuditReadsState a,
                        api->access->SetAuditReads(body["enabled"].get<bool>(), ctx.actor.id));
    return Reply::Json(200, a.ToJson(api->audit_reads));
  });
  routes.back().action = "audit_reads.set";

  add("GET", "/api/v1/admin/ip-rules", [api](RequestContext& ctx) -> Result<Reply> {
    return Reply::Json(200, RulesReply(api->access->rules(), ctx));
  });

  // Replaces both lists: {"allow": [...], "deny": [...], "force"?: bool}. A missing list is
  // empty. Rules that would refuse the caller's own address are 409 unless "force" is true.
  add("PUT", "/api/v1/admin/ip-rules", [api](RequestContext& ctx) -> Result<Reply> {
    KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx));
    KB_RETURN_IF_ERROR(RequireKnownFields(body, {"allow", "deny", "force"}));
    bool force = false;
    if (body.contains("force")) {
      if (!body["force"].is_boolean())
        return Status::InvalidArgument("field 'force' must be a boolean");
      force = body["force"].get<bool>();
    }
    KB_ASSIGN_OR_RETURN(AddressRules rules, DecodeAddressRules(body));
    if (!force) {
      Status own = rules.Check(ctx.http.remote_addr);
      if (!own.ok()) {
        return Status::FailedPrecondition("these rules would lock you out: " + own.message() +
                                          ". Send \"force\": true to apply them anyway");
      }
    }
    KB_RETURN_IF_ERROR(api->access->SetRules(rules, ctx.actor.id));
    return Reply::Json(200, RulesReply(api->access->rules(), ctx));
  });
  return routes;
}

}  // namespace kb::api
