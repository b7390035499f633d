// Dynamics 365 (Dataverse Web API) limits, from the vendor facts kept with the project's design
// notes (Microsoft's Dataverse documentation).
#pragma once

namespace crmbridge::dynamics365 {

// Default and largest page size (refs/dynamics365 §3 "Paging": 5000).
inline constexpr int kMaxPageSize = 5000;
// A page size that keeps one page's memory small while staying far below the request budget.
inline constexpr int kDefaultPageSize = 500;
// Re-acquire a token this long before it expires (refs/dynamics365 §1: "expires_in − 300 s").
inline constexpr int kTokenRefreshMarginSeconds = 300;
// Service protection: 6000 requests per 300 s per user (refs/dynamics365 §11).
inline constexpr int kRequestsPerWindow = 6000;
inline constexpr int kWindowSeconds = 300;

}  // namespace crmbridge::dynamics365
