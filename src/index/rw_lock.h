// RwLock: a reader-writer lock that does not starve writers.
//
// std::shared_mutex on glibc is a pthread rwlock that prefers readers: under a steady stream of
// searches (overlapping shared locks) an Upsert can wait forever. Ingestion must make progress
// under query load, so the index uses glibc's writer-preferring kind where available: once a
// writer waits, new readers queue behind it. (It is non-recursive: a thread must not take the
// shared lock twice.) Meets the SharedMutex requirements, so std::shared_lock/unique_lock work.
//
// Thread-safety: it is the synchronisation primitive.
#pragma once

#include <pthread.h>

#include <cstdlib>
#include <shared_mutex>

namespace kb::index_internal {

#if defined(__GLIBC__)
class RwLock {
 public:
  RwLock() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (pthread_rwlock_init(&lock_, &attr) != 0) std::abort();
    pthread_rwlockattr_destroy(&attr);
  }
  ~RwLock() { pthread_rwlock_destroy(&lock_); }
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;

  void lock() { pthread_rwlock_wrlock(&lock_); }
  bool try_lock() { return pthread_rwlock_trywrlock(&lock_) == 0; }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { pthread_rwlock_rdlock(&lock_); }
  bool try_lock_shared() { return pthread_rwlock_tryrdlock(&lock_) == 0; }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }

 private:
  pthread_rwlock_t lock_;
};
#else
using RwLock = std::shared_mutex;
#endif

}  // namespace kb::index_internal
