// Request decoding (see request_decoding.h). Every public function catches every exception:
// nlohmann throws on ill-formed UTF-8 and on type confusion, and a decoding bug must become a
// 400, never a crashed worker thread.
#include "api/request_decoding.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "common/clock.h"
#include "common/crypto_util.h"
#include "common/text_util.h"

namespace kb::api {

using nlohmann::json;

namespace {

// Field limits (kMaxTitleBytes, kMaxSourceBytes, kMaxKeyNameBytes) are the service's, from
// service/types.h: checked here too so that a bad field is named before any work starts.

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Status WrongType(std::string_view field, std::string_view what) {
  return Status::InvalidArgument("field '" + std::string(field) + "' must be " + std::string(what));
}

// Runs `fn`, turning any exception into InvalidArgument.
template <typename T, typename Fn>
Result<T> Guarded(Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("invalid request: ") + e.what());
  } catch (...) {
    return Status::InvalidArgument("invalid request");
  }
}

const json* Find(const json& j, std::string_view field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return nullptr;  // null means "not given"
  return &*it;
}

// Each getter leaves *out untouched when the field is absent and returns OK.
Status GetString(const json& j, std::string_view field, std::string* out, bool* present = nullptr) {
  const json* v = Find(j, field);
  if (present) *present = v != nullptr;
  if (!v) return Status::OK();
  if (!v->is_string()) return WrongType(field, "a string");
  *out = v->get<std::string>();
  return Status::OK();
}

Status GetOptString(const json& j, std::string_view field, std::optional<std::string>* out) {
  const json* v = Find(j, field);
  if (!v) return Status::OK();
  if (!v->is_string()) return WrongType(field, "a string");
  *out = v->get<std::string>();
  return Status::OK();
}

Status GetInt(const json& j, std::string_view field, int64_t lo, int64_t hi,
              std::optional<int64_t>* out) {
  const json* v = Find(j, field);
  if (!v) return Status::OK();
  if (!v->is_number_integer()) return WrongType(field, "an integer");
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return Status::InvalidArgument("field '" + std::string(field) + "' must be between " +
                                   std::to_string(lo) + " and " + std::to_string(hi));
  }
  int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) {
    return Status::InvalidArgument("field '" + std::string(field) + "' must be between " +
                                   std::to_string(lo) + " and " + std::to_string(hi));
  }
  *out = x;
  return Status::OK();
}

Status GetBool(const json& j, std::string_view field, bool* out) {
  const json* v = Find(j, field);
  if (!v) return Status::OK();
  if (!v->is_boolean()) return WrongType(field, "a boolean");
  *out = v->get<bool>();
  return Status::OK();
}

Status GetNumber(const json& j, std::string_view field, std::optional<double>* out) {
  const json* v = Find(j, field);
  if (!v) return Status::OK();
  if (!v->is_number()) return WrongType(field, "a number");
  *out = v->get<double>();
  return Status::OK();
}

Status GetObjectAsJson(const json& j, std::string_view field, std::string* out) {
  const json* v = Find(j, field);
  if (!v) return Status::OK();
  if (!v->is_object()) return WrongType(field, "an object");
  *out = Dump(*v);
  return Status::OK();
}

Status GetVector(const json& v, std::string_view field, std::vector<float>* out) {
  if (!v.is_array()) return WrongType(field, "an array of numbers");
  out->clear();
  out->reserve(v.size());
  for (const json& x : v) {
    if (!x.is_number()) return WrongType(field, "an array of numbers");
    double d = x.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) {
      return Status::InvalidArgument("field '" + std::string(field) +
                                     "' must contain only finite numbers");
    }
    out->push_back(static_cast<float>(d));
  }
  return Status::OK();
}

Status GetStringList(const json& j, std::string_view field, std::vector<std::string>* out) {
  const json* v = Find(j, field);
  if (!v) return Status::OK();
  if (!v->is_array()) return WrongType(field, "an array of strings");
  out->clear();
  for (const json& x : *v) {
    if (!x.is_string()) return WrongType(field, "an array of strings");
    out->push_back(x.get<std::string>());
  }
  return Status::OK();
}

