#include "src/core/stop.h"

#include <algorithm>
#include <atomic>

namespace crmbridge {
namespace {

std::atomic<bool> g_stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

}  // namespace

void RequestStop() { g_stop_requested.store(true); }
bool StopRequested() { return g_stop_requested.load(); }
void ClearStopRequest() { g_stop_requested.store(false); }

bool SleepUnlessStopped(Clock* clock, Clock::Duration d) {
  if (StopRequested()) return false;
  // A test's clock takes the whole wait in one call, as it would without a stop to watch for.
  if (clock != Clock::Real()) {
    clock->SleepFor(d);
    return !StopRequested();
  }
  constexpr Clock::Duration kSlice{100};
  while (d.count() > 0) {
    if (StopRequested()) return false;
    const Clock::Duration slice = std::min(d, kSlice);
    clock->SleepFor(slice);
    d -= slice;
  }
  return !StopRequested();
}

}  // namespace crmbridge
