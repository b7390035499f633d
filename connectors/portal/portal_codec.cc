#include "connectors/portal/portal_codec.h"

#include <algorithm>
#include <cctype>

#include "connectors/portal/portal_limits.h"
#include "src/core/json_text.h"
#include "src/core/hash.h"
#include "src/core/time_util.h"

namespace crmbridge::portal {

using nlohmann::json;

namespace {

constexpr const char* kPropertyFields[] = {"name", "external_id"};
constexpr const char* kUserFields[] = {"email", "first_name", "last_name", "portal_access",
                                       "main_property_id"};
// Hex digits of the body hash in a create's Idempotency-Key: 64 bits tell payloads apart.
constexpr size_t kBodyHashLength = 16;

// An answer the API's contract does not allow: worth reading again later.
Status Malformed(const std::string& what) {
  return Status(StatusCode::kUnavailable, what).set_system("portal");
}

Status Invalid(const std::string& what) {
  return Status(StatusCode::kInvalidArgument, what).set_system("portal");
}

std::string StringAt(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t MillisAt(const json& j, const char* key) {
  return ParseIsoUtcMillis(StringAt(j, key)).value_or(0);
}

template <size_t N>
std::string Listed(const char* const (&names)[N]) {
  std::string out;
  for (const char* n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

// Copies `fields` after checking every name is one of `known`.
template <size_t N>
Result<json> KnownFields(const json& fields, const char* const (&known)[N], const char* object) {
  if (!fields.is_object()) return Invalid(std::string(object) + " fields must be a JSON object");
  for (const auto& item : fields.items()) {
    // Not a structured binding: C++17 lets no lambda capture one (clang refuses it).
    const std::string& name = item.key();
    if (std::none_of(std::begin(known), std::end(known), [&](const char* k) { return name == k; }))
      return Invalid(std::string(object) + " have no field \"" + name +
                     "\" (fields: " + Listed(known) + ")");
  }
  return fields;
}

// Visible ASCII without spaces: safe in a header value as it is.
bool PlainToken(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

Result<NativeRecord> PropertyRecord(const json& item) {
  if (!item.is_object() || StringAt(item, "id").empty())
    return Malformed("a property without an id in a list answer");
  NativeRecord r;
  r.id = StringAt(item, "id");
  for (const char* f : kPropertyFields) r.fields[f] = item.contains(f) ? item[f] : json();
  r.key = StringAt(item, "external_id");
  return r;
}

Result<NativeRecord> UserRecord(const json& item) {
  if (!item.is_object() || StringAt(item, "id").empty())
    return Malformed("a user without an id in a list answer");
  NativeRecord r;
  r.id = StringAt(item, "id");
  for (const char* f : kUserFields) r.fields[f] = json();
  for (const auto& [name, value] : item.items())
    if (name != "id" && name != "created_at" && name != "updated_at") r.fields[name] = value;
  r.modified_ms = MillisAt(item, "updated_at");
  return r;
}

Result<NativeRecord> GrantRecord(const json& item) {
  GrantRef g{item.is_object() ? StringAt(item, "user_id") : "",
             item.is_object() ? StringAt(item, "property_id") : ""};
  if (g.user_id.empty() || g.property_id.empty())
    return Malformed("a grant without user_id or property_id in a list answer");
  NativeRecord r;
  r.id = GrantId(g);
  r.fields = {{"user_id", g.user_id},
              {"property_id", g.property_id},
              {"granted_at", item.contains("granted_at") ? item["granted_at"] : json()}};
  r.modified_ms = MillisAt(item, "granted_at");
  return r;
}

Result<json> PropertyBody(const json& fields, const std::string& key) {
  auto body = KnownFields(fields, kPropertyFields, "properties");
  if (!body.ok()) return body.status();
  if (!key.empty()) (*body)["external_id"] = key;
  return body;
}

Result<json> UserBody(const json& fields) {
  auto body = KnownFields(fields, kUserFields, "users");
  if (!body.ok()) return body.status();
  json& b = *body;
  if (auto it = b.find("portal_access"); it != b.end() && it->is_string()) {
    std::string v = it->get<std::string>();
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    if (v == "true" || v == "false") *it = v == "true";
  }
  if (auto it = b.find("main_property_id");
      it != b.end() && it->is_string() && it->get<std::string>().empty())
    *it = nullptr;
  for (const char* name : {"first_name", "last_name"})
    if (auto it = b.find(name); it != b.end() && it->is_null()) *it = "";
  return body;
}

std::string GrantId(const GrantRef& grant) { return grant.user_id + "/" + grant.property_id; }

Result<GrantRef> GrantOf(const WriteOp& op) {
  GrantRef g;
  if (op.fields.is_object()) {
    g.user_id = StringAt(op.fields, "user_id");
    g.property_id = StringAt(op.fields, "property_id");
  }
  const size_t slash = op.native_id.find('/');
  if ((g.user_id.empty() || g.property_id.empty()) && slash != std::string::npos) {
    g.user_id = op.native_id.substr(0, slash);
    g.property_id = op.native_id.substr(slash + 1);
  }
  if (g.user_id.empty() || g.property_id.empty())
    return Invalid(
        "an access grant needs the fields user_id and property_id (or the id "
        "\"<user_id>/<property_id>\"); got fields " +
        DumpJson(op.fields) + " and id \"" + op.native_id + "\"");
  return g;
}

std::string CreateIdempotencyKey(const std::string& key, const json& body) {
  const std::string body_hash = Sha256Hex(DumpJson(body)).substr(0, kBodyHashLength);
  std::string out = "crmb-" + key + "-" + body_hash;
  if (out.size() > kMaxIdempotencyKey || !PlainToken(key))
    out = "crmb-" + Sha256Hex(key).substr(0, 32) + "-" + body_hash;
  return out;
}

std::string ResetIdempotencyKey(const GrantRef& grant, const std::string& granted_at) {
  std::string out = "reset-" + grant.user_id + "-" + grant.property_id + "-" + granted_at;
  if (out.size() > kMaxIdempotencyKey || !PlainToken(out)) out = "reset-" + Sha256Hex(out);
  return out;
}

std::string EncodeAccessCursor(const AccessCursor& cursor) {
  return DumpJson(json{{"users", cursor.users},
                       {"index", cursor.index},
                       {"user", cursor.user},
                       {"grants", cursor.grants}});
}

Result<AccessCursor> DecodeAccessCursor(const std::string& text) {
  AccessCursor c;
  if (text.empty()) return c;
  auto j = ParseJsonOrDiscarded(text);
  const auto string_at = [&](const char* k) { return j.contains(k) && j[k].is_string(); };
  if (!j.is_object() || !string_at("users") || !string_at("user") || !string_at("grants") ||
      !j.contains("index") || !j["index"].is_number_integer() || j["index"].get<int64_t>() < 0 ||
      j["index"].get<int64_t>() > kMaxPage)
    return Invalid("not an access read cursor: " + text);
  c.users = j["users"].get<std::string>();
  c.index = j["index"].get<int>();
  c.user = j["user"].get<std::string>();
  c.grants = j["grants"].get<std::string>();
  return c;
}

}  // namespace crmbridge::portal
