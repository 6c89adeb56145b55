// RemoteBackend: CLI commands against a running server's REST API (docs/API.md), so that
// writes go through the process that owns the vector indexes.
//
// Responses are decoded back into the service layer's types. Decoding is tolerant of fields it
// does not know (a newer server may add some) but an error response always becomes a Status
// with the server's message, its code mapped back from the API's error code string.
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <utility>

#include "cli/backend.h"
#include "common/clock.h"
#include "common/text_util.h"

namespace kb::cli {
namespace {

using Json = nlohmann::json;

constexpr int kConnectTimeoutSeconds = 10;
// Large documents are parsed, chunked and embedded before the server answers.
constexpr int kReadTimeoutSeconds = 600;

std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

int64_t Int(const Json& j, const char* key, int64_t fallback = 0) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return fallback;
  return it->get<int64_t>();
}

std::optional<double> OptDouble(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

int64_t Time(const Json& j, const char* key) { return ParseIso8601(Str(j, key)).value_or(0); }

std::optional<int64_t> OptTime(const Json& j, const char* key) {
  std::string s = Str(j, key);
  if (s.empty()) return std::nullopt;
  return ParseIso8601(s);
}

std::string ObjectText(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return "{}";
  return it->dump();
}

ProjectRecord DecodeProject(const Json& j) {
  ProjectRecord p;
  p.id = Str(j, "id");
  p.name = Str(j, "name");
  p.description = Str(j, "description");
  p.metadata_json = ObjectText(j, "metadata");
  // Field names as api::EncodeProject writes them.
  if (auto e = j.find("embedder"); e != j.end() && e->is_object()) p.embedder_spec_json = e->dump();
  p.embedder_name = Str(j, "embedder_name");
  p.embedding_dimension = static_cast<int>(Int(j, "embedding_dimension"));
  p.chunk_size = static_cast<int>(Int(j, "chunk_size", p.chunk_size));
  p.chunk_overlap = static_cast<int>(Int(j, "chunk_overlap", p.chunk_overlap));
  p.created_at_ms = Time(j, "created_at");
  p.updated_at_ms = Time(j, "updated_at");
  return p;
}

DocumentRecord DecodeDocument(const Json& j) {
  DocumentRecord d;
  d.id = Str(j, "id");
  d.title = Str(j, "title");
  d.source = Str(j, "source");
  d.content_type = Str(j, "content_type");
  d.content_hash = Str(j, "content_hash");
  d.metadata_json = ObjectText(j, "metadata");
  d.chunk_count = static_cast<int>(Int(j, "chunk_count"));
  d.bytes = Int(j, "bytes");
  d.created_at_ms = Time(j, "created_at");
  d.updated_at_ms = Time(j, "updated_at");
  return d;
}

ApiKeyRecord DecodeKey(const Json& j) {
  ApiKeyRecord k;
  k.id = Str(j, "id");
  k.name = Str(j, "name");
  k.scope = ParseKeyScope(Str(j, "scope")).value_or(KeyScope::kRead);
  if (auto p = j.find("projects"); p != j.end() && p->is_array()) {
    for (const Json& id : *p) {
      if (id.is_string()) k.projects.push_back(id.get<std::string>());
    }
  }
  k.created_by = Str(j, "created_by");
  k.created_at_ms = Time(j, "created_at");
  k.expires_at_ms = OptTime(j, "expires_at");
  k.revoked_at_ms = OptTime(j, "revoked_at");
  k.last_used_at_ms = OptTime(j, "last_used_at");
  k.revoked_reason = Str(j, "revoked_reason");
  k.rotated_at_ms = OptTime(j, "rotated_at");
  k.previous_expires_at_ms = OptTime(j, "previous_secret_expires_at");
  return k;
}

ProjectRecord DecodeDeletedProject(const Json& j) {
  ProjectRecord p = DecodeProject(j);
  p.deleted_at_ms = OptTime(j, "deleted_at");
  p.deleted_by = Str(j, "deleted_by");
  return p;
}

DocumentRecord DecodeDeletedDocument(const Json& j) {
  DocumentRecord d = DecodeDocument(j);
  d.deleted_at_ms = OptTime(j, "deleted_at");
  d.deleted_by = Str(j, "deleted_by");
  return d;
}

// The API's error code strings are CodeName() of the Status code; fall back on the HTTP status.
Code CodeFromError(const std::string& name, int http_status) {
  for (int c = static_cast<int>(Code::kInvalidArgument); c <= static_cast<int>(Code::kInternal);
       ++c) {
    if (CodeName(static_cast<Code>(c)) == name) return static_cast<Code>(c);
  }
  switch (http_status) {
    case 400:
      return Code::kInvalidArgument;
    case 401:
      return Code::kUnauthenticated;
    case 403:
      return Code::kPermissionDenied;
    case 404:
      return Code::kNotFound;
    case 409:
      return Code::kAlreadyExists;
    case 413:
      return Code::kPayloadTooLarge;
    case 415:
      return Code::kUnsupportedMedia;
    case 422:
      return Code::kUnprocessable;
    case 429:
      return Code::kResourceExhausted;
    case 503:
      return Code::kUnavailable;
    default:
      return Code::kInternal;
  }
}

std::string PathSegment(const std::string& s) {
  // Project names may contain spaces; ids and names never contain '/' (ValidateProjectName).
  return UriEncode(s, /*keep_slash=*/false);
}

class RemoteBackend final : public Backend {
 public:
  RemoteBackend(const std::string& url, std::string api_key)
      : client_(url), api_key_(std::move(api_key)) {
    client_.set_connection_timeout(kConnectTimeoutSeconds, 0);
    client_.set_read_timeout(kReadTimeoutSeconds, 0);
    client_.set_write_timeout(kReadTimeoutSeconds, 0);
    client_.set_tcp_nodelay(true);  // no Nagle + delayed-ACK stall between request parts
    if (!api_key_.empty()) client_.set_bearer_token_auth(api_key_.c_str());
  }

  Result<ProjectRecord> CreateProject(const CreateProjectRequest& req) override {
    Json body = {{"name", req.name}, {"description", req.description}};
    Json meta = Json::parse(req.metadata_json, nullptr, false);
    if (!meta.is_discarded()) body["metadata"] = meta;
    // The spec's own JSON form is what the API's "embedder" field decodes.
    Json embedder = Json::parse(req.embedder.ToJson(), nullptr, false);
    if (!embedder.is_discarded()) body["embedder"] = embedder;
    if (req.chunk_size) body["chunk_size"] = *req.chunk_size;
    if (req.chunk_overlap) body["chunk_overlap"] = *req.chunk_overlap;
    KB_ASSIGN_OR_RETURN(Json j, Send("POST", "/api/v1/projects", body.dump()));
    return DecodeProject(Unwrap(j, "project"));
  }

  Result<ProjectRecord> GetProject(const std::string& id_or_name) override {
    KB_ASSIGN_OR_RETURN(Json j, Send("GET", ProjectPath(id_or_name), ""));
    return DecodeProject(Unwrap(j, "project"));
  }

  Result<std::vector<ProjectRecord>> ListProjects() override {
    KB_ASSIGN_OR_RETURN(Json j, Send("GET", "/api/v1/projects", ""));
    const Json& list = j.is_array() ? j : Unwrap(j, "projects");
    std::vector<ProjectRecord> out;
    if (list.is_array()) {
      for (const Json& p : list) out.push_back(DecodeProject(p));
    }
    return out;
  }

  Status DeleteProject(const std::string& id_or_name) override {
    return Send("DELETE", ProjectPath(id_or_name), "").status();
  }

  Result<IngestResult> Ingest(const std::string& project, const IngestRequest& req) override {
    httplib::MultipartFormDataItems items = {
        {"file", req.content, req.filename,
         req.declared_mime.empty() ? "application/octet-stream" : req.declared_mime}};
    if (!req.metadata_json.empty() && req.metadata_json != "{}") {
      items.push_back({"metadata", req.metadata_json, "", "application/json"});
    }
    if (!req.source.empty()) items.push_back({"source", req.source, "", "text/plain"});
    if (!req.title.empty()) items.push_back({"title", req.title, "", "text/plain"});
    httplib::Result res = client_.Post(ProjectPath(project) + "/documents", items);
    KB_ASSIGN_OR_RETURN(Json j, Decode(res));
    // A multipart upload may answer with a batch of per-file results; we send one file.
    const Json* item = &j;
    for (const char* key : {"results", "documents", "items"}) {
      if (auto it = j.find(key); it != j.end() && it->is_array() && !it->empty()) {
        item = &(*it)[0];
        break;
      }
    }
    if (auto err = item->find("error"); err != item->end() && err->is_object()) {
      return Status(CodeFromError(Str(*err, "code"), 0), Str(*err, "message"));
    }
    IngestResult out;
    out.document = DecodeDocument(Unwrap(*item, "document"));
    std::string outcome = Str(*item, "outcome");
    if (outcome.empty()) outcome = Str(*item, "status");
    if (outcome == "replaced") out.outcome = PutOutcome::kReplaced;
    if (outcome == "unchanged") out.outcome = PutOutcome::kUnchanged;
    out.lsn = Int(*item, "lsn");
    return out;
  }

  Result<QueryResponse> Query(const std::string& project, const QueryRequest& req) override {
    Json body = {{"query", req.text},
                 {"top_k", req.top_k},
                 {"offset", req.offset},
                 {"mode", std::string(SearchModeName(req.mode))},
                 {"alpha", req.alpha}};
    if (req.fusion == FusionMethod::kRrf) body["fusion"] = "rrf";
    if (!req.filters_json.empty()) {
      Json filters = Json::parse(req.filters_json, nullptr, false);
      if (filters.is_discarded()) return Status::InvalidArgument("filters: not valid JSON");
      body["filters"] = filters;
    }
    KB_ASSIGN_OR_RETURN(Json j, Send("POST", ProjectPath(project) + "/query", body.dump()));
    QueryResponse out;
    out.took_ms = OptDouble(j, "took_ms").value_or(0);
    out.cached = j.value("cached", false);
    const Json& results = Unwrap(j, "results");
    if (!results.is_array()) return out;
    for (const Json& r : results) {
      QueryHit h;
      h.document_id = Str(r, "document_id");
      h.chunk_id = Int(r, "chunk_id");
      h.title = Str(r, "title");
      h.source = Str(r, "source");
      h.text = Str(r, "text");
      h.heading_path = Str(r, "heading_path");
      h.score = OptDouble(r, "score").value_or(0);
      h.vector_score = OptDouble(r, "vector_score");
      h.keyword_score = OptDouble(r, "keyword_score");
      h.rank = static_cast<int>(Int(r, "rank"));
      h.metadata_json = ObjectText(r, "metadata");
      out.hits.push_back(std::move(h));
    }
    return out;
  }

  Result<KbStats> Stats() override {
    KB_ASSIGN_OR_RETURN(Json j, Send("GET", "/api/v1/stats", ""));
    KbStats s;
    const Json& totals = j.contains("totals") && j["totals"].is_object() ? j["totals"] : j;
    s.projects = Int(totals, "projects");
    s.documents = Int(totals, "documents");
    s.chunks = Int(totals, "chunks");
    s.content_bytes = Int(totals, "content_bytes");
    s.disk_bytes = Int(totals, "disk_bytes");
    s.uptime_seconds = Int(j, "uptime_seconds");
    const Json& per = j.contains("per_project") ? j["per_project"] : Unwrap(j, "projects");
    if (per.is_array()) {
      for (const Json& p : per) {
        ProjectStats ps;
        ps.project = DecodeProject(p.contains("project") ? p["project"] : p);
        if (ps.project.id.empty()) ps.project.id = Str(p, "project_id");
        if (ps.project.name.empty()) ps.project.name = Str(p, "project_name");
        ps.counts.documents = Int(p, "documents");
        ps.counts.chunks = Int(p, "chunks");
        ps.counts.content_bytes = Int(p, "content_bytes");
        ps.counts.deleted_documents = Int(p, "deleted_documents");
        ps.index_vectors = static_cast<size_t>(Int(p, "index_vectors"));
        ps.index_memory_bytes = static_cast<size_t>(Int(p, "index_memory_bytes"));
        ps.index_lsn = Int(p, "index_lsn");
        ps.journal_lsn = Int(p, "journal_lsn");
        ps.disk_bytes = Int(p, "disk_bytes");
        s.per_project.push_back(std::move(ps));
      }
    }
    return s;
  }

  Result<CreatedKey> CreateKey(const std::string& name, KeyScope scope,
                               const std::vector<std::string>& projects,
                               std::optional<int> expires_in_days) override {
    Json body = {{"name", name}, {"scope", std::string(KeyScopeName(scope))}};
    if (!projects.empty()) body["projects"] = projects;
    if (expires_in_days) body["expires_in_days"] = *expires_in_days;
    KB_ASSIGN_OR_RETURN(Json j, Send("POST", "/api/v1/admin/api-keys", body.dump()));
    CreatedKey out;
    out.record = DecodeKey(Unwrap(j, "key"));
    out.secret = Str(j, "secret");
    return out;
  }

  Result<std::vector<ApiKeyRecord>> ListKeys() override {
    KB_ASSIGN_OR_RETURN(Json j, Send("GET", "/api/v1/admin/api-keys", ""));
    const Json& list = j.is_array() ? j : Unwrap(j, "keys");
    std::vector<ApiKeyRecord> out;
    if (list.is_array()) {
      for (const Json& k : list) out.push_back(DecodeKey(k));
    }
    return out;
  }

  Status RevokeKey(const std::string& key_id) override {
    return Send("DELETE", "/api/v1/admin/api-keys/" + PathSegment(key_id), "").status();
  }

  Result<CreatedKey> RotateKey(const std::string& key_id, int64_t overlap_seconds) override {
    Json body = {{"overlap_seconds", overlap_seconds}};
    KB_ASSIGN_OR_RETURN(
        Json j,
        Send("POST", "/api/v1/admin/api-keys/" + PathSegment(key_id) + "/rotate", body.dump()));
    CreatedKey out;
    out.record = DecodeKey(Unwrap(j, "key"));
    out.secret = Str(j, "secret");
    return out;
  }

  Result<RevokeAllResult> RevokeAllKeys(bool include_admin) override {
    Json body = {{"include_admin", include_admin}};
    KB_ASSIGN_OR_RETURN(Json j, Send("POST", "/api/v1/admin/api-keys/revoke-all", body.dump()));
    RevokeAllResult out;
    if (auto it = j.find("revoked"); it != j.end() && it->is_array()) {
      for (const Json& id : *it) {
        if (id.is_string()) out.revoked.push_back(id.get<std::string>());
      }
    }
    if (auto it = j.find("new_admin_key"); it != j.end() && it->is_object()) {
      CreatedKey k;
      k.record = DecodeKey(Unwrap(*it, "key"));
      k.secret = Str(*it, "secret");
      out.new_admin = std::move(k);
    }
    return out;
  }

  Status ReinstateKey(const std::string& key_id) override {
    return Send("POST", "/api/v1/admin/api-keys/" + PathSegment(key_id) + "/reinstate", "")
        .status();
  }

  Result<RestoreDeletedReport> RestoreDeleted(const RestoreDeletedRequest& req) override {
    Json body = {{"project", req.project}};
    if (req.before_ms) body["before"] = FormatIso8601(*req.before_ms);
    if (!req.document_ids.empty()) body["document_ids"] = req.document_ids;
    KB_ASSIGN_OR_RETURN(Json j, Send("POST", "/api/v1/admin/restore", body.dump()));
    RestoreDeletedReport r;
    const Json& project = Unwrap(j, "project");
    r.project_id = Str(project, "id");
    r.project_name = Str(project, "name");
    r.project_restored = j.value("project_restored", false);
    if (auto it = j.find("restored"); it != j.end() && it->is_object()) {
      if (auto d = it->find("documents"); d != it->end() && d->is_array()) {
        for (const Json& id : *d) {
          if (id.is_string()) r.restored_documents.push_back(id.get<std::string>());
        }
      }
    }
    if (auto it = j.find("skipped"); it != j.end() && it->is_array()) {
      for (const Json& s : *it) {
        r.skipped.push_back({Str(s, "id"), Str(s, "reason"), Str(s, "detail")});
      }
    }
    return r;
  }

  Result<DeletedListing> ListDeleted(const std::string& project, int64_t limit,
                                     int64_t offset) override {
    httplib::Params params = {{"limit", std::to_string(limit)}, {"offset", std::to_string(offset)}};
    if (!project.empty()) params.emplace("project", project);
    KB_ASSIGN_OR_RETURN(
        Json j, Decode(client_.Get(httplib::append_query_params("/api/v1/admin/deleted", params))));
    DeletedListing out;
    out.total = Int(j, "total");
    if (auto it = j.find("projects"); it != j.end() && it->is_array()) {
      for (const Json& p : *it) out.projects.push_back(DecodeDeletedProject(p));
    }
    if (auto it = j.find("documents"); it != j.end() && it->is_array()) {
      for (const Json& d : *it) out.documents.push_back(DecodeDeletedDocument(d));
    }
    if (auto it = j.find("project"); it != j.end() && it->is_object()) {
      out.project = DecodeDeletedProject(*it);
    }
    return out;
  }

  Result<PurgeReport> Purge(bool) override {
    return Status::FailedPrecondition(
        "purge works on the data directory (--data-dir, without --url); a running server "
        "purges on its own every purge_interval");
  }

 private:
  static std::string ProjectPath(const std::string& project) {
    return "/api/v1/projects/" + PathSegment(project);
  }

  // `j[key]` if it is present and structured, else `j` itself: servers may or may not wrap.
  static const Json& Unwrap(const Json& j, const char* key) {
    if (j.is_object()) {
      auto it = j.find(key);
      if (it != j.end() && (it->is_object() || it->is_array())) return *it;
    }
    return j;
  }

  Result<Json> Send(const std::string& method, const std::string& path, const std::string& body) {
    if (method == "GET") return Decode(client_.Get(path));
    if (method == "POST") return Decode(client_.Post(path, body, "application/json"));
    if (method == "DELETE") return Decode(client_.Delete(path));
    return Status::Internal("unsupported method " + method);
  }

  Result<Json> Decode(const httplib::Result& res) {
    if (!res) {
      return Status::Unavailable("cannot reach server: " + httplib::to_string(res.error()));
    }
    Json j = res->body.empty() ? Json::object() : Json::parse(res->body, nullptr, false);
    if (res->status >= 200 && res->status < 300) {
      if (j.is_discarded()) return Status::Internal("server sent a response that is not JSON");
      return j;
    }
    if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_object()) {
      const Json& err = j["error"];
      return Status(CodeFromError(Str(err, "code"), res->status), Str(err, "message"));
    }
    return Status(CodeFromError("", res->status),
                  "server answered HTTP " + std::to_string(res->status));
  }

  httplib::Client client_;
  std::string api_key_;
};

}  // namespace

Result<std::unique_ptr<Backend>> OpenRemoteBackend(const Config& config) {
  // The URL's form was checked when the configuration was loaded (config.cc, Kind::kUrl).
  return std::unique_ptr<Backend>(std::make_unique<RemoteBackend>(config.url, config.api_key));
}

}  // namespace kb::cli
