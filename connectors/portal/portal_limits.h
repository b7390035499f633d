// Customer portal API limits. Each constant cites the contract it comes from, the portal's OpenAPI
// document mocks/portal/openapi.yaml.
#pragma once

#include <cstddef>

namespace crmbridge::portal {

// openapi.yaml components.parameters.Limit: "{type: integer, minimum: 1, maximum: 100, default:
// 25}". Every list (properties, users, a user's grants) pages at most this many items.
inline constexpr int kMaxPage = 100;
// openapi.yaml components.parameters.IdempotencyKey: "{type: string, maxLength: 255}".
inline constexpr size_t kMaxIdempotencyKey = 255;
// Not an API limit: each create, update, grant and revoke is its own request (the API has no batch
// endpoints), so one op per Write() call chunk (Capabilities::max_batch).
inline constexpr int kMaxOpsPerRequest = 1;

}  // namespace crmbridge::portal
