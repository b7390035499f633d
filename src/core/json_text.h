// The compact JSON text of a value, byte for byte what nlohmann::json::dump() writes (object keys
// sorted, as nlohmann::json keeps them; no whitespace; UTF-8 as it is), written without dump()'s
// per-byte UTF-8 decoding for the values records are made of. Stored digests are hashes of this
// text, and stored JSON columns are this text, so it must never differ from dump(): JsonTextTest
// compares them for every kind of value.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace crmbridge {

// Appends the text to `out`. Throws nlohmann::json::type_error where dump() does (a string that
// is not UTF-8).
void AppendCompactJson(const nlohmann::json& value, std::string* out);
std::string CompactJson(const nlohmann::json& value);

// How deep JSON from outside (a vendor's answer, a webhook's body, a stored cursor) may nest.
// nlohmann::json copies and compares values recursively, so a value nested 100,000 deep, which
// parses, overflows the stack where it is first copied; no API crmbridge reads nests past ten.
constexpr int kMaxJsonDepth = 512;

// Whether `text` opens more than `limit` arrays and objects inside one another (brackets in
// strings not counted). One pass, no allocation: it runs before a parse.
bool NestsDeeperThan(std::string_view text, int limit = kMaxJsonDepth);

// `text` parsed, or a discarded value (is_discarded()) when it is not JSON or nests deeper than
// kMaxJsonDepth: the parse every reader of outside JSON uses.
nlohmann::json ParseJsonOrDiscarded(std::string_view text);

}  // namespace crmbridge
