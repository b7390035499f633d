// Identifiers minted by crmbridge: canonical entity ids and run holder ids.
// Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace crmbridge {

// A random RFC 4122 version-4 UUID, lowercase ("3f2b...-4...-..."), from OpenSSL's CSPRNG.
std::string NewUuid();

// An RFC 9562 version-7 UUID: the Unix time in milliseconds, then a counter within that
// millisecond, then random bits. Each call's id sorts after the previous one's in this process,
// so records minted together sit side by side in the state store's indexes (a page of new records
// touches a few index pages instead of one each). The canonical ids of new records.
std::string NewTimeOrderedUuid();

// A UUID's 16 bytes as the text the functions above write: 8-4-4-4-12 lowercase hex digits.
std::string FormatUuid(const unsigned char bytes[16]);

// The 16 bytes of `text` when it is a UUID exactly as FormatUuid writes one (36 characters,
// lowercase, dashes in place), so FormatUuid(bytes) gives `text` back; false for anything else,
// an uppercase UUID included. Any version: ids minted elsewhere (Dynamics 365's GUIDs) qualify.
bool ParseUuid(std::string_view text, unsigned char bytes[16]);

}  // namespace crmbridge
