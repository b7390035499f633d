#include "mocks/hubspot/hubspot_webhook_sender.h"

#include <cctype>
#include <map>

#include "src/core/hash.h"

namespace crmbridge::mocks {
namespace {

using nlohmann::json;

constexpr int64_t kPortalId = 62515;

// The URI as HubSpot signs it: the app's target URL with %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A
// %2C %3B decoded (any other escape is kept), so a receiver that signs what it received, without
// decoding those, does not match.
std::string UriAsSigned(const std::string& url) {
  static const std::string kDecoded = ":/?@!$'()*,;";
  std::string out;
  for (size_t i = 0; i < url.size(); ++i) {
    if (url[i] == '%' && i + 2 < url.size() && std::isxdigit(static_cast<unsigned char>(url[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(url[i + 2]))) {
      const char c = static_cast<char>(std::stoi(url.substr(i + 1, 2), nullptr, 16));
      if (c != '\0' && kDecoded.find(c) != std::string::npos) {
        out.push_back(c);
        i += 2;
        continue;
      }
    }
    out.push_back(url[i]);
  }
  return out;
}

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
         HmacSha256Base64(secret, "POST" + UriAsSigned(sub.url) + out.body + std::to_string(ts))},
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
  if (change == "associationChange" && value.is_object())
    for (const auto& [key, v] : value.items()) e[key] = v;  // from/to, type, removed
  if (change == "merge" && value.is_object()) {
    // The record the merge made is the event's object; the two merged come with it.
    e["primaryObjectId"] = value.value("primary", json());
    e["mergedObjectIds"] = value.value("merged", json::array());
    e["newObjectId"] = object_id;
  }
  sender_.Enqueue(std::move(e));
}

void HubSpotWebhookSender::EnqueueAssociation(const std::string& from_type, int64_t from_id,
                                              const std::string& to_type, int64_t to_id,
                                              bool removed, int64_t occurred_ms) {
  static const std::map<std::string, std::string> kUpper = {
      {"tickets", "TICKET"}, {"companies", "COMPANY"}, {"contacts", "CONTACT"}, {"deals", "DEAL"},
      {"notes", "NOTE"}, {"tasks", "TASK"}};
  auto upper = [](const std::string& type) {
    auto it = kUpper.find(type);
    return it == kUpper.end() ? type : it->second;
  };
  for (int side = 0; side < 2; ++side) {
    const std::string& a = side == 0 ? from_type : to_type;
    const std::string& b = side == 0 ? to_type : from_type;
    const int64_t a_id = side == 0 ? from_id : to_id, b_id = side == 0 ? to_id : from_id;
    Enqueue(a, "associationChange", a_id, occurred_ms, "",
            json{{"associationType", upper(a) + "_TO_" + upper(b)},
                 {"fromObjectId", a_id},
                 {"toObjectId", b_id},
                 {"associationRemoved", removed},
                 {"isPrimaryAssociation", false}});
  }
}

}  // namespace crmbridge::mocks
