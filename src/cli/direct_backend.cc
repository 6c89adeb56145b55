// DirectBackend: CLI commands run in-process on a data directory (see backend.h for when that
// is appropriate). Each call is one KnowledgeBase call acting as "cli".
#include <utility>

#include "cli/backend.h"

namespace kb::cli {
namespace {

class DirectBackend final : public Backend {
 public:
  explicit DirectBackend(std::unique_ptr<KnowledgeBase> kb) : kb_(std::move(kb)) {}
  ~DirectBackend() override { Close(); }

  Result<ProjectRecord> CreateProject(const CreateProjectRequest& req) override {
    return kb_->CreateProject(req, actor_);
  }
  Result<ProjectRecord> GetProject(const std::string& id_or_name) override {
    return kb_->GetProject(id_or_name);
  }
  Result<std::vector<ProjectRecord>> ListProjects() override { return kb_->ListProjects(); }
  Status DeleteProject(const std::string& id_or_name) override {
    return kb_->DeleteProject(id_or_name, actor_);
  }
  Result<IngestResult> Ingest(const std::string& project, const IngestRequest& req) override {
    return kb_->Ingest(project, req, actor_);
  }
  Result<QueryResponse> Query(const std::string& project, const QueryRequest& req) override {
    return kb_->Query(project, req);
  }
  Result<KbStats> Stats() override { return kb_->Stats(); }
  Result<CreatedKey> CreateKey(const std::string& name, KeyScope scope,
                               const std::vector<std::string>& projects,
                               std::optional<int> expires_in_days) override {
    return kb_->CreateKey(name, scope, projects, expires_in_days, actor_);
  }
  Result<std::vector<ApiKeyRecord>> ListKeys() override { return kb_->ListKeys(); }
  Status RevokeKey(const std::string& key_id) override { return kb_->RevokeKey(key_id, actor_); }
  Result<CreatedKey> RotateKey(const std::string& key_id, int64_t overlap_seconds) override {
    return kb_->RotateKey(key_id, overlap_seconds, actor_);
  }
  Result<RevokeAllResult> RevokeAllKeys(bool include_admin) override {
    return kb_->RevokeAllKeys("", include_admin, actor_);
  }
  Status ReinstateKey(const std::string& key_id) override {
    return kb_->ReinstateKey(key_id, actor_);
  }
  Result<RestoreDeletedReport> RestoreDeleted(const RestoreDeletedRequest& req) override {
    return kb_->RestoreDeleted(req, actor_);
  }
  Result<DeletedListing> ListDeleted(const std::string& project, int64_t limit,
                                     int64_t offset) override {
    return kb_->ListDeleted(project, limit, offset);
  }
  Result<PurgeReport> Purge(bool dry_run) override { return kb_->Purge(dry_run, actor_); }
  void Close() override { kb_->Close(); }

 private:
  std::unique_ptr<KnowledgeBase> kb_;
  const Actor actor_{"cli", "cli"};
};

}  // namespace

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
  KB_ASSIGN_OR_RETURN(std::unique_ptr<KnowledgeBase> kb,
                      KnowledgeBase::Open(MakeKbOptions(config)));
  return std::unique_ptr<Backend>(std::make_unique<DirectBackend>(std::move(kb)));
}

Result<std::unique_ptr<Backend>> OpenBackend(const Config& config) {
  if (!config.url.empty()) return OpenRemoteBackend(config);
  return OpenDirectBackend(config);
}

}  // namespace kb::cli
