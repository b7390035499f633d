#include "src/core/transport.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <ctime>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "src/core/clock.h"
#include "src/core/json_text.h"
#include "src/core/redaction.h"
#include "src/core/retrying_transport.h"
#include "src/core/utf8.h"

namespace crmbridge {
namespace {

// Longest body excerpt carried in a Status message: enough for a vendor's error code and message,
// short enough that a dead letter or a log line never carries a whole payload.
constexpr size_t kMaxBodyExcerpt = 300;

// A Retry-After beyond this is clamped: nobody sleeps for more than a week, and the arithmetic
// below cannot overflow.
constexpr int64_t kMaxRetryAfterSeconds = 7 * 24 * 3600;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
}

int MonthIndex(std::string_view token) {
  static const char* const kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                        "jul", "aug", "sep", "oct", "nov", "dec"};
  if (token.size() < 3) return -1;
  for (int i = 0; i < 12; ++i) {
    if (EqualsIgnoreCase(token.substr(0, 3), kMonths[i])) return i;
  }
  return -1;
}

// Parses the three HTTP-date forms RFC 9110 section 5.6.7 obliges recipients to accept:
//   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
//   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT"
//   asctime      "Sun Nov  6 08:49:37 1994"
// In all three the first plain number is the day and the second the year, so one tokenizer serves.
// Hand-written rather than strptime(), whose month names follow the process locale.
std::optional<int64_t> ParseHttpDateSeconds(std::string_view s) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == ',' || s[i] == '-' || s[i] == '\t')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != ',' && s[i] != '-' && s[i] != '\t') ++i;
    if (i > start) tokens.push_back(s.substr(start, i - start));
  }
  int day = -1, month = -1, year = -1, hour = -1, minute = -1, second = -1;
  for (std::string_view t : tokens) {
    if (t.find(':') != std::string_view::npos) {
      if (t.size() != 8 || t[2] != ':' || t[5] != ':' || !AllDigits(t.substr(0, 2)) ||
          !AllDigits(t.substr(3, 2)) || !AllDigits(t.substr(6, 2))) {
        return std::nullopt;
      }
      hour = std::stoi(std::string(t.substr(0, 2)));
      minute = std::stoi(std::string(t.substr(3, 2)));
      second = std::stoi(std::string(t.substr(6, 2)));
    } else if (AllDigits(t)) {
      if (t.size() > 4) return std::nullopt;
      int v = std::stoi(std::string(t));
      if (day < 0) {
        day = v;
      } else if (year < 0) {
        // RFC 850's two-digit year: RFC 9110 reads it as the most recent such year not more than
        // 50 years in the future; 70..99 -> 19xx and 00..69 -> 20xx is that rule until 2070.
        year = t.size() == 2 ? (v >= 70 ? 1900 + v : 2000 + v) : v;
      } else {
        return std::nullopt;
      }
    } else if (month < 0 && MonthIndex(t) >= 0 && t.size() == 3) {
      month = MonthIndex(t);
    }
    // Day names and "GMT" carry no information.
  }
  if (day < 1 || day > 31 || month < 0 || year < 1970 || hour < 0 || hour > 23 || minute > 59 ||
      second > 60) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<int64_t>(timegm(&tm));
}

// Cuts `body` to at most kMaxBodyExcerpt bytes on a UTF-8 boundary, with runs of whitespace
// (newlines of pretty-printed error bodies) folded to one space so the message stays on one line.
std::string BodyExcerpt(std::string_view raw) {
  // Secrets are masked in the whole body first: cut first, a secret cut in two would show the
  // part before the cut (its registered whole no longer matches), and a credential pattern cut
  // mid-way would leave its tail to the next line.
  const std::string redacted = Redactor::Global().Redact(raw);
  const std::string_view body = redacted;
  std::string out;
  out.reserve(std::min(body.size(), kMaxBodyExcerpt) + 3);
  bool pending_space = false;
  size_t i = 0;
  for (; i < body.size() && out.size() < kMaxBodyExcerpt; ++i) {
    char c = body[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) {
      out.push_back(' ');
      pending_space = false;
    }
    out.push_back(c);
  }
  bool truncated = Trim(body.substr(i)).size() > 0;
  if (truncated) {
    // Never end in the middle of a UTF-8 sequence: an incomplete last sequence is dropped.
    size_t lead = out.size();
    while (lead > 0 && (static_cast<unsigned char>(out[lead - 1]) & 0xC0) == 0x80) --lead;
    if (lead > 0 && (static_cast<unsigned char>(out[lead - 1]) & 0x80) != 0) {
      unsigned char b = static_cast<unsigned char>(out[lead - 1]);
      size_t need = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
      if (out.size() - (lead - 1) < need) out.resize(lead - 1);
    }
    out += "...";
  }
  // A body's control characters and bytes that are not UTF-8 (a binary answer, a NUL) are shown
  // as escapes: the message goes into logs, terminals and JSON.
  return PrintableText(out);
}

}  // namespace

