// Backup and restore routes (admin, unrestricted keys only): run a backup now, list snapshots,
// verify them, restore one project into the running server. docs/API.md "Backups".
#include "api/http_status.h"
#include "api/json_encoding.h"
#include "api/request_decoding.h"
#include "api/router.h"
#include "backup/service.h"
#include "common/clock.h"

namespace kb::api {

using nlohmann::json;

namespace {

Result<std::vector<std::string>> StringList(const json& body, const char* field) {
  std::vector<std::string> out;
  if (!body.contains(field)) return out;
  const json& v = body[field];
  if (!v.is_array())
    return Status::InvalidArgument(std::string("field '") + field +
                                   "' must be an array of strings");
  for (const json& item : v) {
    if (!item.is_string() || item.get<std::string>().empty()) {
      return Status::InvalidArgument(std::string("field '") + field +
                                     "' must be an array of non-empty strings");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

// Decodes {"snapshot"?, "before"?, "latest_valid"?, "merge"?}.
Result<std::pair<backup::SnapshotSelector, bool>> DecodeRestoreBody(const json& body) {
  KB_RETURN_IF_ERROR(RequireKnownFields(body, {"snapshot", "before", "latest_valid", "merge"}));
  backup::SnapshotSelector sel;
  bool merge = false;
  int chosen = 0;
  if (body.contains("snapshot")) {
    if (!body["snapshot"].is_string())
      return Status::InvalidArgument("field 'snapshot' must be a string");
    sel.snapshot_id = body["snapshot"].get<std::string>();
    ++chosen;
  }
  if (body.contains("before")) {
    if (!body["before"].is_string())
      return Status::InvalidArgument("field 'before' must be an ISO-8601 string");
    auto t = ParseIso8601(body["before"].get<std::string>());
    if (!t) return Status::InvalidArgument("field 'before' must be an ISO-8601 time");
    sel.before_ms = *t;
    ++chosen;
  }
  if (body.contains("latest_valid")) {
    if (!body["latest_valid"].is_boolean())
      return Status::InvalidArgument("field 'latest_valid' must be a boolean");
    sel.latest_valid = body["latest_valid"].get<bool>();
    chosen += sel.latest_valid;
  }
  if (chosen > 1) {
    return Status::InvalidArgument("give at most one of 'snapshot', 'before', 'latest_valid'");
  }
  if (body.contains("merge")) {
    if (!body["merge"].is_boolean())
      return Status::InvalidArgument("field 'merge' must be a boolean");
    merge = body["merge"].get<bool>();
  }
  return std::make_pair(sel, merge);
}

Status NotConfigured() { return Status::Unavailable("backups are not enabled on this server"); }

}  // namespace

std::vector<Route> MakeBackupRoutes(ApiContext* api) {
  std::vector<Route> routes;
  auto add = [&](const char* method, const char* pattern, RouteHandler handler) {
    routes.push_back(Route{method, pattern, KeyScope::kAdmin, "", /*unrestricted_only=*/true,
                           std::move(handler)});
  };

  // Runs a backup now, on this request's thread; 201 with the new snapshot.
  add("POST", "/api/v1/admin/backups", [api](RequestContext& ctx) -> Result<Reply> {
    if (!api->backups) return NotConfigured();
    KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx, /*empty_is_object=*/true));
    KB_RETURN_IF_ERROR(RequireKnownFields(body, {"projects", "tags"}));
    KB_ASSIGN_OR_RETURN(auto projects, StringList(body, "projects"));
    KB_ASSIGN_OR_RETURN(auto tags, StringList(body, "tags"));
    KB_ASSIGN_OR_RETURN(auto manifest, api->backups->RunBackup("api", projects, tags));
    return Reply::Json(201, {{"snapshot", EncodeSnapshot(manifest)}});
  });

  add("GET", "/api/v1/admin/backups", [api](RequestContext&) -> Result<Reply> {
    if (!api->backups) return NotConfigured();
    KB_ASSIGN_OR_RETURN(auto list, api->backups->ListSnapshots());
    json arr = json::array();
    for (auto it = list.rbegin(); it != list.rend(); ++it)
      arr.push_back(EncodeSnapshotSummary(*it));
    const size_t n = arr.size();
    return Reply::Json(
        200,
        {{"snapshots", std::move(arr)}, {"count", n}, {"repository", api->backups->StatusJson()}});
  });

  // {"snapshots"?: [...], "read_data"?: bool, "read_data_subset"?: percent, "restore_test"?: bool}
  add("POST", "/api/v1/admin/backups/verify", [api](RequestContext& ctx) -> Result<Reply> {
    if (!api->backups) return NotConfigured();
    KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx, /*empty_is_object=*/true));
    KB_RETURN_IF_ERROR(
        RequireKnownFields(body, {"snapshots", "read_data", "read_data_subset", "restore_test"}));
    KB_ASSIGN_OR_RETURN(auto ids, StringList(body, "snapshots"));
    repo::VerifyOptions vo;
    if (body.contains("read_data")) {
      if (!body["read_data"].is_boolean())
        return Status::InvalidArgument("field 'read_data' must be a boolean");
      if (body["read_data"].get<bool>()) vo.data = repo::VerifyOptions::Data::kAll;
    }
    if (body.contains("read_data_subset")) {
      const json& v = body["read_data_subset"];
      if (!v.is_number() || v.get<double>() <= 0 || v.get<double>() > 100) {
        return Status::InvalidArgument("field 'read_data_subset' must be a percentage in (0, 100]");
      }
      vo.data = repo::VerifyOptions::Data::kSubset;
      vo.subset_fraction = v.get<double>() / 100.0;
    }
    if (body.contains("restore_test")) {
      if (!body["restore_test"].is_boolean())
        return Status::InvalidArgument("field 'restore_test' must be a boolean");
      vo.restore_test = body["restore_test"].get<bool>();
    }
    KB_ASSIGN_OR_RETURN(auto reports, api->backups->Verify(ids, vo));
    json arr = json::array();
    bool all_ok = true;
    for (const auto& r : reports) {
      all_ok = all_ok && r.ok;
      arr.push_back({{"snapshot", r.snapshot_id},
                     {"ok", r.ok},
                     {"problems", r.problems},
                     {"bytes_read", r.bytes_read}});
    }
    return Reply::Json(200, {{"ok", all_ok}, {"snapshots", std::move(arr)}});
  });

