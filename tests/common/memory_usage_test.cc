// The process's memory split (anonymous / file-mapped) and a file's pages in the page cache.
#include "common/memory_usage.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/file_util.h"
#include "test_util.h"

namespace kb {
namespace {

TEST(MemoryUsageTest, TheProcessHasAnonymousMemoryAndResidentIsAtLeastIt) {
  std::vector<char> touched(64 << 20, 1);  // 64 MiB of our own, written: resident
  ProcessMemory m = ReadProcessMemory();
  EXPECT_GE(m.anonymous_bytes, int64_t{64} << 20);
  EXPECT_GT(m.file_mapped_bytes, 0);  // the binary itself
  EXPECT_GE(m.resident_bytes, m.anonymous_bytes);
  EXPECT_EQ(touched[12345], 1);
}

TEST(MemoryUsageTest, AFileJustWrittenIsInThePageCacheAndAnEvictedOneOnlyAsFarAsItWasRead) {
  testing::TempDir dir;
  const std::string path = dir.Sub("f.bin");
  const size_t size = 3 * 1024 * 1024 + 100;  // not a whole number of pages
  ASSERT_TRUE(AtomicWriteFile(path, std::string(size, 'x')).ok());
  auto once = ResidentFileBytes(path);
  ASSERT_TRUE(once.ok()) << once.status().ToString();
  EXPECT_EQ(*once, static_cast<int64_t>(size));  // written just now: every page cached
  EXPECT_LE(*once, static_cast<int64_t>(size));
  // Evicted, then read back in part: only that part counts.
  int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fdatasync(fd), 0);
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  char buf[4096];
  ASSERT_EQ(::pread(fd, buf, sizeof buf, 0), static_cast<ssize_t>(sizeof buf));
  ::close(fd);
  auto part = ResidentFileBytes(path);
  ASSERT_TRUE(part.ok());
  EXPECT_GE(*part, 4096);
  EXPECT_LT(*part, static_cast<int64_t>(size));
  ASSERT_TRUE(AtomicWriteFile(dir.Sub("empty"), "").ok());
  EXPECT_EQ(*ResidentFileBytes(dir.Sub("empty")), 0);
  EXPECT_EQ(ResidentFileBytes(dir.Sub("missing")).status().code(), Code::kIOError);
}

}  // namespace
}  // namespace kb
