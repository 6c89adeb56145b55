// Streaming a consistent copy of a live SQLite database into a FileSink, without a staging file.
//
// Why: a backup used to copy every database into a staging file with SQLite's online backup API,
// read the copy back to cut it into chunks, and delete it. For a backup in which little changed,
// writing, re-reading and deleting those copies was about 45% of the CPU time (profile in
// docs/PERFORMANCE.md). Here the same backup API writes into a destination database that lives
// on a private, write-only SQLite VFS ("kb-stream"): every page SQLite writes to the destination
// file is handed to the sink, and nothing reaches a disk.
//
// The destination is a fresh, empty database with journal_mode=OFF and synchronous=OFF; the
// backup API then writes each page of the source once (pages spill from the destination's page
// cache in page order while the copy runs, page 1 and the rest at the final commit). The pages
// arrive in any order: the sink places them by offset (see FileSink). The destination never
// needs to read back a page it wrote; should a SQLite version ever do so, the VFS serves page 1
// from a copy and fails any other such read with an error naming it, so the copy fails loudly
// rather than being wrong.
//
// Consistency: the copy is the source connection's read snapshot. If `source` already has an
// open read transaction, the copy is exactly that transaction's state (so metadata read in the
// same transaction describes exactly the bytes copied); otherwise the backup API opens one for
// the duration of the copy.
//
// Thread-safety: any number of streams may run at once on different threads (each has its own
// destination connection and sink). The VFS is registered once per process, never as default.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "common/status.h"
#include "repo/repository.h"

namespace kb::backup {

// Copies the main database of `source` into `sink` (the file's bytes, exactly as a copy made
// with sqlite3_backup into a new file would hold them) and returns its size. `what` names the
// source in errors. Errors: the sink's own error if a Write failed; Unavailable if the source
// is busy; Corruption for a damaged source; Internal if SQLite asked to read back a page.
Result<int64_t> StreamSqliteDatabase(sqlite3* source, const std::string& what,
                                     repo::FileSink& sink);

}  // namespace kb::backup
