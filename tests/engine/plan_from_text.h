// A mapping plan from YAML text, as the engine's unit tests build theirs: the text is written to
// a file of its own in a temporary folder, loaded with the registry's kinds for `kinds` (system
// name -> kind), and the folder removed (a plan keeps nothing of its file but positions).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "mappings/mapping.h"
#include "src/engine/bootstrap.h"

namespace crmbridge::testing {

inline Result<std::shared_ptr<const MappingPlan>> PlanFromText(
    const std::string& yaml, const std::map<std::string, std::string>& kinds) {
  char tmpl[] = "/tmp/crmbridge-plan-XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (dir == nullptr) return Status(StatusCode::kInternal, "mkdtemp failed");
  const std::string path = std::string(dir) + "/m.yaml";
  std::ofstream(path) << yaml;
  auto plan = LoadMappingPlan({path}, MappingSystemsOf(kinds));
  std::filesystem::remove_all(dir);
  return plan;
}

}  // namespace crmbridge::testing
