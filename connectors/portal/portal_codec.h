// Customer portal JSON <-> NativeRecord, write bodies, idempotency keys and the access read
// cursor, as pure functions (no I/O). Every nlohmann::json exception is caught here; callers get
// Status values.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "connectors/connector.h"

namespace crmbridge::portal {

// `value` as compact JSON; invalid UTF-8 in strings becomes U+FFFD instead of throwing. Object keys
// are sorted (nlohmann::json keeps them in a std::map), so equal values dump equal.
std::string DumpJson(const nlohmann::json& value);

// A property ({"id","name","external_id","created_at"}) as a record: fields name and external_id
// (null when absent), key = external_id. Properties carry no modification time (modified_ms 0).
Result<NativeRecord> PropertyRecord(const nlohmann::json& item);
// A user as a record: every member but id and the timestamps, the five known fields always
// present (null when absent), modified_ms = updated_at. Users carry no key.
Result<NativeRecord> UserRecord(const nlohmann::json& item);
// A grant as a record: id "<user_id>/<property_id>", fields user_id, property_id, granted_at,
// modified_ms = granted_at.
Result<NativeRecord> GrantRecord(const nlohmann::json& item);

// The body of a property create or update: `fields` (name, external_id) with `key`, when not
// empty, as external_id. kInvalidArgument naming a field the portal does not have.
Result<nlohmann::json> PropertyBody(const nlohmann::json& fields, const std::string& key);
// The body of a user create or update: email, first_name, last_name, portal_access,
// main_property_id. Values mappings commonly produce become the API's types: "true"/"false" for
// portal_access; "" main_property_id is null (none); a null name is "" (the API takes only
// strings). kInvalidArgument naming a field the portal does not have.
Result<nlohmann::json> UserBody(const nlohmann::json& fields);

struct GrantRef {
  std::string user_id;
  std::string property_id;
};
// "<user_id>/<property_id>"
std::string GrantId(const GrantRef& grant);
// The grant an access op names: fields user_id and property_id, else its native id
// "<user_id>/<property_id>". kInvalidArgument when neither names both.
Result<GrantRef> GrantOf(const WriteOp& op);

// Idempotency-Key of a create: `key` with a short hash of `body`, so a retried identical create
// replays while a changed payload for the same key is a new request (not a 422). A key too long
// or not plain visible ASCII is hashed whole.
std::string CreateIdempotencyKey(const std::string& key, const nlohmann::json& body);
// Idempotency-Key of the password reset that follows a grant: one per grant, and a grant revoked
// and made again has a new granted_at.
std::string ResetIdempotencyKey(const GrantRef& grant, const std::string& granted_at);

// Where a read of "access" (users, then each user's grants) stands.
struct AccessCursor {
  std::string users;   // the portal cursor of the users page being read ("" = the first)
  int index = 0;       // position in that page of the user being read
  std::string user;    // that user's id (found again by id if the page shifted)
  std::string grants;  // the portal cursor within the user's grants ("" = the first)
};
std::string EncodeAccessCursor(const AccessCursor& cursor);
// Empty text gives the start of a scan. kInvalidArgument when malformed.
Result<AccessCursor> DecodeAccessCursor(const std::string& text);

}  // namespace crmbridge::portal
