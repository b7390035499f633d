// Dataverse error bodies -> Status. The body is {"error":{"code":"0x…","message":"…"}}; the code is
// unrelated to the HTTP status (refs/dynamics365 §10), so the HTTP status decides the Status code
// and the body adds Dataverse's words. Token-endpoint errors (AADSTS…) have their own shape.
#pragma once

#include <string>

#include "src/core/transport.h"

namespace crmbridge::dynamics365 {

// OK for 1xx-3xx; otherwise StatusFromResponse() naming `what` (the body excerpt carries the
// Dataverse code and message).
Status StatusFromDataverse(const Response& response, const std::string& what);

// A failed client-credentials token request: always kUnauthenticated (run-fatal for the system),
// with Entra ID's error and description, never the secret.
Status StatusFromTokenEndpoint(const Response& response);

}  // namespace crmbridge::dynamics365
