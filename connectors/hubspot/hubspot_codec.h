// HubSpot JSON <-> NativeRecord and the search cursor, as pure functions (no I/O). Every
// nlohmann::json exception is caught here; callers get Status values.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "connectors/connector.h"

namespace crmbridge::hubspot {

// The property holding an object's last-modified time: contacts use `lastmodifieddate`, every
// other CRM object `hs_lastmodifieddate` (refs/hubspot §4).
std::string ModifiedProperty(const std::string& object_type);

// Parses HubSpot times: ISO-8601 UTC ("2024-08-15T17:09:13.648Z") or epoch milliseconds as a
// string or number. 0 when it cannot.
int64_t ParseTimestamp(const nlohmann::json& value);

// A property value as HubSpot wants it on writes: every value is a string ("17", "true", "").
std::string PropertyString(const nlohmann::json& value);

// One CRM object ({"id":…,"properties":{…}}) as a NativeRecord; `id_property` is crmbridge's
// unique key property, copied into NativeRecord::key when set.
Result<NativeRecord> RecordFromObject(const nlohmann::json& object,
                                      const std::string& modified_property,
                                      const std::string& id_property);

// Where an incremental search read stands.
//
// Between runs only `since_ms` matters: the next pass reads records modified at or after
// since_ms - overlap. Within a pass (`window_ms` >= 0), `window_ms` is the GTE bound of the
// current query and `after` its page offset; a window is restarted from the last timestamp seen
// before `after` reaches kSearchRestartAt, and a run of records sharing one timestamp that alone
// fills a window is paged by id (`tie_ms`, `last_id`).
struct SearchCursor {
  int64_t since_ms = 0;     // persisted position: the pass reads from here (minus the overlap)
  int64_t window_ms = -1;   // >= 0 within a pass: GTE bound of the current query
  int64_t max_seen_ms = 0;  // newest modification seen in this pass
  int after = 0;            // offset within the current query
  int64_t tie_ms = -1;      // >= 0: paging records modified exactly at tie_ms by id
  std::string last_id;      // with tie_ms: ids greater than this (empty: from the first)
  // The sweep of archived records (search never returns them): the listing's position ("" at
  // the start), when the current sweep started, and when the last complete one started (records
  // archived before it were returned by it). `archived` is true while this run sweeps.
  bool archived = false;
  std::string archived_after;
  int64_t archived_started_ms = 0;
  int64_t archived_mark_ms = 0;
  int archived_pages = 0;  // pages swept this run
};

std::string EncodeCursor(const SearchCursor& cursor);
// Empty text gives the default cursor (from the beginning). kInvalidArgument when malformed.
Result<SearchCursor> DecodeCursor(const std::string& text);

}  // namespace crmbridge::hubspot
