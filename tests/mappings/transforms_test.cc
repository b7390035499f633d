// The typed transforms: what each reads from a native value and writes back, including the
// values it must refuse.
#include "mappings/transforms.h"

#include <gtest/gtest.h>

namespace crmbridge {
namespace {

using nlohmann::json;

json In(const Transform& t, const json& v) {
  auto r = t.In(v);
  EXPECT_TRUE(r.ok()) << t.Name() << " In(" << v.dump() << "): " << r.status().ToString();
  return r.ok() ? *r : json("<error>");
}
json Out(const Transform& t, const json& v) {
  auto r = t.Out(v);
  EXPECT_TRUE(r.ok()) << t.Name() << " Out(" << v.dump() << "): " << r.status().ToString();
  return r.ok() ? *r : json("<error>");
}

// Value tables match a choice value however its API sends it: as a number or as its text.
TEST(TransformsTest, NativeValuesMatchAsJsonOrAsTheTextOfANumberOrBoolean) {
  EXPECT_TRUE(NativeEquals(json("Ny"), json("Ny")));
  EXPECT_FALSE(NativeEquals(json("Ny"), json("Avslutad")));
  EXPECT_TRUE(NativeEquals(json(100000000), json("100000000")));
  EXPECT_TRUE(NativeEquals(json("100000000"), json(100000000u)));
  EXPECT_TRUE(NativeEquals(json(-3), json("-3")));
  EXPECT_FALSE(NativeEquals(json(100000000), json("100000001")));
  EXPECT_FALSE(NativeEquals(json(100000000), json(" 100000000")));
  EXPECT_TRUE(NativeEquals(json(true), json("true")));
  EXPECT_FALSE(NativeEquals(json(true), json("1")));
  EXPECT_FALSE(NativeEquals(json(1), json(true)));
  EXPECT_TRUE(NativeEquals(json(5), json(5u)));
  EXPECT_TRUE(NativeEquals(json(1.0), json(1)));
  EXPECT_FALSE(NativeEquals(json(1.5), json("1.5")));  // a fraction is no choice value
  EXPECT_FALSE(NativeEquals(json(nullptr), json("null")));
  EXPECT_TRUE(NativeEquals(json(nullptr), json(nullptr)));
}

TEST(TransformsTest, DomainTellsTheSameWebsiteHoweverItIsWritten) {
  auto domain = NewDomain();
  for (const char* written : {"acme.se", "https://www.acme.se/", "http://WWW.Acme.SE:8080/about?x=1",
                              " acme.se. ", "https://user@www.acme.se#top"}) {
    EXPECT_EQ(In(*domain, written), "acme.se") << written;
    EXPECT_EQ(Out(*domain, written), "acme.se") << written;
  }
  EXPECT_EQ(In(*domain, "shop.acme.se"), "shop.acme.se") << "only www. is not the company's own";
  EXPECT_EQ(In(*domain, nullptr), nullptr);
}

TEST(TransformsTest, BooleanReadsCommonFormsOrTheConfiguredOnes) {
  auto plain = NewBoolean(std::nullopt, std::nullopt);
  for (const json& yes : {json(true), json("Yes"), json("1"), json(1), json("true")}) EXPECT_EQ(In(*plain, yes), true);
  for (const json& no : {json(false), json("no"), json("0"), json(0)}) EXPECT_EQ(In(*plain, no), false);
  EXPECT_TRUE(In(*plain, "").is_null());
  EXPECT_FALSE(plain->In("maybe").ok());
  EXPECT_EQ(Out(*plain, true), true);

  auto flags = NewBoolean(json("yes"), json("no"));  // Totango's Contact flag
  EXPECT_EQ(In(*flags, "yes"), true);
  EXPECT_EQ(Out(*flags, false), "no");
  EXPECT_FALSE(flags->In("Yes please").ok());
}

TEST(TransformsTest, NumbersInSwedishFormatRoundTrip) {
  NumberFormat se;
  se.text = true;
  se.decimal = ",";
  se.thousands = " ";
  se.decimals = 2;
  auto n = NewNumber(se);
  EXPECT_EQ(In(*n, "1 234 567,50"), 1234567.5);
  EXPECT_EQ(Out(*n, 1234567.5), "1 234 567,50");
  EXPECT_EQ(Out(*n, -1000), "-1 000,00");
  EXPECT_EQ(In(*n, Out(*n, 98765.25)), 98765.25);
  EXPECT_FALSE(n->In("12 kr").ok());

  auto plain = NewNumber(NumberFormat{});
  EXPECT_EQ(In(*plain, "17"), 17);
  EXPECT_EQ(Out(*plain, "17.5"), 17.5) << "a number in text from another system";
}

TEST(TransformsTest, DatesConvertBetweenNativeFormsAndIsoUtc) {
  DateFormat ms;
  ms.pattern = "epoch_ms";
  auto epoch = NewDate(ms);
  EXPECT_EQ(In(*epoch, "1795424400000"), "2026-11-23T09:00:00Z");
  EXPECT_EQ(Out(*epoch, "2026-11-23T09:00:00Z"), 1795424400000);

  DateFormat local;
  local.pattern = "%d.%m.%Y %H:%M";
  local.offset_minutes = 60;  // the data is kept in UTC+01:00
  auto d = NewDate(local);
  EXPECT_EQ(In(*d, "23.11.2026 10:40"), "2026-11-23T09:40:00Z");
  EXPECT_EQ(Out(*d, "2026-11-23T09:40:00Z"), "23.11.2026 10:40");
  EXPECT_FALSE(d->In("2026-11-23").ok());

  DateFormat day;
  day.pattern = "date";
  auto plain_day = NewDate(day);
  EXPECT_EQ(In(*plain_day, "2026-12-01"), "2026-12-01");
  EXPECT_EQ(Out(*plain_day, "2026-12-01"), "2026-12-01");
}

// Epoch seconds or milliseconds that no int64_t of milliseconds holds are no time: refused, never
// multiplied past the range.
TEST(TransformsTest, EpochValuesPastTheRangeAreRefused) {
  DateFormat s;
  s.pattern = "epoch_s";
  auto seconds = NewDate(s);
  EXPECT_EQ(In(*seconds, "1795424400"), "2026-11-23T09:00:00Z");
  EXPECT_EQ(In(*seconds, 1795424400.9), "2026-11-23T09:00:00Z");
  EXPECT_FALSE(seconds->In("8865281135233349858").ok());
  EXPECT_FALSE(seconds->In(json(9'000'000'000'000'000'000ULL)).ok());
  EXPECT_FALSE(seconds->In(json(18'446'744'073'709'551'615ULL)).ok());
  EXPECT_FALSE(seconds->In(json(1e300)).ok());
  DateFormat ms;
  ms.pattern = "epoch_ms";
  auto millis = NewDate(ms);
  EXPECT_FALSE(millis->In(json(-1e19)).ok());
  EXPECT_FALSE(millis->In(json(18'446'744'073'709'551'615ULL)).ok());
}

// A '%' before a NUL in a pattern is no field: the text must hold the NUL itself, and nothing is
// read or written past the six fields.
TEST(TransformsTest, APercentBeforeANulIsNoField) {
  DateFormat odd;
  odd.pattern = std::string("%d.%m.%Y %\0H", 12);
  auto d = NewDate(odd);
  EXPECT_FALSE(d->In("23.11.2026 10").ok());
  EXPECT_EQ(Out(*d, "2026-11-23T09:40:00Z"), "23.11.2026 H");
}

// A number in text past what an int64_t holds is read as a double, not converted to an integer.
TEST(TransformsTest, ANumberPastTheIntegerRangeStaysADouble) {
  auto number = NewNumber(NumberFormat{});
  EXPECT_EQ(In(*number, "10000000000000000000000000000000000"), json(1e34));
  EXPECT_EQ(In(*number, "-9300000000000000000"), json(-9.3e18));
  EXPECT_EQ(In(*number, "42"), json(42));
}

TEST(TransformsTest, TemplatesWrapOnTheWayOutAndUnwrapOnTheWayIn) {
  auto t = NewTemplate("SE {} – onboarding");
  EXPECT_EQ(Out(*t, "Bygg AB"), "SE Bygg AB – onboarding");
  EXPECT_EQ(In(*t, "SE Bygg AB – onboarding"), "Bygg AB");
  EXPECT_EQ(In(*t, "Typed by hand"), "Typed by hand") << "values of another shape pass as they are";
}

}  // namespace
}  // namespace crmbridge
