// The onboarding timeline: where every onboarding is in its process, how long it has been there,
// and which ones are stuck, built from the state store's stage history (docs/OPERATIONS.md,
// "Onboarding report").
//
// Days in stage follow the customer-success convention (Totango's lifecycle stages): the clock
// stops when an onboarding reaches an end stage (the mapping's `end_values` on the stage field,
// `closed` in the preset) and starts again from zero if it leaves it. Thresholds follow the HubSpot
// process: 30 days in a stage without progress means follow up, 60 days open means inactive.
//
// Everything here is pure: BuildOnboardingReport() takes the rows and "now", the renderers take
// the report. Only LoadOnboardingReport() reads, and only through the Store interface.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mappings/mapping.h"
#include "src/core/status.h"
#include "state/store.h"

namespace crmbridge::report {

constexpr int64_t kDayMs = 86'400'000;

struct ReportOptions {
  std::string entity = "onboarding";
  std::string stage_field = "stage";
  // The field's declared stages in process order (the funnel's order); stages found in the data
  // but not declared come after them.
  std::vector<std::string> stages;
  std::set<std::string> end_stages;  // where the clock stops
  // How the team names each stage: canonical stage -> its label in `label_system`, the system of
  // record of the stage (the field's system_of_record, else the first system whose mapping reads
  // the field into labels). The reports show these, the canonical names beside them.
  std::map<std::string, std::string> stage_labels;
  std::string label_system;
  int64_t now_ms = 0;                // the report's "now": injected, never read from a clock here
  int64_t stuck_after_ms = 30 * kDayMs;     // days in the current stage at which it is stuck
  int64_t escalate_after_ms = 60 * kDayMs;  // days open (end stages not counted): overdue
  bool include_ended = false;  // list onboardings in an end stage too (the funnel always counts them)
};

// One stay in one stage.
struct StageInterval {
  std::string stage;
  int64_t entered_ms = 0;  // 0: before the recorded history (when is not known)
  int64_t left_ms = 0;     // 0: still there
  std::string moved_by;    // the system that moved it into this stage; "" when not recorded
  bool end = false;        // an end stage: its time is not counted
  // Entered before crmbridge saw the record: from its system's own history (StageTransition).
  bool imported = false;
};

struct OnboardingTimeline {
  std::string canonical_id;
  std::string title;  // the snapshot's title, else the canonical id
  std::string stage;  // current stage ("" when none is known)
  std::vector<StageInterval> intervals;  // oldest first; the last one is the current stage
  bool ended = false;       // in an end stage now
  int64_t in_stage_ms = 0;  // in the current stage; 0 in an end stage (the clock stopped)
  int64_t open_ms = 0;      // since it first appeared, time spent in end stages left out
  bool stuck = false;       // not ended and in_stage_ms >= stuck_after_ms
  bool overdue = false;     // not ended and open_ms >= escalate_after_ms

  int64_t started_ms() const;  // when it first appeared (0 when not known)
};

struct FunnelRow {
  std::string stage;
  int count = 0;  // onboardings in this stage now
  int stuck = 0;  // of which stuck
  bool end = false;
};

struct OnboardingReport {
  ReportOptions options;
  // Listed onboardings: those not in an end stage (every one with include_ended), the longest in
  // their stage first.
  std::vector<OnboardingTimeline> onboardings;
  std::vector<FunnelRow> funnel;  // every onboarding not deleted, per current stage
  int total = 0;                  // onboardings not deleted
  int open = 0;
  int stuck = 0;
  int overdue = 0;
};

// The stages, end stages and stage labels of `options.entity`'s stage field as the mapping
// declares them. kNotFound when the plan has no such entity or field.
Status StagesFromPlan(const MappingPlan& plan, ReportOptions* options);

// Builds the report from every snapshot and every stage transition of the entity (transitions
// ordered by canonical id, then time, as Store::AllStageHistory returns them). Deleted records
// (Snapshot::deleted_ms) are left out.
OnboardingReport BuildOnboardingReport(const std::vector<Snapshot>& snapshots,
                                       const std::vector<StageTransition>& transitions,
                                       const ReportOptions& options);

// Reads the snapshots and the stage history of options.entity from `store` and builds the report.
Result<OnboardingReport> LoadOnboardingReport(Store& store, const ReportOptions& options);

// Whole days, rounded down: what a person counts as "days in stage".
int64_t WholeDays(int64_t ms);

std::string RenderText(const OnboardingReport& report);
nlohmann::json RenderJson(const OnboardingReport& report);
// One self-contained HTML page (inline CSS and SVG; no script, font or image is fetched): the
// summary, the funnel, a timeline per onboarding on a shared time axis, and the table.
std::string RenderHtml(const OnboardingReport& report);
// What RenderHtml's page holds between <body> and its footer (header, summary, funnel, timeline,
// table), and its stylesheet: for a page that shows the report among other things.
std::string RenderHtmlSections(const OnboardingReport& report);
std::string ReportCss();

// Text made safe inside HTML elements and attribute values.
std::string EscapeHtml(const std::string& text);

}  // namespace crmbridge::report
