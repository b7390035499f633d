// The systems the mapping tests name. This binary links the mapping library alone, so the traits
// of each kind are spelled out here as the connector registry declares them; tests/engine checks
// that MappingSystemsOf() gives exactly these.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mappings/mapping.h"

namespace crmbridge::testing {

inline std::vector<SystemTraits> RegistryKindTraits() {
  //       kind           references  bind   portal access
  return {{"hubspot",     true,       false, false},
          {"dynamics365", true,       true,  false},
          {"portal",      false,      false, true},
          {"totango",     false,      false, false}};
}

// `kinds`: system name -> kind.
inline MappingSystems Systems(std::map<std::string, std::string> kinds) {
  return MappingSystems{std::move(kinds), RegistryKindTraits()};
}

}  // namespace crmbridge::testing
