// AuditSink: where the parts of the server report what they did, for the audit log (audit.db,
// src/audit/). Defined here, below every module, so that the knowledge base (purge, restore),
// the backup service (scheduled backups) and the HTTP layer (every mutating or refused request)
// can record events without depending on how they are stored.
//
// Recording never fails the action that is being recorded: a sink that cannot write logs the
// failure and counts it (the audit module exposes that as a metric and in /health).
//
// Thread-safety: implementations must accept Record() from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kb {

struct AuditEvent {
  int64_t time_ms = 0;     // 0 = the sink stamps it with its clock
  std::string request_id;  // HTTP request id; empty for background work
  std::string actor_id;    // key id, "system" (background), "cli" (direct-mode CLI), "" (no key)
  std::string actor_name;  // key name, when known
  std::string remote;      // client address; empty for background work and the CLI
  std::string method;      // HTTP method, or "CLI" / "SYSTEM"
  std::string route;       // route pattern ("/api/v1/projects/{project}") or command name
  std::string action;      // dotted verb: "document.delete", "auth.refused", "purge", ...
  std::string project;     // project id (or the name given, when it did not resolve)
  std::vector<std::string> document_ids;
  std::string outcome;     // "ok", "refused", "failed"
  int status = 0;          // HTTP status; 0 for background work and the CLI
  std::string detail;      // short human-readable note; never a secret
};

// An event of background work done by the server itself (actor "system", method "SYSTEM"):
// `route` names the component ("backup.service", "integrity.check").
inline AuditEvent SystemAuditEvent(std::string route, std::string action, std::string project,
                                   std::string outcome, std::string detail) {
  AuditEvent e;
  e.actor_id = "system";
  e.method = "SYSTEM";
  e.route = std::move(route);
  e.action = std::move(action);
  e.project = std::move(project);
  e.outcome = std::move(outcome);
  e.detail = std::move(detail);
  return e;
}

class AuditSink {
 public:
  virtual ~AuditSink() = default;
  virtual void Record(AuditEvent event) = 0;
};

}  // namespace kb
