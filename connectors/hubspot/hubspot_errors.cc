#include "connectors/hubspot/hubspot_errors.h"

#include <nlohmann/json.hpp>

#include "connectors/hubspot/hubspot_limits.h"
#include "src/core/json_text.h"
#include "src/core/redaction.h"

namespace crmbridge::hubspot {

namespace {

std::string StringField(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::optional<HubSpotError> ParseHubSpotError(std::string_view body) {
  auto j = ParseJsonOrDiscarded(body);
  if (!j.is_object()) return std::nullopt;
  HubSpotError e;
  e.category = StringField(j, "category");
  // Rate-limit bodies name their kind in errorType instead of category (refs/hubspot §11).
  if (e.category.empty()) e.category = StringField(j, "errorType");
  e.sub_category = StringField(j, "subCategory");
  e.message = StringField(j, "message");
  e.correlation_id = StringField(j, "correlationId");
  e.policy_name = StringField(j, "policyName");
  auto errors = j.find("errors");
  if (errors != j.end() && errors->is_array()) {
    for (const auto& item : *errors) {
      if (!item.is_object()) continue;
      std::string m = StringField(item, "message");
      if (!m.empty()) e.details.push_back(std::move(m));
    }
  }
  return e;
}

std::optional<HttpReading> ClassifyHubSpotHttp(const Response& response) {
  HttpReading reading;
  switch (response.status) {
    case 423:  // Locked
      reading.code = StatusCode::kUnavailable;
      reading.min_wait = std::chrono::milliseconds(hubspot::kLockedMinWaitMs);
      return reading;
    case 477:  // Migration in progress
      reading.code = StatusCode::kUnavailable;
      return reading;
    case 429: {
      // Most 429s are the burst limit: the body is parsed only when it may name the daily one.
      if (response.body.find("DAILY") != std::string::npos) {
        auto error = ParseHubSpotError(response.body);
        if (error && error->policy_name == "DAILY") {
          reading.code = StatusCode::kFailedPrecondition;
          return reading;
        }
      }
      reading.code = StatusCode::kResourceExhausted;
      reading.wait = HeaderDuration(response, "X-HubSpot-RateLimit-Interval-Milliseconds",
                                    std::chrono::milliseconds(1));
      return reading;
    }
    default:
      return std::nullopt;
  }
}

Status StatusFromHubSpot(const Response& response, const std::string& what) {
  if (response.status < 400) return Status::Ok();
  auto parsed = ParseHubSpotError(response.body);
  if (!parsed) {
    return StatusFromResponse(response, "hubspot", what, ClassifyHubSpotHttp);  // quotes an excerpt
  }

  std::string text = what;
  if (!parsed->category.empty()) text += ": " + parsed->category;
  if (!parsed->message.empty()) text += ": " + parsed->message;
  if (!parsed->details.empty()) {
    std::string joined;
    for (const std::string& d : parsed->details) joined += (joined.empty() ? "" : "; ") + d;
    text += " (" + joined + ")";
  }
  if (!parsed->correlation_id.empty()) text += " correlationId=" + parsed->correlation_id;
  // Messages can echo submitted values; a Status message ends up in logs and dead letters.
  text = Redactor::Global().Redact(text);

  if (response.status == 429 && parsed->policy_name == "DAILY") {
    // A daily limit does not lift within a run: retrying would only burn the next day's budget.
    Status daily(StatusCode::kFailedPrecondition,
                 text + ": HubSpot's daily API limit is used up; requests resume after its reset");
    daily.set_http_status(429).set_system("hubspot");
    return daily;
  }
  Response headers_only;
  headers_only.status = response.status;
  headers_only.headers = response.headers;
  return StatusFromResponse(headers_only, "hubspot", std::move(text), ClassifyHubSpotHttp);
}

}  // namespace crmbridge::hubspot
