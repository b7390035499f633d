// HubSpot CRM API limits. Each constant cites the vendor facts it comes from, under
// /work/shared/refs/ (HubSpot's OpenAPI documents and developer docs, summarised).
#pragma once

#include <string>

namespace crmbridge::hubspot {

// refs/hubspot/reference.md §3: "Max 100 inputs per call" for batch
// read/create/update/upsert/archive.
inline constexpr int kMaxBatchInputs = 100;
// refs/hubspot/reference.md §4 "Paging": "`limit` max 200".
inline constexpr int kMaxSearchPage = 200;
// The archived listing (GET /crm/v3/objects/{type}?archived=true) pages by 100; a run sweeps at
// most this many pages of it, and a new sweep starts at most every kArchivedSweepEveryMs.
inline constexpr int kMaxListPage = 100;
// GET /crm/v3/owners pages by up to 500; the owners read are kept this long before read again.
inline constexpr int kMaxOwnersPage = 500;
inline constexpr int64_t kOwnersFreshMs = 60 * 1000;
// The record property that holds its owner: an owner id, read and written as the owner's email.
inline constexpr char kOwnerProperty[] = "hubspot_owner_id";
inline constexpr int kArchivedPagesPerRun = 10;
inline constexpr int64_t kArchivedSweepEveryMs = 5 * 60 * 1000;
inline constexpr int64_t kArchivedMarkMarginMs = 60 * 1000;
// refs/hubspot/reference.md §4: "a query cannot page past 10,000 results; `after` >= 10000 -> 400".
inline constexpr int kSearchResultCap = 10000;
// The property listing the ids a record absorbed by merges, ';'-separated; and the objects the
// merge endpoint (POST /crm/v3/objects/{type}/merge) takes.
inline constexpr char kMergedIdsProperty[] = "hs_merged_object_ids";
inline bool Merges(const std::string& object_type) {
  return object_type == "contacts" || object_type == "companies" || object_type == "tickets" ||
         object_type == "deals";
}
// refs/hubspot/reference.md §4 "Getting past 10k", option 2: "When `after` reaches about 9,800,
// start a new query from the last seen timestamp using `GTE`".
inline constexpr int kSearchRestartAt = 9800;
static_assert(kSearchRestartAt + kMaxSearchPage <= kSearchResultCap,
              "the last page of a window must end inside the cap");
// refs/hubspot/reference.md §4: "max 5 filterGroups, 6 filters per group, 18 filters total".
// A change search uses one group of at most 4 filters (pipeline, time, tie time, id).
inline constexpr int kMaxFiltersPerGroup = 6;
// refs/hubspot/reference.md §4 "Rate": "5 requests/second per account" for search (enforced by
// the engine's search rate limiter, SystemConfig::search_rate_limit; recorded here for reference).
inline constexpr int kSearchRequestsPerSecond = 5;

// refs/hubspot/reference.md, errors: after 423 Locked, "wait at least 2 seconds" before retrying.
inline constexpr int kLockedMinWaitMs = 2000;

// refs/hubspot/reference.md §1: OAuth access tokens: "check `expires_in`"; 1800 s is usual.
inline constexpr int kDefaultOAuthLifetimeSeconds = 1800;
// Not a vendor limit: refresh this long before expires_in runs out.
inline constexpr int kOAuthRefreshMarginSeconds = 300;

}  // namespace crmbridge::hubspot
