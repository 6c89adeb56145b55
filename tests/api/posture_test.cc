// The posture rules (api/posture.h) one boundary at a time: a sound installation is all ok, and
// each case changes one fact and expects one check's verdict (the rest stay as they were).
#include "api/posture.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "backup/service.h"

namespace kb::api {
namespace {

constexpr int64_t kMin = 60'000;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kNow = 1'800'000'000'000;  // 2027-01-15

ApiKeyRecord Key(const std::string& id, KeyScope scope, std::optional<int64_t> expires) {
  ApiKeyRecord k;
  k.id = id;
  k.scope = scope;
  k.expires_at_ms = expires;
  return k;
}

// Everything as it should be: off-site, fresh, verified, expiring keys, TLS on a public address.
PostureFacts Sound() {
  PostureFacts f;
  f.now_ms = kNow;
  f.data_dir = "/srv/kb";
  f.host = "0.0.0.0";
  f.tls = true;
  f.metrics_require_auth = true;
  f.repository_url = "s3://backups/prod";
  f.newest_full_backup_ms = kNow - 10 * kMin;
  f.newest_verification_ms = kNow - 3 * kHour;
  f.snapshots = 5;
  f.backup_interval_ms = kHour;
  f.verify_interval_ms = kDay;
  f.keys = {Key("key_admin1", KeyScope::kAdmin, kNow + 30 * kDay),
            Key("key_read01", KeyScope::kRead, kNow + kDay)};
  f.allow_rules = 1;
  f.audit_reads = true;
  return f;
}

const PostureCheck& Find(const std::vector<PostureCheck>& checks, const std::string& id) {
  for (const PostureCheck& c : checks) {
    if (c.id == id) return c;
  }
  static const PostureCheck kMissing{"missing", Verdict::kFail, "no such check", ""};
  ADD_FAILURE() << "no check " << id;
  return kMissing;
}

TEST(PostureTest, SoundInstallationIsAllOkWithOneCheckEach) {
  std::vector<PostureCheck> checks = EvaluatePosture(Sound(), PostureLimits{});
  std::set<std::string> ids;
  for (const PostureCheck& c : checks) {
    EXPECT_EQ(c.verdict, Verdict::kOk) << c.id << ": " << c.finding;
    EXPECT_TRUE(c.fix.empty()) << c.id;
    EXPECT_FALSE(c.finding.empty()) << c.id;
    EXPECT_TRUE(ids.insert(c.id).second) << "duplicate " << c.id;
  }
  EXPECT_EQ(ids, (std::set<std::string>{"backups_off_site", "backup_age", "backup_verification",
                                        "keys_expiry", "admin_keys", "tls", "metrics_auth",
                                        "address_rules", "audit_reads", "audit_off_site"}));
  EXPECT_EQ(OverallVerdict(checks), Verdict::kOk);
}

struct Case {
  std::string name;
  std::function<void(PostureFacts*, PostureLimits*)> change;
  std::string check;
  Verdict expected;
  std::string finding_has;  // a substring of the finding ("" = any)
};

TEST(PostureTest, EachRuleAtItsBoundaries) {
  const std::vector<Case> cases = {
      // Where the backups go.
      {"local default",
       [](PostureFacts* f, PostureLimits*) {
         f->repository_local_default = true;
         f->repository_url = "file:///srv/kb/backups/repository";
       },
       "backups_off_site", Verdict::kFail, "backups only local"},
      {"file:// inside the data dir",
       [](PostureFacts* f, PostureLimits*) { f->repository_url = "file:///srv/kb/elsewhere/repo"; },
       "backups_off_site", Verdict::kFail, "backups only local"},
      {"file:// is the data dir",
       [](PostureFacts* f, PostureLimits*) { f->repository_url = "file:///srv/kb/"; },
       "backups_off_site", Verdict::kFail, "backups only local"},
      {"file:// beside it, sharing a prefix",
       [](PostureFacts* f, PostureLimits*) { f->repository_url = "file:///srv/kb-backups"; },
       "backups_off_site", Verdict::kWarn, "file:///srv/kb-backups"},
      {"file:// out through ..",
       [](PostureFacts* f, PostureLimits*) { f->repository_url = "file:///srv/kb/../mnt/nas"; },
       "backups_off_site", Verdict::kWarn, "another machine"},
      {"no backup service", [](PostureFacts* f, PostureLimits*) { f->backups_configured = false; },
       "backups_off_site", Verdict::kFail, "no backups"},
      {"audit head with a local repository",
       [](PostureFacts* f, PostureLimits*) { f->repository_url = "file:///mnt/nas/kb"; },
       "audit_off_site", Verdict::kWarn, "audit head not off-site"},
      {"audit head with the local default",
       [](PostureFacts* f, PostureLimits*) { f->repository_local_default = true; },
       "audit_off_site", Verdict::kWarn, "only with off-site backups"},
      // The newest full backup against the objective (default: two intervals).
      {"backup exactly two intervals old",
       [](PostureFacts* f, PostureLimits*) { f->newest_full_backup_ms = kNow - 2 * kHour; },
       "backup_age", Verdict::kOk, "2h old"},
      {"backup a second older than two intervals",
       [](PostureFacts* f, PostureLimits*) { f->newest_full_backup_ms = kNow - 2 * kHour - 1000; },
       "backup_age", Verdict::kFail, "objective 2h"},
      {"objective from the flag, within",
       [](PostureFacts* f, PostureLimits* l) {
         l->backup_objective_ms = 30 * kMin;
         f->newest_full_backup_ms = kNow - 29 * kMin;
       },
       "backup_age", Verdict::kOk, "objective 30m"},
      {"objective from the flag, past it",
       [](PostureFacts* f, PostureLimits* l) {
         l->backup_objective_ms = 30 * kMin;
         f->newest_full_backup_ms = kNow - 31 * kMin;
       },
       "backup_age", Verdict::kFail, "too old"},
      {"objective follows a longer interval",
       [](PostureFacts* f, PostureLimits*) {
         f->backup_interval_ms = kDay;
         f->newest_full_backup_ms = kNow - 47 * kHour;
       },
       "backup_age", Verdict::kOk, "objective 2d"},
      {"no full backup", [](PostureFacts* f, PostureLimits*) { f->newest_full_backup_ms.reset(); },
       "backup_age", Verdict::kFail, "no full backup"},
      {"no schedule, recent backup",
       [](PostureFacts* f, PostureLimits*) { f->backup_interval_ms = 0; }, "backup_age",
       Verdict::kWarn, "backup_interval 0"},
      {"no schedule, old backup",
       [](PostureFacts* f, PostureLimits*) {
         f->backup_interval_ms = 0;
         f->newest_full_backup_ms = kNow - 3 * kHour;
       },
       "backup_age", Verdict::kFail, "too old"},
      {"unreadable repository",
       [](PostureFacts* f, PostureLimits*) {
         f->repository_error = "permission_denied: wrong key";
       },
       "backup_age", Verdict::kFail, "wrong key"},
      // Verification: overdue after two verify intervals, or never.
      {"verified exactly two intervals ago",
       [](PostureFacts* f, PostureLimits*) { f->newest_verification_ms = kNow - 2 * kDay; },
       "backup_verification", Verdict::kOk, "2d ago"},
      {"verified a second before that",
       [](PostureFacts* f, PostureLimits*) { f->newest_verification_ms = kNow - 2 * kDay - 1000; },
       "backup_verification", Verdict::kFail, "overdue"},
      {"never verified", [](PostureFacts* f, PostureLimits*) { f->newest_verification_ms.reset(); },
       "backup_verification", Verdict::kFail, "never verified"},
      {"nothing to verify",
       [](PostureFacts* f, PostureLimits*) {
         f->newest_verification_ms.reset();
         f->snapshots = 0;
       },
       "backup_verification", Verdict::kWarn, "no snapshot"},
      {"verification off, recent one",
       [](PostureFacts* f, PostureLimits*) { f->verify_interval_ms = 0; }, "backup_verification",
       Verdict::kWarn, "verify_interval 0"},
      {"verification unreadable",
       [](PostureFacts* f, PostureLimits*) { f->repository_error = "unavailable: unreachable"; },
       "backup_verification", Verdict::kFail, "unreachable"},
      // Keys.
      {"an active key without expiry",
       [](PostureFacts* f, PostureLimits*) {
         f->keys.push_back(Key("key_forever1", KeyScope::kWrite, std::nullopt));
       },
       "keys_expiry", Verdict::kWarn, "never expire: 1 of 3 (key_forever1)"},
      {"revoked and expired keys without expiry do not count",
       [](PostureFacts* f, PostureLimits*) {
         ApiKeyRecord revoked = Key("key_revoked1", KeyScope::kAdmin, std::nullopt);
         revoked.revoked_at_ms = kNow - kDay;
         f->keys.push_back(revoked);
         f->keys.push_back(Key("key_expired1", KeyScope::kAdmin, kNow - 1));
       },
       "keys_expiry", Verdict::kOk, "(2 active)"},
      {"three admin keys",
       [](PostureFacts* f, PostureLimits*) {
         f->keys.push_back(Key("key_admin2", KeyScope::kAdmin, kNow + kDay));
         f->keys.push_back(Key("key_admin3", KeyScope::kAdmin, kNow + kDay));
       },
       "admin_keys", Verdict::kOk, "active admin keys: 3"},
      {"four admin keys",
       [](PostureFacts* f, PostureLimits*) {
         for (const char* id : {"key_admin2", "key_admin3", "key_admin4"}) {
           f->keys.push_back(Key(id, KeyScope::kAdmin, kNow + kDay));
         }
       },
       "admin_keys", Verdict::kWarn, "active admin keys: 4"},
      {"a lower limit from the flag",
       [](PostureFacts*, PostureLimits* l) { l->max_admin_keys = 0; }, "admin_keys", Verdict::kWarn,
       "key_admin1"},
      {"revoked admin keys do not count",
       [](PostureFacts* f, PostureLimits* l) {
         l->max_admin_keys = 1;
         ApiKeyRecord revoked = Key("key_admin9", KeyScope::kAdmin, kNow + kDay);
         revoked.revoked_at_ms = kNow - 1;
         f->keys.push_back(revoked);
       },
       "admin_keys", Verdict::kOk, "active admin keys: 1"},
      // Where it listens.
      {"plain HTTP on every interface", [](PostureFacts* f, PostureLimits*) { f->tls = false; },
       "tls", Verdict::kFail, "TLS off on a non-loopback address"},
      {"plain HTTP on ::",
       [](PostureFacts* f, PostureLimits*) {
         f->tls = false;
         f->host = "::";
       },
       "tls", Verdict::kFail, "'::'"},
      {"plain HTTP on a LAN address",
       [](PostureFacts* f, PostureLimits*) {
         f->tls = false;
         f->host = "10.1.2.3";
       },
       "tls", Verdict::kFail, "10.1.2.3"},
      {"plain HTTP on 127.0.0.2",
       [](PostureFacts* f, PostureLimits*) {
         f->tls = false;
         f->host = "127.0.0.2";
       },
       "tls", Verdict::kOk, "loopback"},
      {"plain HTTP on ::1",
       [](PostureFacts* f, PostureLimits*) {
         f->tls = false;
         f->host = "::1";
       },
       "tls", Verdict::kOk, "loopback"},
      {"plain HTTP on localhost",
       [](PostureFacts* f, PostureLimits*) {
         f->tls = false;
         f->host = "localhost";
       },
       "tls", Verdict::kOk, "loopback"},
      {"open /metrics on a public address",
       [](PostureFacts* f, PostureLimits*) { f->metrics_require_auth = false; }, "metrics_auth",
       Verdict::kWarn, "/metrics unauthenticated on a public address"},
      {"open /metrics on loopback",
       [](PostureFacts* f, PostureLimits*) {
         f->metrics_require_auth = false;
         f->host = "127.0.0.1";
       },
       "metrics_auth", Verdict::kOk, "loopback"},
      {"no address rules on a public address",
       [](PostureFacts* f, PostureLimits*) { f->allow_rules = 0; }, "address_rules", Verdict::kWarn,
       "no address rules"},
      {"a deny rule is a rule",
       [](PostureFacts* f, PostureLimits*) {
         f->allow_rules = 0;
         f->deny_rules = 1;
       },
       "address_rules", Verdict::kOk, "1 deny"},
      {"no address rules on loopback",
       [](PostureFacts* f, PostureLimits*) {
         f->allow_rules = 0;
         f->host = "127.0.0.1";
       },
       "address_rules", Verdict::kOk, "only this host"},
      {"audit_reads off", [](PostureFacts* f, PostureLimits*) { f->audit_reads = false; },
       "audit_reads", Verdict::kWarn, "audit_reads off"},
  };
  for (const Case& c : cases) {
    PostureFacts facts = Sound();
    PostureLimits limits;
    c.change(&facts, &limits);
    std::vector<PostureCheck> checks = EvaluatePosture(facts, limits);
    const PostureCheck& got = Find(checks, c.check);
    EXPECT_EQ(got.verdict, c.expected) << c.name << ": " << got.finding;
    EXPECT_NE(got.finding.find(c.finding_has), std::string::npos)
        << c.name << ": finding '" << got.finding << "' lacks '" << c.finding_has << "'";
    EXPECT_EQ(got.fix.empty(), c.expected == Verdict::kOk) << c.name << ": fix '" << got.fix << "'";
    EXPECT_GE(OverallVerdict(checks), c.expected) << c.name;
  }
}

TEST(PostureTest, WithTheScheduleOffAgesAreMeasuredAgainstTheServiceDefaults) {
  PostureFacts f = Sound();
  f.backup_interval_ms = 0;
  f.verify_interval_ms = 0;
  f.newest_full_backup_ms = kNow - 2 * backup::kDefaultBackupIntervalMs;
  f.newest_verification_ms = kNow - 2 * backup::kDefaultVerifyIntervalMs;
  std::vector<PostureCheck> checks = EvaluatePosture(f, PostureLimits{});
  EXPECT_EQ(Find(checks, "backup_age").verdict, Verdict::kWarn);
  EXPECT_EQ(Find(checks, "backup_verification").verdict, Verdict::kWarn);
  f.newest_full_backup_ms = *f.newest_full_backup_ms - 1000;
  f.newest_verification_ms = *f.newest_verification_ms - 1000;
  checks = EvaluatePosture(f, PostureLimits{});
  EXPECT_EQ(Find(checks, "backup_age").verdict, Verdict::kFail);
  EXPECT_EQ(Find(checks, "backup_verification").verdict, Verdict::kFail);
}

TEST(PostureTest, OverallVerdictIsTheWorst) {
  std::vector<PostureCheck> checks = {{"a", Verdict::kOk, "x", ""},
                                      {"b", Verdict::kWarn, "y", "z"}};
  EXPECT_EQ(OverallVerdict(checks), Verdict::kWarn);
  checks.push_back({"c", Verdict::kFail, "w", "v"});
  EXPECT_EQ(OverallVerdict(checks), Verdict::kFail);
  EXPECT_EQ(OverallVerdict({}), Verdict::kOk);
}

TEST(PostureTest, ReportJsonRoundTripsAndBadShapesAreRefused) {
  PostureFacts f = Sound();
  f.tls = false;
  f.audit_reads = false;
  std::vector<PostureCheck> checks = EvaluatePosture(f, PostureLimits{});
  nlohmann::json j = PostureReportJson(checks);
  EXPECT_EQ(j["verdict"], "fail");
  ASSERT_EQ(j["checks"].size(), checks.size());
  EXPECT_EQ(j["checks"][5]["id"], "tls");
  EXPECT_EQ(j["checks"][5]["verdict"], "fail");
  Result<std::vector<PostureCheck>> back = DecodePostureReport(j);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), checks.size());
  for (size_t i = 0; i < checks.size(); ++i) {
    EXPECT_EQ((*back)[i].id, checks[i].id);
    EXPECT_EQ((*back)[i].verdict, checks[i].verdict);
    EXPECT_EQ((*back)[i].finding, checks[i].finding);
    EXPECT_EQ((*back)[i].fix, checks[i].fix);
  }
  for (const char* bad : {R"([])", R"({"verdict":"ok"})", R"({"checks":{}})", R"({"checks":[1]})",
                          R"({"checks":[{"id":"x","verdict":"maybe","finding":"","fix":""}]})",
                          R"({"checks":[{"id":"x","verdict":"ok","finding":3,"fix":""}]})",
                          R"({"checks":[{"id":"x","verdict":"ok","finding":""}]})"}) {
    EXPECT_FALSE(DecodePostureReport(nlohmann::json::parse(bad)).ok()) << bad;
  }
}

