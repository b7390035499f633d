#include "mocks/hubspot/hubspot_mock.h"

#include <httplib.h>

#include <algorithm>
#include <functional>
#include <iterator>
#include <cctype>
#include <limits>
#include <ctime>
#include <optional>
#include <random>

#include "src/core/ids.h"
#include "src/core/time_util.h"

namespace crmbridge::mocks {

using nlohmann::json;

namespace {

constexpr int kMaxBatch = 100;
constexpr int kMaxSearchLimit = 200;
constexpr int kSearchCap = 10000;
// Searches whose matches are kept for their next pages (a connector pages one search at a time).
constexpr size_t kSearchCacheSize = 4;

const std::map<std::string, std::string> kTypeIds = {
    {"0-5", "tickets"}, {"0-2", "companies"}, {"0-1", "contacts"}, {"0-46", "notes"}, {"0-27", "tasks"},
    {"ticket", "tickets"}, {"company", "companies"}, {"contact", "contacts"}, {"note", "notes"},
    {"task", "tasks"}};
const std::map<std::string, std::string> kTypeIdOf = {
    {"tickets", "0-5"}, {"companies", "0-2"}, {"contacts", "0-1"}, {"notes", "0-46"}, {"tasks", "0-27"}};

// HUBSPOT_DEFINED default association type ids, by "from|to" (refs/hubspot §7).
const std::map<std::string, int> kDefaultAssociation = {
    {"tickets|companies", 339}, {"companies|tickets", 340}, {"tickets|contacts", 16},
    {"contacts|tickets", 15},   {"contacts|companies", 279}, {"companies|contacts", 280},
    {"notes|tickets", 228},     {"tickets|notes", 227},      {"notes|companies", 190},
    {"companies|notes", 189},   {"notes|contacts", 202},     {"contacts|notes", 201},
    {"tasks|tickets", 230},     {"tickets|tasks", 229},      {"tasks|companies", 192},
    {"companies|tasks", 191},   {"tasks|contacts", 204},     {"contacts|tasks", 203}};

int DefaultTypeId(const std::string& from, const std::string& to) {
  auto it = kDefaultAssociation.find(from + "|" + to);
  return it == kDefaultAssociation.end() ? 0 : it->second;
}

// The labelled HUBSPOT_DEFINED types beyond the defaults, by "from|to": a contact's or a ticket's
// primary company (refs/hubspot §7), each with the type id of the reverse direction.
struct LabelledType {
  int id;
  const char* label;
  int reverse;
};
const std::map<std::string, std::vector<LabelledType>> kLabelledAssociation = {
    {"contacts|companies", {{1, "Primary", 2}}}, {"companies|contacts", {{2, "Primary", 1}}},
    {"tickets|companies", {{26, "Primary", 25}}}, {"companies|tickets", {{25, "Primary", 26}}}};

const LabelledType* FindLabelledType(const std::string& from, const std::string& to, int id) {
  auto it = kLabelledAssociation.find(from + "|" + to);
  if (it == kLabelledAssociation.end()) return nullptr;
  for (const LabelledType& t : it->second)
    if (t.id == id) return &t;
  return nullptr;
}

// Object names in the singular, as HubSpot writes them in association type names
// (ticket_to_company) and property groups (companyinformation).
const std::map<std::string, std::string> kSingular = {
    {"tickets", "ticket"}, {"companies", "company"}, {"contacts", "contact"}, {"notes", "note"}, {"tasks", "task"}};

std::string Singular(const std::string& type) {
  auto it = kSingular.find(type);
  return it == kSingular.end() ? type : it->second;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string ModifiedProp(const std::string& type) {
  return type == "contacts" ? "lastmodifieddate" : "hs_lastmodifieddate";
}

// The ids a record absorbed by merges, ';'-separated (read-only in HubSpot).
constexpr char kMergedIds[] = "hs_merged_object_ids";

// Epoch ms from an epoch-ms string or a UTC ISO time; nullopt otherwise.
std::optional<double> AsNumber(const json& v);

// A numeric property's sort key, as Search computes it: missing or unreadable values sort as 0.
double SortNumber(const json& properties, const std::string& prop) {
  auto v = properties.find(prop);
  return v == properties.end() ? 0 : AsNumber(*v).value_or(0);
}

std::optional<double> AsNumber(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return std::nullopt;
  const std::string s = v.get<std::string>();
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (end != nullptr && *end == '\0') return d;
  if (auto ms = ParseIsoUtcMillis(s)) return static_cast<double>(*ms);
  return std::nullopt;
}

std::string Str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!part.empty()) out.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

HubSpotMock::HubSpotMock(Options options) : MockServer("hubspot"), options_(std::move(options)) {
  if (options_.clock == nullptr) options_.clock = Clock::Real();
  std::lock_guard<std::mutex> lock(mu_);
  InitLocked();
}

int64_t HubSpotMock::Now() const { return options_.clock->NowMillis(); }

std::string HubSpotMock::Iso(int64_t ms) const { return FormatIsoUtc(ms, /*millis=*/true); }

json HubSpotMock::Error(const std::string& category, const std::string& message) const {
  return {{"status", "error"}, {"message", message}, {"correlationId", NewUuid()}, {"category", category}};
}

json HubSpotMock::RenderProperty(const std::string& object_type, const std::string& name,
                                const PropertyDef& d) const {
  const std::string field_type = !d.field_type.empty() ? d.field_type
                                 : d.type == "enumeration"  ? "select"
                                 : d.type == "datetime"     ? "date"
                                                            : "text";
  return json{{"name", name},
              {"label", d.label.empty() ? name : d.label},
              {"description", d.description},
              {"type", d.type},
              {"fieldType", field_type},
              {"groupName", d.group_name.empty() ? Singular(object_type) + "information" : d.group_name},
              {"options", d.options},
              {"displayOrder", -1},
              {"calculated", false},
              {"externalOptions", false},
              {"hasUniqueValue", d.unique},
              {"hidden", false},
              {"formField", false},
              {"hubspotDefined", d.label.empty()},
              {"archived", false},
              {"createdAt", "1970-01-01T00:00:00Z"},
              {"updatedAt", "1970-01-01T00:00:00Z"},
              {"modificationMetadata",
               {{"archivable", true}, {"readOnlyDefinition", d.label.empty()}, {"readOnlyValue", false}}}};
}

// The next page's `after` becomes this page's own (a search's body, a list's query), "0" for the
// first page: the client is sent round the same page.
bool HubSpotMock::LoopPaging(const httplib::Request& req, nlohmann::json* body) const {
  if (!body->contains("paging") || !(*body)["paging"].contains("next")) return false;
  std::string after = req.has_param("after") ? req.get_param_value("after") : "";
  const json request = json::parse(req.body, nullptr, false);
  if (request.is_object() && request.contains("after")) {
    after = request["after"].is_string() ? request["after"].get<std::string>()
                                          : request["after"].dump();
  }
  (*body)["paging"]["next"]["after"] = after.empty() ? "0" : after;
  return true;
}

json HubSpotMock::FaultBody(int status, const std::string& message) const {
  if (status == 429)
    return {{"status", "error"},        {"message", "You have reached your ten_secondly_rolling limit."},
            {"errorType", "RATE_LIMIT"}, {"correlationId", NewUuid()},
            {"policyName", "TEN_SECONDLY_ROLLING"}, {"groupName", "api-calls"}};
  const char* category = status == 400 ? "VALIDATION_ERROR"
                         : status == 401 ? "INVALID_AUTHENTICATION"
                         : status == 404 ? "OBJECT_NOT_FOUND"
                         : status == 409 ? "CONFLICT"
                                         : "INTERNAL_ERROR";
  return Error(category, message);
}

void HubSpotMock::InitLocked() {
  objects_.clear();
  merged_into_.clear();
  index_.clear();
  search_cache_.clear();
  window_.clear();
  search_window_.clear();
  daily_.clear();
  next_id_ = 1000;
  // HubSpot's own properties: only their type is kept; RenderProperty gives them the rest.
  auto builtin = [](const char* type) {
    PropertyDef d;
    d.type = type;
    return d;
  };
  auto defs = [&builtin](std::initializer_list<std::pair<const char*, const char*>> list) {
    std::map<std::string, PropertyDef> m;
    for (auto& [name, type] : list) m[name] = builtin(type);
    m["hs_object_id"] = builtin("number");
    m["createdate"] = builtin("datetime");
    return m;
  };
  properties_["tickets"] = defs({{"subject", "string"}, {"content", "string"}, {"hs_pipeline", "enumeration"},
                                 {"hs_pipeline_stage", "enumeration"}, {"hs_ticket_priority", "enumeration"},
                                 {"hubspot_owner_id", "enumeration"}, {"hs_lastmodifieddate", "datetime"},
                                 {"hs_ticket_id", "number"}, {"hs_ticket_category", "enumeration"},
                                 {"closed_date", "datetime"}, {kMergedIds, "enumeration"}});
  properties_["companies"] = defs({{"name", "string"}, {"domain", "string"}, {"phone", "string"},
                                   {"city", "string"}, {"country", "string"}, {"industry", "enumeration"},
                                   {"hubspot_owner_id", "enumeration"}, {"hs_lastmodifieddate", "datetime"},
                                   {"lifecyclestage", "enumeration"}, {kMergedIds, "enumeration"}});
  properties_["contacts"] = defs({{"email", "string"}, {"firstname", "string"}, {"lastname", "string"},
                                  {"phone", "string"}, {"company", "string"}, {"jobtitle", "string"},
                                  {"hubspot_owner_id", "enumeration"}, {"lastmodifieddate", "datetime"},
                                  {kMergedIds, "enumeration"}});
  properties_["notes"] = defs({{"hs_note_body", "string"}, {"hs_timestamp", "datetime"},
                               {"hubspot_owner_id", "enumeration"}, {"hs_attachment_ids", "string"},
                               {"hs_lastmodifieddate", "datetime"}});
  properties_["tasks"] = defs({{"hs_task_subject", "string"}, {"hs_task_body", "string"},
                               {"hs_task_status", "enumeration"}, {"hs_task_priority", "enumeration"},
                               {"hs_task_type", "enumeration"}, {"hs_timestamp", "datetime"},
                               {"hubspot_owner_id", "enumeration"}, {"hs_lastmodifieddate", "datetime"}});
  pipelines_ = {
      {"0", "Support Pipeline",
       {{"1", "New", false}, {"2", "Waiting on contact", false}, {"3", "Waiting on us", false}, {"4", "Closed", true}}},
      {"7340123", "Order/faktura",
       {{"7340124", "Ny", false},
        {"7340125", "Onboarding – Pågår", false},
        {"7340126", "Må följas upp", false},
        {"7340127", "Manuell uppföljning", false},
        {"7340128", "Inaktiva kunder", false},
        {"7340129", "Avslutad", true}}}};
  // The portal's users: every account has them, seeded or not. Maja has left (deactivated).
  owners_ = {{"61000101", "anna.lund@bolaget.example", "Anna", "Lund", 7100101, false},
             {"61000102", "erik.sand@bolaget.example", "Erik", "Sand", 7100102, false},
             {"61000103", "maja.ek@bolaget.example", "Maja", "Ek", 7100103, true},
             {"61000104", "karl.berg@bolaget.example", "Karl", "Berg", 7100104, false}};
}

void HubSpotMock::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  InitLocked();
}

std::string HubSpotMock::CanonicalType(const std::string& type) {
  auto it = kTypeIds.find(type);
  return it == kTypeIds.end() ? type : it->second;
}

bool HubSpotMock::Admit(const httplib::Request& req, httplib::Response& res, bool search) {
  const std::string auth = req.get_header_value("Authorization");
  const std::string token = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : "";
  bool oauth_valid = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto t = oauth_tokens_.find(token);
    oauth_valid = t != oauth_tokens_.end() && Now() < t->second;
  }
  if (!options_.tokens.count(token) && !oauth_valid) {
    res.status = 401;
    res.set_content(Error("INVALID_AUTHENTICATION",
                          "Authentication credentials not found. This API supports OAuth 2.0 "
                          "authentication and you can find more details at "
                          "https://developers.hubspot.com/docs/methods/auth/oauth-overview")
                        .dump(),
                    "application/json");
    return false;
  }
  if (!options_.enforce_limits) return true;
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = Now();
  auto refuse = [&](const std::string& policy, const std::string& message) {
    CountRequest("429 " + policy);  // /__admin/stats: how often a client overran each limit
    res.status = 429;
    json body = {{"status", "error"},        {"message", message},
                 {"errorType", "RATE_LIMIT"}, {"correlationId", NewUuid()},
                 {"policyName", policy},      {"groupName", "api-calls"}};
    res.set_content(body.dump(), "application/json");
    return false;
  };
  if (search) {
    // Search: 5 requests per second, outside the 10-second budget, and without the rate-limit
    // headers (refs/hubspot §4).
    auto& w = search_window_[token];
    while (!w.empty() && w.front() <= now - 1000) w.pop_front();
    if (static_cast<int>(w.size()) >= options_.search_per_second)
      return refuse("SECONDLY", "You have reached your secondly limit.");
    w.push_back(now);
    return true;
  }
  if (++daily_[token] > options_.daily_max)
    return refuse("DAILY", "You have reached your daily limit.");
  auto& w = window_[token];
  while (!w.empty() && w.front() <= now - 10000) w.pop_front();
  const bool over = static_cast<int>(w.size()) >= options_.ten_second_max;
  if (!over) w.push_back(now);
  res.set_header("X-HubSpot-RateLimit-Interval-Milliseconds", "10000");
  res.set_header("X-HubSpot-RateLimit-Max", std::to_string(options_.ten_second_max));
  res.set_header("X-HubSpot-RateLimit-Remaining",
                 std::to_string(std::max<int>(0, options_.ten_second_max - static_cast<int>(w.size()))));
  res.set_header("X-HubSpot-RateLimit-Daily", std::to_string(options_.daily_max));
  res.set_header("X-HubSpot-RateLimit-Daily-Remaining",
                 std::to_string(std::max(0, options_.daily_max - daily_[token])));
  if (over) return refuse("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.");
  return true;
}

