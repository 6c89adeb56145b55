// RwLock: a reader-writer lock that does not starve writers.
//
// std::shared_mutex on glibc is a pthread rwlock that prefers readers: under a steady stream of
// searches (overlapping shared locks) an Upsert can wait forever. Ingestion must make progress
// under query load, so the index uses glibc's writer-preferring kind where available: once a
// writer waits, new readers queue behind it. (It is non-recursive: a thread must not take the
// shared lock twice.) It has kb::SharedMutex's annotated interface (common/thread_annotations.h),
// so members can be GUARDED_BY it and kb::BasicReaderLock / BasicWriterLock hold it.
//
// Thread-safety: it is the synchronisation primitive.
#pragma once

#include <pthread.h>

#include <cstdlib>

#include "common/thread_annotations.h"

namespace kb::index_internal {

#if defined(__GLIBC__)
class CAPABILITY("shared_mutex") RwLock {
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

  void Lock() ACQUIRE() { pthread_rwlock_wrlock(&lock_); }
  void Unlock() RELEASE() { pthread_rwlock_unlock(&lock_); }
  void ReaderLock() ACQUIRE_SHARED() { pthread_rwlock_rdlock(&lock_); }
  void ReaderUnlock() RELEASE_SHARED() { pthread_rwlock_unlock(&lock_); }
  [[nodiscard]] bool TryLock() TRY_ACQUIRE(true) { return pthread_rwlock_trywrlock(&lock_) == 0; }
  [[nodiscard]] bool ReaderTryLock() TRY_ACQUIRE_SHARED(true) {
    return pthread_rwlock_tryrdlock(&lock_) == 0;
  }
  void AssertHeld() const ASSERT_CAPABILITY(this) {}
  void AssertReaderHeld() const ASSERT_SHARED_CAPABILITY(this) {}

 private:
  pthread_rwlock_t lock_;
};
#else
using RwLock = kb::SharedMutex;
#endif

using ReaderLock = kb::BasicReaderLock<RwLock>;
using WriterLock = kb::BasicWriterLock<RwLock>;

}  // namespace kb::index_internal
