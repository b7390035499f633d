// HubSpot CRM API limits, each from the vendor facts kept with the project's design notes
// (HubSpot's published OpenAPI documents and developer docs).
#pragma once

namespace crmbridge::hubspot {

// Batch read/create/update/upsert/archive take at most 100 inputs (refs/hubspot §3).
inline constexpr int kMaxBatchInputs = 100;
// Search pages hold at most 200 results (refs/hubspot §4 "Paging").
inline constexpr int kMaxSearchPage = 200;
// A search cannot page past 10,000 results: after >= 10000 answers 400 (refs/hubspot §4).
inline constexpr int kSearchResultCap = 10000;
// Restart a time window before the cap so a page never straddles it.
inline constexpr int kSearchRestartAt = 9800;
// Filters: 5 groups, 6 filters per group, 18 in all (refs/hubspot §4).
inline constexpr int kMaxFiltersPerGroup = 6;
// List endpoints return at most 100 per page (refs/hubspot §2).
inline constexpr int kMaxListPage = 100;

}  // namespace crmbridge::hubspot