json HubSpotMock::Render(const std::string& type, const Object& o, const std::vector<std::string>& props,
                         const std::vector<std::string>& assoc,
                         const std::vector<std::string>& with_history) const {
  json p = json::object();
  if (props.empty()) {
    // Without properties=, a default set comes back.
    for (const char* k : {"createdate", "hs_object_id"}) p[k] = o.properties.value(k, json());
    const std::string mod = ModifiedProp(type);
    p[mod] = o.properties.value(mod, json());
    for (const char* k : {"subject", "content", "hs_pipeline", "hs_pipeline_stage", "name", "domain",
                          "email", "firstname", "lastname", "hs_note_body", "hs_timestamp", "hs_task_subject"})
      if (o.properties.contains(k)) p[k] = o.properties[k];
  } else {
    // Unknown names in properties= are silently ignored (refs/hubspot §2).
    for (const std::string& k : props)
      if (properties_.at(type).count(k)) p[k] = o.properties.value(k, json());
  }
  json out = {{"id", std::to_string(o.id)},
              {"properties", p},
              {"createdAt", Iso(o.created_ms)},
              {"updatedAt", Iso(o.updated_ms)},
              {"archived", o.archived}};
  if (o.archived) out["archivedAt"] = Iso(o.updated_ms);
  if (!with_history.empty()) {
    // ValueWithTimestamp entries, newest first; unknown names are left out.
    json h = json::object();
    for (const std::string& name : with_history) {
      auto it = o.history.find(name);
      if (it == o.history.end()) continue;
      json list = json::array();
      for (auto e = it->second.rbegin(); e != it->second.rend(); ++e)
        list.push_back({{"value", e->second.is_null() ? json("") : e->second},
                        {"timestamp", Iso(e->first)},
                        {"sourceType", "API"},
                        {"sourceId", "crm-mocks"}});
      h[name] = list;
    }
    out["propertiesWithHistory"] = h;
  }
  if (!assoc.empty()) {
    json a = json::object();
    for (const std::string& t : assoc) {
      auto it = o.associations.find(CanonicalType(t));
      if (it == o.associations.end() || it->second.empty()) continue;
      json results = json::array();
      for (int64_t id : it->second)
        results.push_back({{"id", std::to_string(id)}, {"type", Singular(type) + "_to_" + Singular(it->first)}});
      a[it->first] = {{"results", results}};
    }
    if (!a.empty()) out["associations"] = a;
  }
  return out;
}

std::optional<HubSpotMock::Reply> HubSpotMock::ApplyLocked(const std::string& type, Object* o,
                                                           const json& props) {
  if (!props.is_object())
    return Reply{400, Error("VALIDATION_ERROR", "Invalid input JSON: properties must be an object")};
  const auto& defs = properties_.at(type);
  json invalid = json::array();
  for (const auto& [name, value] : props.items()) {
    if (!defs.count(name)) {
      invalid.push_back({{"isValid", false},
                         {"message", "Property \"" + name + "\" does not exist"},
                         {"error", "PROPERTY_DOESNT_EXIST"},
                         {"name", name}});
    } else if (!value.is_string() && !value.is_null() && !value.is_number() && !value.is_boolean()) {
      invalid.push_back({{"isValid", false},
                         {"message", name + " was not a valid value"},
                         {"error", "INVALID_OPTION"},
                         {"name", name}});
    }
  }
  if (!invalid.empty())
    return Reply{400, Error("VALIDATION_ERROR", "Property values were not valid: " + invalid.dump())};
  // An owner is one of the active owners' ids (an archived owner owns no new records).
  if (props.contains("hubspot_owner_id") && !props["hubspot_owner_id"].is_null() &&
      Str(props["hubspot_owner_id"]) != "") {
    const std::string owner = Str(props["hubspot_owner_id"]);
    bool active = false;
    for (const Owner& w : owners_) active |= w.id == owner && !w.archived;
    if (!active)
      return Reply{400, Error("VALIDATION_ERROR", "Property values were not valid: [{\"isValid\":false,"
                                                  "\"message\":\"" + owner +
                                                  " was not one of the allowed options\",\"error\":"
                                                  "\"INVALID_OPTION\",\"name\":\"hubspot_owner_id\"}]")};
  }
  json merged = o->properties;
  for (const auto& [name, value] : props.items()) merged[name] = value.is_null() ? json() : json(Str(value));
  if (type == "tickets") {
    if (!merged.contains("hs_pipeline") || merged["hs_pipeline"].is_null() || merged["hs_pipeline"] == "")
      merged["hs_pipeline"] = "0";
    const Pipeline* pipe = nullptr;
    for (const auto& p : pipelines_)
      if (p.id == merged["hs_pipeline"]) pipe = &p;
    if (pipe == nullptr)
      return Reply{400, Error("VALIDATION_ERROR", "Property values were not valid: [{\"isValid\":false,"
                                                  "\"message\":\"" + Str(merged["hs_pipeline"]) +
                                                  " was not one of the allowed options\",\"error\":"
                                                  "\"INVALID_OPTION\",\"name\":\"hs_pipeline\"}]")};
    if (!merged.contains("hs_pipeline_stage") || merged["hs_pipeline_stage"].is_null())
      return Reply{400, Error("VALIDATION_ERROR", "Property values were not valid: hs_pipeline_stage is required")};
    bool stage_ok = false;
    for (const auto& s : pipe->stages) stage_ok |= s.id == merged["hs_pipeline_stage"];
    if (!stage_ok)
      return Reply{400, Error("VALIDATION_ERROR", "Property values were not valid: [{\"isValid\":false,"
                                                  "\"message\":\"" + Str(merged["hs_pipeline_stage"]) +
                                                  " is not a valid pipeline stage of pipeline " +
                                                  pipe->id + "\",\"error\":\"INVALID_OPTION\","
                                                  "\"name\":\"hs_pipeline_stage\"}]")};
  }
  // Unique values: another live record holding the value is a conflict (the lowest id is named).
  for (const auto& [name, def] : defs) {
    if (!def.unique || !props.contains(name) || merged[name].is_null() || merged[name] == "") continue;
    const auto& values = index_[type].by_value[name];
    auto holders = values.find(Str(merged[name]));
    if (holders == values.end()) continue;
    for (int64_t id : holders->second) {
      if (id != o->id)
        return Reply{409, Error("CONFLICT", "A " + Singular(type) + " with " + name + " " +
                                                Str(merged[name]) + " already exists. Existing ID: " +
                                                std::to_string(id))};
    }
  }
  const int64_t now = Now();
  const bool creating = o->id == 0;
  if (o->id == 0) {
    o->id = ++next_id_;
    o->created_ms = now;
    merged["hs_object_id"] = std::to_string(o->id);
    merged["createdate"] = Iso(now);
    if (type == "tickets") merged["hs_ticket_id"] = std::to_string(o->id);
  }
  o->updated_ms = now;
  merged[ModifiedProp(type)] = Iso(now);
  const std::string modified_prop = ModifiedProp(type);  // its history would be every write
  for (const auto& [name, value] : merged.items())
    if (name != modified_prop &&
        (creating || props.contains(name) || value != o->properties.value(name, json()))) {
      auto& past = o->history[name];
      if (past.empty() || past.back().second != value) past.emplace_back(now, value);
    }
  if (creating) {
    webhooks_.Enqueue(type, "creation", o->id, now);
  } else {
    // One propertyChange per property whose value changed (HubSpot subscribes per property).
    for (const auto& [name, value] : props.items())
      if (merged[name] != o->properties.value(name, json()))
        webhooks_.Enqueue(type, "propertyChange", o->id, now, name, merged[name]);
  }
  o->properties = std::move(merged);
  // A stored object is refiled; a probe or a new object not yet stored is not.
  auto stored = objects_[type].find(o->id);
  if (stored != objects_[type].end() && &stored->second == o) IndexLocked(type, *o);
  return std::nullopt;
}

