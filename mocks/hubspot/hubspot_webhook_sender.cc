#include "mocks/hubspot/hubspot_webhook_sender.h"

#include <map>

#include "src/core/hash.h"

namespace crmbridge::mocks {
namespace {

using nlohmann::json;

constexpr int64_t kPortalId = 62515;

WebhookVendor HubSpot() {
  WebhookVendor v;
  v.credential_field = "secret";
  v.bad_credential_fault = "badsig";
  v.max_events = 100;
  v.max_attempts = 11;  // the first and 10 retries
  v.read_timeout_s = 5;  // HubSpot waits 5 seconds for an answer
  v.retried = [](int) { return true; };
  v.render = [](const std::vector<json>& events, int attempt, const WebhookSubscription& sub) {
    json body = json::array();
    for (json e : events) {
      e["attemptNumber"] = attempt;
      body.push_back(std::move(e));
    }
    OutgoingDelivery out;
    out.target = sub.url;
    out.body = body.dump();
    const bool first = attempt == 0;
    const int64_t ts = WebhookNowMs() - (first && sub.late ? 6 * 60 * 1000 : 0);
    const std::string secret = first && sub.bad_credential ? sub.credential + "-not" : sub.credential;
    out.headers = {
        {"X-HubSpot-Signature-v3",
         HmacSha256Base64(secret, "POST" + sub.url + out.body + std::to_string(ts))},
        {"X-HubSpot-Request-Timestamp", std::to_string(ts)},
        {"X-HubSpot-Signature-Version", "v3"}};
    return out;
  };
  return v;
}

}  // namespace

HubSpotWebhookSender::HubSpotWebhookSender() : sender_(HubSpot()) {}

void HubSpotWebhookSender::Enqueue(const std::string& type, const std::string& change,
                                   int64_t object_id, int64_t occurred_ms,
                                   const std::string& property, const json& value) {
  static const std::map<std::string, std::string> kSubscribed = {
      {"tickets", "ticket"}, {"companies", "company"}, {"contacts", "contact"}, {"deals", "deal"}};
  auto it = kSubscribed.find(type);
  if (it == kSubscribed.end() || !sender_.subscribed()) return;
  json e = {{"eventId", next_event_id_++},
            {"subscriptionId", 9000 + static_cast<int>(it->first.size())},
            {"portalId", kPortalId},
            {"appId", 4711},
            {"occurredAt", occurred_ms},
            {"subscriptionType", it->second + "." + change},
            {"attemptNumber", 0},
            {"objectId", object_id},
            {"changeSource", "CRM"}};
  if (change == "propertyChange") {
    e["propertyName"] = property;
    e["propertyValue"] = value.is_string() ? value.get<std::string>() : "";
  }
  if (change == "merge" && value.is_array()) {
    // The survivor is the event's object; the ids it absorbed come with it.
    e["primaryObjectId"] = object_id;
    e["mergedObjectIds"] = value;
    e["newObjectId"] = object_id;
  }
  sender_.Enqueue(std::move(e));
}

}  // namespace crmbridge::mocks