Status RequireObject(const json& j) {
  if (!j.is_object()) return Status::InvalidArgument("request body must be a JSON object");
  return Status::OK();
}

// --- query-string parsing ---
const std::string* Param(const QueryParams& p, const std::string& name) {
  auto it = p.find(name);
  return it == p.end() ? nullptr : &it->second;
}

Status ParamInt(const QueryParams& p, const std::string& name, int64_t lo, int64_t hi,
                std::optional<int64_t>* out) {
  const std::string* s = Param(p, name);
  if (!s) return Status::OK();
  int64_t x = 0;
  auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), x);
  if (s->empty() || ec != std::errc() || end != s->data() + s->size()) {
    return Status::InvalidArgument("parameter '" + name + "' must be an integer");
  }
  if (x < lo || x > hi) {
    return Status::InvalidArgument("parameter '" + name + "' must be between " +
                                   std::to_string(lo) + " and " + std::to_string(hi));
  }
  *out = x;
  return Status::OK();
}

Status ParamDouble(const QueryParams& p, const std::string& name, std::optional<double>* out) {
  const std::string* s = Param(p, name);
  if (!s) return Status::OK();
  double x = 0;
  auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), x);
  if (s->empty() || ec != std::errc() || end != s->data() + s->size() || !std::isfinite(x)) {
    return Status::InvalidArgument("parameter '" + name + "' must be a number");
  }
  *out = x;
  return Status::OK();
}

Status ParamBool(const QueryParams& p, const std::string& name, bool* out) {
  const std::string* s = Param(p, name);
  if (!s) return Status::OK();
  if (*s == "true" || *s == "1")
    *out = true;
  else if (*s == "false" || *s == "0")
    *out = false;
  else
    return Status::InvalidArgument("parameter '" + name + "' must be true or false");
  return Status::OK();
}

Status ParseModeAndFusion(const std::string& mode, const std::string& fusion, QueryRequest* q,
                          std::string_view kind) {
  if (!mode.empty()) {
    auto m = ParseSearchMode(mode);
    if (!m) {
      return Status::InvalidArgument(std::string(kind) +
                                     " 'mode' must be one of hybrid, vector, keyword");
    }
    q->mode = *m;
  }
  if (!fusion.empty()) {
    auto f = ParseFusionMethod(fusion);
    if (!f) {
      return Status::InvalidArgument(std::string(kind) + " 'fusion' must be weighted or rrf");
    }
    q->fusion = *f;
  }
  return Status::OK();
}