bool HubSpotMock::IndexedProperty(const std::string& type, const std::string& name) const {
  if (type == "contacts" && name == "email") return true;
  auto defs = properties_.find(type);
  if (defs == properties_.end()) return false;
  auto def = defs->second.find(name);
  return def != defs->second.end() && def->second.unique;
}

void HubSpotMock::IndexLocked(const std::string& type, const Object& o) {
  TypeIndex& ix = index_[type];
  ++ix.generation;
  if (auto old = ix.filed.find(o.id); old != ix.filed.end()) {
    ix.by_modified.erase({old->second.modified, o.id});
    for (const auto& [name, value] : old->second.values) {
      auto& values = ix.by_value[name];
      auto holders = values.find(value);
      holders->second.erase(o.id);
      if (holders->second.empty()) values.erase(holders);
    }
    ix.filed.erase(old);
  }
  if (o.archived) return;  // searches and lookups never see archived objects
  TypeIndex::Filed f;
  f.modified = SortNumber(o.properties, ModifiedProp(type));
  for (const auto& [name, value] : o.properties.items()) {
    // Values are strings or null (ApplyLocked); null never equals a looked-up id.
    if (value.is_string() && IndexedProperty(type, name)) {
      f.values[name] = value.get<std::string>();
      ix.by_value[name][f.values[name]].insert(o.id);
    }
  }
  ix.by_modified.insert({f.modified, o.id});
  ix.filed[o.id] = std::move(f);
}

// A merge makes a new record with a new id, as HubSpot does since its merge change for contacts
// and companies ("a new record with a new ID will be created for the resulting merged record,
// with both records merged into the new one"; the mock does so for every object it merges). Its
// properties are the primary's, an empty one taking the other record's (unique properties
// excepted); hs_merged_object_ids lists both ids and those they had absorbed; the associations of
// both move to it. Both ids are gone from listings, searches and writes, and a GET by either
// answers the merged record (merged_into_).
HubSpotMock::Object* HubSpotMock::FindMergedLocked(const std::string& type, const std::string& id) {
  char* end = nullptr;
  const long long n = std::strtoll(id.c_str(), &end, 10);
  if (end == nullptr || *end != '\0') return nullptr;
  auto by_type = merged_into_.find(type);
  if (by_type == merged_into_.end()) return nullptr;
  auto into = by_type->second.find(n);
  return into == by_type->second.end() ? nullptr : FindLocked(type, std::to_string(into->second), "");
}

HubSpotMock::Reply HubSpotMock::MergeLocked(const std::string& type, const json& body) {
  if (type != "contacts" && type != "companies" && type != "tickets" && type != "deals")
    return {400, Error("VALIDATION_ERROR", "Merging is not supported for " + type + ".")};
  if (!body.is_object() || !body.contains("primaryObjectId") || !body.contains("objectIdToMerge"))
    return {400, Error("VALIDATION_ERROR",
                       "Merging needs primaryObjectId and objectIdToMerge.")};
  const std::string primary_id = Str(body["primaryObjectId"]);
  const std::string absorbed_id = Str(body["objectIdToMerge"]);
  if (primary_id == absorbed_id)
    return {400, Error("VALIDATION_ERROR", "An object cannot be merged with itself.")};
  Object* primary = FindLocked(type, primary_id, "");
  Object* absorbed = FindLocked(type, absorbed_id, "");
  if (primary == nullptr || absorbed == nullptr)
    return {404, Error("OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")};
  const int64_t now = Now();
  Object merged;
  merged.id = ++next_id_;
  merged.created_ms = now;
  merged.updated_ms = now;
  merged.properties = primary->properties;
  merged.history = primary->history;
  for (const auto& [name, value] : absorbed->properties.items()) {
    if (IndexedProperty(type, name) || name == "hs_object_id" || name == "createdate" ||
        name == kMergedIds || name == ModifiedProp(type) || name == "hs_ticket_id")
      continue;
    const json mine = merged.properties.value(name, json());
    if ((mine.is_null() || mine == "") && !value.is_null() && value != "") {
      merged.properties[name] = value;
      merged.history[name].emplace_back(now, value);
    }
  }
  std::string merged_ids;
  json absorbed_ids = json::array();
  auto add_ids = [&](const Object& o) {
    merged_ids += (merged_ids.empty() ? "" : ";") + std::to_string(o.id);
    if (&o != primary) absorbed_ids.push_back(o.id);
    if (const json theirs = o.properties.value(kMergedIds, json()); theirs.is_string() &&
                                                                     !theirs.get<std::string>().empty())
      merged_ids += ";" + theirs.get<std::string>();
  };
  add_ids(*primary);
  add_ids(*absorbed);
  merged.properties[kMergedIds] = merged_ids;
  merged.history[kMergedIds].emplace_back(now, merged_ids);
  merged.properties["hs_object_id"] = std::to_string(merged.id);
  merged.properties["createdate"] = Iso(now);
  if (type == "tickets") merged.properties["hs_ticket_id"] = std::to_string(merged.id);
  merged.properties[ModifiedProp(type)] = Iso(now);
  const int64_t pid = primary->id, aid = absorbed->id, mid = merged.id;
  // The two leave every index before the merged record (which may hold their unique values) is
  // filed; then the associations of both move to it.
  for (int64_t old : {pid, aid}) {
    Object& o = objects_[type][old];
    o.archived = true;
    IndexLocked(type, o);
  }
  StoreLocked(type, std::move(merged));
  for (int64_t old : {pid, aid}) {
    const auto moved = objects_[type][old].associations;
    for (const auto& [to, ids] : moved)
      for (int64_t to_id : ids) {
        UnlinkLocked(type, old, to, to_id);
        LinkLocked(type, mid, to, to_id, nullptr);
      }
    objects_[type].erase(old);
    merged_into_[type][old] = mid;
  }
  // Ids merged before into one of the two now lead to the new record too.
  for (auto& [old, into] : merged_into_[type])
    if (into == pid || into == aid) into = mid;
  webhooks_.Enqueue(type, "merge", mid, now, "", json{{"primary", pid},
                                                      {"merged", absorbed_ids}});
  return {200, Render(type, objects_[type].at(mid), {}, {})};
}

void HubSpotMock::ArchiveLocked(const std::string& type, Object* o) {
  o->archived = true;
  o->updated_ms = Now();
  webhooks_.Enqueue(type, "deletion", o->id, o->updated_ms);
  IndexLocked(type, *o);
}

void HubSpotMock::RebuildIndexLocked(const std::string& type) {
  const uint64_t generation = index_[type].generation;
  index_[type] = TypeIndex{};
  index_[type].generation = generation;
  for (const auto& [id, o] : objects_[type]) IndexLocked(type, o);
}

HubSpotMock::Object& HubSpotMock::StoreLocked(const std::string& type, Object o) {
  Object& stored = objects_[type][o.id];
  stored = std::move(o);
  IndexLocked(type, stored);
  return stored;
}

HubSpotMock::Object* HubSpotMock::FindLocked(const std::string& type, const std::string& id,
                                             const std::string& id_property) {
  auto& objs = objects_[type];
  if (id_property.empty() || id_property == "hs_object_id") {
    char* end = nullptr;
    long long n = std::strtoll(id.c_str(), &end, 10);
    if (end == nullptr || *end != '\0') return nullptr;
    auto it = objs.find(n);
    return it == objs.end() || it->second.archived ? nullptr : &it->second;
  }
  if (IndexedProperty(type, id_property)) {
    const auto& values = index_[type].by_value[id_property];
    auto holders = values.find(id);
    // The lowest id holding the value, as a scan in id order would find.
    return holders == values.end() || holders->second.empty() ? nullptr
                                                              : &objs.at(*holders->second.begin());
  }
  for (auto& [oid, o] : objs)
    if (!o.archived && o.properties.value(id_property, json()) == json(id)) return &o;
  return nullptr;
}

HubSpotMock::Reply HubSpotMock::CreateLocked(const std::string& type, const json& input) {
  Object o;
  if (auto err = ApplyLocked(type, &o, input.value("properties", json::object()))) return *err;
  for (const json& a : input.value("associations", json::array())) {
    const json to = a.value("to", json::object());
    const std::string to_id = to.contains("id") ? Str(to["id"]) : "";
    // Without the target type in the input, infer it from the association type id.
    for (const auto& [other_type, objs] : objects_) {
      auto it = objs.find(std::strtoll(to_id.c_str(), nullptr, 10));
      if (it != objs.end()) {
        o.associations[other_type].insert(it->first);
        objects_[other_type][it->first].associations[type].insert(o.id);
      }
    }
  }
  return Reply{201, Render(type, StoreLocked(type, std::move(o)), {}, {})};
}

bool HubSpotMock::Matches(const std::string& type, const Object& o, const json& f) const {
  const std::string prop = f.value("propertyName", "");
  const std::string op = f.value("operator", "EQ");
  const auto& defs = properties_.at(type);
  auto def = defs.find(prop);
  const bool numeric = def != defs.end() && (def->second.type == "number" || def->second.type == "datetime");
  const json have = o.properties.value(prop, json());
  const bool has = !have.is_null() && have != "";
  if (op == "HAS_PROPERTY") return has;
  if (op == "NOT_HAS_PROPERTY") return !has;
  auto cmp = [&](const json& want) -> std::optional<int> {
    if (!has) return std::nullopt;
    if (numeric) {
      auto a = AsNumber(have), b = AsNumber(want);
      if (!a || !b) return std::nullopt;
      return *a < *b ? -1 : *a > *b ? 1 : 0;
    }
    const std::string a = Lower(Str(have)), b = Lower(Str(want));
    return a < b ? -1 : a > b ? 1 : 0;
  };
  const json value = f.value("value", json());
  if (op == "EQ") return cmp(value) == 0;
  if (op == "NEQ") { auto c = cmp(value); return !c || *c != 0; }
  if (op == "LT") { auto c = cmp(value); return c && *c < 0; }
  if (op == "LTE") { auto c = cmp(value); return c && *c <= 0; }
  if (op == "GT") { auto c = cmp(value); return c && *c > 0; }
  if (op == "GTE") { auto c = cmp(value); return c && *c >= 0; }
  if (op == "BETWEEN") {
    auto lo = cmp(value), hi = cmp(f.value("highValue", json()));
    return lo && hi && *lo >= 0 && *hi <= 0;
  }
  if (op == "IN" || op == "NOT_IN") {
    bool in = false;
    for (const json& v : f.value("values", json::array())) in |= cmp(v) == 0;
    return op == "IN" ? in : !in;
  }
  if (op == "CONTAINS_TOKEN" || op == "NOT_CONTAINS_TOKEN") {
    std::string token = Lower(Str(value));
    token.erase(std::remove(token.begin(), token.end(), '*'), token.end());
    const bool found = has && Lower(Str(have)).find(token) != std::string::npos;
    return op == "CONTAINS_TOKEN" ? found : !found;
  }
  return false;
}

