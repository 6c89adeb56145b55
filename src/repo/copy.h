// Copying a snapshot into another repository (docs/format/BACKUP_REPOSITORY.md, "Copy"): the
// second repository of issue 12 (cross-region copies; a fresh master key after a leak).
//
// Chunk ids are keyed with each repository's own id key and blocks sealed with its own data key,
// so nothing can be copied as bytes: every file of the snapshot is read from the source as a
// restore reads it (StreamSnapshotFile: block order, every chunk checked against its id) and
// handed, at its offsets, to the destination's snapshot writer as a produced file — so the copy
// is chunked, deduplicated against the destination's index, packed and encrypted exactly as a
// backup, under the destination's backup lock, with the manifest written last. Nothing is staged
// on disk.
//
// Thread-safety: as WriteSnapshot (one writer per destination Repository object at a time).
#pragma once

#include <string>

#include "common/status.h"
#include "repo/repository.h"
#include "repo/repository_context.h"

namespace kb::repo {

// See CopySnapshot in repository.h.
Result<CopyResult> CopySnapshotBetween(const RepoContext& from, const RepoContext& to,
                                       const std::string& snapshot_id, const CopyOptions& options);

}  // namespace kb::repo
