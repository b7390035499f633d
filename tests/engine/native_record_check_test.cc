// What every record read must be before it is mapped (native_record_check.h).
#include "src/engine/native_record_check.h"

#include <gtest/gtest.h>

#include <string>

namespace crmbridge {
namespace {

NativeRecord Record(std::string id) {
  NativeRecord r;
  r.id = std::move(id);
  r.fields = {{"subject", "Kick-off with Åre Bygg"}, {"lines", {"a", "b"}}, {"n", 3}};
  return r;
}

TEST(NativeRecordCheckTest, AnOrdinaryRecordPasses) {
  EXPECT_TRUE(CheckNativeRecord(Record("1003")).ok());
  EXPECT_TRUE(CheckNativeRecord(Record(std::string(kMaxNativeIdBytes, '7'))).ok());
}

TEST(NativeRecordCheckTest, EachProblemIsNamed) {
  EXPECT_EQ(CheckNativeRecord(Record("")).message(), "its id is empty");
  EXPECT_EQ(CheckNativeRecord(Record(std::string(10240, '7'))).message(),
            "its id is 10240 bytes long (at most 512)");
  EXPECT_EQ(CheckNativeRecord(Record("10\n03")).message(), "its id holds a control character");
  EXPECT_EQ(CheckNativeRecord(Record("10\xC3")).message(), "its id is not UTF-8");

  NativeRecord nul = Record("1");
  nul.fields["subject"] = std::string("a\0b", 3);
  EXPECT_EQ(CheckNativeRecord(nul).message(), "field 'subject' holds a NUL byte");
  NativeRecord bytes = Record("1");
  bytes.fields["lines"] = {"ok", "\xFF\xFE"};
  EXPECT_EQ(CheckNativeRecord(bytes).message(), "field 'lines' holds bytes that are not UTF-8");
  NativeRecord key = Record("1");
  key.key = std::string("k\0", 2);
  EXPECT_EQ(CheckNativeRecord(key).message(), "its crmbridge key holds a NUL byte");

  NativeRecord undecoded = Record("1");
  undecoded.invalid = "its 'archived' is not true or false";
  EXPECT_EQ(CheckNativeRecord(undecoded).message(), "its 'archived' is not true or false");
}

// Text is stepped over a word at a time: a NUL byte or a bad sequence is found at any offset,
// in long text as in short.
TEST(NativeRecordCheckTest, ANulOrABadSequenceIsFoundAnywhereInTheText) {
  for (size_t at = 0; at < 40; ++at) {
    std::string text(40, 'a');
    NativeRecord nul = Record("1");
    nul.fields["body"] = std::string(text).replace(at, 1, 1, '\0');
    EXPECT_EQ(CheckNativeRecord(nul).message(), "field 'body' holds a NUL byte") << at;
    NativeRecord bad = Record("1");
    bad.fields["body"] = std::string(text).replace(at, 1, "\xC3(");
    EXPECT_EQ(CheckNativeRecord(bad).message(), "field 'body' holds bytes that are not UTF-8") << at;
    NativeRecord good = Record("1");
    good.fields["body"] = std::string(text).replace(at, 1, "\xC3\xB6");
    EXPECT_TRUE(CheckNativeRecord(good).ok()) << at;
  }
}

TEST(NativeRecordCheckTest, ShownIdIsShort) {
  EXPECT_EQ(ShownId(""), "(no id)");
  EXPECT_EQ(ShownId("1003"), "1003");
  EXPECT_EQ(ShownId(std::string(100, 'x')), std::string(64, 'x') + "... (100 bytes)");
}

}  // namespace
}  // namespace crmbridge
