// DecideWrite: what happens to one outbox item after an attempt to write it, decided in one place.
//
//   delivered                                    -> kDone
//   no HTTP answer at all, or bad credentials    -> kStopSystem (the system is at fault, not the
//                                                   record: it stays queued, untouched)
//   a record it refers to is on its way there    -> kWait, once per run, spending no attempt
//   transient (429, 5xx, timeout), 409, 412,
//   a record it refers to is not there, or
//   the record it updates is not there (404)     -> kRetryLater while attempts are left (a
//                                                   record deleted or merged there, until
//                                                   crmbridge reads that: see SupersededUpdate)
//   anything else, or out of attempts            -> kDeadLetter, with the reason
#pragma once

#include "src/core/status.h"
#include "src/engine/references.h"

namespace crmbridge {

enum class WriteDecision { kDone, kWait, kRetryLater, kDeadLetter, kStopSystem };

struct WriteAttempt {
  Status status;           // the write's outcome, OK when delivered; unused while it waits
  RefWait wait;            // it was not sent: a record it refers to is not in the system yet
  bool first_wait = true;  // its first wait this run (a flush loop must not spin on it)
  int attempts = 0;        // attempts spent before this one
  int max_attempts = 1;    // sync.max_outbox_attempts
  bool record_gone = false;  // an update of a record the system no longer has (404)
};

WriteDecision DecideWrite(const WriteAttempt& attempt);

// A network-level failure (no HTTP answer at all: refused, reset before any status line, DNS) or
// a credentials problem means the system, not the record, is at fault. An error that came with an
// answer carries its HTTP status (connectors give an item of a batch the batch answer's), so one
// item's trouble never stops the system.
bool IsUnreachable(const Status& s);

}  // namespace crmbridge