Result<IngestRequest> DecodeIngestDocumentImpl(const json& j) {
  KB_RETURN_IF_ERROR(RequireObject(j));
  IngestRequest req;
  bool has_content = false, has_b64 = false;
  KB_RETURN_IF_ERROR(GetString(j, "content", &req.content, &has_content));
  std::string b64;
  KB_RETURN_IF_ERROR(GetString(j, "content_base64", &b64, &has_b64));
  KB_RETURN_IF_ERROR(GetString(j, "content_type", &req.declared_mime));
  KB_RETURN_IF_ERROR(GetString(j, "title", &req.title));
  KB_RETURN_IF_ERROR(GetString(j, "source", &req.source));
  KB_RETURN_IF_ERROR(GetString(j, "filename", &req.filename));
  KB_RETURN_IF_ERROR(GetObjectAsJson(j, "metadata", &req.metadata_json));
  if (!req.title.empty()) KB_RETURN_IF_ERROR(ValidateLabel("title", req.title, kMaxTitleBytes));
  if (!req.source.empty()) KB_RETURN_IF_ERROR(ValidateLabel("source", req.source, kMaxSourceBytes));
  if (!req.filename.empty()) {
    KB_RETURN_IF_ERROR(ValidateLabel("filename", req.filename, kMaxSourceBytes));
  }

  const json* chunks = Find(j, "chunks");
  if (chunks) {
    if (has_content || has_b64) {
      return Status::InvalidArgument("give either 'chunks' or 'content', not both");
    }
    if (!chunks->is_array()) return WrongType("chunks", "an array of objects");
    if (chunks->empty()) return Status::InvalidArgument("field 'chunks' must not be empty");
    for (size_t i = 0; i < chunks->size(); ++i) {
      const json& c = (*chunks)[i];
      const std::string where = "chunks[" + std::to_string(i) + "]";
      if (!c.is_object()) return WrongType(where, "an object");
      ProvidedChunk pc;
      const json* text = Find(c, "text");
      if (!text || !text->is_string()) return WrongType(where + ".text", "a string");
      pc.text = text->get<std::string>();
      if (const json* e = Find(c, "embedding")) {
        KB_RETURN_IF_ERROR(GetVector(*e, where + ".embedding", &pc.embedding));
      }
      req.chunks.push_back(std::move(pc));
    }
    return req;
  }
  if (has_content && has_b64) {
    return Status::InvalidArgument("give either 'content' or 'content_base64', not both");
  }
  if (has_b64) {
    auto decoded = Base64Decode(b64);
    if (!decoded) return Status::InvalidArgument("field 'content_base64' is not valid base64");
    req.content = std::move(*decoded);
  } else if (!has_content) {
    return Status::InvalidArgument("one of 'content', 'content_base64' or 'chunks' is required");
  } else if (req.declared_mime.empty()) {
    // JSON "content" is text; without a stated type let the parser decide by the file name.
    if (req.filename.empty() && req.source.empty()) req.declared_mime = "text/plain";
  }
  if (req.filename.empty()) req.filename = req.source;
  return req;
}

// top_k and offset when given, in the ranges of search/query.h; `naming` is how the caller names
// them in messages ("field" in a JSON body, "parameter" in a query string).
Status SetPage(std::optional<int64_t> top_k, std::optional<int64_t> offset, std::string_view naming,
               QueryRequest* q) {
  if (top_k) {
    KB_RETURN_IF_ERROR(ValidateTopK(*top_k, naming));
    q->top_k = static_cast<int>(*top_k);
  }
  if (offset) {
    KB_RETURN_IF_ERROR(ValidateOffset(*offset, naming));
    q->offset = static_cast<int>(*offset);
  }
  return Status::OK();
}

Result<QueryRequest> DecodeQueryBodyImpl(const json& j) {
  KB_RETURN_IF_ERROR(RequireObject(j));
  QueryRequest q;
  bool has_query = false, has_q = false;
  KB_RETURN_IF_ERROR(GetString(j, "query", &q.text, &has_query));
  if (!has_query) KB_RETURN_IF_ERROR(GetString(j, "q", &q.text, &has_q));
  if (const json* v = Find(j, "vector")) KB_RETURN_IF_ERROR(GetVector(*v, "vector", &q.vector));
  std::optional<int64_t> top_k, offset;
  KB_RETURN_IF_ERROR(GetInt(j, "top_k", std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max(), &top_k));
  KB_RETURN_IF_ERROR(GetInt(j, "offset", std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max(), &offset));
  // Checked as the fields are read, so that a bad one is named first.
  KB_RETURN_IF_ERROR(SetPage(top_k, offset, "field", &q));
  std::optional<double> alpha;
  KB_RETURN_IF_ERROR(GetNumber(j, "alpha", &alpha));
  if (alpha) q.alpha = *alpha;
  std::string mode, fusion;
  KB_RETURN_IF_ERROR(GetString(j, "mode", &mode));
  KB_RETURN_IF_ERROR(GetString(j, "fusion", &fusion));
  KB_RETURN_IF_ERROR(ParseModeAndFusion(mode, fusion, &q, "field"));
  KB_RETURN_IF_ERROR(GetObjectAsJson(j, "filters", &q.filters_json));
  KB_RETURN_IF_ERROR(GetBool(j, "use_cache", &q.use_cache));
  KB_RETURN_IF_ERROR(ValidateQuery(q));
  return q;
}

