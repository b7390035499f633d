#include "connectors/hubspot/hubspot_webhook.h"

#include <cctype>
#include <cstdlib>
#include <map>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "src/core/json_text.h"
#include "src/core/hash.h"
#include "src/core/utf8.h"

namespace crmbridge::hubspot {
namespace {

using nlohmann::json;

WebhookReceipt Refuse(int status, std::string why) {
  WebhookReceipt r;
  r.http_status = status;
  r.error = std::move(why);
  return r;
}

std::string Header(const WebhookRequest& request, const std::string& name) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? "" : it->second;
}

// An id or time HubSpot sends as a number (a string is taken too); "" when it is neither.
std::string NumberText(const json& v) {
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_string()) return v.get<std::string>();
  return "";
}

// "ticket.propertyChange" -> {"tickets", "propertyChange"}; the object types crmbridge reads.
bool SplitSubscription(const std::string& type, std::string* object, std::string* change) {
  const size_t dot = type.find('.');
  if (dot == std::string::npos) return false;
  static const std::map<std::string, std::string> kObjects = {
      {"ticket", "tickets"}, {"company", "companies"}, {"contact", "contacts"}, {"deal", "deals"}};
  auto it = kObjects.find(type.substr(0, dot));
  if (it == kObjects.end()) return false;
  *object = it->second;
  *change = type.substr(dot + 1);
  static const std::set<std::string> kChanges = {"creation", "deletion",          "propertyChange",
                                                 "merge",    "restore",           "associationChange",
                                                 "privacyDeletion"};
  return kChanges.count(*change) > 0;
}

}  // namespace

std::string SignedUri(const std::string& url) {
  static const std::map<std::string, char> kDecoded = {
      {"3A", ':'}, {"2F", '/'}, {"3F", '?'}, {"40", '@'}, {"21", '!'}, {"24", '$'},
      {"27", '\''}, {"28", '('}, {"29", ')'}, {"2A", '*'}, {"2C", ','}, {"3B", ';'}};
  std::string out;
  out.reserve(url.size());
  for (size_t i = 0; i < url.size(); ++i) {
    if (url[i] == '%' && i + 2 < url.size()) {
      std::string hex = url.substr(i + 1, 2);
      for (char& c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (auto it = kDecoded.find(hex); it != kDecoded.end()) {
        out.push_back(it->second);
        i += 2;
        continue;
      }
    }
    out.push_back(url[i]);
  }
  return out;
}

WebhookReceipt ReceiveWebhook(const SystemConfig& config, const WebhookRequest& request) {
  auto secret = config.auth.find("client_secret");
  if (secret == config.auth.end() || secret->second.empty())
    return Refuse(401, "no auth.client_secret is configured, so no delivery can be verified");
  const std::string signature = Header(request, "x-hubspot-signature-v3");
  const std::string timestamp = Header(request, "x-hubspot-request-timestamp");
  if (signature.empty() || timestamp.empty())
    return Refuse(401, "no X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp header");
  char* end = nullptr;
  const long long sent_ms = std::strtoll(timestamp.c_str(), &end, 10);
  if (end == timestamp.c_str() || *end != '\0')
    return Refuse(401, "X-HubSpot-Request-Timestamp is not a number of milliseconds");
  if (request.now_ms - sent_ms > kWebhookMaxAgeMs)
    return Refuse(401, "the delivery is more than 5 minutes old (X-HubSpot-Request-Timestamp " +
                           timestamp + ")");
  const std::string expected = HmacSha256Base64(
      secret->second, request.method + SignedUri(request.url) + request.body + timestamp);
  if (expected.empty() || !ConstantTimeEquals(signature, expected))
    return Refuse(401, "X-HubSpot-Signature-v3 does not match the delivery");

  json events = ParseJsonOrDiscarded(request.body);
  if (events.is_discarded() || !events.is_array())
    return Refuse(400, "the body is not a JSON array of events");
  if (events.size() > kWebhookMaxEvents)
    return Refuse(400, "a delivery holds at most 100 events; this one holds " +
                           std::to_string(events.size()));
  WebhookReceipt receipt;
  // An event that names no record is skipped, not a reason to refuse the others: HubSpot would
  // retry the whole delivery, then drop it, good events and all. A delivery of nothing but such
  // events is refused.
  std::vector<std::string> malformed;
  for (size_t index = 0; index < events.size(); ++index) {
    const json& e = events[index];
    if (!e.is_object()) {
      malformed.push_back("event " + std::to_string(index + 1) + " is not a JSON object");
      continue;
    }
    const std::string type = e.value("subscriptionType", json()).is_string()
                                 ? e["subscriptionType"].get<std::string>()
                                 : "";
    std::string object, change;
    if (!SplitSubscription(type, &object, &change)) {
      ++receipt.ignored;
      continue;
    }
    const std::string occurred = NumberText(e.value("occurredAt", json()));
    const std::string event_id = NumberText(e.value("eventId", json()));
    // The records to read again: the one the event is about, and for a merge the survivor and
    // those it absorbed.
    std::vector<std::string> ids;
    if (const std::string id = NumberText(e.value("objectId", json())); !id.empty())
      ids.push_back(id);
    // An association event names its records as from and to; `from` is of the subscribed type
    // (HubSpot sends the reverse direction as an event of the other type).
    if (change == "associationChange")
      if (const std::string from = NumberText(e.value("fromObjectId", json())); !from.empty())
        ids.push_back(from);
    if (change == "merge") {
      if (const std::string p = NumberText(e.value("primaryObjectId", json())); !p.empty())
        ids.push_back(p);
      if (const json merged = e.value("mergedObjectIds", json()); merged.is_array())
        for (const json& m : merged)
          if (const std::string id = NumberText(m); !id.empty()) ids.push_back(id);
    }
    if (ids.empty()) {
      malformed.push_back("event " + std::to_string(index + 1) + " (" + PrintableText(type) +
                          ", eventId " + PrintableText(event_id) + ") has no objectId");
      continue;
    }
    // Without its time or id, the event's own values tell one change from another (a retried
    // delivery repeats them; only its attemptNumber grows).
    std::string identity = occurred + ":" + event_id;
    if (occurred.empty() || event_id.empty()) {
      json values = e;
      values.erase("attemptNumber");
      identity += ":" + HashJson(values);
    }
    for (const std::string& id : ids) {
      AnnouncedChange c;
      c.object = object;
      c.record_id = id;
      c.kind = change;
      c.occurred_ms = std::atoll(occurred.c_str());
      // eventId repeats across events, so the key is the whole identity of the event: HubSpot
      // sends the same values again when it retries a delivery.
      std::string property;
      if (const json p = e.value("propertyName", json()); p.is_string()) property = p.get<std::string>();
      c.dedupe_key = type + ":" + id + ":" + identity + ":" + property;
      receipt.changes.push_back(std::move(c));
    }
  }
  if (!malformed.empty() && receipt.changes.empty() && receipt.ignored == 0)
    return Refuse(400, malformed.front());
  for (const std::string& why : malformed)
    spdlog::warn("{}: a webhook event is skipped: {}; the next scheduled run reads what changed",
                 config.name, why);
  receipt.ignored += static_cast<int>(malformed.size());
  return receipt;
}

}  // namespace crmbridge::hubspot
