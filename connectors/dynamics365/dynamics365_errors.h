// Dataverse and Entra ID error bodies -> Status.
//
// A Web API error body is {"error":{"code":"0x…","message":"…"}}; the code is "not related to the
// http status code and is frequently empty" (refs/dynamics365/reference.md §10), so the HTTP status
// decides the Status code and the body adds Dataverse's code and words. The token endpoint answers
// {"error":"invalid_client","error_description":"AADSTS…","correlation_id":…} (§1).
//
// Pure functions, safe to call from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "src/core/transport.h"

namespace crmbridge::dynamics365 {

struct DataverseError {
  std::string code;     // "0x80040217", often empty
  std::string message;  // "account With Id = … Does Not Exist"
};

// Parses a Web API error body; nullopt when `body` has no "error" object.
std::optional<DataverseError> ParseDataverseError(std::string_view body);

// OK for 1xx-3xx. Otherwise the code from StatusFromResponse() (Retry-After and system included)
// and the message "<what>: <code>: <message>", redacted; a body that is not Dataverse's error JSON
// is quoted as an excerpt instead.
Status StatusFromDataverse(const Response& response, const std::string& what);

// A failed client-credentials token request: kUnauthenticated (run-fatal for the system) with
// Entra ID's error, AADSTS description and correlation id, never the secret; 429 and 5xx are
// kUnavailable (the endpoint is busy, the credentials may be fine).
Status StatusFromTokenEndpoint(const Response& response);

}  // namespace crmbridge::dynamics365
