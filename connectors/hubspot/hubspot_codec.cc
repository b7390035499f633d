#include "connectors/hubspot/hubspot_codec.h"

#include <optional>

#include "connectors/hubspot/hubspot_limits.h"
#include "src/core/json_text.h"
#include "src/core/time_util.h"

namespace crmbridge::hubspot {

using nlohmann::json;

std::string ModifiedProperty(const std::string& object_type) {
  return object_type == "contacts" || object_type == "0-1" ? "lastmodifieddate"
                                                           : "hs_lastmodifieddate";
}

int64_t ParseTimestamp(const json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (!value.is_string()) return 0;
  const std::string s = value.get<std::string>();
  if (s.empty()) return 0;
  if (s.find_first_not_of("0123456789") == std::string::npos) {
    try {
      return std::stoll(s);
    } catch (const std::exception&) {
      return 0;
    }
  }
  return ParseIsoUtcMillis(s).value_or(0);
}

std::string PropertyString(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  return value.dump();
}

Result<NativeRecord> RecordFromObject(const json& object, const std::string& modified_property,
                                      const std::string& id_property) {
  if (!object.is_object() || !object.contains("id"))
    return Status(StatusCode::kInvalidArgument, "a HubSpot object without an id");
  NativeRecord r;
  const json& id = object["id"];
  if (!id.is_string() && !id.is_number_integer())
    return Status(StatusCode::kInvalidArgument,
                  "a HubSpot object whose id is neither text nor a number");
  r.id = id.is_string() ? id.get<std::string>() : id.dump();
  if (r.id.empty()) return Status(StatusCode::kInvalidArgument, "a HubSpot object with an empty id");
  if (object.contains("properties") && object["properties"].is_object())
    r.fields = object["properties"];
  if (r.fields.contains(modified_property))
    r.modified_ms = ParseTimestamp(r.fields[modified_property]);
  if (r.modified_ms == 0 && object.contains("updatedAt"))
    r.modified_ms = ParseTimestamp(object["updatedAt"]);
  if (!id_property.empty() && r.fields.contains(id_property) && r.fields[id_property].is_string())
    r.key = r.fields[id_property].get<std::string>();
  if (auto merged = r.fields.find(hubspot::kMergedIdsProperty);
      merged != r.fields.end() && merged->is_string()) {
    const std::string& ids = merged->get_ref<const std::string&>();
    size_t start = 0;
    while (start < ids.size()) {
      size_t end = ids.find(';', start);
      if (end == std::string::npos) end = ids.size();
      if (end > start) r.merged_ids.push_back(ids.substr(start, end - start));
      start = end + 1;
    }
  }
  if (auto archived = object.find("archived"); archived != object.end()) {
    if (!archived->is_boolean())
      return Status(StatusCode::kInvalidArgument, "its 'archived' is not true or false");
    r.deleted = archived->get<bool>();
  }
  return r;
}

std::string EncodeCursor(const SearchCursor& c) {
  json j{{"since", c.since_ms}};
  if (c.window_ms >= 0) j["window"] = c.window_ms;
  if (c.max_seen_ms) j["max_seen"] = c.max_seen_ms;
  if (c.after) j["after"] = c.after;
  if (c.tie_ms >= 0) {
    j["tie"] = c.tie_ms;
    j["last_id"] = c.last_id;
  }
  if (c.archived) j["archived"] = true;
  if (!c.archived_after.empty()) j["archived_after"] = c.archived_after;
  if (c.archived_started_ms) j["archived_started"] = c.archived_started_ms;
  if (c.archived_mark_ms) j["archived_mark"] = c.archived_mark_ms;
  if (c.archived_pages) j["archived_pages"] = c.archived_pages;
  return j.dump();
}

Result<SearchCursor> DecodeCursor(const std::string& text) {
  SearchCursor c;
  if (text.empty()) return c;
  auto j = ParseJsonOrDiscarded(text);
  auto integer = [&j](const char* name, int64_t fallback) -> std::optional<int64_t> {
    auto it = j.find(name);
    if (it == j.end()) return fallback;
    if (!it->is_number_integer()) return std::nullopt;
    return it->get<int64_t>();
  };
  if (!j.is_object() || !j.contains("since"))
    return Status(StatusCode::kInvalidArgument, "not a HubSpot search cursor: " + text);
  auto since = integer("since", 0), window = integer("window", -1),
       max_seen = integer("max_seen", 0), after = integer("after", 0), tie = integer("tie", -1);
  auto last_id = j.find("last_id");
  auto archived_after = j.find("archived_after"), archived = j.find("archived");
  auto started = integer("archived_started", 0), mark = integer("archived_mark", 0),
       pages = integer("archived_pages", 0);
  if (!since || !window || !max_seen || !after || !tie || *after < 0 || *after > kSearchResultCap ||
      (last_id != j.end() && !last_id->is_string()) ||
      (archived_after != j.end() && !archived_after->is_string()) ||
      (archived != j.end() && !archived->is_boolean()) || !started || !mark || !pages ||
      *pages < 0 || *pages > 1000000)
    return Status(StatusCode::kInvalidArgument, "not a HubSpot search cursor: " + text);
  if (archived_after != j.end()) c.archived_after = archived_after->get<std::string>();
  c.archived = archived != j.end() && archived->get<bool>();
  c.archived_started_ms = *started;
  c.archived_mark_ms = *mark;
  c.archived_pages = static_cast<int>(*pages);
  c.since_ms = *since;
  c.window_ms = *window;
  c.max_seen_ms = *max_seen;
  c.after = static_cast<int>(*after);
  c.tie_ms = *tie;
  if (last_id != j.end()) c.last_id = last_id->get<std::string>();
  return c;
}

}  // namespace crmbridge::hubspot
