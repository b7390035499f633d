// Identifiers minted by crmbridge: canonical entity ids and run holder ids.
// Thread-safe.
#pragma once

#include <string>

namespace crmbridge {

// A random RFC 4122 version-4 UUID, lowercase ("3f2b...-4...-..."), from OpenSSL's CSPRNG.
std::string NewUuid();

}  // namespace crmbridge
