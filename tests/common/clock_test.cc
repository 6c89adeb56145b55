#include "common/clock.h"

#include <gtest/gtest.h>

namespace kb {
namespace {

TEST(ClockTest, FormatsUtcWithMillisecondsAndZ) {
  EXPECT_EQ(FormatIso8601(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatIso8601(1795688400123), "2026-11-26T10:20:00.123Z");
}

TEST(ClockTest, ParsesWhatItFormats) {
  for (int64_t ms : {int64_t{0}, int64_t{951782400000}, int64_t{1795688400123}}) {
    EXPECT_EQ(ParseIso8601(FormatIso8601(ms)), ms);
  }
}

TEST(ClockTest, ParsesDatesOffsetsAndFractions) {
  EXPECT_EQ(ParseIso8601("2026-11-26"), 1795651200000);
  EXPECT_EQ(ParseIso8601("2026-11-26T10:20:00Z"), 1795688400000);
  EXPECT_EQ(ParseIso8601("2026-11-26T12:20:00+02:00"), 1795688400000);
  EXPECT_EQ(ParseIso8601("2026-11-26T10:20:00.5Z"), 1795688400500);
  EXPECT_EQ(ParseIso8601("2000-02-29T00:00:00Z"), 951782400000);
}

TEST(ClockTest, RejectsMalformedTimes) {
  for (const char* bad : {"", "yesterday", "2026-13-01", "2026-11-26T10:20:00", "2026-11-26T25:00:00Z",
                          "2026-11-26T10:20:00Zjunk", "2026-11-26T10:20:00.Z", "2026/11/26"}) {
    EXPECT_FALSE(ParseIso8601(bad).has_value()) << bad;
  }
}

TEST(ClockTest, ManualClockMovesOnlyWhenTold) {
  ManualClock c(1000);
  EXPECT_EQ(c.NowMillis(), 1000);
  c.Advance(500);
  EXPECT_EQ(c.NowMillis(), 1500);
}

}  // namespace
}  // namespace kb
