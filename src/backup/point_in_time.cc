// Point-in-time restore of one project: snapshot, then shipped segments replayed into the
// restored copy aside, proven by the content checksum, then swapped in (docs/format/SHIPPING.md,
// reader rules).
#include "backup/point_in_time.h"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <map>

#include "backup/source.h"
#include "common/clock.h"
#include "common/crypto_util.h"
#include "common/data_layout.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "repo/retention.h"
#include "store/project_reader.h"
#include "store/project_store.h"

namespace kb::backup {

namespace {

// Distinct names: the module is a unity build (restore.cc has its own helpers).
Result<std::string> PitrWorkDir(const std::string& data_dir) {
  const std::string parent = data_dir + "/.restore-work";
  KB_RETURN_IF_ERROR(MakeDirs(parent));
  std::string dir = parent + "/pitr-" + HexEncode(RandomBytes(6));
  KB_RETURN_IF_ERROR(MakeDirs(dir));
  return dir;
}

std::string PitrJoin(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// "20261126T130000Z": the aside directory's time stamp, as restore.cc names them.
std::string PitrCompactTime(int64_t ms) {
  std::string iso = FormatIso8601(ms);  // 2026-11-26T13:00:00.000Z
  std::string out;
  for (char c : iso.substr(0, 19)) {
    if (c != '-' && c != ':') out.push_back(c);
  }
  return out + "Z";
}

std::optional<int64_t> PitrSnapshotMs(const repo::SnapshotManifest& m) {
  repo::SnapshotSummary s;
  s.id = m.id;
  s.time = m.time;
  return repo::SnapshotTimeMillis(s);
}

std::string IsoOrEmpty(int64_t ms) { return ms > 0 ? FormatIso8601(ms) : std::string(); }

std::string DescribeTarget(const PointInTimeTarget& t) {
  return t.at_ms ? FormatIso8601(*t.at_ms) : "LSN " + std::to_string(t.lsn.value_or(0));
}

// The chain's starting point of a snapshot's project record.
repo::ChainPoint SnapshotPoint(const repo::ProjectSnapshot& p) {
  return {p.lsn, p.lsn == 0 ? std::string() : p.content_checksum, 0};
}

}  // namespace

nlohmann::json PointInTimeReport::ToJson() const {
  nlohmann::json j = {{"mode", "point-in-time"},
                      {"snapshot", snapshot_id},
                      {"project", project_name},
                      {"project_id", project_id},
                      {"snapshot_lsn", snapshot_lsn},
                      {"lsn", lsn},
                      {"commit_time", commit_time},
                      {"content_checksum", content_checksum},
                      {"entries_replayed", entries_replayed},
                      {"segments_read", segments_read},
                      {"target_beyond_chain", target_beyond_chain},
                      {"seconds", seconds}};
  if (!pre_restore_snapshot.empty()) j["pre_restore_snapshot"] = pre_restore_snapshot;
  if (!moved_aside.empty()) j["moved_aside"] = moved_aside;
  return j;
}

Result<PointInTimeReport> RestoreProjectToPoint(repo::Repository& repo, const std::string& project,
                                                const PointInTimeTarget& target, KnowledgeBase& kb,
                                                const ProjectRestoreOptions& options) {
  const int64_t started = MonotonicMicros();
  if (target.at_ms.has_value() == target.lsn.has_value()) {
    return Status::InvalidArgument("give exactly one of a time (--at) and an LSN (--at-lsn)");
  }
  if (target.lsn && *target.lsn < 0) return Status::InvalidArgument("--at-lsn must be >= 0");
  const std::string data_dir = kb.options().data_dir;
  KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, repo.ListSnapshotIds());

