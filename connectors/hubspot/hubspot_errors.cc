#include "connectors/hubspot/hubspot_errors.h"

#include <nlohmann/json.hpp>

namespace crmbridge::hubspot {

Status StatusFromHubSpot(const Response& response, const std::string& what) {
  if (response.status >= 200 && response.status < 300) return Status::Ok();
  // StatusFromResponse appends a (redacted) excerpt of the body, which carries HubSpot's
  // category, message and correlationId.
  Status s = StatusFromResponse(response, "hubspot", what);
  // A DAILY limit does not lift within a run: retrying would only burn the next day's budget.
  auto body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.status == 429 && body.is_object() && body.value("policyName", "") == "DAILY") {
    Status daily(StatusCode::kFailedPrecondition,
                 what + ": HubSpot's daily API limit is used up; writes resume after its reset");
    daily.set_http_status(429).set_system("hubspot");
    return daily;
  }
  return s;
}

}  // namespace crmbridge::hubspot
