#include "connectors/dynamics365/dynamics365_errors.h"

#include <nlohmann/json.hpp>

#include "src/core/json_text.h"
#include "src/core/redaction.h"
#include "src/core/utf8.h"

namespace crmbridge::dynamics365 {

namespace {

std::string StringField(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Long AADSTS descriptions carry trace ids and timestamps after the first sentence; keep a bounded
// prefix so one Status stays one readable log line.
constexpr size_t kMaxDescription = 300;

}  // namespace

std::optional<DataverseError> ParseDataverseError(std::string_view body) {
  auto j = ParseJsonOrDiscarded(body);
  if (!j.is_object()) return std::nullopt;
  auto error = j.find("error");
  if (error == j.end() || !error->is_object()) return std::nullopt;
  DataverseError e;
  e.code = StringField(*error, "code");
  e.message = StringField(*error, "message");
  return e;
}

Status StatusFromDataverse(const Response& response, const std::string& what) {
  if (response.status < 400) return Status::Ok();
  auto parsed = ParseDataverseError(response.body);
  if (!parsed) return StatusFromResponse(response, "dynamics365", what);  // quotes an excerpt
  std::string text = what;
  if (!parsed->code.empty()) text += ": " + parsed->code;
  if (!parsed->message.empty()) text += ": " + parsed->message;
  Response headers_only;
  headers_only.status = response.status;
  headers_only.headers = response.headers;
  return StatusFromResponse(headers_only, "dynamics365", Redactor::Global().Redact(text));
}

Status StatusFromTokenEndpoint(const Response& response) {
  std::string detail = "HTTP " + std::to_string(response.status);
  auto j = ParseJsonOrDiscarded(response.body);
  if (j.is_object()) {
    const std::string error = StringField(j, "error");
    const std::string description = StringField(j, "error_description");
    const std::string correlation = StringField(j, "correlation_id");
    if (!error.empty()) detail = error;
    // Cut between characters: Entra ID words its descriptions in the tenant's language.
    if (!description.empty())
      detail += ": " + std::string(Utf8Prefix(description, kMaxDescription));
    if (!correlation.empty()) detail += " correlation_id=" + correlation;
  }
  const bool busy = response.status == 429 || response.status >= 500;
  Status s(busy ? StatusCode::kUnavailable : StatusCode::kUnauthenticated,
           Redactor::Global().Redact(
               busy ? "dynamics365: the token endpoint is unavailable: " + detail
                    : "dynamics365: the token endpoint refused the client credentials: " + detail));
  s.set_http_status(response.status).set_system("dynamics365");
  if (busy) {
    // Keep the server's Retry-After, if any, for the retry decision.
    Response headers_only;
    headers_only.status = response.status;
    headers_only.headers = response.headers;
    Status with_delay = StatusFromResponse(headers_only, "dynamics365", "");
    if (with_delay.retry_after()) s.set_retry_after(*with_delay.retry_after());
  }
  return s;
}

}  // namespace crmbridge::dynamics365