Result<QueryRequest> DecodeQueryParamsImpl(const QueryParams& p) {
  QueryRequest q;
  if (const std::string* s = Param(p, "q"))
    q.text = *s;
  else if (const std::string* s2 = Param(p, "query"))
    q.text = *s2;
  std::optional<int64_t> top_k, offset;
  KB_RETURN_IF_ERROR(ParamInt(p, "top_k", std::numeric_limits<int64_t>::min(),
                              std::numeric_limits<int64_t>::max(), &top_k));
  KB_RETURN_IF_ERROR(ParamInt(p, "offset", std::numeric_limits<int64_t>::min(),
                              std::numeric_limits<int64_t>::max(), &offset));
  KB_RETURN_IF_ERROR(SetPage(top_k, offset, "parameter", &q));
  std::optional<double> alpha;
  KB_RETURN_IF_ERROR(ParamDouble(p, "alpha", &alpha));
  if (alpha) q.alpha = *alpha;
  const std::string* mode = Param(p, "mode");
  const std::string* fusion = Param(p, "fusion");
  KB_RETURN_IF_ERROR(ParseModeAndFusion(mode ? *mode : "", fusion ? *fusion : "", &q, "parameter"));
  KB_RETURN_IF_ERROR(ParamBool(p, "use_cache", &q.use_cache));
  if (const std::string* f = Param(p, "filters")) {
    if (CheckJsonDepth(*f).ok()) {
      json fj = json::parse(*f, nullptr, /*allow_exceptions=*/false);
      if (fj.is_discarded() || !fj.is_object()) {
        return Status::InvalidArgument("parameter 'filters' must be a JSON object");
      }
      q.filters_json = Dump(fj);
    } else {
      return Status::InvalidArgument("parameter 'filters' is nested too deeply");
    }
  }
  KB_RETURN_IF_ERROR(ValidateQuery(q));
  return q;
}

Result<CreateKeyRequest> DecodeKeyCommon(const json& j, bool v2) {
  KB_RETURN_IF_ERROR(RequireObject(j));
  CreateKeyRequest k;
  KB_RETURN_IF_ERROR(GetString(j, "name", &k.name));
  if (k.name.empty()) {
    if (!v2) return Status::InvalidArgument("field 'name' is required");
    k.name = "api key";
  }
  KB_RETURN_IF_ERROR(ValidateLabel("name", k.name, kMaxKeyNameBytes));
  std::string scope;
  bool has_scope = false;
  KB_RETURN_IF_ERROR(GetString(j, "scope", &scope, &has_scope));
  if (!has_scope && Find(j, "scopes")) {
    // The Python API lists scopes; ours nest, so the widest one listed wins.
    std::vector<std::string> scopes;
    KB_RETURN_IF_ERROR(GetStringList(j, "scopes", &scopes));
    KeyScope best = KeyScope::kRead;
    for (const std::string& s : scopes) {
      auto parsed = ParseKeyScope(s);
      if (!parsed) {
        return Status::InvalidArgument("field 'scopes' entries must be read, write or admin");
      }
      if (static_cast<int>(*parsed) > static_cast<int>(best)) best = *parsed;
    }
    k.scope = best;
  } else if (has_scope) {
    auto parsed = ParseKeyScope(scope);
    if (!parsed) return Status::InvalidArgument("field 'scope' must be read, write or admin");
    k.scope = *parsed;
  } else if (!v2) {
    return Status::InvalidArgument("field 'scope' or 'scopes' is required (read, write or admin)");
  }
  if (!v2) KB_RETURN_IF_ERROR(GetStringList(j, "projects", &k.projects));
  std::optional<int64_t> days;
  KB_RETURN_IF_ERROR(GetInt(j, "expires_in_days", 1, kMaxKeyExpiryDays, &days));
  if (v2 && !days) KB_RETURN_IF_ERROR(GetInt(j, "expires_days", 1, kMaxKeyExpiryDays, &days));
  if (days) k.expires_in_days = static_cast<int>(*days);
  if (!v2) {
    std::optional<std::string> at;
    KB_RETURN_IF_ERROR(GetOptString(j, "expires_at", &at));
    if (at) {
      auto ms = ParseIso8601(*at);
      if (!ms) return Status::InvalidArgument("field 'expires_at' must be an ISO-8601 time");
      if (days) {
        return Status::InvalidArgument("give 'expires_in_days' or 'expires_at', not both");
      }
      k.expires_at_ms = *ms;
    }
  }
  return k;
}

