// Blocks -> sealed blocks (worker threads) -> packs -> index objects, in order.
#include "repo/pack_writer.h"

#include <functional>
#include <thread>

#include "common/thread_annotations.h"
#include "repo/repository_format.h"
#include "repo/sealed_box.h"

namespace kb::repo {

// A fixed set of threads running sealing jobs in FIFO order; results come back through futures,
// which the writer consumes in submission order so packs keep a deterministic layout.
class PackWriter::SealPool {
 public:
  explicit SealPool(int threads) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Run(); });
  }
  ~SealPool() {
    {
      MutexLock lock(mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    for (std::thread& t : workers_) t.join();
  }
  std::future<std::string> Submit(std::function<std::string()> job) EXCLUDES(mu_) {
    std::packaged_task<std::string()> task(std::move(job));
    std::future<std::string> f = task.get_future();
    {
      MutexLock lock(mu_);
      jobs_.push_back(std::move(task));
    }
    cv_.Signal();
    return f;
  }

 private:
  void Run() EXCLUDES(mu_) {
    while (true) {
      std::packaged_task<std::string()> task;
      {
        MutexLock lock(mu_);
        while (!stop_ && jobs_.empty()) cv_.Wait(mu_);
        if (stop_) return;  // queued jobs are abandoned: their futures are never awaited
        task = std::move(jobs_.front());
        jobs_.pop_front();
      }
      task();
    }
  }

  Mutex mu_;
  CondVar cv_;
  std::deque<std::packaged_task<std::string()>> jobs_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

// One thread that runs Put tasks in order. After a task fails, the rest are skipped (and
// reported as that failure): nothing may be Put after something it depends on failed.
class PackWriter::Uploader {
 public:
  explicit Uploader(size_t max_queued_bytes) : max_queued_bytes_(max_queued_bytes) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Uploader() {
    {
      MutexLock lock(mu_);
      stop_ = true;
      tasks_.clear();  // abandoned: a partial backup is only unreferenced objects
    }
    cv_.SignalAll();
    thread_.join();
  }

  // Queues `task` (holding `bytes` of data); waits while more than the limit is queued.
  Status Enqueue(std::function<Status()> task, size_t bytes) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    while (error_.ok() && queued_bytes_ != 0 && queued_bytes_ + bytes > max_queued_bytes_) {
      cv_.Wait(mu_);
    }
    if (!error_.ok()) return error_;
    tasks_.push_back(Task{std::move(task), bytes});
    queued_bytes_ += bytes;
    cv_.SignalAll();
    return Status::OK();
  }

  // Waits until every queued task ran; the first failure, if any.
  Status Wait() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    while (error_.ok() && (!tasks_.empty() || busy_)) cv_.Wait(mu_);
    return error_;
  }

  Status error() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return error_;
  }

 private:
  struct Task {
    std::function<Status()> run;
    size_t bytes;
  };

  void Run() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    while (true) {
      while (!stop_ && tasks_.empty()) cv_.Wait(mu_);
      if (stop_) return;
      Task task = std::move(tasks_.front());
      tasks_.pop_front();
      busy_ = true;
      lock.Unlock();
      Status s = task.run();
      const size_t done_bytes = task.bytes;
      task = Task{};  // free the pack's bytes before waking the producer
      lock.Lock();
      busy_ = false;
      queued_bytes_ -= std::min(queued_bytes_, done_bytes);
      if (!s.ok() && error_.ok()) {
        error_ = s;
        tasks_.clear();
        queued_bytes_ = 0;
      }
      cv_.SignalAll();
    }
  }

  const size_t max_queued_bytes_;
  Mutex mu_;
  CondVar cv_;
  std::deque<Task> tasks_ GUARDED_BY(mu_);
  size_t queued_bytes_ GUARDED_BY(mu_) = 0;
  bool busy_ GUARDED_BY(mu_) = false;
  bool stop_ GUARDED_BY(mu_) = false;
  Status error_ GUARDED_BY(mu_);
  std::thread thread_;
};

PackWriter::PackWriter(const RepoContext& ctx, ChunkMap* map, int threads,
                       std::function<Status()> before_index)
    : ctx_(ctx),
      map_(map),
      before_index_(std::move(before_index)),
      max_in_flight_(threads > 1 ? 2 * static_cast<size_t>(threads) : 0) {
  if (threads > 1) pool_ = std::make_unique<SealPool>(threads);
  uploader_ = std::make_unique<Uploader>(2 * static_cast<size_t>(ctx.params.pack_size));
  open_[0].entry.kind = ChunkKind::kData;
  open_[1].entry.kind = ChunkKind::kTree;
}

PackWriter::~PackWriter() {
  // Wait for running jobs before the blocks they reference go away.
  for (InFlight& f : in_flight_) {
    if (f.sealed.valid()) f.sealed.wait();
  }
  pool_.reset();
  uploader_.reset();  // abandons queued uploads, joins the running one
}

