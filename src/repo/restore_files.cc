// Snapshot files -> a fresh directory, checked chunk by chunk, removed again on failure.
#include "repo/restore_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <tuple>
#include <unordered_set>

#include "common/data_layout.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "repo/chunk_index.h"
#include "repo/locks.h"
#include "repo/pack_reader.h"
#include "repo/repository_format.h"
#include "repo/verify.h"

namespace kb::repo {

namespace {

constexpr size_t kWriteBuffer = 1 << 20;
// Chunks of a file sorted by block at a time: 65,536 x 4 KiB = 256 MiB of file, ~2.6 MB of memory.
constexpr size_t kBatchChunks = 65536;

struct FileJob {
  const SnapshotFile* file;
  std::string rel;  // path below the target directory
};

Status Errno(const std::string& what, const std::string& path) {
  return Status::IOError(what + " " + path + ": " + strerror(errno));
}

// The files to restore, every path and id validated again.
Result<std::vector<FileJob>> SelectFiles(const SnapshotManifest& m,
                                         const std::vector<std::string>& project_ids) {
  const std::string what = "snapshot " + m.id;
  std::vector<FileJob> jobs;
  auto add = [&](const std::vector<SnapshotFile>& files, const std::string& prefix) -> Status {
    for (const SnapshotFile& f : files) {
      KB_RETURN_IF_ERROR(ValidateManifestPath(f.path, what));
      for (const std::string& t : f.trees) {
        if (!ChunkIdFromHex(t))
          return Status::Corruption(what + ": file " + f.path + ": bad tree id");
      }
      if (f.size < 0) return Status::Corruption(what + ": file " + f.path + ": negative size");
      jobs.push_back(FileJob{&f, prefix + f.path});
    }
    return Status::OK();
  };
  if (project_ids.empty()) {
    KB_RETURN_IF_ERROR(add(m.catalog_files, ""));
    for (const ProjectSnapshot& p : m.projects) {
      KB_RETURN_IF_ERROR(ValidateProjectId(p.id, what));
      KB_RETURN_IF_ERROR(add(p.files, layout::RelativeProjectDir(p.id)));
    }
    return jobs;
  }
  std::unordered_set<std::string> seen;
  for (const std::string& id : project_ids) {
    if (!seen.insert(id).second) continue;
    const ProjectSnapshot* found = nullptr;
    for (const ProjectSnapshot& p : m.projects) {
      if (p.id == id) found = &p;
    }
    if (found == nullptr) return Status::NotFound(what + " has no project " + QuoteName(id));
    KB_RETURN_IF_ERROR(ValidateProjectId(found->id, what));
    KB_RETURN_IF_ERROR(add(found->files, layout::RelativeProjectDir(found->id)));
  }
  return jobs;
}

// OK if `dir` is absent (then created: *created = true) or an empty directory.
Status PrepareTarget(const std::string& dir, bool* created) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return Errno("cannot inspect", dir);
    KB_RETURN_IF_ERROR(MakeDirs(dir, 0700));
    *created = true;
    return Status::OK();
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition("restore target " + dir + " exists and is not a directory");
  }
  std::error_code ec;
  if (std::filesystem::directory_iterator(dir, ec) != std::filesystem::directory_iterator()) {
    return Status::FailedPrecondition("restore target " + dir + " is not empty");
  }
  if (ec) return Status::IOError("cannot list " + dir + ": " + ec.message());
  return Status::OK();
}

void RemoveWritten(const std::string& dir, bool created) {
  std::error_code ec;
  if (created) {
    std::filesystem::remove_all(dir, ec);
  } else {
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      std::filesystem::remove_all(entry.path(), ec);
    }
  }
  if (ec) LogWarn("restore: could not remove partial files in " + dir + ": " + ec.message());
}

class FileRestorer {
 public:
  FileRestorer(const RepoContext& ctx, const ChunkMap& map, const std::string& target,
               const std::string& snapshot_id)
      : map_(map), reader_(ctx, map), target_(target), snapshot_id_(snapshot_id) {}

  Status Restore(const FileJob& job) {
    KB_RETURN_IF_ERROR(MakeParents(job.rel));
    std::string path = target_ + "/" + job.rel;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Errno("cannot create", path);
    Status s = WriteContent(fd, *job.file, path);
    if (s.ok() && fchmod(fd, static_cast<mode_t>(job.file->mode & 0777)) != 0) {
      s = Errno("cannot set the mode of", path);
    }
    if (s.ok() && fsync(fd) != 0) s = Errno("cannot fsync", path);
    if (close(fd) != 0 && s.ok()) s = Errno("cannot close", path);
    return s;
  }

  // fsyncs every directory that received entries, deepest first, then the target.
  Status SyncDirectories() {
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      KB_RETURN_IF_ERROR(FsyncPath(target_ + "/" + *it));
    }
    return FsyncPath(target_);
  }

  int64_t bytes_fetched() const { return reader_.bytes_fetched(); }

 private:
  Status MakeParents(const std::string& rel) {
    size_t slash = 0;
    while ((slash = rel.find('/', slash)) != std::string::npos) {
      std::string sub = rel.substr(0, slash++);
      if (made_.count(sub)) continue;
      std::string path = target_ + "/" + sub;
      if (mkdir(path.c_str(), 0700) != 0) {
        struct stat st;
        if (errno != EEXIST || lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
          return Errno("cannot create directory", path);
        }
      }
      made_.insert(sub);
      dirs_.push_back(sub);
    }
    return Status::OK();
  }

  Status WriteContent(int fd, const SnapshotFile& file, const std::string& path) {
    const std::string where = "snapshot " + snapshot_id_ + ": file " + file.path;
    return StreamSnapshotFile(
        reader_, map_, file, where, kBatchChunks,
        [&](int64_t offset, std::string_view data) { return WriteFully(fd, data, path, offset); });
  }

  const ChunkMap& map_;
  ChunkReader reader_;
  std::string target_;
  std::string snapshot_id_;
  std::unordered_set<std::string> made_;
  std::vector<std::string> dirs_;
};

}  // namespace

