// Process and page-cache memory: see memory_usage.h.
#include "common/memory_usage.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace kb {

ProcessMemory ReadProcessMemory() {
  ProcessMemory m;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    int64_t* field = line.rfind("VmRSS:", 0) == 0     ? &m.resident_bytes
                     : line.rfind("RssAnon:", 0) == 0 ? &m.anonymous_bytes
                     : line.rfind("RssFile:", 0) == 0 ? &m.file_mapped_bytes
                                                      : nullptr;
    if (field == nullptr) continue;
    std::istringstream value(line.substr(line.find(':') + 1));
    int64_t kib = 0;
    if (value >> kib) *field = kib * 1024;  // the kernel writes "<n> kB"
  }
  return m;
}

Result<int64_t> ResidentFileBytes(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::IOError("stat " + path + ": " + std::strerror(err));
  }
  if (st.st_size == 0) {
    ::close(fd);
    return int64_t{0};
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return Status::IOError("mmap " + path + ": " + std::strerror(map_err));
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((size + page - 1) / page);
  const int rc = ::mincore(map, size, resident.data());
  const int mincore_err = errno;
  ::munmap(map, size);
  if (rc != 0) return Status::IOError("mincore " + path + ": " + std::strerror(mincore_err));
  int64_t pages = 0;
  for (unsigned char r : resident) pages += r & 1;
  // The last page counts only as far as the file goes.
  const int64_t bytes = pages * static_cast<int64_t>(page);
  return std::min<int64_t>(bytes, static_cast<int64_t>(size));
}

}  // namespace kb
