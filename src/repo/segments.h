// Journal segments: a project's journal entries, shipped into the backup repository between
// snapshots, so that a project can be restored to any second and not only to its last snapshot.
// Format, names and ordering rules: docs/format/SHIPPING.md (read it first; the constants here
// refer back to it). Like the rest of src/repo this knows objects only: an entry is opaque bytes
// (the journal's op and payload as the store wrote them); applying entries to a database is the
// business of src/backup.
//
// A chain: a snapshot records the LSN and content checksum it covers; the segment whose base is
// that point continues it, the segment whose base is that segment's end continues it, and so on.
// A segment's object name carries its LSN range and keyed tags of its base and end states, so a
// chain can be planned from a listing without reading (or being able to read) any segment.
//
// Thread-safety: free functions; each may be called concurrently (the repository's store and
// context are thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "repo/repository.h"

namespace kb::repo {

// --- Format constants (docs/format/SHIPPING.md) ---
inline constexpr int kSegmentVersion = 1;
inline constexpr std::string_view kSegmentFormat = "knowledgebeast-segment";
inline constexpr std::string_view kSegmentsPrefix = "segments/";
// A segment holds at most this many entries: bounds a writer's and a reader's memory (a journal
// entry holds a whole document, embeddings included).
inline constexpr int64_t kMaxSegmentEntries = 1000;

// One journal entry as shipped: the fields of docs/format/JOURNAL.md, verbatim.
struct SegmentEntry {
  int64_t lsn = 0;
  int64_t ts_ms = 0;
  std::string actor;
  std::string op;
  std::string payload;   // the journal's JSON text, unchanged
  std::string checksum;  // content checksum after this entry (64 hex)
  bool operator==(const SegmentEntry&) const = default;
};

struct Segment {
  std::string project_id;
  // Fencing generation of the writer (a later slice); 0 in this one.
  int64_t generation = 0;
  int64_t first_lsn = 0;
  int64_t last_lsn = 0;
  // The content checksum before first_lsn ("" when first_lsn is 1: the empty project) and after
  // last_lsn.
  std::string base_checksum;
  std::string checksum;
  int64_t first_ts_ms = 0;
  int64_t last_ts_ms = 0;
  std::vector<SegmentEntry> entries;
};

// What a segment's object name says: enough to plan a chain without reading it.
struct SegmentName {
  std::string key;  // segments/<project>/<first>-<last>-<first ts>-<base tag>-<end tag>
  std::string project_id;
  int64_t first_lsn = 0;
  int64_t last_lsn = 0;
  // Commit time of the first entry: a restore tells from the listing alone when a project's
  // history was rewound (a segment rewriting LSNs a snapshot covers, committed after it).
  int64_t first_ts_ms = 0;
  std::string base_tag;  // StateTag(project, first_lsn - 1, base_checksum)
  std::string end_tag;   // StateTag(project, last_lsn, checksum)
  int64_t size = 0;      // bytes stored (from the listing)
};

// A point in a project's history: the state after entry `lsn` (lsn 0 = the empty project).
struct ChainPoint {
  int64_t lsn = 0;
  std::string checksum;  // "" for lsn 0
  int64_t ts_ms = 0;     // commit time of entry `lsn` (0 when unknown)
};

// The keyed tag of a project state (16 hex digits): names carry tags, not checksums, so the
// store never learns whether two states are equal to a state it can guess.
std::string StateTag(Repository& repo, std::string_view project_id, int64_t lsn,
                     std::string_view checksum);

class ChunkIdHasher;
// The same with the id key's hasher given (the test vector of the format doc).
std::string StateTagFor(const ChunkIdHasher& id_hasher, std::string_view project_id, int64_t lsn,
                        std::string_view checksum);

// "segments/<project>/<first:016x>-<last:016x>-<first ts ms:016x>-<base tag>-<end tag>"; nullopt
// for any other key.
std::optional<SegmentName> ParseSegmentKey(std::string_view key);

// Writes `segment` (entries consecutive from first_lsn to last_lsn, the header's fields equal to
// what the entries say: InvalidArgument otherwise) as one sealed object. Returns its name.
Result<SegmentName> WriteSegment(Repository& repo, const Segment& segment);

// Every segment of `project_id`, in log order (by first LSN, then by name). Keys under the
// project's prefix that are not segment names are left out and reported in `ignored`.
Result<std::vector<SegmentName>> ListSegments(Repository& repo, std::string_view project_id,
                                              std::vector<std::string>* ignored = nullptr);

// The project ids that have segments.
Result<std::vector<std::string>> ListSegmentProjects(Repository& repo);

// Reads and checks one segment: its box (Corruption naming the key), version (FailedPrecondition
// for a newer one), that its header and entries agree with its name (LSN range, tags), that the
// entries are consecutive and its checksum is the last entry's.
Result<Segment> ReadSegment(Repository& repo, const SegmentName& name);

// Where following a chain stops (both optional: the chain's end otherwise).
struct ChainLimit {
  std::optional<int64_t> lsn;    // apply entries up to and including this LSN
  std::optional<int64_t> at_ms;  // apply entries committed at or before this time
};

// The result of following a chain from a starting point.
struct ChainWalk {
  ChainPoint start;
  ChainPoint reached;  // the last entry applied (== start when none)
  int64_t entries = 0;
  std::vector<std::string> segments;  // keys read, in order
  // Empty when the chain is whole up to the limit or to its end. Otherwise why it stopped early:
  // which segment is missing or unreadable, and what lies beyond it.
  std::string gap;
  // With a gap: the LSN range and commit times that cannot be reached (times 0 when unknown).
  int64_t unreachable_first_lsn = 0;
  int64_t unreachable_last_lsn = 0;
  int64_t unreachable_until_ms = 0;
  // The walk stopped because of the limit (an entry beyond it exists), not at the chain's end.
  bool limit_reached = false;
  bool complete() const { return gap.empty(); }
};

// Follows `project_id`'s chain from `start`: the segment whose base is `start` (LSN and tag),
// then the one whose base is that one's end, ... up to `limit`, calling `apply` for every entry
// (in LSN order) inside the limit; an error from `apply` stops the walk and is returned. A
// missing or unreadable segment, or two segments continuing the same point, end the walk with
// `gap` set (not an error: the caller decides whether a partial chain is acceptable); the walk
// never skips over one. Errors: the store's (listing), `apply`'s.
Result<ChainWalk> FollowChain(Repository& repo, std::string_view project_id,
                              const ChainPoint& start, const ChainLimit& limit,
                              const std::function<Status(const SegmentEntry&)>& apply);

}  // namespace kb::repo
