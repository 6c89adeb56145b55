// File helpers with the durability rules every writer in KnowledgeBeast follows:
// a file that matters is written to a temporary name in the same directory, fsynced, renamed
// over the final name, and the directory is fsynced, so a crash leaves either the old or the new
// file, never a torn one.
//
// Thread-safety: functions are safe to call concurrently on different paths.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace kb {

// Closes a file descriptor when it goes out of scope.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  // Closes now and returns what close() returned.
  int Close();

 private:
  int fd_;
};

// Reads a whole file. NotFound if it does not exist.
Result<std::string> ReadFile(const std::string& path);

// Writes all of `data` to `fd`: at `offset` (pwrite) when it is >= 0, else at the file position;
// short writes and EINTR are retried. IOError naming `path` otherwise.
Status WriteFully(int fd, std::string_view data, const std::string& path, int64_t offset = -1);

// Writes `data` to `path` atomically and durably (temp + fsync + rename + fsync dir).
Status AtomicWriteFile(const std::string& path, std::string_view data);

// rename(2): moves a file or directory within one file system; IOError naming both paths.
Status RenamePath(const std::string& from, const std::string& to);

// fsync a file or a directory by path.
Status FsyncPath(const std::string& path);

// Creates the directory and its parents (mode 0700 for data directories).
Status MakeDirs(const std::string& path, int mode = 0700);

bool PathExists(const std::string& path);

// Total size of regular files below `path` (0 if missing).
int64_t DirectorySize(const std::string& path);

// This machine's host name (gethostname), or "unknown": who wrote a snapshot or a lock, who
// sends a notification.
std::string HostName();

}  // namespace kb
