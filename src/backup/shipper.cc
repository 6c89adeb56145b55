// The server's journal shipper: each round reads every live project's journal after its last
// shipped point and writes one segment per project with changes (docs/format/SHIPPING.md).
#include "backup/shipper.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "common/clock.h"
#include "common/data_layout.h"
#include "common/logging.h"
#include "store/project_reader.h"

namespace kb::backup {

namespace {

repo::SegmentEntry ToSegmentEntry(const JournalEntry& e) {
  return {e.lsn, e.ts_ms, e.actor, e.op, e.payload, e.checksum};
}

}  // namespace

JournalShipper::JournalShipper(KnowledgeBase* kb, const ShipperOptions& options)
    : kb_(kb), options_(options) {}

Result<std::unique_ptr<JournalShipper>> JournalShipper::Start(KnowledgeBase* kb,
                                                              const ShipperOptions& options) {
  if (options.interval_ms < 0) return Status::InvalidArgument("ship_interval must be >= 0");
  if (options.interval_ms == 0) return std::unique_ptr<JournalShipper>();
  if (!options.open_repository) return Status::InvalidArgument("shipping needs a repository");
  std::unique_ptr<JournalShipper> s(new JournalShipper(kb, options));
  s->thread_ = std::thread([p = s.get()] { p->Loop(); });
  LogInfo("journal shipping started", nlohmann::json{{"interval_ms", options.interval_ms}}.dump());
  return s;
}

std::unique_ptr<JournalShipper> JournalShipper::CreateForTest(KnowledgeBase* kb,
                                                              const ShipperOptions& options) {
  return std::unique_ptr<JournalShipper>(new JournalShipper(kb, options));
}

JournalShipper::~JournalShipper() { Stop(); }

void JournalShipper::Stop() {
  {
    MutexLock lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void JournalShipper::Loop() {
  int64_t wait_ms = options_.interval_ms;
  for (;;) {
    Status s = ShipOnce();
    // After a failure the wait doubles (a repository that is down is not hammered), up to
    // kMaxShipRetryMs; the first success goes back to the interval.
    wait_ms = s.ok() ? options_.interval_ms
                     : std::min(std::max(wait_ms * 2, options_.interval_ms), kMaxShipRetryMs);
    MutexLock lock(stop_mu_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (!stopping_) {
      if (!stop_cv_.WaitUntil(stop_mu_, deadline)) break;
    }
    if (stopping_) break;
  }
  // A last round on the way out: what was committed before the stop is shipped if it can be.
  (void)ShipOnce();
}

Result<repo::Repository*> JournalShipper::Repo() {
  if (!repo_) {
    KB_ASSIGN_OR_RETURN(repo_, options_.open_repository());
  }
  return repo_.get();
}

Status JournalShipper::LoadSnapshotPoints() {
  KB_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, repo->ListSnapshotIds());
  std::map<std::string, std::vector<repo::ChainPoint>> points;
  for (const std::string& id : ids) {
    auto m = repo->ReadSnapshot(id);
    if (!m.ok()) {
      if (m.status().code() == Code::kNotFound) continue;  // forgotten meanwhile
      // An unreadable manifest anchors nothing: a resume point is never taken from it.
      LogWarn("shipping: snapshot unreadable",
              nlohmann::json{{"snapshot", id}, {"error", m.status().ToString()}}.dump());
      continue;
    }
    for (const repo::ProjectSnapshot& p : m->projects) {
      if (!p.content_checksum.empty()) points[p.id].push_back({p.lsn, p.content_checksum, 0});
    }
  }
  snapshot_points_ = std::move(points);
  return Status::OK();
}

Result<repo::ChainPoint> JournalShipper::FindResumePoint(const std::string& project_id,
                                                         store::ProjectReader& reader) {
  KB_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  if (!snapshot_points_) KB_RETURN_IF_ERROR(LoadSnapshotPoints());
  KB_ASSIGN_OR_RETURN(store::ProjectMeta meta, reader.Meta());
  const int64_t local_last = meta.last_lsn;
  repo::ChainPoint best;
  auto local_at = [&](int64_t lsn) { return reader.JournalChecksumAt(lsn); };
  // Snapshots: their points, by checksum.
  if (auto it = snapshot_points_->find(project_id); it != snapshot_points_->end()) {
    for (const repo::ChainPoint& p : it->second) {
      if (p.lsn <= best.lsn || p.lsn > local_last) continue;
      KB_ASSIGN_OR_RETURN(std::optional<std::string> local, local_at(p.lsn));
      if (local && *local == p.checksum) best = {p.lsn, *local, 0};
    }
  }
  // Segments, newest end first: a segment's end by its tag (no read); a segment the local
  // journal left inside (the project was restored to a point within it) by its entries.
  KB_ASSIGN_OR_RETURN(std::vector<repo::SegmentName> names, repo::ListSegments(*repo, project_id));
  std::sort(names.begin(), names.end(), [](const repo::SegmentName& a, const repo::SegmentName& b) {
    return a.last_lsn > b.last_lsn;
  });
  for (const repo::SegmentName& n : names) {
    if (n.last_lsn <= best.lsn) break;
    if (n.first_lsn > local_last) continue;
    if (n.last_lsn <= local_last) {
      KB_ASSIGN_OR_RETURN(std::optional<std::string> local, local_at(n.last_lsn));
      if (local && repo::StateTag(*repo, project_id, n.last_lsn, *local) == n.end_tag) {
        best = {n.last_lsn, *local, 0};
        break;
      }
    }
    Result<repo::Segment> read = repo::ReadSegment(*repo, n);
    if (!read.ok()) {
      // Unreadable: it can name no resume point (shipping continues from an older one; a
      // restore names the damaged segment).
      LogWarn("shipping: segment unreadable",
              nlohmann::json{{"segment", n.key}, {"error", read.status().ToString()}}.dump());
      continue;
    }
    const repo::Segment& seg = *read;
    for (int64_t l = std::min(n.last_lsn, local_last); l > std::max(best.lsn, n.first_lsn - 1);
         --l) {
      KB_ASSIGN_OR_RETURN(std::optional<std::string> local, local_at(l));
      if (local && *local == seg.entries[static_cast<size_t>(l - n.first_lsn)].checksum) {
        best = {l, *local, 0};
        break;
      }
    }
  }
  return best;
}

Status JournalShipper::ShipProject(const ProjectRecord& project) {
  KB_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  const std::string path = layout::ProjectDb(kb_->options().data_dir, project.id);
  KB_ASSIGN_OR_RETURN(std::unique_ptr<store::ProjectReader> reader,
                      store::ProjectReader::Open(path));
  KB_ASSIGN_OR_RETURN(store::ProjectMeta meta, reader->Meta());

  auto it = shipped_.find(project.id);
  bool known = it != shipped_.end();
  if (known) {
    // Still the same history? A restore of the project replaces its database: the journal may
    // then stand before our point, or at it with another state.
    const repo::ChainPoint& p = it->second;
    bool same = p.lsn == 0;
    if (!same && meta.last_lsn >= p.lsn) {
      KB_ASSIGN_OR_RETURN(std::optional<std::string> local, reader->JournalChecksumAt(p.lsn));
      same = local && *local == p.checksum;
    }
    if (!same) {
      LogInfo("shipping: project history changed (restored?); finding the resume point again",
              nlohmann::json{
                  {"project", project.name}, {"shipped_lsn", p.lsn}, {"local_lsn", meta.last_lsn}}
                  .dump());
      snapshot_points_.reset();  // the restore may have added a pre-restore snapshot
      shipped_.erase(it);
      known = false;
    }
  }
  if (!known) {
    KB_ASSIGN_OR_RETURN(repo::ChainPoint start, FindResumePoint(project.id, *reader));
    it = shipped_.emplace(project.id, start).first;
  }

  auto record_state = [&](double lag) {
    MutexLock lock(state_mu_);
    ProjectShipState& s = state_[project.id];
    s.project_id = project.id;
    s.name = project.name;
    s.shipped = it->second;
    s.local_lsn = meta.last_lsn;
    s.lag_seconds = lag;
  };
  const int64_t max_entries =
      std::clamp<int64_t>(options_.max_segment_entries, 1, repo::kMaxSegmentEntries);
  while (it->second.lsn < meta.last_lsn) {
    const int64_t from = it->second.lsn;
    KB_ASSIGN_OR_RETURN(std::vector<JournalEntry> entries,
                        reader->ReadJournal(from, std::min(meta.last_lsn, from + max_entries)));
    if (entries.empty() || entries.front().lsn != from + 1) {
      return Status::FailedPrecondition("project " + project.name + ": journal entry " +
                                        std::to_string(from + 1) + " is not readable");
    }
    // Lag: the oldest committed entry not yet shipped is the first one read.
    record_state(std::max<double>(
        0, static_cast<double>(kb_->clock()->NowMillis() - entries.front().ts_ms) / 1000.0));
    repo::Segment seg;
    seg.project_id = project.id;
    seg.first_lsn = entries.front().lsn;
    seg.last_lsn = entries.back().lsn;
    seg.base_checksum = it->second.checksum;
    seg.checksum = entries.back().checksum;
    seg.first_ts_ms = entries.front().ts_ms;
    seg.last_ts_ms = entries.back().ts_ms;
    for (const JournalEntry& e : entries) seg.entries.push_back(ToSegmentEntry(e));
    KB_ASSIGN_OR_RETURN(repo::SegmentName name, repo::WriteSegment(*repo, seg));
    counters_.segments.fetch_add(1);
    it->second = {seg.last_lsn, seg.checksum, seg.last_ts_ms};
  }
  record_state(0);
  return Status::OK();
}

Status JournalShipper::ShipAll() {
  KB_ASSIGN_OR_RETURN(std::vector<ProjectRecord> projects, kb_->ListProjects());
  Status first_error;
  {
    // Projects deleted since are no longer shipped: drop their figures.
    std::set<std::string> live;
    for (const ProjectRecord& p : projects) {
      if (!p.deleted_at_ms) live.insert(p.id);
    }
    MutexLock lock(state_mu_);
    std::erase_if(state_, [&](const auto& kv) { return !live.count(kv.first); });
  }
  for (const ProjectRecord& p : projects) {
    if (p.deleted_at_ms) continue;
    // One project's failure does not hold the others back.
    if (Status s = ShipProject(p); !s.ok() && first_error.ok()) {
      first_error = s.WithContext("shipping project " + p.name);
    }
  }
  return first_error;
}

Status JournalShipper::ShipOnce() {
  MutexLock round(round_mu_);
  Status result = ShipAll();
  const int64_t now = kb_->clock()->NowMillis();
  MutexLock lock(state_mu_);
  if (result.ok()) {
    counters_.last_success_ms.store(now);
    if (!last_error_.empty()) LogInfo("journal shipping recovered");
    last_error_.clear();
    last_error_logged_ms_ = 0;
  } else {
    counters_.failures.fetch_add(1);
    // A repository that is down makes every round fail: the first failure and then one line
    // every kShipFailureLogMs, not one every interval.
    if (last_error_logged_ms_ == 0 || now - last_error_logged_ms_ >= kShipFailureLogMs) {
      LogWarn("journal shipping failed; retrying",
              nlohmann::json{{"error", result.ToString()}, {"failures", counters_.failures.load()}}
                  .dump());
      last_error_logged_ms_ = now;
    }
    last_error_ = result.ToString();
    // The repository object is kept: a store that failed transiently works again later, and
    // Open is what could not have failed transiently after it once succeeded.
  }
  return result;
}

std::vector<ProjectShipState> JournalShipper::Projects() const {
  MutexLock lock(state_mu_);
  std::vector<ProjectShipState> out;
  for (const auto& [id, s] : state_) out.push_back(s);
  return out;
}

nlohmann::json JournalShipper::StatusJson() const {
  nlohmann::json projects = nlohmann::json::array();
  for (const ProjectShipState& s : Projects()) {
    projects.push_back(
        {{"project_id", s.project_id},
         {"project", s.name},
         {"shipped_lsn", s.shipped.lsn},
         {"shipped_commit",
          s.shipped.ts_ms > 0 ? nlohmann::json(FormatIso8601(s.shipped.ts_ms)) : nlohmann::json()},
         {"local_lsn", s.local_lsn},
         {"lag_seconds", s.lag_seconds}});
  }
  MutexLock lock(state_mu_);
  const int64_t last = counters_.last_success_ms.load();
  return {{"interval_ms", options_.interval_ms},
          {"segments", counters_.segments.load()},
          {"failures", counters_.failures.load()},
          {"last_success", last > 0 ? nlohmann::json(FormatIso8601(last)) : nlohmann::json()},
          {"last_error", last_error_},
          {"projects", std::move(projects)}};
}

}  // namespace kb::backup
