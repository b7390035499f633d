// Identifiers minted by crmbridge: canonical entity ids and run holder ids.
// Thread-safe.
#pragma once

#include <string>

namespace crmbridge {

// A random RFC 4122 version-4 UUID, lowercase ("3f2b...-4...-..."), from OpenSSL's CSPRNG.
std::string NewUuid();

// An RFC 9562 version-7 UUID: the Unix time in milliseconds, then a counter within that
// millisecond, then random bits. Each call's id sorts after the previous one's in this process,
// so records minted together sit side by side in the state store's indexes (a page of new records
// touches a few index pages instead of one each). The canonical ids of new records.
std::string NewTimeOrderedUuid();

}  // namespace crmbridge
