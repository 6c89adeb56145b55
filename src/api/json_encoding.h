// Response encoding: KnowledgeBase records -> the JSON shapes documented in docs/API.md.
//
// Kept apart from the routes so that v1 and v2 shapes are each defined once, and so that every
// time is formatted the same way (ISO-8601 UTC with Z, kb::FormatIso8601).
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "service/knowledge_base.h"
#include "repo/repository.h"

namespace kb::api {

// Parses stored JSON text (metadata, embedder spec); anything unparsable becomes {}.
nlohmann::json ParseStoredJson(const std::string& text);
// Serialises for the wire; ill-formed UTF-8 from storage is replaced, never thrown on.
std::string DumpJson(const nlohmann::json& j);

std::string_view OutcomeName(PutOutcome outcome);

nlohmann::json EncodeProject(const ProjectRecord& p);
nlohmann::json EncodeDocument(const DocumentRecord& d);
nlohmann::json EncodeHit(const QueryHit& h);
nlohmann::json EncodeQueryResponse(const QueryRequest& req, const QueryResponse& resp);
nlohmann::json EncodeKey(const ApiKeyRecord& k);
// Soft-delete administration (docs/API.md): records with deleted_at/deleted_by, the restore
// report, the purge report (CLI --json).
nlohmann::json EncodeDeletedProject(const ProjectRecord& p);
nlohmann::json EncodeDeletedDocument(const DocumentRecord& d);
nlohmann::json EncodeRestoreDeletedReport(const RestoreDeletedReport& r);
nlohmann::json EncodePurgeReport(const PurgeReport& r);
nlohmann::json EncodeStats(const KbStats& s);
// A row of the snapshot list, and a whole snapshot's summary (docs/API.md "Backups").
nlohmann::json EncodeSnapshotSummary(const repo::SnapshotSummary& s);
nlohmann::json EncodeSnapshot(const repo::SnapshotManifest& m);
// /health's "integrity" object; null before the first check.
nlohmann::json EncodeIntegritySummary(const std::optional<IntegritySummary>& s);

// The Python-compatible v2 shapes.
nlohmann::json EncodeV2Project(const ProjectRecord& p);
nlohmann::json EncodeV2Hit(const QueryHit& h);
nlohmann::json EncodeV2Key(const ApiKeyRecord& k, const std::string& project_id);

}  // namespace kb::api
