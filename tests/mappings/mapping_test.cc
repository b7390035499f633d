// The mapping language: the shipped preset loads and round-trips, tables reverse through their
// preferred rows, and each mistake in a mapping file is reported at its exact position.
#include "mappings/mapping.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>

namespace crmbridge {
namespace {

using nlohmann::json;

const std::map<std::string, std::string> kSystems = {{"hubspot", "hubspot"},
                                                     {"dynamics365", "dynamics365"}};

std::string Preset() { return std::string(CRMBRIDGE_SOURCE_DIR) + "/mappings/presets/onboarding.yaml"; }

TEST(PresetTest, LoadsWithEverySystemAndEntity) {
  auto plan = LoadMappingPlan({Preset()}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_NE((*plan)->Find("hubspot", "onboarding"), nullptr);
  ASSERT_NE((*plan)->Find("dynamics365", "onboarding"), nullptr);
  EXPECT_EQ((*plan)->Find("hubspot", "onboarding")->params.at("pipeline"), "Order/faktura");
  EXPECT_EQ((*plan)->systems().size(), 2u);
}

TEST(PresetTest, HubSpotTicketRoundTripsThroughCanonical) {
  auto plan = LoadMappingPlan({Preset()}, kSystems);
  ASSERT_TRUE(plan.ok());
  const SystemEntityMapping& hs = *(*plan)->Find("hubspot", "onboarding");
  const char* stages[] = {"Ny", "Onboarding – Pågår", "Må följas upp", "Manuell uppföljning",
                          "Inaktiva kunder", "Avslutad"};
  for (const char* stage : stages) {
    json ticket = {{"subject", "SE Acme AB"},
                   {"content", "Signed via Dealbuilder"},
                   {"hs_pipeline_stage", stage},
                   {"hs_ticket_priority", "HIGH"}};
    auto canonical = MappingPlan::ToCanonical(hs, ticket);
    ASSERT_TRUE(canonical.ok()) << canonical.status().ToString();
    auto back = MappingPlan::ToNative(hs, canonical->fields, /*creating=*/true);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, ticket) << stage;
  }
}

TEST(PresetTest, ManyToOneStageUsesThePreferredRowBothWays) {
  auto plan = LoadMappingPlan({Preset()}, kSystems);
  ASSERT_TRUE(plan.ok());
  const SystemEntityMapping& d = *(*plan)->Find("dynamics365", "onboarding");
  auto a = MappingPlan::ToNative(d, {{"title", "x"}, {"stage", "manual_follow_up"}}, true);
  auto b = MappingPlan::ToNative(d, {{"title", "x"}, {"stage", "follow_up"}}, true);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)["crmb_onboardingstage"], 100000002);
  EXPECT_EQ((*b)["crmb_onboardingstage"], 100000002);
  EXPECT_EQ((*a)["name"], "x");
}

