// Totango API limits. Each constant cites the vendor facts it comes from, under
// /work/shared/refs/totango.md.
#pragma once

namespace crmbridge::totango {

// §3: "`count` defaults to 1000 and cannot exceed 1000".
inline constexpr int kMaxSearchCount = 1000;
// §3: "Hard cap: at most 10,000 records can be reached through the Search API".
inline constexpr int kSearchReachable = 10000;
// §9: "100 requests per minute per token for every REST API. SDR/HTTP is not limited".
inline constexpr int kRestRequestsPerMinute = 100;
// §4.1: the SDR gateway's one endpoint, outside the REST limit above.
inline constexpr char kSdrPath[] = "/pixel.gif";
// §4.1: "text attributes up to 512 characters on accounts and 255 on users".
inline constexpr int kAccountTextMax = 512;
inline constexpr int kUserTextMax = 255;
// §2: "Special characters are forbidden except `_`" in account ids.
inline constexpr char kAccountIdExtraChar = '_';

}  // namespace crmbridge::totango
