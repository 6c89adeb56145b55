// StopSignal: how Close() tells the background loops of the service (index saver, integrity
// checker, purger) to stop, and how long-running work (an integrity check, a purge) notices that
// the knowledge base is closing.
//
// Thread-safety: safe for concurrent use (one mutex).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace kb {

class StopSignal {
 public:
  // Sets the signal and wakes every waiter. True the first time, false if it was set already.
  bool Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
      stopping_ = true;
    }
    cv_.notify_all();
    return true;
  }
  bool Stopping() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }
  // Waits `ms` milliseconds or until the signal is set; true if it is set.
  bool WaitFor(int64_t ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
};

}  // namespace kb
