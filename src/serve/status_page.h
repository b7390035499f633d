// The live status page of `crmbridge serve` at GET /: the run status (recent runs, the outbox and
// dead letters per system, webhook changes waiting, the last webhook) and the onboarding report
// (summary, funnel, timeline, table: src/report), all read from the state store.
//
// The page is rendered on the server, every value escaped. Its one script fetches the live part
// again from /status/live every few seconds and puts it in place, so the page stays current
// without a reload; the fragment is the same escaped HTML, never data the script interprets.
#pragma once

#include <cstdint>
#include <string>

#include "mappings/mapping.h"
#include "src/core/status.h"
#include "state/store.h"

namespace crmbridge {

struct StatusFacts {
  int64_t now_ms = 0;
  int64_t last_webhook_ms = 0;  // when a delivery was last accepted, 0 if none since start
  std::string last_webhook_system;
};

// The live part: run status, then the report of the plan's onboarding entity (left out, with a
// line saying why, when the plan has none).
Result<std::string> RenderLiveStatus(Store& store, const MappingPlan& plan, const StatusFacts& facts);

// The whole page around `live`, refreshing it from /status/live every `refresh_ms`.
std::string RenderStatusPage(const std::string& live, int64_t refresh_ms);

}  // namespace crmbridge
