// Time in KnowledgeBeast: milliseconds since the Unix epoch (UTC) as int64, formatted as
// ISO-8601 with a `Z` suffix on every API and in every file. The Clock interface exists so that
// tests can inject time (grace periods, retention, rate limits) without sleeping.
//
// Thread-safety: SystemClock is stateless; ManualClock is safe for concurrent use.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kb {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMillis() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMillis() const override;
  static SystemClock* Default();
};

// A clock that only moves when told to: for tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms) : now_(start_ms) {}
  int64_t NowMillis() const override { return now_.load(); }
  void Set(int64_t ms) { now_.store(ms); }
  void Advance(int64_t ms) { now_.fetch_add(ms); }

 private:
  std::atomic<int64_t> now_;
};

// Monotonic time for measuring durations (not wall time).
int64_t MonotonicMicros();

// "2026-11-26T10:19:00.123Z" (milliseconds always present).
std::string FormatIso8601(int64_t millis);

// Accepts "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)". Returns nullopt otherwise.
std::optional<int64_t> ParseIso8601(std::string_view text);

}  // namespace kb
