// Containment units (api/access_control.h): address and CIDR parsing and matching (IPv4, IPv6,
// mapped, edges, hostile strings), address rule sets, the token bucket under a manual clock,
// the mode decision for every kind of route and key, and the persistence of mode and rules in a
// real catalog, including a change made through another connection (what the CLI does).
#include "api/access_control.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace kb::api {
namespace {

using nlohmann::json;

IpAddress Ip(const std::string& s) {
  std::optional<IpAddress> a = ParseIpAddress(s);
  EXPECT_TRUE(a.has_value()) << s;
  return a.value_or(IpAddress{});
}

Cidr Range(const std::string& s) {
  Result<Cidr> c = Cidr::Parse(s);
  EXPECT_TRUE(c.ok()) << s << ": " << c.status().ToString();
  return c.ok() ? *c : Cidr();
}

TEST(CidrTest, Ipv4RangesMatchTheirAddressesOnly) {
  const Cidr ten = Range("10.0.0.0/8");
  EXPECT_TRUE(ten.Contains(Ip("10.0.0.0")));
  EXPECT_TRUE(ten.Contains(Ip("10.255.255.255")));
  EXPECT_FALSE(ten.Contains(Ip("11.0.0.0")));
  EXPECT_FALSE(ten.Contains(Ip("9.255.255.255")));
  const Cidr odd = Range("192.168.4.0/22");  // a prefix that is not a whole byte
  EXPECT_TRUE(odd.Contains(Ip("192.168.7.255")));
  EXPECT_FALSE(odd.Contains(Ip("192.168.8.0")));
  EXPECT_FALSE(odd.Contains(Ip("192.168.3.255")));
}

TEST(CidrTest, SlashZeroAndSingleAddresses) {
  const Cidr all_v4 = Range("0.0.0.0/0");
  EXPECT_TRUE(all_v4.Contains(Ip("1.2.3.4")));
  EXPECT_TRUE(all_v4.Contains(Ip("255.255.255.255")));
  EXPECT_FALSE(all_v4.Contains(Ip("::1"))) << "an IPv4 range never matches native IPv6";
  const Cidr all = Range("::/0");
  EXPECT_TRUE(all.Contains(Ip("::1")));
  EXPECT_TRUE(all.Contains(Ip("1.2.3.4"))) << "::/0 covers IPv4-mapped addresses too";
  const Cidr one = Range("127.0.0.1/32");
  EXPECT_TRUE(one.Contains(Ip("127.0.0.1")));
  EXPECT_FALSE(one.Contains(Ip("127.0.0.2")));
  EXPECT_EQ(Range("127.0.0.1"), one) << "a bare address is a /32";
  const Cidr v6one = Range("::1/128");
  EXPECT_TRUE(v6one.Contains(Ip("::1")));
  EXPECT_FALSE(v6one.Contains(Ip("::2")));
  EXPECT_EQ(Range("::1"), v6one);
}

TEST(CidrTest, Ipv6Ranges) {
  const Cidr doc = Range("2001:db8::/32");
  EXPECT_TRUE(doc.Contains(Ip("2001:db8:ffff::1")));
  EXPECT_FALSE(doc.Contains(Ip("2001:db9::1")));
  const Cidr nibble = Range("2001:db8:abc0::/44");
  EXPECT_TRUE(nibble.Contains(Ip("2001:db8:abcf:ffff::1")));
  EXPECT_FALSE(nibble.Contains(Ip("2001:db8:abd0::1")));
  EXPECT_EQ(Range("2001:DB8::/32").ToString(), "2001:db8::/32");
}

TEST(CidrTest, MappedAddressesAreIpv4) {
  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
  EXPECT_TRUE(Ip("::ffff:10.1.2.3").IsV4());
  EXPECT_EQ(Ip("::ffff:10.1.2.3").ToString(), "10.1.2.3");
  EXPECT_TRUE(Range("10.0.0.0/8").Contains(Ip("::ffff:10.1.2.3")));
  EXPECT_EQ(Range("::ffff:10.0.0.0/104").ToString(), "10.0.0.0/8");
  EXPECT_TRUE(Range("::ffff:10.0.0.0/104").Contains(Ip("10.200.0.1")));
  EXPECT_FALSE(Ip("::1").IsV4());
  EXPECT_EQ(Ip("::1").ToString(), "::1");
}

TEST(CidrTest, HostBitsSetAreRefusedWithTheNetworkMeant) {
  Result<Cidr> c = Cidr::Parse("10.1.2.3/8");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("did you mean 10.0.0.0/8"), std::string::npos)
      << c.status().message();
  EXPECT_FALSE(Cidr::Parse("2001:db8::1/32").ok());
}

