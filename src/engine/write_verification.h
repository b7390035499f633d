// Write verification: a write the system acknowledged without confirming it (Totango's SDR
// answers 200 whatever it keeps: WriteOutcome::unverified) is checked against the next read of
// the record (Snapshot::unverified holds, per field, what was sent, what the field held before,
// and the attempts so far). Pure: the snapshot and the fields read in, the verdict out.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "state/store.h"

namespace crmbridge {

struct Verification {
  int verified = 0;     // fields read back as sent: the write landed
  bool rewrite = false;  // a field still shows what it held before: send it again
  // A field lost `max_attempts` times: given up (the system is known to hold the old value, and a
  // dead letter says so, with `reason`).
  bool gave_up = false;
  std::string reason;
};

// Checks the unverified writes of `system` in `snapshot` against `read`, the canonical fields just
// read there (null: the record did not show up at all, so nothing of the write landed). Per field:
// read back as sent, verified; still as before, lost (and `read` shows what was sent, since
// that value is not a change made there); anything else, changed there since (the merge decides).
// Verified, changed and given-up fields leave Snapshot::unverified; a given-up field's value
// before is what the system is known to hold (Snapshot::seen, and `read`).
Verification VerifyWrites(Snapshot* snapshot, const std::string& system, nlohmann::json* read,
                          int max_attempts);

}  // namespace crmbridge
