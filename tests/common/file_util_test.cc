#include "common/file_util.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"

namespace kb {
namespace {

TEST(FileUtilTest, AtomicWriteReplacesContentAndLeavesNoTempFiles) {
  testing::TempDir dir;
  std::string p = dir.Sub("f.bin");
  ASSERT_TRUE(AtomicWriteFile(p, "one").ok());
  ASSERT_TRUE(AtomicWriteFile(p, "two").ok());
  EXPECT_EQ(ReadFile(p).value(), "two");
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(FileUtilTest, ReadMissingFileIsNotFound) {
  testing::TempDir dir;
  EXPECT_EQ(ReadFile(dir.Sub("nope")).status().code(), Code::kNotFound);
}

TEST(FileUtilTest, AtomicWriteIntoMissingDirectoryFailsCleanly) {
  testing::TempDir dir;
  Status s = AtomicWriteFile(dir.Sub("no/such/dir/f"), "x");
  EXPECT_EQ(s.code(), Code::kIOError);
}

TEST(FileUtilTest, DirectorySizeCountsNestedFiles) {
  testing::TempDir dir;
  ASSERT_TRUE(MakeDirs(dir.Sub("a/b")).ok());
  ASSERT_TRUE(AtomicWriteFile(dir.Sub("a/b/x"), std::string(100, 'x')).ok());
  ASSERT_TRUE(AtomicWriteFile(dir.Sub("y"), std::string(23, 'y')).ok());
  EXPECT_EQ(DirectorySize(dir.path()), 123);
}

}  // namespace
}  // namespace kb
