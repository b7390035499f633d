// Stage history on day one: when crmbridge first sees an onboarding, the moves it made before
// crmbridge was connected come from the source system's own history of the stage field
// (Connector::ReadFieldHistory), so days in stage and stuck onboardings are real at once, not
// "0 d in new" for every record. Imported moves are marked so (StageTransition::imported).
#pragma once

#include <vector>

#include "connectors/connector.h"
#include "mappings/mapping.h"
#include "state/store.h"

namespace crmbridge {

// The transitions to record for a record's first stage `first` (from no stage to its stage now,
// as the read saw it), given the values the system's stage field `stage_field` has held, oldest
// first: one move per change of canonical stage, through the field's transforms, marked imported;
// a value that does not map, or repeats the stage before it, is skipped. When the history does
// not end in the stage the read saw, `first`'s move to it follows. No history: `first` alone.
std::vector<StageTransition> ImportedStages(const FieldMap& stage_field,
                                            const std::vector<FieldChange>& history,
                                            const StageTransition& first);

}  // namespace crmbridge
