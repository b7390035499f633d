#include "mappings/mapping.h"

#include <algorithm>
#include <optional>
#include <regex>

#include "src/core/time_util.h"

namespace crmbridge {

using nlohmann::json;

const CanonicalField* CanonicalEntity::Find(const std::string& field) const {
  for (const auto& f : fields)
    if (f.name == field) return &f;
  return nullptr;
}

bool SystemEntityMapping::reads() const {
  if (!match.empty()) return true;  // its records are read to be matched, at least
  for (const auto& f : fields)
    if (f.reads()) return true;
  return false;
}

bool SystemEntityMapping::writes() const {
  for (const auto& f : fields)
    if (f.writes()) return true;
  return false;
}

const CanonicalEntity* MappingPlan::FindEntity(const std::string& entity) const {
  for (const auto& e : entities_)
    if (e.name == entity) return &e;
  return nullptr;
}

const SystemEntityMapping* MappingPlan::Find(const std::string& system,
                                             const std::string& entity) const {
  for (const auto& m : mappings_)
    if (m.system == system && m.entity == entity) return &m;
  return nullptr;
}

std::set<std::string> MappingPlan::systems() const {
  std::set<std::string> out;
  for (const auto& m : mappings_) out.insert(m.system);
  return out;
}

namespace {

Status FieldError(const SystemEntityMapping& m, const FieldMap& f, const std::string& what) {
  return Status(StatusCode::kInvalidArgument, m.system + " " + m.object + "." + f.native +
                                                  " -> " + m.entity + "." + f.canonical + ": " +
                                                  what);
}

// Brings a native value to the canonical field's type: APIs such as HubSpot send every value as a
// string, so "17" becomes 17 for a number and "true" becomes true for a boolean.
// `v` is taken by value: a value already of its type (most are) is moved, not copied.
Result<json> ToType(json v, FieldType type) {
  if (v.is_null()) return v;
  switch (type) {
    case FieldType::kString:
      if (v.is_string()) return v;
      if (v.is_number() || v.is_boolean()) return json(v.dump());
      break;
    case FieldType::kNumber:
      if (v.is_number()) return v;
      if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (s.empty()) return json();
        try {
          size_t used = 0;
          if (s.find_first_of(".eE") == std::string::npos) {
            long long n = std::stoll(s, &used);
            if (used == s.size()) return json(n);
          } else {
            double d = std::stod(s, &used);
            if (used == s.size()) return json(d);
          }
        } catch (const std::exception&) {
        }
      }
      break;
    case FieldType::kBoolean:
      if (v.is_boolean()) return v;
      if (v.is_string()) {
        if (v == "true") return json(true);
        if (v == "false") return json(false);
        if (v == "") return json();
      }
      break;
    case FieldType::kRef:
      // A native id (numbers too: HubSpot ids are numeric), or a placeholder read back from an
      // outbox payload.
      if (v.is_string() || v.is_null()) return v;
      if (v.is_number_integer()) return json(v.dump());
      if (RefPlaceholderId(v)) return v;
      break;
    case FieldType::kDateTime: {
      static const std::regex kIso(
          R"(^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$)");
      // An ISO-8601 time is at most 35 characters; the length is checked first because std::regex
      // recurses once per character it matches, and a long run of digits overflows the stack.
      if (v.is_string() && (v == "" || (v.get<std::string>().size() <= 64 &&
                                        std::regex_match(v.get<std::string>(), kIso)))) {
        // One spelling per second: HubSpot writes "…T09:00:00.000Z" where Dataverse writes
        // "…T09:00:00Z", and Dataverse keeps no milliseconds; the same time read from both must
        // not look like a change.
        if (auto ms = ParseIsoUtcMillis(v.get<std::string>())) {
          const int64_t second = *ms - ((*ms % 1000) + 1000) % 1000;
          return json(FormatIsoUtc(second, false));
        }
        return v;
      }
      break;
    }
  }
  return Status(StatusCode::kInvalidArgument, "value " + v.dump() + " is not a valid " +
                                                  (type == FieldType::kString    ? "string"
                                                   : type == FieldType::kNumber  ? "number"
                                                   : type == FieldType::kBoolean ? "boolean"
                                                   : type == FieldType::kRef     ? "reference"
                                                                                 : "datetime"));
}

}  // namespace

