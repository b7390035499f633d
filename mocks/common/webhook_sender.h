// WebhookSender: how a mock delivers webhooks to a subscribed URL, whatever the vendor's format.
//
// A mock queues one JSON event per change; a thread of the sender's own gathers what came in
// together (a 50 ms pause), makes deliveries of at most `max_events` events each, and POSTs each
// as the vendor's `render` builds it. A delivery whose answer `retried` says is worth another try is
// tried again after a backoff that doubles (`retry_ms`, 2 x retry_ms, ...: the vendor's hours
// compressed), up to `max_attempts` in all, then given up.
//
// Faults, as deliveries go wrong in the field: `duplicate` (every delivery made twice), `reorder`
// (the deliveries due together, and the events of each, in reverse order), `drop=P` (a delivery
// lost with probability P, never made), `late` and the vendor's bad-credential fault (`badsig`,
// `badkey`), which `render` applies as the vendor's deliveries show them.
//
// Subscribed with {"url": "http://...", <credential field>: "...", "faults": [...], "retry_ms": N}
// (ServeWebhookAdmin serves that as POST /__admin/webhooks, and the counts as GET).
//
// Thread-safety: Enqueue, Subscribe and Stats may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/core/status.h"

namespace httplib {
class Server;
}

namespace crmbridge::mocks {

struct WebhookSubscription {
  std::string url;         // where deliveries go, as http://host:port/path
  std::string credential;  // what proves a delivery is the vendor's (a signing secret, a key)
  bool duplicate = false, reorder = false, late = false, bad_credential = false;
  double drop = 0;
  int retry_ms = 200;
};

// One attempt of one delivery, as the vendor sends it.
struct OutgoingDelivery {
  std::string target;  // the URL called: the subscribed one, with any query the vendor adds
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// What differs from vendor to vendor.
struct WebhookVendor {
  std::string credential_field;      // the subscription's key for the credential ("secret")
  std::string bad_credential_fault;  // the fault that spoils the credential ("badsig")
  size_t max_events = 1;             // events per delivery
  int max_attempts = 1;              // the first attempt and the retries
  int read_timeout_s = 5;            // how long the vendor waits for an answer
  // Whether an attempt answered `status` (0: no answer at all) is tried again.
  std::function<bool(int status)> retried;
  // Builds attempt `attempt` (0 = the first) of a delivery of `events` for `sub`.
  std::function<OutgoingDelivery(const std::vector<nlohmann::json>& events, int attempt,
                                 const WebhookSubscription& sub)>
      render;
};

class WebhookSender {
 public:
  explicit WebhookSender(WebhookVendor vendor);
  ~WebhookSender();
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  // Subscribes (replacing any subscription); kInvalidArgument for a URL that is not http:// or an
  // unknown fault.
  Status Subscribe(const nlohmann::json& request);
  bool subscribed() const;
  // Queues one event for delivery; nothing while no URL is subscribed.
  void Enqueue(nlohmann::json event);
  // Attempts made, deliveries answered 2xx, retried, given up (out of attempts, or answered with
  // a status the vendor does not retry), dropped on purpose; events queued; deliveries pending.
  nlohmann::json Stats() const;

 private:
  struct Batch {
    std::vector<nlohmann::json> events;
    int attempt = 0;
    int64_t due_ms = 0;
  };
  void Loop();
  // The HTTP status the subscribed URL answered, or 0 when it did not answer.
  int Deliver(const Batch& batch, const WebhookSubscription& sub);

  const WebhookVendor vendor_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  WebhookSubscription sub_;
  bool subscribed_ = false;
  bool stop_ = false;
  std::vector<nlohmann::json> queued_;
  std::deque<Batch> retries_;
  std::mt19937_64 rng_{7};
  int64_t attempts_ = 0, delivered_ = 0, retried_ = 0, given_up_ = 0, dropped_ = 0, events_ = 0;
  std::thread thread_;
};

// Serves POST /__admin/webhooks (subscribes `sender`; 204, or 400 naming what is wrong) and
// GET /__admin/webhooks (its Stats()) on `server`.
void ServeWebhookAdmin(httplib::Server& server, WebhookSender* sender);

// Milliseconds since the epoch, by the real clock (deliveries leave in real time).
int64_t WebhookNowMs();

}  // namespace crmbridge::mocks
