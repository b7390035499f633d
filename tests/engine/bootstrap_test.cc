// Bootstrap: what the mapping loader is told of each system comes from the connector registry.
#include "src/engine/bootstrap.h"

#include <gtest/gtest.h>

#include "connectors/registry.h"
#include "tests/mappings/test_systems.h"

namespace crmbridge {
namespace {

bool SameTraits(const SystemTraits& a, const SystemTraits& b) {
  if (a.params.size() != b.params.size()) return false;
  for (size_t i = 0; i < a.params.size(); ++i)
    if (a.params[i].name != b.params[i].name || a.params[i].type != b.params[i].type ||
        a.params[i].objects != b.params[i].objects || a.params[i].values != b.params[i].values)
      return false;
  return a.kind == b.kind && a.carries_references == b.carries_references &&
         a.reference_fields == b.reference_fields && a.required_params == b.required_params &&
         a.binds_lookups == b.binds_lookups &&
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

}  // namespace
}  // namespace crmbridge
