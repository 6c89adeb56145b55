// Response encoding (see json_encoding.h).
#include "api/json_encoding.h"

#include "common/clock.h"

namespace kb::api {

using nlohmann::json;

namespace {
json OptTime(const std::optional<int64_t>& ms) {
  return ms ? json(FormatIso8601(*ms)) : json(nullptr);
}
}  // namespace

json ParseStoredJson(const std::string& text) {
  if (text.empty()) return json::object();
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json::object() : j;
}

std::string DumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string_view OutcomeName(PutOutcome outcome) {
  switch (outcome) {
    case PutOutcome::kCreated:
      return "created";
    case PutOutcome::kReplaced:
      return "replaced";
    case PutOutcome::kUnchanged:
      return "unchanged";
  }
  return "created";
}

json EncodeProject(const ProjectRecord& p) {
  return {{"id", p.id},
          {"name", p.name},
          {"description", p.description},
          {"metadata", ParseStoredJson(p.metadata_json)},
          {"embedder", ParseStoredJson(p.embedder_spec_json)},
          {"embedder_name", p.embedder_name},
          {"embedding_dimension", p.embedding_dimension},
          {"chunk_size", p.chunk_size},
          {"chunk_overlap", p.chunk_overlap},
          {"created_at", FormatIso8601(p.created_at_ms)},
          {"updated_at", FormatIso8601(p.updated_at_ms)}};
}

json EncodeDocument(const DocumentRecord& d) {
  return {{"id", d.id},
          {"title", d.title},
          {"source", d.source},
          {"content_type", d.content_type},
          {"content_hash", d.content_hash},
          {"metadata", ParseStoredJson(d.metadata_json)},
          {"chunk_count", d.chunk_count},
          {"bytes", d.bytes},
          {"created_at", FormatIso8601(d.created_at_ms)},
          {"updated_at", FormatIso8601(d.updated_at_ms)}};
}

json EncodeHit(const QueryHit& h) {
  return {{"document_id", h.document_id},
          {"chunk_id", h.chunk_id},
          {"title", h.title},
          {"source", h.source},
          {"text", h.text},
          {"heading_path", h.heading_path},
          {"score", h.score},
          {"vector_score", h.vector_score ? json(*h.vector_score) : json(nullptr)},
          {"keyword_score", h.keyword_score ? json(*h.keyword_score) : json(nullptr)},
          {"rank", h.rank},
          {"metadata", ParseStoredJson(h.metadata_json)}};
}

json EncodeQueryResponse(const QueryRequest& req, const QueryResponse& resp) {
  json results = json::array();
  for (const QueryHit& h : resp.hits) results.push_back(EncodeHit(h));
  return {{"results", std::move(results)},
          {"count", resp.hits.size()},
          {"took_ms", resp.took_ms},
          {"mode", std::string(SearchModeName(req.mode))},
          {"query", req.text},
          {"top_k", req.top_k},
          {"offset", req.offset},
          {"cached", resp.cached}};
}

json EncodeKey(const ApiKeyRecord& k) {
  return {{"id", k.id},
          {"name", k.name},
          {"scope", std::string(KeyScopeName(k.scope))},
          {"projects", k.projects},
          {"created_by", k.created_by},
          {"created_at", FormatIso8601(k.created_at_ms)},
          {"expires_at", OptTime(k.expires_at_ms)},
          {"revoked_at", OptTime(k.revoked_at_ms)},
          {"revoked_reason", k.revoked_at_ms ? json(k.revoked_reason) : json(nullptr)},
          {"last_used_at", OptTime(k.last_used_at_ms)},
          {"rotated_at", OptTime(k.rotated_at_ms)},
          {"previous_secret_expires_at", OptTime(k.previous_expires_at_ms)}};
}

json EncodeDeletedProject(const ProjectRecord& p) {
  json j = EncodeProject(p);
  j["deleted_at"] = OptTime(p.deleted_at_ms);
  j["deleted_by"] = p.deleted_by;
  return j;
}

json EncodeDeletedDocument(const DocumentRecord& d) {
  json j = EncodeDocument(d);
  j["deleted_at"] = OptTime(d.deleted_at_ms);
  j["deleted_by"] = d.deleted_by;
  return j;
}

json EncodeRestoreDeletedReport(const RestoreDeletedReport& r) {
  json skipped = json::array();
  for (const RestoreSkip& s : r.skipped) {
    skipped.push_back({{"id", s.id}, {"reason", s.reason}, {"detail", s.detail}});
  }
  return {{"project", {{"id", r.project_id}, {"name", r.project_name}}},
          {"project_restored", r.project_restored},
          {"restored", {{"documents", r.restored_documents}}},
          {"counts",
           {{"projects", r.project_restored ? 1 : 0},
            {"documents", r.restored_documents.size()},
            {"skipped", r.skipped.size()}}},
          {"skipped", std::move(skipped)}};
}

json EncodePurgeReport(const PurgeReport& r) {
  auto item = [](const PurgedItem& i) {
    json j = {{"project_id", i.project_id},
              {"project_name", i.project_name},
              {"deleted_at", FormatIso8601(i.deleted_at_ms)},
              {"deleted_by", i.deleted_by}};
    if (!i.document_id.empty()) j["document_id"] = i.document_id;
    return j;
  };
  json projects = json::array(), documents = json::array();
  for (const auto& p : r.projects) projects.push_back(item(p));
  for (const auto& d : r.documents) documents.push_back(item(d));
  return {{"dry_run", r.dry_run},
          {"cutoff", FormatIso8601(r.cutoff_ms)},
          {"projects", std::move(projects)},
          {"documents", std::move(documents)},
          {"problems", r.problems}};
}

json EncodeStats(const KbStats& s) {
  json per = json::array();
  for (const ProjectStats& p : s.per_project) {
    per.push_back({{"id", p.project.id},
                   {"name", p.project.name},
                   {"documents", p.counts.documents},
                   {"chunks", p.counts.chunks},
                   {"content_bytes", p.counts.content_bytes},
                   {"deleted_documents", p.counts.deleted_documents},
                   {"index_vectors", p.index_vectors},
                   {"index_memory_bytes", p.index_memory_bytes},
                   {"index_lsn", p.index_lsn},
                   {"journal_lsn", p.journal_lsn},
                   {"disk_bytes", p.disk_bytes}});
  }
  return {{"projects", s.projects},       {"documents", s.documents},
          {"chunks", s.chunks},           {"content_bytes", s.content_bytes},
          {"disk_bytes", s.disk_bytes},   {"uptime_seconds", s.uptime_seconds},
          {"per_project", std::move(per)}};
}

json EncodeSnapshotSummary(const repo::SnapshotSummary& s) {
  json j = {{"id", s.id},
            {"time", s.time},
            {"trigger", s.trigger},
            {"scope", s.scope},
            {"projects", s.projects},
            {"bytes", s.bytes},
            {"added_bytes", s.added_stored_bytes},
            {"verified", s.verified.empty() ? json(nullptr) : json(s.verified)},
            {"source_check_failed", s.source_check_failed}};
  if (!s.problem.empty()) j["problem"] = s.problem;
  return j;
}

json EncodeSnapshot(const repo::SnapshotManifest& m) {
  json projects = json::array();
  for (const auto& p : m.projects) {
    json entry = {{"id", p.id},
                  {"name", p.name},
                  {"lsn", p.lsn},
                  {"deleted", p.deleted},
                  {"counts", p.counts}};
    if (p.source_check.recorded()) {
      entry["source_check"] = {{"result", p.source_check.result},
                               {"checks", p.source_check.checks},
                               {"problems", p.source_check.problems},
                               {"duration_ms", p.source_check.duration_ms}};
    }
    projects.push_back(std::move(entry));
  }
  return {{"id", m.id},
          {"time", m.time},
          {"finished", m.finished},
          {"trigger", m.trigger},
          {"scope", m.scope},
          {"tags", m.tags},
          {"projects", projects},
          {"stats",
           {{"files", m.stats.files},
            {"bytes", m.stats.bytes},
            {"chunks", m.stats.chunks},
            {"new_chunks", m.stats.new_chunks},
            {"added_bytes", m.stats.added_bytes},
            {"added_stored_bytes", m.stats.added_stored_bytes},
            {"duration_ms", m.stats.duration_ms}}}};
}

json EncodeIntegritySummary(const std::optional<IntegritySummary>& s) {
  if (!s) return nullptr;
  return {{"status", std::string(CheckSeverityName(s->status))},
          {"checked_at", FormatIso8601(s->finished_at_ms)},
          {"duration_ms", s->duration_ms},
          {"problems", s->problems},
          {"repaired", s->repaired},
          {"last_success_at",
           s->last_success_at_ms ? json(FormatIso8601(*s->last_success_at_ms)) : json()}};
}

json EncodeV2Project(const ProjectRecord& p) {
  json meta = ParseStoredJson(p.metadata_json);
  std::string model = p.embedder_name;
  if (meta.is_object() && meta.contains("embedding_model") && meta["embedding_model"].is_string()) {
    model = meta["embedding_model"].get<std::string>();
  }
  return {{"project_id", p.id},
          {"name", p.name},
          {"description", p.description},
          {"embedding_model", model},
          {"collection_name", "kb_project_" + p.id},
          {"created_at", FormatIso8601(p.created_at_ms)},
          {"updated_at", FormatIso8601(p.updated_at_ms)},
          {"metadata", std::move(meta)}};
}

json EncodeV2Hit(const QueryHit& h) {
  json meta = ParseStoredJson(h.metadata_json);
  return {{"doc_id", h.document_id},    {"chunk_id", h.chunk_id}, {"content", h.text},
          {"title", h.title},           {"source", h.source},     {"score", h.score},
          {"metadata", std::move(meta)}};
}

json EncodeV2Key(const ApiKeyRecord& k, const std::string& project_id) {
  json scopes = json::array();
  // Scopes nest (read ⊂ write ⊂ admin); v2 clients expect the list of what the key may do.
  for (KeyScope s : {KeyScope::kRead, KeyScope::kWrite, KeyScope::kAdmin}) {
    if (static_cast<int>(s) <= static_cast<int>(k.scope)) scopes.push_back(KeyScopeName(s));
  }
  return {{"key_id", k.id},
          {"name", k.name},
          {"project_id", project_id},
          {"scopes", std::move(scopes)},
          {"created_at", FormatIso8601(k.created_at_ms)},
          {"expires_at", OptTime(k.expires_at_ms)},
          {"last_used_at", OptTime(k.last_used_at_ms)},
          {"revoked", k.revoked_at_ms.has_value()}};
}

}  // namespace kb::api