TEST(PresetTest, UnknownStageIsARecordLevelErrorNamingIt) {
  auto plan = LoadMappingPlan({Preset()}, kSystems);
  ASSERT_TRUE(plan.ok());
  const SystemEntityMapping& hs = *(*plan)->Find("hubspot", "onboarding");
  auto r = MappingPlan::ToCanonical(hs, {{"subject", "x"}, {"hs_pipeline_stage", "Okänd"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("\"Okänd\" is not in table hubspot_onboarding_stage"),
            std::string::npos)
      << r.status().message();
}

TEST(TransformTest, TrimDefaultTypesAndRequired) {
  char tmpl[] = "/tmp/crmbridge-map-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::ofstream(dir + "/m.yaml") << R"(version: 1
entities:
  contact:
    fields:
      email: {type: string, required: true}
      seats: {type: number}
      active: {type: boolean}
      country: {type: string}
systems:
  hubspot:
    contact:
      object: contacts
      fields:
        email: {native: email, transforms: [trim, lower]}
        seats: {native: seats}
        active: {native: is_active}
        country: {native: country, transforms: [{default: SE}]}
)";
  auto plan = LoadMappingPlan({dir + "/m.yaml"}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const SystemEntityMapping& m = *(*plan)->Find("hubspot", "contact");
  auto c = MappingPlan::ToCanonical(
      m, {{"email", "  Anna@Example.COM "}, {"seats", "17"}, {"is_active", "true"}, {"country", ""}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->fields["email"], "anna@example.com");
  EXPECT_EQ(c->fields["seats"], 17);
  EXPECT_EQ(c->fields["active"], true);
  EXPECT_EQ(c->fields["country"], "SE");
  auto bad = MappingPlan::ToCanonical(m, {{"email", "a@b.se"}, {"seats", "many"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"many\" is not a valid number"), std::string::npos);
  auto missing = MappingPlan::ToCanonical(m, {{"seats", "1"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("email: a value is required"), std::string::npos);
  std::system(("rm -rf " + dir).c_str());
}

struct Broken {
  std::string name;
  std::string text;
  std::string expected;
};

constexpr char kHead[] = "version: 1\nentities:\n  onboarding:\n    fields:\n      title: {type: string}\n";

TEST(MappingValidationTest, EachMistakeIsReportedAtItsPosition) {
  char tmpl[] = "/tmp/crmbridge-map-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  const std::string head = kHead;
  const Broken cases[] = {
      {"bad version", "version: 2\n", ":1:10: error: unsupported version '2'"},
      {"unknown top key", "version: 1\nentity: {}\n", ":2:1: error: unknown key 'entity'"},
      {"unknown system",
       head + "systems:\n  hubspott:\n    onboarding: {object: tickets, fields: {}}\n",
       ":7:3: error: unknown system 'hubspott'"},
      {"unknown entity",
       head + "systems:\n  hubspot:\n    ticket:\n      object: tickets\n      fields: {}\n",
       ":8:5: error: unknown entity 'ticket'"},
      {"missing object",
       head + "systems:\n  hubspot:\n    onboarding:\n      fields: {title: {native: subject}}\n",

       ":9:7: error: hubspot.onboarding needs 'object'"},
      {"unknown field",
       head + "systems:\n  hubspot:\n    onboarding:\n      object: tickets\n      fields:\n"
               "        titel: {native: subject}\n",

       ":11:9: error: entity 'onboarding' has no field 'titel'"},
      {"unknown transform",
       head + "systems:\n  hubspot:\n    onboarding:\n      object: tickets\n      fields:\n"
               "        title: {native: subject, transforms: [strip]}\n",

       ":11:47: error: unknown transform 'strip'"},
      {"unknown table",
       head + "systems:\n  hubspot:\n    onboarding:\n      object: tickets\n      fields:\n"
               "        title: {native: subject, transforms: [{table: stages}]}\n",

       ":11:55: error: unknown table 'stages'"},
      {"bad direction",
       head + "systems:\n  hubspot:\n    onboarding:\n      object: tickets\n      fields:\n"
               "        title: {native: subject, direction: sideways}\n",

       ":11:45: error: unknown direction 'sideways'"},
      {"native mapped twice",
       head + "      stage: {type: string}\nsystems:\n  hubspot:\n    onboarding:\n"
               "      object: tickets\n      fields:\n        title: {native: subject}\n"
               "        stage: {native: subject}\n",

       ":13:25: error: native field 'subject' is mapped twice"},
      {"many-to-one without prefer",
       head + "tables:\n  t:\n    - {native: 1, canonical: a}\n    - {native: 1, canonical: b}\n",

       ":7:3: error: table 't' maps native value 1 to 2 canonical values"},
      {"bad type", "version: 1\nentities:\n  e:\n    fields:\n      f: {type: text}\n",
       ":5:17: error: unknown type 'text'"},
  };
  for (const Broken& c : cases) {
    const std::string path = dir + "/broken.yaml";
    std::ofstream(path) << c.text;
    auto plan = LoadMappingPlan({path}, kSystems);
    ASSERT_FALSE(plan.ok()) << c.name;
    EXPECT_NE(plan.status().message().find(path + c.expected), std::string::npos)
        << c.name << ": got\n" << plan.status().message();
  }
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace crmbridge
