// Notifications: see notifier.h.
#include "notify/notifier.h"

#include <algorithm>
#include <chrono>

#include "blob/curl_http.h"
#include "common/logging.h"

namespace kb::notify {

using json = nlohmann::json;

struct Notifier::Curl {
  blob::CurlPool pool;
};

Result<Format> ParseFormat(const std::string& text) {
  if (text == "json") return Format::kJson;
  if (text == "slack") return Format::kSlack;
  return Status::InvalidArgument("notify_format: expected json or slack, got '" + text + "'");
}

json EncodeNotification(const Notification& n, Format format, const std::string& hostname) {
  if (format == Format::kSlack) return json{{"text", n.text}};
  return json{{"source", "knowledgebeast"},
              {"host", hostname},
              {"event", n.event},
              {"status", n.status},
              {"project", n.project},
              {"detail", n.detail},
              {"time", FormatIso8601(n.time_ms)},
              {"text", n.text}};
}

std::optional<Decision> Decide(const AuditEvent& e) {
  // Background work that can fail and later succeed: one open failure per kind (and project).
  // A damaged source has no success to clear it: every one is said.
  if (e.action == "backup.source_check" && e.outcome == "failed") {
    return Decision{e.action, "failed", /*latch=*/false};
  }
  static const char* const kWatched[] = {"backup.create", "backup.verify", "backup.copy",
                                         "backup.retention"};
  for (const char* action : kWatched) {
    if (e.action != action) continue;
    // Only the server's own runs: a failed manual backup is answered to whoever asked.
    if (e.actor_id != "system") return std::nullopt;
    const std::string key = e.action + (e.project.empty() ? "" : ":" + e.project);
    if (e.outcome == "failed") return Decision{key, "failed"};
    if (e.outcome == "ok") return Decision{key, "recovered"};
    return std::nullopt;
  }
  // A project found damaged turns read-only; it is writable again once repaired or restored.
  if (e.action == "project.read_only") return Decision{"project.damage:" + e.project, "failed"};
  if (e.action == "project.writable") return Decision{"project.damage:" + e.project, "recovered"};
  // Lockdown and read-only switched on or off, through the API or by the server.
  if (e.action == "lockdown.set" && e.outcome == "ok") return Decision{"lockdown", "changed"};
  return std::nullopt;
}

Notifier::Notifier(NotifierOptions options)
    : options_(std::move(options)), curl_(std::make_unique<Curl>()) {}

Result<std::unique_ptr<Notifier>> Notifier::Start(NotifierOptions options) {
  for (const std::string& url : options.webhook_urls) {
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      return Status::InvalidArgument("notify_webhook_url '" + url +
                                     "': expected an http:// or https:// URL");
    }
  }
  if (!options.clock) options.clock = SystemClock::Default();
  std::unique_ptr<Notifier> n(new Notifier(std::move(options)));
  Notifier* self = n.get();
  n->thread_ = std::thread([self] { self->DeliveryLoop(); });
  return n;
}

Notifier::~Notifier() { Stop(); }

void Notifier::Stop() {
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void Notifier::Observe(const AuditEvent& e) {
  if (options_.webhook_urls.empty()) return;
  std::optional<Decision> d = Decide(e);
  if (!d) return;
  Notification n;
  n.event = e.action;
  n.status = d->status;
  n.project = e.project;
  n.detail = e.detail;
  n.time_ms = e.time_ms ? e.time_ms : options_.clock->NowMillis();
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    if (d->status == "failed" && d->latch) {
      // A failure already reported stays one message until it clears.
      if (!open_failures_.emplace(d->key, e.detail).second) return;
    } else if (d->status == "recovered") {
      if (open_failures_.erase(d->key) == 0) return;  // nothing had failed: nothing to say
    }
    const std::string where = e.project.empty() ? "" : " (project " + e.project + ")";
    if (d->status == "failed") {
      n.text = "[" + options_.hostname + "] FAILED: " + e.action + where + ": " + e.detail;
    } else if (d->status == "recovered") {
      n.text = "[" + options_.hostname + "] RECOVERED: " + e.action + where + ": " + e.detail;
    } else {
      n.text = "[" + options_.hostname + "] " + e.action + " by " +
               (e.actor_name.empty() ? e.actor_id : e.actor_name) + ": " + e.detail;
    }
    if (queue_.size() >= kMaxQueuedNotifications) {
      queue_.pop_front();
      counters_.dropped++;
    }
    queue_.push_back(std::move(n));
  }
  cv_.Signal();
}

void Notifier::DeliveryLoop() {
  int64_t stop_deadline_us = 0;  // set once stopping: the end of the grace period
  while (true) {
    Notification n;
    {
      MutexLock lock(mu_);
      while (queue_.empty() && !stopping_) cv_.Wait(mu_);
      if (queue_.empty()) return;  // stopping, nothing left
      if (stopping_ && stop_deadline_us == 0) {
        stop_deadline_us = MonotonicMicros() + kStopGraceMs * 1000;
      }
      if (stopping_ && MonotonicMicros() >= stop_deadline_us) {
        counters_.dropped += static_cast<int64_t>(queue_.size());
        LogError("notifications dropped at shutdown: the webhooks did not take them in time",
                 json{{"dropped", queue_.size()}}.dump());
        queue_.clear();
        return;
      }
      n = std::move(queue_.front());
      queue_.pop_front();
    }
    const std::string body = EncodeNotification(n, options_.format, options_.hostname).dump();
    for (const std::string& url : options_.webhook_urls) {
      if (Deliver(url, body, stop_deadline_us)) {
        counters_.sent++;
      } else {
        counters_.failures++;
        LogError("notification not delivered",
                 json{{"webhook", url}, {"event", n.event}, {"status", n.status}}.dump());
      }
    }
  }
}

bool Notifier::Deliver(const std::string& url, const std::string& body, int64_t stop_deadline_us) {
  int64_t delay_ms = options_.first_retry_delay_ms;
  for (int attempt = 1; attempt <= kDeliveryAttempts; ++attempt) {
    blob::HttpRequest req;
    req.method = "POST";
    req.url = url;
    req.headers = {{"Content-Type", "application/json"}};
    req.body = body;
    req.connect_timeout_ms = kDeliveryTimeoutMs;
    req.timeout_ms = kDeliveryTimeoutMs;
    if (stop_deadline_us > 0) {  // stopping: what is left of the grace period, at least 100 ms
      const int64_t left_ms = std::max<int64_t>((stop_deadline_us - MonotonicMicros()) / 1000, 100);
      req.connect_timeout_ms = std::min(req.connect_timeout_ms, left_ms);
      req.timeout_ms = std::min(req.timeout_ms, left_ms);
    }
    blob::HttpOutcome out = curl_->pool.Perform(req);
    if (out.ok() && out.response.status >= 200 && out.response.status < 300) return true;
    LogWarn("notification webhook refused or unreachable; retrying",
            json{{"webhook", url},
                 {"attempt", attempt},
                 {"status", out.ok() ? out.response.status : 0},
                 {"error", out.error}}
                .dump());
    if (attempt == kDeliveryAttempts) break;
    MutexLock lock(mu_);
    // Stopping cuts the backoff short (the message counts as not delivered).
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
    while (!stopping_ && std::chrono::steady_clock::now() < until) cv_.WaitUntil(mu_, until);
    if (stopping_) return false;
    delay_ms *= 2;
  }
  return false;
}

void NotifyingSink::Record(AuditEvent event) {
  notifier_->Observe(event);
  inner_->Record(std::move(event));
}

}  // namespace kb::notify
