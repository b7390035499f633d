// HubSpot webhook deliveries (developers.hubspot.com, "Validating requests", v3; "Webhooks API").
//
// A delivery is a POST whose body is a JSON array of at most 100 events. It is HubSpot's when
// X-HubSpot-Signature-v3 equals base64(HMAC-SHA256(the app's client secret, method + URI + body +
// X-HubSpot-Request-Timestamp)), where URI is the URL HubSpot called with %3A %2F %3F %40 %21 %24
// %27 %28 %29 %2A %2C %3B decoded, and the timestamp (milliseconds) is at most 5 minutes old.
// Events come in no particular order and may repeat; eventId alone is documented as not unique.
#pragma once

#include <string>

#include "connectors/webhook.h"

namespace crmbridge::hubspot {

// The longest a delivery may have been underway (HubSpot: reject anything older than 5 minutes).
inline constexpr int64_t kWebhookMaxAgeMs = 5 * 60 * 1000;
inline constexpr size_t kWebhookMaxEvents = 100;

// `url` with the characters HubSpot decodes before signing decoded.
std::string SignedUri(const std::string& url);

// Checks and reads one delivery; the client secret is `auth.client_secret` of `config`.
WebhookReceipt ReceiveWebhook(const SystemConfig& config, const WebhookRequest& request);

}  // namespace crmbridge::hubspot
