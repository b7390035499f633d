#include "src/metrics/metrics.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace crmbridge {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

const char* WebhookOutcomeName(WebhookOutcome outcome) {
  switch (outcome) {
    case WebhookOutcome::kAccepted: return "accepted";
    case WebhookOutcome::kDuplicate: return "duplicate";
    case WebhookOutcome::kIgnored: return "ignored";
    case WebhookOutcome::kRefused: return "refused";
    case WebhookOutcome::kMalformed: return "malformed";
    case WebhookOutcome::kTooLarge: return "too_large";
  }
  return "accepted";
}

namespace {

// A run's duration: from a second (an idle incremental run) to hours (a first backfill).
const Histogram::BucketBoundaries kRunSeconds = {1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 7200};

Histogram::BucketBoundaries LagBounds() {
  return Histogram::BucketBoundaries(LagHistogram::kBoundsSeconds.begin(),
                                     LagHistogram::kBoundsSeconds.end());
}

// Why an exchange brought no answer, as a `code` label.
std::string FailureCode(const Status& status) {
  switch (status.code()) {
    case StatusCode::kDeadlineExceeded: return "timeout";
    case StatusCode::kFailedPrecondition: return "refused";  // TLS verification, a bad URL
    default: return "connection";
  }
}

}  // namespace

struct Metrics::Families {
  explicit Families(prometheus::Registry& r)
      : records_read(prometheus::BuildCounter()
                         .Name("crmbridge_records_read_total")
                         .Help("Records read from each system, by entity")
                         .Register(r)),
        writes(prometheus::BuildCounter()
                   .Name("crmbridge_writes_total")
                   .Help("Writes to each system, by entity and outcome (created, updated, "
                         "retrying, dead_lettered)")
                   .Register(r)),
        api_requests(prometheus::BuildCounter()
                         .Name("crmbridge_api_requests_total")
                         .Help("HTTP requests to each system's API, each attempt, by HTTP status "
                               "or by how it failed (timeout, connection, refused)")
                         .Register(r)),
        rate_limited(prometheus::BuildCounter()
                         .Name("crmbridge_rate_limited_total")
                         .Help("Requests a system answered with 429 Too Many Requests")
                         .Register(r)),
        outbox_pending(prometheus::BuildGauge()
                           .Name("crmbridge_outbox_pending")
                           .Help("Writes queued for each system, due or waiting to be retried")
                           .Register(r)),
        dead_letters(prometheus::BuildGauge()
                         .Name("crmbridge_dead_letters")
                         .Help("Writes to each system that failed for good and wait for "
                               "crmbridge dlq replay")
                         .Register(r)),
        run_duration(prometheus::BuildHistogram()
                         .Name("crmbridge_run_duration_seconds")
                         .Help("How long each sync or backfill run took")
                         .Register(r)),
        runs(prometheus::BuildCounter()
                 .Name("crmbridge_runs_total")
                 .Help("Runs by outcome: ok, dead_lettered (some writes failed for good), "
                       "unreachable (a system could not be reached), lease_held, lease_lost")
                 .Register(r)),
        last_success(prometheus::BuildGauge()
                         .Name("crmbridge_last_success_timestamp_seconds")
                         .Help("When the last run that reached every system finished (Unix time)")
                         .Register(r)),
        webhook_events(prometheus::BuildCounter()
                           .Name("crmbridge_webhook_events_total")
                           .Help("Webhook events received per system, by outcome (accepted, "
                                 "duplicate, ignored); a delivery refused, malformed or too_large "
                                 "counts once")
                           .Register(r)),
        change_lag(prometheus::BuildHistogram()
                       .Name("crmbridge_change_lag_seconds")
                       .Help("From a change's time in its source system to its write confirmed "
                             "by the target, by target system and entity")
                       .Register(r)),
        run_seconds(run_duration.Add({}, kRunSeconds)),
        last_success_at(last_success.Add({})) {}

  Family<Counter>& records_read;
  Family<Counter>& writes;
  Family<Counter>& api_requests;
  Family<Counter>& rate_limited;
  Family<Gauge>& outbox_pending;
  Family<Gauge>& dead_letters;
  Family<Histogram>& run_duration;
  Family<Counter>& runs;
  Family<Gauge>& last_success;
  Family<Counter>& webhook_events;
  Family<Histogram>& change_lag;
  Histogram& run_seconds;
  Gauge& last_success_at;
};

Metrics::Metrics(const std::set<std::string>& systems)
    : registry_(std::make_shared<prometheus::Registry>()),
      f_(std::make_unique<Families>(*registry_)),
      systems_(systems) {
  for (const std::string& system : systems_) {
    f_->outbox_pending.Add({{"system", system}});
    f_->dead_letters.Add({{"system", system}});
    f_->rate_limited.Add({{"system", system}});
  }
}

