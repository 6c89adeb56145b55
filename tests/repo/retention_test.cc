// Retention (restic-style forget) and the duration syntax: table-driven, on fixed UTC timestamps.
#include "repo/retention.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"

namespace kb::repo {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

int64_t T(const std::string& iso) {
  auto t = ParseIso8601(iso);
  EXPECT_TRUE(t.has_value()) << iso;
  return t.value_or(0);
}

// A snapshot whose id carries its time, as the repository names them.
SnapshotSummary Snap(const std::string& iso, const std::string& suffix = "00000000") {
  int64_t ms = T(iso);
  std::string f = FormatIso8601(ms);  // 2026-11-26T10:19:00.123Z
  SnapshotSummary s;
  s.id = f.substr(0, 4) + f.substr(5, 2) + f.substr(8, 2) + "T" + f.substr(11, 2) +
         f.substr(14, 2) + f.substr(17, 2) + "Z-" + suffix;
  s.time = f;
  s.trigger = "schedule";
  s.scope = "full";
  return s;
}

// The ids kept, newest first.
std::vector<std::string> Kept(const std::vector<RetentionDecision>& decisions) {
  std::vector<std::string> out;
  for (const auto& d : decisions) {
    if (d.keep) out.push_back(d.snapshot_id);
  }
  return out;
}

std::map<std::string, std::vector<std::string>> Reasons(
    const std::vector<RetentionDecision>& decisions) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& d : decisions) out[d.snapshot_id] = d.reasons;
  return out;
}

const int64_t kNow = T("2026-12-01T00:00:00Z");

// ---------------------------------------------------------------------------------------------
// Policy basics

TEST(RetentionPolicyTest, DefaultIsHourlyForAWeekAndDailyForAMonth) {
  RetentionPolicy p = RetentionPolicy::Default();
  EXPECT_EQ(p.keep_hourly, 168);
  EXPECT_EQ(p.keep_daily, 30);
  EXPECT_EQ(p.keep_last, 0);
  EXPECT_EQ(p.keep_weekly, 0);
  EXPECT_EQ(p.keep_monthly, 0);
  EXPECT_EQ(p.keep_within_ms, 0);
  EXPECT_FALSE(p.empty());
}

TEST(RetentionPolicyTest, EmptyMeansNoRuleAtAll) {
  EXPECT_TRUE(RetentionPolicy{}.empty());
  struct Case {
    RetentionPolicy policy;
    bool empty;
  };
  auto with = [](auto set) {
    RetentionPolicy p;
    set(p);
    return p;
  };
  const Case cases[] = {
      {with([](RetentionPolicy& p) { p.keep_last = 1; }), false},
      {with([](RetentionPolicy& p) { p.keep_hourly = 1; }), false},
      {with([](RetentionPolicy& p) { p.keep_daily = 1; }), false},
      {with([](RetentionPolicy& p) { p.keep_weekly = 1; }), false},
      {with([](RetentionPolicy& p) { p.keep_monthly = 1; }), false},
      {with([](RetentionPolicy& p) { p.keep_within_ms = 1; }), false},
      {with([](RetentionPolicy& p) { p.keep_daily = -1; }), false},  // unlimited
      {with([](RetentionPolicy& p) { p.keep_within_ms = -5; }), true},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    EXPECT_EQ(cases[i].policy.empty(), cases[i].empty) << "case " << i;
  }
}

TEST(RetentionTest, EmptyPolicyKeepsEverythingAndSaysWhy) {
  std::vector<SnapshotSummary> snaps = {Snap("2026-11-01T00:00:00Z"), Snap("2026-11-02T00:00:00Z")};
  auto d = ApplyRetention(snaps, RetentionPolicy{}, kNow);
  ASSERT_EQ(d.size(), 2u);
  for (const auto& x : d) {
    EXPECT_TRUE(x.keep);
    EXPECT_THAT(x.reasons, ElementsAre("empty policy"));
  }
}

