#include "src/core/url.h"

#include <algorithm>
#include <cctype>

namespace crmbridge {

std::string PercentEncode(std::string_view text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool IsPlainName(std::string_view text) {
  if (text.empty() || text.size() > 128) return false;
  if (!std::isalpha(static_cast<unsigned char>(text[0])) && text[0] != '_') return false;
  for (unsigned char c : text)
    if (!std::isalnum(c) && c != '_') return false;
  return true;
}

std::optional<UrlParts> SplitUrl(std::string_view url) {
  const size_t colon = url.find("://");
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  if (!std::isalpha(static_cast<unsigned char>(url[0]))) return std::nullopt;
  for (unsigned char c : url.substr(0, colon))
    if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') return std::nullopt;
  const size_t from = colon + 3;
  const size_t end = std::min(url.find_first_of("/?#", from), url.size());
  UrlParts parts;
  parts.scheme = url.substr(0, colon);
  parts.authority = url.substr(from, end - from);
  parts.rest = url.substr(end);
  parts.origin = url.substr(0, end);
  return parts;
}

bool IsHttpUrl(std::string_view url) {
  const auto parts = SplitUrl(url);
  return parts && (parts->scheme == "http" || parts->scheme == "https") &&
         !parts->authority.empty();
}

}  // namespace crmbridge
