#include "src/engine/merge.h"

#include <algorithm>
#include <map>
#include <set>

#include "src/core/time_util.h"

namespace crmbridge {

using nlohmann::json;

int64_t ChangeDate(const ChangeTime& at, int64_t fallback_ms) {
  if (at.modified_ms <= 0) return fallback_ms;
  if (at.precision_ms <= 1) return at.modified_ms;
  const int64_t p = at.precision_ms;
  const int64_t start = at.modified_ms - ((at.modified_ms % p) + p) % p;
  int64_t date = start + p - 1;
  if (at.read_ms > 0) date = std::min(date, at.read_ms);
  // A system clock ahead of crmbridge's: the reported time still stands.
  return std::max(date, at.modified_ms);
}

namespace {

// Settles the values of `field` sent to the system whose outcome was unknown, against the value a
// read shows. True when the read shows one of them: crmbridge's own write landed there.
bool SettleField(json* doubts, const std::string& field, const json& value, int64_t read_started_ms) {
  auto it = doubts->find(field);
  if (it == doubts->end() || !it->is_array()) return false;
  bool echo = false;
  json kept = json::array();
  for (const json& entry : *it) {
    if (entry.value("value", json()) == value) {
      echo = true;  // landed: the system holds it
      continue;
    }
    // Sent before this read began, and not what it shows: it did not land, or was overwritten.
    if (entry.value("sent_ms", int64_t{0}) < read_started_ms) continue;
    kept.push_back(entry);  // sent while the read went on: it may still show in a later one
  }
  if (kept.empty()) {
    doubts->erase(it);
  } else {
    *it = std::move(kept);
  }
  return echo;
}

// Per field, the value the system held after a write the read proves landed (see MergeRead);
// none where two such writes sent the field different values. Only a value the system was not
// known to hold before is proof; references are neither proof nor proven, since some systems
// write them in calls of their own (HubSpot associations).
std::map<std::string, json> Landed(const json& doubts, const json& read, const json& seen,
                                   const CanonicalEntity* entity) {
  auto is_reference = [&](const std::string& field) {
    const CanonicalField* cf = entity ? entity->Find(field) : nullptr;
    return cf != nullptr && !cf->ref_entity.empty();
  };
  std::set<int64_t> attempts;  // sent_ms of the attempts the read shows landed
  for (const auto& [field, value] : read.items()) {
    auto it = doubts.find(field);
    if (it == doubts.end() || !it->is_array() || is_reference(field)) continue;
    if (seen.contains(field) && seen[field] == value) continue;  // held before: proves nothing
    for (const json& entry : *it)
      if (entry.value("value", json()) == value) attempts.insert(entry.value("sent_ms", int64_t{0}));
  }
  std::map<std::string, json> out;
  if (attempts.empty()) return out;
  for (const auto& [field, list] : doubts.items()) {
    if (!list.is_array() || is_reference(field)) continue;
    std::optional<json> value;
    bool ambiguous = false;
    for (const json& entry : list) {
      if (!attempts.count(entry.value("sent_ms", int64_t{0}))) continue;
      const json v = entry.value("value", json());
      if (value && *value != v) ambiguous = true;
      value = v;
    }
    if (value && !ambiguous) out[field] = *value;
  }
  return out;
}

}  // namespace

Result<MergeResult> MergeRead(const MergeInput& in) {
  MergeResult out;
  out.snapshot = *in.snapshot;
  Snapshot& snap = out.snapshot;
  out.changed = !in.known;
  json merged = snap.fields;

  if (!snap.seen.is_object()) snap.seen = json::object();
  json& seen = snap.seen[in.system];
  if (!seen.is_object()) seen = json::object();
  const json seen_before = seen;
  if (!snap.in_doubt.is_object()) snap.in_doubt = json::object();
  json* doubts = nullptr;
  json doubts_before;
  if (auto it = snap.in_doubt.find(in.system); it != snap.in_doubt.end() && it->is_object()) {
    doubts = &*it;
    doubts_before = *it;
  }
  if (!snap.changed_ms.is_object()) snap.changed_ms = json::object();

  // One write lands whole: a field read back as a value sent with an unknown outcome proves that
  // every field sent in the same attempt (the same sent_ms) landed too, so the system held those
  // values since. A field that now shows something else was changed there after: even back to
  // the value crmbridge knew before its write (A, then crmbridge's B, then someone's A again).
  const std::map<std::string, json> landed =
      doubts ? Landed(*doubts, *in.read, seen, in.entity) : std::map<std::string, json>();

  std::optional<json> queued;  // asked for once, when first needed
  for (const auto& [field, value] : in.read->items()) {
    const bool was_in_doubt = doubts != nullptr && doubts->contains(field);
    const bool sent_by_us = was_in_doubt && SettleField(doubts, field, value, in.read_started_ms);
    const auto proven = landed.find(field);
    const json* held = proven != landed.end() ? &proven->second
                       : seen.contains(field)  ? &seen[field]
                                               : nullptr;
    // Equal to what the system was last known to hold: a stale copy or an echo, never news.
    if (held != nullptr && *held == value) {
      seen[field] = value;
      if (sent_by_us && (!merged.contains(field) || merged[field] != value))
        out.echoes.push_back(field);
      continue;
    }
    const bool held_a_value = held != nullptr && !held->is_null();
    seen[field] = value;
    if (merged.contains(field) && merged[field] == value) continue;
    if (value.is_null() && !merged.contains(field)) continue;  // empty there, unknown here
    // Empty in a system never known to hold a value for the field, or while a value crmbridge sent
    // there is in doubt: the value is missing there (a create that landed without its
    // references, a reference half replaced when the answer was lost, a record first linked by
    // its match key), not cleared by someone; it is written there rather than erased everywhere.
    if (value.is_null() && in.known && (!held_a_value || was_in_doubt)) continue;
    if (sent_by_us) {
      out.echoes.push_back(field);
      continue;
    }
    if (in.known && in.queued_values) {
      // A write to this system whose outcome was never committed (the process died between the
      // API call and the commit) is still queued: what it sent, read back, is our own echo.
      if (!queued) {
        auto values = in.queued_values();
        if (!values.ok()) return values.status();
        queued = std::move(*values);
      }
      if (queued->is_object() && queued->contains(field) && (*queued)[field] == value) continue;
    }
    const CanonicalField* cf = in.entity ? in.entity->Find(field) : nullptr;
    const bool has_value = merged.contains(field) && in.known;
    std::string lost_to;
    if (has_value && cf && !cf->system_of_record.empty() && cf->system_of_record != in.system) {
      lost_to = cf->system_of_record + " is its system of record";
    } else if (has_value && (!cf || cf->system_of_record.empty()) && snap.changed_ms.contains(field) &&
               snap.changed_ms[field].is_number_integer() &&
               in.changed_at_ms < snap.changed_ms[field].get<int64_t>()) {
      lost_to = "a newer change (" + FormatIsoUtc(snap.changed_ms[field].get<int64_t>(), true) +
                ") holds it";
    }
    if (!lost_to.empty()) {
      out.conflicts.push_back(FieldConflict{field, value, std::move(lost_to)});
      continue;
    }
    merged[field] = value;
    snap.changed_ms[field] = in.changed_at_ms;
    out.changed = true;
  }
  if (doubts != nullptr && doubts->empty()) snap.in_doubt.erase(in.system);
  const json doubts_after = snap.in_doubt.value(in.system, json());
  out.seen_changed = seen != seen_before || doubts_after != doubts_before;

  // Stage transitions feed days-in-stage reports.
  if (out.changed && in.read->contains(kStageField)) {
    const json& to = (*in.read)[kStageField];
    const json from = snap.fields.contains(kStageField) ? snap.fields[kStageField] : json();
    if (to != from && to.is_string())
      out.stage = StageMove{from.is_string() ? from.get<std::string>() : "", to.get<std::string>()};
  }
  snap.fields = std::move(merged);
  return out;
}

void AddInDoubt(Snapshot* snapshot, const std::string& system, const json& values, int64_t sent_ms) {
  if (!values.is_object() || values.empty()) return;
  if (!snapshot->in_doubt.is_object()) snapshot->in_doubt = json::object();
  json& doubts = snapshot->in_doubt[system];
  if (!doubts.is_object()) doubts = json::object();
  for (const auto& [field, value] : values.items()) {
    json& list = doubts[field];
    if (!list.is_array()) list = json::array();
    auto same = std::find_if(list.begin(), list.end(),
                             [&](const json& e) { return e.value("value", json()) == value; });
    if (same != list.end()) {
      (*same)["sent_ms"] = sent_ms;  // sent again: counts from the latest attempt
    } else {
      list.push_back(json{{"value", value}, {"sent_ms", sent_ms}});
    }
  }
}

void SettleInDoubt(Snapshot* snapshot, const std::string& system, const json& values) {
  if (!snapshot->in_doubt.is_object() || !values.is_object()) return;
  auto it = snapshot->in_doubt.find(system);
  if (it == snapshot->in_doubt.end()) return;
  for (const auto& [field, value] : values.items()) it->erase(field);
  if (it->empty()) snapshot->in_doubt.erase(it);
}

}  // namespace crmbridge