TEST(RetentionTest, NoSnapshotsGiveNoDecisions) {
  EXPECT_TRUE(ApplyRetention({}, RetentionPolicy::Default(), kNow).empty());
}

TEST(RetentionTest, DecisionsAreNewestFirstWhateverTheInputOrder) {
  std::vector<SnapshotSummary> snaps = {Snap("2026-11-02T00:00:00Z", "b"),
                                        Snap("2026-11-03T00:00:00Z", "c"),
                                        Snap("2026-11-01T00:00:00Z", "a")};
  RetentionPolicy p;
  p.keep_last = 1;
  auto d = ApplyRetention(snaps, p, kNow);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].snapshot_id, snaps[1].id);
  EXPECT_EQ(d[1].snapshot_id, snaps[0].id);
  EXPECT_EQ(d[2].snapshot_id, snaps[2].id);
  EXPECT_TRUE(d[0].keep);
  EXPECT_FALSE(d[1].keep);
  EXPECT_FALSE(d[2].keep);
  EXPECT_TRUE(d[1].reasons.empty());
}

// ---------------------------------------------------------------------------------------------
// keep_last

TEST(RetentionTest, KeepLastTable) {
  std::vector<SnapshotSummary> snaps;
  for (int i = 1; i <= 5; ++i)
    snaps.push_back(Snap("2026-11-0" + std::to_string(i) + "T12:00:00Z"));
  // Newest first: 5, 4, 3, 2, 1.
  struct Case {
    int n;
    size_t kept;
  };
  const Case cases[] = {{0, 0}, {1, 1}, {2, 2}, {5, 5}, {6, 5}, {100, 5}, {-1, 5}};
  for (const Case& c : cases) {
    RetentionPolicy p;
    p.keep_last = c.n;
    auto d = ApplyRetention(snaps, p, kNow);
    if (c.n == 0) {
      // keep_last 0 alone is the empty policy: everything kept, by "empty policy".
      EXPECT_EQ(Kept(d).size(), 5u);
      continue;
    }
    auto kept = Kept(d);
    ASSERT_EQ(kept.size(), c.kept) << "keep_last " << c.n;
    for (size_t i = 0; i < kept.size(); ++i) {
      EXPECT_EQ(kept[i], snaps[4 - i].id) << "keep_last " << c.n;
      EXPECT_THAT(d[i].reasons, ElementsAre("last"));
    }
  }
}

TEST(RetentionTest, IdenticalTimesAreDistinctSnapshotsOrderedById) {
  std::vector<SnapshotSummary> snaps = {Snap("2026-11-30T10:00:00Z", "aaaaaaaa"),
                                        Snap("2026-11-30T10:00:00Z", "cccccccc"),
                                        Snap("2026-11-30T10:00:00Z", "bbbbbbbb")};
  RetentionPolicy last2;
  last2.keep_last = 2;
  EXPECT_THAT(Kept(ApplyRetention(snaps, last2, kNow)), ElementsAre(snaps[1].id, snaps[2].id));

  // One hour bucket: only the first in order (largest id) is the hour's "newest".
  RetentionPolicy hourly;
  hourly.keep_hourly = 5;
  auto d = ApplyRetention(snaps, hourly, kNow);
  EXPECT_THAT(Kept(d), ElementsAre(snaps[1].id));
  EXPECT_THAT(Reasons(d)[snaps[1].id], ElementsAre("hourly 2026-11-30T10Z"));
}

// ---------------------------------------------------------------------------------------------
// Calendar buckets: boundaries in UTC

struct BucketCase {
  const char* name;
  std::vector<const char*> times;  // input, any order
  int hourly = 0, daily = 0, weekly = 0, monthly = 0;
  std::vector<const char*> kept_times;                 // newest first
  std::vector<std::vector<std::string>> kept_reasons;  // parallel to kept_times
};

