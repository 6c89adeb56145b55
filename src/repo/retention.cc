// Retention policy evaluation (restic-style `forget` semantics) and the duration syntax of
// keep-within flags. Semantics and grammar: retention.h.
#include "repo/retention.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <vector>

#include "common/clock.h"

namespace kb::repo {
namespace {

constexpr int64_t kSecondMs = 1000;
constexpr int64_t kMinuteMs = 60 * kSecondMs;
constexpr int64_t kHourMs = 60 * kMinuteMs;
constexpr int64_t kDayMs = 24 * kHourMs;
// Longest duration ParseDuration accepts: far beyond any retention, far below int64 overflow.
constexpr int64_t kMaxDurationMs = 10'000 * 365 * kDayMs;

// The default policy (RetentionPolicy::Default): hourly for 7 days, daily for 30 days.
constexpr int kDefaultKeepHourly = 7 * 24;
constexpr int kDefaultKeepDaily = 30;

struct DurationUnit {
  std::string_view name;
  int64_t ms;
};
// Largest first: the order ParseDuration requires.
constexpr std::array<DurationUnit, 7> kUnits{{{"y", 365 * kDayMs},
                                              {"mo", 30 * kDayMs},
                                              {"w", 7 * kDayMs},
                                              {"d", kDayMs},
                                              {"h", kHourMs},
                                              {"m", kMinuteMs},
                                              {"s", kSecondMs}}};

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::chrono::year_month_day CivilDay(int64_t day_number) {
  return std::chrono::year_month_day{std::chrono::sys_days{std::chrono::days{day_number}}};
}

// Bucket of a time for one rule: a number that is equal for times in the same bucket, and a
// label for the reason.
struct Bucket {
  int64_t key;
  std::string label;
};

Bucket HourBucket(int64_t ms) {
  int64_t hour = FloorDiv(ms, kHourMs);
  auto ymd = CivilDay(FloorDiv(hour, 24));
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hour - FloorDiv(hour, 24) * 24));
  return {hour, buf};
}

Bucket DayBucket(int64_t ms) {
  int64_t day = FloorDiv(ms, kDayMs);
  auto ymd = CivilDay(day);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return {day, buf};
}

// ISO-8601 week: weeks start on Monday; a week belongs to the year of its Thursday.
Bucket WeekBucket(int64_t ms) {
  int64_t day = FloorDiv(ms, kDayMs);
  int64_t weekday = day - FloorDiv(day + 3, 7) * 7 + 3;  // 0 = Monday (1970-01-01 was a Thursday)
  int64_t thursday = day - weekday + 3;
  auto ymd = CivilDay(thursday);
  int64_t jan1 =
      std::chrono::sys_days{ymd.year() / std::chrono::January / 1}.time_since_epoch().count();
  int week = static_cast<int>((thursday - jan1) / 7 + 1);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-W%02d", static_cast<int>(ymd.year()), week);
  // Monday of the week identifies it uniquely.
  return {day - weekday, buf};
}

Bucket MonthBucket(int64_t ms) {
  auto ymd = CivilDay(FloorDiv(ms, kDayMs));
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()));
  return {
      static_cast<int64_t>(static_cast<int>(ymd.year())) * 12 + static_cast<unsigned>(ymd.month()),
      buf};
}

bool AllDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

bool RetentionPolicy::empty() const {
  return keep_last == 0 && keep_hourly == 0 && keep_daily == 0 && keep_weekly == 0 &&
         keep_monthly == 0 && keep_within_ms <= 0;
}

RetentionPolicy RetentionPolicy::Default() {
  RetentionPolicy p;
  p.keep_hourly = kDefaultKeepHourly;
  p.keep_daily = kDefaultKeepDaily;
  return p;
}

Result<int64_t> ParseDuration(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("invalid duration '" + std::string(text) + "': " + why +
                                   " (expected e.g. 90m, 36h, 7d, 2w, 1y2mo3d)");
  };
  if (text.empty()) return bad("empty");
  int64_t total = 0;
  size_t next_unit = 0;  // index into kUnits of the largest unit still allowed
  bool saw_minutes = false;
  bool saw_years_or_months = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t digits_end = pos;
    while (digits_end < text.size() && text[digits_end] >= '0' && text[digits_end] <= '9') {
      ++digits_end;
    }
    if (digits_end == pos) return bad("expected a number at position " + std::to_string(pos));
    if (digits_end - pos > 12) return bad("number too large");
    int64_t value = std::stoll(std::string(text.substr(pos, digits_end - pos)));
    size_t unit_end = digits_end;
    while (unit_end < text.size() && (text[unit_end] < '0' || text[unit_end] > '9')) ++unit_end;
    std::string_view unit = text.substr(digits_end, unit_end - digits_end);
    if (unit.empty()) return bad("number without a unit");
    size_t u = 0;
    while (u < kUnits.size() && kUnits[u].name != unit) ++u;
    if (u == kUnits.size()) return bad("unknown unit '" + std::string(unit) + "'");
    if (u < next_unit) return bad("units must go from largest to smallest, each at most once");
    if (unit == "m") saw_minutes = true;
    if (u <= 1) saw_years_or_months = true;
    if (saw_minutes && saw_years_or_months) {
      return bad("'m' means minutes and does not combine with y or mo; write 'mo' for months");
    }
    next_unit = u + 1;
    if (value > kMaxDurationMs / kUnits[u].ms) return bad("too long");
    total += value * kUnits[u].ms;
    if (total > kMaxDurationMs) return bad("too long");
    pos = unit_end;
  }
  return total;
}

