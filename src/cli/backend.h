// Backend: what a CLI command talks to. Commands are written once against this interface and
// work either directly on a data directory (DirectBackend: opens a KnowledgeBase in-process) or
// against a running server (RemoteBackend: the REST API of docs/API.md over HTTP).
//
// Both return the service layer's own types, so a command's output (text or --json) is the
// same whichever way it ran. Remote errors are mapped back from the API's
// {"error": {"code", "message"}} and HTTP status to the matching Status code.
//
// Why direct mode exists: init, offline bulk loads and inspection need no server. Its caveat:
// vector indexes are per-process, so direct-mode writes to a data directory that a server has
// open are not seen by that server's index until it restarts; write through --url instead.
//
// Thread-safety: one backend per command invocation; not for concurrent use.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/config.h"
#include "common/status.h"
#include "service/knowledge_base.h"

namespace kb::audit {
class AuditLog;
}  // namespace kb::audit

namespace kb::cli {

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Result<ProjectRecord> CreateProject(const CreateProjectRequest& req) = 0;
  virtual Result<ProjectRecord> GetProject(const std::string& id_or_name) = 0;
  virtual Result<std::vector<ProjectRecord>> ListProjects() = 0;
  virtual Status DeleteProject(const std::string& id_or_name) = 0;

  virtual Result<IngestResult> Ingest(const std::string& project, const IngestRequest& req) = 0;
  virtual Result<QueryResponse> Query(const std::string& project, const QueryRequest& req) = 0;
  virtual Result<KbStats> Stats() = 0;

  virtual Result<CreatedKey> CreateKey(const std::string& name, KeyScope scope,
                                       const std::vector<std::string>& projects,
                                       std::optional<int> expires_in_days) = 0;
  virtual Result<std::vector<ApiKeyRecord>> ListKeys() = 0;
  virtual Status RevokeKey(const std::string& key_id) = 0;
  virtual Result<CreatedKey> RotateKey(const std::string& key_id, int64_t overlap_seconds) = 0;
  // Remote: every key but the one the CLI authenticates with (or all, with include_admin).
  // Direct: include_admin is required (KnowledgeBase::RevokeAllKeys).
  virtual Result<RevokeAllResult> RevokeAllKeys(bool include_admin) = 0;
  virtual Status ReinstateKey(const std::string& key_id) = 0;

  // Soft-delete administration.
  virtual Result<RestoreDeletedReport> RestoreDeleted(const RestoreDeletedRequest& req) = 0;
  virtual Result<DeletedListing> ListDeleted(const std::string& project, int64_t limit,
                                             int64_t offset) = 0;
  // Direct mode only: the server purges on its own every purge_interval.
  virtual Result<PurgeReport> Purge(bool dry_run) = 0;

  // Saves indexes (direct mode); a no-op remotely. Also done on destruction.
  virtual void Close() {}
};

// KbOptions for a data directory from the configuration (shared by serve and direct mode).
KbOptions MakeKbOptions(const Config& config);

// Opens the data directory named by config.data_dir, creating it if needed.
Result<std::unique_ptr<Backend>> OpenDirectBackend(const Config& config);

// A client for config.url (validated by LoadConfig) with config.api_key. Connection errors
// surface on the first call as Unavailable.
Result<std::unique_ptr<Backend>> OpenRemoteBackend(const Config& config);

// The data directory's audit log for a direct-mode command (appends only; retention is the
// server's). Null, with a warning on stderr, if it cannot be opened: the command still runs.
std::unique_ptr<audit::AuditLog> OpenCliAuditLog(const std::string& data_dir);

// Records one event of a direct-mode command that changed `data_dir` outside a Backend (e.g.
// `restore`) in its audit log, as actor "cli" with method "CLI". A log that cannot be opened is
// reported on stderr; it never fails the command.
void RecordCliAudit(const std::string& data_dir, AuditEvent event);

// Remote if config.url is set, else direct.
Result<std::unique_ptr<Backend>> OpenBackend(const Config& config);

}  // namespace kb::cli