TEST(RetentionTest, BucketBoundaryTable) {
  // clang-format off
  const BucketCase cases[] = {
      {"hour boundary splits at :00:00.000",
       {"2026-11-30T12:59:59.999Z", "2026-11-30T13:00:00.000Z"},
       2, 0, 0, 0,
       {"2026-11-30T13:00:00.000Z", "2026-11-30T12:59:59.999Z"},
       {{"hourly 2026-11-30T13Z"}, {"hourly 2026-11-30T12Z"}}},
      {"same hour keeps only its newest",
       {"2026-11-30T13:00:00.000Z", "2026-11-30T13:59:59.999Z", "2026-11-30T13:30:00Z"},
       5, 0, 0, 0,
       {"2026-11-30T13:59:59.999Z"},
       {{"hourly 2026-11-30T13Z"}}},
      {"day boundary is UTC midnight",
       {"2026-11-29T23:59:59.999Z", "2026-11-30T00:00:00.000Z", "2026-11-30T23:00:00Z"},
       0, 2, 0, 0,
       {"2026-11-30T23:00:00Z", "2026-11-29T23:59:59.999Z"},
       {{"daily 2026-11-30"}, {"daily 2026-11-29"}}},
      {"offsets are converted to UTC before bucketing",
       {"2026-11-30T00:30:00+01:00", "2026-11-30T00:10:00Z"},
       0, 2, 0, 0,
       {"2026-11-30T00:10:00Z", "2026-11-29T23:30:00Z"},
       {{"daily 2026-11-30"}, {"daily 2026-11-29"}}},
      {"ISO week starts on Monday",
       {"2026-11-29T23:59:59Z" /* Sunday */, "2026-11-30T00:00:00Z" /* Monday */,
        "2026-11-23T00:00:00Z" /* Monday of the previous week */},
       0, 0, 5, 0,
       {"2026-11-30T00:00:00Z", "2026-11-29T23:59:59Z"},
       {{"weekly 2026-W49"}, {"weekly 2026-W48"}}},
      {"ISO week 53 spans the new year (2026 has 53 weeks)",
       {"2026-12-31T12:00:00Z" /* Thu */, "2027-01-03T12:00:00Z" /* Sun */,
        "2027-01-04T00:00:00Z" /* Mon */},
       0, 0, 5, 0,
       {"2027-01-04T00:00:00Z", "2027-01-03T12:00:00Z"},
       {{"weekly 2027-W01"}, {"weekly 2026-W53"}}},
      {"early January can belong to the previous ISO year",
       {"2021-01-03T12:00:00Z" /* Sun */, "2020-12-28T00:00:00Z" /* Mon */,
        "2021-01-04T00:00:00Z"},
       0, 0, 5, 0,
       {"2021-01-04T00:00:00Z", "2021-01-03T12:00:00Z"},
       {{"weekly 2021-W01"}, {"weekly 2020-W53"}}},
      {"month boundary",
       {"2026-01-31T23:59:59.999Z", "2026-02-01T00:00:00Z", "2026-02-28T23:00:00Z"},
       0, 0, 0, 5,
       {"2026-02-28T23:00:00Z", "2026-01-31T23:59:59.999Z"},
       {{"monthly 2026-02"}, {"monthly 2026-01"}}},
      {"leap day is its own day in February",
       {"2028-02-29T10:00:00Z", "2028-02-28T10:00:00Z", "2028-03-01T10:00:00Z"},
       0, 3, 0, 2,
       {"2028-03-01T10:00:00Z", "2028-02-29T10:00:00Z", "2028-02-28T10:00:00Z"},
       {{"daily 2028-03-01", "monthly 2028-03"},
        {"daily 2028-02-29", "monthly 2028-02"},
        {"daily 2028-02-28"}}},
      {"year boundary for hours, days and months at once",
       {"2026-12-31T23:59:59.999Z", "2027-01-01T00:00:00Z"},
       1, 1, 0, 1,
       {"2027-01-01T00:00:00Z"},
       {{"hourly 2027-01-01T00Z", "daily 2027-01-01", "monthly 2027-01"}}},
      {"before 1970 (negative times floor correctly)",
       {"1969-12-31T23:30:00Z", "1970-01-01T00:30:00Z"},
       2, 2, 0, 0,
       {"1970-01-01T00:30:00Z", "1969-12-31T23:30:00Z"},
       {{"hourly 1970-01-01T00Z", "daily 1970-01-01"},
        {"hourly 1969-12-31T23Z", "daily 1969-12-31"}}},
      {"empty buckets do not count",
       {"2026-11-01T12:00:00Z", "2026-11-05T12:00:00Z", "2026-11-10T12:00:00Z",
        "2026-11-11T12:00:00Z"},
       0, 3, 0, 0,
       {"2026-11-11T12:00:00Z", "2026-11-10T12:00:00Z", "2026-11-05T12:00:00Z"},
       {{"daily 2026-11-11"}, {"daily 2026-11-10"}, {"daily 2026-11-05"}}},
      {"N larger than the number of buckets keeps one per bucket",
       {"2026-11-01T12:00:00Z", "2026-11-01T13:00:00Z", "2026-11-02T12:00:00Z"},
       0, 1000, 0, 0,
       {"2026-11-02T12:00:00Z", "2026-11-01T13:00:00Z"},
       {{"daily 2026-11-02"}, {"daily 2026-11-01"}}},
      {"negative N is unlimited",
       {"2026-01-15T00:00:00Z", "2025-06-15T00:00:00Z", "2024-06-15T00:00:00Z",
        "2024-06-20T00:00:00Z"},
       0, 0, 0, -1,
       {"2026-01-15T00:00:00Z", "2025-06-15T00:00:00Z", "2024-06-20T00:00:00Z"},
       {{"monthly 2026-01"}, {"monthly 2025-06"}, {"monthly 2024-06"}}},
  };
  // clang-format on
  for (const BucketCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<SnapshotSummary> snaps;
    int n = 0;
    for (const char* t : c.times) snaps.push_back(Snap(t, "0000000" + std::to_string(n++)));
    RetentionPolicy p;
    p.keep_hourly = c.hourly;
    p.keep_daily = c.daily;
    p.keep_weekly = c.weekly;
    p.keep_monthly = c.monthly;
    auto d = ApplyRetention(snaps, p, kNow);
    ASSERT_EQ(d.size(), snaps.size());
    std::vector<int64_t> kept_times;
    std::vector<std::vector<std::string>> kept_reasons;
    for (const auto& x : d) {
      if (!x.keep) continue;
      auto it = std::find_if(snaps.begin(), snaps.end(),
                             [&](const SnapshotSummary& s) { return s.id == x.snapshot_id; });
      ASSERT_NE(it, snaps.end());
      kept_times.push_back(T(it->time));
      kept_reasons.push_back(x.reasons);
    }
    std::vector<int64_t> want;
    for (const char* t : c.kept_times) want.push_back(T(t));
    EXPECT_EQ(kept_times, want);
    EXPECT_EQ(kept_reasons, c.kept_reasons);
  }
}

