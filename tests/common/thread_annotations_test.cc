// The annotated lock types behave as the std types they wrap: exclusion, shared readers, and
// condition waits that release the lock and take it back.
#include "common/thread_annotations.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace kb {
namespace {

class Counter {
 public:
  void Add() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    ++value_;
  }
  int value() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return value_;
  }

 private:
  Mutex mu_;
  int value_ GUARDED_BY(mu_) = 0;
};

TEST(ThreadAnnotationsTest, MutexLockExcludesOtherThreads) {
  Counter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) counter.Add();
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(counter.value(), 40000);
}

TEST(ThreadAnnotationsTest, MutexLockCanDropAndRetakeTheLock) {
  Mutex mu;
  MutexLock lock(mu);
  lock.Unlock();
  const bool free_while_dropped = mu.TryLock();
  EXPECT_TRUE(free_while_dropped);
  if (free_while_dropped) mu.Unlock();
  lock.Lock();
  std::thread other([&] {
    const bool taken = mu.TryLock();
    EXPECT_FALSE(taken);
    if (taken) mu.Unlock();
  });
  other.join();
}

TEST(ThreadAnnotationsTest, CondVarWaitReleasesTheLockUntilSignalled) {
  Mutex mu;
  CondVar cv;
  bool ready = false;  // guarded by mu (a local: the analysis does not follow it)
  std::thread producer([&] {
    MutexLock lock(mu);  // can only be taken while the waiter sleeps
    ready = true;
    cv.SignalAll();
  });
  {
    MutexLock lock(mu);
    while (!ready) cv.Wait(mu);
    EXPECT_TRUE(ready);
  }
  producer.join();
}

TEST(ThreadAnnotationsTest, CondVarWaitForTimesOutHoldingTheLock) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(mu);
  const auto start = std::chrono::steady_clock::now();
  bool woken = true;
  // A spurious wakeup may return early: wait until the deadline has passed.
  while (woken && std::chrono::steady_clock::now() - start < std::chrono::milliseconds(20)) {
    woken = cv.WaitFor(mu, std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(woken);
  std::thread other([&] {
    const bool taken = mu.TryLock();
    EXPECT_FALSE(taken);  // the wait gave the lock back to this thread
    if (taken) mu.Unlock();
  });
  other.join();
}

TEST(ThreadAnnotationsTest, SharedMutexAdmitsReadersTogetherAndWritersAlone) {
  SharedMutex mu;
  {
    ReaderLock first(mu);
    std::thread reader([&] {
      const bool shared = mu.ReaderTryLock();
      EXPECT_TRUE(shared);
      if (shared) mu.ReaderUnlock();
      const bool exclusive = mu.TryLock();
      EXPECT_FALSE(exclusive);
      if (exclusive) mu.Unlock();
    });
    reader.join();
  }
  WriterLock writer(mu);
  std::thread reader([&] {
    const bool shared = mu.ReaderTryLock();
    EXPECT_FALSE(shared);
    if (shared) mu.ReaderUnlock();
  });
  reader.join();
}

}  // namespace
}  // namespace kb