TEST(PostureTest, LimitsFromText) {
  Result<PostureLimits> l = DecodePostureLimits(std::string("90m"), std::string("5"));
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->backup_objective_ms, 90 * kMin);
  EXPECT_EQ(l->max_admin_keys, 5);
  l = DecodePostureLimits(std::nullopt, std::string("0"));
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->backup_objective_ms.has_value());
  EXPECT_EQ(l->max_admin_keys, 0);
  EXPECT_EQ(DecodePostureLimits(std::nullopt, std::nullopt)->max_admin_keys, kDefaultMaxAdminKeys);
  for (const char* bad : {"", "0", "soon", "-1h", "2h30"}) {
    Result<PostureLimits> r = DecodePostureLimits(std::string(bad), std::nullopt);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().message().rfind("backup_objective", 0), 0u) << bad;
    }
  }
  for (const char* bad : {"", "-1", "3x", "1.5", "99999999999"}) {
    Result<PostureLimits> r = DecodePostureLimits(std::nullopt, std::string(bad));
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().message().rfind("max_admin_keys", 0), 0u) << bad;
    }
  }
}

TEST(PostureTest, LoopbackHosts) {
  for (const char* h : {"127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1", "localhost"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  for (const char* h : {"0.0.0.0", "::", "", "10.0.0.1", "128.0.0.1", "kb.example.com",
                        "localhost.evil.com", "::2"}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
}

}  // namespace
}  // namespace kb::api
