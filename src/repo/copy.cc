// CopySnapshotBetween: read from one repository as a restore does, write into another as a
// backup does, then verify what was written.
#include "repo/copy.h"

#include "common/clock.h"
#include "common/logging.h"
#include "repo/chunk_index.h"
#include "repo/locks.h"
#include "repo/pack_reader.h"
#include "repo/repository_format.h"
#include "repo/restore_files.h"
#include "repo/snapshot.h"
#include "repo/verify.h"

namespace kb::repo {

namespace {

// Chunks of a file read per block-ordered batch (restore_files.cc). With the same chunk size on
// both sides every piece handed to the destination is a whole chunk of it; with different sizes
// the destination's writer holds each chunk it has only in part until the rest arrives, so
// batches are kept small to bound that memory (256 x 4 KiB pieces: about 1 MB).
constexpr size_t kSameChunkBatch = 65536;
constexpr size_t kMixedChunkBatch = 256;

// A SnapshotSource whose every file is produced by streaming it out of `from`.
class CopySource {
 public:
  CopySource(const RepoContext& from, const RepoContext& to, const SnapshotManifest& original,
             const ChunkMap& map)
      : original_(original),
        map_(map),
        reader_(from, map),
        batch_(from.params.chunk_size == to.params.chunk_size ? kSameChunkBatch
                                                              : kMixedChunkBatch) {}

  SnapshotSource Build() {
    SnapshotSource source;
    source.scope = original_.scope;
    for (const SnapshotFile& f : original_.catalog_files) {
      source.catalog_files.push_back(File(f, f.path));
    }
    for (const ProjectSnapshot& p : original_.projects) {
      ProjectSource ps;
      ps.meta = p;  // LSN, checksums, counts, embedder, index_lsn: kept as they are
      ps.meta.files.clear();
      for (const SnapshotFile& f : p.files) {
        ps.files.push_back(File(f, "projects/" + p.id + "/" + f.path));
      }
      source.projects.push_back(std::move(ps));
    }
    return source;
  }

 private:
  SourceFile File(const SnapshotFile& f, const std::string& shown) {
    const std::string where = "snapshot " + original_.id + ": file " + shown;
    return SourceFile(
        f.path, /*local_path=*/"", f.mode,
        [this, &f, where](FileSink& sink, ProjectSnapshot*) -> Result<int64_t> {
          KB_RETURN_IF_ERROR(StreamSnapshotFile(
              reader_, map_, f, where, batch_,
              [&sink](int64_t offset, std::string_view data) { return sink.Write(offset, data); }));
          return f.size;
        });
  }

  const SnapshotManifest& original_;
  const ChunkMap& map_;
  ChunkReader reader_;
  size_t batch_;
};

// A copy that fails verification must not stay visible: restores would find it first.
Status Withdraw(const RepoContext& to, const std::string& id, const std::string& why) {
  Status deleted = to.store->Delete(SnapshotKey(id));
  Status record = to.store->Delete(VerifiedKey(id));
  (void)record;  // advisory; a leftover record of a missing snapshot is ignored by readers
  std::string text = "the copy of snapshot " + id + " in repository " + to.repo_id +
                     " failed verification (" + why + "); ";
  if (deleted.ok()) return Status::Corruption(text + "its manifest was withdrawn");
  LogError("repo copy: " + text + "its manifest could NOT be withdrawn: " + deleted.ToString());
  return Status::Corruption(text + "its manifest could NOT be withdrawn (" + deleted.ToString() +
                            "): forget it by hand");
}

}  // namespace

Result<CopyResult> CopySnapshotBetween(const RepoContext& from, const RepoContext& to,
                                       const std::string& snapshot_id, const CopyOptions& options) {
  if (!IsSnapshotId(snapshot_id)) {
    return Status::InvalidArgument("invalid snapshot id " + QuoteName(snapshot_id));
  }
  if (from.repo_id == to.repo_id) {
    return Status::InvalidArgument("cannot copy repository " + from.repo_id + " into itself");
  }
  CopyResult result;
  result.snapshot_id = snapshot_id;
  // Idempotent: a snapshot id names one snapshot, so one the destination holds is this one.
  auto present = to.store->Stat(SnapshotKey(snapshot_id));
  if (present.ok()) return result;
  if (present.status().code() != Code::kNotFound) return present.status();

  auto read = ReadManifest(from, snapshot_id);
  if (read.status().code() == Code::kNotFound) {
    return Status::NotFound("repository " + from.repo_id + " has no snapshot " + snapshot_id);
  }
  KB_ASSIGN_OR_RETURN(SnapshotManifest original, std::move(read));

  // The source's chunk map, as a restore loads it (planned packs only as a last resort).
  const std::unordered_set<std::string> planned = PlannedPacks(from);
  ChunkMap map;
  KB_ASSIGN_OR_RETURN(IndexLoadResult loaded, LoadChunkMap(from, planned, true, &map));
  for (const std::string& problem : loaded.problems) {
    LogWarn("repo copy: unreadable index object in the source: " + problem);
  }

  CopySource copy_source(from, to, original, map);
  SnapshotSource source = copy_source.Build();
  SnapshotManifest like = original;
  like.copied_from = CopiedFrom{from.repo_id, FormatIso8601(to.NowMs())};
  BackupOptions bo;
  bo.trigger = original.trigger;
  bo.tags = original.tags;
  bo.threads = options.threads;
  bo.progress = options.progress;
  auto written = WriteSnapshot(to, source, bo, LockTiming{}, &like);
  if (!written.ok()) {
    if (written.status().code() == Code::kCorruption) {
      // The source may itself be a replica whose packs have not all arrived.
      MissingObjects missing = FindMissingObjects(from, map, loaded, original);
      if (missing.total() > 0) return IncompleteSnapshot(snapshot_id, missing);
    }
    return written.status();
  }
  result.copied = true;
  result.stats = written->stats;

  if (options.verify) {
    VerifyOptions vo;
    vo.data = VerifyOptions::Data::kAll;
    auto reports = VerifySnapshots(to, {snapshot_id}, vo);
    if (!reports.ok()) return Withdraw(to, snapshot_id, reports.status().ToString());
    if (reports->size() != 1 || !(*reports)[0].ok) {
      const std::vector<std::string>& problems =
          reports->empty() ? std::vector<std::string>{} : (*reports)[0].problems;
      return Withdraw(to, snapshot_id, problems.empty() ? "no report" : problems.front());
    }
    result.verified = true;
  }
  return result;
}

}  // namespace kb::repo
