// Notifications against a real webhook receiver on a loopback port: which audit events are
// said (a failure once until it clears, a recovery, a mode switch), the JSON and Slack bodies,
// retries after a refusal, and a dead webhook that never blocks the one recording.
#include "notify/notifier.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "common/clock.h"

namespace kb::notify {
namespace {

using json = nlohmann::json;

// A webhook on 127.0.0.1: records the bodies it accepts; answers `refuse_first` requests 500.
class Receiver {
 public:
  explicit Receiver(int refuse_first = 0) : refuse_left_(refuse_first) {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      ++requests_;
      if (refuse_left_ > 0) {
        --refuse_left_;
        res.status = 500;
        return;
      }
      bodies_.push_back(json::parse(req.body, nullptr, /*allow_exceptions=*/false));
      res.status = 204;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 200 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  // The bodies once there are `n` (or what there is after 10 s).
  std::vector<json> WaitFor(size_t n) {
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard lock(mu_);
        if (bodies_.size() >= n) return bodies_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard lock(mu_);
    return bodies_;
  }
  int requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  int refuse_left_;
  int requests_ = 0;
  std::vector<json> bodies_;
};

AuditEvent Backup(const std::string& outcome, const std::string& detail) {
  return SystemAuditEvent("backup.service", "backup.create", "", outcome, detail);
}

std::unique_ptr<Notifier> StartFor(const std::string& url, Format format = Format::kJson) {
  NotifierOptions o;
  o.webhook_urls = {url};
  o.format = format;
  o.hostname = "kb-test";
  o.first_retry_delay_ms = 10;
  auto n = Notifier::Start(o);
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return n.ok() ? std::move(n).value() : nullptr;
}

TEST(NotifierTest, AFailureIsSaidOnceUntilItClearsThenTheRecovery) {
  Receiver hook;
  auto n = StartFor(hook.Url());
  ASSERT_NE(n, nullptr);
  n->Observe(Backup("ok", "snapshot A"));  // nothing had failed: nothing to say
  n->Observe(Backup("failed", "repository unreachable"));
  n->Observe(Backup("failed", "repository unreachable again"));  // still the same failure
  n->Observe(Backup("ok", "snapshot B"));
  n->Observe(Backup("ok", "snapshot C"));
  std::vector<json> got = hook.WaitFor(2);
  n->Stop();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["event"], "backup.create");
  EXPECT_EQ(got[0]["status"], "failed");
  EXPECT_EQ(got[0]["host"], "kb-test");
  EXPECT_EQ(got[0]["source"], "knowledgebeast");
  EXPECT_EQ(got[0]["detail"], "repository unreachable");
  EXPECT_NE(got[0]["text"].get<std::string>().find("FAILED: backup.create"), std::string::npos);
  EXPECT_EQ(got[1]["status"], "recovered");
  EXPECT_EQ(got[1]["detail"], "snapshot B");
  EXPECT_EQ(n->counters().sent.load(), 2);
  EXPECT_EQ(hook.requests(), 2);
}

TEST(NotifierTest, WhatIsAndIsNotWorthAMessage) {
  // A manual backup's failure is answered to whoever asked: not a notification.
  AuditEvent manual = Backup("failed", "x");
  manual.actor_id = "key_0123";
  EXPECT_FALSE(Decide(manual).has_value());
  EXPECT_FALSE(Decide(SystemAuditEvent("x", "document.create", "p", "ok", "")).has_value());
  auto damaged = Decide(SystemAuditEvent("integrity.check", "project.read_only", "p1", "ok", ""));
  ASSERT_TRUE(damaged.has_value());
  EXPECT_EQ(damaged->status, "failed");
  auto repaired = Decide(SystemAuditEvent("integrity.check", "project.writable", "p1", "ok", ""));
  ASSERT_TRUE(repaired.has_value());
  EXPECT_EQ(repaired->key, damaged->key);
  EXPECT_EQ(repaired->status, "recovered");
  AuditEvent lockdown;
  lockdown.action = "lockdown.set";
  lockdown.outcome = "ok";
  lockdown.actor_id = "key_admin";
  ASSERT_TRUE(Decide(lockdown).has_value());
  EXPECT_EQ(Decide(lockdown)->status, "changed");
  lockdown.outcome = "refused";
  EXPECT_FALSE(Decide(lockdown).has_value());
  auto source = Decide(SystemAuditEvent("backup.service", "backup.source_check", "", "failed", ""));
  ASSERT_TRUE(source.has_value());
  EXPECT_FALSE(source->latch) << "every damaged source is said";
}

TEST(NotifierTest, SlackGetsTextOnlyAndEveryDamagedSourceIsSaid) {
  Receiver hook;
  auto n = StartFor(hook.Url(), Format::kSlack);
  ASSERT_NE(n, nullptr);
  for (int i = 0; i < 2; ++i) {
    n->Observe(SystemAuditEvent("backup.service", "backup.source_check", "", "failed",
                                "snapshot " + std::to_string(i) + ": project p damaged"));
  }
  std::vector<json> got = hook.WaitFor(2);
  n->Stop();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].size(), 1u) << got[0].dump();
  EXPECT_NE(got[1]["text"].get<std::string>().find("snapshot 1"), std::string::npos);
}

TEST(NotifierTest, ARefusingWebhookIsRetriedUntilItTakesTheMessage) {
  Receiver hook(/*refuse_first=*/2);
  auto n = StartFor(hook.Url());
  ASSERT_NE(n, nullptr);
  n->Observe(Backup("failed", "disk full"));
  std::vector<json> got = hook.WaitFor(1);
  n->Stop();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(hook.requests(), 3);
  EXPECT_EQ(n->counters().sent.load(), 1);
  EXPECT_EQ(n->counters().failures.load(), 0);
}

TEST(NotifierTest, ADeadWebhookIsCountedAndNeverBlocksTheRecorder) {
  int dead_port = 0;
  {
    Receiver gone;  // a port that was just free and is closed again
    dead_port = std::stoi(gone.Url().substr(gone.Url().rfind(':') + 1));
  }
  auto n = StartFor("http://127.0.0.1:" + std::to_string(dead_port) + "/hook");
  ASSERT_NE(n, nullptr);
  // Many distinct failures: each is queued and Observe returns at once (delivery is elsewhere).
  for (int i = 0; i < 3 * static_cast<int>(kMaxQueuedNotifications); ++i) {
    n->Observe(SystemAuditEvent("backup.service", "backup.source_check", "", "failed", "x"));
  }
  EXPECT_GT(n->counters().dropped.load(), 0) << "the queue is bounded";
  // The first message fails every attempt (10 + 20 + 40 + 80 ms of backoff here).
  for (int i = 0; i < 500 && n->counters().failures.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(n->counters().failures.load(), 1);
  EXPECT_EQ(n->counters().sent.load(), 0);
  n->Stop();  // does not wait for the rest of the queue's retries
}

TEST(NotifierTest, OnlyHttpWebhooksAndKnownFormatsAreAccepted) {
  NotifierOptions o;
  o.webhook_urls = {"ftp://example.com/hook"};
  EXPECT_EQ(Notifier::Start(o).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(ParseFormat("slack").ok());
  EXPECT_EQ(ParseFormat("teams").status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace kb::notify