Metrics::~Metrics() = default;

ExchangeObserver Metrics::ApiObserver() {
  Families* f = f_.get();
  return [f](const Request& request, const Result<Response>& result) {
    const std::string code =
        result.ok() ? std::to_string(result->status) : FailureCode(result.status());
    f->api_requests.Add({{"system", request.system}, {"code", code}}).Increment();
    if (result.ok() && result->status == 429)
      f->rate_limited.Add({{"system", request.system}}).Increment();
  };
}

void Metrics::AddRun(const RunSummary& summary) {
  if (summary.dry_run) return;  // wrote nothing, read for a plan
  if (summary.lease_denied) {
    f_->runs.Add({{"outcome", "lease_held"}}).Increment();
    return;
  }
  for (const auto& [system, entities] : summary.counts) {
    for (const auto& [entity, c] : entities) {
      const prometheus::Labels labels{{"system", system}, {"entity", entity}};
      f_->records_read.Add(labels).Increment(static_cast<double>(c.read));
      const std::pair<const char*, int64_t> outcomes[] = {{"created", c.created},
                                                          {"updated", c.updated},
                                                          {"retrying", c.retrying},
                                                          {"dead_lettered", c.dead_lettered}};
      for (const auto& [outcome, n] : outcomes) {
        prometheus::Labels with = labels;
        with["outcome"] = outcome;
        f_->writes.Add(with).Increment(static_cast<double>(n));
      }
      if (c.change_lag.observed > 0) {
        std::vector<double> buckets(c.change_lag.buckets.begin(), c.change_lag.buckets.end());
        f_->change_lag.Add(labels, LagBounds()).ObserveMultiple(buckets, c.change_lag.sum_seconds);
      }
    }
  }
  f_->run_seconds.Observe(static_cast<double>(summary.finished_ms - summary.started_ms) / 1000);
  const char* outcome = summary.lease_lost                ? "lease_lost"
                        : !summary.unreachable.empty()    ? "unreachable"
                        : summary.TotalDeadLettered() > 0 ? "dead_lettered"
                                                          : "ok";
  f_->runs.Add({{"outcome", outcome}}).Increment();
  // A run that read every system and reached them all succeeded, even when a record's write
  // failed for good: that is for crmbridge_dead_letters to show, not a stalled sync. A targeted
  // run read only what webhooks announced, and a writes-only run read nothing (as ReadStore
  // passes over both in the run history).
  if (!summary.targeted && !summary.writes_only && !summary.lease_lost &&
      summary.unreachable.empty())
    f_->last_success_at.Set(static_cast<double>(summary.finished_ms) / 1000);
}

void Metrics::AddWebhookEvents(const std::string& system, WebhookOutcome outcome, int64_t count) {
  if (count <= 0 || systems_.count(system) == 0) return;  // never a label a caller made up
  f_->webhook_events.Add({{"system", system}, {"outcome", WebhookOutcomeName(outcome)}})
      .Increment(static_cast<double>(count));
}

Status Metrics::ReadStore(Store& store) {
  auto outbox = store.OutboxCounts();
  if (!outbox.ok()) return outbox.status();
  auto dead = store.DeadLetterCounts();
  if (!dead.ok()) return dead.status();
  auto runs = store.RecentRuns(50);
  if (!runs.ok()) return runs.status();
  auto count_of = [](const nlohmann::json& counts, const std::string& system) {
    auto it = counts.find(system);
    return it == counts.end() ? 0.0 : it->get<double>();
  };
  for (const std::string& system : systems_) {
    f_->outbox_pending.Add({{"system", system}}).Set(count_of(*outbox, system));
    f_->dead_letters.Add({{"system", system}}).Set(count_of(*dead, system));
  }
  for (const RunRecord& run : *runs) {  // newest first
    if (run.mode == "dry-run" || run.mode == "webhook" || run.mode == "writes" ||
        (run.outcome != "ok" && run.outcome != "dead-lettered"))
      continue;
    const double at = static_cast<double>(run.finished_ms) / 1000;
    if (at > f_->last_success_at.Value()) f_->last_success_at.Set(at);
    break;
  }
  return Status::Ok();
}

std::string Metrics::Text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

Status Metrics::WriteFile(const std::string& path) const {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << Text();
    out.close();
    if (!out) {
      std::remove(temporary.c_str());
      return Status(StatusCode::kFailedPrecondition,
                    "cannot write the metrics to " + path + " (through " + temporary + ")");
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return Status(StatusCode::kFailedPrecondition, "cannot rename " + temporary + " to " + path);
  }
  return Status::Ok();
}

}  // namespace crmbridge
