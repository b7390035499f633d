// Content hashes for change detection and echo suppression.
//
// HashJson() hashes a JSON value in its canonical form (object keys sorted, no whitespace), so two
// equal values always hash equal whatever order their fields were built in. Pure and thread-safe.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace crmbridge {

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// Sha256Hex of the canonical serialization of `value`.
std::string HashJson(const nlohmann::json& value);

// The first 16 hex digits (64 bits) of a hash from HashJson: short enough to keep per record and
// system, long enough that two different values sharing one is not a practical concern.
std::string ShortHash(const std::string& hash_hex);

}  // namespace crmbridge
