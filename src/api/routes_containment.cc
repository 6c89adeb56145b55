// The containment admin routes: the service mode (lockdown / read-only), the address rules, the
// audit_reads switch, and the posture report `doctor --url` reads. docs/API.md is the contract.
// All are admin-only and stay usable in every mode, so that the administrator who set a mode can
// always lift it (ClassifyRoute: kAdminControl).
#include <filesystem>

#include "api/access_control.h"
#include "api/json_encoding.h"
#include "api/posture.h"
#include "api/request_decoding.h"
#include "api/router.h"
#include "backup/service.h"
#include "common/clock.h"

namespace kb::api {

using nlohmann::json;

namespace {

std::optional<std::string> PostureParam(const RequestContext& ctx, const char* name) {
  if (!ctx.http.has_param(name)) return std::nullopt;
  return ctx.http.get_param_value(name);
}

// The running server's own facts: its listen address and TLS as started, the keys and rules
// as they are now, and the repository read now (not the counters of the last refresh, which
// may not have happened yet right after a start).
Result<PostureFacts> ServerPostureFacts(ApiContext* api) {
  PostureFacts f;
  f.now_ms = api->kb->clock()->NowMillis();
  std::error_code ec;
  auto data = std::filesystem::absolute(api->kb->options().data_dir, ec);
  f.data_dir = ec ? api->kb->options().data_dir : data.lexically_normal().string();
  f.host = api->host;
  f.tls = api->tls;
  f.metrics_require_auth = api->metrics_require_auth;
  f.backups_configured = api->backups != nullptr;
  if (api->backups) {
    f.repository_url = api->backups->repository_url();
    f.repository_local_default = api->backups->local_default();
    f.backup_interval_ms = api->backups->options().interval_ms;
    f.verify_interval_ms = api->backups->options().verify_interval_ms;
    Result<backup::RepositoryFacts> facts = api->backups->ReadFacts();
    if (facts.ok()) {
      f.newest_full_backup_ms = facts->newest_full_ms;
      f.newest_verification_ms = facts->newest_verified_ms;
      f.snapshots = facts->snapshots;
    } else {
      f.repository_error = facts.status().ToString();
    }
  }
  KB_ASSIGN_OR_RETURN(f.keys, api->kb->keys().ListKeys());
  const AddressRules rules = api->access->rules();
  f.allow_rules = rules.allow.size();
  f.deny_rules = rules.deny.size();
  f.audit_reads = api->access->audit_reads().enabled.value_or(api->audit_reads);
  return f;
}

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
  // The posture report (`knowledgebeast doctor --url`): ?backup_objective=2h&max_admin_keys=3.
  add("GET", "/api/v1/admin/posture", [api](RequestContext& ctx) -> Result<Reply> {
    KB_ASSIGN_OR_RETURN(PostureLimits limits,
                        DecodePostureLimits(PostureParam(ctx, "backup_objective"),
                                            PostureParam(ctx, "max_admin_keys")));
    KB_ASSIGN_OR_RETURN(PostureFacts facts, ServerPostureFacts(api));
    json body = PostureReportJson(EvaluatePosture(facts, limits));
    body["generated_at"] = FormatIso8601(facts.now_ms);
    return Reply::Json(200, body);
  });
  return routes;
}

}  // namespace kb::api