HubSpotMock::Reply HubSpotMock::Search(const std::string& type, const json& body) {
  const json groups = body.value("filterGroups", json::array());
  size_t total_filters = 0;
  for (const json& g : groups) {
    const size_t n = g.value("filters", json::array()).size();
    total_filters += n;
    if (n > 6)
      return {400, Error("VALIDATION_ERROR", "There was a problem with the request. Too many filters in a group: at most 6.")};
  }
  if (groups.size() > 5 || total_filters > 18)
    return {400, Error("VALIDATION_ERROR", "There was a problem with the request. At most 5 filterGroups and 18 filters.")};
  const json sorts = body.value("sorts", json::array());
  if (sorts.size() > 1) return {400, Error("VALIDATION_ERROR", "Only one sort is allowed.")};
  int limit = body.value("limit", 10);
  if (limit > kMaxSearchLimit || limit < 1)
    return {400, Error("VALIDATION_ERROR", "limit must be between 1 and 200")};
  int after = 0;
  if (body.contains("after")) after = std::atoi(Str(body["after"]).c_str());
  if (after >= kSearchCap)
    return {400, Error("VALIDATION_ERROR", "The search API cannot page past 10,000 results.")};

  std::string sort_prop = "hs_object_id";
  bool desc = false;
  if (!sorts.empty()) {
    const json& s = sorts[0];
    if (s.is_string()) {
      sort_prop = s.get<std::string>();
      if (!sort_prop.empty() && sort_prop[0] == '-') { desc = true; sort_prop = sort_prop.substr(1); }
    } else {
      sort_prop = s.value("propertyName", "hs_object_id");
      desc = s.value("direction", "ASCENDING") == "DESCENDING";
    }
  }
  const auto& defs = properties_.at(type);
  auto is_numeric = [&](const std::string& prop) {
    auto def = defs.find(prop);
    return def != defs.end() && (def->second.type == "number" || def->second.type == "datetime");
  };
  TypeIndex& ix = index_[type];
  auto& objs = objects_[type];

  // The pages of one search share its matches until the type is written.
  const std::string cache_key = groups.dump() + '\n' + sorts.dump();
  const std::vector<int64_t>* hit_ids = nullptr;
  for (auto it = search_cache_.begin(); it != search_cache_.end(); ++it) {
    if (it->type == type && it->key == cache_key && it->generation == ix.generation) {
      if (it != search_cache_.begin()) {
        CachedSearch found = std::move(*it);
        search_cache_.erase(it);
        search_cache_.push_front(std::move(found));
      }
      hit_ids = &search_cache_.front().hits;
      break;
    }
  }
  if (hit_ids == nullptr) {
    std::vector<json> group_filters;  // parsed once, not per object
    for (const json& g : groups) group_filters.push_back(g.value("filters", json::array()));
    // One filter group bounding the modified property: only the objects in that range of the
    // index can match. The bounds only narrow the candidates; every filter still decides.
    const std::string modified = ModifiedProp(type);
    double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
    bool ranged = false;
    if (group_filters.size() == 1 && is_numeric(modified)) {
      for (const json& f : group_filters[0]) {
        if (!f.is_object() || f.value("propertyName", "") != modified) continue;
        const std::string op = f.value("operator", "EQ");
        const auto v = AsNumber(f.value("value", json()));
        if (!v) continue;
        if (op == "GTE" || op == "GT" || op == "EQ" || op == "BETWEEN") {
          lo = std::max(lo, *v);
          ranged = true;
        }
        if (op == "LTE" || op == "LT" || op == "EQ") {
          hi = std::min(hi, *v);
          ranged = true;
        }
        if (op == "BETWEEN")
          if (const auto h = AsNumber(f.value("highValue", json()))) hi = std::min(hi, *h);
      }
    }
    std::vector<const Object*> hits;
    auto consider = [&](const Object& o) {
      if (o.archived) return;
      bool ok = group_filters.empty();
      for (const json& filters : group_filters) {
        bool all = true;
        for (const json& f : filters) all = all && Matches(type, o, f);
        ok = ok || all;
      }
      if (ok) hits.push_back(&o);
    };
    if (ranged) {
      for (auto it = ix.by_modified.lower_bound({lo, std::numeric_limits<int64_t>::min()});
           it != ix.by_modified.end() && it->first <= hi; ++it)
        consider(objs.at(it->second));
    } else {
      for (const auto& [id, o] : objs) consider(o);
    }
    // The index is in (modified, id) order, which is this sort's: nothing to sort.
    const bool in_order = ranged && sort_prop == modified && !desc;
    if (!in_order) {
      const bool numeric = is_numeric(sort_prop);
      // Sort keys computed once per hit, not per comparison.
      struct Keyed {
        double number = 0;
        std::string text;
        const Object* o;
      };
      std::vector<Keyed> keyed;
      keyed.reserve(hits.size());
      for (const Object* o : hits) {
        Keyed k{0, "", o};
        if (numeric) {
          k.number = SortNumber(o->properties, sort_prop);
        } else {
          auto v = o->properties.find(sort_prop);
          k.text = Lower(Str(v == o->properties.end() ? json() : *v));
        }
        keyed.push_back(std::move(k));
      }
      std::sort(keyed.begin(), keyed.end(), [&](const Keyed& a, const Keyed& b) {
        const int c = numeric ? (a.number < b.number ? -1 : a.number > b.number ? 1 : 0)
                              : a.text.compare(b.text);
        if (c == 0) return a.o->id < b.o->id;  // stable order: then by id
        return desc ? c > 0 : c < 0;
      });
      for (size_t i = 0; i < keyed.size(); ++i) hits[i] = keyed[i].o;
    }
    CachedSearch entry{type, cache_key, ix.generation, {}};
    entry.hits.reserve(hits.size());
    for (const Object* o : hits) entry.hits.push_back(o->id);
    search_cache_.push_front(std::move(entry));
    if (search_cache_.size() > kSearchCacheSize) search_cache_.pop_back();
    hit_ids = &search_cache_.front().hits;
  }
  const int count = static_cast<int>(hit_ids->size());
  std::vector<std::string> props;
  for (const json& p : body.value("properties", json::array())) props.push_back(Str(p));
  json results = json::array();
  for (int i = after; i < count && i < after + limit; ++i)
    results.push_back(Render(type, objs.at((*hit_ids)[i]), props, {}));
  json out = {{"total", hit_ids->size()}, {"results", results}};
  if (after + limit < count)
    out["paging"] = {{"next", {{"after", std::to_string(after + limit)}, {"link", ""}}}};
  return {200, out};
}

HubSpotMock::Reply HubSpotMock::List(const std::string& type, const httplib::Request& req) {
  int limit = req.has_param("limit") ? std::atoi(req.get_param_value("limit").c_str()) : 10;
  limit = std::clamp(limit, 1, 100);
  const bool archived = req.get_param_value("archived") == "true";
  int64_t after = 0;
  if (req.has_param("after")) {
    // The cursor is opaque to clients; here it is the last id, base64-free but prefixed.
    const std::string a = req.get_param_value("after");
    if (a.rfind("c", 0) != 0) return {400, Error("VALIDATION_ERROR", "Invalid after cursor: " + a)};
    after = std::strtoll(a.c_str() + 1, nullptr, 10);
  }
  // Comma-separated or repeated (properties=a&properties=b, as HubSpot's SDKs send arrays).
  auto fields = [&](const char* param) {
    std::vector<std::string> out;
    for (size_t i = 0; i < req.get_param_value_count(param); ++i)
      for (std::string& v : SplitComma(req.get_param_value(param, i))) out.push_back(std::move(v));
    return out;
  };
  const std::vector<std::string> props = fields("properties"), assoc = fields("associations");
  json results = json::array();
  int64_t last = 0;
  bool more = false;
  for (auto it = objects_[type].upper_bound(after); it != objects_[type].end(); ++it) {
    if (it->second.archived != archived) continue;
    if (static_cast<int>(results.size()) == limit) {
      more = true;
      break;
    }
    results.push_back(Render(type, it->second, props, assoc));
    last = it->first;
  }
  json out = {{"results", results}};
  if (more) {
    const std::string cursor = "c" + std::to_string(last);
    out["paging"] = {{"next", {{"after", cursor}, {"link", "?after=" + cursor}}}};
  }
  return {200, out};
}

// A transient per-input failure, as a 207 answer's errors[] reports it; `context` names the input.
json HubSpotMock::InjectedItemError(const std::string& context_key, const std::string& id) const {
  json e = Error("INTERNAL_ERROR", "internal error while writing this input (injected); retry it");
  e["context"] = {{context_key, {id}}};
  return e;
}

