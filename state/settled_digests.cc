// DigestsOf: the settled digests a store keeps with each snapshot (store.h, SettledDigests).
#include "src/core/hash.h"
#include "state/store.h"

namespace crmbridge {

SettledDigests DigestsOf(const Snapshot& snapshot) {
  SettledDigests out;
  out.known = true;
  if (snapshot.deleted_ms != 0 || !snapshot.seen.is_object()) return out;
  auto holds = [](const nlohmann::json& per_system, const std::string& system) {
    if (!per_system.is_object()) return false;
    auto it = per_system.find(system);
    return it != per_system.end() && !(it->is_object() && it->empty());
  };
  for (const auto& [system, values] : snapshot.seen.items()) {
    if (!values.is_object() || values.empty()) continue;
    // A value in doubt or an unverified write: the next read of the system must be merged.
    if (holds(snapshot.in_doubt, system) || holds(snapshot.unverified, system)) continue;
    out.by_system.emplace_back(system, ShortHash(HashJson(values)));
  }
  return out;
}

}  // namespace crmbridge