TEST(CidrTest, HostileStringsAreRefusedNotCrashed) {
  const std::vector<std::string> bad = {
      "",
      " 10.0.0.1",
      "10.0.0.1 ",
      std::string("10.0.0.1\0", 9),
      std::string("10.0.0.1\0/8", 11),
      "10.0.0.1/",
      "10.0.0.0/8/8",
      "10.0.0.0/-1",
      "10.0.0.0/+8",
      "10.0.0.0/33",
      "::/129",
      "10.0.0.0/1000",
      "10.0.0.0/99999999999999999999",
      "256.0.0.1",
      "1.2.3",
      "1.2.3.4.5",
      "127.1",
      "0x7f.0.0.1",
      "010.0.0.1",
      "fe80::1%eth0",
      "[::1]",
      "1.2.3.4:80",
      ":::",
      "1::2::3",
      "/8",
      "localhost",
      "10.0.0.0/8; DROP TABLE settings",
      "\xc3\x28",
      "\xff\xfe\xfd",
      std::string(10000, '1'),
      std::string(65, ':'),
  };
  for (const std::string& s : bad) {
    Result<Cidr> c = Cidr::Parse(s);
    EXPECT_FALSE(c.ok()) << "accepted: " << s;
    if (!c.ok()) {
      EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
      EXPECT_LT(c.status().message().size(), 400u) << "messages quote a bounded prefix";
    }
    if (s.find('/') == std::string::npos) {
      EXPECT_FALSE(ParseIpAddress(s).has_value()) << "address accepted: " << s;
    }
  }
}

TEST(AddressRulesTest, EmptyRulesAdmitEveryone) {
  AddressRules rules;
  EXPECT_TRUE(rules.Check("203.0.113.9").ok());
  EXPECT_TRUE(rules.Check("").ok());
  EXPECT_TRUE(rules.Check("garbage").ok());
}

TEST(AddressRulesTest, DenyWinsOverAllow) {
  AddressRules rules;
  rules.allow = {Range("10.0.0.0/8")};
  rules.deny = {Range("10.0.0.66")};
  EXPECT_TRUE(rules.Check("10.1.1.1").ok());
  Status denied = rules.Check("10.0.0.66");
  EXPECT_EQ(denied.code(), Code::kPermissionDenied);
  EXPECT_NE(denied.message().find("10.0.0.66/32"), std::string::npos) << denied.message();
  Status outside = rules.Check("192.0.2.1");
  EXPECT_EQ(outside.code(), Code::kPermissionDenied);
  EXPECT_NE(outside.message().find("not in the allow list"), std::string::npos);
  EXPECT_TRUE(rules.Check("::ffff:10.9.9.9").ok()) << "mapped peer matches the IPv4 allow rule";
}

TEST(AddressRulesTest, UnreadablePeerIsRefusedOnlyByAnAllowList) {
  AddressRules deny_only;
  deny_only.deny = {Range("10.0.0.0/8")};
  EXPECT_TRUE(deny_only.Check("not-an-address").ok());
  AddressRules allow;
  allow.allow = {Range("::/0")};
  EXPECT_EQ(allow.Check("not-an-address").code(), Code::kPermissionDenied);
  EXPECT_EQ(allow.Check("").code(), Code::kPermissionDenied);
}

