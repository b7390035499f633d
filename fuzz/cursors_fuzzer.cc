// The paging tokens crmbridge keeps between runs, read back from the state store: HubSpot's search
// cursor (hubspot::DecodeCursor, EncodeCursor) and the portal's access-scan cursor
// (portal::DecodeAccessCursor, EncodeAccessCursor). Dataverse's nextLink and deltaLink, the other
// paging tokens, are followed by the dynamics365 harness, which checks where they lead.
//
// The input: its first line names the cursor ("hubspot" or "portal"), the rest is the stored text.
//
// A cursor read back is written again as one that reads back the same, and writing that once more
// changes nothing: a cursor kept over many runs neither drifts nor becomes unreadable.
#include "connectors/hubspot/hubspot_codec.h"
#include "connectors/portal/portal_codec.h"
#include "fuzz/fuzz_util.h"

namespace {

using namespace crmbridge;

// A negative window or tie means "none" whatever its value (the connector asks only >= 0), and is
// written as none.
bool Same(const hubspot::SearchCursor& a, const hubspot::SearchCursor& b) {
  const auto none = [](int64_t ms) { return ms < 0 ? -1 : ms; };
  return a.since_ms == b.since_ms && none(a.window_ms) == none(b.window_ms) &&
         a.max_seen_ms == b.max_seen_ms && a.after == b.after &&
         none(a.tie_ms) == none(b.tie_ms) && (a.tie_ms < 0 || a.last_id == b.last_id);
}

bool Same(const portal::AccessCursor& a, const portal::AccessCursor& b) {
  return a.users == b.users && a.index == b.index && a.user == b.user && a.grants == b.grants;
}

template <typename Cursor, typename Decode, typename Encode>
void RoundTrip(const std::string& text, Decode decode, Encode encode) {
  const Result<Cursor> first = decode(text);
  if (!first.ok()) {
    FUZZ_CHECK(first.status().code() == StatusCode::kInvalidArgument,
               "a cursor refused as other than malformed: " + first.status().ToString());
    return;
  }
  const std::string written = encode(*first);
  const Result<Cursor> again = decode(written);
  FUZZ_CHECK(again.ok(), "a cursor written that does not read back: " + written);
  FUZZ_CHECK(Same(*first, *again),
             "a cursor that reads back otherwise: " + text + " -> " + written);
  FUZZ_CHECK(encode(*again) == written,
             "a cursor that changes each time it is written: " + written);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  crmbridge::fuzz::Quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = crmbridge::fuzz::Text(data, size);
  const size_t newline = input.find('\n');
  if (newline == std::string::npos) return 0;
  const std::string kind = input.substr(0, newline);
  const std::string text = input.substr(newline + 1);
  if (kind == "hubspot")
    RoundTrip<hubspot::SearchCursor>(text, hubspot::DecodeCursor, hubspot::EncodeCursor);
  else if (kind == "portal")
    RoundTrip<portal::AccessCursor>(text, portal::DecodeAccessCursor, portal::EncodeAccessCursor);
  return 0;
}
