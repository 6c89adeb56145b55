// ProjectHandle: one loaded project (its store, vector index and embedder) and the locks that
// order writes to it. The rooms of the service layer share it: the project registry
// (service/project_registry.h) opens, looks up and retires handles; the ingest pipeline, the
// soft-delete lifecycle and the facade write through them; index maintenance saves, checks and
// rebuilds their indexes.
//
// Thread-safety: the members say which mutex guards them. Lock order: save_mu, then write_mu,
// then index_ptr_mu (and record_mu alone).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/data_layout.h"
#include "common/thread_annotations.h"
#include "service/query_cache.h"
#include "service/types.h"

namespace kb {

struct ProjectHandle {
  Mutex record_mu;
  ProjectRecord record GUARDED_BY(record_mu);

  std::string dir;
  std::unique_ptr<ProjectStore> store;
  // Replaced only by RebuildIndex, under write_mu and index_ptr_mu: code holding write_mu uses
  // `index` directly; lock-free readers (queries, stats) take a reference with Index().
  std::shared_ptr<VectorIndex> index;
  Mutex index_ptr_mu ACQUIRED_AFTER(write_mu);
  std::unique_ptr<Embedder> embedder;
  EmbedderSpec spec;
  ChunkOptions chunking;

  // Serialises commit + index application so that the index reflects a journal prefix.
  Mutex write_mu ACQUIRED_AFTER(save_mu);
  int64_t applied_lsn GUARDED_BY(write_mu) = 0;  // the journal position the index reflects
  bool dirty GUARDED_BY(write_mu) = false;       // index changed since the last save
  // An index update failed after a commit. The index is no longer a journal
  // prefix, so it is never saved again; the next start catches up from the last good save (or
  // rebuilds).
  bool index_stale GUARDED_BY(write_mu) = false;
  // Why the index had to be rebuilt when the project was loaded; the next
  // integrity check reports it (as repaired) and clears it.
  std::string load_repair GUARDED_BY(write_mu);
  // Serialises saving the index files with the integrity check reading them. Taken before
  // write_mu, so that a check reading a large index delays the saver, not the writers.
  Mutex save_mu;

  std::atomic<int64_t> generation{0};  // bumped by every write; invalidates the query cache
  QueryCache<QueryResponse> cache{kQueryCacheEntries};

  ProjectRecord Record() EXCLUDES(record_mu) {
    MutexLock lock(record_mu);
    return record;
  }
  std::shared_ptr<VectorIndex> Index() EXCLUDES(index_ptr_mu) {
    MutexLock lock(index_ptr_mu);
    return index;
  }
  std::string index_dir() const { return layout::ProjectIndexDirIn(dir); }
  bool external() const { return spec.kind == "external"; }
};

// Replays the journal entries after `after` up to `last_lsn` onto `index`, in batches. Returns
// the LSN reached (`*applied` counts the entries). On an entry that cannot be decoded or
// applied, returns that error and sets `*failed_lsn` to the entry's LSN.
Result<int64_t> ReplayJournal(ProjectStore& store, VectorIndex* index, int64_t after,
                              int64_t last_lsn, int64_t* applied, int64_t* failed_lsn);

}  // namespace kb
