// The soft-delete lifecycle: see lifecycle.h for the ordering rules.
#include "service/lifecycle.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/data_layout.h"
#include "common/file_util.h"
#include "common/logging.h"

namespace kb {

using nlohmann::json;

namespace {

// Documents purged per store call batch (one transaction each; the batch bounds memory).
constexpr int64_t kPurgeBatch = 500;
// Deleted documents read per page while looking for restore candidates.
constexpr int64_t kRestoreScanPage = 500;

const Actor kSystemActor{"system", "system"};

}  // namespace

void SoftDeleteLifecycle::AuditAction(const Actor& actor, const std::string& route,
                                      const std::string& action, const std::string& project,
                                      std::vector<std::string> document_ids,
                                      const std::string& outcome, const std::string& detail) {
  if (options_.audit == nullptr) return;
  // Only background work: API calls are recorded by the HTTP middleware (api/audit_hook.h) and
  // direct-mode CLI commands by the CLI's backend (cli/direct_backend.cc), each exactly once.
  if (actor.id != "system") return;
  AuditEvent e;
  e.actor_id = actor.id;
  e.actor_name = actor.name;
  e.method = "SYSTEM";
  e.route = route;
  e.action = action;
  e.project = project;
  e.document_ids = std::move(document_ids);
  e.outcome = outcome;
  e.detail = detail;
  options_.audit->Record(std::move(e));
}

SoftDeleteLifecycle::SoftDeleteLifecycle(const KbOptions& options, const Clock* clock,
                                         Catalog* catalog, ProjectRegistry* registry,
                                         IndexMaintenance* maintenance, StopSignal* stop)
    : options_(options),
      clock_(clock),
      catalog_(catalog),
      registry_(registry),
      maintenance_(maintenance),
      stop_(stop) {}

void SoftDeleteLifecycle::Start() {
  if (options_.purge_interval_ms > 0) purger_ = std::thread([this] { PurgerLoop(); });
}

void SoftDeleteLifecycle::Join() {
  if (purger_.joinable()) purger_.join();
}

void SoftDeleteLifecycle::PurgerLoop() {
  while (!stop_->WaitFor(options_.purge_interval_ms)) {
    auto report = Purge(/*dry_run=*/false, kSystemActor);
    if (!report.ok()) {
      LogError("purge could not run", json{{"error", report.status().ToString()}}.dump());
    }
  }
}

Result<PurgeReport> SoftDeleteLifecycle::Purge(bool dry_run, const Actor& actor) {
  MutexLock serial(lifecycle_mu_);
  if (options_.deletion_grace_period_ms < 0) {
    return Status::InvalidArgument("deletion_grace_period must not be negative");
  }
  PurgeReport report;
  report.dry_run = dry_run;
  report.cutoff_ms = clock_->NowMillis() - options_.deletion_grace_period_ms;
  const std::string route = dry_run ? "purge --dry-run" : "purge";

  // Documents of live projects.
  for (auto& h : registry_->All()) {
    if (stop_->Stopping()) {
      return Status::Unavailable("purge interrupted: the knowledge base is closing");
    }
    KB_RETURN_IF_ERROR(PurgeDocumentsOf(*h, actor, route, &report));
  }

  // Whole projects.
  KB_ASSIGN_OR_RETURN(auto all, catalog_->ListProjects(/*include_deleted=*/true));
  for (const ProjectRecord& p : all) {
    if (!p.deleted_at_ms || *p.deleted_at_ms > report.cutoff_ms) continue;
    if (registry_->LoadedOrRestoring(p.id)) continue;  // live again / busy
    PurgedItem item{p.id, p.name, "", *p.deleted_at_ms, p.deleted_by};
    if (!dry_run) {
      if (!PurgeProject(p, &report)) continue;
      AuditAction(actor, route, "purge", p.id, {}, "ok", "project '" + p.name + "' purged");
    }
    report.projects.push_back(std::move(item));
  }
  if (!dry_run && (!report.documents.empty() || !report.projects.empty())) {
    LogInfo("purged soft-deleted items", json{{"documents", report.documents.size()},
                                              {"projects", report.projects.size()},
                                              {"problems", report.problems},
                                              {"actor", actor.id}}
                                             .dump());
  }
  if (!report.problems.empty()) {
    LogError("purge left problems", json{{"problems", report.problems}}.dump());
  }
  return report;
}

Status SoftDeleteLifecycle::PurgeDocumentsOf(ProjectHandle& h, const Actor& actor,
                                             const std::string& route, PurgeReport* report) {
  const ProjectRecord r = h.Record();
  std::vector<std::string> purged_ids;
  // Dry run: one listing. Real run: purge in batches until nothing is due (each purge removes
  // the row, so the next listing starts after it).
  while (true) {
    KB_ASSIGN_OR_RETURN(auto due, h.store->DeletedBefore(report->cutoff_ms, kPurgeBatch));
    if (due.empty()) break;
    for (const DocumentRecord& d : due) {
      PurgedItem item{r.id, r.name, d.id, d.deleted_at_ms.value_or(0), d.deleted_by};
      if (report->dry_run) {
        report->documents.push_back(std::move(item));
        continue;
      }
      MutexLock write(h.write_mu);
      auto chunk_ids = h.store->PurgeDocument(d.id, actor.id);
      if (!chunk_ids.ok()) {
        report->problems.push_back("document " + d.id + " of project " + r.id + ": " +
                                   chunk_ids.status().ToString());
        continue;
      }
      for (int64_t id : *chunk_ids) h.index->Remove(id);
      auto lsn = h.store->LastLsn();
      if (lsn.ok()) h.applied_lsn = *lsn;
      h.dirty = true;
      h.generation++;
      purged_ids.push_back(d.id);
      report->documents.push_back(std::move(item));
    }
    if (report->dry_run || purged_ids.empty() || static_cast<int64_t>(due.size()) < kPurgeBatch ||
        !report->problems.empty()) {
      break;
    }
  }
  if (purged_ids.empty()) return Status::OK();
  // The keyword index and the WAL still hold purged bytes until compacted; the HNSW graph
  // keeps the vectors of removed labels (markDelete) until it is rebuilt.
  Status compacted = h.store->CompactAfterPurge();
  if (!compacted.ok()) report->problems.push_back("project " + r.id + ": " + compacted.ToString());
  Status rebuilt = maintenance_->RebuildIndex(h);
  if (!rebuilt.ok()) {
    report->problems.push_back("project " + r.id +
                               ": rebuilding the vector index: " + rebuilt.ToString());
  }
  AuditAction(actor, route, "purge", r.id, purged_ids, compacted.ok() ? "ok" : "failed",
              std::to_string(purged_ids.size()) + " documents purged");
  return Status::OK();
}

bool SoftDeleteLifecycle::PurgeProject(const ProjectRecord& p, PurgeReport* report) {
  namespace fs = std::filesystem;
  const std::string dir = registry_->ProjectDir(p.id);
  const std::string doomed = layout::PurgingProjectDir(options_.data_dir, p.id);
  std::error_code ec;
  if (PathExists(dir)) {
    Status moved = RenamePath(dir, doomed);
    if (!moved.ok()) {
      report->problems.push_back("project " + p.id + ": " + moved.ToString());
      return false;
    }
  }
  fs::remove_all(doomed, ec);
  if (ec) {
    report->problems.push_back("project " + p.id + ": removing " + doomed + ": " + ec.message());
    return false;
  }
  (void)FsyncPath(layout::ProjectsDir(options_.data_dir));
  Status row = catalog_->DeleteProjectRow(p.id);
  if (!row.ok()) {
    report->problems.push_back("project " + p.id + ": " + row.ToString());
    return false;
  }
  return true;
}

Status SoftDeleteLifecycle::UndeleteDocumentLocked(ProjectHandle& h, const std::string& document_id,
                                                   const Actor& actor) {
  KB_RETURN_IF_ERROR(h.store->UndeleteDocument(document_id, actor.id).status());
  // The rows were never removed: the same chunk ids and embeddings go back into the index, and
  // the keyword index gets the same rowids back (migration 2's undelete trigger), so the
  // document is found again with the same ids and scores.
  auto chunks = h.store->GetDocumentChunks(document_id);
  Status indexed = chunks.status();
  if (chunks.ok()) {
    std::vector<int64_t> ids;
    std::vector<std::vector<float>> vectors;
    for (ChunkRecord& c : *chunks) {
      ids.push_back(c.id);
      vectors.push_back(std::move(c.embedding));
    }
    indexed = h.index->UpsertBatch(ids, vectors);
  }
  if (!indexed.ok()) {
    LogError("index update failed after commit", json{{"error", indexed.ToString()}}.dump());
    h.index_stale = true;
  } else {
    auto lsn = h.store->LastLsn();
    if (lsn.ok()) h.applied_lsn = *lsn;
    h.dirty = true;
  }
  h.generation++;
  return Status::OK();
}

Result<RestoreDeletedReport> SoftDeleteLifecycle::RestoreDeleted(const RestoreDeletedRequest& req,
                                                                 const Actor& actor) {
  if (req.project.empty()) return Status::InvalidArgument("project is required");
  if (!req.before_ms && req.document_ids.empty()) {
    return Status::InvalidArgument(
        "give 'before' (restore everything deleted since) or "
        "'document_ids'");
  }
  if (req.document_ids.size() > kMaxRestoreDocumentIds) {
    return Status::InvalidArgument("at most " + std::to_string(kMaxRestoreDocumentIds) +
                                   " document_ids per restore");
  }
  MutexLock serial(lifecycle_mu_);
  RestoreDeletedReport report;

  auto live = registry_->Find(req.project);
  std::shared_ptr<ProjectHandle> h;
  if (live.ok()) {
    h = std::move(live).value();
  } else if (live.status().code() != Code::kNotFound) {
    return live.status();
  } else {
    // A soft-deleted project: bring it back first.
    KB_ASSIGN_OR_RETURN(h, ReopenDeletedProject(req, actor));
    report.project_restored = true;
  }
  const ProjectRecord r = h->Record();
  report.project_id = r.id;
  report.project_name = r.name;

  KB_ASSIGN_OR_RETURN(std::vector<std::string> candidates, RestoreCandidates(*h, req));
  MutexLock write(h->write_mu);
  for (const std::string& id : candidates) {
    auto doc = h->store->GetDocument(id, /*include_deleted=*/true);
    if (!doc.ok()) {
      if (doc.status().code() != Code::kNotFound) return doc.status();
      report.skipped.push_back({id, "not_found", "no such document (never existed or purged)"});
      continue;
    }
    if (!doc->deleted_at_ms) {
      report.skipped.push_back({id, "not_deleted", "the document is live"});
      continue;
    }
    if (req.before_ms && *doc->deleted_at_ms < *req.before_ms) {
      report.skipped.push_back(
          {id, "deleted_before_cutoff", "deleted at " + FormatIso8601(*doc->deleted_at_ms)});
      continue;
    }
    Status s = UndeleteDocumentLocked(*h, id, actor);
    if (s.code() == Code::kAlreadyExists) {
      report.skipped.push_back(
          {id, "source_taken", "a live document now has source '" + doc->source + "'"});
      continue;
    }
    KB_RETURN_IF_ERROR(s);
    report.restored_documents.push_back(id);
  }
  LogInfo("deleted items restored", json{{"project", r.id},
                                         {"project_restored", report.project_restored},
                                         {"documents", report.restored_documents.size()},
                                         {"skipped", report.skipped.size()},
                                         {"actor", actor.id}}
                                        .dump());
  return report;
}

Result<std::shared_ptr<ProjectHandle>> SoftDeleteLifecycle::ReopenDeletedProject(
    const RestoreDeletedRequest& req, const Actor& actor) {
  KB_ASSIGN_OR_RETURN(ProjectRecord p, catalog_->GetProject(req.project, /*include_deleted=*/true));
  if (!p.deleted_at_ms) return Status::NotFound("project '" + req.project + "' does not exist");
  if (req.before_ms && *p.deleted_at_ms < *req.before_ms) {
    return Status::FailedPrecondition("project '" + p.name + "' was deleted at " +
                                      FormatIso8601(*p.deleted_at_ms) + ", before 'before' (" +
                                      FormatIso8601(*req.before_ms) + "); choose an earlier time");
  }
  if (!PathExists(layout::ProjectDbIn(registry_->ProjectDir(p.id)))) {
    return Status::FailedPrecondition("project '" + p.name +
                                      "' has no database any more (it was being purged)");
  }
  const int64_t deleted_at = *p.deleted_at_ms;
  const std::string deleted_by = p.deleted_by;
  KB_RETURN_IF_ERROR(catalog_->UnmarkProjectDeleted(p.id));  // AlreadyExists on a name clash
  p.deleted_at_ms.reset();
  p.deleted_by.clear();
  auto opened = registry_->OpenHandle(p);
  if (!opened.ok()) {
    // Leave it as it was: deleted, at its original time (its keys are revoked already).
    Status undo = catalog_->MarkProjectDeleted(p.id, deleted_by, deleted_at);
    if (!undo.ok()) {
      LogError("could not mark a project deleted again after a failed restore",
               json{{"project", p.id}, {"error", undo.ToString()}}.dump());
    }
    return opened.status().WithContext("opening restored project " + p.id);
  }
  std::shared_ptr<ProjectHandle> h = std::move(opened).value();
  registry_->Put(p.id, h);
  LogInfo("project restored", json{{"project", p.id}, {"actor", actor.id}}.dump());
  return h;
}

Result<std::vector<std::string>> SoftDeleteLifecycle::RestoreCandidates(
    ProjectHandle& h, const RestoreDeletedRequest& req) {
  std::vector<std::string> candidates = req.document_ids;
  if (!candidates.empty()) return candidates;
  for (int64_t offset = 0;; offset += kRestoreScanPage) {
    KB_ASSIGN_OR_RETURN(auto page, h.store->ListDeletedDocuments(kRestoreScanPage, offset));
    bool older = false;
    for (const DocumentRecord& d : page) {
      if (d.deleted_at_ms.value_or(0) < *req.before_ms) {
        older = true;  // newest first: the rest are older still
        break;
      }
      candidates.push_back(d.id);
    }
    if (older || static_cast<int64_t>(page.size()) < kRestoreScanPage) break;
  }
  return candidates;
}

Result<DeletedListing> SoftDeleteLifecycle::ListDeleted(const std::string& project, int64_t limit,
                                                        int64_t offset) {
  if (limit < 1 || limit > kMaxListLimit) {
    return Status::InvalidArgument("limit must be between 1 and " + std::to_string(kMaxListLimit));
  }
  if (offset < 0) return Status::InvalidArgument("offset must not be negative");
  DeletedListing out;
  if (project.empty()) {
    KB_ASSIGN_OR_RETURN(auto all, catalog_->ListProjects(/*include_deleted=*/true));
    std::vector<ProjectRecord> deleted;
    for (auto& p : all) {
      if (p.deleted_at_ms) deleted.push_back(std::move(p));
    }
    std::sort(deleted.begin(), deleted.end(), [](const ProjectRecord& a, const ProjectRecord& b) {
      if (*a.deleted_at_ms != *b.deleted_at_ms) return *a.deleted_at_ms > *b.deleted_at_ms;
      return a.id < b.id;
    });
    out.total = static_cast<int64_t>(deleted.size());
    for (int64_t i = offset; i < out.total && i < offset + limit; ++i) {
      out.projects.push_back(deleted[static_cast<size_t>(i)]);
    }
    return out;
  }
  auto live = registry_->Find(project);
  if (live.ok()) {
    out.project = (*live)->Record();
    KB_ASSIGN_OR_RETURN(out.documents, (*live)->store->ListDeletedDocuments(limit, offset));
    KB_ASSIGN_OR_RETURN(StoreCounts counts, (*live)->store->Counts());
    out.total = counts.deleted_documents;
    return out;
  }
  if (live.status().code() != Code::kNotFound) return live.status();
  // A deleted project is not loaded: read its database directly, while no purge can remove it.
  MutexLock serial(lifecycle_mu_);
  KB_ASSIGN_OR_RETURN(ProjectRecord p, catalog_->GetProject(project, /*include_deleted=*/true));
  out.project = p;
  const std::string db = layout::ProjectDbIn(registry_->ProjectDir(p.id));
  if (!PathExists(db)) return out;
  KB_ASSIGN_OR_RETURN(auto store, ProjectStore::Open(db, p.id, p.embedding_dimension, clock_));
  KB_ASSIGN_OR_RETURN(out.documents, store->ListDeletedDocuments(limit, offset));
  KB_ASSIGN_OR_RETURN(StoreCounts counts, store->Counts());
  out.total = counts.deleted_documents;
  return out;
}

}  // namespace kb
