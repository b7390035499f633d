// What a system's webhook delivery says, read by the connector kind that knows its format.
//
// A receiver checks that a delivery comes from the system (its signature or key), then names the
// records it announces as changed. It stores nothing and reads nothing: the caller stores the
// announced changes, answers the sender, and has the records read again as a run reads them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "src/config/app_config.h"

namespace crmbridge {

struct WebhookRequest {
  std::string method;
  // The URL as the sender called it (scheme, host, path and query), which a signature may cover;
  // behind a proxy, the public one.
  std::string url;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  int64_t now_ms = 0;
};

// A record the delivery announces as changed.
struct AnnouncedChange {
  std::string object;      // native object, as mappings name it (tickets, contacts)
  std::string record_id;   // native id
  std::string kind;        // the vendor's event type
  std::string dedupe_key;  // the same for two deliveries of one event
  int64_t occurred_ms = 0;
};

struct WebhookReceipt {
  // 200: accepted (`changes` may be empty); 401: not from the system (bad or missing signature,
  // stale timestamp); 400: malformed. Nothing of a refused delivery is kept.
  int http_status = 200;
  std::string error;  // why it was refused: never a secret or an expected signature
  std::vector<AnnouncedChange> changes;
  int ignored = 0;  // events of a type that announces no record change crmbridge reads
};

// Reads one delivery for the system `config` describes.
using WebhookReceiver =
    std::function<WebhookReceipt(const SystemConfig& config, const WebhookRequest& request)>;

}  // namespace crmbridge
