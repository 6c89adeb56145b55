// DirectBackend: CLI commands run in-process on a data directory (see backend.h for when that
// is appropriate). Each call is one KnowledgeBase call acting as "cli"; each call that changes
// the data directory is recorded in its audit log (actor "cli", method "CLI").
#include <filesystem>
#include <iostream>
#include <utility>

#include "audit/audit_log.h"
#include "cli/backend.h"
#include "common/data_layout.h"
#include "common/file_util.h"

namespace kb::cli {

std::unique_ptr<audit::AuditLog> OpenCliAuditLog(const std::string& data_dir) {
  const std::string path = layout::AuditDb(data_dir);
  // Retention is the server's job (it knows audit_retention); a CLI command only appends.
  audit::AuditLogOptions options;
  options.retention_ms = 0;
  auto log = audit::AuditLog::Open(path, nullptr, options);
  if (!log.ok()) {
    std::cerr << "warning: this command is not recorded in the audit log: "
              << log.status().ToString() << "\n";
    return nullptr;
  }
  return std::move(log).value();
}

namespace {

AuditEvent CliEvent(const std::string& command, const std::string& action, const Status& status) {
  AuditEvent e;
  e.actor_id = "cli";
  e.actor_name = "cli";
  e.method = "CLI";
  e.route = command;
  e.action = action;
  e.outcome = status.ok() ? "ok" : "failed";
  if (!status.ok()) e.detail = status.ToString();
  return e;
}

// A key operation: the key's id in the detail, never a secret.
AuditEvent KeyEvent(const std::string& command, const std::string& action, const Status& status,
                    const std::string& key_id) {
  AuditEvent e = CliEvent(command, action, status);
  e.detail += (e.detail.empty() ? "" : "; ") + std::string("id=") + key_id;
  return e;
}

class DirectBackend final : public Backend {
 public:
  DirectBackend(std::unique_ptr<audit::AuditLog> audit, std::unique_ptr<KnowledgeBase> kb)
      : audit_(std::move(audit)), kb_(std::move(kb)) {}
  ~DirectBackend() override { Close(); }

