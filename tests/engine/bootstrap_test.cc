// Bootstrap: what the mapping loader is told of each system comes from the connector registry.
#include "src/engine/bootstrap.h"

#include <gtest/gtest.h>

#include <fstream>
#include <optional>

#include "connectors/registry.h"
#include "src/config/app_config.h"
#include "tests/mappings/test_systems.h"

namespace crmbridge {
namespace {

bool SameTraits(const SystemTraits& a, const SystemTraits& b) {
  if (a.params.size() != b.params.size()) return false;
  for (size_t i = 0; i < a.params.size(); ++i)
    if (a.params[i].name != b.params[i].name || a.params[i].type != b.params[i].type ||
        a.params[i].objects != b.params[i].objects || a.params[i].values != b.params[i].values ||
        a.params[i].value_is_own_field != b.params[i].value_is_own_field ||
        (a.params[i].value_is_own_field && a.params[i].default_value != b.params[i].default_value) ||
        a.params[i].own_field_when_given != b.params[i].own_field_when_given)
      return false;
  return a.kind == b.kind && a.carries_references == b.carries_references &&
         a.reference_fields == b.reference_fields && a.required_params == b.required_params &&
         a.binds_lookups == b.binds_lookups &&
         a.references_name_objects == b.references_name_objects &&
         a.provisions_portal_access == b.provisions_portal_access && a.objects == b.objects &&
         a.other_objects == b.other_objects && a.plain_field_names == b.plain_field_names &&
         a.written_only == b.written_only;
}

TEST(MappingSystemsOfTest, EveryRegisteredKindWithWhatItsConnectorsCanDo) {
  MappingSystems systems = MappingSystemsOf({{"crm", "hubspot"}, {"cs", "totango"}});
  EXPECT_EQ(systems.systems, (std::map<std::string, std::string>{{"crm", "hubspot"}, {"cs", "totango"}}));
  ASSERT_EQ(systems.kinds.size(), ConnectorKinds().size());
  for (size_t i = 0; i < systems.kinds.size(); ++i) {
    const SystemTraits& t = systems.kinds[i];
    SCOPED_TRACE(t.kind);
    EXPECT_EQ(t.kind, ConnectorKinds()[i]);
    const Capabilities& can = *CapabilitiesOfKind(t.kind);
    EXPECT_EQ(t.carries_references, can.carries_references);
    EXPECT_EQ(t.binds_lookups, can.binds_lookups);
    EXPECT_EQ(t.provisions_portal_access, can.provisions_portal_access);
  }
}

TEST(MappingSystemsOfTest, TheMappingTestsAssumeWhatTheRegistryDeclares) {
  // tests/mappings links no connector and spells the traits out: they must not drift.
  const std::vector<SystemTraits> assumed = testing::RegistryKindTraits();
  const std::vector<SystemTraits> declared = MappingSystemsOf({}).kinds;
  ASSERT_EQ(assumed.size(), declared.size());
  for (size_t i = 0; i < assumed.size(); ++i)
    EXPECT_TRUE(SameTraits(assumed[i], declared[i])) << assumed[i].kind << " vs " << declared[i].kind;
}

// `mappings validate` with a configuration runs each kind's own checks too, with what an unset
// variable left empty taken as given: a batch size out of range is an error at its key, and the
// secret that is not at hand is not.
TEST(CheckSystemsWithoutSecretsTest, AKindsOwnCheckIsReportedAtTheKeyItNames) {
  const std::string path = ::testing::TempDir() + "crmbridge-kind-checks.yaml";
  std::ofstream(path) << "state: x.db\n"
                         "systems:\n"
                         "  crm:\n"
                         "    kind: dynamics365\n"
                         "    base_url: https://org.crm4.dynamics.com\n"
                         "    auth:\n"
                         "      token_url: \"${env:CRMB_TEST_UNSET_URL}\"\n"
                         "      client_id: app\n"
                         "      scope: https://org.crm4.dynamics.com/.default\n"
                         "      client_secret: \"${env:CRMB_TEST_UNSET_SECRET}\"\n"
                         "    options: {batch_size: 5000}\n";
  std::vector<std::string> warnings;
  auto config = LoadAppConfigWithoutSecrets(path, &warnings, [](const std::string&) {
    return std::optional<std::string>();
  });
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(warnings.size(), 2u) << "the two unset variables are warnings";
  Status s = CheckSystemsWithoutSecrets(*config);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), path + ":11:15: error: system 'crm': options.batch_size must be 1..1000 "
                                "(requests per $batch), not \"5000\"");

  std::ofstream(path, std::ios::trunc)
      << "state: x.db\nsystems:\n  crm:\n    kind: dynamics365\n"
         "    base_url: \"${env:CRMB_TEST_UNSET_BASE}\"\n    auth:\n"
         "      token_url: \"${env:CRMB_TEST_UNSET_URL}\"\n      client_id: app\n"
         "      scope: \"${env:CRMB_TEST_UNSET_SCOPE}\"\n"
         "      client_secret: \"${env:CRMB_TEST_UNSET_SECRET}\"\n";
  config = LoadAppConfigWithoutSecrets(path, &warnings, [](const std::string&) {
    return std::optional<std::string>();
  });
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(CheckSystemsWithoutSecrets(*config).ok()) << "nothing but what is unset";
}

// Totango's allowed.<attribute> guards the values written to an attribute: one naming an
// attribute no mapping writes (a typo of one that is) would guard nothing, silently.
TEST(CheckOptionsAgainstPlanTest, AnAllowedListOfAFieldNoMappingWritesIsRefusedAtItsKey) {
  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "crmbridge-allowed-map.yaml")
      << "version: 1\nentities:\n  company:\n    fields:\n      stage: {type: string}\n"
         "systems:\n  cs:\n    company:\n      object: accounts\n      fields:\n"
         "        stage: {native: Onboarding Stage, direction: out}\n";
  const std::string path = dir + "crmbridge-allowed.yaml";
  auto load = [&](const std::string& attribute) {
    std::ofstream(path, std::ios::trunc)
        << "state: x.db\nmappings: [crmbridge-allowed-map.yaml]\nsystems:\n  cs:\n"
           "    kind: totango\n    base_url: https://api-eu1.totango.com\n"
           "    auth: {app_token: \"${env:CRMB_TEST_UNSET_TOKEN}\"}\n"
           "    options: {service_id: SP-1, region: eu, \"allowed." << attribute << "\": A|B}\n";
    std::vector<std::string> warnings;
    auto config = LoadAppConfigWithoutSecrets(path, &warnings, [](const std::string&) {
      return std::optional<std::string>();
    });
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    return LoadPlanFor(*config);
  };
  EXPECT_TRUE(load("Onboarding Stage").ok());
  auto typo = load("Onboarding stage");
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().message(),
            path + ":8:45: error: option 'allowed.Onboarding stage' of system 'cs' names "
                   "Onboarding stage, which no mapping writes to cs (hint: did you mean "
                   "'Onboarding Stage'?)");
}

}  // namespace
}  // namespace crmbridge