TEST(RetentionTest, EverySnapshotKeptByManyRulesListsEveryReason) {
  std::vector<SnapshotSummary> snaps = {Snap("2026-11-30T13:30:00Z"), Snap("2026-11-30T12:00:00Z")};
  RetentionPolicy p;
  p.keep_last = 1;
  p.keep_hourly = 1;
  p.keep_daily = 1;
  p.keep_weekly = 1;
  p.keep_monthly = 1;
  p.keep_within_ms = 7 * 24 * 3600 * 1000LL;
  auto d = ApplyRetention(snaps, p, kNow);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_THAT(d[0].reasons, ElementsAre("last", "hourly 2026-11-30T13Z", "daily 2026-11-30",
                                        "weekly 2026-W49", "monthly 2026-11", "within 7d"));
  // The older one: every count is used up; only the time window keeps it.
  EXPECT_TRUE(d[1].keep);
  EXPECT_THAT(d[1].reasons, ElementsAre("within 7d"));
}

TEST(RetentionTest, KeepWithinIncludesItsEdgeAndNothingOlder) {
  const int64_t day = 24 * 3600 * 1000LL;
  std::vector<SnapshotSummary> snaps;
  struct Case {
    int64_t age_ms;
    bool keep;
  };
  const Case cases[] = {{0, true},       {day, true},          {7 * day - 1, true},
                        {7 * day, true}, {7 * day + 1, false}, {30 * day, false},
                        {-day, true} /* in the future: kept */};
  for (const Case& c : cases) {
    SnapshotSummary s;
    s.time = FormatIso8601(kNow - c.age_ms);
    s.id = "x-" + std::to_string(c.age_ms);
    snaps.push_back(s);
  }
  RetentionPolicy p;
  p.keep_within_ms = 7 * day;
  auto reasons = Reasons(ApplyRetention(snaps, p, kNow));
  for (const Case& c : cases) {
    const auto& r = reasons["x-" + std::to_string(c.age_ms)];
    if (c.keep) {
      EXPECT_THAT(r, ElementsAre("within 7d")) << "age " << c.age_ms;
    } else {
      EXPECT_TRUE(r.empty()) << "age " << c.age_ms;
    }
  }
}

