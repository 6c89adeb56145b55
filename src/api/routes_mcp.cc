// The MCP Streamable HTTP transport: POST /mcp carries one JSON-RPC message to the MCP core
// (api/mcp.h) and answers with one JSON response (no SSE stream: every answer is immediate).
// GET /mcp (the server-to-client stream) is not offered, so the router answers 405 as the
// specification allows. The server keeps no MCP session: every request stands alone, so no
// Mcp-Session-Id is issued.
//
// Authentication, rate limits, address rules and lockdown are the middleware's, as for every
// route: /mcp needs a key (401 without one) of at least read scope. What a tool may do is the
// core's decision with the caller's key (scope, projects) and the service mode for writes.
#include "api/access_control.h"
#include "api/mcp.h"
#include "api/request_decoding.h"
#include "api/router.h"

namespace kb::api {

using nlohmann::json;

namespace {

bool McpOriginAllowed(const std::vector<std::string>& allowed, const std::string& origin) {
  for (const std::string& a : allowed) {
    if (a == "*" || a == origin) return true;
  }
  return false;
}

}  // namespace

std::vector<Route> MakeMcpRoutes(ApiContext* api) {
  std::vector<Route> routes;
  routes.push_back(Route{
      "POST", "/mcp", KeyScope::kRead, "", false, [api](RequestContext& ctx) -> Result<Reply> {
        if (api->mcp == nullptr) return Status::Unavailable("MCP is not enabled on this server");
        // DNS rebinding: a browser page on another site that reaches this port through a name
        // it controls sends its own Origin. Browsers always send Origin on a POST; other clients
        // send none. Only the configured CORS origins may use /mcp from a browser.
        const std::string origin = ctx.http.get_header_value("Origin");
        if (!origin.empty() && !McpOriginAllowed(api->cors_origins, origin)) {
          return Status::PermissionDenied("origin '" + origin +
                                          "' may not use /mcp (add it to cors_origins)");
        }
        const std::string version = ctx.http.get_header_value("MCP-Protocol-Version");
        if (!version.empty() && !McpProtocolVersionSupported(version)) {
          return Status::InvalidArgument("unsupported MCP-Protocol-Version '" + version + "'");
        }
        KB_RETURN_IF_ERROR(RequireJsonBodyType(ctx));
        McpCaller caller;
        caller.key = ctx.key;
        caller.actor = ctx.actor;
        caller.request_id = ctx.request_id;
        caller.remote = ctx.http.remote_addr;
        caller.audit_method = "POST";
        caller.audit_route = "/mcp";
        if (api->access != nullptr && ctx.key) {
          AccessControl* access = api->access;
          const ApiKeyRecord key = *ctx.key;
          caller.check_write = [access, key] {
            return CheckMode(access->mode(), RouteKind::kWrite, &key);
          };
        }
        std::optional<json> response = api->mcp->HandleText(ctx.http.body, caller);
        if (!response) {
          // A notification or a response: accepted, nothing to say.
          Reply r;
          r.status = 202;
          r.text = "";
          return r;
        }
        // A message we could not read at all (no id to answer) is the client's error.
        const bool unreadable = response->contains("error") && (*response)["id"].is_null();
        return Reply::Json(unreadable ? 400 : 200, std::move(*response));
      }});
  routes.back().action = "mcp";
  return routes;
}

}  // namespace kb::api
