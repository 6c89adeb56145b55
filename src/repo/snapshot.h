// Writing snapshots (docs/format/BACKUP_REPOSITORY.md, "Backup (writer)"), and reading and
// listing their manifests.
//
// WriteSnapshot follows the ordering rules exactly: lock; read prune plans (their packs are not
// reused); load the index; stream every file in chunk_size pieces (a file is never read whole)
// through a PackWriter; write trees; flush the last pack and index; check the lock; Put the
// manifest last; delete the lock. A failure at any point leaves only unreferenced objects.
//
// Thread-safety: WriteSnapshot may run concurrently with readers of the same repository; run one
// per process at a time (the repository's lock protects against prune, not against a second
// writer sharing a ChunkMap — each call builds its own).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "repo/locks.h"
#include "repo/repository.h"
#include "repo/repository_context.h"

namespace kb::repo {

// InvalidArgument unless every path and id of `source` follows the manifest rules (so a backup
// never writes a manifest that a restore would refuse).
Status ValidateSource(const SnapshotSource& source);

// `copy_of`, when given, makes the snapshot a copy of that manifest (CopySnapshot): its id,
// time, finished, hostname, kb_version, trigger, scope, tags and copied_from are taken from it;
// the project records come from `source` as always; stats are this write's.
Result<SnapshotManifest> WriteSnapshot(const RepoContext& ctx, const SnapshotSource& source,
                                       const BackupOptions& options, const LockTiming& timing = {},
                                       const SnapshotManifest* copy_of = nullptr);

// Reads and validates snapshots/<id>: Corruption naming the object for anything wrong,
// FailedPrecondition for a newer version, NotFound if it does not exist, InvalidArgument for a
// malformed id.
Result<SnapshotManifest> ReadManifest(const RepoContext& ctx, const std::string& snapshot_id);

// Snapshot ids in key order (= time order); names that are not snapshot ids are skipped.
Result<std::vector<std::string>> ListSnapshotIds(const RepoContext& ctx);

}  // namespace kb::repo