TEST(RetentionTest, UnreadableTimeIsKeptAndSortedLast) {
  SnapshotSummary bad;
  bad.id = "not-a-snapshot-id";
  bad.time = "yesterday";
  std::vector<SnapshotSummary> snaps = {bad, Snap("2026-11-30T10:00:00Z"),
                                        Snap("2026-11-29T10:00:00Z")};
  RetentionPolicy p;
  p.keep_last = 1;
  auto d = ApplyRetention(snaps, p, kNow);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].snapshot_id, snaps[1].id);
  EXPECT_EQ(d[2].snapshot_id, "not-a-snapshot-id");
  EXPECT_TRUE(d[2].keep);
  EXPECT_THAT(d[2].reasons, ElementsAre("unknown time"));
  EXPECT_FALSE(d[1].keep);  // the unreadable one did not use up keep_last
}

TEST(RetentionTest, UnreadableManifestIsKeptAndUsesUpNoCount) {
  std::vector<SnapshotSummary> snaps = {Snap("2026-11-30T12:00:00Z", "newer"),
                                        Snap("2026-11-30T10:00:00Z", "older")};
  snaps[0].problem = "FailedPrecondition: format version 2";
  snaps[0].time.clear();  // what ListSnapshots leaves; the id still carries the time
  RetentionPolicy p;
  p.keep_last = 1;
  auto reasons = Reasons(ApplyRetention(snaps, p, kNow));
  EXPECT_THAT(reasons[snaps[0].id], ElementsAre("unreadable manifest"));
  EXPECT_THAT(reasons[snaps[1].id], ElementsAre("last"));
}

TEST(RetentionTest, TimeFallsBackToTheIdPrefix) {
  SnapshotSummary s;
  s.id = "20261130T101500Z-deadbeef";
  EXPECT_EQ(SnapshotTimeMillis(s), T("2026-11-30T10:15:00Z"));
  s.time = "2026-11-30T10:15:00.250Z";  // the field wins (it has milliseconds)
  EXPECT_EQ(SnapshotTimeMillis(s), T("2026-11-30T10:15:00.250Z"));
  for (const char* id :
       {"", "20261130T101500-x", "2026113XT101500Z-x", "20261130T10150Z-x", "20261340T101500Z-x"}) {
    SnapshotSummary t;
    t.id = id;
    EXPECT_FALSE(SnapshotTimeMillis(t).has_value()) << id;
  }
}

