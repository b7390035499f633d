#include "connectors/portal/portal_errors.h"

#include <nlohmann/json.hpp>

#include "src/core/json_text.h"
#include "src/core/redaction.h"

namespace crmbridge::portal {

namespace {

std::string StringField(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<StatusCode> CodeFor(const std::string& code) {
  if (code == "bad_request") return StatusCode::kInvalidArgument;
  if (code == "unauthorized") return StatusCode::kUnauthenticated;
  if (code == "not_found") return StatusCode::kNotFound;
  if (code == "conflict") return StatusCode::kAlreadyExists;
  if (code == "idempotency_mismatch") return StatusCode::kFailedPrecondition;
  if (code == "rate_limited") return StatusCode::kResourceExhausted;
  if (code == "internal") return StatusCode::kUnavailable;
  return std::nullopt;
}

}  // namespace

std::optional<PortalError> ParsePortalError(std::string_view body) {
  auto j = ParseJsonOrDiscarded(body);
  if (!j.is_object()) return std::nullopt;
  auto error = j.find("error");
  if (error == j.end() || !error->is_object()) return std::nullopt;
  return PortalError{StringField(*error, "code"), StringField(*error, "message")};
}

Status StatusFromPortal(const Response& response, const std::string& what) {
  if (response.status < 400) return Status::Ok();
  auto parsed = ParsePortalError(response.body);
  if (!parsed) return StatusFromResponse(response, "portal", what);  // quotes an excerpt
  std::string text = what;
  if (!parsed->code.empty()) text += ": " + parsed->code;
  if (!parsed->message.empty()) text += ": " + parsed->message;
  // Messages echo submitted values (an email, an external id); a Status message ends up in logs
  // and dead letters.
  text = Redactor::Global().Redact(text);
  Response headers_only;
  headers_only.status = response.status;
  headers_only.headers = response.headers;
  Status by_http = StatusFromResponse(headers_only, "portal", text);  // Retry-After, http_status
  auto code = CodeFor(parsed->code);
  // A 5xx is the server's trouble whatever its body claims: worth another attempt.
  if (!code || response.status >= 500) return by_http;
  Status s(*code, text);
  s.set_http_status(response.status).set_system("portal");
  if (by_http.retry_after()) s.set_retry_after(*by_http.retry_after());
  return s;
}

}  // namespace crmbridge::portal
