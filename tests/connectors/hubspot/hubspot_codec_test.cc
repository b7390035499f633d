// HubSpot JSON <-> NativeRecord and the search cursor, as pure functions.
#include "connectors/hubspot/hubspot_codec.h"

#include <gtest/gtest.h>

namespace crmbridge::hubspot {
namespace {

using nlohmann::json;

TEST(HubSpotCodecTest, ContactsUseTheirOwnModifiedProperty) {
  EXPECT_EQ(ModifiedProperty("contacts"), "lastmodifieddate");
  EXPECT_EQ(ModifiedProperty("tickets"), "hs_lastmodifieddate");
  EXPECT_EQ(ModifiedProperty("notes"), "hs_lastmodifieddate");
}

TEST(HubSpotCodecTest, ParsesIsoAndEpochTimestamps) {
  EXPECT_EQ(ParseTimestamp("2024-08-15T17:09:13.648Z"), 1723741753648);
  EXPECT_EQ(ParseTimestamp("1723741753648"), 1723741753648);
  EXPECT_EQ(ParseTimestamp(json(1723741753648)), 1723741753648);
  EXPECT_EQ(ParseTimestamp(""), 0);
  EXPECT_EQ(ParseTimestamp(json()), 0);
  EXPECT_EQ(ParseTimestamp("yesterday"), 0);
  EXPECT_EQ(ParseTimestamp("99999999999999999999999"), 0) << "overflow is unknown, not a throw";
}

TEST(HubSpotCodecTest, PropertyValuesAreWrittenAsStrings) {
  EXPECT_EQ(PropertyString("x"), "x");
  EXPECT_EQ(PropertyString(17), "17");
  EXPECT_EQ(PropertyString(true), "true");
  EXPECT_EQ(PropertyString(json()), "");
}

TEST(HubSpotCodecTest, ObjectBecomesARecordWithItsKey) {
  const json object = {{"id", "512"},
                       {"properties",
                        {{"subject", "Onboarding"},
                         {"content", nullptr},
                         {"crmbridge_id", "c-1"},
                         {"hs_lastmodifieddate", "2024-08-15T17:09:13.648Z"}}},
                       {"archived", false}};
  auto r = RecordFromObject(object, "hs_lastmodifieddate", "crmbridge_id");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->id, "512");
  EXPECT_EQ(r->fields["subject"], "Onboarding");
  EXPECT_TRUE(r->fields["content"].is_null()) << "values stay as returned";
  EXPECT_EQ(r->key, "c-1");
  EXPECT_EQ(r->modified_ms, 1723741753648);
  EXPECT_FALSE(r->deleted);
}

TEST(HubSpotCodecTest, FallsBackToUpdatedAtAndRejectsObjectsWithoutId) {
  auto r = RecordFromObject({{"id", "1"}, {"updatedAt", "2024-01-01T00:00:00Z"}},
                            "hs_lastmodifieddate", "crmbridge_id");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->modified_ms, 1704067200000);
  EXPECT_TRUE(r->key.empty());
  EXPECT_EQ(RecordFromObject({{"properties", json::object()}}, "x", "y").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(RecordFromObject(json::array(), "x", "y").status().code(),
            StatusCode::kInvalidArgument);
  // fuzz/corpus/hubspot/repro-empty-id.txt: an empty id is no id.
  EXPECT_EQ(RecordFromObject({{"id", ""}}, "x", "y").status().code(), StatusCode::kInvalidArgument);
}

// A survivor of merges lists the ids it absorbed; empty entries are none.
TEST(HubSpotCodecTest, MergedObjectIdsAreTheIdsARecordAbsorbed) {
  auto r = RecordFromObject(
      {{"id", "7"}, {"properties", {{"hs_merged_object_ids", "12;;19"}, {"name", "Acme"}}}},
      "hs_lastmodifieddate", "crmbridge_id");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->merged_ids, (std::vector<std::string>{"12", "19"}));
  EXPECT_TRUE(r->merged_into.empty());
  auto plain = RecordFromObject({{"id", "8"}, {"properties", {{"hs_merged_object_ids", nullptr}}}},
                                "hs_lastmodifieddate", "crmbridge_id");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->merged_ids.empty());
}

TEST(HubSpotCodecTest, CursorRoundTrips) {
  SearchCursor c;
  c.since_ms = 1700000000000;
  c.window_ms = 1699999999000;
  c.max_seen_ms = 1700000000500;
  c.after = 200;
  c.tie_ms = 1700000000001;
  c.last_id = "512";
  auto back = DecodeCursor(EncodeCursor(c));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->since_ms, c.since_ms);
  EXPECT_EQ(back->window_ms, c.window_ms);
  EXPECT_EQ(back->max_seen_ms, c.max_seen_ms);
  EXPECT_EQ(back->after, 200);
  EXPECT_EQ(back->tie_ms, c.tie_ms);
  EXPECT_EQ(back->last_id, "512");
}

TEST(HubSpotCodecTest, BetweenRunsACursorIsOnlyItsPosition) {
  SearchCursor c;
  c.since_ms = 42;
  EXPECT_EQ(EncodeCursor(c), R"({"since":42})");
  auto empty = DecodeCursor("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->since_ms, 0);
  EXPECT_EQ(empty->window_ms, -1) << "an empty cursor starts a new pass from the beginning";
}

TEST(HubSpotCodecTest, RejectsMalformedCursors) {
  for (const char* bad : {"{oops", "[]", R"({"after":3})", R"({"since":"42"})",
                          R"({"since":1,"after":20000})", R"({"since":1,"last_id":7})"}) {
    EXPECT_EQ(DecodeCursor(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace crmbridge::hubspot
