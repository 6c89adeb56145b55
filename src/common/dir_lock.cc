// The data directory lock (see dir_lock.h).
#include "common/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/data_layout.h"

namespace kb {

Result<std::unique_ptr<DataDirLock>> DataDirLock::Acquire(const std::string& dir,
                                                          const std::string& role) {
  const std::string path = layout::LockFile(dir);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IOError("cannot open " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    // The holder wrote who it is; a partial read (it is writing right now) only shortens the
    // message.
    char buf[256] = {};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK) {
      return Status::IOError("cannot lock " + path + ": " + std::strerror(err));
    }
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "another process";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
    return Status::FailedPrecondition("data directory " + dir + " is in use (" + holder +
                                      "); stop that process first");
  }
  const std::string who =
      "{\"pid\":" + std::to_string(::getpid()) + ",\"role\":\"" + role + "\"}\n";
  // Best effort: the lock itself is what protects the directory, the text only explains it.
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) < 0) {
    // Keep the lock even if the note could not be written.
  }
  return std::unique_ptr<DataDirLock>(new DataDirLock(fd));
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

}  // namespace kb