HubSpotMock::Reply HubSpotMock::Batch(const std::string& type, const std::string& verb, const json& body,
                                     const std::function<bool()>& injected_failure) {
  const json inputs = body.value("inputs", json::array());
  if (!inputs.is_array()) return {400, Error("VALIDATION_ERROR", "inputs must be an array")};
  if (inputs.size() > kMaxBatch)
    return {400, Error("VALIDATION_ERROR", "The maximum number of inputs supported in a batch request is 100")};
  const std::string started = Iso(Now());
  json results = json::array();
  json errors = json::array();

  if (verb == "archive") {
    for (const json& in : inputs)
      if (Object* o = FindLocked(type, Str(in.value("id", json())), "")) ArchiveLocked(type, o);
    return {204, json()};
  }
  if (verb == "read") {
    const std::string idp = body.value("idProperty", "");
    std::vector<std::string> props, with_history;
    for (const json& p : body.value("properties", json::array())) props.push_back(Str(p));
    for (const json& p : body.value("propertiesWithHistory", json::array())) with_history.push_back(Str(p));
    for (const json& in : inputs)
      if (Object* o = FindLocked(type, Str(in.value("id", json())), idp))
        results.push_back(Render(type, *o, props, {}, with_history));
  } else if (verb == "create") {
    // 207 partial results only when every input carries a distinct objectWriteTraceId
    // (refs/hubspot §3); otherwise one bad input fails the request.
    std::set<std::string> traces;
    for (const json& in : inputs)
      if (in.contains("objectWriteTraceId")) traces.insert(Str(in["objectWriteTraceId"]));
    const bool partial_ok = traces.size() == inputs.size();
    if (!partial_ok) {
      // Validate all first, so a rejected request changes nothing.
      for (const json& in : inputs) {
        Object probe;
        probe.id = -1;
        if (auto err = ApplyLocked(type, &probe, in.value("properties", json::object()))) return *err;
      }
    }
    for (const json& in : inputs) {
      if (injected_failure()) {
        // Without trace ids HubSpot cannot name the failed input, so the whole call fails.
        if (!partial_ok) return {500, Error("INTERNAL_ERROR", "internal error (injected)")};
        errors.push_back(InjectedItemError("objectWriteTraceId", Str(in["objectWriteTraceId"])));
        continue;
      }
      Reply r = CreateLocked(type, in);
      if (r.first == 201) {
        results.push_back(r.second);
      } else {
        json e = r.second;
        e["context"] = {{"objectWriteTraceId", {Str(in.value("objectWriteTraceId", json()))}}};
        errors.push_back(e);
      }
    }
  } else if (verb == "update" || verb == "upsert") {
    std::set<std::string> seen;
    std::vector<std::pair<Object*, const json*>> plan;
    for (const json& in : inputs) {
      const std::string idp = in.value("idProperty", "");
      const std::string id = Str(in.value("id", json()));
      if (verb == "upsert") {
        if (idp.empty() || !in.contains("properties"))
          return {400, Error("VALIDATION_ERROR", "upsert inputs need idProperty, id and properties")};
        auto def = properties_[type].find(idp);
        const bool unique = (def != properties_[type].end() && def->second.unique) ||
                            (type == "contacts" && idp == "email");
        if (!unique)
          return {400, Error("VALIDATION_ERROR", "Unable to perform update/upsert by non-unique " +
                                                     std::string(type == "contacts" ? "0-1" : type) +
                                                     " property " + idp)};
      }
      if (!seen.insert(idp + "|" + id).second)
        return {400, Error("VALIDATION_ERROR", "Duplicate id found in inputs: " + id)};
      Object* o = FindLocked(type, id, idp);
      if (o == nullptr && verb == "update")
        return {404, Error("OBJECT_NOT_FOUND", "Could not find object with id " + id)};
      plan.emplace_back(o, &in);
    }
    // Validate everything first: one bad input fails the whole request and changes nothing.
    for (auto& [o, in] : plan) {
      Object probe = o != nullptr ? *o : Object{};
      if (o == nullptr) probe.id = -1;
      json props = in->value("properties", json::object());
      if (o == nullptr && verb == "upsert") props[in->value("idProperty", "")] = Str((*in)["id"]);
      if (auto err = ApplyLocked(type, &probe, props)) return *err;
    }
    for (auto& [o, in] : plan) {
      if (injected_failure()) {
        errors.push_back(InjectedItemError("ids", Str((*in)["id"])));
        continue;
      }
      json props = in->value("properties", json::object());
      if (o == nullptr) {
        props[in->value("idProperty", "")] = Str((*in)["id"]);
        Reply r = CreateLocked(type, json{{"properties", props}});
        json res = r.second;
        res["new"] = true;
        res["properties"][in->value("idProperty", "")] = Str((*in)["id"]);
        results.push_back(res);
      } else {
        ApplyLocked(type, o, props);
        json res = Render(type, *o, {}, {});
        if (verb == "upsert") {
          res["new"] = false;
          const std::string idp = in->value("idProperty", "");
          res["properties"][idp] = o->properties.value(idp, json());
        }
        results.push_back(res);
      }
    }
  } else {
    return {404, Error("OBJECT_NOT_FOUND", "Unknown batch operation " + verb)};
  }
  json out = {{"status", "COMPLETE"}, {"results", results}, {"startedAt", started}, {"completedAt", Iso(Now())}};
  if (!errors.empty()) {
    out["numErrors"] = errors.size();
    out["errors"] = errors;
    return {207, out};
  }
  return {verb == "create" ? 201 : 200, out};
}

void HubSpotMock::LinkLocked(const std::string& from, int64_t from_id, const std::string& to, int64_t to_id,
                             const std::set<int>* labelled) {
  Object& a = objects_[from][from_id];
  Object& b = objects_[to][to_id];
  if (a.associations[to].insert(to_id).second)
    webhooks_.EnqueueAssociation(from, from_id, to, to_id, /*removed=*/false, Now());
  b.associations[from].insert(from_id);
  if (labelled == nullptr) return;
  std::set<int> reverse;
  for (int id : *labelled)
    if (const LabelledType* t = FindLabelledType(from, to, id)) reverse.insert(t->reverse);
  if (labelled->empty()) {
    a.labelled[to].erase(to_id);
    b.labelled[from].erase(from_id);
  } else {
    a.labelled[to][to_id] = *labelled;
    b.labelled[from][from_id] = reverse;
  }
}

void HubSpotMock::UnlinkLocked(const std::string& from, int64_t from_id, const std::string& to, int64_t to_id) {
  Object& a = objects_[from][from_id];
  Object& b = objects_[to][to_id];
  if (a.associations[to].erase(to_id) > 0)
    webhooks_.EnqueueAssociation(from, from_id, to, to_id, /*removed=*/true, Now());
  b.associations[from].erase(from_id);
  a.labelled[to].erase(to_id);
  b.labelled[from].erase(from_id);
}

json HubSpotMock::AssociationTypesLocked(const std::string& from, const Object& a, const std::string& to,
                                         int64_t to_id) const {
  json types = json::array({{{"category", "HUBSPOT_DEFINED"}, {"typeId", DefaultTypeId(from, to)}, {"label", nullptr}}});
  auto by_type = a.labelled.find(to);
  if (by_type == a.labelled.end()) return types;
  auto ids = by_type->second.find(to_id);
  if (ids == by_type->second.end()) return types;
  for (int id : ids->second) {
    const LabelledType* t = FindLabelledType(from, to, id);
    types.push_back({{"category", "HUBSPOT_DEFINED"}, {"typeId", id}, {"label", t ? json(t->label) : json()}});
  }
  return types;
}

json HubSpotMock::LabelsBetweenLocked(const std::string& from, const Object& a, const std::string& to,
                                      int64_t to_id) const {
  json labels = json::array();
  for (const json& t : AssociationTypesLocked(from, a, to, to_id))
    if (t["label"].is_string()) labels.push_back(t["label"]);
  return {{"fromObjectTypeId", kTypeIdOf.at(from)}, {"fromObjectId", a.id},
          {"toObjectTypeId", kTypeIdOf.at(to)},     {"toObjectId", to_id},
          {"labels", labels}};
}

std::optional<HubSpotMock::Reply> HubSpotMock::ParseAssociationTypes(const std::string& from, const std::string& to,
                                                                     const json& specs, std::set<int>* labelled) const {
  static const std::set<std::string> kCategories = {"HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED", "WORK"};
  labelled->clear();
  if (!specs.is_array() || specs.empty())
    return Reply{400, Error("VALIDATION_ERROR",
                            "Invalid input JSON: expected a non-empty list of association types "
                            "(associationCategory, associationTypeId)")};
  for (const json& spec : specs) {
    const json category = spec.is_object() ? spec.value("associationCategory", json()) : json();
    const json type_id = spec.is_object() ? spec.value("associationTypeId", json()) : json();
    if (!category.is_string() || !kCategories.count(category.get<std::string>()) || !type_id.is_number_integer())
      return Reply{400, Error("VALIDATION_ERROR",
                              "Invalid input JSON: an association type needs an associationCategory (one of "
                              "HUBSPOT_DEFINED, USER_DEFINED, INTEGRATOR_DEFINED, WORK) and an integer "
                              "associationTypeId: " + spec.dump())};
    const int id = type_id.get<int>();
    // No user- or integrator-defined labels exist here: only HubSpot's own types are known.
    const bool is_default = category == "HUBSPOT_DEFINED" && id == DefaultTypeId(from, to);
    const bool is_labelled = category == "HUBSPOT_DEFINED" && FindLabelledType(from, to, id) != nullptr;
    if (!is_default && !is_labelled)
      return Reply{400, Error("VALIDATION_ERROR", "Invalid association type " + category.get<std::string>() + " " +
                                                      std::to_string(id) + ": it does not exist from " +
                                                      kTypeIdOf.at(from) + " to " + kTypeIdOf.at(to))};
    if (is_labelled) labelled->insert(id);
  }
  return std::nullopt;
}

