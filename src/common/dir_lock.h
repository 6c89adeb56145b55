// DataDirLock: an exclusive advisory lock on a data directory, so that two processes that would
// each take the directory for their own never run at once: two servers on one directory (each
// would save its own vector indexes over the other's), or a whole restore moving the directory
// aside from under a running server.
//
// The lock is flock(2) on `<dir>/LOCK`, which also records who holds it (pid and role, one line
// of JSON, for the error message of the next one). The kernel drops the lock when its holder
// exits, even by SIGKILL, so a stale LOCK file never blocks anyone; the file itself stays.
// Direct-mode CLI commands that only add or read data do not take it (SQLite serialises their
// writes with a running server's); see docs/ARCHITECTURE.md.
//
// Thread-safety: a DataDirLock is owned by one thread; Acquire may be called from any thread.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace kb {

class DataDirLock {
 public:
  // Takes the lock on `dir` (which must exist) for `role` ("server", "restore"). Without
  // waiting: FailedPrecondition naming the holder's pid and role if another process holds it.
  static Result<std::unique_ptr<DataDirLock>> Acquire(const std::string& dir,
                                                      const std::string& role);
  ~DataDirLock();  // releases the lock (the file stays)
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace kb
