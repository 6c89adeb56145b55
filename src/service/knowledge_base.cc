// The facade of the service layer: see knowledge_base.h for the contract and the rooms.
#include "service/knowledge_base.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/crypto_util.h"
#include "common/data_layout.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/text_util.h"
#include "search/hybrid_search.h"
#include "search/metadata_filter.h"
#include "service/index_maintenance.h"
#include "service/ingest_pipeline.h"
#include "service/key_service.h"
#include "service/lifecycle.h"
#include "service/project_handle.h"
#include "service/project_registry.h"

namespace kb {

using nlohmann::json;

KnowledgeBase::KnowledgeBase(const KbOptions& options)
    : options_(options), clock_(options.clock ? options.clock : SystemClock::Default()) {}

KnowledgeBase::~KnowledgeBase() { Close(); }

void KnowledgeBase::BuildRooms() {
  registry_ = std::make_unique<ProjectRegistry>(options_, clock_, catalog_.get(), &counters_);
  keys_ = std::make_unique<KeyService>(catalog_.get(), clock_,
                                       [this](const std::string& p) -> Result<std::string> {
                                         KB_ASSIGN_OR_RETURN(auto h, registry_->Find(p));
                                         return h->Record().id;
                                       });
  ingest_ = std::make_unique<IngestPipeline>(options_, &counters_);
  maintenance_ =
      std::make_unique<IndexMaintenance>(options_, clock_, registry_.get(), &counters_, &stop_);
  lifecycle_ = std::make_unique<SoftDeleteLifecycle>(options_, clock_, catalog_.get(),
                                                     registry_.get(), maintenance_.get(), &stop_);
}

Result<std::unique_ptr<KnowledgeBase>> KnowledgeBase::Open(const KbOptions& options) {
  std::unique_ptr<KnowledgeBase> kb(new KnowledgeBase(options));
  kb->started_at_ms_ = kb->clock_->NowMillis();
  if (PathExists(layout::RestoreMarker(options.data_dir))) {
    return Status::FailedPrecondition(
        "data directory " + options.data_dir + " holds a restore that did not finish (" +
        layout::kRestoreMarkerName +
        " is present); run `knowledgebeast restore` again — the data it "
        "replaced was moved aside, not deleted");
  }
  KB_RETURN_IF_ERROR(MakeDirs(options.data_dir));
  KB_RETURN_IF_ERROR(MakeDirs(layout::ProjectsDir(options.data_dir)));
  KB_ASSIGN_OR_RETURN(kb->catalog_, Catalog::Open(layout::CatalogDb(options.data_dir), kb->clock_));
  kb->BuildRooms();
  KB_RETURN_IF_ERROR(kb->registry_->LoadAll(&kb->load_problems_));
  kb->ready_ = kb->load_problems_.empty();
  kb->maintenance_->Start();
  kb->lifecycle_->Start();
  return kb;
}

void KnowledgeBase::Close() {
  if (!stop_.Stop()) return;
  if (maintenance_) {
    lifecycle_->Join();
    maintenance_->Join();
    maintenance_->SaveAll();
  }
  ready_ = false;
}

// ---------------------------------------------------------------------------------------------
// Projects

Result<ProjectRecord> KnowledgeBase::CreateProject(const CreateProjectRequest& req,
                                                   const Actor& actor) {
  KB_RETURN_IF_ERROR(ValidateProjectName(req.name));
  KB_RETURN_IF_ERROR(ValidateDescription(req.description));
  KB_RETURN_IF_ERROR(ValidateMetadata(req.metadata_json));
  if (req.chunk_size && *req.chunk_size <= 0) {
    return Status::InvalidArgument("chunk_size must be positive");
  }
  if (req.chunk_overlap && *req.chunk_overlap < 0) {
    return Status::InvalidArgument("chunk_overlap must not be negative");
  }
  ChunkOptions chunking = options_.chunking;
  if (req.chunk_size) chunking.target_chars = static_cast<size_t>(*req.chunk_size);
  if (req.chunk_overlap) chunking.overlap_chars = static_cast<size_t>(*req.chunk_overlap);
  KB_RETURN_IF_ERROR(ValidateChunkOptions(chunking));
  KB_ASSIGN_OR_RETURN(auto embedder, MakeEmbedder(req.embedder));

  if (registry_->NameTaken(req.name)) {
    return Status::AlreadyExists("project '" + req.name + "' already exists");
  }

  ProjectRecord r;
  r.id = NewUuid();
  r.name = req.name;
  r.description = req.description;
  r.metadata_json = CanonicalJson(req.metadata_json);
  r.embedder_spec_json = req.embedder.ToJson();
  r.embedder_name = embedder->Name();
  r.embedding_dimension = embedder->Dimension();
  r.embedder_fingerprint = embedder->Fingerprint();
  r.chunk_size = static_cast<int>(chunking.target_chars);
  r.chunk_overlap = static_cast<int>(chunking.overlap_chars);
  r.created_at_ms = r.updated_at_ms = clock_->NowMillis();

  // The project's files first, then the catalog row that makes it visible: a crash in between
  // leaves an unreferenced directory, never a project without a database.
  KB_ASSIGN_OR_RETURN(auto handle, registry_->OpenHandle(r, /*loading=*/false));
  Status s = catalog_->CreateProject(r);
  if (!s.ok()) {
    std::error_code ec;
    handle.reset();
    std::filesystem::remove_all(layout::ProjectDir(options_.data_dir, r.id), ec);
    return s;
  }
  registry_->Put(r.id, handle);
  LogInfo("project created", json{{"project", r.id}, {"name", r.name}, {"actor", actor.id}}.dump());
  return r;
}

Result<ProjectRecord> KnowledgeBase::GetProject(const std::string& id_or_name) {
  KB_ASSIGN_OR_RETURN(auto h, registry_->Find(id_or_name));
  return h->Record();
}

Result<std::vector<ProjectRecord>> KnowledgeBase::ListProjects() {
  std::vector<ProjectRecord> out;
  for (auto& h : registry_->All()) out.push_back(h->Record());
  std::sort(out.begin(), out.end(), [](const ProjectRecord& a, const ProjectRecord& b) {
    if (a.created_at_ms != b.created_at_ms) return a.created_at_ms < b.created_at_ms;
    return a.id < b.id;
  });
  return out;
}

Result<ProjectRecord> KnowledgeBase::UpdateProject(const std::string& id_or_name,
                                                   const UpdateProjectRequest& req,
                                                   const Actor& actor) {
  KB_ASSIGN_OR_RETURN(auto h, registry_->Find(id_or_name));
  if (req.name) KB_RETURN_IF_ERROR(ValidateProjectName(*req.name));
  if (req.description) KB_RETURN_IF_ERROR(ValidateDescription(*req.description));
  if (req.metadata_json) KB_RETURN_IF_ERROR(ValidateMetadata(*req.metadata_json));
  MutexLock lock(h->record_mu);
  ProjectRecord r = h->record;
  if (req.name) r.name = *req.name;
  if (req.description) r.description = *req.description;
  if (req.metadata_json) r.metadata_json = CanonicalJson(*req.metadata_json);
  r.updated_at_ms = clock_->NowMillis();
  KB_RETURN_IF_ERROR(catalog_->UpdateProject(r));
  h->record = r;
  LogInfo("project updated", json{{"project", r.id}, {"actor", actor.id}}.dump());
  return r;
}

Status KnowledgeBase::DeleteProject(const std::string& id_or_name, const Actor& actor) {
  KB_ASSIGN_OR_RETURN(auto h, registry_->Find(id_or_name));
  ProjectRecord r = h->Record();
  std::vector<std::string> revoked;
  KB_RETURN_IF_ERROR(catalog_->MarkProjectDeleted(r.id, actor.id, clock_->NowMillis(), &revoked));
  registry_->Remove(r.id);
  Status s = maintenance_->SaveIndex(*h);
  if (!s.ok()) LogWarn("saving vector index failed", json{{"error", s.ToString()}}.dump());
  LogInfo("project deleted",
          json{{"project", r.id}, {"actor", actor.id}, {"revoked_keys", revoked}}.dump());
  return Status::OK();
}

Status KnowledgeBase::ReplaceProject(const ProjectRecord& record, const std::string& staged_dir,
                                     const std::string& aside_dir, const Actor& actor) {
  KB_RETURN_IF_ERROR(registry_->ReplaceProject(record, staged_dir, aside_dir));
  LogInfo("project replaced by restore",
          json{{"project", record.id}, {"actor", actor.id}, {"aside", aside_dir}}.dump());
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Soft delete lifecycle (service/lifecycle.h)

Result<PurgeReport> KnowledgeBase::Purge(bool dry_run, const Actor& actor) {
  return lifecycle_->Purge(dry_run, actor);
}

Result<RestoreDeletedReport> KnowledgeBase::RestoreDeleted(const RestoreDeletedRequest& req,
                                                           const Actor& actor) {
  return lifecycle_->RestoreDeleted(req, actor);
}

Result<DeletedListing> KnowledgeBase::ListDeleted(const std::string& project, int64_t limit,
                                                  int64_t offset) {
  return lifecycle_->ListDeleted(project, limit, offset);
}

// ---------------------------------------------------------------------------------------------
// Documents (the pipeline: service/ingest_pipeline.h)

Result<IngestResult> KnowledgeBase::Ingest(const std::string& project, const IngestRequest& req,
                                           const Actor& actor) {
  Result<IngestResult> r = IngestImpl(project, req, actor);
  if (!r.ok()) counters_.ingest_failures++;
  return r;
}

Result<IngestResult> KnowledgeBase::IngestImpl(const std::string& project, const IngestRequest& req,
                                               const Actor& actor) {
  KB_ASSIGN_OR_RETURN(auto h, registry_->Find(project));
  return ingest_->Ingest(*h, req, actor);
}

Result<IngestResult> KnowledgeBase::IngestFile(const std::string& project,
                                               const std::string& relative_path,
                                               const std::string& metadata_json,
                                               const Actor& actor) {
  KB_ASSIGN_OR_RETURN(IngestRequest req, ingest_->ReadIngestFile(relative_path, metadata_json));
  return Ingest(project, req, actor);
}

Result<DocumentRecord> KnowledgeBase::GetDocument(const std::string& project,
                                                  const std::string& document_id) {
  KB_ASSIGN_OR_RETURN(auto h, registry_->Find(project));
  return h->store->GetDocument(document_id);
}

Result<std::vector<ChunkRecord>> KnowledgeBase::GetDocumentChunks(const std::string& project,
                                                                  const std::string& document_id) {
  KB_ASSIGN_OR_RETURN(auto h, registry_->Find(project));
  // The document first: the chunk query answers an unknown id with no chunks, not NotFound.
  KB_RETURN_IF_ERROR(h->store->GetDocument(document_id).status());
  return h->store->GetDocumentChunks(document_id);
}

Result<KnowledgeBase::DocumentPage> KnowledgeBase::ListDocuments(const std::string& project,
                                                                 int64_t limit, int64_t offset) {
  KB_ASSIGN_OR_RETURN(auto h, registry_->Find(project));
  if (limit < 1 || limit > kMaxListLimit) {
    return Status::InvalidArgument("limit must be between 1 and " + std::to_string(kMaxListLimit));
  }
  if (offset < 0) return Status::InvalidArgument("offset must not be negative");
  DocumentPage page;
  KB_ASSIGN_OR_RETURN(page.documents, h->store->ListDocuments(limit, offset));
  KB_ASSIGN_OR_RETURN(StoreCounts counts, h->store->Counts());
  page.total = counts.documents;
  return page;
}

Status KnowledgeBase::DeleteDocument(const std::string& project, const std::string& document_id,
                                     const Actor& actor) {
  KB_ASSIGN_OR_RETURN(auto h, registry_->Find(project));
  MutexLock lock(h->write_mu);
  KB_ASSIGN_OR_RETURN(auto chunk_ids, h->store->DeleteDocument(document_id, actor.id));
  for (int64_t id : chunk_ids) h->index->Remove(id);
  KB_ASSIGN_OR_RETURN(h->applied_lsn, h->store->LastLsn());
  h->dirty = true;
  h->generation++;
  return Status::OK();
}

Result<std::vector<KnowledgeBase::ChangedDocument>> KnowledgeBase::DocumentsChangedSince(
    int64_t since_ms, const std::string& project, int64_t limit) {
  if (limit < 1 || limit > kMaxListLimit) {
    return Status::InvalidArgument("limit must be between 1 and " + std::to_string(kMaxListLimit));
  }
  std::vector<std::shared_ptr<ProjectHandle>> handles;
  if (!project.empty()) {
    KB_ASSIGN_OR_RETURN(auto h, registry_->Find(project));
    handles.push_back(h);
  } else {
    handles = registry_->All();
  }
  std::vector<ChangedDocument> out;
  for (auto& h : handles) {
    ProjectRecord r = h->Record();
    KB_ASSIGN_OR_RETURN(auto docs, h->store->DocumentsChangedSince(since_ms, limit));
    for (auto& d : docs) out.push_back({r.id, r.name, std::move(d)});
  }
  std::sort(out.begin(), out.end(), [](const ChangedDocument& a, const ChangedDocument& b) {
    if (a.document.updated_at_ms != b.document.updated_at_ms)
      return a.document.updated_at_ms < b.document.updated_at_ms;
    return a.document.id < b.document.id;
  });
  if (static_cast<int64_t>(out.size()) > limit) out.resize(static_cast<size_t>(limit));
  return out;
}

Result<KnowledgeBase::ImportOutcome> KnowledgeBase::ImportDocumentIfAbsent(
    const std::string& project, DocumentRecord doc, std::vector<ChunkRecord> chunks,
    const Actor& actor) {
  if (doc.id.empty()) return Status::InvalidArgument("an imported document needs its id");
  KB_ASSIGN_OR_RETURN(auto h, registry_->Find(project));
  MutexLock lock(h->write_mu);
  auto existing = h->store->GetDocument(doc.id, /*include_deleted=*/true);
  if (existing.ok()) return ImportOutcome::kExists;
  if (existing.status().code() != Code::kNotFound) return existing.status();
  doc.deleted_at_ms.reset();
  doc.deleted_by.clear();
  std::vector<std::vector<float>> embeddings;
  embeddings.reserve(chunks.size());
  for (const auto& c : chunks) embeddings.push_back(c.embedding);
  auto put = h->store->PutDocument(doc, std::move(chunks), actor.id);
  if (!put.ok() && put.status().code() == Code::kAlreadyExists) return ImportOutcome::kSourceTaken;
  KB_RETURN_IF_ERROR(put.status());
  embeddings.resize(std::min(embeddings.size(), put->chunk_ids.size()));
  Status indexed = h->index->UpsertBatch(put->chunk_ids, embeddings);
  if (!indexed.ok()) {
    LogError("index update failed after commit", json{{"error", indexed.ToString()}}.dump());
    h->index_stale = true;
  } else {
    h->applied_lsn = put->lsn;
    h->dirty = true;
  }
  h->generation++;
  return ImportOutcome::kImported;
}

// ---------------------------------------------------------------------------------------------
// Search (the loop: search/hybrid_search.h)

std::string KnowledgeBase::QueryCacheKey(const QueryRequest& req, const std::string& filter) {
  return std::string(SearchModeName(req.mode)) + "|" + std::string(FusionMethodName(req.fusion)) +
         "|" + std::to_string(req.alpha) + "|" + std::to_string(req.top_k) + "|" +
         std::to_string(req.offset) + "|" + filter + "|" +
         Sha256Hex(std::string_view(reinterpret_cast<const char*>(req.vector.data()),
                                    req.vector.size() * sizeof(float))) +
         "|" + req.text;
}

Result<QueryResponse> KnowledgeBase::Query(const std::string& project, const QueryRequest& req) {
  const int64_t started_us = MonotonicMicros();
  auto took_ms = [&] { return static_cast<double>(MonotonicMicros() - started_us) / 1000.0; };
  KB_ASSIGN_OR_RETURN(auto h, registry_->Find(project));
  KB_RETURN_IF_ERROR(ValidateQuery(req));
  const std::shared_ptr<VectorIndex> index = h->Index();
  const SearchTarget target{h->store.get(), index.get(), h->embedder.get(), h->external()};
  KB_ASSIGN_OR_RETURN(Vector query_vector, CheckQueryVector(target, req));
  KB_ASSIGN_OR_RETURN(auto filter, MetadataFilter::Parse(req.filters_json));

  counters_.queries++;
  const int64_t generation = h->generation.load();
  const bool use_cache = options_.enable_query_cache && req.use_cache;
  const std::string cache_key = use_cache ? QueryCacheKey(req, filter->canonical()) : "";
  if (use_cache) {
    if (auto hit = h->cache.Get(cache_key, generation)) {
      counters_.query_cache_hits++;
      hit->cached = true;
      hit->took_ms = took_ms();
      return *hit;
    }
  }
  QueryResponse resp;
  KB_ASSIGN_OR_RETURN(resp.hits, HybridSearch(target, req, *filter, std::move(query_vector)));
  if (use_cache) h->cache.Put(cache_key, generation, resp);
  resp.took_ms = took_ms();
  return resp;
}

// ---------------------------------------------------------------------------------------------
// Status

Result<KbStats> KnowledgeBase::Stats() {
  KbStats st;
  for (auto& h : registry_->All()) {
    ProjectStats ps;
    ps.project = h->Record();
    KB_ASSIGN_OR_RETURN(ps.counts, h->store->Counts());
    const std::shared_ptr<VectorIndex> index = h->Index();
    ps.index_vectors = index->Size();
    ps.index_memory_bytes = index->MemoryBytes();
    ps.index_lsn = index->lsn();
    KB_ASSIGN_OR_RETURN(ps.journal_lsn, h->store->LastLsn());
    ps.disk_bytes = DirectorySize(h->dir);
    ps.damage = h->store->Damage();
    st.documents += ps.counts.documents;
    st.chunks += ps.counts.chunks;
    st.content_bytes += ps.counts.content_bytes;
    st.per_project.push_back(std::move(ps));
  }
  std::sort(st.per_project.begin(), st.per_project.end(),
            [](const ProjectStats& a, const ProjectStats& b) {
              return a.project.created_at_ms < b.project.created_at_ms;
            });
  st.projects = static_cast<int64_t>(st.per_project.size());
  st.disk_bytes = DirectorySize(options_.data_dir);
  st.uptime_seconds = (clock_->NowMillis() - started_at_ms_) / 1000;
  return st;
}

std::vector<HealthReport::ReadOnlyProject> KnowledgeBase::ReadOnlyProjects() {
  std::vector<HealthReport::ReadOnlyProject> out;
  for (const auto& h : registry_->All()) {
    if (auto damage = h->store->Damage()) {
      const ProjectRecord rec = h->Record();
      out.push_back({rec.id, rec.name, *damage});
    }
  }
  return out;
}

HealthReport KnowledgeBase::Health() {
  HealthReport r;
  r.ready = ready_.load();
  r.problems = load_problems_;
  CheckSeverity severity = load_problems_.empty() ? CheckSeverity::kOk : CheckSeverity::kDegraded;
  auto keys = catalog_->CountKeys();
  if (!keys.ok()) {
    severity = CheckSeverity::kUnhealthy;
    r.problems.push_back("catalog: " + keys.status().ToString());
    r.ready = false;
  }
  r.read_only_projects = ReadOnlyProjects();
  r.integrity = maintenance_->LastCheck();
  if (r.integrity) {
    severity = std::max(severity, r.integrity->status);
    r.problems.insert(r.problems.end(), r.integrity->problems.begin(), r.integrity->problems.end());
  }
  r.status = severity == CheckSeverity::kOk         ? "healthy"
             : severity == CheckSeverity::kDegraded ? "degraded"
                                                    : "unhealthy";
  return r;
}

// ---------------------------------------------------------------------------------------------
// Integrity (service/index_maintenance.h)

Result<IntegrityReport> KnowledgeBase::RunIntegrityCheck() {
  return maintenance_->RunIntegrityCheck();
}

}  // namespace kb
