#include "common/dir_lock.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "test_util.h"

namespace kb {
namespace {

TEST(DataDirLockTest, SecondHolderIsRefusedWithTheFirstOnesPidAndRole) {
  testing::TempDir dir;
  auto first = DataDirLock::Acquire(dir.path(), "server");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  // flock locks belong to open file descriptions: a second open in the same process conflicts
  // exactly like another process would.
  auto second = DataDirLock::Acquire(dir.path(), "restore");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("\"pid\":" + std::to_string(::getpid())),
            std::string::npos)
      << second.status().ToString();
  EXPECT_NE(second.status().message().find("server"), std::string::npos);
  first->reset();
  EXPECT_TRUE(DataDirLock::Acquire(dir.path(), "restore").ok());
}

TEST(DataDirLockTest, KilledHolderLeavesNoStaleLock) {
  testing::TempDir dir;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto held = DataDirLock::Acquire(dir.path(), "server");
    const char c = held.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  EXPECT_EQ(DataDirLock::Acquire(dir.path(), "restore").status().code(),
            Code::kFailedPrecondition);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  auto after = DataDirLock::Acquire(dir.path(), "restore");
  EXPECT_TRUE(after.ok()) << after.status().ToString();
}

TEST(DataDirLockTest, MissingDirectoryIsAnIoError) {
  testing::TempDir dir;
  auto lock = DataDirLock::Acquire(dir.Sub("absent"), "server");
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.status().code(), Code::kIOError);
}

}  // namespace
}  // namespace kb
