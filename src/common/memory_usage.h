// What the process's memory really is (issue 16): VmRSS counts a database page once per
// mapping of it, and SQLite maps kb.db once per connection, so the resident size overstates the
// use of a server with several readers. These figures separate the two kinds:
//   anonymous    the process's own memory (heap, vector index, caches): RssAnon
//   file_mapped  pages of mapped files as the page tables count them (RssFile; the binary, and
//                each database page once per connection that touched it)
// and ResidentFileBytes gives a file's pages in the page cache, each page once.
//
// Thread-safety: pure functions of the system's state.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace kb {

struct ProcessMemory {
  int64_t resident_bytes = 0;     // VmRSS
  int64_t anonymous_bytes = 0;    // RssAnon
  int64_t file_mapped_bytes = 0;  // RssFile
};

// From /proc/self/status; zeros where the kernel does not say.
ProcessMemory ReadProcessMemory();

// Bytes of `path` resident in the page cache (mincore over a read-only mapping of the file, which
// faults nothing in): each page once, however many mappings share it. IOError if the file cannot
// be opened or mapped; 0 for an empty file.
Result<int64_t> ResidentFileBytes(const std::string& path);

}  // namespace kb
