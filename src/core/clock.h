// Clock: the one source of "now" and of sleeping, injected into everything that waits (rate
// limiters, retry backoff, lease expiry) so tests run on a FakeClock and never sleep.
//
// SystemClock is thread-safe. FakeClock is thread-safe; SleepFor() advances it instead of blocking.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

namespace crmbridge {

class Clock {
 public:
  using Duration = std::chrono::milliseconds;
  using TimePoint = std::chrono::time_point<std::chrono::system_clock, Duration>;

  virtual ~Clock() = default;
  // Wall-clock time (UTC), millisecond resolution.
  virtual TimePoint Now() = 0;
  // Blocks the calling thread for `d` (FakeClock: advances time by `d` and returns at once).
  virtual void SleepFor(Duration d) = 0;

  // Milliseconds since the Unix epoch.
  int64_t NowMillis() { return Now().time_since_epoch().count(); }

  // The process-wide real clock.
  static Clock* Real();
};

class SystemClock : public Clock {
 public:
  TimePoint Now() override {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  }
  void SleepFor(Duration d) override { std::this_thread::sleep_for(d); }
};

// Manually driven clock for tests. Starts at 2026-01-01T00:00:00Z unless told otherwise.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1767225600000LL) : now_ms_(start_ms) {}
  TimePoint Now() override { return TimePoint(Duration(now_ms_.load())); }
  void SleepFor(Duration d) override {
    slept_ms_ += d.count();
    now_ms_ += d.count();
  }
  void Advance(Duration d) { now_ms_ += d.count(); }
  // Total time requested through SleepFor(), for assertions on backoff and pacing.
  int64_t slept_ms() const { return slept_ms_.load(); }

 private:
  std::atomic<int64_t> now_ms_;
  std::atomic<int64_t> slept_ms_{0};
};

inline Clock* Clock::Real() {
  static SystemClock clock;
  return &clock;
}

}  // namespace crmbridge
