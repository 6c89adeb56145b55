// Retention: which snapshots a keep-policy keeps. Pure policy, apart from the code that deletes
// anything (`forget` / prune call ApplyRetention, declared in backup.h, and act on its answer).
//
// Semantics follow restic's `forget`, so operators can carry their intuition over:
//   - Snapshots are ordered newest first (by time, then by id, both descending).
//   - keep_last N keeps the N newest snapshots.
//   - keep_hourly / keep_daily / keep_weekly / keep_monthly N: snapshots fall into buckets (the
//     UTC hour, UTC day, ISO-8601 week, UTC month of their start time); the newest snapshot of each
//     of the N newest buckets that hold a snapshot is kept. Empty buckets do not count: with
//     keep_daily 7 and a gap of a week, the last 7 days *that have snapshots* are kept.
//     A negative N means "no limit" (restic's -1): the newest snapshot of every bucket is kept.
//   - keep_within D keeps every snapshot whose time is >= now - D (the window includes its edge).
//   - A snapshot kept by several rules lists every reason, e.g. {"last", "daily 2026-11-25"}.
//   - A snapshot whose time cannot be read (neither `time` nor the id's prefix parses) is kept,
//     with reason "unknown time": forgetting must never be the outcome of a parse failure.
//   - Likewise a snapshot whose manifest could not be read (SnapshotSummary::problem set, e.g. a
//     format version from a newer binary) is kept, with reason "unreadable manifest", and uses
//     up no count: only naming it explicitly forgets it.
//   - An EMPTY policy (every count 0, keep_within 0) keeps everything, with reason "empty policy".
//     Callers that forget snapshots must refuse an empty policy as an error instead of calling
//     this (a typo in a flag must not turn into "forget everything", and keeping everything
//     silently would hide the mistake).
//
// Reasons: "last", "hourly 2026-11-25T13Z", "daily 2026-11-25", "weekly 2026-W48",
// "monthly 2026-11", "within 7d", "unknown time", "unreadable manifest",
// "empty policy".
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "repo/repository.h"

namespace kb::repo {

// Parses a duration into milliseconds. Grammar (no spaces, case-sensitive):
//   duration := component+
//   component := digits unit
//   unit := "y" (365 days) | "mo" (30 days) | "w" (7 days) | "d" | "h" | "m" (minutes) | "s"
// Units must appear from largest to smallest, each at most once: "1y2mo3d", "36h", "90m",
// "2w", "1d12h". "m" means minutes and may not be combined with "y" or "mo": "1y2m3d" (restic's
// spelling of months) is refused with a hint to write "mo", rather than silently read as
// 1 year, 2 minutes and 3 days.
// Years and months are fixed lengths (a retention window, not a calendar date).
// InvalidArgument naming the problem for anything else (empty, no unit, unknown unit, order,
// overflow beyond 10,000 years).
Result<int64_t> ParseDuration(std::string_view text);

// The inverse for display: days, hours, minutes, seconds, largest first, zero parts left out
// ("7d", "1d12h", "90m" -> "1h30m"); "0s" for zero. Milliseconds below a second are dropped.
// ParseDuration(FormatDuration(ms)) == ms for whole seconds.
std::string FormatDuration(int64_t ms);

// The start time of a snapshot in ms since the epoch: its `time` field, else the
// "YYYYMMDDTHHMMSSZ" prefix of its id. nullopt if neither parses.
std::optional<int64_t> SnapshotTimeMillis(const SnapshotSummary& snapshot);

}  // namespace kb::repo
