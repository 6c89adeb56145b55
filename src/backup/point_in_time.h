// Restore of one project to a point in time (issue 13, first slice): the newest snapshot at or
// before the target, then the project's shipped journal segments replayed up to the last entry
// committed at or before it (docs/format/SHIPPING.md, reader rules), proven equal by the content
// checksum the chain recorded, then swapped in as RestoreProject does (pre-restore snapshot
// first). Operator guide: docs/BACKUP.md "Continuous shipping and restore to any second".
//
// Thread-safety: a function; it uses the Repository and KnowledgeBase under their own rules.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "backup/restore.h"
#include "repo/repository.h"
#include "repo/segments.h"
#include "service/knowledge_base.h"

namespace kb::backup {

// Exactly one of the two.
struct PointInTimeTarget {
  std::optional<int64_t> at_ms;  // the last entry committed at or before this time
  std::optional<int64_t> lsn;    // exactly this LSN (an error if the chain does not reach it)
};

struct PointInTimeReport {
  std::string snapshot_id;  // the snapshot replay started from
  std::string project_id;
  std::string project_name;
  int64_t snapshot_lsn = 0;
  int64_t lsn = 0;               // reached
  std::string commit_time;       // ISO-8601 of entry `lsn` ("" when no entry was replayed and
                                 // the snapshot's own time is unknown)
  std::string content_checksum;  // reached, recomputed from the rows
  int64_t entries_replayed = 0;
  int64_t segments_read = 0;
  // The chain ended before the target (shipping is behind or stopped): the newest point there is.
  bool target_beyond_chain = false;
  std::string pre_restore_snapshot;
  std::string moved_aside;
  double seconds = 0;
  nlohmann::json ToJson() const;
};

// Restores `project` (id or name) of the running (or directly opened) `kb` to `target`, touching
// no other project. Errors: NotFound (no snapshot at or before the target holds the project),
// DataLoss-like refusals as FailedPrecondition naming the segment and the time that cannot be
// reached (a missing or unreadable segment inside the range: nothing is changed), Corruption (a
// replayed entry or the final content checksum disagrees with the chain), and those of
// RestoreProject. On any error the live project is untouched.
Result<PointInTimeReport> RestoreProjectToPoint(repo::Repository& repo, const std::string& project,
                                                const PointInTimeTarget& target, KnowledgeBase& kb,
                                                const ProjectRestoreOptions& options);

// What `backup list` shows per project: the earliest and latest second restorable to.
struct RestorableWindow {
  std::string project_id;
  std::string project_name;
  int64_t earliest_ms = 0;  // the oldest snapshot's time holding the project
  int64_t latest_ms = 0;    // the newest commit reachable (a snapshot's time if no segments)
  int64_t latest_lsn = 0;
  std::string gap;  // non-empty: the newest snapshot's chain stops at a missing segment
};
Result<std::vector<RestorableWindow>> RestorableWindows(repo::Repository& repo);

}  // namespace kb::backup
