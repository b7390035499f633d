// Metrics: what runs, API calls and webhooks did, in Prometheus' text exposition format.
//
// One Metrics lives as long as the process: `crmbridge serve` answers GET /metrics from it, and
// `sync --metrics-file` writes it once the run is done (for node_exporter's textfile collector).
// Label values are only system and entity names from the configuration and HTTP status codes:
// never a record id, an email, or anything else a caller or a record could make unbounded.
//
// Thread-safety: every method may be called from any thread (prometheus-cpp's metrics are
// atomic; the families are created once, in the constructor, for every configured system).
#pragma once

#include <memory>
#include <set>
#include <string>

#include "src/core/status.h"
#include "src/core/transport.h"
#include "src/engine/run_summary.h"
#include "state/store.h"

namespace prometheus {
class Registry;
}

namespace crmbridge {

// What became of one webhook delivery's events, as counted by crmbridge_webhook_events_total.
enum class WebhookOutcome { kAccepted, kDuplicate, kIgnored, kRefused, kMalformed, kTooLarge };
const char* WebhookOutcomeName(WebhookOutcome outcome);

class Metrics {
 public:
  // `systems`: the configured system names, each given its series at zero from the start, so a
  // dashboard sees a flat line rather than no data before the first event.
  explicit Metrics(const std::set<std::string>& systems);
  ~Metrics();

  // Counts each API exchange of `request.system` by its HTTP status, or by how it failed
  // ("timeout", "connection", "refused"), and the 429s apart: give it to BuildConnectors.
  ExchangeObserver ApiObserver();

  // Adds a finished run: records read, writes by outcome, change lag, duration, and the time of
  // the last run that read and reached every system (not a targeted one).
  void AddRun(const RunSummary& summary);

  // `count` events of one delivery to `system` (a configured system's name) ended as `outcome`.
  void AddWebhookEvents(const std::string& system, WebhookOutcome outcome, int64_t count);

  // Reads the gauges that belong to the state store: pending outbox items and dead letters per
  // system, and the last successful run (so a fresh process, or a cron job, still reports it).
  Status ReadStore(Store& store);

  // Every metric in Prometheus' text format (version 0.0.4).
  std::string Text() const;

  // Writes Text() to `path` atomically (a temporary file beside it, then renamed), as
  // node_exporter's textfile collector requires: it never reads a half-written file.
  Status WriteFile(const std::string& path) const;

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> f_;
  std::set<std::string> systems_;
};

}  // namespace crmbridge
