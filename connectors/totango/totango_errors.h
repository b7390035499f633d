// Totango error answers -> Status.
//
// Totango's REST error body is not documented (refs/totango.md §9): JSON {"error": ...} from some
// routes, the plain text "Too many requests" from the rate limiter. The HTTP status decides the
// Status code (Retry-After included); the body only adds words, never logic.
//
// Pure functions, safe to call from any thread.
#pragma once

#include <string>

#include "src/core/transport.h"

namespace crmbridge::totango {

// OK for 1xx-3xx; otherwise StatusFromResponse() with "<what>: <the body's error text>", redacted.
Status StatusFromTotango(const Response& response, const std::string& what);

}  // namespace crmbridge::totango