std::optional<std::string> FindHeader(const Headers& headers, const std::string& name) {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return value;
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> HeaderDuration(const Response& response,
                                                        const std::string& name,
                                                        std::chrono::milliseconds unit) {
  auto value = response.Header(name);
  if (!value || unit.count() <= 0) return std::nullopt;
  try {
    long long v = std::stoll(*value);
    if (v < 0) return std::nullopt;
    v = std::min<long long>(v, kMaxRetryAfterSeconds * 1000 / unit.count());
    return std::chrono::milliseconds(v * unit.count());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         Clock::TimePoint now) {
  std::string_view v = Trim(value);
  if (v.empty()) return std::nullopt;
  if (AllDigits(v)) {
    // Delta-seconds. Clamp before converting so a huge value cannot overflow.
    int64_t seconds = v.size() > 9 ? kMaxRetryAfterSeconds : std::stoll(std::string(v));
    return std::chrono::milliseconds(std::min(seconds, kMaxRetryAfterSeconds) * 1000);
  }
  std::optional<int64_t> date = ParseHttpDateSeconds(v);
  if (!date) return std::nullopt;
  int64_t delta_ms = *date * 1000 - now.time_since_epoch().count();
  delta_ms = std::clamp<int64_t>(delta_ms, 0, kMaxRetryAfterSeconds * 1000);
  return std::chrono::milliseconds(delta_ms);
}

const nlohmann::json* FindPath(const nlohmann::json& j, std::initializer_list<const char*> path) {
  const nlohmann::json* at = &j;
  for (const char* key : path) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

Result<nlohmann::json> ParseJsonAnswer(const Response& response, const std::string& system,
                                       const std::string& what) {
  std::string why;
  if (NestsDeeperThan(response.body)) {
    why = "arrays and objects nested more than " + std::to_string(kMaxJsonDepth) + " deep";
  } else {
    try {
      // A key given twice in one object would be read as its last value, silently: such an
      // answer is refused as a whole, as one that is no JSON is.
      std::vector<std::set<std::string>> keys;  // of each object open
      std::string twice;
      auto check = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        if (event == Event::object_start) {
          keys.emplace_back();
        } else if (event == Event::object_end) {
          keys.pop_back();
        } else if (event == Event::key && !keys.empty() &&
                   !keys.back().insert(parsed.get<std::string>()).second && twice.empty()) {
          twice = parsed.get<std::string>();
        }
        return true;
      };
      nlohmann::json parsed = nlohmann::json::parse(response.body, check);
      if (twice.empty()) return parsed;
      why = "the key \"" + PrintableText(Utf8Prefix(twice, 100)) + "\" is given twice in one object";
    } catch (const nlohmann::json::exception& e) {
      // A syntax error ("[json.exception.parse_error.101] parse error at line 1, column 9: ..."),
      // or a number past a double's range ("[json.exception.out_of_range.406] number overflow").
      why = e.what();
      const size_t at = why.find("] ");
      if (at != std::string::npos) why = why.substr(at + 2);
    }
  }
  const std::string type = response.Header("Content-Type").value_or("no content type");
  return Status(StatusCode::kUnavailable,
                system + ": " + what + ": the answer is not JSON (HTTP " +
                    std::to_string(response.status) + ", " + type + ", " +
                    std::to_string(response.body.size()) + " bytes; " + why + "): " +
                    Redactor::Global().Redact(BodyExcerpt(response.body)))
      .set_http_status(response.status)
      .set_system(system);
}

Status StatusFromResponse(const Response& response, const std::string& system,
                          std::string message, const HttpClassifier& classify) {
  if (response.status < 400) return Status::Ok();
  std::string text = std::move(message);
  if (!response.body.empty()) {
    // Error bodies of token endpoints can echo what was sent; a Status message ends up in logs
    // and in dead letters on disk, so it is redacted here, at the one place it is built.
    std::string excerpt = Redactor::Global().Redact(BodyExcerpt(response.body));
    text = text.empty() ? excerpt : text + ": " + excerpt;
  }
  Status status = StatusFromHttp(response.status, std::move(text));
  if (classify) {
    if (std::optional<HttpReading> reading = classify(response)) {
      status = Status(reading->code, status.message()).set_http_status(response.status);
    }
  }
  if (auto header = response.Header("Retry-After")) {
    // HTTP dates are measured against the real clock here; RetryingTransport re-reads the header
    // against its injected clock when it decides how long to wait.
    if (auto delay = ParseRetryAfter(*header, Clock::Real()->Now())) {
      status.set_retry_after(*delay);
    }
  }
  if (!system.empty()) status.set_system(system);
  return status;
}

Status Unexpected(Status status, const Response& response, const std::string& what) {
  if (!status.ok()) return status;
  // The status goes with it: Status::ToString() gives "HTTP 304".
  return Status(StatusCode::kUnavailable, what + ": an unexpected answer")
      .set_http_status(response.status);
}

}  // namespace crmbridge
