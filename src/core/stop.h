// A process-wide request to stop, set by SIGTERM or SIGINT (src/cli/process.h): waits for a rate
// budget or a retry end at once, and a request that would wait is not sent. The run then stops
// after what is in flight, as the engine's own stop flag says; what was not sent stays queued.
#pragma once

#include "src/core/clock.h"

namespace crmbridge {

// Async-signal-safe: one lock-free atomic store.
void RequestStop();
bool StopRequested();
// For tests, and a process that goes on after a stop.
void ClearStopRequest();

// Sleeps `d` on `clock` (the real clock a slice of at most 100 ms at a time, any other clock in
// one call); false when a stop was requested before or while it slept.
bool SleepUnlessStopped(Clock* clock, Clock::Duration d);

}  // namespace crmbridge
