// Notifications: the server speaks up when something an operator must act on happens — a
// backup, verification, copy or source check fails, a project's database is found damaged, the
// service mode (lockdown / read-only) is switched — and again when such a failure clears.
// docs/SECURITY.md "Notifications" lists the events and the message format.
//
// Where the events come from: the audit log already hears of every one of them (each part of the
// server records its failures there), so the notifier listens to audit events rather than being
// called from each place: NotifyingSink wraps the server's AuditSink and hands every event to
// Notifier::Observe. Observe only decides and enqueues; one delivery thread posts each message
// to every webhook (libcurl) with retries and backoff. A request or a backup never waits for a
// webhook, and a dead webhook is a counter and a log line, never an outage. The queue is bounded
// (kMaxQueuedNotifications): past it the oldest message is dropped and counted.
//
// Thread-safety: Observe and the counters may be used from any thread; Stop (also run by the
// destructor) joins the delivery thread after one last attempt at what is queued.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/audit_sink.h"
#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"

namespace kb::notify {

inline constexpr size_t kMaxQueuedNotifications = 1000;
inline constexpr int kDeliveryAttempts = 5;           // per message and webhook
inline constexpr int64_t kFirstRetryDelayMs = 1'000;  // then doubling
inline constexpr int64_t kDeliveryTimeoutMs = 5'000;  // one POST, connect included
// After Stop, what is queued gets one attempt each within this much time; the rest is dropped
// (counted), so a dead webhook cannot hold a shutdown.
inline constexpr int64_t kStopGraceMs = 2'000;

enum class Format { kJson, kSlack };
// "json" | "slack"; InvalidArgument naming notify_format otherwise.
Result<Format> ParseFormat(const std::string& text);

struct NotifierOptions {
  std::vector<std::string> webhook_urls;  // http:// or https://; empty = no notifications
  Format format = Format::kJson;
  std::string hostname;  // who speaks, in every message
  int64_t first_retry_delay_ms = kFirstRetryDelayMs;
  const Clock* clock = nullptr;  // null: the system clock
};

// One message, before it is encoded for a webhook.
struct Notification {
  std::string event;   // the audit action, e.g. "backup.create"
  std::string status;  // "failed" | "recovered" | "changed"
  std::string project;
  std::string detail;
  int64_t time_ms = 0;
  std::string text;  // one human line: what happened, where
};

// What a webhook receives: {"source":"knowledgebeast","host","event","status","project","detail",
// "time","text"} (kJson) or {"text": ...} (kSlack).
nlohmann::json EncodeNotification(const Notification& n, Format format,
                                  const std::string& hostname);

// Which audit events are worth a message, and the failure each clears: nullopt when the event
// is not one. Pure.
struct Decision {
  std::string key;     // what failed: the event family, with the project when it is one's
  std::string status;  // "failed" | "recovered" | "changed"
  // A failure that stays open until a success of the same key clears it (repeats are not
  // notified). False for failures that have no "success" to clear them: each is notified.
  bool latch = true;
};
std::optional<Decision> Decide(const AuditEvent& e);

struct NotifierCounters {
  std::atomic<int64_t> sent{0};      // messages delivered (per webhook)
  std::atomic<int64_t> failures{0};  // messages a webhook did not take after every attempt
  std::atomic<int64_t> dropped{0};   // messages dropped because the queue was full
};

class Notifier {
 public:
  // Starts the delivery thread. InvalidArgument for a URL that is not http(s)://.
  // Stop() returns within about kStopGraceMs + kDeliveryTimeoutMs.
  static Result<std::unique_ptr<Notifier>> Start(NotifierOptions options);
  ~Notifier();
  void Stop() EXCLUDES(mu_);

  // Looks at one audit event: a failure is notified the first time (a repeat of the same open
  // failure is not, so an hourly failing backup does not page every hour), a success after a
  // failure is notified as recovered, a mode switch always. Never blocks on delivery.
  void Observe(const AuditEvent& e) EXCLUDES(mu_);

  const NotifierCounters& counters() const { return counters_; }

 private:
  explicit Notifier(NotifierOptions options);
  void DeliveryLoop() EXCLUDES(mu_);
  // Posts `body` to `url`, retrying with backoff; false after the last attempt failed (or the
  // notifier stopped meanwhile).
  bool Deliver(const std::string& url, const std::string& body, int64_t stop_deadline_us)
      EXCLUDES(mu_);

  const NotifierOptions options_;
  NotifierCounters counters_;
  struct Curl;
  std::unique_ptr<Curl> curl_;

  Mutex mu_;
  CondVar cv_;  // queue_ not empty, or stopping_
  std::deque<Notification> queue_ GUARDED_BY(mu_);
  std::map<std::string, std::string> open_failures_ GUARDED_BY(mu_);  // key -> first detail
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// An AuditSink that records to `inner` and lets `notifier` look at every event. Both must
// outlive it.
class NotifyingSink final : public AuditSink {
 public:
  NotifyingSink(AuditSink* inner, Notifier* notifier) : inner_(inner), notifier_(notifier) {}
  void Record(AuditEvent event) override;

 private:
  AuditSink* inner_;
  Notifier* notifier_;
};

}  // namespace kb::notify