Status DecodeEmbedder(const json& e, EmbedderSpec* spec) {
  if (!e.is_object()) return WrongType("embedder", "an object");
  KB_RETURN_IF_ERROR(GetString(e, "kind", &spec->kind));
  KB_RETURN_IF_ERROR(GetString(e, "model", &spec->model));
  KB_RETURN_IF_ERROR(GetString(e, "url", &spec->url));
  KB_RETURN_IF_ERROR(GetString(e, "api_key_env", &spec->api_key_env));
  std::optional<int64_t> dim, timeout, retries, batch;
  KB_RETURN_IF_ERROR(GetInt(e, "dimension", 1, 65536, &dim));
  KB_RETURN_IF_ERROR(GetInt(e, "timeout_ms", 1, 600000, &timeout));
  KB_RETURN_IF_ERROR(GetInt(e, "max_retries", 0, 20, &retries));
  KB_RETURN_IF_ERROR(GetInt(e, "batch_size", 1, 4096, &batch));
  if (dim) spec->dimension = static_cast<int>(*dim);
  if (timeout) spec->timeout_ms = static_cast<int>(*timeout);
  if (retries) spec->max_retries = static_cast<int>(*retries);
  if (batch) spec->batch_size = static_cast<int>(*batch);
  return Status::OK();
}

}  // namespace

Status CheckJsonDepth(std::string_view body, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // skip the escaped character
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return Status::InvalidArgument("JSON nested deeper than " + std::to_string(max_depth) +
                                       " levels");
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    }
  }
  return Status::OK();
}

Status RequireKnownFields(const json& body, std::initializer_list<const char*> allowed) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    bool known = false;
    for (const char* a : allowed) known = known || it.key() == a;
    if (!known) return Status::InvalidArgument("unknown field '" + it.key() + "'");
  }
  return Status::OK();
}

Result<json> ParseJsonObject(std::string_view body) {
  if (TrimWhitespace(body).empty()) return Status::InvalidArgument("request body is empty");
  KB_RETURN_IF_ERROR(CheckJsonDepth(body));
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    // e.what() names the byte position and what was wrong; it holds no server internals.
    return Status::InvalidArgument(std::string("malformed JSON: ") + e.what());
  } catch (...) {
    return Status::InvalidArgument("malformed JSON");
  }
  KB_RETURN_IF_ERROR(RequireObject(j));
  return j;
}

Result<CreateProjectRequest> DecodeCreateProject(const json& j) {
  return Guarded<CreateProjectRequest>([&]() -> Result<CreateProjectRequest> {
    KB_RETURN_IF_ERROR(RequireObject(j));
    CreateProjectRequest r;
    bool has_name = false;
    KB_RETURN_IF_ERROR(GetString(j, "name", &r.name, &has_name));
    if (!has_name) return Status::InvalidArgument("field 'name' is required");
    KB_RETURN_IF_ERROR(ValidateProjectName(r.name));
    KB_RETURN_IF_ERROR(GetString(j, "description", &r.description));
    KB_RETURN_IF_ERROR(GetObjectAsJson(j, "metadata", &r.metadata_json));
    if (const json* e = Find(j, "embedder")) KB_RETURN_IF_ERROR(DecodeEmbedder(*e, &r.embedder));
    std::optional<int64_t> size, overlap;
    KB_RETURN_IF_ERROR(GetInt(j, "chunk_size", 1, 1'000'000, &size));
    KB_RETURN_IF_ERROR(GetInt(j, "chunk_overlap", 0, 1'000'000, &overlap));
    if (size) r.chunk_size = static_cast<int>(*size);
    if (overlap) r.chunk_overlap = static_cast<int>(*overlap);
    return r;
  });
}

