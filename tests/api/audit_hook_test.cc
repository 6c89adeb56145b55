// Action names derived from method + pattern (api/audit_hook.h): routes added without an
// explicit action still get a meaningful one.
#include "api/audit_hook.h"

#include <gtest/gtest.h>

namespace kb::api {
namespace {

TEST(DeriveActionTest, NamesResourceAndVerbForEveryRouteShape) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"POST", "/api/v1/projects", "project.create"},
      {"GET", "/api/v1/projects", "project.list"},
      {"GET", "/api/v1/projects/{project}", "project.read"},
      {"PATCH", "/api/v1/projects/{project}", "project.update"},
      {"PUT", "/api/v2/projects/{project_id}", "project.replace"},
      {"DELETE", "/api/v1/projects/{project}", "project.delete"},
      {"POST", "/api/v1/projects/{project}/documents", "document.create"},
      {"DELETE", "/api/v1/projects/{project}/documents/{id}", "document.delete"},
      {"POST", "/api/v1/projects/{project}/query", "project.query"},
      {"POST", "/api/v1/admin/api-keys", "apikey.create"},
      {"DELETE", "/api/v1/admin/api-keys/{id}", "apikey.delete"},
      {"POST", "/api/v1/admin/api-keys/{id}/rotate", "apikey.rotate"},
      {"POST", "/api/v1/admin/api-keys/revoke-all", "apikey.revoke-all"},
      {"POST", "/api/v1/admin/backups/verify", "backup.verify"},
      {"POST", "/api/v1/admin/projects/{project}/restore", "project.restore"},
      {"GET", "/api/v1/admin/audit", "audit.list"},
      {"POST", "/api/v1/admin/lockdown", "lockdown.create"},
      {"GET", "/health", "health.list"},
  };
  for (const auto& [method, pattern, want] : cases) {
    EXPECT_EQ(DeriveAction(method, pattern), want) << method << " " << pattern;
  }
}

TEST(DeriveActionTest, AnExplicitActionWins) {
  Route r;
  r.method = "DELETE";
  r.pattern = "/api/v1/admin/api-keys/{id}";
  EXPECT_EQ(RouteAction(r), "apikey.delete");
  r.action = "apikey.revoke";
  EXPECT_EQ(RouteAction(r), "apikey.revoke");
}

}  // namespace
}  // namespace kb::api