json MappedRecord::WithMatchOnly(const json& values) const {
  json out = values;
  for (const auto& [name, value] : match_only.items())
    if (!out.contains(name) || out[name].is_null()) out[name] = value;
  return out;
}

namespace {

bool IsMatchKey(const SystemEntityMapping& m, const FieldMap& f) {
  return std::find(m.match.begin(), m.match.end(), f.canonical) != m.match.end();
}

// A match key mapped `out` only, read for matching alone: a value its transforms cannot take is
// no key (the field is not this system's to give, so the record is not refused for it).
std::optional<json> MatchOnlyValue(const FieldMap& f, const json& native) {
  auto it = native.find(f.native);
  if (it == native.end() || it->is_null()) return std::nullopt;
  auto v = MappingPlan::FieldIn(f, *it);
  if (!v.ok()) return std::nullopt;
  auto typed = ToType(std::move(*v), f.type);
  if (!typed.ok() || typed->is_null() || *typed == "") return std::nullopt;
  return std::move(*typed);
}

}  // namespace

Result<json> MappingPlan::FieldIn(const FieldMap& f, json value) {
  for (const auto& t : f.transforms) {
    auto r = t->In(value);
    if (!r.ok()) return r.status();
    value = std::move(*r);
  }
  return value;
}

Result<MappedRecord> MappingPlan::ToCanonical(const SystemEntityMapping& m, const json& native) {
  MappedRecord out;
  for (const FieldMap& f : m.fields) {
    if (!f.reads()) {
      if (IsMatchKey(m, f))
        if (auto v = MatchOnlyValue(f, native)) out.match_only[f.canonical] = std::move(*v);
      continue;
    }
    auto it = native.find(f.native);
    const bool present = it != native.end();
    auto in = FieldIn(f, present ? *it : json());
    if (!in.ok()) return FieldError(m, f, in.status().message());
    json v = std::move(*in);
    if (f.required && (v.is_null() || v == "")) return FieldError(m, f, "a value is required");
    if (!present && v.is_null()) continue;  // absent stays absent
    auto typed = ToType(std::move(v), f.type);
    if (!typed.ok()) return FieldError(m, f, typed.status().message());
    out.fields[f.canonical] = std::move(*typed);
  }
  return out;
}

Result<json> MappingPlan::ToNative(const SystemEntityMapping& m, const json& canonical,
                                   bool creating) {
  json out = json::object();
  for (const FieldMap& f : m.fields) {
    if (!f.writes() || (f.create_only && !creating)) continue;
    auto it = canonical.find(f.canonical);
    if (it == canonical.end()) {
      if (f.required) return FieldError(m, f, "a value is required");
      continue;
    }
    json v = *it;
    for (auto t = f.transforms.rbegin(); t != f.transforms.rend(); ++t) {
      auto r = (*t)->Out(v);
      if (!r.ok()) return FieldError(m, f, r.status().message());
      v = std::move(*r);
    }
    if (f.required && (v.is_null() || v == "")) return FieldError(m, f, "a value is required");
    if (!f.ref_entity.empty() && v.is_string()) v = RefPlaceholder(f.ref_entity, v.get<std::string>());
    out[f.native] = std::move(v);
  }
  return out;
}

json RefPlaceholder(const std::string& entity, const std::string& canonical_id) {
  return json{{"$ref", entity}, {"id", canonical_id}};
}

std::optional<std::string> RefPlaceholderId(const json& value) {
  if (!value.is_object() || value.size() != 2 || !value.contains("$ref")) return std::nullopt;
  auto id = value.find("id");
  if (id == value.end() || !id->is_string()) return std::nullopt;
  return id->get<std::string>();
}

}  // namespace crmbridge
