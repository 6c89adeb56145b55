// Verification of snapshots and of the whole repository (docs/format/BACKUP_REPOSITORY.md;
// `backup verify`, `repo check`).
//
// A snapshot is checked at one of these levels, each including the previous:
//   structure   the manifest opens and validates; every tree opens and every tree and chunk it
//               names is in the index; every pack used exists with the size the index says
//               (Stat); each file's size equals the sum of its chunks.
//   read-data   every pack used (or a random subset) is downloaded whole: its SHA-256 matches its
//               name, its table opens and agrees with the index, every block opens and every
//               chunk matches its id.
//   restore-test the files are restored into a temporary directory and checked there by
//               VerifyOptions::restored_check, which the caller supplies (the engine knows
//               nothing of SQLite: src/backup/restore_check.h checks the databases).
// Problems name the object ("data/ab/ab12…: block 3 fails authentication") and, in each
// snapshot's report, every damaged object it depends on.
//
// ReferenceWalker is shared with prune: it resolves a manifest into the packs it uses.
//
// Thread-safety: one call at a time per walker; the functions may run concurrently.
#pragma once

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "repo/chunk_index.h"
#include "repo/pack_reader.h"
#include "repo/repository.h"
#include "repo/repository_context.h"

namespace kb::repo {

struct ChunkIdHash {
  size_t operator()(const ChunkId& id) const {
    size_t h;
    memcpy(&h, id.data(), sizeof h);
    return h;
  }
};

// Resolves snapshots into the packs they use, reading each tree once (trees are shared by
// snapshots of unchanged files).
class ReferenceWalker {
 public:
  ReferenceWalker(const RepoContext& ctx, const ChunkMap& map);

  // Adds to `packs` the ordinals of every pack `m` uses; appends problems (a tree or chunk not in
  // the index, an unreadable tree, a size mismatch), each naming the snapshot.
  void Walk(const SnapshotManifest& m, std::set<uint32_t>* packs,
            std::vector<std::string>* problems);

  int64_t bytes_fetched() const { return reader_.bytes_fetched(); }

 private:
  struct TreeSummary {
    std::vector<uint32_t> packs;
    int64_t bytes = 0;
    std::vector<std::string> problems;
  };
  const TreeSummary& Tree(const ChunkId& id);
  void WalkFile(const SnapshotFile& f, const std::string& where, std::set<uint32_t>* packs,
                std::vector<std::string>* problems);

  const ChunkMap& map_;
  ChunkReader reader_;
  std::unordered_map<ChunkId, TreeSummary, ChunkIdHash> trees_;
};

// Objects a snapshot needs that are absent rather than damaged: packs that are not in data/ and
// trees or chunks that no index object names. A manifest can arrive before its packs and index
// objects (bucket replication copies objects in any order), so restore and verify report this
// as an incomplete snapshot, not as corruption.
struct MissingObjects {
  int64_t packs = 0;
  int64_t unindexed = 0;  // trees and chunks in no index object (at least; a missing tree hides
                          // the chunks it names)
  std::vector<std::string> examples;  // a few of the problems, for the message
  int64_t total() const { return packs + unindexed; }
};

// Classifies problems as ReferenceWalker::Walk and a pack Stat word them ("…: missing", "… is not
// in any index"). Trees and chunks in no index count only when `index_readable` (every index
// object could be read): otherwise a damaged index object may be why, and that is corruption.
MissingObjects CountMissing(const std::vector<std::string>& problems, bool index_readable);

// Walks `m` against `map` and the data/ listing and index problems of `loaded` (what the map
// was loaded with).
MissingObjects FindMissingObjects(const RepoContext& ctx, const ChunkMap& map,
                                  const IndexLoadResult& loaded, const SnapshotManifest& m);

// Unavailable: "incomplete snapshot <id>: N objects missing (e.g. bucket replication still in
// flight): <examples>".
Status IncompleteSnapshot(const std::string& snapshot_id, const MissingObjects& missing);

// Repository::Verify. `snapshot_ids` empty = every snapshot. NotFound if a named snapshot does
// not exist. Writes verified/<id> for every snapshot checked.
Result<std::vector<VerifyReport>> VerifySnapshots(const RepoContext& ctx,
                                                  const std::vector<std::string>& snapshot_ids,
                                                  const VerifyOptions& options);

// Repository::Check.
Result<RepoCheckReport> CheckRepository(const RepoContext& ctx, bool read_data);

// Downloads pack `id` whole and checks it (name, table, agreement with `index_blocks` when
// given, every block and chunk). Returns the problems found (empty = good).
std::vector<std::string> CheckPackData(const RepoContext& ctx, const std::string& id,
                                       const PackInfo* indexed, int64_t* bytes_read);

}  // namespace kb::repo
