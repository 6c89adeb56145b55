// Locking that the compiler checks: clang's thread-safety analysis attributes as macros, and the
// annotated lock types every module uses instead of bare std::mutex / std::shared_mutex.
//
// Why: a comment "guarded by mu_" is a promise nobody checks. Written as GUARDED_BY(mu_), clang's
// -Wthread-safety (on in `make check-thread-safety` and in CI) refuses code that reads or writes
// the member without holding mu_, calls a REQUIRES(mu_) function without it, or forgets to
// release a lock. libstdc++'s std::mutex carries no attributes, so the analysis cannot see
// through it: lock with the types below (leveldb's port::Mutex and abseil's Mutex do the same).
// On GCC every macro expands to nothing and the types are thin inline wrappers.
//
//   class Queue {
//    public:
//     void Push(int v) EXCLUDES(mu_) {
//       kb::MutexLock lock(mu_);
//       items_.push_back(v);
//       cv_.SignalAll();
//     }
//     int Pop() EXCLUDES(mu_) {
//       kb::MutexLock lock(mu_);
//       while (items_.empty()) cv_.Wait(mu_);  // a loop, not a predicate lambda: see CondVar
//       ...
//     }
//    private:
//     kb::Mutex mu_;
//     kb::CondVar cv_;
//     std::deque<int> items_ GUARDED_BY(mu_);
//   };
//
// Condition variables: std::condition_variable works only with std::unique_lock<std::mutex>, so
// CondVar wraps one and hands it the Mutex's native std::mutex inside Wait (adopting the lock the
// caller already holds, and giving it back). We chose this over std::condition_variable_any,
// which would accept a Mutex directly: _any keeps its own internal mutex and allocates per
// wait, and it gains nothing for the analysis, because a predicate lambda passed to wait() is
// analysed as a separate function that holds no lock. So waits are written as loops,
// `while (!ready_) cv_.Wait(mu_);`, which the analysis checks line by line.
//
// Escape hatches, each to be used with a comment that says why the access is safe:
// NO_THREAD_SAFETY_ANALYSIS on a function, Mutex::AssertHeld() where the analysis cannot follow
// (e.g. a lock held by the caller's caller through a callback).
//
// Thread-safety: Mutex, SharedMutex and CondVar are the synchronisation primitives; the scoped
// locks belong to the thread that made them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

// --- The attributes (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html) ---
#if defined(__clang__)
#define KB_THREAD_ANNOTATION_(x) __attribute__((x))
#else
#define KB_THREAD_ANNOTATION_(x)
#endif

// A type that is a lock ("mutex" in messages).
#define CAPABILITY(x) KB_THREAD_ANNOTATION_(capability(x))
// An RAII type that holds a capability from its constructor to its destructor.
#define SCOPED_CAPABILITY KB_THREAD_ANNOTATION_(scoped_lockable)
// A member read or written only while `x` is held (shared suffices for reading).
#define GUARDED_BY(x) KB_THREAD_ANNOTATION_(guarded_by(x))
// A pointer member whose pointee is read or written only while `x` is held.
#define PT_GUARDED_BY(x) KB_THREAD_ANNOTATION_(pt_guarded_by(x))
// Lock order: this lock is taken before / after the listed ones.
#define ACQUIRED_BEFORE(...) KB_THREAD_ANNOTATION_(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) KB_THREAD_ANNOTATION_(acquired_after(__VA_ARGS__))
// The caller must hold the capability exclusively / at least shared.
#define REQUIRES(...) KB_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) KB_THREAD_ANNOTATION_(requires_shared_capability(__VA_ARGS__))
// The function takes / gives back the capability (no argument on a lock's own methods: `this`).
#define ACQUIRE(...) KB_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) KB_THREAD_ANNOTATION_(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) KB_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) KB_THREAD_ANNOTATION_(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) KB_THREAD_ANNOTATION_(release_generic_capability(__VA_ARGS__))
// Takes the capability only when it returns `x` (the first argument).
#define TRY_ACQUIRE(...) KB_THREAD_ANNOTATION_(try_acquire_capability(__VA_ARGS__))
#define TRY_ACQUIRE_SHARED(...) KB_THREAD_ANNOTATION_(try_acquire_shared_capability(__VA_ARGS__))
// The caller must NOT hold the capability (the function takes it itself; no recursion).
#define EXCLUDES(...) KB_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
// Tells the analysis that the capability is held from here on (checked at run time, if at all,
// by the function's body).
#define ASSERT_CAPABILITY(x) KB_THREAD_ANNOTATION_(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) KB_THREAD_ANNOTATION_(assert_shared_capability(x))
// The function returns a reference to the capability `x`.
#define RETURN_CAPABILITY(x) KB_THREAD_ANNOTATION_(lock_returned(x))
// Turns the analysis off for one function. Say why next to it.
#define NO_THREAD_SAFETY_ANALYSIS KB_THREAD_ANNOTATION_(no_thread_safety_analysis)

