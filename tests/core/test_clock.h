// RecordingClock: a FakeClock that also remembers every SleepFor() request, in order, so tests can
// assert each backoff and pacing delay rather than only their sum.
#pragma once

#include <mutex>
#include <vector>

#include "src/core/clock.h"

namespace crmbridge::testing {

class RecordingClock : public FakeClock {
 public:
  void SleepFor(Duration d) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      sleeps_.push_back(d.count());
    }
    FakeClock::SleepFor(d);
  }
  std::vector<int64_t> sleeps() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sleeps_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<int64_t> sleeps_;
};

}  // namespace crmbridge::testing
