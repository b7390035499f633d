// Dynamics 365 (Dataverse Web API) limits. Each constant cites the vendor facts it comes from,
// under /work/shared/refs/ (Microsoft's Dataverse and Entra ID documentation, summarised).
#pragma once

#include <string>

#include <cstdint>

namespace crmbridge::dynamics365 {

// refs/dynamics365/reference.md §3 "Paging": "Default and maximum page size is 5000. A larger
// `odata.maxpagesize` cannot be requested."
inline constexpr int kMaxPageSize = 5000;
// Not a vendor limit: a page size that keeps one page's memory small (the engine may ask for
// more, up to kMaxPageSize).
inline constexpr int kDefaultPageSize = 500;
// refs/dynamics365/reference.md §1: "Client: cache; re-acquire at `expires_in − 300 s`, and once
// more on a 401 before failing."
inline constexpr int kTokenRefreshMarginSeconds = 300;
// refs/dynamics365/reference.md §1: tokens last "about an hour"; the documented example answers
// "expires_in":3599. Used when a token response omits expires_in.
inline constexpr int kDefaultTokenLifetimeSeconds = 3599;
// refs/dynamics365/reference.md §9: "Limits: ≤ 1000 requests per batch, no nested batches".
// Ops one Write() call accepts and one $batch carries, unless options.batch_size lowers it.
inline constexpr int kMaxBatchRequests = 1000;
// refs/dynamics365/reference.md §11: "requests | 6000 per 300 s" per user (service protection;
// enforced by the engine's rate limiter, recorded here for reference).
inline constexpr int kRequestsPerWindow = 6000;
inline constexpr int kWindowSeconds = 300;
// A row's owner: the lookup `ownerid`, read and written as its user's internalemailaddress (the
// users are read again when older than kUsersFreshMs).
inline constexpr char kOwnerColumn[] = "ownerid";
inline constexpr int64_t kUsersFreshMs = 60 * 1000;
// The tables the unbound Merge action takes (Merge Action: "Use the Merge action with these
// entity types: account, contact"; incident and lead too, not mapped here).
inline bool Merges(const std::string& entity_set) {
  return entity_set == "accounts" || entity_set == "contacts";
}

}  // namespace crmbridge::dynamics365