// Pre-restore snapshots are kept by their own slots (issue 12): the newest full snapshot and the
// newest pre-restore one both stay under keep_last 1; an older pre-restore one goes.
TEST(RetentionTest, PreRestoreSnapshotsAreKeptByTheirOwnSlots) {
  std::vector<SnapshotSummary> snaps = {Snap("2026-11-30T10:00:00Z", "a"),
                                        Snap("2026-11-30T11:00:00Z", "b"),
                                        Snap("2026-11-30T09:00:00Z", "c")};
  snaps[0].trigger = "pre-restore";
  snaps[2].trigger = "pre-restore";
  RetentionPolicy p;
  p.keep_last = 1;
  EXPECT_THAT(Kept(ApplyRetention(snaps, p, kNow)), ElementsAre(snaps[1].id, snaps[0].id));
}

TEST(RetentionTest, DefaultPolicyOverFortyDaysOfHalfHourlySnapshots) {
  // Every 30 minutes, ending 2026-11-30T23:30Z, for 40 days: 1920 snapshots.
  const int64_t end = T("2026-11-30T23:30:00Z");
  const int64_t half_hour = 30 * 60 * 1000LL;
  std::vector<SnapshotSummary> snaps;
  for (int i = 0; i < 40 * 48; ++i) {
    SnapshotSummary s;
    s.time = FormatIso8601(end - i * half_hour);
    s.id = "s" + std::to_string(100000 + i);
    snaps.push_back(s);
  }
  auto d = ApplyRetention(snaps, RetentionPolicy::Default(), T("2026-12-01T00:00:00Z"));
  // 168 hours (their :30 snapshot) cover exactly the last 7 days; the 23 older days keep their
  // 23:30 snapshot.
  auto kept = Kept(d);
  EXPECT_EQ(kept.size(), 168u + 23u);
  int64_t oldest_kept = end;
  for (const auto& x : d) {
    if (!x.keep) continue;
    int64_t t = T(snaps[std::stoi(x.snapshot_id.substr(1)) - 100000].time);
    oldest_kept = std::min(oldest_kept, t);
    EXPECT_EQ(FormatIso8601(t).substr(14, 2), "30") << x.snapshot_id;
  }
  EXPECT_EQ(oldest_kept, T("2026-11-01T23:30:00Z"));
  // The newest snapshot is kept by both rules.
  EXPECT_THAT(d[0].reasons, ElementsAre("hourly 2026-11-30T23Z", "daily 2026-11-30"));
}

// ---------------------------------------------------------------------------------------------
// Durations

TEST(ParseDurationTest, ValidTable) {
  const int64_t s = 1000, m = 60 * s, h = 60 * m, d = 24 * h;
  const std::pair<const char*, int64_t> cases[] = {
      {"90m", 90 * m},
      {"36h", 36 * h},
      {"7d", 7 * d},
      {"2w", 14 * d},
      {"1y2mo3d", 365 * d + 60 * d + 3 * d},
      {"1y", 365 * d},
      {"1mo", 30 * d},
      {"1d12h", 36 * h},
      {"1h30m15s", h + 30 * m + 15 * s},
      {"1w2d3h4m5s", 9 * d + 3 * h + 4 * m + 5 * s},
      {"0d", 0},
      {"07d", 7 * d},
      {"45s", 45 * s},
      {"10000y", 10000 * 365 * d},
  };
  for (const auto& [text, want] : cases) {
    auto r = ParseDuration(text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().ToString();
    EXPECT_EQ(*r, want) << text;
  }
}

TEST(ParseDurationTest, InvalidTable) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty"},
      {"7", "without a unit"},
      {"d", "expected a number"},
      {"7x", "unknown unit 'x'"},
      {"7D", "unknown unit 'D'"},
      {"7 d", "unknown unit ' d'"},
      {" 7d", "expected a number"},
      {"-1d", "expected a number"},
      {"1.5h", "unknown unit '.'"},
      {"1d1y", "largest to smallest"},
      {"1d1d", "largest to smallest"},
      {"30m1h", "largest to smallest"},
      {"1y2m3d", "write 'mo' for months"},
      {"1y2m", "write 'mo' for months"},
      {"2mo5m", "write 'mo' for months"},
      {"10001y", "too long"},
      {"9999999999999d", "too large"},
      {"999999999999d", "too long"},
  };
  for (const auto& [text, why] : cases) {
    auto r = ParseDuration(text);
    ASSERT_FALSE(r.ok()) << "'" << text << "' parsed as " << *r;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << text;
    EXPECT_THAT(r.status().message(), HasSubstr(why)) << text;
  }
}