void HubSpotMock::RegisterRoutes(httplib::Server& s) {
  // OAuth (refs/hubspot §1): a refresh token buys an access token valid for oauth_lifetime_s.
  auto token = [this](const httplib::Request& req, httplib::Response& res) {
    CountRequest("POST " + req.path);
    const auto form = DecodeForm(req.body);
    auto get = [&](const char* k) {
      auto it = form.find(k);
      return it == form.end() ? std::string() : it->second;
    };
    json body;
    // cpp-httplib puts the query's and a form body's parameters together in params: one that
    // is not in the body came in the query.
    bool in_query = false;
    for (const auto& [name, value] : req.params) in_query = in_query || !form.count(name);
    if (req.path == "/oauth/v3/token" && in_query) {
      // v3 takes its parameters in the body only (refs/hubspot §1).
      res.status = 400;
      body = {{"status", "error"}, {"message", "parameters go in the request body, not the query"},
              {"correlationId", NewUuid()}, {"category", "VALIDATION_ERROR"}};
    } else if (get("grant_type") != "refresh_token") {
      res.status = 400;
      body = {{"status", "error"}, {"message", "grant_type must be refresh_token here"},
              {"correlationId", NewUuid()}, {"category", "VALIDATION_ERROR"}};
    } else if (get("client_id") != options_.oauth_client_id ||
               get("client_secret") != options_.oauth_client_secret ||
               !options_.oauth_refresh_tokens.count(get("refresh_token"))) {
      res.status = 400;
      body = {{"status", "BAD_REFRESH_TOKEN"}, {"message", "missing or unknown refresh token"},
              {"correlationId", NewUuid()}};
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      const std::string access = "oauth-" + NewUuid();
      oauth_tokens_[access] = Now() + options_.oauth_lifetime_s * 1000LL;
      ++oauth_issued_;
      body = {{"token_type", "bearer"},
              {"refresh_token", get("refresh_token")},
              {"access_token", access},
              {"expires_in", options_.oauth_lifetime_s},
              {"token_use", "access_token"},
              {"hub_id", 1234567},
              {"scopes", {"oauth", "tickets", "crm.objects.contacts.read",
                          "crm.objects.contacts.write", "crm.objects.companies.read",
                          "crm.objects.companies.write"}}};
    }
    res.set_content(body.dump(), "application/json");
  };
  // The app's webhook subscription, as set in its settings: {"url", "secret", "faults": [...],
  // "retry_ms"}; GET shows what was delivered.
  ServeWebhookAdmin(s, &webhooks_.sender());
  s.Post("/oauth/v1/token", token);
  s.Post("/oauth/v3/token", token);

  auto reply = [](httplib::Response& res, const Reply& r) {
    res.status = r.first;
    if (r.first != 204) res.set_content(r.second.dump(), "application/json");
  };
  auto parse = [this](const httplib::Request& req, httplib::Response& res, json* out) {
    *out = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (out->is_discarded()) {
      res.status = 400;
      res.set_content(Error("VALIDATION_ERROR", "Invalid input JSON on line 1").dump(), "application/json");
      return false;
    }
    return true;
  };
  auto known = [this](const std::string& type, httplib::Response& res) {
    if (properties_.count(type)) return true;
    res.status = 400;
    res.set_content(Error("VALIDATION_ERROR", "Unable to infer object type from: " + type).dump(), "application/json");
    return false;
  };

  // Owners (read only): active ones, or with archived=true only the archived; paged by `after`
  // (an offset here, opaque to clients), `limit` up to 500; `email` filters to one address.
  s.Get("/crm/v3/owners", [=](const httplib::Request& req, httplib::Response& res) {
    CountRequest("GET /crm/v3/owners");
    if (!Admit(req, res, false)) return;
    std::lock_guard<std::mutex> lock(mu_);
    int limit = 100;
    size_t offset = 0;
    try {
      if (req.has_param("limit")) limit = std::stoi(req.get_param_value("limit"));
      if (req.has_param("after")) offset = std::stoul(req.get_param_value("after"));
    } catch (const std::exception&) {
      return reply(res, {400, Error("VALIDATION_ERROR", "limit and after must be numbers")});
    }
    if (limit < 1 || limit > 500)
      return reply(res, {400, Error("VALIDATION_ERROR", "limit must be between 1 and 500")});
    const bool archived = req.get_param_value("archived") == "true";
    const std::string email = req.get_param_value("email");
    std::vector<const Owner*> listed;
    for (const Owner& w : owners_)
      if (w.archived == archived && (email.empty() || w.email == email)) listed.push_back(&w);
    json results = json::array();
    for (size_t i = offset; i < listed.size() && results.size() < static_cast<size_t>(limit); ++i) {
      const Owner& w = *listed[i];
      results.push_back({{"id", w.id}, {"email", w.email}, {"type", "PERSON"},
                         {"firstName", w.first_name}, {"lastName", w.last_name},
                         // A deactivated user's owner keeps its user id only here.
                         {"userId", w.archived ? json() : json(w.user_id)},
                         {"userIdIncludingInactive", w.user_id},
                         {"createdAt", "2024-01-15T09:00:00.000Z"},
                         {"updatedAt", "2024-01-15T09:00:00.000Z"}, {"archived", w.archived}});
    }
    json out = {{"results", results}};
    if (offset + results.size() < listed.size()) {
      const std::string after = std::to_string(offset + results.size());
      out["paging"] = {{"next", {{"after", after}, {"link", "/crm/v3/owners?after=" + after}}}};
    }
    reply(res, {200, out});
  });

  s.Get(R"(/crm/v3/pipelines/tickets(/([^/]+))?(/stages)?)", [=](const httplib::Request& req, httplib::Response& res) {
    CountRequest("GET /crm/v3/pipelines/tickets");
    if (!Admit(req, res, false)) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto render = [](const Pipeline& p) {
      json stages = json::array();
      int order = 0;
      for (const auto& st : p.stages)
        stages.push_back({{"id", st.id}, {"label", st.label}, {"displayOrder", order++},
                          {"metadata", {{"ticketState", st.closed ? "CLOSED" : "OPEN"}}},
                          {"createdAt", "1970-01-01T00:00:00Z"}, {"updatedAt", "1970-01-01T00:00:00Z"},
                          {"archived", false}});
      return json{{"id", p.id}, {"label", p.label}, {"displayOrder", 0}, {"stages", stages},
                  {"createdAt", "1970-01-01T00:00:00Z"}, {"updatedAt", "1970-01-01T00:00:00Z"}, {"archived", false}};
    };
    if (!req.matches[2].matched) {
      json all = json::array();
      for (const auto& p : pipelines_) all.push_back(render(p));
      return reply(res, {200, {{"results", all}}});
    }
    for (const auto& p : pipelines_) {
      if (p.id != req.matches[2].str()) continue;
      json r = render(p);
      return reply(res, {200, req.matches[3].matched ? json{{"results", r["stages"]}} : r});
    }
    reply(res, {404, Error("OBJECT_NOT_FOUND", "Unable to find pipeline " + req.matches[2].str())});
  });

  s.Get(R"(/crm/v3/properties/([^/]+)(/([^/]+))?)", [=](const httplib::Request& req, httplib::Response& res) {
    CountRequest("GET /crm/v3/properties");
    if (!Admit(req, res, false)) return;
    std::lock_guard<std::mutex> lock(mu_);
    const std::string type = CanonicalType(req.matches[1]);
    if (!known(type, res)) return;
    auto render = [&](const std::string& name, const PropertyDef& d) {
      return RenderProperty(type, name, d);
    };
    if (!req.matches[3].matched) {
      json all = json::array();
      for (const auto& [n, d] : properties_[type]) all.push_back(render(n, d));
      return reply(res, {200, {{"results", all}}});
    }
    auto it = properties_[type].find(req.matches[3]);
    if (it == properties_[type].end())
      return reply(res, {404, Error("OBJECT_NOT_FOUND", "Unable to find property " + req.matches[3].str())});
    reply(res, {200, render(it->first, it->second)});
  });

  s.Post(R"(/crm/v3/properties/([^/]+))", [=](const httplib::Request& req, httplib::Response& res) {
    CountRequest("POST /crm/v3/properties");
    if (!Admit(req, res, false)) return;
    json body;
    if (!parse(req, res, &body)) return;
    std::lock_guard<std::mutex> lock(mu_);
    const std::string type = CanonicalType(req.matches[1]);
    if (!known(type, res)) return;
    // PropertyCreate's required fields (refs/hubspot-openapi/properties.json), each a string.
    std::string missing;
    for (const char* key : {"name", "label", "type", "fieldType", "groupName"})
      if (!body.contains(key) || !body[key].is_string() || body[key].get<std::string>().empty())
        missing += std::string(missing.empty() ? "" : ", ") + key;
    if (!missing.empty())
      return reply(res, {400, Error("VALIDATION_ERROR", "Missing or invalid required field(s): " + missing)});
    const std::string name = body["name"].get<std::string>();
    if (properties_[type].count(name))
      return reply(res, {409, Error("CONFLICT", "A property named '" + name + "' already exists.")});
    PropertyDef d;
    d.type = body["type"].get<std::string>();
    d.unique = body.value("hasUniqueValue", false);
    d.label = body["label"].get<std::string>();
    d.description = body.value("description", "");
    d.field_type = body["fieldType"].get<std::string>();
    d.group_name = body["groupName"].get<std::string>();
    if (body.contains("options") && body["options"].is_array()) d.options = body["options"];
    properties_[type][name] = d;
    // A new property holds no values yet; refiling keeps the index right whatever it holds.
    if (d.unique) RebuildIndexLocked(type);
    reply(res, {201, RenderProperty(type, name, d)});
  });

  // Associations v4 (refs/hubspot §8): between two records, with HubSpot's default type ids and
  // the primary labels; set one at a time or in batches, listed per record or read in batches.
  auto assoc_pair = [this](const httplib::Request& req, httplib::Response& res, std::string* from,
                           std::string* to) {
    *from = CanonicalType(req.matches[1]);
    *to = CanonicalType(req.matches[2]);
    if (!properties_.count(*from) || !properties_.count(*to) || DefaultTypeId(*from, *to) == 0) {
      res.status = 400;
      res.set_content(Error("VALIDATION_ERROR", "Unknown association between " + *from + " and " + *to).dump(),
                      "application/json");
      return false;
    }
    return true;
  };
  // A batch input's error, as StandardError (the context names the input).
  auto item_error = [this](const std::string& category, const std::string& message, const std::string& id) {
    json e = Error(category, message);
    e["context"] = {{"ids", {id}}};
    e["errors"] = json::array();
    e["links"] = json::object();
    return e;
  };

  s.Put(R"(/crm/v4/objects/([^/]+)/([^/]+)/associations/default/([^/]+)/([^/]+))",
        [=](const httplib::Request& req, httplib::Response& res) {
          CountRequest("PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{id}");
          if (!Admit(req, res, false)) return;
          std::lock_guard<std::mutex> lock(mu_);
          std::string from = CanonicalType(req.matches[1]), to = CanonicalType(req.matches[3]);
          if (!properties_.count(from) || !properties_.count(to) || DefaultTypeId(from, to) == 0)
            return reply(res, {400, Error("VALIDATION_ERROR", "Unknown association between " + from + " and " + to)});
          Object* a = FindLocked(from, req.matches[2], "");
          Object* b = FindLocked(to, req.matches[4], "");
          if (a == nullptr || b == nullptr)
            return reply(res, {404, Error("OBJECT_NOT_FOUND", "One of the objects does not exist.")});
          LinkLocked(from, a->id, to, b->id);
          const std::string now = Iso(Now());
          reply(res, {200, {{"status", "COMPLETE"},
                            {"results", {{{"from", {{"id", std::to_string(a->id)}}},
                                          {"to", {{"id", std::to_string(b->id)}}},
                                          {"associationSpec", {{"associationCategory", "HUBSPOT_DEFINED"},
                                                               {"associationTypeId", DefaultTypeId(from, to)}}}}}},
                            {"startedAt", now}, {"completedAt", now}}});
        });

  // The labelled create (a list of AssociationSpec; replaces the pair's labelled types) and the
  // removal of every type between two records.
  auto pair_route = [=](const std::string& route, bool create) {
    return [=](const httplib::Request& req, httplib::Response& res) {
      CountRequest(route);
      if (!Admit(req, res, false)) return;
      json body;
      if (create && !parse(req, res, &body)) return;
      std::lock_guard<std::mutex> lock(mu_);
      std::string from = CanonicalType(req.matches[1]), to = CanonicalType(req.matches[3]);
      if (!properties_.count(from) || !properties_.count(to) || DefaultTypeId(from, to) == 0)
        return reply(res, {400, Error("VALIDATION_ERROR", "Unknown association between " + from + " and " + to)});
      std::set<int> labelled;
      if (create)
        if (auto err = ParseAssociationTypes(from, to, body, &labelled)) return reply(res, *err);
      Object* a = FindLocked(from, req.matches[2], "");
      Object* b = FindLocked(to, req.matches[4], "");
      if (a == nullptr || b == nullptr)
        return reply(res, {404, Error("OBJECT_NOT_FOUND", "One of the objects does not exist.")});
      if (!create) {
        UnlinkLocked(from, a->id, to, b->id);
        return reply(res, {204, json()});
      }
      LinkLocked(from, a->id, to, b->id, &labelled);
      reply(res, {201, LabelsBetweenLocked(from, *a, to, b->id)});
    };
  };
  s.Put(R"(/crm/v4/objects/([^/]+)/([^/]+)/associations/([^/]+)/([^/]+))",
        pair_route("PUT /crm/v4/objects/{from}/{id}/associations/{to}/{id}", true));
  s.Delete(R"(/crm/v4/objects/([^/]+)/([^/]+)/associations/([^/]+)/([^/]+))",
           pair_route("DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{id}", false));

  s.Get(R"(/crm/v4/objects/([^/]+)/([^/]+)/associations/([^/]+))",
        [=](const httplib::Request& req, httplib::Response& res) {
          CountRequest("GET /crm/v4/objects/{from}/{id}/associations/{to}");
          if (!Admit(req, res, false)) return;
          std::lock_guard<std::mutex> lock(mu_);
          std::string from = CanonicalType(req.matches[1]), to = CanonicalType(req.matches[3]);
          if (!properties_.count(from) || !properties_.count(to))
            return reply(res, {400, Error("VALIDATION_ERROR", "Unknown object type")});
          Object* a = FindLocked(from, req.matches[2], "");
          if (a == nullptr) return reply(res, {404, Error("OBJECT_NOT_FOUND", "Object not found.")});
          // "Limit 500 per call"; the cursor is the last id of the page before.
          int limit = req.has_param("limit") ? std::atoi(req.get_param_value("limit").c_str()) : 500;
          limit = std::clamp(limit, 1, 500);
          const int64_t after = req.has_param("after") ? std::strtoll(req.get_param_value("after").c_str(), nullptr, 10) : 0;
          const std::set<int64_t>& ids = a->associations[to];
          json results = json::array();
          auto it = ids.upper_bound(after);
          for (; it != ids.end() && static_cast<int>(results.size()) < limit; ++it)
            results.push_back({{"toObjectId", *it}, {"associationTypes", AssociationTypesLocked(from, *a, to, *it)}});
          json out = {{"results", results}};
          if (it != ids.end()) {
            const std::string cursor = std::to_string(*std::prev(it));
            out["paging"] = {{"next", {{"after", cursor}, {"link", "?after=" + cursor}}}};
          }
          reply(res, {200, out});
        });

  s.Post(R"(/crm/v4/associations/([^/]+)/([^/]+)/batch/(create|read|archive|associate/default))",
         [=](const httplib::Request& req, httplib::Response& res) {
           const std::string verb = req.matches[3];
           CountRequest("POST /crm/v4/associations/{from}/{to}/batch/" + verb);
           if (!Admit(req, res, false)) return;
           json body;
           if (!parse(req, res, &body)) return;
           std::lock_guard<std::mutex> lock(mu_);
           std::string from, to;
           if (!assoc_pair(req, res, &from, &to)) return;
           const json inputs = body.is_object() ? body.value("inputs", json()) : json();
           // batch/read takes 1,000 inputs, batch/create 2,000 (refs/hubspot §8).
           const size_t max_inputs = verb == "read" ? 1000 : verb == "create" ? 2000 : 100;
           if (!inputs.is_array() || inputs.size() > max_inputs)
             return reply(res, {400, Error("VALIDATION_ERROR", "inputs must be a list of at most " +
                                                                   std::to_string(max_inputs))});
           // Every input's shape and types first: a malformed one fails the request, changing nothing.
           std::vector<std::set<int>> labelled(inputs.size());
           for (size_t i = 0; i < inputs.size(); ++i) {
             const json& in = inputs[i];
             const bool ok = in.is_object() &&
                             (verb == "read" ? in.contains("id")
                                             : in.contains("from") && in["from"].is_object() && in.contains("to") &&
                                                   (verb == "archive" ? in["to"].is_array() : in["to"].is_object()));
             if (!ok)
               return reply(res, {400, Error("VALIDATION_ERROR",
                                             "Invalid input JSON: " + in.dump() +
                                                 (verb == "read" ? " (expected {\"id\"})"
                                                  : verb == "archive" ? " (expected {\"from\": {\"id\"}, \"to\": [{\"id\"}]})"
                                                                      : " (expected {\"from\": {\"id\"}, \"to\": {\"id\"}})"))});
             if (verb == "create")
               if (auto err = ParseAssociationTypes(from, to, in.value("types", json()), &labelled[i]))
                 return reply(res, *err);
           }
           const std::string started = Iso(Now());
           json results = json::array(), errors = json::array();
           for (size_t i = 0; i < inputs.size(); ++i) {
             const json& in = inputs[i];
             const std::string from_id = verb == "read" ? Str(in["id"]) : Str(in["from"].value("id", json()));
             Object* a = FindLocked(from, from_id, "");
             if (a == nullptr) {
               if (verb != "archive")
                 errors.push_back(item_error("OBJECT_NOT_FOUND", "No " + from + " with id " + from_id, from_id));
               continue;
             }
             if (verb == "read") {
               json to_list = json::array();
               for (int64_t id : a->associations[to])
                 to_list.push_back({{"toObjectId", id}, {"associationTypes", AssociationTypesLocked(from, *a, to, id)}});
               results.push_back({{"from", {{"id", from_id}}}, {"to", to_list}});
               continue;
             }
             if (verb == "archive") {
               for (const json& target : in["to"])
                 if (Object* b = FindLocked(to, target.is_object() ? Str(target.value("id", json())) : "", ""))
                   UnlinkLocked(from, a->id, to, b->id);
               continue;
             }
             const std::string to_id = Str(in["to"].value("id", json()));
             Object* b = FindLocked(to, to_id, "");
             if (b == nullptr) {
               errors.push_back(item_error("OBJECT_NOT_FOUND", "No " + to + " with id " + to_id, to_id));
               continue;
             }
             if (verb == "create") {
               LinkLocked(from, a->id, to, b->id, &labelled[i]);
               results.push_back(LabelsBetweenLocked(from, *a, to, b->id));
             } else {
               LinkLocked(from, a->id, to, b->id);
               results.push_back({{"from", {{"id", std::to_string(a->id)}}},
                                  {"to", {{"id", std::to_string(b->id)}}},
                                  {"associationSpec", {{"associationCategory", "HUBSPOT_DEFINED"},
                                                       {"associationTypeId", DefaultTypeId(from, to)}}}});
             }
           }
           if (verb == "archive") return reply(res, {204, json()});
           json out = {{"status", "COMPLETE"}, {"results", results}, {"startedAt", started},
                       {"completedAt", Iso(Now())}};
           if (!errors.empty()) {
             out["numErrors"] = errors.size();
             out["errors"] = errors;
           }
           // associate/default answers 200 with or without errors (its one documented status);
           // create and read answer 207 when some input failed.
           if (verb == "associate/default") return reply(res, {200, out});
           if (!errors.empty()) return reply(res, {207, out});
           reply(res, {verb == "read" ? 200 : 201, out});
         });

  // The object routes share their preamble: count, authenticate and rate-limit, parse the body,
  // take the store lock, resolve the object type.
  using ObjectHandler = std::function<Reply(const std::string& type, const httplib::Request&,
                                            httplib::Response&, const json& body)>;
  auto object_route = [=](std::string route, bool search, bool has_body, ObjectHandler handle) {
    return [=](const httplib::Request& req, httplib::Response& res) {
      std::string name = route;
      if (auto v = name.find("{verb}"); v != std::string::npos) name.replace(v, 6, req.matches[2].str());
      CountRequest(name);
      if (!Admit(req, res, search)) return;
      json body;
      if (has_body && !parse(req, res, &body)) return;
      std::lock_guard<std::mutex> lock(mu_);
      const std::string type = CanonicalType(req.matches[1]);
      if (!known(type, res)) return;
      reply(res, handle(type, req, res, body));
    };
  };
  // A list parameter may come comma-separated (properties=a,b) or repeated (properties=a&
  // properties=b, as HubSpot's own SDKs send arrays); HubSpot takes both.
  auto fields = [](const httplib::Request& req, const char* param) {
    std::vector<std::string> out;
    const size_t n = req.get_param_value_count(param);
    for (size_t i = 0; i < n; ++i)
      for (std::string& v : SplitComma(req.get_param_value(param, i))) out.push_back(std::move(v));
    return out;
  };

  s.Post(R"(/crm/v3/objects/([^/]+)/search)",
         object_route("POST /crm/v3/objects/{type}/search", true, true,
                      [this](const std::string& type, const httplib::Request&, httplib::Response&, const json& body) {
                        return Search(type, body);
                      }));
  s.Post(R"(/crm/v3/objects/([^/]+)/merge)",
         object_route("POST /crm/v3/objects/{type}/merge", false, true,
                      [this](const std::string& type, const httplib::Request&, httplib::Response&,
                             const json& body) { return MergeLocked(type, body); }));
  s.Post(R"(/crm/v3/objects/([^/]+)/batch/([a-z]+))",
         object_route("POST /crm/v3/objects/{type}/batch/{verb}", false, true,
                      [this](const std::string& type, const httplib::Request& req, httplib::Response& res,
                             const json& body) {
                        return Batch(type, req.matches[2], body, [&] { return FailBatchItem(res); });
                      }));
  s.Get(R"(/crm/v3/objects/([^/]+))",
        object_route("GET /crm/v3/objects/{type}", false, false,
                     [this](const std::string& type, const httplib::Request& req, httplib::Response&, const json&) {
                       return List(type, req);
                     }));
  s.Post(R"(/crm/v3/objects/([^/]+))",
         object_route("POST /crm/v3/objects/{type}", false, true,
                      [this](const std::string& type, const httplib::Request&, httplib::Response&, const json& body) {
                        return CreateLocked(type, body);
                      }));
  s.Get(R"(/crm/v3/objects/([^/]+)/([^/]+))",
        object_route("GET /crm/v3/objects/{type}/{id}", false, false,
                     [=](const std::string& type, const httplib::Request& req, httplib::Response&, const json&) -> Reply {
                       Object* o = FindLocked(type, req.matches[2], req.get_param_value("idProperty"));
                       if (o == nullptr && req.get_param_value("idProperty").empty())
                         o = FindMergedLocked(type, req.matches[2]);
                       if (o == nullptr)
                         return {404, Error("OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")};
                       return {200, Render(type, *o, fields(req, "properties"), fields(req, "associations"),
                                           fields(req, "propertiesWithHistory"))};
                     }));
  s.Patch(R"(/crm/v3/objects/([^/]+)/([^/]+))",
          object_route("PATCH /crm/v3/objects/{type}/{id}", false, true,
                       [this](const std::string& type, const httplib::Request& req, httplib::Response&, const json& body) -> Reply {
                         Object* o = FindLocked(type, req.matches[2], req.get_param_value("idProperty"));
                         if (o == nullptr) return {404, Error("OBJECT_NOT_FOUND", "Object not found.")};
                         if (auto err = ApplyLocked(type, o, body.value("properties", json::object()))) return *err;
                         return {200, Render(type, *o, {}, {})};
                       }));
  // An edit made by a user in HubSpot's own pages: the record changes (and webhooks announce it)
  // as by the API's PATCH, but no app's API call is counted and no app's rate limit is spent.
  s.Patch(R"(/__admin/objects/([^/]+)/([^/]+))",
          [=](const httplib::Request& req, httplib::Response& res) {
            json body;
            if (!parse(req, res, &body)) return;
            std::lock_guard<std::mutex> lock(mu_);
            const std::string type = CanonicalType(req.matches[1]);
            if (!known(type, res)) return;
            Object* o = FindLocked(type, req.matches[2], "");
            if (o == nullptr) return reply(res, {404, Error("OBJECT_NOT_FOUND", "Object not found.")});
            if (auto err = ApplyLocked(type, o, body.value("properties", json::object())))
              return reply(res, *err);
            reply(res, {200, Render(type, *o, {}, {})});
          });
  // A user restoring an archived record from HubSpot's recycle bin (the API has no restore): it
  // is live again with the same id and properties. hs_lastmodifieddate stays as it was (the
  // harder case for a client), so only the `restore` webhook, a later change or a full read
  // shows it.
  s.Post(R"(/__admin/objects/([^/]+)/([^/]+)/restore)",
         [=](const httplib::Request& req, httplib::Response& res) {
           std::lock_guard<std::mutex> lock(mu_);
           const std::string type = CanonicalType(req.matches[1]);
           if (!known(type, res)) return;
           char* end = nullptr;
           const std::string id = req.matches[2];
           const long long n = std::strtoll(id.c_str(), &end, 10);
           auto it = end != nullptr && *end == '\0' ? objects_[type].find(n) : objects_[type].end();
           if (it == objects_[type].end() || !it->second.archived)
             return reply(res, {404, Error("OBJECT_NOT_FOUND", "No archived object with this id.")});
           Object& o = it->second;
           o.archived = false;
           o.updated_ms = Now();
           webhooks_.Enqueue(type, "restore", o.id, o.updated_ms);
           IndexLocked(type, o);
           reply(res, {200, Render(type, o, {}, {})});
         });
  s.Delete(R"(/crm/v3/objects/([^/]+)/([^/]+))",
           object_route("DELETE /crm/v3/objects/{type}/{id}", false, false,
                        [this](const std::string& type, const httplib::Request& req, httplib::Response&, const json&) -> Reply {
                          if (Object* o = FindLocked(type, req.matches[2], "")) ArchiveLocked(type, o);
                          return {204, json()};
                        }));
}