  // The project's segments, listed once (again only if a name led to another project id).
  std::optional<std::vector<repo::SegmentName>> segments;
  std::string segments_of;
  // Newest first: the first snapshot holding the project at or before the target.
  for (auto id = ids.rbegin(); id != ids.rend(); ++id) {
    auto manifest = repo.ReadSnapshot(*id);
    if (!manifest.ok()) {
      if (manifest.status().code() != Code::kNotFound) {
        LogWarn("point-in-time restore: snapshot unreadable, passed by",
                nlohmann::json{{"snapshot", *id}, {"error", manifest.status().ToString()}}.dump());
      }
      continue;
    }
    auto found = FindProject(*manifest, project);
    if (!found.ok()) continue;
    const repo::ProjectSnapshot& meta = **found;
    if (meta.source_check.failed()) continue;
    if (target.lsn && meta.lsn > *target.lsn) continue;
    if (target.at_ms) {
      std::optional<int64_t> time = PitrSnapshotMs(*manifest);
      if (!time || *time > *target.at_ms) continue;
    }

    PointInTimeReport report;
    report.snapshot_id = manifest->id;
    report.project_id = meta.id;
    report.project_name = meta.name;
    report.snapshot_lsn = meta.lsn;
    KB_ASSIGN_OR_RETURN(ProjectRecord record, ProjectRecordFromJson(meta.catalog_row));

    KB_ASSIGN_OR_RETURN(std::string work, PitrWorkDir(data_dir));
    struct Cleanup {
      std::string dir;
      ~Cleanup() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      }
    } cleanup{work};
    const std::string restored = work + "/files";
    KB_RETURN_IF_ERROR(repo.RestoreFiles(*manifest, {meta.id}, restored));
    const std::string staged = layout::ProjectDir(restored, meta.id);
    const std::string staged_db = layout::ProjectDbIn(staged);
    std::vector<std::string> problems = CheckProjectMatchesSnapshot(staged, meta);
    if (!problems.empty()) {
      return Status::Corruption("restored project " + meta.name + " from snapshot " + manifest->id +
                                " failed verification: " + PitrJoin(problems, "; "));
    }
    {
      KB_ASSIGN_OR_RETURN(auto reader, store::ProjectReader::Open(staged_db));
      KB_ASSIGN_OR_RETURN(std::optional<store::CommitPoint> newest, reader->NewestCommit());
      const int64_t committed = newest ? newest->ts_ms : 0;
      // A snapshot that started before the target may have copied entries committed after it.
      if (target.at_ms && committed > *target.at_ms) continue;  // an older snapshot, then
      // A project restored to an earlier state after this snapshot rewrote LSNs it covers: a
      // segment starting at or below its LSN, committed after its state and by the target,
      // says this snapshot's history was no longer the live one at the target (SHIPPING.md,
      // reader rule 1). An LSN target means the history live now.
      const int64_t horizon = target.at_ms.value_or(INT64_MAX);
      if (!segments || segments_of != meta.id) {
        KB_ASSIGN_OR_RETURN(segments, repo::ListSegments(repo, meta.id));
        segments_of = meta.id;
      }
      bool replaced = false;
      for (const repo::SegmentName& n : *segments) {
        if (n.first_lsn <= meta.lsn && n.first_ts_ms > committed && n.first_ts_ms <= horizon) {
          replaced = true;
        }
      }
      if (replaced) continue;
    }

    // Replay the chain into the copy aside.
    repo::ChainLimit limit;
    limit.at_ms = target.at_ms;
    limit.lsn = target.lsn;
    repo::ChainWalk walk;
    {
      KB_ASSIGN_OR_RETURN(
          std::unique_ptr<ProjectStore> store,
          ProjectStore::Open(staged_db, meta.id, record.embedding_dimension, kb.clock()));
      KB_ASSIGN_OR_RETURN(
          walk, repo::FollowChain(
                    repo, meta.id, SnapshotPoint(meta), limit,
                    [&](const repo::SegmentEntry& e) -> Status {
                      JournalEntry j{e.lsn, e.ts_ms, e.actor, e.op, e.payload, e.checksum};
                      Status s = store->ApplyJournalEntry(j);
                      return s.ok() ? s : s.WithContext("replaying LSN " + std::to_string(e.lsn));
                    }));
    }  // the store is closed before the files are checked and moved
    if (!walk.complete()) {
      const int64_t from_ms = walk.reached.ts_ms;
      std::string unreachable = "LSN " + std::to_string(walk.unreachable_first_lsn) + ".." +
                                std::to_string(walk.unreachable_last_lsn);
      if (walk.unreachable_until_ms > 0) {
        unreachable += ", commits up to " + FormatIso8601(walk.unreachable_until_ms);
        if (from_ms > 0) {
          unreachable += " (" + std::to_string((walk.unreachable_until_ms - from_ms) / 1000) +
                         " s after the last provable commit)";
        }
      }
      return Status::FailedPrecondition(
          "cannot restore project " + meta.name + " to " + DescribeTarget(target) + ": " +
          walk.gap + "; unreachable: " + unreachable + "; the last provable point is LSN " +
          std::to_string(walk.reached.lsn) +
          (from_ms > 0 ? " committed " + FormatIso8601(from_ms) : std::string()) +
          " (nothing was changed; accepting a gap is not supported yet)");
    }
    if (target.lsn && walk.reached.lsn != *target.lsn) {
      return Status::NotFound("project " + meta.name + ": the shipped chain from snapshot " +
                              manifest->id + " reaches LSN " + std::to_string(walk.reached.lsn) +
                              ", not " + std::to_string(*target.lsn));
    }
    report.entries_replayed = walk.entries;
    report.segments_read = static_cast<int64_t>(walk.segments.size());
    report.target_beyond_chain = target.at_ms.has_value() && !walk.limit_reached;

