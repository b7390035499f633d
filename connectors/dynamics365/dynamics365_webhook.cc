#include "connectors/dynamics365/dynamics365_webhook.h"

#include <cctype>
#include <map>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/core/json_text.h"
#include "src/core/hash.h"

namespace crmbridge::dynamics365 {
namespace {

using nlohmann::json;

constexpr char kNilGuid[] = "00000000-0000-0000-0000-000000000000";

WebhookReceipt Refuse(int status, std::string why) {
  WebhookReceipt r;
  r.http_status = status;
  r.error = std::move(why);
  return r;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The values of `name` in the query of `url`, %XX decoded. A '+' stays a '+': keys are
// base64-like, and a sender that does not encode them sends their '+' as it is.
std::vector<std::string> QueryValues(const std::string& url, const std::string& name) {
  std::vector<std::string> values;
  const size_t q = url.find('?');
  if (q == std::string::npos) return values;
  std::string query = url.substr(q + 1);
  if (const size_t hash = query.find('#'); hash != std::string::npos) query.resize(hash);
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string pair = query.substr(start, end - start);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      const std::string raw = eq == std::string::npos ? "" : pair.substr(eq + 1);
      std::string value;
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '%' && i + 2 < raw.size() && HexValue(raw[i + 1]) >= 0 &&
            HexValue(raw[i + 2]) >= 0) {
          value.push_back(static_cast<char>(HexValue(raw[i + 1]) * 16 + HexValue(raw[i + 2])));
          i += 2;
        } else {
          value.push_back(raw[i]);
        }
      }
      values.push_back(std::move(value));
    }
    start = end + 1;
  }
  return values;
}

std::string Text(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// A GUID as Dataverse writes it (8-4-4-4-12 hex digits), lower-cased as the Web API returns ids;
// "" when `text` is not one.
std::string Guid(const std::string& text) {
  if (text.size() != 36) return "";
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return "";
    } else if (HexValue(c) < 0) {
      return "";
    }
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

// A GUID that names something: present, well formed and not all zeros.
std::string NamingGuid(const json& context, const char* key) {
  const std::string g = Guid(Text(context, key));
  return g == kNilGuid ? "" : g;
}

// The value of `key` in a serialized ParameterCollection ([{"key": ..., "value": ...}]).
json Parameter(const json& context, const char* collection, const std::string& key) {
  auto it = context.find(collection);
  if (it == context.end() || !it->is_array()) return nullptr;
  for (const json& p : *it)
    if (p.is_object() && p.value("key", json()) == key) return p.value("value", json());
  return nullptr;
}

}  // namespace

std::optional<int64_t> ParseJsonDate(const std::string& text) {
  const std::string head = "/Date(", tail = ")/";
  if (text.size() <= head.size() + tail.size() || text.compare(0, head.size(), head) != 0 ||
      text.compare(text.size() - tail.size(), tail.size(), tail) != 0)
    return std::nullopt;
  const std::string inner = text.substr(head.size(), text.size() - head.size() - tail.size());
  size_t i = 0;
  const bool negative = inner[0] == '-';
  if (negative) ++i;
  const size_t digits_at = i;
  int64_t ms = 0;
  for (; i < inner.size() && std::isdigit(static_cast<unsigned char>(inner[i])); ++i) {
    if (i - digits_at >= 16) return std::nullopt;  // past any date
    ms = ms * 10 + (inner[i] - '0');
  }
  if (i == digits_at) return std::nullopt;
  // The milliseconds are UTC whatever follows: "+hhmm" only says which zone the sender was in.
  if (i < inner.size()) {
    if ((inner[i] != '+' && inner[i] != '-') || inner.size() - i != 5) return std::nullopt;
    for (size_t k = i + 1; k < inner.size(); ++k)
      if (!std::isdigit(static_cast<unsigned char>(inner[k]))) return std::nullopt;
  }
  return negative ? -ms : ms;
}

