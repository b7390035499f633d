// Hashes stored in state files (a record's read and settled digests) must not change with the
// code that computes them: an existing state file would read every record as changed.
#include "src/core/hash.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>

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
  // The first 128 bits of its SHA-256: what an older crmbridge stored is that digest's start.
  EXPECT_EQ(HashJson(v), "602f1f9de6ca1d463a44d23c1de72f4a");
  for (const json& other : {json(nullptr), json(1.5), json("x"), json::array(), json::object(),
                            json{{"a", {{"b", {1, 2.25, true, nullptr}}}}}})
    EXPECT_EQ(HashJson(other), Sha256Hex(other.dump()).substr(0, 32)) << other.dump();
}

TEST(HashTest, HashJsonGivesTheSameDigestOnEveryThread) {
  const json v = {{"subject", "Onboarding – Pågår"}, {"n", 7}};
  const std::string here = HashJson(v);
  std::string there;
  std::thread t([&] { there = HashJson(v); });
  t.join();
  EXPECT_EQ(there, here);
  EXPECT_EQ(HashJson(json{{"n", 8}}), Sha256Hex(R"({"n":8})").substr(0, 32)) << "a longer text before it left nothing behind";
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

TEST(HashTest, ParseLowerHexIsTheInverseOfLowerHex) {
  const unsigned char bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
  const std::string hex = LowerHex(bytes, sizeof bytes);
  EXPECT_EQ(hex, "00017f80abff");
  unsigned char back[sizeof bytes];
  ASSERT_TRUE(ParseLowerHex(hex, back));
  EXPECT_EQ(0, std::memcmp(back, bytes, sizeof bytes));
  EXPECT_TRUE(ParseLowerHex("", back));
  for (const std::string_view not_hex :
       {std::string_view("0"), std::string_view("0G"), std::string_view("AB"),
        std::string_view("0x"), std::string_view(" 0"), std::string_view("0\0", 2)})
    EXPECT_FALSE(ParseLowerHex(not_hex, back)) << not_hex;
}

}  // namespace
}  // namespace crmbridge
