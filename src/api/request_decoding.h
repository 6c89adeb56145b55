// Request decoding: request bodies and query strings -> the KnowledgeBase request structs.
//
// Everything here is a pure function from text to a struct or a Status, with no server and no
// KnowledgeBase, so that the fuzz target (fuzz/fuzz_json_request.cc) and unit tests can drive it
// directly. Rules enforced here (docs/API.md "Validation"):
//  - bodies must be JSON objects, nested at most kMaxJsonDepth levels (checked by a cheap scan
//    BEFORE nlohmann parses, so a nesting bomb cannot exhaust the stack);
//  - malformed JSON and invalid UTF-8 are InvalidArgument; no exception escapes;
//  - a known field of the wrong type is InvalidArgument naming the field
//    ("field 'top_k' must be an integer"); unknown fields are ignored;
//  - ranges: top_k 1..kMaxTopK, alpha 0..1, offset >= 0, query 1..kMaxQueryBytes bytes.
//
// Thread-safety: pure functions.
#pragma once

#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "service/knowledge_base.h"
#include "store/catalog.h"

namespace kb::api {

inline constexpr int kMaxJsonDepth = 64;
inline constexpr size_t kMaxBatchDocuments = 1000;
inline constexpr int kMaxKeyExpiryDays = 3650;

// Query-string parameters as httplib gives them (a key may repeat; the first wins).
using QueryParams = std::multimap<std::string, std::string>;

// InvalidArgument if `body` nests arrays/objects deeper than `max_depth` (strings are skipped).
Status CheckJsonDepth(std::string_view body, int max_depth = kMaxJsonDepth);

// Parses a JSON object body. InvalidArgument for empty, malformed, too deep, not an object or
// ill-formed UTF-8.
Result<nlohmann::json> ParseJsonObject(std::string_view body);

// For the administrative routes whose bodies are strict (backups, containment): InvalidArgument
// naming the first member of `body` that is not in `allowed`.
Status RequireKnownFields(const nlohmann::json& body, std::initializer_list<const char*> allowed);

// --- projects ---
Result<CreateProjectRequest> DecodeCreateProject(const nlohmann::json& j);
Result<UpdateProjectRequest> DecodeUpdateProject(const nlohmann::json& j);

// --- documents ---
// One document: {"content"|"content_base64"+"content_type", "title", "source", "filename",
// "metadata"} or bring-your-own {"chunks":[{"text","embedding"}], "title", "source", "metadata"}.
Result<IngestRequest> DecodeIngestDocument(const nlohmann::json& j);

// A POST .../documents body: either one document or {"documents": [...]} (a batch). For a batch
// each item is decoded on its own so that one bad item does not fail the others.
struct DecodedIngestItem {
  Status status;  // not OK: this item failed to decode and `request` is empty
  IngestRequest request;
};
struct DecodedIngestBody {
  bool batch = false;
  std::vector<DecodedIngestItem> items;
};
Result<DecodedIngestBody> DecodeIngestBody(const nlohmann::json& j);

// --- listing ---
struct PageParams {
  int64_t limit = kDefaultListLimit;
  int64_t offset = 0;
};
Result<PageParams> DecodePageParams(const QueryParams& params);

struct ChangesParams {
  int64_t since_ms = 0;
  std::string project;  // empty = all projects
  int64_t limit = kMaxListLimit;
};
Result<ChangesParams> DecodeChangesParams(const QueryParams& params);

// --- search ---
Result<QueryRequest> DecodeQueryBody(const nlohmann::json& j);
Result<QueryRequest> DecodeQueryParams(const QueryParams& params);
// Both forms (and the v2 decoder) end with ValidateQuery (search/query.h), the one check every
// path a query takes shares.

// --- API keys ---
struct CreateKeyRequest {
  std::string name;
  KeyScope scope = KeyScope::kRead;
  std::vector<std::string> projects;  // ids or names, resolved by the route
  std::optional<int> expires_in_days;
  std::optional<int64_t> expires_at_ms;  // v1 "expires_at" (ISO-8601), instead of the days
};
// {name, scope | scopes: [...] (the widest listed wins: scopes nest), projects?,
//  expires_in_days? | expires_at?}
Result<CreateKeyRequest> DecodeCreateKey(const nlohmann::json& j);

// --- key lifecycle and soft-delete administration (docs/API.md) ---
// {overlap_seconds?: 0..kMaxRotationOverlapSeconds}; an empty body is allowed.
Result<int64_t> DecodeRotateKey(const std::string& body);
// {include_admin?: bool}; an empty body is allowed.
Result<bool> DecodeRevokeAll(const std::string& body);
// {project, before?: ISO-8601, document_ids?: [...]}: at least one of before / document_ids.
Result<RestoreDeletedRequest> DecodeRestoreDeleted(const nlohmann::json& j);

// --- the Python-compatible v2 API ---
// {name, description, embedding_model, metadata}. `embedding_model` is recorded in the project
// metadata; the embedder itself is the built-in one unless "embedder" is also given.
Result<CreateProjectRequest> DecodeV2CreateProject(const nlohmann::json& j);
Result<UpdateProjectRequest> DecodeV2UpdateProject(const nlohmann::json& j);
// {query, limit, use_cache}
Result<QueryRequest> DecodeV2Query(const nlohmann::json& j);
struct V2IngestRequest {
  std::string content;
  std::string file_path;  // relative to the ingest root
  std::string metadata_json = "{}";
};
// {content | file_path, metadata}: exactly one of content and file_path.
Result<V2IngestRequest> DecodeV2Ingest(const nlohmann::json& j);
// {name, scopes: ["read"|"write"|"admin"...] | scope, expires_days | expires_in_days}
Result<CreateKeyRequest> DecodeV2CreateKey(const nlohmann::json& j);

}  // namespace kb::api