namespace kb {

class CondVar;

// An exclusive lock: std::mutex with the attributes. Not recursive.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  [[nodiscard]] bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // For the analysis only (no run-time check): the caller knows the lock is held, e.g. by the
  // thread that handed this one the work.
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// A reader-writer lock: std::shared_mutex with the attributes. Not recursive; on glibc it
// prefers readers (src/index/rw_lock.h has a writer-preferring one for the vector index).
class CAPABILITY("shared_mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  void ReaderLock() ACQUIRE_SHARED() { mu_.lock_shared(); }
  void ReaderUnlock() RELEASE_SHARED() { mu_.unlock_shared(); }
  [[nodiscard]] bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  [[nodiscard]] bool ReaderTryLock() TRY_ACQUIRE_SHARED(true) { return mu_.try_lock_shared(); }
  void AssertHeld() const ASSERT_CAPABILITY(this) {}
  void AssertReaderHeld() const ASSERT_SHARED_CAPABILITY(this) {}

 private:
  std::shared_mutex mu_;
};

// Holds `mu` exclusively for its scope. Unlock() / Lock() let a scope drop the lock around slow
// work (logging, I/O) and take it back; the destructor releases it only if held.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_.Unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() {
    mu_.Unlock();
    held_ = false;
  }
  void Lock() ACQUIRE() {
    mu_.Lock();
    held_ = true;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

// Holds a lock of type `M` (SharedMutex, or any type with the same annotated Lock/Unlock and
// ReaderLock/ReaderUnlock) shared / exclusively for its scope.
template <typename M>
class SCOPED_CAPABILITY BasicReaderLock {
 public:
  explicit BasicReaderLock(M& mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_.ReaderLock(); }
  ~BasicReaderLock() RELEASE() { mu_.ReaderUnlock(); }
  BasicReaderLock(const BasicReaderLock&) = delete;
  BasicReaderLock& operator=(const BasicReaderLock&) = delete;

 private:
  M& mu_;
};

template <typename M>
class SCOPED_CAPABILITY BasicWriterLock {
 public:
  explicit BasicWriterLock(M& mu) ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~BasicWriterLock() RELEASE() { mu_.Unlock(); }
  BasicWriterLock(const BasicWriterLock&) = delete;
  BasicWriterLock& operator=(const BasicWriterLock&) = delete;

 private:
  M& mu_;
};

using ReaderLock = BasicReaderLock<SharedMutex>;
using WriterLock = BasicWriterLock<SharedMutex>;

// A condition variable for Mutex. Every wait may wake spuriously: wait in a loop that re-checks
// the condition under the lock (`while (!ready_) cv_.Wait(mu_);`).
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu`, sleeps until signalled, takes `mu` again before returning.
  void Wait(Mutex& mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // the caller's MutexLock owns it again
  }
  // As Wait, but returns by `deadline` at the latest. True if it returned before the deadline.
  template <typename Clock, typename Duration>
  bool WaitUntil(Mutex& mu, const std::chrono::time_point<Clock, Duration>& deadline) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    const bool woken = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return woken;
  }
  template <typename Rep, typename Period>
  bool WaitFor(Mutex& mu, const std::chrono::duration<Rep, Period>& timeout) REQUIRES(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + timeout);
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace kb
