// The service layer: see knowledge_base.h for the contract and the write ordering rules.
#include "service/knowledge_base.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "common/crypto_util.h"
#include "common/data_layout.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/text_util.h"
#include "ingest/parser.h"
#include "service/project_handle.h"
#include "service/query_cache.h"
#include "search/metadata_filter.h"

namespace kb {

using nlohmann::json;

namespace {

constexpr size_t kMaxMetadataBytes = 64 * 1024;
constexpr size_t kMaxProvidedChunks = 100000;
constexpr int kMaxOffset = 10000;
constexpr int kMaxKeyLifetimeDays = 3650;
constexpr int64_t kKeyTouchIntervalMs = 60'000;
constexpr size_t kJournalCatchUpBatch = 1000;
constexpr size_t kEmbedBatch = 256;

// Candidates fetched from each list per result wanted: more candidates make the min-max
// normalisation of weighted fusion steadier and give the other list a chance to contribute.
constexpr size_t kCandidateFactor = 3;
constexpr size_t kMinCandidates = 30;
constexpr size_t kMaxCandidates = 5000;

Status ValidateMetadata(const std::string& text) {
  if (text.size() > kMaxMetadataBytes) {
    return Status::InvalidArgument("metadata is larger than " + std::to_string(kMaxMetadataBytes) +
                                   " bytes");
  }
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument("metadata must be a JSON object");
  }
  return Status::OK();
}

// Descriptions are free text: line breaks and tabs are allowed, other control characters are
// not, and they must be valid UTF-8 and bounded. The one place this rule lives (API and CLI
// both come here).
Status ValidateDescription(const std::string& text) {
  if (!IsValidUtf8(text) || text.size() > kMaxDescriptionBytes) {
    return Status::InvalidArgument("description must be valid UTF-8 of at most " +
                                   std::to_string(kMaxDescriptionBytes) + " bytes");
  }
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f) {
      return Status::InvalidArgument("description contains control characters");
    }
  }
  return Status::OK();
}

std::string CanonicalJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? text : j.dump();
}

std::string NewKeySecret() {
  std::string b64 = Base64Encode(RandomBytes(32));
  // base64url without padding: safe in headers and URLs.
  std::string out = "kb_";
  for (char c : b64) {
    if (c == '+')
      out.push_back('-');
    else if (c == '/')
      out.push_back('_');
    else if (c != '=')
      out.push_back(c);
  }
  return out;
}

}  // namespace

KnowledgeBase::KnowledgeBase(const KbOptions& options)
    : options_(options), clock_(options.clock ? options.clock : SystemClock::Default()) {}

KnowledgeBase::~KnowledgeBase() { Close(); }

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
  KB_RETURN_IF_ERROR(kb->LoadProjects());
  kb->ready_ = kb->load_problems_.empty();
  if (options.index_save_interval_ms > 0) {
    kb->saver_ = std::thread([raw = kb.get()] { raw->SaverLoop(); });
  }
  // After readiness: the first check runs in the background and never delays the start.
  if (options.integrity_check_interval_ms > 0) {
    kb->checker_ = std::thread([raw = kb.get()] { raw->CheckerLoop(); });
  }
  if (options.purge_interval_ms > 0) {
    kb->purger_ = std::thread([raw = kb.get()] { raw->PurgerLoop(); });
  }
  return kb;
}

