// Dataverse JSON <-> NativeRecord, pure functions (no I/O); nlohmann::json exceptions end here.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "connectors/connector.h"
#include "src/core/transport.h"

namespace crmbridge::dynamics365 {

// The primary key column of an entity set (accounts -> accountid; activities -> activityid).
std::string PrimaryKeyOf(const std::string& entity_set);
// The table's logical name, as audit rows and metadata name it (opportunities -> opportunity).
std::string LogicalNameOf(const std::string& entity_set);

// One row of a collection or delta response. A "$deletedEntity" entry becomes a tombstone.
// `key_column` is crmbridge's alternate-key column, copied into NativeRecord::key when set.
// A lookup's value property (_parentaccountid_value) becomes the field `parentaccountid`.
Result<NativeRecord> RecordFromRow(const nlohmann::json& row, const std::string& primary_key,
                                   const std::string& key_column);

// "opportunities(crmb_externalid='O''Brien')": a quoted alternate-key segment, with ' doubled
// (OData) and the value percent-encoded for the URL.
std::string AlternateKeySegment(const std::string& entity_set, const std::string& column,
                                const std::string& value);

// Percent-encodes `s` for a URL path segment, query value or form body (RFC 3986 unreserved
// characters and `'` are left as they are).
std::string PercentEncode(const std::string& s);

// The multipart/mixed body of a $batch carrying `requests` in order, each as its own part (no
// change sets). URLs are sent as given (absolute).
std::string BatchBody(const std::string& boundary, const std::vector<Request>& requests);

// The responses of a $batch answer, in order, from its Content-Type (for the boundary) and body.
// Only whole parts: an answer that broke off gives the parts before the one it broke off in.
// kInvalidArgument when the answer is not a multipart batch response.
Result<std::vector<Response>> ParseBatchResponse(const std::string& content_type,
                                                 const std::string& body);

// Parses "2024-01-01T00:00:00Z" into epoch ms; 0 when it cannot.
int64_t ParseDataverseTime(const std::string& text);

}  // namespace crmbridge::dynamics365
