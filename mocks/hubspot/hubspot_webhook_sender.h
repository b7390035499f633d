// HubSpotWebhookSender: the HubSpot mock's webhook deliveries, as HubSpot's Webhooks API makes them.
//
// Changes to subscribed objects are queued as events (eventId, subscriptionId, portalId,
// occurredAt, subscriptionType such as ticket.propertyChange, attemptNumber, objectId, and
// propertyName/propertyValue on a propertyChange) and POSTed to the subscribed URL in batches of
// at most 100, signed v3: X-HubSpot-Signature-v3 = base64(HMAC-SHA256(client secret, "POST" + URL
// + body + X-HubSpot-Request-Timestamp)). A delivery answered with anything but 2xx, or not at
// all, is retried with attemptNumber + 1 after a backoff that doubles (HubSpot: up to 10 retries
// over 24 hours; here compressed to `retry_ms`, 2 x retry_ms, ...), then given up.
//
// Faults, as deliveries go wrong in the field: `duplicate` (every batch delivered twice),
// `reorder` (a batch's events in reverse order), `drop=P` (a batch lost with probability P, never
// delivered), `late` (a batch's first attempt stamped 6 minutes old), `badsig` (its first attempt
// signed with another secret).
//
// Thread-safety: Enqueue may be called from any thread; one thread of its own delivers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/core/status.h"

namespace crmbridge::mocks {

struct WebhookSubscription {
  std::string url;     // where deliveries go, as http://host:port/path
  std::string secret;  // the app's client secret, which signs them
  bool duplicate = false, reorder = false, late = false, badsig = false;
  double drop = 0;
  int retry_ms = 200;
  int max_attempts = 11;  // the first and 10 retries
};

class HubSpotWebhookSender {
 public:
  HubSpotWebhookSender();
  ~HubSpotWebhookSender();

  // Subscribes (replacing any subscription); kInvalidArgument for a URL that is not http://.
  Status Subscribe(const nlohmann::json& request);
  bool subscribed() const;
  // Queues one change: `type` is the object type (tickets, companies, contacts, deals; others are
  // not subscribed and ignored), `change` creation, propertyChange or deletion.
  void Enqueue(const std::string& type, const std::string& change, int64_t object_id,
               int64_t occurred_ms, const std::string& property = "",
               const nlohmann::json& value = nullptr);
  // Deliveries made, answered 2xx, retried, given up, dropped on purpose; events queued.
  nlohmann::json Stats() const;

 private:
  struct Batch {
    std::vector<nlohmann::json> events;
    int attempt = 0;
    int64_t due_ms = 0;
  };
  void Loop();
  bool Deliver(const Batch& batch, const WebhookSubscription& sub);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  WebhookSubscription sub_;
  bool subscribed_ = false;
  bool stop_ = false;
  std::vector<nlohmann::json> queued_;
  std::deque<Batch> retries_;
  int64_t next_event_id_ = 1000;
  std::mt19937_64 rng_{7};
  int64_t attempts_ = 0, delivered_ = 0, retried_ = 0, given_up_ = 0, dropped_ = 0, events_ = 0;
  std::thread thread_;
};

}  // namespace crmbridge::mocks
