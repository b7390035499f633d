// The compact JSON text of a value, byte for byte what nlohmann::json::dump() writes (object keys
// sorted, as nlohmann::json keeps them; no whitespace; UTF-8 as it is), written without dump()'s
// per-byte UTF-8 decoding for the values records are made of. Stored digests are hashes of this
// text, and stored JSON columns are this text, so it must never differ from dump(): JsonTextTest
// compares them for every kind of value.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace crmbridge {

// Appends the text to `out`. Throws nlohmann::json::type_error where dump() does (a string that
// is not UTF-8).
void AppendCompactJson(const nlohmann::json& value, std::string* out);
std::string CompactJson(const nlohmann::json& value);

}  // namespace crmbridge