Result<UpdateProjectRequest> DecodeUpdateProject(const json& j) {
  return Guarded<UpdateProjectRequest>([&]() -> Result<UpdateProjectRequest> {
    KB_RETURN_IF_ERROR(RequireObject(j));
    UpdateProjectRequest r;
    KB_RETURN_IF_ERROR(GetOptString(j, "name", &r.name));
    if (r.name) KB_RETURN_IF_ERROR(ValidateProjectName(*r.name));
    KB_RETURN_IF_ERROR(GetOptString(j, "description", &r.description));
    std::string meta;
    if (Find(j, "metadata")) {
      KB_RETURN_IF_ERROR(GetObjectAsJson(j, "metadata", &meta));
      r.metadata_json = meta;
    }
    if (Find(j, "embedder")) {
      return Status::InvalidArgument(
          "field 'embedder' cannot be changed: a project's vectors belong to its embedder");
    }
    if (!r.name && !r.description && !r.metadata_json) {
      return Status::InvalidArgument("nothing to update: give name, description or metadata");
    }
    return r;
  });
}

Result<IngestRequest> DecodeIngestDocument(const json& j) {
  return Guarded<IngestRequest>([&] { return DecodeIngestDocumentImpl(j); });
}

Result<DecodedIngestBody> DecodeIngestBody(const json& j) {
  return Guarded<DecodedIngestBody>([&]() -> Result<DecodedIngestBody> {
    KB_RETURN_IF_ERROR(RequireObject(j));
    DecodedIngestBody out;
    const json* docs = Find(j, "documents");
    if (!docs) {
      // A single document that fails to decode fails the request as a whole.
      KB_ASSIGN_OR_RETURN(IngestRequest one, DecodeIngestDocumentImpl(j));
      out.items.push_back({Status::OK(), std::move(one)});
      return out;
    }
    if (!docs->is_array()) return WrongType("documents", "an array of objects");
    if (docs->empty()) return Status::InvalidArgument("field 'documents' must not be empty");
    if (docs->size() > kMaxBatchDocuments) {
      return Status::InvalidArgument("at most " + std::to_string(kMaxBatchDocuments) +
                                     " documents per batch");
    }
    out.batch = true;
    for (const json& d : *docs) {
      auto item = Guarded<IngestRequest>([&] { return DecodeIngestDocumentImpl(d); });
      if (item.ok()) {
        out.items.push_back({Status::OK(), std::move(item).value()});
      } else {
        out.items.push_back({item.status(), IngestRequest{}});
      }
    }
    return out;
  });
}

Result<PageParams> DecodePageParams(const QueryParams& params) {
  PageParams p;
  std::optional<int64_t> limit, offset;
  KB_RETURN_IF_ERROR(ParamInt(params, "limit", 1, kMaxListLimit, &limit));
  KB_RETURN_IF_ERROR(ParamInt(params, "offset", 0, std::numeric_limits<int32_t>::max(), &offset));
  if (limit) p.limit = *limit;
  if (offset) p.offset = *offset;
  return p;
}