TEST(FormatDurationTest, LargestUnitsFirstAndRoundTrips) {
  const int64_t s = 1000, m = 60 * s, h = 60 * m, d = 24 * h;
  const std::pair<int64_t, const char*> cases[] = {
      {7 * d, "7d"},   {36 * h, "1d12h"}, {90 * m, "1h30m"},
      {45 * s, "45s"}, {0, "0s"},         {999, "0s"},
      {d + 1, "1d"},   {365 * d, "365d"}, {d + h + m + s, "1d1h1m1s"},
  };
  for (const auto& [ms, want] : cases) {
    EXPECT_EQ(FormatDuration(ms), want) << ms;
    if (ms % s == 0 && ms > 0) {
      auto back = ParseDuration(want);
      ASSERT_TRUE(back.ok()) << want;
      EXPECT_EQ(*back, ms);
    }
  }
}

}  // namespace
// ---------------------------------------------------------------------------------------------
// by kind of snapshot (issue 12)

// A one-project snapshot or a pre-restore snapshot taken after the hour's full snapshot must not
// take that hour's slot: the full one is kept, and the others are kept by their own slots.
TEST(RetentionTest, EachKindOfSnapshotHasItsOwnSlots) {
  SnapshotSummary full = Snap("2026-11-20T10:05:00Z", "f0000000");
  SnapshotSummary one = Snap("2026-11-20T10:40:00Z", "p0000000");
  one.scope = "projects";
  one.projects = {"alpha"};
  one.trigger = "api";
  SnapshotSummary before_restore = Snap("2026-11-20T10:50:00Z", "r0000000");
  before_restore.trigger = "pre-restore";
  SnapshotSummary older_full = Snap("2026-11-20T09:05:00Z", "f1000000");
  SnapshotSummary two = Snap("2026-11-20T10:45:00Z", "q0000000");  // another set of projects
  two.scope = "projects";
  two.projects = {"beta", "alpha"};
  RetentionPolicy p;
  p.keep_hourly = 2;
  auto d = ApplyRetention({full, one, before_restore, older_full, two}, p, kNow);
  std::map<std::string, RetentionDecision> by_id;
  for (const auto& x : d) by_id[x.snapshot_id] = x;
  // Both full snapshots keep their hourly slots, though newer snapshots of other kinds exist.
  EXPECT_THAT(by_id[full.id].reasons, ElementsAre("hourly 2026-11-20T10Z"));
  EXPECT_THAT(by_id[older_full.id].reasons, ElementsAre("hourly 2026-11-20T09Z"));
  EXPECT_THAT(by_id[one.id].reasons, ElementsAre("hourly 2026-11-20T10Z (projects alpha)"));
  EXPECT_THAT(by_id[two.id].reasons, ElementsAre("hourly 2026-11-20T10Z (projects alpha,beta)"));
  EXPECT_THAT(by_id[before_restore.id].reasons, ElementsAre("hourly 2026-11-20T10Z (pre-restore)"));
  EXPECT_EQ(RetentionGroup(two), "projects alpha,beta");

  // keep_last counts per kind too.
  RetentionPolicy last;
  last.keep_last = 1;
  d = ApplyRetention({full, one, before_restore, older_full}, last, kNow);
  by_id.clear();
  for (const auto& x : d) by_id[x.snapshot_id] = x;
  EXPECT_TRUE(by_id[full.id].keep);
  EXPECT_FALSE(by_id[older_full.id].keep);
  EXPECT_TRUE(by_id[one.id].keep);
  EXPECT_TRUE(by_id[before_restore.id].keep);
}

}  // namespace kb::repo
