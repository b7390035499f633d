#include "src/engine/stage_history_import.h"

namespace crmbridge {

using nlohmann::json;

std::vector<StageTransition> ImportedStages(const FieldMap& stage_field,
                                            const std::vector<FieldChange>& history,
                                            const StageTransition& first) {
  std::vector<StageTransition> out;
  std::string stage;  // the stage before, as imported so far
  for (const FieldChange& change : history) {
    // Later than the read that saw the record: not part of what came before it.
    if (change.at_ms > first.at_ms) break;
    auto value = MappingPlan::FieldIn(stage_field, change.value);
    if (!value.ok() || !value->is_string() || value->get<std::string>().empty()) continue;
    const std::string to = value->get<std::string>();
    if (to == stage) continue;
    StageTransition t = first;
    t.from_stage = stage;
    t.to_stage = to;
    t.at_ms = change.at_ms;
    t.imported = true;
    out.push_back(std::move(t));
    stage = to;
  }
  if (stage != first.to_stage) {
    StageTransition t = first;
    t.from_stage = stage;
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace crmbridge
