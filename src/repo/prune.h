// Two-phase prune (docs/format/BACKUP_REPOSITORY.md, "Prune (two-phase)"): remove stale locks,
// sweep due plans (unless a live backup lock could have reused their packs), then mark every
// unreferenced pack into a new plan. Deletes nothing in dry-run mode (and writes nothing, not
// even its own lock).
//
// Thread-safety: one prune per repository at a time; a second one finds the first's lock and
// refuses (FailedPrecondition).
#pragma once

#include "common/status.h"
#include "repo/repository.h"
#include "repo/repository_context.h"

namespace kb::repo {

Result<PruneReport> PruneRepository(const RepoContext& ctx, const PruneOptions& options);

}  // namespace kb::repo
