// The mapping language: the shipped preset loads and round-trips, tables reverse through their
// preferred rows, and each mistake in a mapping file is reported at its exact position.
#include "mappings/mapping.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "tests/mappings/test_systems.h"

namespace crmbridge {
namespace {

using nlohmann::json;

const MappingSystems kSystems =
    testing::Systems({{"hubspot", "hubspot"}, {"dynamics365", "dynamics365"}});

std::string Preset() { return std::string(CRMBRIDGE_SOURCE_DIR) + "/mappings/presets/onboarding.yaml"; }

TEST(PresetTest, LoadsWithEverySystemAndEntity) {
  auto plan = LoadMappingPlan({Preset()}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_NE((*plan)->Find("hubspot", "onboarding"), nullptr);
  ASSERT_NE((*plan)->Find("dynamics365", "onboarding"), nullptr);
  EXPECT_EQ((*plan)->Find("hubspot", "onboarding")->params.at("pipeline"), "Order/faktura");
  EXPECT_EQ((*plan)->systems().size(), 2u);
}

TEST(PresetTest, AMatchKeyWrittenOnlyIsReadForMatchingAlone) {
  auto plan = LoadMappingPlan({Preset()}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const SystemEntityMapping& account = *(*plan)->Find("dynamics365", "company");
  EXPECT_TRUE(account.reads());
  EXPECT_TRUE(account.create);
  EXPECT_FALSE((*plan)->Find("hubspot", "company")->create);
  auto mapped = MappingPlan::ToCanonical(
      account, {{"name", "Acme AB"}, {"websiteurl", "https://www.Acme.se/"},
                {"crmb_activateportalaccess", true}});
  ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
  EXPECT_FALSE(mapped->fields.contains("domain")) << "not Dynamics 365's value to give";
  EXPECT_FALSE(mapped->fields.contains("name"));
  EXPECT_EQ(mapped->match_only, json({{"domain", "acme.se"}}));
  EXPECT_EQ(mapped->MatchValues()["domain"], "acme.se");
  EXPECT_EQ(mapped->MatchValues()["activate_portal_access"], true);
  // A website it cannot read is no key, and no reason to refuse the record.
  auto blank = MappingPlan::ToCanonical(account, {{"websiteurl", "   "}});
  ASSERT_TRUE(blank.ok());
  EXPECT_TRUE(blank->match_only.empty());
  // Written on create only: an account Dynamics 365 had keeps its own website.
  auto update = MappingPlan::ToNative(account, {{"name", "Acme AB"}, {"domain", "acme.se"}}, false);
  ASSERT_TRUE(update.ok());
  EXPECT_FALSE(update->contains("websiteurl"));
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

TEST(PresetTest, ClosedIsTheEndStage) {
  auto plan = LoadMappingPlan({Preset()}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const CanonicalEntity* onboarding = (*plan)->FindEntity("onboarding");
  ASSERT_NE(onboarding, nullptr);
  ASSERT_NE(onboarding->Find("stage"), nullptr);
  EXPECT_EQ(onboarding->Find("stage")->end_values, std::vector<std::string>{"closed"});
  EXPECT_TRUE(onboarding->Find("title")->end_values.empty());
}

TEST(MappingValidationTest, EndValuesMustBeAListOfDeclaredValuesEachOnce) {
  const std::string path = ::testing::TempDir() + "end_values.yaml";
  std::ofstream(path) << "version: 1\n"
                         "entities:\n"
                         "  onboarding:\n"
                         "    fields:\n"
                         "      stage: {values: [new, closed], end_values: [closed, closed]}\n"
                         "      phase: {end_values: done}\n"
                         "      step: {end_values: [done, live]}\n";
  auto plan = LoadMappingPlan({path}, kSystems);
  ASSERT_FALSE(plan.ok());
  const std::string m = plan.status().message();
  EXPECT_NE(m.find(path + ":5:59: error: end value 'closed' is listed twice"), std::string::npos) << m;
  EXPECT_NE(m.find(path + ":6:27: error: end_values must be a list of the field's end values"),
            std::string::npos) << m;
  // Without declared values any end value is accepted.
  EXPECT_EQ(m.find(":7:"), std::string::npos) << m;
}

TEST(MappingValidationTest, ADatetimeValueTooLongToBeOneIsRefusedNotMatched) {
  const std::string path = ::testing::TempDir() + "datetime.yaml";
  std::ofstream(path) << "version: 1\n"
                         "entities:\n"
                         "  onboarding:\n"
                         "    fields: {started: {type: datetime}}\n"
                         "systems:\n"
                         "  hubspot:\n"
                         "    onboarding:\n"
                         "      object: tickets\n"
                         "      fields: {started: {native: start}}\n";
  auto plan = LoadMappingPlan({path}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const SystemEntityMapping& m = *(*plan)->Find("hubspot", "onboarding");
  EXPECT_TRUE(MappingPlan::ToCanonical(m, {{"start", "2026-01-31T10:00:00.250Z"}}).ok());
  // std::regex recurses once per digit it matches: this many overflowed the stack.
  auto long_value =
      MappingPlan::ToCanonical(m, {{"start", "2026-01-31T10:00:00." + std::string(200000, '1')}});
  ASSERT_FALSE(long_value.ok());
  EXPECT_NE(long_value.status().message().find("is not a valid datetime"), std::string::npos);

  // One spelling per second, whichever system wrote it: read back from Dataverse (no
  // milliseconds), a time HubSpot gave with them is the same value, not a change.
  for (const char* form : {"2026-01-31T10:00:00.250Z", "2026-01-31T10:00:00Z", "2026-01-31T10:00:00.000Z"}) {
    auto read = MappingPlan::ToCanonical(m, {{"start", form}});
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    EXPECT_EQ(read->fields["started"], "2026-01-31T10:00:00Z") << form;
  }
  auto before_1970 = MappingPlan::ToCanonical(m, {{"start", "1969-12-31T23:59:59.500Z"}});
  ASSERT_TRUE(before_1970.ok());
  EXPECT_EQ(before_1970->fields["started"], "1969-12-31T23:59:59Z");
  auto day = MappingPlan::ToCanonical(m, {{"start", "2026-01-31"}});
  ASSERT_TRUE(day.ok());
  EXPECT_EQ(day->fields["started"], "2026-01-31") << "a day stays a day";
}

TEST(MappingValidationTest, OneTableTwiceInAFieldLooksUpThroughBoth) {
  // Each {table:} is a step of its own: the second looks up what the first gave.
  const std::string path = ::testing::TempDir() + "table_twice.yaml";
  std::ofstream(path) << "version: 1\n"
                         "entities:\n"
                         "  onboarding:\n"
                         "    fields: {priority: {type: string}}\n"
                         "tables:\n"
                         "  prio:\n"
                         "    - {native: a, canonical: b}\n"
                         "    - {native: b, canonical: c}\n"
                         "systems:\n"
                         "  hubspot:\n"
                         "    onboarding:\n"
                         "      object: tickets\n"
                         "      fields:\n"
                         "        priority: {native: hs_ticket_priority, "
                         "transforms: [{table: prio}, {table: prio}]}\n";
  auto plan = LoadMappingPlan({path}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const FieldMap& f = (*plan)->Find("hubspot", "onboarding")->fields.at(0);
  ASSERT_EQ(f.transforms.size(), 2u);
  json v = "a";
  for (const auto& t : f.transforms) {
    ASSERT_NE(t, nullptr);
    auto r = t->In(v);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    v = *r;
  }
  EXPECT_EQ(v, "c");
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
      // std::regex, which checks a name against the kind's pattern, recurses once per character.
      {"an object name too long to match",
       head + "systems:\n  dynamics365:\n    onboarding:\n      object: " +
           std::string(100000, 'a') + "\n      fields: {title: {native: name}}\n",
       ":9:15: error: an object name of 100000 characters; no API names one longer than 256"},
      // yaml-cpp passes bytes on, and nlohmann::json throws writing a string that is not UTF-8.
      {"a value in Latin-1",
       head + "tables:\n  t:\n    - {native: \"P\xe5g\xe5r\", canonical: a}\n",
       ":8:16: error: this value is not UTF-8 text (byte 0xE5)"},
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

namespace crmbridge {
namespace {

// native -> canonical -> native through one field's transforms, whatever its direction.
Result<json> RoundTrip(const FieldMap& f, const json& native, json* canonical) {
  json v = native;
  for (const auto& t : f.transforms) {
    auto r = t->In(v);
    if (!r.ok()) return r.status();
    v = *r;
  }
  *canonical = v;
  for (auto t = f.transforms.rbegin(); t != f.transforms.rend(); ++t) {
    auto r = (*t)->Out(v);
    if (!r.ok()) return r.status();
    v = *r;
  }
  return v;
}

TEST(PresetTest, EveryMappedFieldOfEverySystemRoundTrips) {
  const std::string totango = std::string(CRMBRIDGE_SOURCE_DIR) + "/mappings/presets/onboarding-totango.yaml";
  auto plan = LoadMappingPlan({Preset(), totango},
                              testing::Systems({{"hubspot", "hubspot"},
                                                {"dynamics365", "dynamics365"},
                                                {"totango", "totango"}}));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  // Native values each field meets: every row of its value table, else sample text.
  const std::map<std::string, std::vector<json>> samples = {
      {"hubspot.hs_pipeline_stage", {"Ny", "Onboarding – Pågår", "Må följas upp", "Manuell uppföljning", "Inaktiva kunder", "Avslutad"}},
      {"hubspot.hs_ticket_priority", {"LOW", "MEDIUM", "HIGH"}},
      // Folded to lower case on the way in: HubSpot keeps emails (and, here, domains) that way.
      {"hubspot.email", {"anna.berg@acme.se"}},
      {"hubspot.domain", {"acme.se"}},
      {"dynamics365.emailaddress1", {"anna.berg@acme.se"}},
      {"dynamics365.websiteurl", {"acme.se"}},
      // Owners by email, folded to lower case on the way out.
      {"hubspot.hubspot_owner_id", {"anna.lund@bolaget.example"}},
      {"dynamics365.ownerid", {"anna.lund@bolaget.example"}},
      {"dynamics365.crmb_activateportalaccess", {true, false}},
      {"dynamics365.crmb_portalaccess", {true, false}},
      {"dynamics365.crmb_onboardingstage", {100000000, 100000001, 100000002, 100000003, 100000004}},
      {"dynamics365.crmb_priority", {1, 2, 3}},
      {"totango.Onboarding Stage", {"Kick Off", "Business Discovery", "Integration", "Configuration", "Training/UAT", "Live"}},
      {"totango.email", {"anna.berg@acme.se"}},
      {"totango.due_date", {"2026-12-10"}},  // a task's due day
  };
  // Native values that share their canonical value with others come back as that value's
  // preferred native form (the engine then sees no change, so the record is not moved).
  const std::map<std::string, json> preferred = {{"totango.Integration", "Business Discovery"},
                                                 {"totango.Configuration", "Business Discovery"},
                                                 {"totango.Training/UAT", "Business Discovery"}};
  int checked = 0;
  for (const SystemEntityMapping& m : (*plan)->mappings()) {
    for (const FieldMap& f : m.fields) {
      auto s = samples.find(m.system + "." + f.native);
      const std::vector<json> values = s != samples.end() ? s->second
                                                          : std::vector<json>{"SE Acme AB – onboarding", "Signed 2026-11-02"};
      for (const json& native : values) {
        json canonical;
        auto back = RoundTrip(f, native, &canonical);
        ASSERT_TRUE(back.ok()) << m.system << "." << f.native << " " << native.dump() << ": " << back.status().ToString();
        const auto p = preferred.find(m.system + "." + (native.is_string() ? native.get<std::string>() : native.dump()));
        EXPECT_EQ(*back, p != preferred.end() ? p->second : native)
            << m.system << "." << f.native << ": " << native.dump() << " -> " << canonical.dump() << " -> " << back->dump();
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 30);
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

// References: entities come out in the order crmbridge reads and flushes them, a reference leaves
// ToNative as a placeholder for the engine to translate, and a native id enters canonical as is.

std::vector<std::string> EntityNames(const MappingPlan& plan) {
  std::vector<std::string> names;
  for (const CanonicalEntity& e : plan.entities()) names.push_back(e.name);
  return names;
}

size_t IndexOf(const std::vector<std::string>& names, const std::string& name) {
  return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

TEST(ReferenceTest, EntitiesComeOutInReferenceOrderWhateverTheDeclaredOrder) {
  // note -> onboarding -> company, contact -> company.
  const std::map<std::string, std::string> declarations = {
      {"company", "    fields: {name: {type: string}}\n"},
      {"contact", "    fields: {email: {type: string}, company: {type: ref, entity: company}}\n"},
      {"onboarding", "    fields: {title: {type: string}, company: {type: ref, entity: company}}\n"},
      {"note", "    fields: {body: {type: string}, onboarding: {type: ref, entity: onboarding}}\n"}};
  std::vector<std::string> order = {"company", "contact", "note", "onboarding"};  // sorted
  const std::string path = ::testing::TempDir() + "ref_order.yaml";
  int permutations = 0;
  do {
    std::ofstream file(path);
    file << "version: 1\nentities:\n";
    for (const std::string& name : order) file << "  " << name << ":\n" << declarations.at(name);
    file.close();
    auto plan = LoadMappingPlan({path}, kSystems);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    const std::vector<std::string> names = EntityNames(**plan);
    std::string declared;
    for (const std::string& n : order) declared += n + " ";
    SCOPED_TRACE("declared: " + declared);
    ASSERT_EQ(names.size(), 4u) << "every entity once";
    EXPECT_LT(IndexOf(names, "company"), IndexOf(names, "contact"));
    EXPECT_LT(IndexOf(names, "company"), IndexOf(names, "onboarding"));
    EXPECT_LT(IndexOf(names, "onboarding"), IndexOf(names, "note"));
    // FindEntity sees every entity whatever its place.
    for (const std::string& n : order) EXPECT_NE((*plan)->FindEntity(n), nullptr) << n;
    ++permutations;
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(permutations, 24);
}

TEST(ReferenceTest, EntitiesWithoutReferencesKeepTheirDeclaredOrder) {
  const std::string path = ::testing::TempDir() + "ref_declared_order.yaml";
  std::ofstream(path) << "version: 1\n"
                         "entities:\n"
                         "  onboarding: {fields: {title: {type: string}}}\n"
                         "  task: {fields: {subject: {type: string}}}\n"
                         "  company: {fields: {name: {type: string}}}\n";
  auto plan = LoadMappingPlan({path}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(EntityNames(**plan), (std::vector<std::string>{"onboarding", "task", "company"}));
}

TEST(ReferenceTest, AReferenceToAnEntityOfAnotherFileIsOrderedAfterIt) {
  // The referring entity's file comes first on the command line.
  const std::string contacts = ::testing::TempDir() + "ref_contacts.yaml";
  const std::string companies = ::testing::TempDir() + "ref_companies.yaml";
  std::ofstream(contacts) << "version: 1\n"
                             "entities:\n"
                             "  contact: {fields: {email: {type: string}, company: {type: ref, entity: company}}}\n";
  std::ofstream(companies) << "version: 1\n"
                              "entities:\n"
                              "  company: {fields: {name: {type: string}}}\n";
  auto plan = LoadMappingPlan({contacts, companies}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(EntityNames(**plan), (std::vector<std::string>{"company", "contact"}));
}

TEST(ReferenceTest, ToNativeGivesAReferenceAsAPlaceholderForTheEngine) {
  auto plan = LoadMappingPlan({Preset()}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const SystemEntityMapping& hs = *(*plan)->Find("hubspot", "contact");
  auto native = MappingPlan::ToNative(hs, {{"email", "anna.berg@acme.se"}, {"company", "c-42"}}, true);
  ASSERT_TRUE(native.ok()) << native.status().ToString();
  EXPECT_EQ((*native)["email"], "anna.berg@acme.se");
  EXPECT_EQ((*native)["companies"], RefPlaceholder("company", "c-42"));
  EXPECT_EQ((*native)["companies"], (json{{"$ref", "company"}, {"id", "c-42"}}));
  EXPECT_EQ(RefPlaceholderId((*native)["companies"]), std::optional<std::string>("c-42"));
  // The same on Dynamics 365, under the lookup's name (the bind is the connector's business).
  const SystemEntityMapping& d365 = *(*plan)->Find("dynamics365", "onboarding");
  auto opportunity = MappingPlan::ToNative(d365, {{"title", "SE Acme AB"}, {"company", "c-42"}}, true);
  ASSERT_TRUE(opportunity.ok()) << opportunity.status().ToString();
  EXPECT_EQ((*opportunity)["parentaccountid"], RefPlaceholder("company", "c-42"));
  // A cleared reference stays null: the connector unlinks it.
  auto cleared = MappingPlan::ToNative(hs, {{"company", nullptr}}, false);
  ASSERT_TRUE(cleared.ok()) << cleared.status().ToString();
  EXPECT_TRUE((*cleared)["companies"].is_null());
  // Plain values are not placeholders.
  EXPECT_FALSE(RefPlaceholderId(json("c-42")).has_value());
  EXPECT_FALSE(RefPlaceholderId(json{{"$ref", "company"}}).has_value());
  EXPECT_FALSE(RefPlaceholderId(json{{"$ref", "company"}, {"id", 42}}).has_value());
}

TEST(ReferenceTest, ToCanonicalPassesANativeIdThrough) {
  auto plan = LoadMappingPlan({Preset()}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const SystemEntityMapping& hs = *(*plan)->Find("hubspot", "onboarding");
  auto read = MappingPlan::ToCanonical(hs, {{"subject", "SE Acme AB"}, {"companies", "9051"}});
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->fields["company"], "9051") << "the HubSpot id, for the engine to translate";
  // HubSpot ids are numeric: a number comes in as the same id in text.
  read = MappingPlan::ToCanonical(hs, {{"subject", "SE Acme AB"}, {"companies", 9051}});
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->fields["company"], "9051");
  // No associated company: null, not absent.
  read = MappingPlan::ToCanonical(hs, {{"subject", "SE Acme AB"}, {"companies", nullptr}});
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_TRUE(read->fields.contains("company"));
  EXPECT_TRUE(read->fields["company"].is_null());
  // Not read at all: absent.
  read = MappingPlan::ToCanonical(hs, {{"subject", "SE Acme AB"}});
  ASSERT_TRUE(read.ok());
  EXPECT_FALSE(read->fields.contains("company"));
  // A placeholder (an outbox payload read back) passes unchanged.
  read = MappingPlan::ToCanonical(hs, {{"subject", "SE Acme AB"}, {"companies", RefPlaceholder("company", "c-1")}});
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->fields["company"], RefPlaceholder("company", "c-1"));
  // Anything else is not a reference.
  auto bad = MappingPlan::ToCanonical(hs, {{"subject", "SE Acme AB"}, {"companies", json::array({"1", "2"})}});
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(ReferenceTest, ThePresetsReferencesLoad) {
  auto plan = LoadMappingPlan({Preset()}, kSystems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const struct {
    const char* entity;
    const char* field;
    const char* refers_to;
  } refs[] = {{"contact", "company", "company"}, {"onboarding", "company", "company"}, {"note", "onboarding", "onboarding"}};
  for (const auto& r : refs) {
    SCOPED_TRACE(std::string(r.entity) + "." + r.field);
    const CanonicalEntity* e = (*plan)->FindEntity(r.entity);
    ASSERT_NE(e, nullptr);
    const CanonicalField* f = e->Find(r.field);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->type, FieldType::kRef);
    EXPECT_EQ(f->ref_entity, r.refers_to);
  }
  // Each system's native form, with the referenced entity carried onto the field map.
  const struct {
    const char* system;
    const char* entity;
    const char* field;
    const char* native;
    const char* bind;
    const char* refers_to;
  } maps[] = {{"hubspot", "contact", "company", "companies", "", "company"},
              {"hubspot", "onboarding", "company", "companies", "", "company"},
              {"hubspot", "note", "onboarding", "tickets", "", "onboarding"},
              {"dynamics365", "contact", "company", "parentcustomerid", "parentcustomerid_account", "company"},
              {"dynamics365", "onboarding", "company", "parentaccountid", "", "company"},
              {"dynamics365", "note", "onboarding", "objectid", "objectid_opportunity", "onboarding"}};
  for (const auto& m : maps) {
    SCOPED_TRACE(std::string(m.system) + "." + m.entity + "." + m.field);
    const SystemEntityMapping* sm = (*plan)->Find(m.system, m.entity);
    ASSERT_NE(sm, nullptr);
    const FieldMap* found = nullptr;
    for (const FieldMap& f : sm->fields)
      if (f.canonical == m.field) found = &f;
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->type, FieldType::kRef);
    EXPECT_EQ(found->native, m.native);
    EXPECT_EQ(found->bind, m.bind);
    EXPECT_EQ(found->ref_entity, m.refers_to);
    EXPECT_TRUE(found->transforms.empty());
  }
  // Referenced entities first: a company before its contacts and onboardings, an onboarding
  // before its notes.
  const std::vector<std::string> names = EntityNames(**plan);
  EXPECT_LT(IndexOf(names, "company"), IndexOf(names, "contact"));
  EXPECT_LT(IndexOf(names, "company"), IndexOf(names, "onboarding"));
  EXPECT_LT(IndexOf(names, "onboarding"), IndexOf(names, "note"));
}

// What a system may be asked is its kind's traits, as given: the loader knows no kind of its own.
class SystemTraitsTest : public ::testing::Test {
 protected:
  static std::string Broken(const std::string& file) {
    return std::string(CRMBRIDGE_SOURCE_DIR) + "/tests/mappings/broken/" + file;
  }
  // The shipped kinds, with `kind`'s traits replaced.
  static MappingSystems With(SystemTraits traits) {
    MappingSystems systems = testing::Systems({{"hubspot", "hubspot"},
                                               {"dynamics365", "dynamics365"},
                                               {"totango", "totango"},
                                               {"portal", "portal"}});
    for (SystemTraits& t : systems.kinds)
      if (t.kind == traits.kind) t = traits;
    return systems;
  }
  static std::string PortalAccessOn(const std::string& system) {
    const std::string path = ::testing::TempDir() + "portal_access_on_" + system + ".yaml";
    std::ofstream(path) << "version: 1\n"
                           "entities:\n"
                           "  company:\n"
                           "    fields: {name: {type: string}, activate: {type: boolean}}\n"
                           "  contact:\n"
                           "    fields:\n"
                           "      email: {type: string}\n"
                           "      company: {type: ref, entity: company}\n"
                           "      access: {type: boolean}\n"
                           "      property: {type: string}\n"
                           "portal_access:\n"
                           "  system: " << system << "\n"
                           "  contact: contact\n"
                           "  company: company\n"
                           "  company_flag: activate\n"
                           "  contact_flag: access\n"
                           "  email: email\n"
                           "  property: property\n";
    return path;
  }
};

TEST_F(SystemTraitsTest, AReferenceNeedsAKindThatCarriesThemAndTheHintNamesThoseThatDo) {
  const std::string path = Broken("45_ref_on_portal.yaml");
  auto refused = LoadMappingPlan({path}, With(testing::TraitsOf("portal", false, false, false)));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "which does not carry references, so it cannot map contact.company (hint: "
                "references are read and written by: dynamics365, hubspot, totango)"),
            std::string::npos)
      << refused.status().message();

  auto carried = LoadMappingPlan({path}, With(testing::TraitsOf("portal", true, false, false)));
  EXPECT_TRUE(carried.ok()) << carried.status().ToString();

  MappingSystems fewer = With(testing::TraitsOf("hubspot", false, false, false));
  auto hint = LoadMappingPlan({path}, fewer);
  ASSERT_FALSE(hint.ok());
  EXPECT_NE(hint.status().message().find(
                "(hint: references are read and written by: dynamics365, totango)"),
            std::string::npos)
      << hint.status().message();
}

TEST_F(SystemTraitsTest, AKindNoConnectorDeclaresIsCheckedForNothing) {
  MappingSystems unknown_kind = testing::Systems({{"portal", ""}});
  auto plan = LoadMappingPlan({Broken("45_ref_on_portal.yaml")}, unknown_kind);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  unknown_kind.systems = {{"hubspot", "salesforce"}};
  plan = LoadMappingPlan({Broken("48_bind_on_hubspot.yaml")}, unknown_kind);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
}

TEST_F(SystemTraitsTest, BindNeedsAKindThatBindsLookups) {
  const std::string path = Broken("48_bind_on_hubspot.yaml");
  auto refused = LoadMappingPlan({path}, With(testing::TraitsOf("hubspot", true, false, false)));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                "'bind' names a dynamics365 navigation property, and hubspot is of kind hubspot "
                "(hint: drop it: hubspot writes the reference by its field alone)"),
            std::string::npos)
      << refused.status().message();
  auto bound = LoadMappingPlan({path}, With(testing::TraitsOf("hubspot", true, true, false)));
  EXPECT_TRUE(bound.ok()) << bound.status().ToString();
}

TEST_F(SystemTraitsTest, TheFieldsPortalAccessWritesBackAreNoneOfThoseItReads) {
  // The portal's user id written into the contact's email field would replace the email.
  const std::string path = PortalAccessOn("portal");
  std::ofstream(path, std::ios::app) << "  user_id_field: email\n"
                                        "  state_field: email\n";
  auto refused = LoadMappingPlan({path}, With(testing::TraitsOf("portal", false, false, true)));
  ASSERT_FALSE(refused.ok());
  const std::string m = refused.status().message();
  EXPECT_NE(m.find(path + ":19:18: error: portal_access.user_id_field names contact.email, which "
                          "portal_access.email reads"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(path + ":20:16: error: portal_access.state_field and user_id_field both name "
                          "contact.email"),
            std::string::npos)
      << m;
}

TEST_F(SystemTraitsTest, PortalAccessNeedsAKindThatProvisionsIt) {
  const std::string path = PortalAccessOn("hubspot");
  auto refused = LoadMappingPlan({path}, With(testing::TraitsOf("hubspot", true, false, false)));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(
                path + ":12:11: error: portal_access needs a portal system, and hubspot is "
                       "hubspot (hint: portal users and access are provisioned by: portal)"),
            std::string::npos)
      << refused.status().message();
  auto provisioned = LoadMappingPlan({path}, With(testing::TraitsOf("hubspot", true, false, true)));
  EXPECT_TRUE(provisioned.ok()) << provisioned.status().ToString();
  auto portal = LoadMappingPlan({PortalAccessOn("portal")}, With(testing::TraitsOf("portal", false, false, true)));
  EXPECT_TRUE(portal.ok()) << portal.status().ToString();
}

}  // namespace
}  // namespace crmbridge