WebhookReceipt ReceiveWebhook(const SystemConfig& config, const WebhookRequest& request) {
  auto key = config.auth.find("webhook_key");
  if (key == config.auth.end() || key->second.empty())
    return Refuse(401, "no auth.webhook_key is configured, so no delivery can be trusted");
  std::vector<std::string> presented = QueryValues(request.url, "code");
  if (auto h = request.headers.find(kWebhookKeyHeader); h != request.headers.end())
    presented.push_back(h->second);
  if (presented.empty())
    return Refuse(401, "no key: neither a code query value (WebhookKey) nor an x-functions-key "
                       "header (HttpHeader)");
  for (const std::string& p : presented)
    if (!ConstantTimeEquals(p, key->second))
      return Refuse(401, "the key presented is not the system's auth.webhook_key");

  const json context = ParseJsonOrDiscarded(request.body);
  if (context.is_discarded() || !context.is_object())
    return Refuse(400, "the body is not a RemoteExecutionContext JSON object");
  const std::string message = Text(context, "MessageName");
  const std::string entity = Text(context, "PrimaryEntityName");
  if (message.empty() || entity.empty())
    return Refuse(400, "the execution context has no MessageName or PrimaryEntityName");

  WebhookReceipt receipt;
  // The messages that change a row, and the tables crmbridge reads by their entity sets (the
  // names mappings use). A step on any other message or table announces nothing to read.
  static const std::set<std::string> kChanges = {
      "Create", "Update", "Upsert", "Delete", "Assign", "SetState", "SetStateDynamicEntity", "Merge"};
  static const std::map<std::string, std::string> kSets = {{"account", "accounts"},
                                                           {"contact", "contacts"},
                                                           {"opportunity", "opportunities"},
                                                           {"annotation", "annotations"},
                                                           {"task", "tasks"}};
  auto set = kSets.find(entity);
  if (!kChanges.count(message) || set == kSets.end()) {
    receipt.ignored = 1;
    return receipt;
  }
  std::string id = Guid(Text(context, "PrimaryEntityId"));
  if (id.empty())
    return Refuse(400, "a " + message + " of " + entity + " without a PrimaryEntityId GUID");
  if (id == kNilGuid) {
    // A Create before its main operation has no row yet; after it, the new id is an output.
    const json created = Parameter(context, "OutputParameters", "id");
    id = created.is_string() ? Guid(created.get<std::string>()) : "";
    if (id.empty() || id == kNilGuid) {
      receipt.ignored = 1;
      return receipt;
    }
  }
  int64_t occurred_ms = 0;
  if (auto on = context.find("OperationCreatedOn"); on != context.end() && !on->is_null()) {
    const auto ms = on->is_string() ? ParseJsonDate(on->get<std::string>()) : std::nullopt;
    if (!ms) return Refuse(400, "OperationCreatedOn is not a /Date(milliseconds)/ value");
    occurred_ms = *ms;
  }
  // What tells two executions apart, and is the same when Dataverse calls again for one:
  // OperationId is the system job of an asynchronous step (one per execution, unchanged on the
  // retry); a synchronous step has none, so RequestId, and failing that the CorrelationId (shared
  // by every operation one request causes) with the operation's time.
  std::string execution = NamingGuid(context, "OperationId");
  if (execution.empty()) execution = NamingGuid(context, "RequestId");
  if (execution.empty()) {
    const std::string correlation = NamingGuid(context, "CorrelationId");
    if (correlation.empty())
      return Refuse(400, "the execution context has no OperationId, RequestId or CorrelationId");
    execution = correlation + "@" + std::to_string(occurred_ms);
  }
  std::vector<std::string> ids = {id};
  // A merge deactivates the subordinate row into the target: both are read again.
  if (message == "Merge") {
    const json sub = Parameter(context, "InputParameters", "SubordinateId");
    if (const std::string s = sub.is_string() ? Guid(sub.get<std::string>()) : ""; !s.empty())
      ids.push_back(s);
  }
  for (const std::string& record : ids) {
    AnnouncedChange c;
    c.object = set->second;
    c.record_id = record;
    c.kind = message;
    c.occurred_ms = occurred_ms;
    c.dedupe_key = message + ":" + entity + ":" + record + ":" + execution;
    receipt.changes.push_back(std::move(c));
  }
  return receipt;
}

}  // namespace crmbridge::dynamics365
