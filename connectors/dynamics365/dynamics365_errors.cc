#include "connectors/dynamics365/dynamics365_errors.h"

#include <nlohmann/json.hpp>

namespace crmbridge::dynamics365 {

Status StatusFromDataverse(const Response& response, const std::string& what) {
  if (response.status < 400) return Status::Ok();
  return StatusFromResponse(response, "dynamics365", what);
}

Status StatusFromTokenEndpoint(const Response& response) {
  std::string detail = "HTTP " + std::to_string(response.status);
  auto j = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    detail = j.value("error", std::string("error"));
    const std::string description = j.value("error_description", std::string());
    if (!description.empty()) detail += ": " + description.substr(0, 300);
  }
  Status s(response.status == 429 || response.status >= 500 ? StatusCode::kUnavailable
                                                             : StatusCode::kUnauthenticated,
           "dynamics365: the token endpoint refused the client credentials: " + detail);
  s.set_http_status(response.status).set_system("dynamics365");
  return s;
}

}  // namespace crmbridge::dynamics365
