// HubSpot error bodies -> Status.
//
// An error body is {"status":"error","message":…,"correlationId":…,"category":…,"subCategory":…,
// "errors":[{"message":…,"code":…}],"policyName":…} with every field optional (HubSpot's own
// guidance, refs/hubspot/reference.md §10). The HTTP status decides the Status code; the body adds
// the vendor's words and the correlation id HubSpot support asks for.
//
// Pure functions, safe to call from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/core/transport.h"

namespace crmbridge::hubspot {

struct HubSpotError {
  std::string category;  // "VALIDATION_ERROR", "CONFLICT", "RATE_LIMITS", ...
  std::string sub_category;
  std::string message;
  std::string correlation_id;
  std::string policy_name;           // 429 only: "TEN_SECONDLY_ROLLING", "SECONDLY", "DAILY"
  std::vector<std::string> details;  // errors[].message, e.g. "discount was not a valid number"
};

// Parses a HubSpot error body; nullopt when `body` is not a JSON object.
std::optional<HubSpotError> ParseHubSpotError(std::string_view body);

// What HubSpot means by a status beyond HTTP's own reading, for the transport stack's retries and
// for StatusFromHubSpot(): 423 Locked is transient and waits at least 2 s; 477 Migration in
// progress is transient; a 429 for the DAILY policy does not lift within a run
// (kFailedPrecondition); another 429 without Retry-After waits what
// X-HubSpot-RateLimit-Interval-Milliseconds says. nullopt for every other status.
std::optional<HttpReading> ClassifyHubSpotHttp(const Response& response);

// OK for 1xx-3xx. Otherwise the code from StatusFromResponse() with ClassifyHubSpotHttp()
// (Retry-After and system included) and the message "<what>: <category>: <message> (<details>)
// correlationId=<id>", redacted; a body that is not JSON is quoted as an excerpt instead. A 429
// for the DAILY policy is kFailedPrecondition: it does not lift within a run, so retrying would
// be wrong.
Status StatusFromHubSpot(const Response& response, const std::string& what);

}  // namespace crmbridge::hubspot
