// Customer portal error bodies -> Status.
//
// Every portal error is {"error":{"code":…,"message":…}} (mocks/portal/openapi.yaml
// components.schemas.Error), and the code is the portal's own classification, so it decides the
// Status code; the HTTP status decides only when the body is not the portal's (a proxy's page):
//   bad_request -> kInvalidArgument        unauthorized -> kUnauthenticated
//   not_found -> kNotFound                 conflict -> kAlreadyExists
//   idempotency_mismatch -> kFailedPrecondition (a key reused with another body: a client bug)
//   rate_limited -> kResourceExhausted, with Retry-After
//   internal, and any 5xx -> kUnavailable
//
// Pure functions, safe to call from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "src/core/transport.h"

namespace crmbridge::portal {

struct PortalError {
  std::string code;  // "bad_request", "conflict", ...
  std::string message;
};

// Parses a portal error body; nullopt when `body` has no "error" object.
std::optional<PortalError> ParsePortalError(std::string_view body);

// OK for 1xx-3xx. Otherwise the code from the table above, Retry-After and http_status from the
// response, system "portal", and the message "<what>: <code>: <message>", redacted (a body that is
// not the portal's is quoted as an excerpt instead). Nothing of the request, so never its token.
Status StatusFromPortal(const Response& response, const std::string& what);

}  // namespace crmbridge::portal