// A seeded ticket has been in its pipeline for weeks: it entered the first stage 20 to 80 days
// ago and walked the stages before its own, 2 to 14 days apart, reaching its stage at least a day
// ago. Its creation date and its stage's history say so (propertiesWithHistory).
void HubSpotMock::BackdateStages(const Pipeline& pipeline, const std::string& stage_id,
                                 std::mt19937_64* rng, Object* ticket) const {
  size_t reached = 0;
  while (reached < pipeline.stages.size() && pipeline.stages[reached].id != stage_id) ++reached;
  if (reached == pipeline.stages.size()) return;
  constexpr int64_t kDay = 86400000;
  const int64_t now = Now();
  int64_t at = now - (20 + static_cast<int64_t>((*rng)() % 61)) * kDay;
  std::vector<std::pair<int64_t, json>> past;
  for (size_t i = 0; i <= reached; ++i) {
    if (i > 0) at += (2 + static_cast<int64_t>((*rng)() % 13)) * kDay;
    at = std::min(at, now - kDay - static_cast<int64_t>(reached - i) * 3600000);
    past.emplace_back(at, json(pipeline.stages[i].id));
  }
  ticket->history["hs_pipeline_stage"] = std::move(past);
  ticket->created_ms = ticket->history["hs_pipeline_stage"].front().first;
  ticket->properties["createdate"] = Iso(ticket->created_ms);
  ticket->history["createdate"] = {{ticket->created_ms, ticket->properties["createdate"]}};
}

