#include "src/engine/write_verification.h"

#include <vector>

namespace crmbridge {

using nlohmann::json;

Verification VerifyWrites(Snapshot* snapshot, const std::string& system, json* read,
                          int max_attempts) {
  Verification out;
  if (!snapshot->unverified.is_object() || !snapshot->unverified.contains(system)) return out;
  json& pending = snapshot->unverified[system];
  std::vector<std::string> done, lost;
  for (const auto& [field, entry] : pending.items()) {
    const json& sent = entry["sent"];
    if (read == nullptr) {
      // The record itself never showed up: nothing of the write landed.
      lost.push_back(field);
      if (entry.value("attempts", 1) >= max_attempts) done.push_back(field);
      continue;
    }
    const json value = read->contains(field) ? (*read)[field] : json();
    if (value == sent) {
      ++out.verified;
      done.push_back(field);
    } else if (value == entry["before"]) {
      (*read)[field] = sent;  // not a change made there: our write did not land
      lost.push_back(field);
      if (entry.value("attempts", 1) >= max_attempts) done.push_back(field);
    } else {
      done.push_back(field);  // changed there since: the merge takes it from here
    }
  }
  for (const std::string& field : lost) {
    const json& entry = pending[field];
    if (entry.value("attempts", 1) >= max_attempts) {
      // Given up: the system is known to hold the old value, which is then not a change made
      // there on later reads either; the dead letter's replay sends the value again.
      out.gave_up = true;
      snapshot->seen[system][field] = entry["before"];
      if (read != nullptr) (*read)[field] = entry["before"];
      out.reason += (out.reason.empty() ? "" : "; ") + field + " written as " +
                    entry["sent"].dump() + " " + std::to_string(entry.value("attempts", 1)) +
                    " times, still " + entry["before"].dump();
    } else {
      out.rewrite = true;
    }
  }
  for (const std::string& field : done) pending.erase(field);
  if (pending.empty()) snapshot->unverified.erase(system);
  return out;
}

}  // namespace crmbridge
