// Percent-encoding for URL query values and application/x-www-form-urlencoded bodies, and the
// one place an absolute URL is split into where it goes and what it asks for.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace crmbridge {

// Every byte but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~) as %XX.
std::string PercentEncode(std::string_view text);

// A name that may go into a URL as it is, as an OData column or a HubSpot property does: a letter
// or '_', then letters, digits and '_' (at most 128 characters).
bool IsPlainName(std::string_view text);

// An absolute URL as RFC 3986 splits it: "https://u@host:8443/p?q#f" has the scheme "https", the
// authority "u@host:8443" (empty when nothing follows "://") and the rest "/p?q#f". The views
// point into the text given. `origin` is "scheme://authority", where a request goes.
struct UrlParts {
  std::string_view scheme;
  std::string_view authority;
  std::string_view rest;
  std::string_view origin;
};

// nullopt when `url` does not start with a scheme (a letter, then letters, digits, '+', '-' or
// '.') and "://".
std::optional<UrlParts> SplitUrl(std::string_view url);

// A URL crmbridge sends requests to or is called at: http:// or https:// (in lower case, as the
// configuration has always required) with a host.
bool IsHttpUrl(std::string_view url);

}  // namespace crmbridge
