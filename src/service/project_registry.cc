// The loaded projects: see project_registry.h.
#include "service/project_registry.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/data_layout.h"
#include "common/file_util.h"
#include "common/logging.h"

namespace kb {

using nlohmann::json;

namespace {

constexpr size_t kJournalCatchUpBatch = 1000;

// Applies one journal entry's effect to an index.
Status ApplyDelta(const IndexDelta& delta, VectorIndex* index) {
  for (int64_t label : delta.removals) index->Remove(label);
  for (const auto& [label, vec] : delta.upserts) {
    KB_RETURN_IF_ERROR(index->Upsert(label, vec));
  }
  return Status::OK();
}

}  // namespace

Result<int64_t> ReplayJournal(ProjectStore& store, VectorIndex* index, int64_t after,
                              int64_t last_lsn, int64_t* applied, int64_t* failed_lsn) {
  while (after < last_lsn) {
    KB_ASSIGN_OR_RETURN(auto entries, store.ReadJournal(after, kJournalCatchUpBatch));
    if (entries.empty()) break;
    for (const JournalEntry& e : entries) {
      auto delta = DecodeIndexDelta(e);
      Status s = delta.ok() ? ApplyDelta(*delta, index) : delta.status();
      if (!s.ok()) {
        if (failed_lsn) *failed_lsn = e.lsn;
        return s;
      }
      after = e.lsn;
      if (applied) ++*applied;
    }
  }
  return after;
}

ProjectRegistry::ProjectRegistry(const KbOptions& options, const Clock* clock, Catalog* catalog,
                                 KbCounters* counters)
    : options_(options), clock_(clock), catalog_(catalog), counters_(counters) {}

std::string ProjectRegistry::ProjectDir(const std::string& project_id) const {
  return layout::ProjectDir(options_.data_dir, project_id);
}

Status ProjectRegistry::LoadAll(std::vector<std::string>* problems) {
  KB_ASSIGN_OR_RETURN(auto records, catalog_->ListProjects(/*include_deleted=*/false));
  for (const ProjectRecord& r : records) {
    auto handle = OpenHandle(r, /*loading=*/true);
    if (!handle.ok()) {
      // One project's damage never takes the others down: report it and go on.
      std::string problem =
          "project '" + r.name + "' (" + r.id + "): " + handle.status().ToString();
      LogError("project failed to open", json{{"project", r.id}, {"error", problem}}.dump());
      problems->push_back(problem);
      if (handle.status().code() == Code::kFailedPrecondition) return handle.status();
      continue;
    }
    Put(r.id, std::move(handle).value());
  }
  return Status::OK();
}

Result<std::shared_ptr<ProjectHandle>> ProjectRegistry::OpenHandle(const ProjectRecord& record,
                                                                   bool loading) {
  auto h = std::make_shared<ProjectHandle>();
  // The handle is not shared yet: its locks are uncontended here, taken so that the analysis
  // can check the fields they guard.
  {
    MutexLock lock(h->record_mu);
    h->record = record;
  }
  h->dir = ProjectDir(record.id);
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
  {
    MutexLock lock(h->write_mu);
    KB_RETURN_IF_ERROR(LoadIndex(*h, record, loading));
  }
  return h;
}

Status ProjectRegistry::LoadIndex(ProjectHandle& h, const ProjectRecord& record, bool loading) {
  KB_ASSIGN_OR_RETURN(int64_t last_lsn, h.store->LastLsn());
  VectorIndexOptions iopts = options_.index;
  iopts.dimension = record.embedding_dimension;
  auto loaded = VectorIndex::Load(h.index_dir(), iopts);
  std::string why;  // why an existing project's index has to be rebuilt; empty = it need not
  if (!loaded.ok()) {
    why = loaded.status().message();
    if (loaded.status().code() != Code::kNotFound) {
      LogWarn("vector index damaged; rebuilding from the database",
              json{{"project", record.id}, {"error", loaded.status().ToString()}}.dump());
    }
  } else if (h.index = std::move(loaded).value(); h.index->lsn() > last_lsn) {
    // The index claims changes the database does not have (e.g. the database was restored
    // to an earlier point): it cannot be trusted.
    LogWarn("vector index is ahead of the journal; rebuilding",
            json{{"project", record.id}, {"index_lsn", h.index->lsn()}, {"lsn", last_lsn}}.dump());
    why = "the saved index reflects LSN " + std::to_string(h.index->lsn()) +
          ", ahead of the journal (LSN " + std::to_string(last_lsn) + ")";
  } else {
    int64_t applied = 0, failed_lsn = 0;
    auto reached =
        ReplayJournal(*h.store, h.index.get(), h.index->lsn(), last_lsn, &applied, &failed_lsn);
    if (reached.ok()) {
      h.applied_lsn = *reached;
      h.dirty = applied > 0;
    } else if (failed_lsn == 0) {
      return reached.status();  // reading the journal failed, not replaying it
    } else {
      LogWarn("journal entry unreadable during index catch-up; rebuilding",
              json{{"project", record.id}, {"lsn", failed_lsn}}.dump());
      why = "journal entry " + std::to_string(failed_lsn) +
            " could not be replayed onto it: " + reached.status().message();
    }
  }
  const bool rebuild = !why.empty() || !h.index;
  if (rebuild) {
    h.index = VectorIndex::Create(iopts);
    Status upsert_status;
    KB_RETURN_IF_ERROR(h.store->ForEachLiveEmbedding([&](int64_t id, std::span<const float> v) {
      if (upsert_status.ok()) upsert_status = h.index->Upsert(id, v);
    }));
    KB_RETURN_IF_ERROR(upsert_status);
    h.applied_lsn = last_lsn;
    h.dirty = true;
    counters_->index_rebuilds++;
    if (loading) h.load_repair = "rebuilt from kb.db when the project was loaded: " + why;
  }
  // Persist a rebuilt index now, so that the next start loads it instead of rebuilding. A
  // replayed one is left to the saver (within index_save_interval): saving rewrites and hashes
  // the whole graph file, ~40% of the time a restored server took to become ready, and
  // replaying the same entries again after a crash is cheap. Without a saver, save now.
  if (h.dirty && (rebuild || options_.index_save_interval_ms <= 0)) {
    Status s = h.index->Save(h.index_dir(), h.applied_lsn);
    if (s.ok())
      h.dirty = false;
    else
      LogWarn("saving vector index failed", json{{"error", s.ToString()}}.dump());
  }
  return Status::OK();
}

Result<std::shared_ptr<ProjectHandle>> ProjectRegistry::Find(const std::string& id_or_name) {
  ReaderLock lock(projects_mu_);
  auto it = projects_.find(id_or_name);
  if (it != projects_.end()) return it->second;
  if (restoring_.count(id_or_name)) {
    return Status::Unavailable("project " + id_or_name + " is being restored; try again shortly");
  }
  for (auto& [id, h] : projects_) {
    MutexLock rlock(h->record_mu);
    if (h->record.name == id_or_name) return h;
  }
  return Status::NotFound("project '" + id_or_name + "' does not exist");
}

std::shared_ptr<ProjectHandle> ProjectRegistry::FindById(const std::string& id, bool* restoring) {
  ReaderLock lock(projects_mu_);
  if (restoring) *restoring = restoring_.count(id) != 0;
  auto it = projects_.find(id);
  return it == projects_.end() ? nullptr : it->second;
}

bool ProjectRegistry::LoadedOrRestoring(const std::string& id) {
  ReaderLock lock(projects_mu_);
  return projects_.count(id) || restoring_.count(id);
}

bool ProjectRegistry::NameTaken(const std::string& name) {
  ReaderLock lock(projects_mu_);
  for (auto& [id, h] : projects_) {
    MutexLock rlock(h->record_mu);
    if (h->record.name == name) return true;
  }
  return false;
}

std::vector<std::shared_ptr<ProjectHandle>> ProjectRegistry::All() {
  std::vector<std::shared_ptr<ProjectHandle>> handles;
  ReaderLock lock(projects_mu_);
  for (auto& [id, h] : projects_) handles.push_back(h);
  return handles;
}

void ProjectRegistry::Put(const std::string& id, std::shared_ptr<ProjectHandle> handle) {
  WriterLock lock(projects_mu_);
  projects_[id] = std::move(handle);
}

void ProjectRegistry::Remove(const std::string& id) {
  WriterLock lock(projects_mu_);
  projects_.erase(id);
}

void ProjectRegistry::EndRestore(const ProjectRecord& record) {
  WriterLock lock(projects_mu_);
  restoring_.erase(record.id);
  restoring_.erase(record.name);
}

Status ProjectRegistry::ReplaceProject(const ProjectRecord& record, const std::string& staged_dir,
                                       const std::string& aside_dir) {
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
    WriterLock lock(projects_mu_);
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
  if (old) {
    // SQLite removes a database's -wal and -shm files by path when its last connection closes,
    // so the old store must be closed before another database appears under that path. Wait for
    // requests still using the old handle to finish (they are short), then close it.
    Status closed = RetireHandle(old);
    if (!closed.ok()) {
      Put(record.id, old);
      EndRestore(record);
      return closed;
    }
  }
  Status swapped = SwapInRestoredProject(record, staged_dir, aside_dir);
  if (!swapped.ok() && old) {
    // The renames were undone: reopen the project as it was.
    auto reopened = OpenHandle(old->Record());
    if (reopened.ok()) {
      Put(record.id, std::move(reopened).value());
    } else {
      LogError("project could not be reopened after a failed restore",
               json{{"project", record.id}, {"error", reopened.status().ToString()}}.dump());
    }
  }
  EndRestore(record);
  return swapped;
}

Status ProjectRegistry::RetireHandle(const std::shared_ptr<ProjectHandle>& h) {
  const int64_t deadline = MonotonicMicros() + kRetireWaitMicros;
  while (h.use_count() > 1) {
    if (MonotonicMicros() > deadline) {
      return Status::Unavailable("project " + h->Record().id +
                                 " stayed busy; restore not started, try again");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  MutexLock lock(h->write_mu);
  if (h->dirty && !h->index_stale) {
    Status s = h->index->Save(h->index_dir(), h->applied_lsn);
    if (!s.ok()) LogWarn("saving vector index failed", json{{"error", s.ToString()}}.dump());
  }
  h->index_stale = true;  // never saved again
  h->store.reset();
  h->index.reset();
  return Status::OK();
}

Status ProjectRegistry::SwapInRestoredProject(const ProjectRecord& record,
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
  auto handle = OpenHandle(row);
  if (!handle.ok()) {
    undo();
    return handle.status().WithContext("reopening restored project " + record.id);
  }
  Put(record.id, std::move(handle).value());
  (void)FsyncPath(layout::ProjectsDir(options_.data_dir));
  return Status::OK();
}

}  // namespace kb
