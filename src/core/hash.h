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

// `n` bytes as 2n lowercase hex digits: how a hash's bytes are shown and compared as text.
std::string LowerHex(const unsigned char* bytes, size_t n);

// The inverse of LowerHex: the hex.size() / 2 bytes that `hex` spells into `bytes`; false (and
// `bytes` unspecified) when `hex` has an odd length or a character that is no lowercase hex digit.
bool ParseLowerHex(std::string_view hex, unsigned char* bytes);

// The bytes of SHA-256 a HashJson keeps: 128 bits tell two values apart as surely as a change
// detector needs, and a state store keeps two per link.
inline constexpr size_t kJsonHashBytes = 16;

// The first kJsonHashBytes of the SHA-256 of the canonical serialization of `value`, as
// 2 * kJsonHashBytes lowercase hex digits (the start of Sha256Hex of that text).
std::string HashJson(const nlohmann::json& value);

// The first 16 hex digits (64 bits) of a hash from HashJson: short enough to keep per record and
// system, long enough that two different values sharing one is not a practical concern.
std::string ShortHash(const std::string& hash_hex);
// The same digits, seen where they are (16 characters are one more than a string keeps without
// an allocation).
inline std::string_view ShortHashOf(std::string_view hash_hex) { return hash_hex.substr(0, 16); }

// Base64 (standard alphabet, padded) of HMAC-SHA256 of `data` under `key`: how webhook senders
// sign what they deliver.
std::string HmacSha256Base64(std::string_view key, std::string_view data);

// Whether `a` and `b` are equal, in a time that depends on their lengths only: for comparing a
// received signature or key with the expected one without telling an attacker how much matched.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace crmbridge
