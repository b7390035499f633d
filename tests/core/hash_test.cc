// Hashes stored in state files (a record's read and settled digests) must not change with the
// code that computes them: an existing state file would read every record as changed.
#include "src/core/hash.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "src/core/utf8.h"

namespace crmbridge {
namespace {

using nlohmann::json;

TEST(HashTest, Sha256HexIsTheStandardDigest) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(HashTest, HashJsonIsTheDigestOfTheCompactText) {
  const json v = {{"tags", {"a", "\n"}}, {"seats", 12}, {"name", "SE Lindqvist & Söner"}};
  // Keys sorted, no spaces, UTF-8 as is, control characters escaped.
  EXPECT_EQ(HashJson(v), "602f1f9de6ca1d463a44d23c1de72f4a53c878f6c3d00abad6b82b2420a1b427");
  for (const json& other : {json(nullptr), json(1.5), json("x"), json::array(), json::object(),
                            json{{"a", {{"b", {1, 2.25, true, nullptr}}}}}})
    EXPECT_EQ(HashJson(other), Sha256Hex(other.dump())) << other.dump();
}

// HashJson writes the text itself for the common values and leaves the rest to dump(): every
// kind of value, alone and nested, must come out as dump() writes it.
TEST(HashTest, HashJsonWritesWhatDumpWritesForEveryKindOfValue) {
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
    EXPECT_EQ(HashJson(v), Sha256Hex(v.dump())) << v.dump();
    const json in_record = {{"field", v}, {"other", "after it"}};
    EXPECT_EQ(HashJson(in_record), Sha256Hex(in_record.dump())) << in_record.dump();
  }
  // Text that is not UTF-8 is refused as dump() refuses it.
  EXPECT_THROW(HashJson(json{{"bad", "\xc3\x28"}}), json::type_error);
}

TEST(HashTest, HashJsonGivesTheSameDigestOnEveryThread) {
  const json v = {{"subject", "Onboarding – Pågår"}, {"n", 7}};
  const std::string here = HashJson(v);
  std::string there;
  std::thread t([&] { there = HashJson(v); });
  t.join();
  EXPECT_EQ(there, here);
  EXPECT_EQ(HashJson(json{{"n", 8}}), Sha256Hex(R"({"n":8})")) << "a longer text before it left nothing behind";
}

TEST(Utf8Test, ValidityIsJudgedAfterAnyRunOfAscii) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii text"));
  EXPECT_TRUE(IsValidUtf8("Söner – 🙂"));
  EXPECT_FALSE(IsValidUtf8(std::string("ascii then \xC3", 12)));     // cut sequence at the end
  EXPECT_FALSE(IsValidUtf8(std::string("ascii then \xED\xA0\x80")));  // a surrogate
  EXPECT_FALSE(IsValidUtf8(std::string("\x80 lone continuation")));
  // ASCII is stepped over eight bytes at a time: a bad or good sequence is found at every offset
  // from a word boundary, and at the very end.
  for (size_t ascii = 0; ascii < 20; ++ascii) {
    const std::string before(ascii, 'a');
    EXPECT_TRUE(IsValidUtf8(before + "\xC3\xB6" + before)) << ascii;
    EXPECT_FALSE(IsValidUtf8(before + "\xC3")) << ascii;
    EXPECT_FALSE(IsValidUtf8(before + "\xC3(" + before)) << ascii;
    EXPECT_FALSE(IsValidUtf8(before + "\xFF" + before)) << ascii;
    EXPECT_FALSE(IsValidUtf8(before + "\xC0\xAF" + before)) << ascii;  // an overlong '/'
  }
}

}  // namespace
}  // namespace crmbridge
