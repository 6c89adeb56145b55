// CreateSnapshot's machinery: files -> chunks -> packs -> trees -> manifest.
#include "repo/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <thread>
#include <unordered_set>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/thread_annotations.h"
#include "repo/chunk_index.h"
#include "repo/pack_reader.h"
#include "repo/pack_writer.h"
#include "repo/repository_format.h"
#include "repo/sealed_box.h"

#ifndef KB_VERSION
#define KB_VERSION "unknown"
#endif

namespace kb::repo {

namespace {

constexpr int64_t kProgressEveryBytes = 4 << 20;
constexpr int kMaxThreads = 16;

// Computes the ids of a run of equal-sized chunks on two threads: the caller's and one helper.
// Chunk ids (HMAC-SHA-256) are the main CPU cost of a backup in which little changed, and sealing
// (the other threads' work) then has almost nothing to do.
class ParallelHasher {
 public:
  explicit ParallelHasher(const ChunkIdHasher& hasher)
      : hasher_(hasher), thread_([this] { Run(); }) {}
  ~ParallelHasher() {
    {
      MutexLock lock(mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    thread_.join();
  }
  ParallelHasher(const ParallelHasher&) = delete;
  ParallelHasher& operator=(const ParallelHasher&) = delete;

  // ids[i] = id of data[i * chunk, (i + 1) * chunk) for i < count.
  void Hash(const char* data, size_t chunk, size_t count, ChunkId* ids) EXCLUDES(mu_) {
    const size_t split = count / 2;  // the helper takes [0, split), this thread the rest
    {
      MutexLock lock(mu_);
      job_ = Job{data, chunk, split, ids};
      pending_ = split > 0;
    }
    cv_.SignalAll();
    for (size_t i = split; i < count; ++i) {
      ids[i] = hasher_.Hash(std::string_view(data + i * chunk, chunk));
    }
    MutexLock lock(mu_);
    while (pending_) cv_.Wait(mu_);
  }

 private:
  struct Job {
    const char* data = nullptr;
    size_t chunk = 0, count = 0;
    ChunkId* ids = nullptr;
  };
  void Run() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    while (true) {
      while (!stop_ && !pending_) cv_.Wait(mu_);
      if (stop_) return;
      Job job = job_;
      lock.Unlock();
      for (size_t i = 0; i < job.count; ++i) {
        job.ids[i] = hasher_.Hash(std::string_view(job.data + i * job.chunk, job.chunk));
      }
      lock.Lock();
      pending_ = false;
      cv_.SignalAll();
    }
  }

  const ChunkIdHasher& hasher_;
  Mutex mu_;
  CondVar cv_;
  Job job_ GUARDED_BY(mu_);
  bool pending_ GUARDED_BY(mu_) = false;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

Status ErrnoStatus(const std::string& what, const std::string& path) {
  return Status::IOError(what + " " + path + ": " + strerror(errno));
}

// Everything one backup run carries from file to file.
class SnapshotWriter {
 public:
  SnapshotWriter(const RepoContext& ctx, const BackupOptions& options, ChunkMap* map,
                 std::function<Status()> before_index)
      : ctx_(ctx),
        options_(options),
        writer_(ctx, map, std::clamp(options.threads, 1, kMaxThreads), std::move(before_index)),
        buffer_(BufferSize(ctx.params.chunk_size), '\0'),
        ids_(buffer_.size() / static_cast<size_t>(ctx.params.chunk_size)),
        hasher_(*ctx.hasher) {}

  void set_total(int64_t total) { total_ = total; }

  Result<SnapshotFile> WriteFile(const SourceFile& source) {
    SnapshotFile file;
    file.path = source.path;
    file.mode = source.mode & 07777;
    ScopedFd fd(open(source.local_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return ErrnoStatus("cannot open", source.local_path);
    std::vector<ChunkId> group;
    size_t filled = 0;
    bool eof = false;
    const size_t chunk = static_cast<size_t>(ctx_.params.chunk_size);
    while (true) {
      // The buffer is a multiple of chunk_size: fill it, cut whole chunks, keep the remainder.
      while (!eof && filled < buffer_.size()) {
        ssize_t n = read(fd.get(), buffer_.data() + filled, buffer_.size() - filled);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoStatus("cannot read", source.local_path);
        if (n == 0) eof = true;
        filled += static_cast<size_t>(n);
      }
      // Whole chunks: ids computed on two threads, then stored in file order.
      const size_t whole = filled / chunk;
      hasher_.Hash(buffer_.data(), chunk, whole, ids_.data());
      size_t pos = 0;
      for (size_t i = 0; i < whole; ++i, pos += chunk) {
        KB_RETURN_IF_ERROR(
            AddData(std::string_view(buffer_.data() + pos, chunk), ids_[i], &group, &file));
      }
      if (eof && pos < filled) {  // the file's tail is a short final chunk
        std::string_view tail(buffer_.data() + pos, filled - pos);
        KB_RETURN_IF_ERROR(AddData(tail, ctx_.hasher->Hash(tail), &group, &file));
        pos = filled;
      }
      memmove(buffer_.data(), buffer_.data() + pos, filled - pos);
      filled -= pos;
      if (eof) break;
    }
    if (!group.empty()) KB_RETURN_IF_ERROR(EmitTree(&group, &file));
    stats_.files++;
    stats_.bytes += file.size;
    return file;
  }

  // A file made while the backup runs (SourceFile::produce): its bytes arrive through a
  // ProducedFile sink at any offsets; its chunk list is built once the producer is done.
  Result<SnapshotFile> WriteProduced(const SourceFile& source, ProjectSnapshot* meta) {
    SnapshotFile file;
    file.path = source.path;
    file.mode = source.mode & 07777;
    ProducedFile sink(*this);
    KB_ASSIGN_OR_RETURN(int64_t size, source.produce(sink, meta));
    KB_ASSIGN_OR_RETURN(std::vector<ChunkId> ids, sink.Finish(size));
    file.size = size;  // Finish named a chunk for every byte
    stats_.chunks += static_cast<int64_t>(ids.size());
    std::vector<ChunkId> group;
    for (const ChunkId& id : ids) {
      group.push_back(id);
      if (static_cast<int64_t>(group.size()) == ctx_.params.tree_fanout) {
        KB_RETURN_IF_ERROR(EmitTree(&group, &file));
      }
    }
    if (!group.empty()) KB_RETURN_IF_ERROR(EmitTree(&group, &file));
    stats_.files++;
    stats_.bytes += file.size;
    return file;
  }

  // A file an earlier snapshot stored (SourceFile::stored, checked by CheckStoredFiles): named
  // again, nothing read or written.
  SnapshotFile NameStored(const SnapshotFile& stored) {
    const int64_t chunk = ctx_.params.chunk_size;
    stats_.files++;
    stats_.bytes += stored.size;
    stats_.chunks += (stored.size + chunk - 1) / chunk + static_cast<int64_t>(stored.trees.size());
    Progress(stored.size);
    return stored;
  }

  Status Finish() { return writer_.Finish(); }
  const PackWriterStats& writer_stats() const { return writer_.stats(); }
  SnapshotStats& stats() { return stats_; }

 private:
  // The sink of one produced file. Whole chunks are gathered in buffer_ (any offsets) and their
  // ids computed a buffer at a time on two threads; a chunk that a write covers only in part
  // (page size below chunk_size) waits in `partial_` until it is covered, or until Finish fills
  // its gaps with zeros. Each chunk is stored as soon as its bytes are known, so memory holds the
  // buffer, the partial chunks, and 16 bytes of id per chunk of the file.
  class ProducedFile : public FileSink {
   public:
    explicit ProducedFile(SnapshotWriter& w)
        : w_(w), chunk_(static_cast<size_t>(w.ctx_.params.chunk_size)) {}

    Status Write(int64_t offset, std::string_view data) override {
      if (offset < 0) return Status::Internal("produced file: negative offset");
      size_t pos = 0;
      while (pos < data.size()) {
        const uint64_t at = static_cast<uint64_t>(offset) + pos;
        const uint64_t index = at / chunk_;
        const size_t within = static_cast<size_t>(at % chunk_);
        const size_t n = std::min(chunk_ - within, data.size() - pos);
        if (within == 0 && n == chunk_) {
          KB_RETURN_IF_ERROR(AddWhole(index, data.substr(pos, n)));
        } else {
          KB_RETURN_IF_ERROR(AddPart(index, within, data.substr(pos, n)));
        }
        pos += n;
      }
      w_.Progress(static_cast<int64_t>(data.size()));
      return Status::OK();
    }

    // The ids of the file's chunks in order, once every byte of its `size` is stored.
    Result<std::vector<ChunkId>> Finish(int64_t size) {
      if (size < 0) return Status::Internal("produced file: negative size");
      KB_RETURN_IF_ERROR(FlushBatch());
      const uint64_t count = (static_cast<uint64_t>(size) + chunk_ - 1) / chunk_;
      const size_t tail = static_cast<size_t>(static_cast<uint64_t>(size) % chunk_);
      auto length_of = [&](uint64_t i) { return (i + 1 == count && tail != 0) ? tail : chunk_; };
      for (auto& [index, part] : partial_) {
        if (index < count) {
          KB_RETURN_IF_ERROR(
              Store(index, std::string_view(part.bytes).substr(0, length_of(index))));
        }
      }
      partial_.clear();
      // Chunks beyond the end (the file was cut after they were written) are simply not named.
      ids_.resize(count);
      stored_.resize(count, false);
      whole_.resize(count, false);
      if (tail != 0 && stored_[count - 1] && whole_[count - 1]) {
        return Status::Internal(
            "produced file: its last chunk was stored whole before the "
            "file was cut to " +
            std::to_string(size) + " bytes");
      }
      for (uint64_t i = 0; i < count; ++i) {
        // Never written: zeros (a SQLite copy skips the page holding the 1 GiB lock byte).
        if (!stored_[i]) KB_RETURN_IF_ERROR(Store(i, std::string(length_of(i), '\0')));
      }
      return std::move(ids_);
    }

   private:
    struct Part {
      std::string bytes;
      std::vector<bool> covered;
      size_t covered_count = 0;
    };

    Status AddWhole(uint64_t index, std::string_view data) {
      partial_.erase(index);  // a whole write replaces any earlier part
      if ((batch_count_ + 1) * chunk_ > w_.buffer_.size()) KB_RETURN_IF_ERROR(FlushBatch());
      std::memcpy(w_.buffer_.data() + batch_count_ * chunk_, data.data(), chunk_);
      batch_index_.push_back(index);
      batch_count_++;
      return Status::OK();
    }

    Status AddPart(uint64_t index, size_t within, std::string_view data) {
      KB_RETURN_IF_ERROR(FlushBatch());  // keeps writes to one chunk in order
      if (index < stored_.size() && stored_[index]) {
        return Status::Internal("produced file: part of chunk " + std::to_string(index) +
                                " rewritten after it was stored");
      }
      Part& part = partial_[index];
      if (part.bytes.empty()) {
        part.bytes.assign(chunk_, '\0');
        part.covered.assign(chunk_, false);
      }
      std::memcpy(part.bytes.data() + within, data.data(), data.size());
      for (size_t i = within; i < within + data.size(); ++i) {
        if (!part.covered[i]) {
          part.covered[i] = true;
          part.covered_count++;
        }
      }
      if (part.covered_count == chunk_) {
        std::string bytes = std::move(part.bytes);
        partial_.erase(index);
        KB_RETURN_IF_ERROR(Store(index, bytes));
      }
      return Status::OK();
    }

    Status FlushBatch() {
      if (batch_count_ == 0) return Status::OK();
      w_.hasher_.Hash(w_.buffer_.data(), chunk_, batch_count_, w_.ids_.data());
      for (size_t i = 0; i < batch_count_; ++i) {
        KB_RETURN_IF_ERROR(Place(batch_index_[i], w_.ids_[i],
                                 std::string_view(w_.buffer_.data() + i * chunk_, chunk_)));
      }
      batch_count_ = 0;
      batch_index_.clear();
      return Status::OK();
    }

    Status Store(uint64_t index, std::string_view data) {
      return Place(index, w_.ctx_.hasher->Hash(data), data);
    }

    // Stores the chunk (unless the repository has it) and records it as the file's chunk
    // `index`. A chunk written twice costs its first version's space, nothing else.
    Status Place(uint64_t index, const ChunkId& id, std::string_view data) {
      KB_RETURN_IF_ERROR(w_.writer_.Add(ChunkKind::kData, id, data).status());
      if (index >= ids_.size()) {
        ids_.resize(index + 1);
        stored_.resize(index + 1, false);
        whole_.resize(index + 1, false);
      }
      ids_[index] = id;
      stored_[index] = true;
      whole_[index] = data.size() == chunk_;
      return Status::OK();
    }

    SnapshotWriter& w_;
    const size_t chunk_;
    size_t batch_count_ = 0;
    std::vector<uint64_t> batch_index_;
    std::map<uint64_t, Part> partial_;
    std::vector<ChunkId> ids_;
    std::vector<bool> stored_;
    std::vector<bool> whole_;
  };

  static size_t BufferSize(int64_t chunk_size) {
    int64_t size = std::max<int64_t>(chunk_size, 1 << 20);
    return static_cast<size_t>(size - size % chunk_size);
  }

  Status AddData(std::string_view data, const ChunkId& id, std::vector<ChunkId>* group,
                 SnapshotFile* file) {
    KB_RETURN_IF_ERROR(writer_.Add(ChunkKind::kData, id, data).status());
    stats_.chunks++;
    file->size += static_cast<int64_t>(data.size());
    group->push_back(id);
    if (static_cast<int64_t>(group->size()) == ctx_.params.tree_fanout) {
      KB_RETURN_IF_ERROR(EmitTree(group, file));
    }
    Progress(static_cast<int64_t>(data.size()));
    return Status::OK();
  }

  Status EmitTree(std::vector<ChunkId>* group, SnapshotFile* file) {
    std::string plain;
    plain.reserve(group->size() * kChunkIdBytes);
    for (const ChunkId& id : *group) plain.append(ChunkIdBytes(id));
    ChunkId tree = ctx_.hasher->Hash(plain);
    KB_RETURN_IF_ERROR(writer_.Add(ChunkKind::kTree, tree, plain).status());
    stats_.chunks++;
    file->trees.push_back(ChunkIdHex(tree));
    group->clear();
    return Status::OK();
  }

  void Progress(int64_t bytes) {
    done_ += bytes;
    if (options_.progress && done_ - reported_ >= kProgressEveryBytes) {
      reported_ = done_;
      options_.progress(done_, total_);
    }
  }

  const RepoContext& ctx_;
  const BackupOptions& options_;
  PackWriter writer_;
  std::string buffer_;
  std::vector<ChunkId> ids_;  // of the whole chunks in buffer_
  ParallelHasher hasher_;
  SnapshotStats stats_;
  int64_t total_ = 0, done_ = 0, reported_ = 0;
};

Status ValidateSourceFiles(const std::vector<SourceFile>& files, const std::string& where) {
  std::unordered_set<std::string> seen;
  for (const SourceFile& f : files) {
    Status s = ValidateManifestPath(f.path, where);
    if (!s.ok()) return Status::InvalidArgument(s.message());
    if (!seen.insert(f.path).second) {
      return Status::InvalidArgument(where + ": file " + f.path + " listed twice");
    }
  }
  return Status::OK();
}

int64_t TotalBytes(const SnapshotSource& source) {
  int64_t total = 0;
  auto add = [&](const std::vector<SourceFile>& files) {
    for (const SourceFile& f : files) {
      struct stat st;
      if (stat(f.local_path.c_str(), &st) == 0) total += st.st_size;
    }
  };
  add(source.catalog_files);
  for (const ProjectSource& p : source.projects) add(p.files);
  return total;
}

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

// Seals the manifest with added_stored_bytes including the manifest's own size. The size depends
// on the number (compression), so look for a fixed point; when the size oscillates between two
// values and none exists, move duration_ms by a millisecond (harmless) and look again.
std::string SealManifest(const RepoContext& ctx, SnapshotManifest* m, int64_t stored_before) {
  std::string box;
  const int64_t duration_ms = m->stats.duration_ms;
  for (int nudge = 0; nudge < 16; ++nudge) {
    m->stats.duration_ms = duration_ms + nudge;
    int64_t own = 0;
    for (int round = 0; round < 4; ++round) {
      m->stats.added_stored_bytes = stored_before + own;
      box = SealCompressed(ctx.data_key(), SnapshotAad(m->id), m->ToJson().dump(),
                           ctx.params.compression_level);
      if (static_cast<int64_t>(box.size()) == own) return box;
      own = static_cast<int64_t>(box.size());
    }
  }
  return box;  // matches *m, with the size off by a byte or two: a statistic, not a reference
}

}  // namespace

Status ValidateSource(const SnapshotSource& source) {
  if (source.scope != "full" && source.scope != "projects") {
    return Status::InvalidArgument("snapshot scope must be \"full\" or \"projects\"");
  }
  if (source.scope == "projects" && !source.catalog_files.empty()) {
    return Status::InvalidArgument("a \"projects\" snapshot holds no catalog files");
  }
  KB_RETURN_IF_ERROR(ValidateSourceFiles(source.catalog_files, "catalog"));
  std::unordered_set<std::string> ids;
  for (const ProjectSource& p : source.projects) {
    Status s = ValidateProjectId(p.meta.id, "snapshot source");
    if (!s.ok()) return Status::InvalidArgument(s.message());
    if (!ids.insert(p.meta.id).second) {
      return Status::InvalidArgument("project " + p.meta.id + " listed twice");
    }
    KB_RETURN_IF_ERROR(ValidateSourceFiles(p.files, "project " + p.meta.id));
  }
  return Status::OK();
}

namespace {

// Ordering rules 3-4 (after the lock): the plans, then the index. Neither planned packs nor packs
// that are gone (see LoadChunkMap) are deduplicated against.
Status LoadDedupMap(const RepoContext& ctx, ChunkMap* map) {
  auto plans = ReadAllPlans(ctx);
  if (plans.status().code() == Code::kCorruption) {
    return Status::Corruption(plans.status().message() +
                              " (a backup must know every planned pack; deleting a damaged plan "
                              "is safe: its packs are then kept)");
  }
  KB_RETURN_IF_ERROR(plans.status());
  std::unordered_set<std::string> excluded;
  for (const PrunePlan& plan : *plans) excluded.insert(plan.packs.begin(), plan.packs.end());
  KB_ASSIGN_OR_RETURN(IndexLoadResult loaded, LoadChunkMap(ctx, excluded, false, map));
  for (const std::string& problem : loaded.problems) {
    // Its chunks are simply stored again; `repo check` reports the object.
    LogWarn("backup: skipping unreadable index object: " + problem);
  }
  return Status::OK();
}

// Files an earlier snapshot stored may be named again only if every tree and chunk they name is
// in the dedup map (so: indexed, its pack present and in no prune plan), like any deduplicated
// chunk (rule 5). Returns the projects for which that does not hold.
Result<std::unordered_set<std::string>> CheckStoredFiles(const RepoContext& ctx,
                                                         const ChunkMap& map,
                                                         const SnapshotSource& source) {
  std::unordered_set<std::string> unavailable;
  ChunkReader reader(ctx, map);
  for (const ProjectSource& p : source.projects) {
    for (const SourceFile& f : p.files) {
      if (!f.stored || unavailable.count(p.meta.id)) continue;
      std::string problem;
      int64_t chunks = 0;
      for (const std::string& hex : f.stored->trees) {
        std::optional<ChunkId> tree_id = ChunkIdFromHex(hex);
        if (!tree_id) {
          problem = "tree " + hex + " is not a chunk id";
          break;
        }
        auto ids =
            map.Contains(*tree_id)
                ? reader.ReadTree(*tree_id)
                : Result<std::vector<ChunkId>>(Status::NotFound("tree " + hex + " is not stored"));
        if (!ids.ok()) {
          problem = ids.status().ToString();
          break;
        }
        for (const ChunkId& id : *ids) {
          if (!map.Contains(id)) {
            problem = "chunk " + ChunkIdHex(id) + " is not stored";
            break;
          }
        }
        if (!problem.empty()) break;
        chunks += static_cast<int64_t>(ids->size());
      }
      const int64_t chunk = ctx.params.chunk_size;
      if (problem.empty() && chunks != (f.stored->size + chunk - 1) / chunk) {
        problem = "its trees name " + std::to_string(chunks) + " chunks for " +
                  std::to_string(f.stored->size) + " bytes";
      }
      if (!problem.empty()) {
        LogWarn("backup: project " + p.meta.id + ": " + f.path + " of an earlier snapshot " +
                "cannot be reused (" + problem + "); this snapshot holds no vector index for " +
                "the project (a restore rebuilds it)");
        unavailable.insert(p.meta.id);
      }
    }
  }
  return unavailable;
}

// Rules 5-6: every file's data and trees, then the last pack and index object.
Status WriteFiles(SnapshotWriter& writer, const SnapshotSource& source,
                  const std::unordered_set<std::string>& unavailable, SnapshotManifest* m) {
  for (const SourceFile& f : source.catalog_files) {
    KB_ASSIGN_OR_RETURN(SnapshotFile file,
                        f.produce ? writer.WriteProduced(f, nullptr) : writer.WriteFile(f));
    m->catalog_files.push_back(std::move(file));
  }
  for (const ProjectSource& p : source.projects) {
    ProjectSnapshot ps = p.meta;
    ps.files.clear();
    const bool drop_stored = unavailable.count(p.meta.id) > 0;
    if (drop_stored) {  // its stored files are its vector index: none in this snapshot
      ps.index_lsn = 0;
      ps.index_checksum.clear();
    }
    for (const SourceFile& f : p.files) {
      if (f.stored) {
        if (!drop_stored) ps.files.push_back(writer.NameStored(*f.stored));
        continue;
      }
      // A producer completes `ps` (LSN, counts, checksum) from the state it copied.
      KB_ASSIGN_OR_RETURN(SnapshotFile file,
                          f.produce ? writer.WriteProduced(f, &ps) : writer.WriteFile(f));
      ps.files.push_back(std::move(file));
    }
    m->projects.push_back(std::move(ps));
  }
  return writer.Finish();
}

// Rule 7: the lock must still be ours, then the manifest, last; then the lock is released.
Status Commit(const RepoContext& ctx, LockKeeper& lock, const std::string& manifest_box,
              const std::string& id) {
  KB_RETURN_IF_ERROR(ctx.store->Put(SnapshotKey(id), manifest_box));
  // Had this process paused between its last lock check and the Put for longer than
  // stale_after, a prune may have removed the lock (always before sweeping) and deleted packs we
  // use. The lock is never re-created once removed, so checking it again tells. Any failure of
  // this check withdraws the manifest: a failed backup is loud, a broken snapshot would not be.
  if (Status held = lock.CheckHeld(); !held.ok()) {
    Status withdrawn = ctx.store->Delete(SnapshotKey(id));
    LogError("backup: lock lost while committing snapshot " + id + "; manifest " +
             (withdrawn.ok() ? "withdrawn" : "NOT withdrawn: " + withdrawn.ToString()));
    return held;
  }
  Status released = lock.Release();
  if (!released.ok()) {
    // The snapshot is committed; a leftover lock only delays prune until it is stale.
    LogWarn("backup: could not delete lock: " + released.ToString());
  }
  return Status::OK();
}

SnapshotManifest NewManifest(const SnapshotSource& source, const BackupOptions& options,
                             int64_t start_ms, const SnapshotManifest* copy_of) {
  SnapshotManifest m;
  if (copy_of != nullptr) {  // the same snapshot in another repository: its identity is kept
    m.id = copy_of->id;
    m.time = copy_of->time;
    m.hostname = copy_of->hostname;
    m.kb_version = copy_of->kb_version;
    m.trigger = copy_of->trigger;
    m.scope = copy_of->scope;
    m.tags = copy_of->tags;
    m.copied_from = copy_of->copied_from;
    return m;
  }
  m.id = NewSnapshotId(start_ms);
  m.time = FormatIso8601(start_ms);
  m.hostname = HostName();
  m.kb_version = KB_VERSION;
  m.trigger = options.trigger;
  m.scope = source.scope;
  m.tags = options.tags;
  return m;
}

}  // namespace

Result<SnapshotManifest> WriteSnapshot(const RepoContext& ctx, const SnapshotSource& source,
                                       const BackupOptions& options, const LockTiming& timing,
                                       const SnapshotManifest* copy_of) {
  static const std::unordered_set<std::string> kTriggers = {"manual", "schedule", "api",
                                                            "pre-restore"};
  if (copy_of == nullptr && !kTriggers.count(options.trigger)) {
    return Status::InvalidArgument("unknown backup trigger " + QuoteName(options.trigger));
  }
  KB_RETURN_IF_ERROR(ValidateSource(source));
  const int64_t start_ms = ctx.NowMs();
  const int64_t start_us = MonotonicMicros();

  KB_ASSIGN_OR_RETURN(std::unique_ptr<LockKeeper> lock, LockKeeper::Acquire(ctx, "backup", timing));
  ChunkMap map;
  KB_RETURN_IF_ERROR(LoadDedupMap(ctx, &map));
  KB_ASSIGN_OR_RETURN(std::unordered_set<std::string> unavailable,
                      CheckStoredFiles(ctx, map, source));
  SnapshotWriter writer(ctx, options, &map, [&lock] { return lock->CheckHeld(); });
  writer.set_total(TotalBytes(source));
  SnapshotManifest m = NewManifest(source, options, start_ms, copy_of);
  KB_RETURN_IF_ERROR(WriteFiles(writer, source, unavailable, &m));
  if (options.progress) options.progress(writer.stats().bytes, writer.stats().bytes);

  KB_RETURN_IF_ERROR(lock->CheckHeld());
  m.finished = copy_of != nullptr ? copy_of->finished : FormatIso8601(ctx.NowMs());
  m.stats = writer.stats();
  m.stats.new_chunks = writer.writer_stats().new_chunks;
  m.stats.added_bytes = writer.writer_stats().added_bytes;
  m.stats.duration_ms = (MonotonicMicros() - start_us) / 1000;
  std::string box = SealManifest(ctx, &m, writer.writer_stats().stored_bytes);
  KB_RETURN_IF_ERROR(Commit(ctx, *lock, box, m.id));
  return m;
}

Result<SnapshotManifest> ReadManifest(const RepoContext& ctx, const std::string& snapshot_id) {
  if (!IsSnapshotId(snapshot_id)) {
    return Status::InvalidArgument("invalid snapshot id " + QuoteName(snapshot_id));
  }
  std::string key = SnapshotKey(snapshot_id);
  KB_ASSIGN_OR_RETURN(nlohmann::json j,
                      ctx.ReadSealedJson(key, SnapshotAad(snapshot_id), kSnapshotVersion));
  auto m = SnapshotManifest::FromJson(j);
  if (!m.ok()) return Status(m.status().code(), key + ": " + m.status().message());
  if (m->id != snapshot_id) {
    return Status::Corruption(key + ": manifest names snapshot " + QuoteName(m->id));
  }
  return std::move(m).value();
}

Result<std::vector<std::string>> ListSnapshotIds(const RepoContext& ctx) {
  std::vector<std::string> ids;
  KB_RETURN_IF_ERROR(ctx.store->List(kSnapshotsPrefix, [&](const blob::ObjectInfo& info) {
    std::string_view id = std::string_view(info.key).substr(kSnapshotsPrefix.size());
    if (IsSnapshotId(id)) ids.emplace_back(id);
    return Status::OK();
  }));
  return ids;
}

}  // namespace kb::repo
