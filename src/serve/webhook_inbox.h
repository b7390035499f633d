// The HTTP front of `crmbridge serve`: health endpoints and the webhook inbox.
//
//   GET  /healthz               200 while the process serves
//   GET  /readyz                200 when the state store answers and no system refused
//                               crmbridge's credentials in the last run, else 503 saying why
//   GET  /metrics               Prometheus text format (src/metrics), when given a Metrics
//   GET  /                      the live status page (status_page.h), when given the plan;
//   GET  /status/live           the part of it that the page fetches again every few seconds
//   POST /webhooks/{system}     a delivery from the system of that name, read by its kind's
//                               WebhookReceiver (connectors/registry.h); the changes it announces
//                               are stored (Store::AddWebhookEvents) before the 200, so none is
//                               lost once it is answered; then Wake() tells the runner
//
// Answers: 401 for a delivery its receiver does not trust, 400 malformed, 404 for a system that
// is not configured or takes no webhooks, 413 for a body over kMaxWebhookBody, 411 for a body of
// no declared length (chunked: refused before it is read, as no limit would hold), 503 when the store
// cannot keep the changes (the sender retries). It binds loopback unless told otherwise: TLS and
// public exposure are the ingress's job.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "src/config/app_config.h"
#include "src/core/clock.h"
#include "src/core/status.h"
#include "mappings/mapping.h"
#include "src/metrics/metrics.h"
#include "state/store.h"

namespace httplib {
class Server;
}

namespace crmbridge {

inline constexpr size_t kMaxWebhookBody = 1024 * 1024;
// How often the status page fetches its live part again.
inline constexpr int64_t kStatusRefreshMs = 5000;

struct InboxOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see port())
  // The URL the senders call this server at, scheme and host (https://sync.example.com), for the
  // signatures that cover it; empty: http:// and the request's Host header.
  std::string public_url;
};

class WebhookInbox {
 public:
  // None of the pointers are owned; all must outlive the inbox. `metrics` may be null (no
  // /metrics, nothing counted).
  WebhookInbox(const AppConfig* config, Store* store, Clock* clock, InboxOptions options,
               Metrics* metrics = nullptr, const MappingPlan* plan = nullptr);
  ~WebhookInbox();

  // Binds and starts serving on a thread of its own. kUnavailable when the address is taken.
  Status Start();
  void Stop();
  int port() const { return port_; }

  // Blocks until a delivery has stored a change, `timeout_ms` passes, or Stop(); true when woken
  // by a delivery (changes stored since the last call).
  bool WaitForChanges(int64_t timeout_ms);
  // Wakes WaitForChanges without a delivery (stop requested).
  void Wake();

  // The systems whose credentials the last run saw refused, with why: /readyz answers 503 while
  // there is one, since such a process syncs nothing with that system.
  void SetCredentialFailures(std::map<std::string, std::string> failures);

  // Deliveries answered, by outcome, since start.
  int64_t accepted() const { return accepted_.load(); }
  int64_t refused() const { return refused_.load(); }

 private:
  void Route();

  const AppConfig* config_;
  Store* store_;
  Clock* clock_;
  InboxOptions options_;
  Metrics* metrics_;
  const MappingPlan* plan_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool changed_ = false;
  bool woken_ = false;
  std::map<std::string, std::string> credential_failures_;  // guarded by mu_
  int64_t last_webhook_ms_ = 0;                             // guarded by mu_
  std::string last_webhook_system_;                         // guarded by mu_
  std::atomic<int64_t> accepted_{0}, refused_{0};
};

}  // namespace crmbridge