Result<bool> PackWriter::Add(ChunkKind kind, const ChunkId& id, std::string_view data) {
  KB_RETURN_IF_ERROR(failed_);
  if (map_->Contains(id)) return false;
  OpenBlock& block = open_[static_cast<int>(kind)];
  if (!block.entry.chunks.empty() &&
      (block.raw.size() + data.size() > static_cast<size_t>(ctx_.limits.block_size) ||
       static_cast<int64_t>(block.entry.chunks.size()) >= kMaxChunksPerBlock)) {
    Status s = SubmitBlock(kind);
    if (!s.ok()) return failed_ = s;
  }
  uint32_t offset = static_cast<uint32_t>(block.raw.size());
  map_->Insert(
      id, ChunkLocation{ChunkMap::kPendingPack, 0, offset, static_cast<uint32_t>(data.size())});
  block.raw.append(data);
  block.entry.chunks.push_back(ChunkEntry{id, static_cast<uint32_t>(data.size())});
  stats_.new_chunks++;
  stats_.added_bytes += static_cast<int64_t>(data.size());
  return true;
}

Status PackWriter::SubmitBlock(ChunkKind kind) {
  OpenBlock& block = open_[static_cast<int>(kind)];
  BlockEntry entry = std::move(block.entry);
  entry.raw_length = static_cast<uint32_t>(block.raw.size());
  std::string raw = std::move(block.raw);
  block = OpenBlock();
  block.entry.kind = kind;
  if (!pool_) {
    return AppendSealed(
        SealCompressed(ctx_.data_key(), kBlockAad, raw, ctx_.params.compression_level),
        std::move(entry));
  }
  std::string_view key = ctx_.data_key();
  int level = ctx_.params.compression_level;
  InFlight f;
  f.sealed = pool_->Submit(
      [key, level, raw = std::move(raw)] { return SealCompressed(key, kBlockAad, raw, level); });
  f.entry = std::move(entry);
  in_flight_.push_back(std::move(f));
  return Drain(max_in_flight_);
}

Status PackWriter::Drain(size_t keep) {
  while (in_flight_.size() > keep) {
    InFlight f = std::move(in_flight_.front());
    in_flight_.pop_front();
    KB_RETURN_IF_ERROR(AppendSealed(f.sealed.get(), std::move(f.entry)));
  }
  return Status::OK();
}

Status PackWriter::AppendSealed(std::string sealed, BlockEntry entry) {
  pack_.AddBlock(sealed, std::move(entry));
  if (pack_.size() >= static_cast<size_t>(ctx_.params.pack_size)) return FinishPack();
  return Status::OK();
}

Status PackWriter::FinishPack() {
  PackBuilder::Finished pack = pack_.Finish(ctx_.data_key(), ctx_.params.compression_level);
  stats_.stored_bytes += static_cast<int64_t>(pack.bytes.size());
  stats_.packs++;
  // The chunks now have a place: record it in the map (nothing reads it before the backup
  // ends, and if the upload fails the backup fails).
  PackInfo info;
  info.id = pack.id;
  info.size = pack.bytes.size();
  for (const BlockEntry& b : pack.blocks) {
    info.blocks.push_back(BlockInfo{b.offset, b.length, b.raw_length, b.kind});
  }
  uint32_t ordinal = map_->AddPack(std::move(info));
  for (uint32_t bi = 0; bi < pack.blocks.size(); ++bi) {
    uint32_t offset = 0;
    for (const ChunkEntry& c : pack.blocks[bi].chunks) {
      map_->Update(c.id, ChunkLocation{ordinal, bi, offset, c.length});
      offset += c.length;
    }
  }
  size_t size = pack.bytes.size();
  unindexed_.push_back(IndexedPack{pack.id, size, std::move(pack.blocks)});
  auto bytes = std::make_shared<std::string>(std::move(pack.bytes));
  KB_RETURN_IF_ERROR(uploader_->Enqueue(
      [this, key = PackKey(pack.id), bytes] { return ctx_.store->Put(key, *bytes); }, size));
  if (unindexed_.size() >= static_cast<size_t>(ctx_.packs_per_index)) return WriteIndex();
  return Status::OK();
}

Status PackWriter::WriteIndex() {
  // Queued behind the packs it names; runs only if they were all stored.
  auto packs = std::make_shared<std::vector<IndexedPack>>(std::move(unindexed_));
  unindexed_.clear();
  stats_.index_objects++;
  return uploader_->Enqueue(
      [this, packs]() -> Status {
        if (before_index_) KB_RETURN_IF_ERROR(before_index_());
        KB_ASSIGN_OR_RETURN(int64_t stored, WriteIndexObject(ctx_, *packs));
        index_bytes_.fetch_add(stored);
        return Status::OK();
      },
      0);
}

Status PackWriter::Finish() {
  KB_RETURN_IF_ERROR(failed_);
  Status s = Status::OK();
  for (ChunkKind kind : {ChunkKind::kData, ChunkKind::kTree}) {
    if (s.ok() && !open_[static_cast<int>(kind)].entry.chunks.empty()) s = SubmitBlock(kind);
  }
  if (s.ok()) s = Drain(0);
  if (s.ok() && !pack_.empty()) s = FinishPack();
  if (s.ok() && !unindexed_.empty()) s = WriteIndex();
  if (s.ok()) s = uploader_->Wait();
  stats_.stored_bytes += index_bytes_.exchange(0);
  if (!s.ok()) failed_ = s;
  return s;
}

}  // namespace kb::repo
