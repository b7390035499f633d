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

TEST(NativeRecordCheckTest, ShownIdIsShort) {
  EXPECT_EQ(ShownId(""), "(no id)");
  EXPECT_EQ(ShownId("1003"), "1003");
  EXPECT_EQ(ShownId(std::string(100, 'x')), std::string(64, 'x') + "... (100 bytes)");
}

}  // namespace
}  // namespace crmbridge