TEST(AddressRulesTest, DecodingNamesTheBadEntry) {
  Result<AddressRules> ok =
      DecodeAddressRules(json{{"allow", {"10.0.0.0/8", "::1"}}, {"deny", json::array()}});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->allow.size(), 2u);
  EXPECT_EQ(ok->ToJson()["allow"], json({"10.0.0.0/8", "::1/128"}));

  Result<AddressRules> bad =
      DecodeAddressRules(json{{"deny", {"10.0.0.0/8", "192.168.0.0/16", "10.0.0.300/8"}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'deny' entry 2"), std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("10.0.0.300/8"), std::string::npos);

  EXPECT_FALSE(DecodeAddressRules(json{{"allow", "10.0.0.0/8"}}).ok());
  EXPECT_FALSE(DecodeAddressRules(json{{"allow", {7}}}).ok());
  EXPECT_FALSE(DecodeAddressRules(json{{"allow", {json::object()}}}).ok());
  json many = json::array();
  for (size_t i = 0; i <= kMaxAddressRules; ++i) many.push_back("10.0.0.1");
  Result<AddressRules> too_many = DecodeAddressRules(json{{"deny", many}});
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("at most"), std::string::npos);
}

// --- token bucket -----------------------------------------------------------------------------

TEST(RateLimiterTest, BurstThenRefillAtTheRate) {
  ManualClock clock(1'000'000);
  RateLimiter limiter({/*per_second=*/1, /*burst=*/3, kMaxRateBuckets}, &clock);
  EXPECT_EQ(limiter.Take("k"), 0);
  EXPECT_EQ(limiter.Take("k"), 0);
  EXPECT_EQ(limiter.Take("k"), 0);
  EXPECT_EQ(limiter.Take("k"), 1) << "empty bucket: retry in one second";
  clock.Advance(999);
  EXPECT_EQ(limiter.Take("k"), 1) << "0.999 of a token is not a token";
  clock.Advance(1);
  EXPECT_EQ(limiter.Take("k"), 0);
  EXPECT_EQ(limiter.Take("k"), 1);
  // A long idle period refills to the burst, never beyond.
  clock.Advance(3'600'000);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Take("k"), 0) << i;
  EXPECT_GT(limiter.Take("k"), 0);
}

TEST(RateLimiterTest, RetryAfterIsWholeSecondsAtLeastOne) {
  ManualClock clock(0);
  RateLimiter fast({/*per_second=*/100, /*burst=*/1, kMaxRateBuckets}, &clock);
  EXPECT_EQ(fast.Take("k"), 0);
  EXPECT_EQ(fast.Take("k"), 1) << "10 ms rounds up to 1 s";
  RateLimiter slow({/*per_second=*/0.1, /*burst=*/1, kMaxRateBuckets}, &clock);
  EXPECT_EQ(slow.Take("k"), 0);
  EXPECT_EQ(slow.Take("k"), 10);
  clock.Advance(5'000);
  EXPECT_EQ(slow.Take("k"), 5);
}

TEST(RateLimiterTest, BucketsAreIndependent) {
  ManualClock clock(0);
  RateLimiter limiter({1, 1, kMaxRateBuckets}, &clock);
  EXPECT_EQ(limiter.Take("key:a"), 0);
  EXPECT_GT(limiter.Take("key:a"), 0);
  EXPECT_EQ(limiter.Take("key:b"), 0) << "another key is not slowed by the first";
  EXPECT_EQ(limiter.Take("addr:10.0.0.1"), 0);
}

TEST(RateLimiterTest, MemoryIsBoundedByEvictingTheLeastRecentlyUsed) {
  ManualClock clock(0);
  RateLimiter limiter({1, 1, /*max_buckets=*/3}, &clock);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(limiter.Take("addr:" + std::to_string(i)), 0);
    EXPECT_LE(limiter.buckets(), 3u);
  }
  // "hot" stays while strangers come and go; the oldest stranger is gone and starts full.
  EXPECT_EQ(limiter.Take("hot"), 0);
  EXPECT_EQ(limiter.Take("x1"), 0);
  EXPECT_GT(limiter.Take("hot"), 0);  // touched: most recent
  EXPECT_EQ(limiter.Take("x2"), 0);
  EXPECT_EQ(limiter.Take("x3"), 0);  // evicts x1 (hot was used after x1)
  EXPECT_GT(limiter.Take("hot"), 0) << "the recently used bucket kept its state";
  EXPECT_EQ(limiter.buckets(), 3u);
}