std::string FormatDuration(int64_t ms) {
  if (ms < kSecondMs) return "0s";
  std::string out;
  int64_t rest = ms;
  for (const DurationUnit& unit : {kUnits[3], kUnits[4], kUnits[5], kUnits[6]}) {
    int64_t n = rest / unit.ms;
    rest -= n * unit.ms;
    if (n > 0) out += std::to_string(n) + std::string(unit.name);
  }
  return out;
}

std::optional<int64_t> SnapshotTimeMillis(const SnapshotSummary& snapshot) {
  if (auto t = ParseIso8601(snapshot.time)) return t;
  // "YYYYMMDDTHHMMSSZ-xxxxxxxx"
  std::string_view id = snapshot.id;
  if (id.size() < 16 || id[8] != 'T' || id[15] != 'Z' || !AllDigits(id.substr(0, 8)) ||
      !AllDigits(id.substr(9, 6))) {
    return std::nullopt;
  }
  std::string iso = std::string(id.substr(0, 4)) + "-" + std::string(id.substr(4, 2)) + "-" +
                    std::string(id.substr(6, 2)) + "T" + std::string(id.substr(9, 2)) + ":" +
                    std::string(id.substr(11, 2)) + ":" + std::string(id.substr(13, 2)) + "Z";
  return ParseIso8601(iso);
}

std::string RetentionGroup(const SnapshotSummary& s) {
  if (s.trigger == "pre-restore") return "pre-restore";
  if (s.scope == "full" || s.scope.empty()) return "full";  // (no scope: written before scopes)
  std::vector<std::string> names = s.projects;
  std::sort(names.begin(), names.end());
  std::string g = "projects";
  for (size_t i = 0; i < names.size(); ++i) g += (i ? "," : " ") + names[i];
  return g;
}

std::vector<RetentionDecision> ApplyRetention(const std::vector<SnapshotSummary>& snapshots,
                                              const RetentionPolicy& policy, int64_t now_ms) {
  struct Item {
    const SnapshotSummary* snapshot;
    std::optional<int64_t> time;
  };
  std::vector<Item> items;
  items.reserve(snapshots.size());
  for (const SnapshotSummary& s : snapshots) {
    // An unreadable manifest takes no part in the rules (it is kept, below).
    items.push_back({&s, s.problem.empty() ? SnapshotTimeMillis(s) : std::nullopt});
  }
  // Newest first; snapshots without a readable time go last (they are kept regardless).
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.time.has_value() != b.time.has_value()) return a.time.has_value();
    if (a.time && *a.time != *b.time) return *a.time > *b.time;
    return a.snapshot->id > b.snapshot->id;
  });

  struct Rule {
    int remaining;  // negative: unlimited
    std::string_view name;
    Bucket (*bucket)(int64_t);
    std::optional<int64_t> last_key;
  };
  // The policy applies per kind of snapshot, so that a one-project or pre-restore snapshot never
  // takes the hourly (daily, ...) slot of a full one: full snapshots; pre-restore snapshots;
  // snapshots of each set of projects.
  struct Group {
    std::vector<Rule> rules;
    int last_remaining = 0;
  };
  auto new_group = [&policy] {
    Group g;
    if (policy.keep_hourly != 0) g.rules.push_back({policy.keep_hourly, "hourly", &HourBucket, {}});
    if (policy.keep_daily != 0) g.rules.push_back({policy.keep_daily, "daily", &DayBucket, {}});
    if (policy.keep_weekly != 0) g.rules.push_back({policy.keep_weekly, "weekly", &WeekBucket, {}});
    if (policy.keep_monthly != 0) {
      g.rules.push_back({policy.keep_monthly, "monthly", &MonthBucket, {}});
    }
    g.last_remaining = policy.keep_last;
    return g;
  };
  std::map<std::string, Group> groups;
  const bool empty = policy.empty();
  const std::string within_reason = "within " + FormatDuration(policy.keep_within_ms);

  std::vector<RetentionDecision> out;
  out.reserve(items.size());
  for (const Item& item : items) {
    RetentionDecision d;
    d.snapshot_id = item.snapshot->id;
    if (empty) {
      d.reasons.push_back("empty policy");
    } else if (!item.snapshot->problem.empty()) {
      d.reasons.push_back("unreadable manifest");
    } else if (!item.time) {
      d.reasons.push_back("unknown time");
    } else {
      const std::string group_name = RetentionGroup(*item.snapshot);
      auto [it, fresh] = groups.try_emplace(group_name);
      if (fresh) it->second = new_group();
      Group& group = it->second;
      // "hourly 2026-12-08 10h", and for snapshots other than full ones, of which kind.
      const std::string of = group_name == "full" ? "" : " (" + group_name + ")";
      if (group.last_remaining != 0) {
        d.reasons.push_back("last" + of);
        if (group.last_remaining > 0) --group.last_remaining;
      }
      // Sorted newest first, so a bucket's snapshots are consecutive and the first one seen is
      // the bucket's newest.
      for (Rule& rule : group.rules) {
        if (rule.remaining == 0) continue;
        Bucket b = rule.bucket(*item.time);
        if (rule.last_key && *rule.last_key == b.key) continue;
        rule.last_key = b.key;
        if (rule.remaining > 0) --rule.remaining;
        d.reasons.push_back(std::string(rule.name) + " " + b.label + of);
      }
      if (policy.keep_within_ms > 0 && *item.time >= now_ms - policy.keep_within_ms) {
        d.reasons.push_back(within_reason);
      }
    }
    d.keep = !d.reasons.empty();
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace kb::repo
