// Percent-encoding for URL query values and application/x-www-form-urlencoded bodies.
#pragma once

#include <string>
#include <string_view>

namespace crmbridge {

// Every byte but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~) as %XX.
std::string PercentEncode(std::string_view text);

}  // namespace crmbridge
