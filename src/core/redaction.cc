#include "src/core/redaction.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <mutex>
#include <utility>

namespace crmbridge {
namespace {

// A half-open byte range of the input to be replaced by the mask.
using Range = std::pair<size_t, size_t>;

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// Characters of an RFC 6750 b64token (Bearer credentials) and of Basic credentials.
bool IsTokenChar(char c) {
  return IsAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' ||
         c == '=';
}

// Where an unquoted value ends: the delimiters of headers, query strings, form bodies and the
// JSON or prose a value may be embedded in.
bool EndsUnquotedValue(char c) {
  switch (c) {
    case ' ':
    case '\t':
    case '\r':
    case '\n':
    case '&':
    case '"':
    case '\'':
    case ',':
    case ';':
    case '}':
    case ']':
    case ')':
    case '<':
    case '>':
    case '\\':
    case '#':
      return true;
    default:
      return false;
  }
}

enum Separator : unsigned { kEquals = 1, kColon = 2 };

struct KeyRule {
  std::string_view key;  // lower case
  unsigned separators;
  // Only at the start of a query/form parameter (after start, '?', '&', blank or quote), so that
  // `code=` does not hit `postal_code=` or `zipcode=`.
  bool parameter_only;
  // Keep the first word of the value (the auth scheme) and hide the rest.
  bool keep_scheme;
};

constexpr KeyRule kRules[] = {
    {"authorization", kEquals | kColon, false, true},  // also Proxy-Authorization
    {"app-token", kEquals | kColon, false, false},     // Totango
    {"api-key", kEquals | kColon, false, false},       // also X-Api-Key
    {"api_key", kEquals | kColon, false, false},
    {"apikey", kEquals | kColon, false, false},
    {"hapikey", kEquals | kColon, false, false},  // HubSpot's legacy key parameter
    {"cookie", kColon, false, false},             // also Set-Cookie
    {"access_token", kEquals | kColon, false, false},
    {"refresh_token", kEquals | kColon, false, false},
    {"id_token", kEquals | kColon, false, false},
    {"client_secret", kEquals | kColon, false, false},
    {"client_assertion", kEquals | kColon, false, false},
    {"password", kEquals | kColon, false, false},
    {"code", kEquals, true, false},
};

// Finds the value that follows a key ending at `pos` in `text`, in any of the shapes
//   key=value   key: value   "key":"value"   "key" : "value"   \"key\":\"value\" (JSON in JSON)
// and appends the range to hide. Returns false when what follows is not a key-value shape.
bool MatchValue(std::string_view text, size_t pos, const KeyRule& rule, std::vector<Range>* out) {
  size_t n = text.size();
  // The closing quote of a JSON member name, possibly escaped.
  if (pos < n && text[pos] == '\\' && pos + 1 < n && text[pos + 1] == '"') {
    pos += 2;
  } else if (pos < n && text[pos] == '"') {
    pos += 1;
  }
  while (pos < n && IsBlank(text[pos])) ++pos;
  if (pos >= n) return false;
  if (!((text[pos] == '=' && (rule.separators & kEquals)) ||
        (text[pos] == ':' && (rule.separators & kColon)))) {
    return false;
  }
  ++pos;
  while (pos < n && IsBlank(text[pos])) ++pos;
  if (pos >= n) return false;

  size_t begin = pos;
  size_t end = pos;
  if (text[pos] == '"' || (text[pos] == '\\' && pos + 1 < n && text[pos + 1] == '"')) {
    bool escaped_quote = text[pos] == '\\';
    begin = pos + (escaped_quote ? 2 : 1);
    end = begin;
    while (end < n) {
      if (escaped_quote) {
        if (text[end] == '\\' && end + 1 < n && text[end + 1] == '"') break;
        ++end;
      } else {
        if (text[end] == '\\') {
          end += 2;  // an escaped character inside the string
          continue;
        }
        if (text[end] == '"') break;
        ++end;
      }
    }
    end = std::min(end, n);
    if (rule.keep_scheme) {
      // "Bearer abc": keep "Bearer ", hide the rest of the string.
      size_t space = begin;
      while (space < end && IsTokenChar(text[space])) ++space;
      size_t cred = space;
      while (cred < end && IsBlank(text[cred])) ++cred;
      if (space < end && cred > space && cred < end) begin = cred;
    }
  } else {
    while (end < n && !EndsUnquotedValue(text[end])) ++end;
    if (rule.keep_scheme && end < n && IsBlank(text[end])) {
      // Authorization: <scheme> <credentials>; a one-word value is hidden whole.
      size_t cred = end;
      while (cred < n && IsBlank(text[cred])) ++cred;
      size_t cred_end = cred;
      while (cred_end < n && !EndsUnquotedValue(text[cred_end])) ++cred_end;
      if (cred_end > cred) {
        begin = cred;
        end = cred_end;
      }
    }
  }
  if (end > begin && text.substr(begin, end - begin) != Redactor::kMask) {
    out->emplace_back(begin, end);
  }
  return true;
}

void FindPatternRanges(std::string_view text, const std::string& lower, std::vector<Range>* out) {
  for (const KeyRule& rule : kRules) {
    for (size_t at = lower.find(rule.key); at != std::string::npos;
         at = lower.find(rule.key, at + 1)) {
      char prev = at == 0 ? ' ' : text[at - 1];
      if (rule.parameter_only) {
        if (!(at == 0 || prev == '?' || prev == '&' || prev == '"' || prev == '\'' ||
              std::isspace(static_cast<unsigned char>(prev)))) {
          continue;
        }
      } else if (IsAlnum(prev)) {
        continue;
      }
      MatchValue(text, at + rule.key.size(), rule, out);
    }
  }
  // "Bearer <token>" anywhere, e.g. inside an error message or a curl line.
  constexpr std::string_view kBearer = "bearer";
  for (size_t at = lower.find(kBearer); at != std::string::npos; at = lower.find(kBearer, at + 1)) {
    if (at > 0 && IsAlnum(text[at - 1])) continue;
    size_t pos = at + kBearer.size();
    size_t blanks = pos;
    while (blanks < text.size() && IsBlank(text[blanks])) ++blanks;
    if (blanks == pos) continue;
    size_t end = blanks;
    while (end < text.size() && IsTokenChar(text[end])) ++end;
    if (end > blanks) out->emplace_back(blanks, end);
  }
}

std::string PercentEncode(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (IsAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
      out += buf;
    }
  }
  return out;
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

}  // namespace

Redactor& Redactor::Global() {
  static Redactor* redactor = new Redactor();  // never destroyed: loggers may run during exit
  return *redactor;
}

void Redactor::AddSecret(std::string value) {
  if (value.size() < kMinSecretLength) return;
  std::string encoded = PercentEncode(value);
  std::string escaped = JsonEscape(value);
  std::unique_lock<std::shared_mutex> lock(mu_);
  for (std::string* form : {&value, &encoded, &escaped}) {
    if (std::find(secrets_.begin(), secrets_.end(), *form) == secrets_.end()) {
      secrets_.push_back(std::move(*form));
    }
  }
  // Longest first, so a secret that contains another is masked whole.
  std::stable_sort(secrets_.begin(), secrets_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

void Redactor::ForgetSecret(const std::string& value) {
  if (value.size() < kMinSecretLength) return;
  const std::string forms[] = {value, PercentEncode(value), JsonEscape(value)};
  std::unique_lock<std::shared_mutex> lock(mu_);
  for (const std::string& form : forms)
    secrets_.erase(std::remove(secrets_.begin(), secrets_.end(), form), secrets_.end());
}

size_t Redactor::secret_count() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return secrets_.size();
}

std::string Redactor::Redact(std::string_view text) const {
  // Collect every range to hide over the original text, then rebuild once: overlapping findings
  // (a registered token inside an Authorization header) merge into one mask.
  std::vector<Range> ranges;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    for (const std::string& secret : secrets_) {
      for (size_t at = text.find(secret); at != std::string_view::npos;
           at = text.find(secret, at + secret.size())) {
        ranges.emplace_back(at, at + secret.size());
      }
    }
  }
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  FindPatternRanges(text, lower, &ranges);
  if (ranges.empty()) return std::string(text);

  std::sort(ranges.begin(), ranges.end());
  std::string out;
  out.reserve(text.size());
  size_t cursor = 0;
  size_t i = 0;
  while (i < ranges.size()) {
    size_t begin = ranges[i].first;
    size_t end = ranges[i].second;
    for (++i; i < ranges.size() && ranges[i].first <= end; ++i) {
      end = std::max(end, ranges[i].second);
    }
    begin = std::max(begin, cursor);
    out.append(text.substr(cursor, begin - cursor));
    out.append(kMask);
    cursor = end;
  }
  out.append(text.substr(cursor));
  return out;
}

}  // namespace crmbridge