Result<ChangesParams> DecodeChangesParams(const QueryParams& params) {
  ChangesParams c;
  const std::string* since = Param(params, "since");
  if (!since || since->empty()) {
    return Status::InvalidArgument("parameter 'since' (ISO-8601 time) is required");
  }
  auto ms = ParseIso8601(*since);
  if (!ms) {
    return Status::InvalidArgument(
        "parameter 'since' must be an ISO-8601 time, e.g. "
        "2026-01-31T12:00:00Z");
  }
  c.since_ms = *ms;
  if (const std::string* p = Param(params, "project")) c.project = *p;
  std::optional<int64_t> limit;
  KB_RETURN_IF_ERROR(ParamInt(params, "limit", 1, kMaxListLimit, &limit));
  if (limit) c.limit = *limit;
  return c;
}

Result<QueryRequest> DecodeQueryBody(const json& j) {
  return Guarded<QueryRequest>([&] { return DecodeQueryBodyImpl(j); });
}

Result<QueryRequest> DecodeQueryParams(const QueryParams& params) {
  return Guarded<QueryRequest>([&] { return DecodeQueryParamsImpl(params); });
}

Result<CreateKeyRequest> DecodeCreateKey(const json& j) {
  return Guarded<CreateKeyRequest>([&] { return DecodeKeyCommon(j, /*v2=*/false); });
}

Result<int64_t> DecodeRotateKey(const std::string& body) {
  return Guarded<int64_t>([&]() -> Result<int64_t> {
    if (body.empty()) return int64_t{0};
    KB_ASSIGN_OR_RETURN(json j, ParseJsonObject(body));
    std::optional<int64_t> overlap;
    KB_RETURN_IF_ERROR(GetInt(j, "overlap_seconds", 0, kMaxRotationOverlapSeconds, &overlap));
    return overlap.value_or(0);
  });
}

Result<bool> DecodeRevokeAll(const std::string& body) {
  return Guarded<bool>([&]() -> Result<bool> {
    if (body.empty()) return false;
    KB_ASSIGN_OR_RETURN(json j, ParseJsonObject(body));
    bool include_admin = false;
    KB_RETURN_IF_ERROR(GetBool(j, "include_admin", &include_admin));
    return include_admin;
  });
}

Result<RestoreDeletedRequest> DecodeRestoreDeleted(const json& j) {
  return Guarded<RestoreDeletedRequest>([&]() -> Result<RestoreDeletedRequest> {
    KB_RETURN_IF_ERROR(RequireObject(j));
    RestoreDeletedRequest r;
    KB_RETURN_IF_ERROR(GetString(j, "project", &r.project));
    if (r.project.empty()) return Status::InvalidArgument("field 'project' is required");
    std::optional<std::string> before;
    KB_RETURN_IF_ERROR(GetOptString(j, "before", &before));
    if (before) {
      r.before_ms = ParseIso8601(*before);
      if (!r.before_ms) {
        return Status::InvalidArgument(
            "field 'before' must be an ISO-8601 time, e.g. 2026-01-31T12:00:00Z");
      }
    }
    KB_RETURN_IF_ERROR(GetStringList(j, "document_ids", &r.document_ids));
    if (r.document_ids.size() > kMaxRestoreDocumentIds) {
      return Status::InvalidArgument("field 'document_ids' holds more than " +
                                     std::to_string(kMaxRestoreDocumentIds) + " ids");
    }
    if (!r.before_ms && r.document_ids.empty()) {
      return Status::InvalidArgument("give 'before' or a non-empty 'document_ids'");
    }
    return r;
  });
}

Result<CreateKeyRequest> DecodeV2CreateKey(const json& j) {
  return Guarded<CreateKeyRequest>([&] { return DecodeKeyCommon(j, /*v2=*/true); });
}

