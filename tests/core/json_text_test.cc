// The compact JSON text that stored columns and digests are made of must be dump()'s, byte for
// byte: a state file written before would otherwise read every record as changed.
#include "src/core/json_text.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "src/core/hash.h"

namespace crmbridge {
namespace {

using nlohmann::json;

// CompactJson writes the text itself for the common values and leaves the rest to dump(): every
// kind of value, alone and nested, must come out as dump() writes it, and so hash as it.
TEST(JsonTextTest, TheTextIsWhatDumpWritesForEveryKindOfValue) {
  const std::vector<json> values = {
      json(nullptr), json(true), json(false), json(0), json(-1), json(INT64_MIN), json(INT64_MAX),
      json(UINT64_MAX), json(1.5), json(-0.0), json(1e300), json(0.1), json(3.0),
      json(std::numeric_limits<double>::quiet_NaN()), json(""), json("plain"),
      json("Onboarding – Pågår"), json("tab\there"), json("quote \" and \\ backslash"),
      json(std::string("nul \0 inside", 12)), json("\x7f del"), json("\x1f unit separator"),
      json("emoji \xf0\x9f\x98\x80"), json::array(), json::object(),
      json{{"b", 1}, {"a", {nullptr, "x", 2.5, json::array({json::object()})}}},
      json{{"key \"quoted\"", "v"}, {"ключ", "värde"}, {"", 0}},
      json{{"a", {{"b", {{"c", {1, -2, 3.25, "d\n"}}}}}}}};
  for (const json& v : values) {
    EXPECT_EQ(CompactJson(v), v.dump());
    EXPECT_EQ(HashJson(v), Sha256Hex(v.dump()).substr(0, 2 * kJsonHashBytes)) << v.dump();
    const json in_record = {{"field", v}, {"other", "after it"}};
    EXPECT_EQ(CompactJson(in_record), in_record.dump());
    std::string appended = "[";
    AppendCompactJson(in_record, &appended);
    EXPECT_EQ(appended, "[" + in_record.dump()) << "appended after what was there";
  }
  // Text that is not UTF-8 is refused as dump() refuses it.
  EXPECT_THROW(CompactJson(json{{"bad", "\xc3\x28"}}), json::type_error);
  EXPECT_THROW(HashJson(json{{"bad", "\xc3\x28"}}), json::type_error);
}

// A value nested past kMaxJsonDepth parses, and then overflows the stack where it is copied: it is
// refused before the parse. Brackets inside strings are text.
TEST(NestsDeeperThanTest, CountsArraysAndObjectsOutsideStrings) {
  EXPECT_FALSE(NestsDeeperThan(R"({"a":[{"b":[1]}]})", 4));
  EXPECT_TRUE(NestsDeeperThan(R"({"a":[{"b":[[1]]}]})", 4));
  EXPECT_FALSE(NestsDeeperThan(R"({"a":"[[[[[[{{{{", "b":"\"[[[["})", 1));
  EXPECT_FALSE(NestsDeeperThan("[]]]]][[]", 1)) << "closing brackets never count up";
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_TRUE(NestsDeeperThan(deep));
  EXPECT_TRUE(ParseJsonOrDiscarded(deep).is_discarded());
  const std::string fits = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_FALSE(ParseJsonOrDiscarded(fits).is_discarded());
  EXPECT_TRUE(ParseJsonOrDiscarded("{\"a\":").is_discarded());
}

}  // namespace
}  // namespace crmbridge