TEST(RateLimiterTest, ClockSteppingBackRefillsNothing) {
  ManualClock clock(10'000);
  RateLimiter limiter({1, 1, kMaxRateBuckets}, &clock);
  EXPECT_EQ(limiter.Take("k"), 0);
  clock.Set(0);
  EXPECT_GT(limiter.Take("k"), 0);
  clock.Set(10'500);
  EXPECT_GT(limiter.Take("k"), 0) << "the step back did not shift the bucket's time";
  clock.Set(11'000);
  EXPECT_EQ(limiter.Take("k"), 0);
}

TEST(RateLimiterTest, ZeroRateMeansNoLimit) {
  ManualClock clock(0);
  RateLimiter limiter({0, 0, kMaxRateBuckets}, &clock);
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(limiter.Take("k"), 0);
  EXPECT_EQ(limiter.buckets(), 0u);
}

// --- modes ------------------------------------------------------------------------------------

TEST(ModeTest, RoutesAreClassifiedByWhatTheyDo) {
  const auto kRead = KeyScope::kRead, kWrite = KeyScope::kWrite, kAdmin = KeyScope::kAdmin;
  EXPECT_EQ(ClassifyRoute("GET", "/health", std::nullopt), RouteKind::kPublic);
  EXPECT_EQ(ClassifyRoute("GET", "/ready", std::nullopt), RouteKind::kPublic);
  EXPECT_EQ(ClassifyRoute("GET", "/api/v1/projects", kRead), RouteKind::kRead);
  EXPECT_EQ(ClassifyRoute("POST", "/api/v1/projects/{project}/query", kRead), RouteKind::kRead);
  EXPECT_EQ(ClassifyRoute("POST", "/api/v2/projects/{project_id}/query", kRead), RouteKind::kRead);
  EXPECT_EQ(ClassifyRoute("POST", "/api/v1/projects", kWrite), RouteKind::kWrite);
  EXPECT_EQ(ClassifyRoute("POST", "/api/v1/projects/{project}/documents", kWrite),
            RouteKind::kWrite);
  EXPECT_EQ(ClassifyRoute("DELETE", "/api/v1/projects/{project}", kAdmin), RouteKind::kWrite);
  EXPECT_EQ(ClassifyRoute("PUT", "/api/v2/projects/{project_id}", kWrite), RouteKind::kWrite);
  EXPECT_EQ(ClassifyRoute("POST", "/api/v1/admin/projects/{project}/restore", kAdmin),
            RouteKind::kWrite);
  EXPECT_EQ(ClassifyRoute("POST", "/api/v1/admin/restore", kAdmin), RouteKind::kWrite);
  EXPECT_EQ(ClassifyRoute("POST", "/api/v1/admin/purge", kAdmin), RouteKind::kWrite);
  EXPECT_EQ(ClassifyRoute("GET", "/api/v1/admin/deleted", kAdmin), RouteKind::kAdminControl);
  EXPECT_EQ(ClassifyRoute("GET", "/api/v1/admin/audit", kAdmin), RouteKind::kAdminControl);
  EXPECT_EQ(ClassifyRoute("POST", "/api/v1/admin/lockdown", kAdmin), RouteKind::kAdminControl);
  EXPECT_EQ(ClassifyRoute("PUT", "/api/v1/admin/ip-rules", kAdmin), RouteKind::kAdminControl);
  EXPECT_EQ(ClassifyRoute("DELETE", "/api/v1/admin/api-keys/{id}", kAdmin),
            RouteKind::kAdminControl);
  EXPECT_EQ(ClassifyRoute("POST", "/api/v1/admin/backups", kAdmin), RouteKind::kAdminControl);
  EXPECT_EQ(ClassifyRoute("POST", "/api/v2/projects/{project_id}/api-keys", kAdmin),
            RouteKind::kAdminControl);
}

ApiKeyRecord Key(KeyScope scope, std::vector<std::string> projects = {}) {
  ApiKeyRecord k;
  k.id = "key_0123456789abcdef";
  k.scope = scope;
  k.projects = std::move(projects);
  return k;
}

TEST(ModeTest, DecisionsForEveryModeRouteKindAndKey) {
  const ApiKeyRecord read = Key(KeyScope::kRead), write = Key(KeyScope::kWrite),
                     admin = Key(KeyScope::kAdmin), limited_admin = Key(KeyScope::kAdmin, {"p"});
  const std::vector<const ApiKeyRecord*> keys = {nullptr, &read, &write, &admin, &limited_admin};
  const std::vector<RouteKind> kinds = {RouteKind::kPublic, RouteKind::kRead,
                                        RouteKind::kAdminControl, RouteKind::kWrite};
  ModeState off;
  ModeState read_only{ServiceMode::kReadOnly, "migrating storage", 1'700'000'000'000, "cli"};
  ModeState lockdown{ServiceMode::kLockdown, "key leak under investigation", 1'700'000'000'000,
                     "key_x"};
  for (const ApiKeyRecord* key : keys) {
    for (RouteKind kind : kinds) {
      EXPECT_TRUE(CheckMode(off, kind, key).ok());
      const Status ro = CheckMode(read_only, kind, key);
      EXPECT_EQ(ro.ok(), kind != RouteKind::kWrite);
      if (!ro.ok()) {
        EXPECT_EQ(ro.code(), Code::kUnavailable);
        EXPECT_NE(ro.message().find("read-only"), std::string::npos);
        EXPECT_NE(ro.message().find("migrating storage"), std::string::npos);
      }
      const Status ld = CheckMode(lockdown, kind, key);
      EXPECT_EQ(ld.ok(), kind == RouteKind::kPublic || key == &admin)
          << static_cast<int>(kind) << " " << (key ? KeyScopeName(key->scope) : "none");
      if (!ld.ok()) {
        EXPECT_EQ(ld.code(), Code::kUnavailable);
        EXPECT_NE(ld.message().find("lockdown"), std::string::npos);
        EXPECT_NE(ld.message().find("key leak under investigation"), std::string::npos);
      }
    }
  }
}

TEST(ModeTest, NamesRoundTrip) {
  for (ServiceMode m : {ServiceMode::kOff, ServiceMode::kReadOnly, ServiceMode::kLockdown}) {
    EXPECT_EQ(ParseServiceMode(ServiceModeName(m)), m);
  }
  EXPECT_EQ(ParseServiceMode("read-only"), ServiceMode::kReadOnly);
  EXPECT_FALSE(ParseServiceMode("LOCKDOWN").has_value());
  EXPECT_FALSE(ParseServiceMode("").has_value());
}

// --- persistence and the server-side state ----------------------------------------------------

class AccessControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Open(dir_.Sub("catalog.db"), &clock_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    catalog_ = std::move(c).value();
  }
  std::unique_ptr<AccessControl> Open(RateLimitOptions rate = {0, 0, kMaxRateBuckets}) {
    AccessControlOptions o;
    o.rate = rate;
    o.clock = &clock_;
    o.poll_interval_ms = 1000;
    auto ac = AccessControl::Open(catalog_.get(), o);
    EXPECT_TRUE(ac.ok()) << ac.status().ToString();
    return ac.ok() ? std::move(ac).value() : nullptr;
  }

  testing::TempDir dir_;
  ManualClock clock_{1'764'000'000'000};
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(AccessControlTest, ModeAndRulesSurviveReopening) {
  {
    auto ac = Open();
    ASSERT_TRUE(ac);
    EXPECT_EQ(ac->mode().mode, ServiceMode::kOff);
    ASSERT_TRUE(ac->SetMode(ServiceMode::kLockdown, "incident 42", "key_admin").ok());
    AddressRules rules;
    rules.deny = {Range("203.0.113.0/24")};
    ASSERT_TRUE(ac->SetRules(rules, "key_admin").ok());
  }
  auto again = Open();
  ASSERT_TRUE(again);
  const ModeState m = again->mode();
  EXPECT_EQ(m.mode, ServiceMode::kLockdown);
  EXPECT_EQ(m.reason, "incident 42");
  EXPECT_EQ(m.set_by, "key_admin");
  EXPECT_EQ(m.since_ms, clock_.NowMillis());
  EXPECT_EQ(again->CheckAddress("203.0.113.7").code(), Code::kPermissionDenied);
  EXPECT_TRUE(again->CheckAddress("198.51.100.1").ok());
  EXPECT_EQ(again->rules().updated_by, "key_admin");
}

TEST_F(AccessControlTest, AChangeThroughAnotherConnectionIsSeenAfterThePollInterval) {
  auto ac = Open();
  ASSERT_TRUE(ac);
  // What `knowledgebeast lockdown on --data-dir` does, from another process.
  auto other = Catalog::Open(dir_.Sub("catalog.db"), &clock_);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(
      StoreMode(other->get(), ServiceMode::kReadOnly, "disk swap", "cli", clock_.NowMillis()).ok());
  EXPECT_EQ(ac->mode().mode, ServiceMode::kOff) << "not re-read before the interval";
  clock_.Advance(1000);
  EXPECT_EQ(ac->mode().mode, ServiceMode::kReadOnly);
  EXPECT_EQ(ac->mode().reason, "disk swap");
}

TEST_F(AccessControlTest, TheAuditReadsSwitchIsStoredAndSeenByOtherProcesses) {
  auto ac = Open();
  ASSERT_TRUE(ac);
  EXPECT_FALSE(ac->audit_reads().enabled.has_value()) << "never switched: the config decides";
  EXPECT_EQ(ac->audit_reads().ToJson(true)["enabled"], true);
  EXPECT_EQ(ac->audit_reads().ToJson(true)["source"], "config");
  auto on = ac->SetAuditReads(true, "key_admin");
  ASSERT_TRUE(on.ok());
  EXPECT_EQ(on->ToJson(false)["enabled"], true);
  EXPECT_EQ(on->ToJson(false)["source"], "runtime");
  // What `knowledgebeast audit reads off --data-dir` does, from another process.
  auto other = Catalog::Open(dir_.Sub("catalog.db"), &clock_);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(StoreAuditReads(other->get(), false, "cli", clock_.NowMillis()).ok());
  EXPECT_EQ(ac->audit_reads().enabled, std::optional<bool>(true)) << "not re-read yet";
  clock_.Advance(1000);
  EXPECT_EQ(ac->audit_reads().enabled, std::optional<bool>(false));
  EXPECT_EQ(ac->audit_reads().set_by, "cli");
  // A row without a boolean is corrupt, not "off".
  ASSERT_TRUE(catalog_->PutSetting(kAuditReadsSettingKey, R"({"format":1,"enabled":"yes"})").ok());
  EXPECT_EQ(LoadAuditReads(catalog_.get()).status().code(), Code::kCorruption);
}

TEST_F(AccessControlTest, ReasonIsRequiredAndValidated) {
  auto ac = Open();
  ASSERT_TRUE(ac);
  EXPECT_EQ(ac->SetMode(ServiceMode::kLockdown, "", "k").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ac->SetMode(ServiceMode::kReadOnly, "   ", "k").status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(ac->SetMode(ServiceMode::kLockdown, "bad \xc3\x28 utf8", "k").status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(ac->SetMode(ServiceMode::kLockdown, std::string(kMaxModeReasonBytes + 1, 'x'), "k")
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(ac->mode().mode, ServiceMode::kOff) << "nothing stored by the refusals";
  EXPECT_TRUE(ac->SetMode(ServiceMode::kOff, "", "k").ok()) << "lifting needs no reason";
}

TEST_F(AccessControlTest, CorruptOrNewerSettingsAreErrorsNotSilentlyOff) {
  ASSERT_TRUE(catalog_->PutSetting(kModeSettingKey, "{not json").ok());
  EXPECT_EQ(LoadMode(catalog_.get()).status().code(), Code::kCorruption);
  AccessControlOptions o;
  o.clock = &clock_;
  EXPECT_FALSE(AccessControl::Open(catalog_.get(), o).ok());
  ASSERT_TRUE(catalog_->PutSetting(kModeSettingKey, R"({"format":2,"mode":"off"})").ok());
  EXPECT_EQ(LoadMode(catalog_.get()).status().code(), Code::kFailedPrecondition);
  ASSERT_TRUE(catalog_->PutSetting(kModeSettingKey, R"({"format":1,"mode":"party"})").ok());
  EXPECT_EQ(LoadMode(catalog_.get()).status().code(), Code::kCorruption);
  ASSERT_TRUE(
      catalog_->PutSetting(kAddressRulesSettingKey, R"({"format":1,"deny":["10.0.0.1/8"]})").ok());
  EXPECT_EQ(LoadAddressRules(catalog_.get()).status().code(), Code::kCorruption);
}

TEST_F(AccessControlTest, AFailedReReadKeepsTheLockdown) {
  auto ac = Open();
  ASSERT_TRUE(ac);
  ASSERT_TRUE(ac->SetMode(ServiceMode::kLockdown, "incident", "k").ok());
  ASSERT_TRUE(catalog_->PutSetting(kModeSettingKey, "garbage").ok());
  clock_.Advance(5000);
  EXPECT_EQ(ac->mode().mode, ServiceMode::kLockdown);
}

TEST_F(AccessControlTest, AdmitRateLimitsBeforeAuthAndSparesPublicRoutes) {
  auto ac = Open({/*per_second=*/1, /*burst=*/2, kMaxRateBuckets});
  ASSERT_TRUE(ac);
  const Status bad_key = Status::Unauthenticated("unknown API key");
  int64_t retry = 0;
  EXPECT_EQ(ac->Admit(RouteKind::kRead, nullptr, bad_key, "192.0.2.1", &retry).code(),
            Code::kUnauthenticated);
  EXPECT_EQ(ac->Admit(RouteKind::kRead, nullptr, bad_key, "192.0.2.1", &retry).code(),
            Code::kUnauthenticated);
  Status limited = ac->Admit(RouteKind::kRead, nullptr, bad_key, "192.0.2.1", &retry);
  EXPECT_EQ(limited.code(), Code::kResourceExhausted) << "key guessing is slowed per address";
  EXPECT_EQ(retry, 1);
  EXPECT_NE(limited.message().find("192.0.2.1"), std::string::npos);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(ac->Admit(RouteKind::kPublic, nullptr, Status::OK(), "192.0.2.1", &retry).ok());
  }
  const ApiKeyRecord key = Key(KeyScope::kRead);
  EXPECT_TRUE(ac->Admit(RouteKind::kRead, &key, Status::OK(), "192.0.2.1", &retry).ok())
      << "a key has its own bucket";
  ASSERT_TRUE(ac->SetMode(ServiceMode::kLockdown, "incident", "k").ok());
  EXPECT_EQ(ac->Admit(RouteKind::kRead, &key, Status::OK(), "192.0.2.1", &retry).code(),
            Code::kUnavailable);
}

TEST_F(AccessControlTest, NonsensicalRateOptionsAreRefused) {
  AccessControlOptions o;
  o.clock = &clock_;
  o.rate = {-1, 10, kMaxRateBuckets};
  EXPECT_FALSE(AccessControl::Open(catalog_.get(), o).ok());
  o.rate = {10, 0.5, kMaxRateBuckets};
  EXPECT_FALSE(AccessControl::Open(catalog_.get(), o).ok());
  o.rate = {0, 0, kMaxRateBuckets};
  EXPECT_TRUE(AccessControl::Open(catalog_.get(), o).ok());
}

}  // namespace
}  // namespace kb::api
