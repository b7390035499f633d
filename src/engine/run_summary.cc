#include "src/engine/run_summary.h"

#include <spdlog/spdlog.h>

namespace crmbridge {

const char* WriteActionName(WriteAction action) {
  switch (action) {
    case WriteAction::kCreate: return "create";
    case WriteAction::kUpdate: return "update";
    case WriteAction::kDelete: return "delete";
    case WriteAction::kCreated: return "created";
    case WriteAction::kUpdated: return "updated";
  }
  return "create";
}

using nlohmann::json;

void LagHistogram::Observe(double seconds) {
  if (seconds < 0) seconds = 0;  // the source's clock ahead of ours
  size_t bucket = 0;
  while (bucket < kBoundsSeconds.size() && seconds > kBoundsSeconds[bucket]) ++bucket;
  ++buckets[bucket];
  sum_seconds += seconds;
  ++observed;
}

json EntityCounts::ToJson() const {
  return json{{"read", read},         {"unchanged", unchanged},   {"changed", changed},
              {"rejected", rejected}, {"deletes_seen", deletes_seen}, {"restored", restored}, {"merged", merged}, {"queued", queued},
              {"created", created},   {"updated", updated},       {"retrying", retrying},
              {"dead_lettered", dead_lettered}, {"unverified", unverified},
              {"verified", verified}, {"rewritten", rewritten}, {"conflicts", conflicts},
              {"duplicates", duplicates}, {"matched", matched}, {"not_created", not_created},
              {"unresolved_refs", unresolved_refs},
              {"waiting_on_refs", waiting_on_refs}};
}

int64_t RunSummary::TotalWrites() const {
  int64_t n = 0;
  for (const auto& [system, entities] : counts)
    for (const auto& [entity, c] : entities) n += c.created + c.updated;
  return n;
}

int64_t RunSummary::TotalDeadLettered() const {
  int64_t n = 0;
  for (const auto& [system, entities] : counts)
    for (const auto& [entity, c] : entities) n += c.dead_lettered;
  return n;
}

int64_t RunSummary::TotalRetrying() const {
  int64_t n = 0;
  for (const auto& [system, entities] : counts)
    for (const auto& [entity, c] : entities) n += c.retrying;
  return n;
}

int64_t RunSummary::TotalQueued() const {
  int64_t n = 0;
  for (const auto& [system, entities] : counts)
    for (const auto& [entity, c] : entities) n += c.queued;
  return n;
}

json RunSummary::ToJson() const {
  json j{{"run_id", run_id},
         {"dry_run", dry_run},
         {"started_ms", started_ms},
         {"finished_ms", finished_ms},
         {"duration_ms", finished_ms - started_ms},
         {"writes", TotalWrites()},
         {"dead_lettered", TotalDeadLettered()},
         {"systems", json::object()},
         {"unreachable", unreachable}};
  if (lease_denied) {
    j["lease_denied"] = true;
    j["lease_holder"] = lease_holder;
  }
  if (lease_lost) j["lease_lost"] = true;
  for (const auto& [system, entities] : counts)
    for (const auto& [entity, c] : entities) j["systems"][system][entity] = c.ToJson();
  auto list = [](const std::vector<PlannedWrite>& writes) {
    json p = json::array();
    for (const auto& w : writes)
      p.push_back({{"system", w.system}, {"entity", w.entity}, {"canonical_id", w.canonical_id},
                   {"action", WriteActionName(w.action)}, {"native_id", w.native_id}, {"fields", w.fields}});
    return p;
  };
  if (dry_run) {
    j["plan"] = list(plan);
  } else {
    j["written"] = list(written);
  }
  return j;
}

EntityCounts& RunTally::Count(const std::string& system, const std::string& entity) {
  std::lock_guard<std::mutex> lock(mu_);
  return summary_.counts[system][entity];
}

void RunTally::MarkUnreachable(const std::string& system, const Status& why) {
  std::lock_guard<std::mutex> lock(mu_);
  summary_.unreachable.emplace(system, why.ToString());
  if (why.code() == StatusCode::kUnauthenticated)
    summary_.credentials_refused.emplace(system, why.ToString());
}

bool RunTally::IsUnreachable(const std::string& system) {
  std::lock_guard<std::mutex> lock(mu_);
  return summary_.unreachable.count(system) > 0;
}

void RunTally::Planned(PlannedWrite write) {
  std::lock_guard<std::mutex> lock(mu_);
  summary_.plan.push_back(std::move(write));
}

void RunTally::Written(PlannedWrite write) {
  std::lock_guard<std::mutex> lock(mu_);
  if (summary_.written.size() < RunSummary::kMaxWrittenListed)
    summary_.written.push_back(std::move(write));
}

bool RunTally::FirstWait(int64_t outbox_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return waited_.insert(outbox_id).second;
}

bool RunTally::ShowRecordWarning(const std::string& system, const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t n = ++warnings_[{system, what}];
  return show_every_warning_ || n <= kRecordWarningsShown;
}

void RunTally::LogHiddenWarnings() {
  std::lock_guard<std::mutex> lock(mu_);
  if (show_every_warning_) return;
  for (const auto& [key, n] : warnings_) {
    if (n <= kRecordWarningsShown) continue;
    spdlog::warn("{}: {} more {} (the first {} are shown above; `sync --verbose` or `backfill "
                 "--verbose` shows each)",
                 key.first, n - kRecordWarningsShown, key.second, kRecordWarningsShown);
  }
}

}  // namespace crmbridge
