// UTC timestamps as the vendor APIs write them: ISO-8601 with or without milliseconds
// ("2024-08-15T17:09:13.648Z", "2023-04-07T21:59:01Z"). Pure and thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace crmbridge {

// Milliseconds since the Unix epoch of "YYYY-MM-DDTHH:MM:SS[.fff…]Z"; nullopt for anything else.
std::optional<int64_t> ParseIsoUtcMillis(std::string_view text);

// "YYYY-MM-DDTHH:MM:SS.mmmZ" with `millis`, else "YYYY-MM-DDTHH:MM:SSZ".
std::string FormatIsoUtc(int64_t epoch_ms, bool millis);

// A duration as people write it in configs and flags: "500ms", "30s", "5m", "1h", "7d"; nullopt
// for anything else, and for more than kMaxDuration.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);
// 100 years (36500d): nothing crmbridge waits for is longer, and a time plus a duration can never
// overflow.
inline constexpr std::chrono::milliseconds kMaxDuration{36500LL * 86'400'000};

// When to renew an access token that a token endpoint said lives `lifetime_s` seconds (its
// expires_in) from `now_ms`: `margin_s` before it expires, or half way through a shorter life.
// The lifetime is the other side's number: one that is not positive counts as 1 s, and one past a
// day, which no token endpoint gives, as a day, so no answer can overflow the arithmetic.
int64_t TokenRenewalMs(int64_t now_ms, int64_t lifetime_s, int64_t margin_s);

}  // namespace crmbridge
