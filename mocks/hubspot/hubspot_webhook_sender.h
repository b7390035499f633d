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
// Subscribed with {"url", "secret", "faults", "retry_ms"}. Faults (mocks/common/webhook_sender.h):
// `duplicate`, `reorder`, `drop=P`, `late` (a batch's first attempt stamped 6 minutes old) and
// `badsig` (its first attempt signed with another secret).
//
// Thread-safety: Enqueue may be called from any thread; one thread of its own delivers.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "mocks/common/webhook_sender.h"

namespace crmbridge::mocks {

class HubSpotWebhookSender {
 public:
  HubSpotWebhookSender();

  WebhookSender& sender() { return sender_; }
  // Queues one change: `type` is the object type (tickets, companies, contacts, deals; others are
  // not subscribed and ignored), `change` creation, propertyChange or deletion.
  void Enqueue(const std::string& type, const std::string& change, int64_t object_id,
               int64_t occurred_ms, const std::string& property = "",
               const nlohmann::json& value = nullptr);
  // An association added or removed between two records: one associationChange event per
  // direction, each of its `from` record's type (TICKET_TO_COMPANY and COMPANY_TO_TICKET).
  void EnqueueAssociation(const std::string& from_type, int64_t from_id, const std::string& to_type,
                          int64_t to_id, bool removed, int64_t occurred_ms);

 private:
  std::atomic<int64_t> next_event_id_{1000};
  WebhookSender sender_;
};

}  // namespace crmbridge::mocks
