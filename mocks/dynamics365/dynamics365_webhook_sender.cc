#include "mocks/dynamics365/dynamics365_webhook_sender.h"

#include "mocks/dynamics365/dynamics365_schema.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace crmbridge::mocks {
namespace {

using nlohmann::json;

constexpr char kOrganization[] = "crmbmock";
constexpr char kOrganizationId[] = "5d5c2f1a-0000-4000-8000-00000000c001";  // as WhoAmI says
constexpr char kBusinessUnitId[] = "5d5c2f1a-0000-4000-8000-00000000b001";
constexpr char kUserId[] = "5d5c2f1a-0000-4000-8000-00000000a001";
constexpr int64_t kLateMs = 6 * 60 * 1000;

std::string Guid(std::mt19937_64& rng) {
  const uint64_t a = rng(), b = rng();
  return d365::FormatGuid(a, b);
}

// DataContractJsonSerializer's DateTime, as the context carries OperationCreatedOn.
std::string JsonDate(int64_t ms) { return "/Date(" + std::to_string(ms) + "+0000)/"; }

WebhookVendor Dataverse() {
  WebhookVendor v;
  v.credential_field = "key";
  v.bad_credential_fault = "badkey";
  v.max_events = 1;        // one call per step execution
  v.max_attempts = 2;      // retried once...
  v.read_timeout_s = 60;   // ...and waited for 60 seconds
  v.retried = [](int status) { return status == 502 || status == 503 || status == 504; };
  v.render = [](const std::vector<json>& events, int attempt, const WebhookSubscription& sub) {
    json context = events.front();
    if (sub.late) {
      // An async step that waited in the queue: the operation is older than its delivery.
      const std::string on = context.value("OperationCreatedOn", "");
      const int64_t ms = std::atoll(on.c_str() + std::min<size_t>(on.size(), 6));
      context["OperationCreatedOn"] = JsonDate(ms - kLateMs);
    }
    const std::string key =
        attempt == 0 && sub.bad_credential ? sub.credential + "-not" : sub.credential;
    std::string encoded;
    for (unsigned char c : key) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        encoded += static_cast<char>(c);
      } else {
        char hex[4];
        std::snprintf(hex, sizeof(hex), "%%%02X", c);
        encoded += hex;
      }
    }
    OutgoingDelivery out;
    out.target = sub.url + (sub.url.find('?') == std::string::npos ? "?" : "&") + "code=" + encoded;
    out.body = context.dump();
    static thread_local std::mt19937_64 rng{0x5eed};  // the delivering thread's own
    out.headers = {{"x-request-id", Guid(rng)},  // one per HTTP request
                   {"x-ms-dynamics-organization", kOrganization},
                   {"x-ms-dynamics-entity-name", context.value("PrimaryEntityName", "")},
                   {"x-ms-dynamics-request-name", context.value("MessageName", "")},
                   {"x-ms-correlation-request-id", context.value("CorrelationId", "")}};
    return out;
  };
  return v;
}

}  // namespace

Dynamics365WebhookSender::Dynamics365WebhookSender() : sender_(Dataverse()) {}

std::string Dynamics365WebhookSender::NewGuid() {
  std::lock_guard<std::mutex> lock(mu_);
  return Guid(rng_);
}

void Dynamics365WebhookSender::Enqueue(const std::string& message, const std::string& logical_name,
                                       const std::string& id, const json& attributes,
                                       int64_t occurred_ms) {
  if (!sender_.subscribed()) return;
  json target;
  if (message == "Delete") {
    target = {{"__type", "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts"},
              {"Id", id},
              {"KeyAttributes", json::array()},
              {"LogicalName", logical_name},
              {"Name", nullptr},
              {"RowVersion", nullptr}};
  } else {
    target = {{"__type", "Entity:http://schemas.microsoft.com/xrm/2011/Contracts"},
              {"Attributes", attributes.is_array() ? attributes : json::array()},
              {"EntityState", nullptr},
              {"FormattedValues", json::array()},
              {"Id", id},
              {"KeyAttributes", json::array()},
              {"LogicalName", logical_name},
              {"RelatedEntities", json::array()},
              {"RowVersion", nullptr}};
  }
  json output = json::array();
  if (message == "Create") output.push_back({{"key", "id"}, {"value", id}});
  json context = {
      {"BusinessUnitId", kBusinessUnitId},
      {"CorrelationId", NewGuid()},
      {"Depth", 1},
      {"InitiatingUserAzureActiveDirectoryObjectId", "00000000-0000-0000-0000-000000000000"},
      {"InitiatingUserId", kUserId},
      {"InputParameters", json::array({{{"key", "Target"}, {"value", target}}})},
      {"IsExecutingOffline", false},
      {"IsInTransaction", false},
      {"IsOfflinePlayback", false},
      {"IsolationMode", 1},
      {"MessageName", message},
      {"Mode", 1},  // asynchronous
      {"OperationCreatedOn", JsonDate(occurred_ms)},
      {"OperationId", NewGuid()},  // the system job of this execution
      {"OrganizationId", kOrganizationId},
      {"OrganizationName", kOrganization},
      {"OutputParameters", output},
      {"OwningExtension",
       {{"Id", "5d5c2f1a-0000-4000-8000-0000000000e1"},
        {"KeyAttributes", json::array()},
        {"LogicalName", "sdkmessageprocessingstep"},
        {"Name", "crmbridge: " + message + " of " + logical_name},
        {"RowVersion", nullptr}}},
      {"ParentContext", nullptr},
      {"PostEntityImages", json::array()},
      {"PreEntityImages", json::array()},
      {"PrimaryEntityId", id},
      {"PrimaryEntityName", logical_name},
      {"RequestId", nullptr},
      {"SecondaryEntityName", "none"},
      {"SharedVariables", json::array()},
      {"Stage", 40},  // PostOperation
      {"UserAzureActiveDirectoryObjectId", "00000000-0000-0000-0000-000000000000"},
      {"UserId", kUserId}};
  sender_.Enqueue(std::move(context));
}

}  // namespace crmbridge::mocks