void HubSpotMock::Seed(uint64_t seed, int companies) {
  std::lock_guard<std::mutex> lock(mu_);
  std::mt19937_64 rng(seed);
  // Its own generator, so that the records seeded stay what they were.
  std::mt19937_64 history_rng(seed ^ 0x5eed5a9e5ULL);
  // Owners set by hand ("Company owner", "Ticket owner"), drawn from their own generator too;
  // some were set before their owner left (an archived owner stays on its records).
  std::mt19937_64 owner_rng(seed ^ 0x0a11e5ULL);
  auto owner = [&] { return owners_[owner_rng() % owners_.size()].id; };
  static const char* kFirst[] = {"Anna", "Erik", "Maja", "Lars", "Sofia", "Johan", "Emma", "Karl", "Sara", "Oskar"};
  static const char* kLast[] = {"Larsson", "Andersson", "Johansson", "Nilsson", "Berg", "Lindqvist", "Holm", "Ek"};
  static const char* kTrade[] = {"Bygg", "Fastighet", "Transport", "Vård", "Konsult", "Handel", "Logistik", "Media"};
  static const char* kCity[] = {"Stockholm", "Göteborg", "Malmö", "Uppsala", "Örebro", "Umeå", "Lund"};
  static const char* kPriority[] = {"LOW", "MEDIUM", "HIGH"};
  const Pipeline& onboarding = pipelines_[1];
  struct SeededTicket {
    int64_t id, created_ms;
    bool closed;
  };
  std::vector<SeededTicket> onboardings;
  for (int i = 0; i < companies; ++i) {
    const std::string trade = kTrade[rng() % 8];
    const std::string city = kCity[rng() % 7];
    const std::string name = trade + " " + city + " " + std::to_string(i + 1) + " AB";
    std::string domain = Lower(trade) + std::to_string(i + 1) + ".example.se";
    Object company;
    ApplyLocked("companies", &company, {{"name", name}, {"domain", domain}, {"city", city}, {"country", "Sweden"}});
    company.properties["hubspot_owner_id"] = owner();
    StoreLocked("companies", company);

    const int contacts = 1 + static_cast<int>(rng() % 2);
    std::vector<int64_t> contact_ids;
    for (int c = 0; c < contacts; ++c) {
      const std::string first = kFirst[rng() % 10], last = kLast[rng() % 8];
      Object contact;
      ApplyLocked("contacts", &contact,
                  {{"firstname", first}, {"lastname", last},
                   {"email", Lower(first) + "." + Lower(last) + std::to_string(i + 1) + "@" + domain},
                   {"company", name}});
      contact.associations["companies"].insert(company.id);
      objects_["companies"][company.id].associations["contacts"].insert(contact.id);
      StoreLocked("contacts", contact);
      contact_ids.push_back(contact.id);
    }

    const Stage& stage = onboarding.stages[rng() % onboarding.stages.size()];
    Object ticket;
    ApplyLocked("tickets", &ticket,
                {{"subject", "SE " + name + " – onboarding"},
                 {"content", "Signed contract received from Dealbuilder; " + std::to_string(5 + rng() % 200) + " licences."},
                 {"hs_pipeline", onboarding.id},
                 {"hs_pipeline_stage", stage.id},
                 {"hs_ticket_priority", kPriority[rng() % 3]}});
    ticket.properties["hubspot_owner_id"] = owner();
    ticket.associations["companies"].insert(company.id);
    for (int64_t c : contact_ids) {
      ticket.associations["contacts"].insert(c);
      objects_["contacts"][c].associations["tickets"].insert(ticket.id);
    }
    objects_["companies"][company.id].associations["tickets"].insert(ticket.id);
    BackdateStages(onboarding, stage.id, &history_rng, &ticket);
    StoreLocked("tickets", ticket);

    Object note;
    ApplyLocked("notes", &note, {{"hs_note_body", "Ny kund"}, {"hs_timestamp", Iso(Now())}});
    note.associations["tickets"].insert(ticket.id);
    objects_["tickets"][ticket.id].associations["notes"].insert(note.id);
    StoreLocked("notes", note);
    onboardings.push_back({ticket.id, ticket.created_ms, stage.closed});
  }
  // The team's first to-do of each onboarding, due a week after the contract came in. Made after
  // every other record, so the ids of those stay what they were.
  for (const SeededTicket& t : onboardings) {
    Object task;
    ApplyLocked("tasks", &task,
                {{"hs_task_subject", "Boka startmöte"},
                 {"hs_task_body", "Ring kundens kontaktperson och boka startmötet."},
                 {"hs_timestamp", Iso(t.created_ms + 7LL * 86400000)},
                 {"hs_task_status", t.closed ? "COMPLETED" : "NOT_STARTED"}});
    task.associations["tickets"].insert(t.id);
    objects_["tickets"][t.id].associations["tasks"].insert(task.id);
    StoreLocked("tasks", task);
  }
}

std::vector<SeedCustomer> HubSpotMock::Customers(int count) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SeedCustomer> out;
  auto text = [](const Object& o, const char* name) {
    auto it = o.properties.find(name);
    return it != o.properties.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto companies = objects_.find("companies");
  if (companies == objects_.end()) return out;
  auto contacts = objects_.find("contacts");
  for (const auto& [id, company] : companies->second) {
    if (static_cast<int>(out.size()) >= count) break;
    if (company.archived) continue;
    SeedCustomer c{text(company, "name"), text(company, "domain"), text(company, "city"), {}};
    auto linked = company.associations.find("contacts");
    if (linked != company.associations.end() && contacts != objects_.end())
      for (int64_t contact_id : linked->second) {
        auto contact = contacts->second.find(contact_id);
        if (contact == contacts->second.end() || contact->second.archived) continue;
        c.people.push_back({text(contact->second, "firstname"), text(contact->second, "lastname"),
                            text(contact->second, "email")});
      }
    out.push_back(std::move(c));
  }
  return out;
}

json HubSpotMock::Dump() const {
  std::lock_guard<std::mutex> lock(mu_);
  json out = json::object();
  for (const auto& [type, objs] : objects_) {
    json list = json::array();
    for (const auto& [id, o] : objs) {
      json a = json::object();
      for (const auto& [t, ids] : o.associations) a[t] = std::vector<std::string>();
      for (const auto& [t, ids] : o.associations)
        for (int64_t x : ids) a[t].push_back(std::to_string(x));
      list.push_back({{"id", std::to_string(id)}, {"properties", o.properties}, {"archived", o.archived},
                      {"associations", a}});
    }
    out[type] = list;
  }
  return out;
}

}  // namespace crmbridge::mocks
