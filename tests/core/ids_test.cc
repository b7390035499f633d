#include "src/core/ids.h"

#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <set>
#include <string>

namespace crmbridge {
namespace {

TEST(IdsTest, RandomUuidsAreVersion4) {
  const std::regex v4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewUuid();
    EXPECT_TRUE(std::regex_match(id, v4)) << id;
    EXPECT_TRUE(seen.insert(id).second) << "repeated: " << id;
  }
}

TEST(IdsTest, TimeOrderedUuidsAreVersion7AndSortInTheOrderTheyWereMade) {
  const std::regex v7("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  const int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  // Far more than 4096 (the counter's range) in a few milliseconds: the counter carries over.
  std::string previous;
  for (int i = 0; i < 20000; ++i) {
    const std::string id = NewTimeOrderedUuid();
    ASSERT_TRUE(std::regex_match(id, v7)) << id;
    ASSERT_LT(previous, id) << "made after " << previous;
    previous = id;
  }
  // The first 48 bits are the time in milliseconds, no earlier than when the loop began.
  const std::string first = NewTimeOrderedUuid();
  const int64_t ms = std::stoll(first.substr(0, 8) + first.substr(9, 4), nullptr, 16);
  EXPECT_GE(ms, before);
  EXPECT_LT(ms, before + 60'000);
}

}  // namespace
}  // namespace crmbridge