Result<CreateProjectRequest> DecodeV2CreateProject(const json& j) {
  return Guarded<CreateProjectRequest>([&]() -> Result<CreateProjectRequest> {
    KB_RETURN_IF_ERROR(RequireObject(j));
    CreateProjectRequest r;
    bool has_name = false;
    KB_RETURN_IF_ERROR(GetString(j, "name", &r.name, &has_name));
    if (!has_name) return Status::InvalidArgument("field 'name' is required");
    KB_RETURN_IF_ERROR(ValidateProjectName(r.name));
    KB_RETURN_IF_ERROR(GetString(j, "description", &r.description));
    std::string model;
    KB_RETURN_IF_ERROR(GetString(j, "embedding_model", &model));
    KB_RETURN_IF_ERROR(ValidateLabel("embedding_model", model, 200));
    json meta = json::object();
    if (const json* m = Find(j, "metadata")) {
      if (!m->is_object()) return WrongType("metadata", "an object");
      meta = *m;
    }
    // The Python server named a sentence-transformers model; we keep what the client asked for
    // so that it reads back unchanged, and embed with the project's real embedder.
    if (!model.empty()) meta["embedding_model"] = model;
    r.metadata_json = Dump(meta);
    if (const json* e = Find(j, "embedder")) KB_RETURN_IF_ERROR(DecodeEmbedder(*e, &r.embedder));
    return r;
  });
}

Result<UpdateProjectRequest> DecodeV2UpdateProject(const json& j) {
  return Guarded<UpdateProjectRequest>([&]() -> Result<UpdateProjectRequest> {
    KB_RETURN_IF_ERROR(RequireObject(j));
    UpdateProjectRequest r;
    KB_RETURN_IF_ERROR(GetOptString(j, "name", &r.name));
    if (r.name) KB_RETURN_IF_ERROR(ValidateProjectName(*r.name));
    KB_RETURN_IF_ERROR(GetOptString(j, "description", &r.description));
    std::optional<std::string> model;
    KB_RETURN_IF_ERROR(GetOptString(j, "embedding_model", &model));
    if (const json* m = Find(j, "metadata")) {
      if (!m->is_object()) return WrongType("metadata", "an object");
      json meta = *m;
      if (model) meta["embedding_model"] = *model;
      r.metadata_json = Dump(meta);
    } else if (model) {
      r.metadata_json = Dump(json{{"embedding_model", *model}});
    }
    return r;
  });
}

Result<QueryRequest> DecodeV2Query(const json& j) {
  return Guarded<QueryRequest>([&]() -> Result<QueryRequest> {
    KB_RETURN_IF_ERROR(RequireObject(j));
    QueryRequest q;
    KB_RETURN_IF_ERROR(GetString(j, "query", &q.text));
    std::optional<int64_t> limit;
    KB_RETURN_IF_ERROR(GetInt(j, "limit", 1, kMaxTopK, &limit));
    if (limit) q.top_k = static_cast<int>(*limit);
    KB_RETURN_IF_ERROR(GetBool(j, "use_cache", &q.use_cache));
    std::string mode;
    KB_RETURN_IF_ERROR(GetString(j, "mode", &mode));
    KB_RETURN_IF_ERROR(ParseModeAndFusion(mode, "", &q, "field"));
    KB_RETURN_IF_ERROR(ValidateQuery(q));
    return q;
  });
}

Result<V2IngestRequest> DecodeV2Ingest(const json& j) {
  return Guarded<V2IngestRequest>([&]() -> Result<V2IngestRequest> {
    KB_RETURN_IF_ERROR(RequireObject(j));
    V2IngestRequest r;
    bool has_content = false, has_path = false;
    KB_RETURN_IF_ERROR(GetString(j, "content", &r.content, &has_content));
    KB_RETURN_IF_ERROR(GetString(j, "file_path", &r.file_path, &has_path));
    KB_RETURN_IF_ERROR(GetObjectAsJson(j, "metadata", &r.metadata_json));
    if (has_content == has_path) {
      return Status::InvalidArgument("give exactly one of 'content' and 'file_path'");
    }
    if (has_path && r.file_path.empty()) {
      return Status::InvalidArgument("field 'file_path' must not be empty");
    }
    return r;
  });
}

}  // namespace kb::api
