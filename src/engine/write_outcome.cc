#include "src/engine/write_outcome.h"

namespace crmbridge {

bool IsUnreachable(const Status& s) {
  return s.IsSystemFatal() || (s.code() == StatusCode::kUnavailable && s.http_status() == 0);
}

WriteDecision DecideWrite(const WriteAttempt& a) {
  const bool attempts_left = a.attempts + 1 < a.max_attempts;
  if (a.wait.waiting) {
    if (a.wait.on_its_way && a.first_wait) return WriteDecision::kWait;
    return attempts_left ? WriteDecision::kRetryLater : WriteDecision::kDeadLetter;
  }
  if (a.status.ok()) return WriteDecision::kDone;
  if (IsUnreachable(a.status)) return WriteDecision::kStopSystem;
  // 409 and 412: the record changed under the write; a later attempt re-reads and re-diffs.
  const bool transient = a.status.IsTransient() || a.status.code() == StatusCode::kAlreadyExists ||
                         a.status.code() == StatusCode::kAborted ||
                         (a.record_gone && a.status.code() == StatusCode::kNotFound);
  return transient && attempts_left ? WriteDecision::kRetryLater : WriteDecision::kDeadLetter;
}

}  // namespace crmbridge