    // The proof: the state rebuilt from the rows equals what the chain recorded for that LSN.
    {
      KB_ASSIGN_OR_RETURN(auto reader, store::ProjectReader::Open(staged_db));
      KB_ASSIGN_OR_RETURN(store::ProjectMeta m, reader->Meta());
      KB_ASSIGN_OR_RETURN(std::string recomputed, reader->RecomputeContentChecksum());
      const std::string expected = walk.entries > 0 ? walk.reached.checksum : meta.content_checksum;
      if (m.last_lsn != walk.reached.lsn || recomputed != expected ||
          m.content_checksum != expected) {
        return Status::Corruption("project " + meta.name + " rebuilt to LSN " +
                                  std::to_string(m.last_lsn) + " has content checksum " +
                                  recomputed + " (maintained " + m.content_checksum +
                                  "), the chain recorded " + expected + " at LSN " +
                                  std::to_string(walk.reached.lsn) + ": not restored");
      }
      report.lsn = m.last_lsn;
      report.content_checksum = recomputed;
      KB_ASSIGN_OR_RETURN(std::optional<store::CommitPoint> newest, reader->NewestCommit());
      if (newest) report.commit_time = IsoOrEmpty(newest->ts_ms);
    }

    // Swap in as RestoreProject does: the live state kept as a pre-restore snapshot first.
    if (options.pre_restore_snapshot && kb.GetProject(meta.id).ok()) {
      SourceOptions so;
      so.projects = {meta.id};
      so.index_max_lag = options.index_max_lag;
      repo::BackupOptions bo;
      bo.trigger = "pre-restore";
      KB_ASSIGN_OR_RETURN(repo::SnapshotManifest pre, BackupDataDirectory(repo, data_dir, so, bo));
      report.pre_restore_snapshot = pre.id;
    }
    KB_RETURN_IF_ERROR(MakeDirs(layout::RestoredAsideDir(data_dir)));
    report.moved_aside = layout::RestoredAsideFor(
        data_dir, meta.id,
        PitrCompactTime(kb.clock()->NowMillis()) + "-" + HexEncode(RandomBytes(3)));
    KB_RETURN_IF_ERROR(kb.ReplaceProject(record, staged, report.moved_aside, options.actor));
    if (!PathExists(report.moved_aside)) report.moved_aside.clear();
    report.seconds = static_cast<double>(MonotonicMicros() - started) / 1e6;
    LogInfo("project restored to a point in time", report.ToJson().dump());
    return report;
  }
  return Status::NotFound("no snapshot at or before " + DescribeTarget(target) +
                          " holds project '" + project + "'");
}

Result<std::vector<RestorableWindow>> RestorableWindows(repo::Repository& repo) {
  KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, repo.ListSnapshotIds());
  struct Seen {
    RestorableWindow w;
    repo::ChainPoint newest_point;
    int64_t newest_time = 0;
  };
  std::map<std::string, Seen> projects;
  for (const std::string& id : ids) {  // oldest first
    auto m = repo.ReadSnapshot(id);
    if (!m.ok()) continue;
    std::optional<int64_t> time = PitrSnapshotMs(*m);
    if (!time) continue;
    for (const repo::ProjectSnapshot& p : m->projects) {
      if (p.deleted || p.source_check.failed()) continue;
      Seen& s = projects[p.id];
      if (s.w.earliest_ms == 0) s.w.earliest_ms = *time;
      s.w.project_id = p.id;
      s.w.project_name = p.name;
      s.newest_point = SnapshotPoint(p);
      s.newest_time = *time;
    }
  }
  std::vector<RestorableWindow> out;
  for (auto& [id, s] : projects) {
    KB_ASSIGN_OR_RETURN(repo::ChainWalk walk,
                        repo::FollowChain(repo, id, s.newest_point, {}, nullptr));
    s.w.latest_lsn = walk.reached.lsn;
    s.w.latest_ms = walk.entries > 0 ? std::max(walk.reached.ts_ms, s.newest_time) : s.newest_time;
    s.w.gap = walk.gap;
    out.push_back(s.w);
  }
  return out;
}

}  // namespace kb::backup
