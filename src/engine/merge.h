// Merge: one record read from one system, weighed against what crmbridge holds of it.
//
// A pure function: the snapshot, the record's canonical fields, when it was changed and the
// entity's rules go in; the merged fields, what that system is now known to hold, the conflicts
// and the stage move come out. No store, no connector, no clock.
//
// Per field, a value read is
//   - crmbridge's own echo when it is one of the values sent there whose outcome was unknown
//     (Snapshot::in_doubt), or the value of the write still queued there, or what the system was
//     last known to hold (Snapshot::seen): never a change, whatever the snapshot holds now;
//   - what a system is known to hold includes what a write of unknown outcome sent there, once a
//     read shows another field of that same write holding a value only that write could have
//     put there (a write's fields land together; references excepted, which some systems write
//     in calls of their own): a field showing anything else, even the value known before that
//     write, was changed there since;
//   - no news when it is empty in a system never known to hold a value for the field, or while a
//     value crmbridge sent there is in doubt (missing there, not cleared: crmbridge writes it
//     there instead of erasing it everywhere);
//   - else a change made in that system, which meets the field's conflict policy: its system of
//     record's changes alone are taken; otherwise the most recent change wins, each change dated
//     by its record's modification time (ChangeDate). A change that loses is reported as a
//     conflict, and the caller writes the winning value back there.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mappings/mapping.h"
#include "src/core/status.h"
#include "state/store.h"

namespace crmbridge {

// When a record was last modified, as precisely as its system can tell.
struct ChangeTime {
  int64_t modified_ms = 0;   // as the system reports it; 0 when it does not
  int64_t precision_ms = 1;  // 1000: the system reports whole seconds (Dynamics 365's modifiedon)
  int64_t read_ms = 0;       // when crmbridge had the record in hand; 0 when unknown
};

// The time a change is dated by, in ms. A system that reports whole seconds truncates: the change
// happened somewhere in that second, and counts from its end, so that it is not taken for older
// than a change made earlier in the same second elsewhere. It never counts from later than the
// moment crmbridge read it, though: a change crmbridge had in hand before another one was made
// stays the older of the two. Without a modification time, `fallback_ms` (the run's start).
int64_t ChangeDate(const ChangeTime& at, int64_t fallback_ms);

// A change read that lost to the field's conflict policy.
struct FieldConflict {
  std::string field;
  nlohmann::json value;  // what the system holds, not taken
  std::string lost_to;   // why, for the log ("hubspot is its system of record")
};

// The canonical field whose moves are recorded as stage history (reports, imported history).
inline constexpr char kStageField[] = "stage";

struct StageMove {
  std::string from;  // "" when the record had no stage
  std::string to;
};

struct MergeInput {
  const Snapshot* snapshot = nullptr;  // what crmbridge holds (entity and id set when new)
  bool known = false;                  // false: the record is new to crmbridge
  std::string system;                  // where the record was read
  const nlohmann::json* read = nullptr;  // its canonical fields, references resolved
  int64_t changed_at_ms = 0;             // ChangeDate of the record
  // When the read that returned the record began: a value sent there earlier whose outcome was
  // unknown either shows in this read or did not land (or was overwritten there since).
  int64_t read_started_ms = 0;
  const CanonicalEntity* entity = nullptr;  // field rules; null: none
  // The canonical values of the write queued for this record in `system`, if any (an object, or
  // null); asked only when a field differs from everything else known, since it costs a lookup.
  std::function<Result<nlohmann::json>()> queued_values;
};

struct MergeResult {
  // The snapshot after the read: fields merged, changed_ms dated, and this system's `seen` and
  // `in_doubt` as the read shows them. Its fields equal the input's when `changed` is false.
  Snapshot snapshot;
  bool changed = false;       // a field took this read's value, or the record is new
  bool seen_changed = false;  // this system's `seen` or `in_doubt` moved (store the snapshot)
  std::vector<FieldConflict> conflicts;
  std::vector<std::string> echoes;  // fields read back as a value sent with an unknown outcome
  std::optional<StageMove> stage;   // the read moved the record's stage
};

Result<MergeResult> MergeRead(const MergeInput& in);

// Records `values` (canonical field -> value) as sent to `system` at `sent_ms` with an outcome
// not known yet: Snapshot::in_doubt, one entry per distinct value and field.
void AddInDoubt(Snapshot* snapshot, const std::string& system, const nlohmann::json& values,
                int64_t sent_ms);
// A write of `values` to `system` was delivered: the system holds them, so the values of those
// fields sent earlier are settled.
void SettleInDoubt(Snapshot* snapshot, const std::string& system, const nlohmann::json& values);

}  // namespace crmbridge
