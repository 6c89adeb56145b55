// StopSignal: how Close() tells the background loops of the service (index saver, integrity
// checker, purger) to stop, and how long-running work (an integrity check, a purge) notices that
// the knowledge base is closing.
//
// Thread-safety: safe for concurrent use (one mutex).
#pragma once

#include <chrono>
#include <cstdint>

#include "common/thread_annotations.h"

namespace kb {

class StopSignal {
 public:
  // Sets the signal and wakes every waiter. True the first time, false if it was set already.
  bool Stop() EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      if (stopping_) return false;
      stopping_ = true;
    }
    cv_.SignalAll();
    return true;
  }
  bool Stopping() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return stopping_;
  }
  // Waits `ms` milliseconds or until the signal is set; true if it is set.
  bool WaitFor(int64_t ms) EXCLUDES(mu_) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    MutexLock lock(mu_);
    while (!stopping_) {
      if (!cv_.WaitUntil(mu_, deadline)) break;  // timed out
    }
    return stopping_;
  }

 private:
  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace kb
