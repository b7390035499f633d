#include "src/engine/identity.h"

#include <algorithm>
#include <set>

#include "src/core/ids.h"

namespace crmbridge {

using nlohmann::json;

Result<Identified> Identity::Resolve(const SystemEntityMapping& source, const NativeRecord& record,
                                     const MappedRecord& mapped) {
  Identified out;
  auto linked_id = view_->CanonicalIdOf(NativeKey{source.system, source.entity, record.id});
  if (!linked_id.ok()) return linked_id.status();
  if (linked_id->has_value()) {
    out.kind = Identified::Kind::kLinked;
    out.canonical_id = **linked_id;
    return out;
  }
  if (!record.key.empty()) {
    out.kind = Identified::Kind::kKeyed;
    out.canonical_id = record.key;
    return out;
  }
  if (!source.match.empty()) {
    const std::string mk = MatchKey(source.match, mapped.MatchValues());
    if (!mk.empty()) {
      auto found = view_->ByMatchKey(source.entity, mk);
      if (!found.ok()) return found.status();
      if (found->has_value()) {
        auto linked = view_->LinkOf(RecordKey{source.entity, **found}, source.system);
        if (!linked.ok()) return linked.status();
        // One canonical record has one record per system.
        if (linked->has_value() && !(*linked)->native_id.empty() &&
            (*linked)->native_id != record.id) {
          out.kind = Identified::Kind::kDuplicate;
          out.duplicate_of = "has the same " + mk + " as " + source.object + " " +
                             (*linked)->native_id + ", already linked to " + source.entity + " " +
                             **found;
          return out;
        }
        out.kind = Identified::Kind::kMatched;
        out.canonical_id = **found;
        return out;
      }
    }
  }
  out.kind = Identified::Kind::kNew;
  out.canonical_id = NewTimeOrderedUuid();
  view_->NoteNew(source.entity, out.canonical_id);
  return out;
}

std::string Identity::MatchKey(const std::vector<std::string>& fields, const json& values) {
  std::string key;
  for (const std::string& f : fields) {
    if (!values.contains(f) || values[f].is_null()) return "";
    std::string v = values[f].is_string() ? values[f].get<std::string>() : values[f].dump();
    const size_t b = v.find_first_not_of(" \t\r\n"), e = v.find_last_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    v = v.substr(b, e - b + 1);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    key += (key.empty() ? "" : "&") + f + "=" + v;
  }
  return key;
}

void Identity::PutMatchKeys(const std::string& entity, const std::string& canonical_id,
                            const json& fields, StateBatch* batch) {
  std::set<std::vector<std::string>> specs;
  for (const SystemEntityMapping& m : plan_->mappings())
    if (m.entity == entity && !m.match.empty()) specs.insert(m.match);
  for (const auto& spec : specs) {
    const std::string mk = MatchKey(spec, fields);
    if (mk.empty()) continue;
    if (view_->PutMatchKey(entity, mk, canonical_id)) batch->PutMatchKey(entity, mk, canonical_id);
  }
}

}  // namespace crmbridge
