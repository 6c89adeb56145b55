// CreateSnapshot's machinery: files -> chunks -> packs -> trees -> manifest.
#include "backup/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "backup/chunk_index.h"
#include "backup/pack_writer.h"
#include "backup/repository_format.h"
#include "backup/sealed_box.h"
#include "common/file_util.h"
#include "common/clock.h"
#include "common/logging.h"

#ifndef KB_VERSION
#define KB_VERSION "unknown"
#endif

namespace kb::backup {

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
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  ParallelHasher(const ParallelHasher&) = delete;
  ParallelHasher& operator=(const ParallelHasher&) = delete;

  // ids[i] = id of data[i * chunk, (i + 1) * chunk) for i < count.
  void Hash(const char* data, size_t chunk, size_t count, ChunkId* ids) {
    const size_t split = count / 2;  // the helper takes [0, split), this thread the rest
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = Job{data, chunk, split, ids};
      pending_ = split > 0;
    }
    cv_.notify_all();
    for (size_t i = split; i < count; ++i) {
      ids[i] = hasher_.Hash(std::string_view(data + i * chunk, chunk));
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !pending_; });
  }

 private:
  struct Job {
    const char* data = nullptr;
    size_t chunk = 0, count = 0;
    ChunkId* ids = nullptr;
  };
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || pending_; });
      if (stop_) return;
      Job job = job_;
      lock.unlock();
      for (size_t i = 0; i < job.count; ++i) {
        job.ids[i] = hasher_.Hash(std::string_view(job.data + i * job.chunk, job.chunk));
      }
      lock.lock();
      pending_ = false;
      cv_.notify_all();
    }
  }

  const ChunkIdHasher& hasher_;
  std::mutex mu_;
  std::condition_variable cv_;
  Job job_;
  bool pending_ = false;
  bool stop_ = false;
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

  Status Finish() { return writer_.Finish(); }
  const PackWriterStats& writer_stats() const { return writer_.stats(); }
  SnapshotStats& stats() { return stats_; }

 private:
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

// Rules 5-6: every file's data and trees, then the last pack and index object.
Status WriteFiles(SnapshotWriter& writer, const SnapshotSource& source, SnapshotManifest* m) {
  for (const SourceFile& f : source.catalog_files) {
    KB_ASSIGN_OR_RETURN(SnapshotFile file, writer.WriteFile(f));
    m->catalog_files.push_back(std::move(file));
  }
  for (const ProjectSource& p : source.projects) {
    ProjectSnapshot ps = p.meta;
    ps.files.clear();
    for (const SourceFile& f : p.files) {
      KB_ASSIGN_OR_RETURN(SnapshotFile file, writer.WriteFile(f));
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
                             int64_t start_ms) {
  SnapshotManifest m;
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
                                       const BackupOptions& options, const LockTiming& timing) {
  static const std::unordered_set<std::string> kTriggers = {"manual", "schedule", "api",
                                                            "pre-restore"};
  if (!kTriggers.count(options.trigger)) {
    return Status::InvalidArgument("unknown backup trigger " + QuoteName(options.trigger));
  }
  KB_RETURN_IF_ERROR(ValidateSource(source));
  const int64_t start_ms = ctx.NowMs();
  const int64_t start_us = MonotonicMicros();

  KB_ASSIGN_OR_RETURN(std::unique_ptr<LockKeeper> lock, LockKeeper::Acquire(ctx, "backup", timing));
  ChunkMap map;
  KB_RETURN_IF_ERROR(LoadDedupMap(ctx, &map));
  SnapshotWriter writer(ctx, options, &map, [&lock] { return lock->CheckHeld(); });
  writer.set_total(TotalBytes(source));
  SnapshotManifest m = NewManifest(source, options, start_ms);
  KB_RETURN_IF_ERROR(WriteFiles(writer, source, &m));
  if (options.progress) options.progress(writer.stats().bytes, writer.stats().bytes);

  KB_RETURN_IF_ERROR(lock->CheckHeld());
  m.finished = FormatIso8601(ctx.NowMs());
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

}  // namespace kb::backup