  Result<ProjectRecord> CreateProject(const CreateProjectRequest& req) override {
    auto r = kb_->CreateProject(req, actor_);
    AuditEvent e = CliEvent("projects create", "project.create", r.status());
    e.project = r.ok() ? r->id : req.name;
    Audit(std::move(e));
    return r;
  }
  Result<ProjectRecord> GetProject(const std::string& id_or_name) override {
    return kb_->GetProject(id_or_name);
  }
  Result<std::vector<ProjectRecord>> ListProjects() override { return kb_->ListProjects(); }
  Status DeleteProject(const std::string& id_or_name) override {
    auto project = kb_->GetProject(id_or_name);
    Status s = kb_->DeleteProject(id_or_name, actor_);
    AuditEvent e = CliEvent("projects delete", "project.delete", s);
    e.project = project.ok() ? project->id : id_or_name;
    Audit(std::move(e));
    return s;
  }
  Result<IngestResult> Ingest(const std::string& project, const IngestRequest& req) override {
    auto r = kb_->Ingest(project, req, actor_);
    AuditEvent e = CliEvent("ingest", "document.create", r.status());
    auto p = kb_->GetProject(project);
    e.project = p.ok() ? p->id : project;
    if (r.ok()) e.document_ids.push_back(r->document.id);
    e.detail += (e.detail.empty() ? "" : "; ") + req.filename;
    Audit(std::move(e));
    return r;
  }
  Result<QueryResponse> Query(const std::string& project, const QueryRequest& req) override {
    return kb_->Query(project, req);
  }
  Result<KbStats> Stats() override { return kb_->Stats(); }
  Result<CreatedKey> CreateKey(const std::string& name, KeyScope scope,
                               const std::vector<std::string>& projects,
                               std::optional<int> expires_in_days) override {
    auto r = kb_->keys().CreateKey(name, scope, projects, expires_in_days, actor_);
    AuditEvent e = CliEvent("keys create", "apikey.create", r.status());
    // The new key's id and name, never its secret.
    e.detail += (e.detail.empty() ? "" : "; ") + std::string("name=") + name +
                (r.ok() ? " id=" + r->record.id : "");
    Audit(std::move(e));
    return r;
  }
  Result<std::vector<ApiKeyRecord>> ListKeys() override { return kb_->keys().ListKeys(); }
  Status RevokeKey(const std::string& key_id) override {
    Status s = kb_->keys().RevokeKey(key_id, actor_);
    Audit(KeyEvent("keys revoke", "apikey.revoke", s, key_id));
    return s;
  }
  Result<CreatedKey> RotateKey(const std::string& key_id, int64_t overlap_seconds) override {
    auto r = kb_->keys().RotateKey(key_id, overlap_seconds, actor_);
    AuditEvent e = KeyEvent("keys rotate", "apikey.rotate", r.status(), key_id);
    e.detail += " overlap_seconds=" + std::to_string(overlap_seconds);
    Audit(std::move(e));
    return r;
  }
  Result<RevokeAllResult> RevokeAllKeys(bool include_admin) override {
    auto r = kb_->keys().RevokeAllKeys("", include_admin, actor_);
    AuditEvent e = CliEvent("keys revoke-all", "apikey.revoke-all", r.status());
    if (r.ok()) {
      e.detail = "revoked " + std::to_string(r->revoked.size()) + " key(s)" +
                 (r->new_admin ? "; new admin key " + r->new_admin->record.id : "");
    }
    Audit(std::move(e));
    return r;
  }
  Status ReinstateKey(const std::string& key_id) override {
    Status s = kb_->keys().ReinstateKey(key_id, actor_);
    Audit(KeyEvent("keys reinstate", "apikey.reinstate", s, key_id));
    return s;
  }
  Result<RestoreDeletedReport> RestoreDeleted(const RestoreDeletedRequest& req) override {
    auto r = kb_->RestoreDeleted(req, actor_);
    AuditEvent e = CliEvent("undelete", "undelete", r.status());
    e.project = r.ok() ? r->project_id : req.project;
    if (r.ok()) {
      e.document_ids = r->restored_documents;
      e.detail = std::string(r->project_restored ? "project restored; " : "") +
                 std::to_string(r->restored_documents.size()) + " document(s) restored, " +
                 std::to_string(r->skipped.size()) + " skipped";
    }
    Audit(std::move(e));
    return r;
  }
  Result<DeletedListing> ListDeleted(const std::string& project, int64_t limit,
                                     int64_t offset) override {
    return kb_->ListDeleted(project, limit, offset);
  }
  Result<PurgeReport> Purge(bool dry_run) override {
    auto r = kb_->Purge(dry_run, actor_);
    if (dry_run) return r;  // changes nothing: not recorded
    AuditEvent e = CliEvent("purge", "purge", r.status());
    if (r.ok()) {
      for (const PurgedItem& d : r->documents) e.document_ids.push_back(d.document_id);
      e.detail = std::to_string(r->projects.size()) + " project(s), " +
                 std::to_string(r->documents.size()) + " document(s) purged";
      if (!r->problems.empty()) e.outcome = "failed";
    }
    Audit(std::move(e));
    return r;
  }
  void Close() override {
    kb_->Close();
    if (audit_) audit_->Close();
  }

 private:
  void Audit(AuditEvent e) {
    if (audit_) audit_->Record(std::move(e));
  }

  std::unique_ptr<audit::AuditLog> audit_;  // outlives kb_, which may record to it
  std::unique_ptr<KnowledgeBase> kb_;
  const Actor actor_{"cli", "cli"};
};

}  // namespace

void RecordCliAudit(const std::string& data_dir, AuditEvent event) {
  std::unique_ptr<audit::AuditLog> log = OpenCliAuditLog(data_dir);
  if (!log) return;
  event.actor_id = "cli";
  event.actor_name = "cli";
  event.method = "CLI";
  log->Record(std::move(event));
  log->Close();
}

KbOptions MakeKbOptions(const Config& config) {
  KbOptions options;
  options.data_dir = config.data_dir;
  options.ingest_root = config.ingest_root;
  if (config.max_document_bytes) options.max_document_bytes = *config.max_document_bytes;
  if (config.deletion_grace_period_ms) {
    options.deletion_grace_period_ms = *config.deletion_grace_period_ms;
  }
  return options;
}

Result<std::unique_ptr<Backend>> OpenDirectBackend(const Config& config) {
  KbOptions options = MakeKbOptions(config);
  KB_RETURN_IF_ERROR(MakeDirs(config.data_dir));
  // Opened first so that the knowledge base can record its own actions (KbOptions::audit).
  std::unique_ptr<audit::AuditLog> audit = OpenCliAuditLog(config.data_dir);
  options.audit = audit.get();
  KB_ASSIGN_OR_RETURN(std::unique_ptr<KnowledgeBase> kb, KnowledgeBase::Open(options));
  return std::unique_ptr<Backend>(std::make_unique<DirectBackend>(std::move(audit), std::move(kb)));
}

Result<std::unique_ptr<Backend>> OpenBackend(const Config& config) {
  if (!config.url.empty()) return OpenRemoteBackend(config);
  return OpenDirectBackend(config);
}

}  // namespace kb::cli
