// Route matching (see router.h for why the server routes by itself).
#include "api/router.h"

#include "api/request_decoding.h"

#include <algorithm>

namespace kb::api {

Status RequireJsonBodyType(const RequestContext& ctx) {
  const std::string type = ctx.http.get_header_value("Content-Type");
  if (!ctx.http.body.empty() && !type.empty() && type.find("json") == std::string::npos) {
    return Status::UnsupportedMedia("send the body as application/json (got '" + type + "')");
  }
  return Status::OK();
}

Result<nlohmann::json> JsonObjectBody(const RequestContext& ctx, bool empty_is_object) {
  if (empty_is_object && ctx.http.body.empty()) return nlohmann::json::object();
  KB_RETURN_IF_ERROR(RequireJsonBodyType(ctx));
  return ParseJsonObject(ctx.http.body);
}

bool RequestContext::KeyAllowsProject(const std::string& project_id) const {
  if (!key || key->projects.empty()) return true;
  return std::find(key->projects.begin(), key->projects.end(), project_id) != key->projects.end();
}

std::vector<std::string> Router::Split(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

void Router::Add(Route route) {
  segments_.push_back(Split(route.pattern));
  routes_.push_back(std::move(route));
}

Router::Outcome Router::Find(const std::string& method, const std::string& path, Match* out) const {
  const std::string m = method == "HEAD" ? "GET" : method;
  // A trailing slash is tolerated ("/api/v1/projects/"), empty segments are not meaningful.
  const std::vector<std::string> parts = Split(path);
  if (path.empty() || path[0] != '/') return Outcome::kNotFound;
  out->allowed_methods.clear();
  bool path_known = false;
  for (size_t r = 0; r < routes_.size(); ++r) {
    const auto& segs = segments_[r];
    if (segs.size() != parts.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const std::string& s = segs[i];
      if (s.size() > 2 && s.front() == '{' && s.back() == '}') {
        params[s.substr(1, s.size() - 2)] = parts[i];
      } else if (s != parts[i]) {
        ok = false;
      }
    }
    if (!ok) continue;
    if (!path_known) out->pattern = routes_[r].pattern;
    path_known = true;
    out->allowed_methods.push_back(routes_[r].method);
    if (routes_[r].method == m && !out->route) {
      out->route = &routes_[r];
      out->params = std::move(params);
    }
  }
  if (out->route) return Outcome::kFound;
  return path_known ? Outcome::kMethodNotAllowed : Outcome::kNotFound;
}

}  // namespace kb::api
