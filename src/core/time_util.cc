#include "src/core/time_util.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace crmbridge {

std::optional<int64_t> ParseIsoUtcMillis(std::string_view text) {
  const std::string s(text);
  int y, mo, d, h, mi, sec, used = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
    return std::nullopt;
  int64_t ms = 0;
  size_t i = static_cast<size_t>(used);
  if (i < s.size() && s[i] == '.') {
    // Keep milliseconds; finer digits are dropped.
    int digits = 0;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++digits)
      if (digits < 3) ms = ms * 10 + (s[i] - '0');
    if (digits == 0) return std::nullopt;
    for (; digits < 3; ++digits) ms *= 10;
  }
  if (i + 1 != s.size() || s[i] != 'Z') return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const int64_t seconds = static_cast<int64_t>(timegm(&tm));
  // timegm rolls a day or time that does not exist over (February 30th is March 2nd, 24:00 the
  // next day): a date that is not on the calendar is no date.
  if (tm.tm_year != y - 1900 || tm.tm_mon != mo - 1 || tm.tm_mday != d || tm.tm_hour != h ||
      tm.tm_min != mi || tm.tm_sec != sec)
    return std::nullopt;
  return seconds * 1000 + ms;
}

std::string FormatIsoUtc(int64_t epoch_ms, bool millis) {
  std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  if (millis) {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(epoch_ms % 1000));
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buf;
}

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && text[i] == ' ') ++i;
  int64_t value = 0;
  const size_t digits_from = i;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - digits_from < 12)
    value = value * 10 + (text[i++] - '0');
  if (i == digits_from) return std::nullopt;
  std::string_view unit = text.substr(i);
  while (!unit.empty() && unit.back() == ' ') unit.remove_suffix(1);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  const int64_t per = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60'000
                      : unit == "h" ? 3'600'000 : unit == "d" ? 86'400'000 : 0;
  // At most 12 digits: the division keeps 999999999999d from overflowing.
  if (per == 0 || value > kMaxDuration.count() / per) return std::nullopt;
  return std::chrono::milliseconds(value * per);
}

int64_t TokenRenewalMs(int64_t now_ms, int64_t lifetime_s, int64_t margin_s) {
  constexpr int64_t kDay = 86'400;
  const int64_t lifetime = std::clamp<int64_t>(lifetime_s, 1, kDay);
  const int64_t margin = std::clamp<int64_t>(margin_s, 0, lifetime / 2);
  return now_ms + (lifetime - margin) * 1000;
}

}  // namespace crmbridge
