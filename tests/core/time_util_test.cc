// Timestamps and durations as configs, flags and the vendor APIs write them.
#include "src/core/time_util.h"

#include <gtest/gtest.h>

#include <limits>

namespace crmbridge {
namespace {

using std::chrono::milliseconds;

TEST(TimeUtilTest, DurationsInEveryUnit) {
  EXPECT_EQ(ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(ParseDuration("30s"), milliseconds(30'000));
  EXPECT_EQ(ParseDuration(" 5m "), milliseconds(300'000));
  EXPECT_EQ(ParseDuration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(ParseDuration("7d"), milliseconds(604'800'000));
  for (const char* bad : {"", "5", "m", "5 minutes", "-5m", "1.5h", "5mm"})
    EXPECT_FALSE(ParseDuration(bad).has_value()) << bad;
}

TEST(TimeUtilTest, DurationsLongerThanAHundredYearsAreRefusedNotOverflowed) {
  EXPECT_EQ(ParseDuration("36500d"), kMaxDuration);
  EXPECT_EQ(ParseDuration("876000h"), kMaxDuration);
  for (const char* bad : {"36501d", "999999999999d", "999999999999h", "999999999999m"})
    EXPECT_FALSE(ParseDuration(bad).has_value()) << bad;
  EXPECT_EQ(ParseDuration("999999999999ms"), std::chrono::milliseconds(999999999999LL));
}

TEST(TimeUtilTest, IsoTimestampsRoundTrip) {
  const auto ms = ParseIsoUtcMillis("2026-11-23T09:00:00.250Z");
  ASSERT_TRUE(ms.has_value());
  EXPECT_EQ(FormatIsoUtc(*ms, true), "2026-11-23T09:00:00.250Z");
  EXPECT_EQ(FormatIsoUtc(*ms, false), "2026-11-23T09:00:00Z");
  EXPECT_FALSE(ParseIsoUtcMillis("23.11.2026").has_value());
}

TEST(TimeUtilTest, ADateNotOnTheCalendarIsNoDateNotTheNextOne) {
  for (const char* bad : {"2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-00T00:00:00Z",
                          "2026--1-05T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T23:60:00Z",
                          "2026-01-01T23:59:60Z", "2025-02-29T00:00:00Z"})
    EXPECT_FALSE(ParseIsoUtcMillis(bad).has_value()) << bad;
  EXPECT_TRUE(ParseIsoUtcMillis("2028-02-29T23:59:59Z").has_value()) << "a leap day";
}

TEST(TokenRenewalTest, RenewsAMarginEarlyOrHalfWayThroughAShortLife) {
  constexpr int64_t kNow = 1767225600000LL;
  EXPECT_EQ(TokenRenewalMs(kNow, 3599, 300), kNow + 3299 * 1000);
  EXPECT_EQ(TokenRenewalMs(kNow, 400, 300), kNow + 200 * 1000);
  EXPECT_EQ(TokenRenewalMs(kNow, 1, 300), kNow + 1000);
}

// expires_in is the token endpoint's number: whatever it says, the time computed is sane and the
// arithmetic cannot overflow (an endpoint answered 66666666666663299 while fuzzed).
TEST(TokenRenewalTest, ALifetimeOutOfRangeIsASecondOrADay) {
  constexpr int64_t kNow = 1767225600000LL;
  for (const int64_t lifetime : {int64_t{0}, int64_t{-5}, std::numeric_limits<int64_t>::min()})
    EXPECT_EQ(TokenRenewalMs(kNow, lifetime, 300), kNow + 1000) << lifetime;
  for (const int64_t lifetime : {int64_t{86'401}, int64_t{66666666666663299},
                                 std::numeric_limits<int64_t>::max()})
    EXPECT_EQ(TokenRenewalMs(kNow, lifetime, 300), kNow + (86'400 - 300) * 1000) << lifetime;
}

}  // namespace
}  // namespace crmbridge
