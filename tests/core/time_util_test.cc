// Timestamps and durations as configs, flags and the vendor APIs write them.
#include "src/core/time_util.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace crmbridge
