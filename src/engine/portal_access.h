// PortalAccess: the portal access flow (MappingPlan::portal_access, docs/MAPPINGS.md "Portal
// access") as a hook the run calls at two points, so the run itself names no portal entity:
//   - AfterReads(): every contact's conditions (portal_rules.h) decide its portal user and
//     grants; the difference with what was last planned is queued: revokes first, then the user,
//     then the grants;
//   - OnDelivered(): a write the portal system accepted is audited (user, grant, reset, revoke),
//     and what it answered (the user's id, granted or revoked) is written back to the contact's
//     other systems through the WritePlanner.
// Not thread-safe: the run calls it after its reads, and from the portal's flush, which runs alone.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "connectors/connector.h"
#include "mappings/mapping.h"
#include "src/core/clock.h"
#include "src/engine/record_view.h"
#include "src/engine/run_summary.h"
#include "src/engine/write_planner.h"
#include "state/store.h"

namespace crmbridge {

class PortalAccess {
 public:
  // None owned. `enabled`: the plan declares the flow and its system has a connector.
  PortalAccess(const MappingPlan* plan, Store* store, Clock* clock, RecordView* view,
               WritePlanner* planner, RunTally* tally, bool dry_run, int64_t run_start_ms,
               bool enabled)
      : plan_(plan),
        store_(store),
        clock_(clock),
        view_(view),
        planner_(planner),
        tally_(tally),
        dry_run_(dry_run),
        run_start_ms_(run_start_ms),
        enabled_(enabled && plan->portal_access().has_value()) {}

  // The portal system's name; "" when the flow is off. Its writes follow from the reads as a
  // whole, so the run flushes it after them, first and alone.
  std::string system() const { return enabled_ ? plan_->portal_access()->system : ""; }

  Status AfterReads();
  // True when it settled the item itself (a revoked grant: its link is cleared, not updated).
  bool OnDelivered(const OutboxItem& item, const WriteOutcome& outcome, StateBatch* batch);

 private:
  void ReflectPortalState(const std::string& contact_id, const nlohmann::json& values,
                          StateBatch* batch);

  const MappingPlan* plan_;
  Store* store_;
  Clock* clock_;
  RecordView* view_;
  WritePlanner* planner_;
  RunTally* tally_;
  bool dry_run_;
  int64_t run_start_ms_;
  bool enabled_;
};

}  // namespace crmbridge
