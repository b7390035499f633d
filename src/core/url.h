// Percent-encoding for URL query values and application/x-www-form-urlencoded bodies.
#pragma once

#include <string>
#include <string_view>

namespace crmbridge {

// Every byte but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~) as %XX.
std::string PercentEncode(std::string_view text);

// A name that may go into a URL as it is, as an OData column or a HubSpot property does: a letter
// or '_', then letters, digits and '_' (at most 128 characters).
bool IsPlainName(std::string_view text);

}  // namespace crmbridge