// Chunks are read block by block, not in file order: after many incremental backups a file's
// chunks come from many backups, interleaved, and reading them in file order through a small
// block cache would fetch and decompress a 1 MiB block for nearly every 4 KiB chunk. So the
// chunk list is taken in batches of `batch_chunks` (memory bounded whatever the file size); each
// batch is sorted by pack and block, every block is fetched once, and its chunks are handed to
// `write` at their offsets (adjacent ones in one call, up to kWriteBuffer bytes).
Status StreamSnapshotFile(ChunkReader& reader, const ChunkMap& map, const SnapshotFile& file,
                          const std::string& where, size_t batch_chunks,
                          const std::function<Status(int64_t, std::string_view)>& write) {
  struct Piece {
    uint32_t pack;
    uint32_t block;
    int64_t offset;  // in the file
    ChunkId id;
  };
  auto fail = [&](const Status& s) { return Status(s.code(), where + ": " + s.message()); };
  std::vector<Piece> batch;
  batch.reserve(std::min<size_t>(batch_chunks, kBatchChunks));
  auto write_batch = [&]() -> Status {
    std::sort(batch.begin(), batch.end(), [](const Piece& a, const Piece& b) {
      return std::tie(a.pack, a.block, a.offset) < std::tie(b.pack, b.block, b.offset);
    });
    std::string run;  // bytes for [run_start, run_start + run.size())
    int64_t run_start = 0;
    for (const Piece& piece : batch) {
      auto data = reader.Read(piece.id);
      if (!data.ok()) return fail(data.status());
      if (!run.empty() && (piece.offset != run_start + static_cast<int64_t>(run.size()) ||
                           run.size() >= kWriteBuffer)) {
        KB_RETURN_IF_ERROR(write(run_start, run));
        run.clear();
      }
      if (run.empty()) run_start = piece.offset;
      run.append(*data);
    }
    if (!run.empty()) KB_RETURN_IF_ERROR(write(run_start, run));
    batch.clear();
    return Status::OK();
  };
  int64_t offset = 0;
  for (const std::string& tree_hex : file.trees) {
    std::optional<ChunkId> tree = ChunkIdFromHex(tree_hex);
    if (!tree) return fail(Status::Corruption("bad tree id"));
    auto ids = reader.ReadTree(*tree);
    if (!ids.ok()) return fail(ids.status());
    for (const ChunkId& id : *ids) {
      const ChunkLocation* loc = map.Find(id);
      if (loc == nullptr || loc->pack == ChunkMap::kPendingPack) {
        return fail(Status::Corruption("chunk " + ChunkIdHex(id) + " is not in any index"));
      }
      batch.push_back(Piece{loc->pack, loc->block, offset, id});
      offset += loc->length;
      if (offset > file.size) {
        return Status::Corruption(where + ": its chunks hold more than its size of " +
                                  std::to_string(file.size) + " bytes");
      }
      if (batch.size() >= batch_chunks) KB_RETURN_IF_ERROR(write_batch());
    }
  }
  KB_RETURN_IF_ERROR(write_batch());
  if (offset != file.size) {
    return Status::Corruption(where + ": its chunks hold " + std::to_string(offset) +
                              " bytes, the manifest says " + std::to_string(file.size));
  }
  return Status::OK();
}

Status RestoreSnapshotFiles(const RepoContext& ctx, const SnapshotManifest& manifest,
                            const std::vector<std::string>& project_ids,
                            const std::string& target_dir, int64_t* bytes_read) {
  if (target_dir.empty()) return Status::InvalidArgument("restore target directory is empty");
  KB_ASSIGN_OR_RETURN(std::vector<FileJob> jobs, SelectFiles(manifest, project_ids));

  // Packs in a prune plan may disappear at any moment: read from others when a chunk has one.
  const std::unordered_set<std::string> planned = PlannedPacks(ctx);
  ChunkMap map;
  KB_ASSIGN_OR_RETURN(IndexLoadResult loaded, LoadChunkMap(ctx, planned, true, &map));
  for (const std::string& problem : loaded.problems) {
    LogWarn("restore: unreadable index object: " + problem);
  }

  bool created = false;
  KB_RETURN_IF_ERROR(PrepareTarget(target_dir, &created));
  FileRestorer restorer(ctx, map, target_dir, manifest.id);
  Status s = Status::OK();
  for (const FileJob& job : jobs) {
    s = restorer.Restore(job);
    if (!s.ok()) break;
  }
  if (s.ok()) s = restorer.SyncDirectories();
  if (s.ok() && created) {
    std::string parent = std::filesystem::path(target_dir).parent_path().string();
    if (!parent.empty()) s = FsyncPath(parent);
  }
  if (bytes_read != nullptr) *bytes_read = restorer.bytes_fetched();
  if (!s.ok()) {
    RemoveWritten(target_dir, created);
    if (s.code() == Code::kCorruption) {
      // Absent objects (a manifest replicated before its packs or index) are not damage.
      MissingObjects missing = FindMissingObjects(ctx, map, loaded, manifest);
      if (missing.total() > 0) return IncompleteSnapshot(manifest.id, missing);
    }
    if (s.code() == Code::kCorruption && !loaded.problems.empty()) {
      s = Status::Corruption(s.message() + " (unreadable index objects: " + loaded.problems[0] +
                             (loaded.problems.size() > 1 ? ", ..." : "") + ")");
    }
  }
  return s;
}

}  // namespace kb::repo