  // Replaces (or, with "merge", completes) one project from a snapshot.
  add("POST", "/api/v1/admin/projects/{project}/restore",
      [api](RequestContext& ctx) -> Result<Reply> {
        if (!api->backups) return NotConfigured();
        KB_ASSIGN_OR_RETURN(json body, JsonObjectBody(ctx, /*empty_is_object=*/true));
        if (body.contains("at") || body.contains("at_lsn")) {
          // To a point in time: snapshot + shipped journal (docs/BACKUP.md).
          KB_RETURN_IF_ERROR(RequireKnownFields(body, {"at", "at_lsn"}));
          backup::PointInTimeTarget target;
          if (body.contains("at") && body.contains("at_lsn")) {
            return Status::InvalidArgument("give one of 'at' and 'at_lsn'");
          }
          if (body.contains("at")) {
            auto t =
                body["at"].is_string() ? ParseIso8601(body["at"].get<std::string>()) : std::nullopt;
            if (!t) return Status::InvalidArgument("field 'at' must be an RFC 3339 time");
            target.at_ms = *t;
          } else {
            if (!body["at_lsn"].is_number_integer() || body["at_lsn"].get<int64_t>() < 0) {
              return Status::InvalidArgument("field 'at_lsn' must be an integer >= 0");
            }
            target.lsn = body["at_lsn"].get<int64_t>();
          }
          KB_ASSIGN_OR_RETURN(auto report, api->backups->RestoreProjectToPoint(ctx.Param("project"),
                                                                               target, ctx.actor));
          return Reply::Json(200, report.ToJson());
        }
        KB_ASSIGN_OR_RETURN(auto decoded, DecodeRestoreBody(body));
        KB_ASSIGN_OR_RETURN(auto report,
                            api->backups->RestoreProject(ctx.Param("project"), decoded.first,
                                                         decoded.second, ctx.actor));
        return Reply::Json(200, report.ToJson());
      });
  return routes;
}

}  // namespace kb::api
