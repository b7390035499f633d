// LoadMappingPlan (mappings/mapping.h): a mapping file, as integration engineers write it, against
// the four systems of the shipped configuration, with the traits the connector registry declares
// for their kinds (tests/mappings/test_systems.h, which tests/engine holds to the registry).
//
// A refusal is kInvalidArgument and each of its lines is "<file>:<line>:<column>: error: ...". A
// plan taken names only declared systems and entities, has every table lookup resolved, orders
// each referenced entity before the entities that refer to it, and maps a record of each of its
// mappings without crashing.
#include <map>
#include <set>

#include "fuzz/fuzz_util.h"
#include "mappings/mapping.h"
#include "tests/mappings/test_systems.h"

namespace crmbridge::fuzz {
namespace {

void CheckPlan(const MappingPlan& plan, const MappingSystems& systems) {
  std::set<std::string> placed;
  for (const CanonicalEntity& e : plan.entities()) {
    for (const CanonicalField& f : e.fields) {
      if (f.type != FieldType::kRef) continue;
      FUZZ_CHECK(placed.count(f.ref_entity) > 0,
                 e.name + "." + f.name + " refers to " + f.ref_entity + ", which is not before it");
    }
    FUZZ_CHECK(placed.insert(e.name).second, "entity " + e.name + " is in the plan twice");
  }
  for (const SystemEntityMapping& m : plan.mappings()) {
    FUZZ_CHECK(systems.systems.count(m.system) > 0, "undeclared system " + m.system);
    FUZZ_CHECK(plan.FindEntity(m.entity) != nullptr, "unknown entity " + m.entity);
    FUZZ_CHECK(!m.object.empty(), m.system + "." + m.entity + " without an object");
    nlohmann::json native = nlohmann::json::object();
    for (const FieldMap& f : m.fields) {
      FUZZ_CHECK(plan.FindEntity(m.entity)->Find(f.canonical) != nullptr,
                 "field " + f.canonical + " is not one of " + m.entity + "'s");
      for (const auto& t : f.transforms)
        FUZZ_CHECK(t != nullptr, m.system + "." + m.entity + "." + f.canonical +
                                     ": a transform left unresolved");
      native[f.native] = "2024-01-31";
    }
    // Record-level failures are answers, not crashes.
    auto canonical = MappingPlan::ToCanonical(m, native);
    if (canonical.ok()) (void)MappingPlan::ToNative(m, canonical->fields, /*creating=*/true);
  }
}

}  // namespace
}  // namespace crmbridge::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  crmbridge::fuzz::Quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crmbridge;
  using namespace crmbridge::fuzz;
  static InputFile file("-mapping.yaml");
  static const MappingSystems systems = testing::Systems({{"hubspot", "hubspot"},
                                                          {"dynamics365", "dynamics365"},
                                                          {"totango", "totango"},
                                                          {"portal", "portal"}});
  const std::string& path = file.Write(Text(data, size));
  auto plan = LoadMappingPlan({path}, systems);
  if (!plan.ok()) {
    FUZZ_CHECK(plan.status().code() == StatusCode::kInvalidArgument, plan.status().ToString());
    CheckDiagnostics(plan.status().message(), path);
    return 0;
  }
  CheckPlan(**plan, systems);
  return 0;
}