void KnowledgeBase::Close() {
  {
    std::lock_guard<std::mutex> lock(saver_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  saver_cv_.notify_all();
  // A running check notices stopping_ between projects (IntegrityCheckOptions::cancelled).
  if (checker_.joinable()) checker_.join();
  if (purger_.joinable()) purger_.join();
  if (saver_.joinable()) saver_.join();
  std::vector<std::shared_ptr<ProjectHandle>> handles;
  {
    std::shared_lock lock(projects_mu_);
    for (auto& [id, h] : projects_) handles.push_back(h);
  }
  for (auto& h : handles) {
    Status s = SaveIndex(*h);
    if (!s.ok()) LogError("saving vector index failed", json{{"error", s.ToString()}}.dump());
  }
  ready_ = false;
}

void KnowledgeBase::SaverLoop() {
  std::unique_lock<std::mutex> lock(saver_mu_);
  while (!stopping_) {
    saver_cv_.wait_for(lock, std::chrono::milliseconds(options_.index_save_interval_ms),
                       [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    std::vector<std::shared_ptr<ProjectHandle>> handles;
    {
      std::shared_lock plock(projects_mu_);
      for (auto& [id, h] : projects_) handles.push_back(h);
    }
    for (auto& h : handles) {
      Status s = SaveIndex(*h);
      if (!s.ok()) LogError("saving vector index failed", json{{"error", s.ToString()}}.dump());
    }
    lock.lock();
  }
}

bool KnowledgeBase::Closing() {
  std::lock_guard<std::mutex> lock(saver_mu_);
  return stopping_;
}

void KnowledgeBase::CheckerLoop() {
  std::unique_lock<std::mutex> lock(saver_mu_);
  while (!stopping_) {
    lock.unlock();
    auto report = RunIntegrityCheck();
    if (!report.ok() && report.status().code() != Code::kUnavailable) {
      LogError("integrity check could not run", json{{"error", report.status().ToString()}}.dump());
    }
    lock.lock();
    saver_cv_.wait_for(lock, std::chrono::milliseconds(options_.integrity_check_interval_ms),
                       [this] { return stopping_; });
  }
}

Status KnowledgeBase::SaveIndex(ProjectHandle& h) {
  std::lock_guard<std::mutex> save(h.save_mu);
  std::lock_guard<std::mutex> lock(h.write_mu);
  if (!h.dirty || h.index_stale) return Status::OK();
  KB_RETURN_IF_ERROR(h.index->Save(h.index_dir(), h.applied_lsn));
  h.dirty = false;
  return Status::OK();
}

Status KnowledgeBase::LoadProjects() {
  KB_ASSIGN_OR_RETURN(auto records, catalog_->ListProjects(/*include_deleted=*/false));
  for (const ProjectRecord& r : records) {
    auto handle = OpenProjectHandle(r, /*loading=*/true);
    if (!handle.ok()) {
      // One project's damage never takes the others down: report it and go on.
      std::string problem =
          "project '" + r.name + "' (" + r.id + "): " + handle.status().ToString();
      LogError("project failed to open", json{{"project", r.id}, {"error", problem}}.dump());
      load_problems_.push_back(problem);
      if (handle.status().code() == Code::kFailedPrecondition) return handle.status();
      continue;
    }
    std::unique_lock lock(projects_mu_);
    projects_[r.id] = std::move(handle).value();
  }
  return Status::OK();
}

namespace {

// Applies one journal entry's effect to an index.
Status ApplyDelta(const IndexDelta& delta, VectorIndex* index) {
  for (int64_t label : delta.removals) index->Remove(label);
  for (const auto& [label, vec] : delta.upserts) {
    KB_RETURN_IF_ERROR(index->Upsert(label, vec));
  }
  return Status::OK();
}

}  // namespace

Result<std::shared_ptr<KnowledgeBase::ProjectHandle>> KnowledgeBase::OpenProjectHandle(
    const ProjectRecord& record, bool loading) {
  auto h = std::make_shared<ProjectHandle>();
  h->record = record;
  h->dir = layout::ProjectDir(options_.data_dir, record.id);
  KB_RETURN_IF_ERROR(MakeDirs(h->dir));
  KB_ASSIGN_OR_RETURN(h->spec, EmbedderSpec::FromJson(record.embedder_spec_json));
  KB_ASSIGN_OR_RETURN(h->embedder, MakeEmbedder(h->spec));
  if (h->embedder->Fingerprint() != record.embedder_fingerprint) {
    return Status::FailedPrecondition(
        "project '" + record.name + "' was embedded with fingerprint " +
        record.embedder_fingerprint + " but this binary's " + h->embedder->Name() +
        " has fingerprint " + h->embedder->Fingerprint() +
        "; refusing to mix vector spaces (re-create the project or use the matching version)");
  }
  h->chunking.target_chars = static_cast<size_t>(record.chunk_size);
  h->chunking.overlap_chars = static_cast<size_t>(record.chunk_overlap);
  KB_ASSIGN_OR_RETURN(h->store, ProjectStore::Open(layout::ProjectDbIn(h->dir), record.id,
                                                   record.embedding_dimension, clock_));
  KB_ASSIGN_OR_RETURN(int64_t last_lsn, h->store->LastLsn());

  VectorIndexOptions iopts = options_.index;
  iopts.dimension = record.embedding_dimension;
  auto loaded = VectorIndex::Load(h->index_dir(), iopts);
  bool rebuild = !loaded.ok();
  std::string why;  // why an existing project's index had to be rebuilt
  if (!loaded.ok()) {
    why = loaded.status().message();
    if (loaded.status().code() != Code::kNotFound) {
      LogWarn("vector index damaged; rebuilding from the database",
              json{{"project", record.id}, {"error", loaded.status().ToString()}}.dump());
    }
  }
  if (loaded.ok()) {
    h->index = std::move(loaded).value();
    if (h->index->lsn() > last_lsn) {
      // The index claims changes the database does not have (e.g. the database was restored
      // to an earlier point): it cannot be trusted.
      LogWarn(
          "vector index is ahead of the journal; rebuilding",
          json{{"project", record.id}, {"index_lsn", h->index->lsn()}, {"lsn", last_lsn}}.dump());
      rebuild = true;
      why = "the saved index reflects LSN " + std::to_string(h->index->lsn()) +
            ", ahead of the journal (LSN " + std::to_string(last_lsn) + ")";
    }
  }
  if (!rebuild) {
    // Catch up from the journal.
    int64_t after = h->index->lsn();
    int64_t applied = 0;
    while (after < last_lsn) {
      KB_ASSIGN_OR_RETURN(auto entries, h->store->ReadJournal(after, kJournalCatchUpBatch));
      if (entries.empty()) break;
      for (const JournalEntry& e : entries) {
        auto delta = DecodeIndexDelta(e);
        if (!delta.ok()) {
          LogWarn("journal entry unreadable during index catch-up; rebuilding",
                  json{{"project", record.id}, {"lsn", e.lsn}}.dump());
          rebuild = true;
          why = "journal entry " + std::to_string(e.lsn) +
                " could not be replayed onto it: " + delta.status().message();
          break;
        }
        Status s = ApplyDelta(*delta, h->index.get());
        if (!s.ok()) {
          rebuild = true;
          why = "journal entry " + std::to_string(e.lsn) +
                " could not be replayed onto it: " + s.message();
          break;
        }
        after = e.lsn;
        ++applied;
      }
      if (rebuild) break;
    }
    if (!rebuild) {
      h->applied_lsn = after;
      h->dirty = applied > 0;
    }
  }
  if (rebuild) {
    h->index = VectorIndex::Create(iopts);
    Status upsert_status;
    KB_RETURN_IF_ERROR(h->store->ForEachLiveEmbedding([&](int64_t id, std::span<const float> v) {
      if (upsert_status.ok()) upsert_status = h->index->Upsert(id, v);
    }));
    KB_RETURN_IF_ERROR(upsert_status);
    h->applied_lsn = last_lsn;
    h->dirty = true;
    counters_.index_rebuilds++;
    if (loading) h->load_repair = "rebuilt from kb.db when the project was loaded: " + why;
  }
  // Persist a rebuilt index now, so that the next start loads it instead of rebuilding. A
  // replayed one is left to the saver (within index_save_interval): saving rewrites and hashes
  // the whole graph file, ~40% of the time a restored server took to become ready, and
  // replaying the same entries again after a crash is cheap. Without a saver, save now.
  const bool save_now = h->dirty && (rebuild || options_.index_save_interval_ms <= 0);
  if (save_now) {
    std::lock_guard<std::mutex> lock(h->write_mu);
    Status s = h->index->Save(h->index_dir(), h->applied_lsn);
    if (s.ok())
      h->dirty = false;
    else
      LogWarn("saving vector index failed", json{{"error", s.ToString()}}.dump());
  }
  return h;
}

Result<std::shared_ptr<KnowledgeBase::ProjectHandle>> KnowledgeBase::Handle(
    const std::string& id_or_name) {
  std::shared_lock lock(projects_mu_);
  auto it = projects_.find(id_or_name);
  if (it != projects_.end()) return it->second;
  if (restoring_.count(id_or_name)) {
    return Status::Unavailable("project " + id_or_name + " is being restored; try again shortly");
  }
  for (auto& [id, h] : projects_) {
    std::lock_guard<std::mutex> rlock(h->record_mu);
    if (h->record.name == id_or_name) return h;
  }
  return Status::NotFound("project '" + id_or_name + "' does not exist");
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

  {
    std::shared_lock lock(projects_mu_);
    for (auto& [id, h] : projects_) {
      std::lock_guard<std::mutex> rlock(h->record_mu);
      if (h->record.name == req.name) {
        return Status::AlreadyExists("project '" + req.name + "' already exists");
      }
    }
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
  KB_ASSIGN_OR_RETURN(auto handle, OpenProjectHandle(r, /*loading=*/false));
  Status s = catalog_->CreateProject(r);
  if (!s.ok()) {
    std::error_code ec;
    handle.reset();
    std::filesystem::remove_all(layout::ProjectDir(options_.data_dir, r.id), ec);
    return s;
  }
  {
    std::unique_lock lock(projects_mu_);
    projects_[r.id] = handle;
  }
  LogInfo("project created", json{{"project", r.id}, {"name", r.name}, {"actor", actor.id}}.dump());
  return r;
}

Result<ProjectRecord> KnowledgeBase::GetProject(const std::string& id_or_name) {
  KB_ASSIGN_OR_RETURN(auto h, Handle(id_or_name));
  return h->Record();
}

Result<std::vector<ProjectRecord>> KnowledgeBase::ListProjects() {
  std::vector<ProjectRecord> out;
  {
    std::shared_lock lock(projects_mu_);
    for (auto& [id, h] : projects_) out.push_back(h->Record());
  }
  std::sort(out.begin(), out.end(), [](const ProjectRecord& a, const ProjectRecord& b) {
    if (a.created_at_ms != b.created_at_ms) return a.created_at_ms < b.created_at_ms;
    return a.id < b.id;
  });
  return out;
}

Result<ProjectRecord> KnowledgeBase::UpdateProject(const std::string& id_or_name,
                                                   const UpdateProjectRequest& req,
                                                   const Actor& actor) {
  KB_ASSIGN_OR_RETURN(auto h, Handle(id_or_name));
  if (req.name) KB_RETURN_IF_ERROR(ValidateProjectName(*req.name));
  if (req.description) KB_RETURN_IF_ERROR(ValidateDescription(*req.description));
  if (req.metadata_json) KB_RETURN_IF_ERROR(ValidateMetadata(*req.metadata_json));
  std::lock_guard<std::mutex> lock(h->record_mu);
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
  KB_ASSIGN_OR_RETURN(auto h, Handle(id_or_name));
  ProjectRecord r = h->Record();
  std::vector<std::string> revoked;
  KB_RETURN_IF_ERROR(catalog_->MarkProjectDeleted(r.id, actor.id, clock_->NowMillis(), &revoked));
  {
    std::unique_lock lock(projects_mu_);
    projects_.erase(r.id);
  }
  Status s = SaveIndex(*h);
  if (!s.ok()) LogWarn("saving vector index failed", json{{"error", s.ToString()}}.dump());
  LogInfo("project deleted",
          json{{"project", r.id}, {"actor", actor.id}, {"revoked_keys", revoked}}.dump());
  return Status::OK();
}

Status KnowledgeBase::ReplaceProject(const ProjectRecord& record, const std::string& staged_dir,
                                     const std::string& aside_dir, const Actor& actor) {
  // Name clash with another live project: refuse before touching anything.
  auto by_name = catalog_->GetProject(record.name);
  if (by_name.ok() && by_name->id != record.id) {
    return Status::FailedPrecondition("project name '" + record.name +
                                      "' now belongs to another project (" + by_name->id +
                                      "); rename it before restoring this one");
  }
  // From here until the end, lookups of this project answer Unavailable ("being restored").
  std::shared_ptr<ProjectHandle> old;
  {
    std::unique_lock lock(projects_mu_);
    if (!restoring_.insert(record.id).second) {
      return Status::Unavailable("project " + record.id + " is already being restored");
    }
    restoring_.insert(record.name);
    auto it = projects_.find(record.id);
    if (it != projects_.end()) {
      old = it->second;
      projects_.erase(it);
    }
  }
  auto done = [&] {
    std::unique_lock lock(projects_mu_);
    restoring_.erase(record.id);
    restoring_.erase(record.name);
  };
  if (old) {
    // SQLite removes a database's -wal and -shm files by path when its last connection closes,
    // so the old store must be closed before another database appears under that path. Wait for
    // requests still using the old handle to finish (they are short), then close it.
    Status closed = RetireHandle(old);
    if (!closed.ok()) {
      std::unique_lock lock(projects_mu_);
      projects_[record.id] = old;
      restoring_.erase(record.id);
      restoring_.erase(record.name);
      return closed;
    }
  }
  Status swapped = SwapInRestoredProject(record, staged_dir, aside_dir);
  if (!swapped.ok() && old) {
    // The renames were undone: reopen the project as it was.
    auto reopened = OpenProjectHandle(old->Record());
    if (reopened.ok()) {
      std::unique_lock lock(projects_mu_);
      projects_[record.id] = std::move(reopened).value();
    } else {
      LogError("project could not be reopened after a failed restore",
               json{{"project", record.id}, {"error", reopened.status().ToString()}}.dump());
    }
  }
  done();
  if (!swapped.ok()) return swapped;
  LogInfo("project replaced by restore",
          json{{"project", record.id}, {"actor", actor.id}, {"aside", aside_dir}}.dump());
  return Status::OK();
}

Status KnowledgeBase::RetireHandle(const std::shared_ptr<ProjectHandle>& h) {
  const int64_t deadline = MonotonicMicros() + kRetireWaitMicros;
  while (h.use_count() > 1) {
    if (MonotonicMicros() > deadline) {
      return Status::Unavailable("project " + h->Record().id +
                                 " stayed busy; restore not started, try again");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::lock_guard<std::mutex> lock(h->write_mu);
  if (h->dirty && !h->index_stale) {
    Status s = h->index->Save(h->index_dir(), h->applied_lsn);
    if (!s.ok()) LogWarn("saving vector index failed", json{{"error", s.ToString()}}.dump());
  }
  h->index_stale = true;  // never saved again
  h->store.reset();
  h->index.reset();
  return Status::OK();
}

Status KnowledgeBase::SwapInRestoredProject(const ProjectRecord& record,
                                            const std::string& staged_dir,
                                            const std::string& aside_dir) {
  const std::string live_dir = ProjectDir(record.id);
  const bool had_dir = PathExists(live_dir);
  if (had_dir) KB_RETURN_IF_ERROR(RenamePath(live_dir, aside_dir));
  Status moved = RenamePath(staged_dir, live_dir);
  if (!moved.ok()) {
    if (had_dir) (void)RenamePath(aside_dir, live_dir);
    return moved;
  }
  auto undo = [&] {
    (void)RenamePath(live_dir, staged_dir);
    if (had_dir) (void)RenamePath(aside_dir, live_dir);
  };
  // The catalog row: undelete or re-create, then the editable fields.
  ProjectRecord row = record;
  row.deleted_at_ms.reset();
  row.deleted_by.clear();
  auto existing = catalog_->GetProject(record.id, /*include_deleted=*/true);
  Status cat;
  if (!existing.ok()) {
    cat = catalog_->CreateProject(row);
  } else {
    if (existing->deleted_at_ms) cat = catalog_->UnmarkProjectDeleted(record.id);
    if (cat.ok()) cat = catalog_->UpdateProject(row);
  }
  if (!cat.ok()) {
    undo();
    return cat;
  }
  auto handle = OpenProjectHandle(row);
  if (!handle.ok()) {
    undo();
    return handle.status().WithContext("reopening restored project " + record.id);
  }
  {
    std::unique_lock lock(projects_mu_);
    projects_[record.id] = std::move(handle).value();
  }
  (void)FsyncPath(layout::ProjectsDir(options_.data_dir));
  return Status::OK();
}

Result<KnowledgeBase::ImportOutcome> KnowledgeBase::ImportDocumentIfAbsent(
    const std::string& project, DocumentRecord doc, std::vector<ChunkRecord> chunks,
    const Actor& actor) {
  if (doc.id.empty()) return Status::InvalidArgument("an imported document needs its id");
  KB_ASSIGN_OR_RETURN(auto h, Handle(project));
  std::lock_guard<std::mutex> lock(h->write_mu);
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
// Documents

Result<IngestResult> KnowledgeBase::Ingest(const std::string& project, const IngestRequest& req,
                                           const Actor& actor) {
  Result<IngestResult> r = IngestImpl(project, req, actor);
  if (!r.ok()) counters_.ingest_failures++;
  return r;
}

Result<IngestResult> KnowledgeBase::IngestImpl(const std::string& project, const IngestRequest& req,
                                               const Actor& actor) {
  KB_ASSIGN_OR_RETURN(auto h, Handle(project));
  if (static_cast<int64_t>(req.content.size()) > options_.max_document_bytes) {
    return Status::PayloadTooLarge("document is larger than " +
                                   std::to_string(options_.max_document_bytes) + " bytes");
  }
  KB_RETURN_IF_ERROR(ValidateMetadata(req.metadata_json));
  KB_RETURN_IF_ERROR(ValidateLabel("title", req.title, kMaxTitleBytes));
  KB_RETURN_IF_ERROR(ValidateLabel("source", req.source, kMaxSourceBytes));
  KB_RETURN_IF_ERROR(ValidateLabel("filename", req.filename, kMaxSourceBytes));
  const bool external = h->spec.kind == "external";
  const int dim = h->embedder->Dimension();

  DocumentRecord doc;
  std::vector<ChunkRecord> chunks;
  std::string parsed_title;
  if (!req.chunks.empty()) {
    if (req.chunks.size() > kMaxProvidedChunks) {
      return Status::InvalidArgument("at most " + std::to_string(kMaxProvidedChunks) +
                                     " chunks per document");
    }
    // Caller-split chunks: the document text is their concatenation, so offsets stay truthful.
    std::string hash_input;
    size_t offset = 0;
    for (size_t i = 0; i < req.chunks.size(); ++i) {
      const ProvidedChunk& pc = req.chunks[i];
      if (TrimWhitespace(pc.text).empty()) {
        return Status::InvalidArgument("chunks[" + std::to_string(i) + "].text is empty");
      }
      if (!IsValidUtf8(pc.text)) {
        return Status::InvalidArgument("chunks[" + std::to_string(i) + "].text is not valid UTF-8");
      }
      ChunkRecord c;
      c.ordinal = static_cast<int>(i);
      c.text = pc.text;
      c.start_offset = static_cast<int64_t>(offset);
      c.end_offset = static_cast<int64_t>(offset + pc.text.size());
      offset += pc.text.size() + 2;
      if (!pc.embedding.empty()) {
        if (!external) {
          return Status::InvalidArgument(
              "this project embeds text with '" + h->embedder->Name() +
              "'; caller vectors are accepted only by projects created with embedder kind "
              "'external'");
        }
        if (static_cast<int>(pc.embedding.size()) != dim) {
          return Status::InvalidArgument("chunks[" + std::to_string(i) + "].embedding has " +
                                         std::to_string(pc.embedding.size()) +
                                         " dimensions; the project expects " + std::to_string(dim));
        }
        c.embedding = pc.embedding;
        if (!AllFinite(c.embedding) || !NormalizeL2(&c.embedding)) {
          return Status::InvalidArgument("chunks[" + std::to_string(i) +
                                         "].embedding must be finite and non-zero");
        }
      } else if (external) {
        return Status::InvalidArgument("chunks[" + std::to_string(i) +
                                       "].embedding is required: this project takes vectors "
                                       "from the caller");
      }
      hash_input += pc.text;
      hash_input.push_back('\0');
      hash_input.append(reinterpret_cast<const char*>(c.embedding.data()),
                        c.embedding.size() * sizeof(float));
      chunks.push_back(std::move(c));
    }
    doc.content_type = "application/x-kb-chunks";
    doc.content_hash = Sha256Hex(hash_input);
    doc.bytes = static_cast<int64_t>(offset >= 2 ? offset - 2 : 0);
  } else {
    if (external) {
      return Status::FailedPrecondition(
          "this project takes vectors from the caller: send \"chunks\" with embeddings");
    }
    KB_ASSIGN_OR_RETURN(ContentType type,
                        DetectContentType(req.declared_mime, req.filename, req.content));
    KB_ASSIGN_OR_RETURN(ParsedDocument parsed, ParseDocument(type, req.content));
    parsed_title = parsed.title;
    std::vector<TextChunk> text_chunks = ChunkDocument(parsed, h->chunking);
    if (text_chunks.empty()) return Status::Unprocessable("the document has no text");
    for (size_t i = 0; i < text_chunks.size(); ++i) {
      ChunkRecord c;
      c.ordinal = static_cast<int>(i);
      c.text = std::move(text_chunks[i].text);
      c.heading_path = std::move(text_chunks[i].heading_path);
      c.start_offset = static_cast<int64_t>(text_chunks[i].start);
      c.end_offset = static_cast<int64_t>(text_chunks[i].end);
      chunks.push_back(std::move(c));
    }
    doc.content_type = std::string(ContentTypeMime(type));
    doc.content_hash = Sha256Hex(req.content);
    doc.bytes = static_cast<int64_t>(req.content.size());
  }

  // Embed what the caller did not.
  std::vector<size_t> to_embed;
  for (size_t i = 0; i < chunks.size(); ++i)
    if (chunks[i].embedding.empty()) to_embed.push_back(i);
  for (size_t start = 0; start < to_embed.size(); start += kEmbedBatch) {
    size_t end = std::min(to_embed.size(), start + kEmbedBatch);
    std::vector<std::string> texts;
    for (size_t k = start; k < end; ++k) texts.push_back(chunks[to_embed[k]].text);
    KB_ASSIGN_OR_RETURN(auto vectors, h->embedder->Embed(texts));
    if (vectors.size() != texts.size()) {
      return Status::Internal("embedder returned " + std::to_string(vectors.size()) +
                              " vectors for " + std::to_string(texts.size()) + " texts");
    }
    for (size_t k = start; k < end; ++k)
      chunks[to_embed[k]].embedding = std::move(vectors[k - start]);
  }

  doc.title = !req.title.empty() ? req.title : !parsed_title.empty() ? parsed_title : req.filename;
  if (doc.title.size() > kMaxTitleBytes || !IsValidUtf8(doc.title)) {
    doc.title = SanitizeUtf8(doc.title.substr(0, kMaxTitleBytes));
  }
  doc.source = !req.source.empty() ? req.source : req.filename;
  doc.metadata_json = CanonicalJson(req.metadata_json);
  doc.chunk_count = static_cast<int>(chunks.size());

  // Keep the embeddings for the index: the store takes ownership of the chunk records.
  std::vector<std::vector<float>> embeddings;
  embeddings.reserve(chunks.size());
  for (const auto& c : chunks) embeddings.push_back(c.embedding);

  std::lock_guard<std::mutex> lock(h->write_mu);
  KB_ASSIGN_OR_RETURN(PutDocumentResult put,
                      h->store->PutDocument(doc, std::move(chunks), actor.id));
  IngestResult result;
  result.document = put.document;
  result.outcome = put.outcome;
  result.lsn = put.lsn;
  if (put.outcome == PutOutcome::kUnchanged) {
    counters_.documents_unchanged++;
    return result;
  }
  for (int64_t id : put.removed_chunk_ids) h->index->Remove(id);
  embeddings.resize(std::min(embeddings.size(), put.chunk_ids.size()));
  Status indexed = h->index->UpsertBatch(put.chunk_ids, embeddings);
  if (!indexed.ok()) {
    // The document is durable; only the derived index is behind. It is rebuilt from the
    // database at the next start (the saved index's LSN is not advanced past this entry).
    LogError("index update failed after commit", json{{"error", indexed.ToString()}}.dump());
    h->index_stale = true;
    h->generation++;
    return result;
  }
  h->applied_lsn = put.lsn;
  h->dirty = true;
  h->generation++;
  counters_.documents_ingested++;
  counters_.chunks_ingested += static_cast<int64_t>(put.chunk_ids.size());
  return result;
}

Result<IngestResult> KnowledgeBase::IngestFile(const std::string& project,
                                               const std::string& relative_path,
                                               const std::string& metadata_json,
                                               const Actor& actor) {
  if (options_.ingest_root.empty()) {
    return Status::PermissionDenied("file ingestion is disabled (no ingest root is configured)");
  }
  if (relative_path.empty()) return Status::InvalidArgument("file_path is empty");
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path root = fs::canonical(options_.ingest_root, ec);
  if (ec) return Status::FailedPrecondition("ingest root does not exist: " + options_.ingest_root);
  fs::path requested =
      fs::path(relative_path).is_absolute() ? fs::path(relative_path) : root / relative_path;
  // canonical() resolves symlinks and "..": whatever the caller wrote, the real file must lie
  // inside the root.
  fs::path real = fs::canonical(requested, ec);
  if (ec) return Status::NotFound("file not found: " + relative_path);
  auto rel = real.lexically_relative(root);
  if (rel.empty() || *rel.begin() == "..") {
    return Status::PermissionDenied("file_path is outside the ingest root");
  }
  if (!fs::is_regular_file(real, ec))
    return Status::InvalidArgument("not a regular file: " + relative_path);
  auto size = fs::file_size(real, ec);
  if (!ec && static_cast<int64_t>(size) > options_.max_document_bytes) {
    return Status::PayloadTooLarge("file is larger than " +
                                   std::to_string(options_.max_document_bytes) + " bytes");
  }
  KB_ASSIGN_OR_RETURN(std::string content, ReadFile(real.string()));
  IngestRequest req;
  req.content = std::move(content);
  req.filename = real.filename().string();
  req.source = rel.string();
  req.metadata_json = metadata_json.empty() ? "{}" : metadata_json;
  return Ingest(project, req, actor);
}

Result<DocumentRecord> KnowledgeBase::GetDocument(const std::string& project,
                                                  const std::string& document_id) {
  KB_ASSIGN_OR_RETURN(auto h, Handle(project));
  return h->store->GetDocument(document_id);
}

Result<KnowledgeBase::DocumentPage> KnowledgeBase::ListDocuments(const std::string& project,
                                                                 int64_t limit, int64_t offset) {
  KB_ASSIGN_OR_RETURN(auto h, Handle(project));
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
  KB_ASSIGN_OR_RETURN(auto h, Handle(project));
  std::lock_guard<std::mutex> lock(h->write_mu);
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
    KB_ASSIGN_OR_RETURN(auto h, Handle(project));
    handles.push_back(h);
  } else {
    std::shared_lock lock(projects_mu_);
    for (auto& [id, h] : projects_) handles.push_back(h);
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

// ---------------------------------------------------------------------------------------------
// Search

Result<QueryResponse> KnowledgeBase::Query(const std::string& project, const QueryRequest& req) {
  const int64_t started_us = MonotonicMicros();
  KB_ASSIGN_OR_RETURN(auto h, Handle(project));
  if (req.top_k < 1 || req.top_k > kMaxTopK) {
    return Status::InvalidArgument("top_k must be between 1 and " + std::to_string(kMaxTopK));
  }
  if (req.offset < 0 || req.offset > kMaxOffset) {
    return Status::InvalidArgument("offset must be between 0 and " + std::to_string(kMaxOffset));
  }
  if (!(req.alpha >= 0.0 && req.alpha <= 1.0)) {
    return Status::InvalidArgument("alpha must be between 0 and 1");
  }
  if (req.text.size() > kMaxQueryBytes) {
    return Status::InvalidArgument("query is longer than " + std::to_string(kMaxQueryBytes) +
                                   " bytes");
  }
  if (!IsValidUtf8(req.text)) return Status::InvalidArgument("query is not valid UTF-8");
  const bool has_text = !TrimWhitespace(req.text).empty();
  const bool has_vector = !req.vector.empty();
  const bool external = h->spec.kind == "external";
  if (!has_text && !has_vector) return Status::InvalidArgument("query is empty");
  if (req.mode == SearchMode::kKeyword && !has_text) {
    return Status::InvalidArgument("keyword search needs query text");
  }
  Vector qvec;
  if (has_vector) {
    if (!external) {
      return Status::InvalidArgument(
          "query vectors are accepted only by projects created with "
          "embedder kind 'external'");
    }
    if (static_cast<int>(req.vector.size()) != h->embedder->Dimension()) {
      return Status::InvalidArgument("vector has " + std::to_string(req.vector.size()) +
                                     " dimensions; the project expects " +
                                     std::to_string(h->embedder->Dimension()));
    }
    qvec = req.vector;
    if (!AllFinite(qvec) || !NormalizeL2(&qvec)) {
      return Status::InvalidArgument("vector must be finite and non-zero");
    }
  } else if (req.mode == SearchMode::kVector && external) {
    return Status::InvalidArgument("this project takes vectors from the caller: send \"vector\"");
  }
  KB_ASSIGN_OR_RETURN(auto filter, MetadataFilter::Parse(req.filters_json));

  counters_.queries++;
  const int64_t generation = h->generation.load();
  std::string cache_key;
  const bool use_cache = options_.enable_query_cache && req.use_cache;
  if (use_cache) {
    cache_key = std::string(SearchModeName(req.mode)) + "|" +
                std::string(FusionMethodName(req.fusion)) + "|" + std::to_string(req.alpha) + "|" +
                std::to_string(req.top_k) + "|" + std::to_string(req.offset) + "|" +
                filter->canonical() + "|" +
                Sha256Hex(std::string_view(reinterpret_cast<const char*>(req.vector.data()),
                                           req.vector.size() * sizeof(float))) +
                "|" + req.text;
    if (auto hit = h->cache.Get(cache_key, generation)) {
      counters_.query_cache_hits++;
      hit->cached = true;
      hit->took_ms = static_cast<double>(MonotonicMicros() - started_us) / 1000.0;
      return *hit;
    }
  }

  const bool want_vector = req.mode != SearchMode::kKeyword && (has_vector || !external);
  const bool want_keyword = req.mode != SearchMode::kVector && has_text;
  if (want_vector && qvec.empty()) {
    KB_ASSIGN_OR_RETURN(auto vecs, h->embedder->Embed({req.text}));
    if (vecs.size() != 1) return Status::Internal("embedder returned no vector for the query");
    qvec = std::move(vecs[0]);
  }

  const std::shared_ptr<VectorIndex> index = h->Index();
  const size_t needed = static_cast<size_t>(req.top_k + req.offset);
  size_t fetch = std::min(kMaxCandidates, std::max(kMinCandidates, needed * kCandidateFactor));
  std::vector<FusedHit> fused;
  std::vector<ChunkView> views;  // aligned with fused (only when filtering)
  for (;;) {
    std::vector<VectorHit> vhits;
    std::vector<KeywordHit> khits;
    if (want_vector) vhits = index->Search(qvec, fetch);
    if (want_keyword) {
      KB_ASSIGN_OR_RETURN(khits, h->store->KeywordSearch(req.text, fetch));
    }
    std::vector<FusedHit> all = FuseResults(vhits, khits, req.fusion, req.alpha);
    if (filter->empty()) {
      fused = std::move(all);
      break;
    }
    // Metadata filters are applied after retrieval; when they discard too much, retrieve more.
    std::vector<int64_t> ids;
    for (const auto& f : all) ids.push_back(f.chunk_id);
    KB_ASSIGN_OR_RETURN(auto hydrated, h->store->GetChunkViews(ids));
    std::unordered_map<int64_t, size_t> pos;
    for (size_t i = 0; i < hydrated.size(); ++i) pos[hydrated[i].chunk.id] = i;
    fused.clear();
    views.clear();
    for (const auto& f : all) {
      auto it = pos.find(f.chunk_id);
      if (it == pos.end()) continue;
      if (!filter->Matches(hydrated[it->second].document.metadata_json)) continue;
      fused.push_back(f);
      views.push_back(std::move(hydrated[it->second]));
    }
    const bool exhausted = vhits.size() < fetch && khits.size() < fetch;
    if (fused.size() >= needed || exhausted || fetch >= kMaxCandidates) break;
    fetch = std::min(kMaxCandidates, fetch * 4);
  }

  QueryResponse resp;
  if (filter->empty()) {
    // Hydrate just the page (plus a margin for chunks deleted since retrieval).
    size_t end = std::min(fused.size(), needed + 8);
    std::vector<int64_t> ids;
    for (size_t i = 0; i < end; ++i) ids.push_back(fused[i].chunk_id);
    KB_ASSIGN_OR_RETURN(auto hydrated, h->store->GetChunkViews(ids));
    std::unordered_map<int64_t, size_t> pos;
    for (size_t i = 0; i < hydrated.size(); ++i) pos[hydrated[i].chunk.id] = i;
    std::vector<FusedHit> kept;
    views.clear();
    for (size_t i = 0; i < end; ++i) {
      auto it = pos.find(fused[i].chunk_id);
      if (it == pos.end()) continue;
      kept.push_back(fused[i]);
      views.push_back(std::move(hydrated[it->second]));
    }
    fused = std::move(kept);
  }
  for (size_t i = static_cast<size_t>(req.offset); i < fused.size() && i < needed; ++i) {
    const FusedHit& f = fused[i];
    const ChunkView& v = views[i];
    QueryHit hit;
    hit.document_id = v.document.id;
    hit.chunk_id = f.chunk_id;
    hit.title = v.document.title;
    hit.source = v.document.source;
    hit.text = v.chunk.text;
    hit.heading_path = v.chunk.heading_path;
    hit.score = f.score;
    hit.vector_score = f.vector_score;
    hit.keyword_score = f.keyword_score;
    hit.rank = static_cast<int>(i + 1);
    hit.metadata_json = v.document.metadata_json;
    resp.hits.push_back(std::move(hit));
  }
  if (use_cache) h->cache.Put(cache_key, generation, resp);
  resp.took_ms = static_cast<double>(MonotonicMicros() - started_us) / 1000.0;
  return resp;
}

// ---------------------------------------------------------------------------------------------
// API keys

Result<CreatedKey> KnowledgeBase::CreateKey(const std::string& name, KeyScope scope,
                                            const std::vector<std::string>& projects,
                                            std::optional<int> expires_in_days, const Actor& actor,
                                            std::optional<int64_t> expires_at_ms) {
  if (name.empty()) return Status::InvalidArgument("key name must not be empty");
  KB_RETURN_IF_ERROR(ValidateLabel("name", name, kMaxKeyNameBytes));
  CreatedKey out;
  for (const std::string& p : projects) {
    KB_ASSIGN_OR_RETURN(auto h, Handle(p));
    out.record.projects.push_back(h->Record().id);
  }
  if (expires_in_days) {
    if (*expires_in_days < 1 || *expires_in_days > kMaxKeyLifetimeDays) {
      return Status::InvalidArgument("expires_in_days must be between 1 and " +
                                     std::to_string(kMaxKeyLifetimeDays));
    }
  }
  const int64_t now = clock_->NowMillis();
  if (expires_at_ms) {
    if (expires_in_days) {
      return Status::InvalidArgument("give expires_in_days or expires_at, not both");
    }
    if (*expires_at_ms <= now) return Status::InvalidArgument("expires_at must be in the future");
    if (*expires_at_ms - now > int64_t{kMaxKeyLifetimeDays} * 86'400'000) {
      return Status::InvalidArgument("expires_at is more than " +
                                     std::to_string(kMaxKeyLifetimeDays) + " days away");
    }
  }
  out.secret = NewKeySecret();
  out.record.id = "key_" + HexEncode(RandomBytes(8));
  out.record.name = name;
  out.record.secret_hash = Sha256Hex(out.secret);
  out.record.scope = scope;
  out.record.created_by = actor.id;
  out.record.created_at_ms = now;
  if (expires_in_days) out.record.expires_at_ms = now + int64_t{*expires_in_days} * 86'400'000;
  if (expires_at_ms) out.record.expires_at_ms = *expires_at_ms;
  KB_RETURN_IF_ERROR(catalog_->CreateKey(out.record));
  LogInfo("api key created", json{{"key", out.record.id}, {"actor", actor.id}}.dump());
  return out;
}

Result<CreatedKey> KnowledgeBase::RotateKey(const std::string& key_id, int64_t overlap_seconds,
                                            const Actor& actor) {
  if (overlap_seconds < 0 || overlap_seconds > kMaxRotationOverlapSeconds) {
    return Status::InvalidArgument("overlap_seconds must be between 0 and " +
                                   std::to_string(kMaxRotationOverlapSeconds));
  }
  KB_ASSIGN_OR_RETURN(ApiKeyRecord key, catalog_->GetKey(key_id));
  if (key.revoked_at_ms) {
    return Status::FailedPrecondition("api key " + key_id + " is revoked; create a new key");
  }
  const int64_t now = clock_->NowMillis();
  CreatedKey out;
  out.secret = NewKeySecret();
  std::optional<int64_t> previous_until;
  if (overlap_seconds > 0) previous_until = now + overlap_seconds * 1000;
  KB_RETURN_IF_ERROR(catalog_->RotateKey(key_id, Sha256Hex(out.secret), previous_until, now));
  KB_ASSIGN_OR_RETURN(out.record, catalog_->GetKey(key_id));
  LogInfo("api key rotated",
          json{{"key", key_id}, {"actor", actor.id}, {"overlap_seconds", overlap_seconds}}.dump());
  return out;
}

Result<RevokeAllResult> KnowledgeBase::RevokeAllKeys(const std::string& caller_key_id,
                                                     bool include_admin, const Actor& actor) {
  if (!include_admin && caller_key_id.empty()) {
    return Status::InvalidArgument(
        "without a calling key every key would be revoked, leaving no admin key: use "
        "include_admin, which prints a new admin key");
  }
  RevokeAllResult out;
  std::string keep = caller_key_id;
  if (include_admin) {
    // The replacement first: if anything fails after it, an admin key still exists.
    KB_ASSIGN_OR_RETURN(CreatedKey created,
                        CreateKey("admin (revoke-all)", KeyScope::kAdmin, {}, std::nullopt, actor));
    keep = created.record.id;
    out.new_admin = std::move(created);
  }
  KB_ASSIGN_OR_RETURN(out.revoked,
                      catalog_->RevokeAllKeys(keep, clock_->NowMillis(), kRevokedRevokeAll));
  LogWarn(
      "all api keys revoked",
      json{{"actor", actor.id}, {"revoked", out.revoked.size()}, {"include_admin", include_admin}}
          .dump());
  return out;
}

Status KnowledgeBase::ReinstateKey(const std::string& key_id, const Actor& actor) {
  KB_ASSIGN_OR_RETURN(ApiKeyRecord key, catalog_->GetKey(key_id));
  if (!key.revoked_at_ms) {
    return Status::FailedPrecondition("api key " + key_id + " is not revoked");
  }
  if (key.revoked_reason != kRevokedProjectDeleted) {
    return Status::FailedPrecondition(
        "api key " + key_id + " was revoked " +
        (key.revoked_reason.empty() ? std::string("by an administrator")
                                    : "(" + key.revoked_reason + ")") +
        "; only keys revoked by a project delete can be reinstated: create a new key");
  }
  for (const std::string& p : key.projects) {
    auto project = catalog_->GetProject(p);
    if (!project.ok() || project->id != p) {
      return Status::FailedPrecondition("api key " + key_id + " is limited to project " + p +
                                        ", which is deleted; restore the project first");
    }
  }
  KB_RETURN_IF_ERROR(catalog_->ReinstateKey(key_id));
  LogInfo("api key reinstated", json{{"key", key_id}, {"actor", actor.id}}.dump());
  return Status::OK();
}

Result<std::vector<ApiKeyRecord>> KnowledgeBase::ListKeys() { return catalog_->ListKeys(); }

Status KnowledgeBase::RevokeKey(const std::string& key_id, const Actor& actor) {
  KB_ASSIGN_OR_RETURN(ApiKeyRecord key, catalog_->GetKey(key_id));
  if (key.revoked_at_ms) return Status::OK();
  KB_RETURN_IF_ERROR(catalog_->RevokeKey(key_id, clock_->NowMillis(), kRevokedByAdmin));
  LogInfo("api key revoked", json{{"key", key_id}, {"actor", actor.id}}.dump());
  return Status::OK();
}

Result<ApiKeyRecord> KnowledgeBase::Authenticate(const std::string& secret,
                                                 std::string* out_key_id) {
  if (secret.empty()) return Status::Unauthenticated("missing API key");
  // No cache in front of the catalog: a revocation committed before this read is seen by it,
  // on every thread (docs/API.md "Key lifecycle").
  const std::string hash = Sha256Hex(secret);
  auto found = catalog_->FindKeyBySecretHash(hash);
  if (!found.ok()) {
    if (found.status().code() == Code::kNotFound) return Status::Unauthenticated("unknown API key");
    return found.status();
  }
  ApiKeyRecord key = std::move(found).value();
  if (out_key_id) *out_key_id = key.id;
  const int64_t now = clock_->NowMillis();
  if (key.revoked_at_ms) return Status::Unauthenticated("API key has been revoked");
  if (key.secret_hash != hash) {
    // The secret from before the last rotation: valid only within the overlap.
    if (!key.previous_expires_at_ms || *key.previous_expires_at_ms <= now) {
      return Status::Unauthenticated("API key secret was rotated; use the new secret");
    }
  }
  if (key.expires_at_ms && *key.expires_at_ms <= now) {
    return Status::Unauthenticated("API key has expired");
  }
  // last_used_at is informational: write it at most once a minute per key, so that reads do not
  // turn into catalog writes.
  if (!key.last_used_at_ms || now - *key.last_used_at_ms >= kKeyTouchIntervalMs) {
    Status s = catalog_->TouchKey(key.id, now);
    if (!s.ok()) LogWarn("recording key use failed", json{{"error", s.ToString()}}.dump());
  }
  return key;
}

Result<std::optional<std::string>> KnowledgeBase::EnsureAdminKey(const std::string& admin_token) {
  const int64_t now = clock_->NowMillis();
  if (!admin_token.empty()) {
    if (admin_token.size() < 16) {
      return Status::InvalidArgument("KB_ADMIN_TOKEN must be at least 16 characters");
    }
    auto existing = catalog_->FindKeyBySecretHash(Sha256Hex(admin_token));
    if (existing.ok()) return std::optional<std::string>();
    if (existing.status().code() != Code::kNotFound) return existing.status();
    ApiKeyRecord r;
    r.id = "key_" + HexEncode(RandomBytes(8));
    r.name = "admin (KB_ADMIN_TOKEN)";
    r.secret_hash = Sha256Hex(admin_token);
    r.scope = KeyScope::kAdmin;
    r.created_by = "system";
    r.created_at_ms = now;
    KB_RETURN_IF_ERROR(catalog_->CreateKey(r));
    return std::optional<std::string>();
  }
  KB_ASSIGN_OR_RETURN(auto keys, catalog_->ListKeys());
  for (const auto& k : keys) {
    if (k.scope == KeyScope::kAdmin && !k.revoked_at_ms) return std::optional<std::string>();
  }
  KB_ASSIGN_OR_RETURN(CreatedKey created,
                      CreateKey("admin", KeyScope::kAdmin, {}, std::nullopt, Actor{"system", ""}));
  return std::optional<std::string>(created.secret);
}

// ---------------------------------------------------------------------------------------------
// Status

Result<KbStats> KnowledgeBase::Stats() {
  KbStats st;
  std::vector<std::shared_ptr<ProjectHandle>> handles;
  {
    std::shared_lock lock(projects_mu_);
    for (auto& [id, h] : projects_) handles.push_back(h);
  }
  for (auto& h : handles) {
    ProjectStats ps;
    ps.project = h->Record();
    KB_ASSIGN_OR_RETURN(ps.counts, h->store->Counts());
    const std::shared_ptr<VectorIndex> index = h->Index();
    ps.index_vectors = index->Size();
    ps.index_memory_bytes = index->MemoryBytes();
    ps.index_lsn = index->lsn();
    KB_ASSIGN_OR_RETURN(ps.journal_lsn, h->store->LastLsn());
    ps.disk_bytes = DirectorySize(h->dir);
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
  {
    std::lock_guard<std::mutex> lock(check_mu_);
    r.integrity = last_check_;
  }
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
// Integrity

Result<IntegrityReport> KnowledgeBase::RunIntegrityCheck() {
  std::lock_guard<std::mutex> run(check_run_mu_);
  if (Closing()) return Status::Unavailable("the knowledge base is closing");
  IntegrityCheckOptions o;
  o.index = options_.index;
  o.clock = clock_;
  o.cancelled = [this] { return Closing(); };
  o.check_vector_index = [this](const ExpectedProject& p, const std::string& dir) {
    return CheckProjectIndex(p, dir);
  };
  KB_ASSIGN_OR_RETURN(IntegrityReport report, CheckDataDirectory(options_.data_dir, o));
  if (report.cancelled) {
    return Status::Unavailable("integrity check interrupted: the knowledge base is closing");
  }
  const int64_t finished = report.started_at_ms + report.duration_ms;
  counters_.integrity_check_last_duration_ms = report.duration_ms;
  if (report.found_problem()) counters_.integrity_check_failures++;
  if (report.severity() == CheckSeverity::kOk) {
    counters_.integrity_check_last_success_ms = finished;
  }

  IntegritySummary summary;
  summary.finished_at_ms = finished;
  summary.duration_ms = report.duration_ms;
  summary.status = report.severity();
  summary.problems = report.Problems(/*outstanding_only=*/true);
  summary.repaired = report.Repairs();
  if (int64_t ok_at = counters_.integrity_check_last_success_ms.load(); ok_at > 0) {
    summary.last_success_at_ms = ok_at;
  }
  json fields = {{"status", std::string(CheckSeverityName(summary.status))},
                 {"databases", report.databases.size()},
                 {"duration_ms", report.duration_ms}};
  if (!report.found_problem()) {
    LogInfo("integrity check passed", fields.dump());
  } else {
    fields["problems"] = report.Problems(/*outstanding_only=*/false);
    if (summary.status == CheckSeverity::kUnhealthy) {
      LogError("integrity check found damage", fields.dump());
    } else {
      LogWarn("integrity check found damage", fields.dump());
    }
  }
  {
    std::lock_guard<std::mutex> lock(check_mu_);
    last_check_ = std::move(summary);
  }
  // Counted only once Health() can see this run: whoever waits for the count reads its summary.
  counters_.integrity_checks++;
  return report;
}

// The online vector_index check of one project: the saved files (read while no save can replace
// them) and the in-memory index (compared with kb.db at exactly the LSN it reflects, which needs
// the write mutex only while its labels are copied and the database snapshot is pinned). Any
// disagreement is answered by a rebuild from kb.db.
CheckResult KnowledgeBase::CheckProjectIndex(const ExpectedProject& project,
                                             const std::string& project_dir) {
  CheckResult result{std::string(kCheckVectorIndex), CheckSeverity::kOk, "", false, ""};
  std::shared_ptr<ProjectHandle> h;
  bool restoring = false;
  {
    std::shared_lock lock(projects_mu_);
    auto it = projects_.find(project.id);
    if (it != projects_.end()) h = it->second;
    restoring = restoring_.count(project.id) != 0;
  }
  if (!h) {
    result.note = std::string("not checked: the server has not loaded this project (") +
                  (restoring         ? "it is being restored"
                   : project.deleted ? "it is deleted"
                                     : "it failed to open") +
                  ")";
    return result;
  }
  std::string at_load;
  {
    std::lock_guard<std::mutex> lock(h->write_mu);
    at_load.swap(h->load_repair);
  }
  std::vector<std::string> problems;
  {
    std::lock_guard<std::mutex> save(h->save_mu);
    CheckResult saved = CheckSavedVectorIndex(project_dir, project.dimension, options_.index);
    if (saved.found_problem()) problems.push_back("saved index: " + saved.problem);
  }
  auto cmp = IndexComparison::Open(layout::ProjectDbIn(project_dir), project.dimension);
  if (!cmp.ok()) {
    problems.push_back("in-memory index: cannot read kb.db to compare: " + cmp.status().message());
  } else {
    std::shared_ptr<VectorIndex> index;
    std::vector<int64_t> labels;
    int64_t applied = 0, db_lsn = 0;
    bool stale = false;
    Status pinned;
    {
      // No commit can happen while write_mu is held, so the snapshot pinned here is the state
      // the in-memory index reflects.
      std::lock_guard<std::mutex> lock(h->write_mu);
      index = h->index;
      labels = index->Labels();
      applied = h->applied_lsn;
      stale = h->index_stale;
      auto lsn = (*cmp)->Pin();
      if (lsn.ok())
        db_lsn = *lsn;
      else
        pinned = lsn.status();
    }
    if (!pinned.ok()) {
      problems.push_back("in-memory index: cannot read kb.db to compare: " + pinned.message());
    } else if (stale) {
      problems.push_back(
          "in-memory index: an update failed after a commit, so it misses "
          "changes (kb.db is at LSN " +
          std::to_string(db_lsn) + ")");
    } else if (applied != db_lsn) {
      problems.push_back("in-memory index: it reflects LSN " + std::to_string(applied) +
                         " but kb.db is at LSN " + std::to_string(db_lsn) +
                         " (written by another process while the server runs?)");
    } else {
      auto diff = (*cmp)->Compare(*index, labels);
      if (!diff.ok()) {
        problems.push_back("in-memory index: cannot compare with kb.db: " +
                           diff.status().message());
      } else if (!diff->empty()) {
        problems.push_back("in-memory index: " + *diff);
      }
    }
  }
  if (!at_load.empty()) problems.insert(problems.begin(), at_load);
  if (problems.empty()) return result;

  result.severity = CheckSeverity::kDegraded;
  for (const std::string& p : problems) result.problem += (result.problem.empty() ? "" : "; ") + p;
  if (problems.size() == 1 && !at_load.empty()) {
    result.repaired = true;  // already rebuilt when loaded, and sound now
    return result;
  }
  LogWarn("vector index damaged; rebuilding from the database",
          json{{"project", project.id}, {"problem", result.problem}}.dump());
  Status rebuilt = RebuildIndex(*h);
  if (rebuilt.ok()) {
    result.repaired = true;
    result.note = "rebuilt from kb.db";
  } else {
    result.problem += "; rebuilding it failed: " + rebuilt.message();
    LogError("vector index rebuild failed",
             json{{"project", project.id}, {"error", rebuilt.ToString()}}.dump());
  }
  return result;
}

Status KnowledgeBase::RebuildIndex(ProjectHandle& h) {
  const int dimension = h.Record().embedding_dimension;
  VectorIndexOptions iopts = options_.index;
  iopts.dimension = dimension;
  // The expensive part, without any lock: queries keep using the old index meanwhile.
  KB_ASSIGN_OR_RETURN(std::unique_ptr<VectorIndex> fresh,
                      BuildVectorIndexFromDatabase(layout::ProjectDbIn(h.dir), dimension, iopts));
  {
    std::lock_guard<std::mutex> lock(h.write_mu);
    // Catch up with what was committed while it was built; then swap.
    int64_t after = fresh->lsn();
    KB_ASSIGN_OR_RETURN(int64_t last_lsn, h.store->LastLsn());
    while (after < last_lsn) {
      KB_ASSIGN_OR_RETURN(auto entries, h.store->ReadJournal(after, kJournalCatchUpBatch));
      if (entries.empty()) break;
      for (const JournalEntry& e : entries) {
        KB_ASSIGN_OR_RETURN(IndexDelta delta, DecodeIndexDelta(e));
        KB_RETURN_IF_ERROR(ApplyDelta(delta, fresh.get()));
        after = e.lsn;
      }
    }
    fresh->set_lsn(after);
    {
      std::lock_guard<std::mutex> ptr(h.index_ptr_mu);
      h.index = std::move(fresh);
    }
    h.applied_lsn = after;
    h.index_stale = false;
    h.dirty = true;
    h.generation++;  // results may differ: drop cached ones
  }
  counters_.index_rebuilds++;
  return SaveIndex(h);
}

}  // namespace kb
