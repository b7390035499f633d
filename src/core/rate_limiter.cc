#include "src/core/rate_limiter.h"

#include <algorithm>
#include <cassert>
#include <optional>
#include <utility>

#include "src/core/retrying_transport.h"
#include "src/core/stop.h"

namespace crmbridge {

Clock::Duration TokenBucket::DefaultMargin(Clock::Duration period) {
  return std::max(kMinMargin, period * kMarginPercent / 100);
}

TokenBucket::TokenBucket(int capacity, Clock::Duration period, Clock* clock)
    : TokenBucket(capacity, period, clock, DefaultMargin(period)) {}

TokenBucket::TokenBucket(int capacity, Clock::Duration period, Clock* clock,
                         Clock::Duration margin)
    : capacity_(std::max(capacity, 1)),
      period_(period),
      margin_(std::max(margin, Clock::Duration::zero())),
      clock_(clock) {
  assert(capacity >= 1 && period.count() > 0 && margin.count() >= 0 && clock != nullptr);
}

Clock::TimePoint TokenBucket::NextSlotLocked(Clock::TimePoint now) const {
  Clock::TimePoint slot = std::max(now, paused_until_);
  if (static_cast<int>(slots_.size()) >= capacity_) {
    // The token taken capacity_ slots ago comes back one period (and the margin) after it was
    // taken.
    slot = std::max(slot, slots_.front() + period_ + margin_);
  }
  return slot;
}

void TokenBucket::TakeLocked(Clock::TimePoint slot) {
  slots_.push_back(slot);
  while (static_cast<int>(slots_.size()) > capacity_) slots_.pop_front();
}

void TokenBucket::Acquire() {
  Clock::TimePoint now = clock_->Now();
  Clock::TimePoint slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    slot = NextSlotLocked(now);
    // Reserve before sleeping, so concurrent callers line up behind this one instead of all
    // waking for the same token.
    TakeLocked(slot);
  }
  if (slot > now) SleepUnlessStopped(clock_, slot - now);
}

bool TokenBucket::TryAcquire() {
  Clock::TimePoint now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  if (NextSlotLocked(now) > now) return false;
  TakeLocked(now);
  return true;
}

std::vector<Clock::TimePoint> TokenBucket::Taken() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::vector<Clock::TimePoint>(slots_.begin(), slots_.end());
}

void TokenBucket::PauseUntil(Clock::TimePoint until) {
  std::lock_guard<std::mutex> lock(mu_);
  paused_until_ = std::max(paused_until_, until);
}

RateLimitedTransport::Route RateLimitedTransport::PathContains(
    std::string substring, std::shared_ptr<RateBudget> bucket) {
  return Route{[substring = std::move(substring)](const Request& request) {
                 // Only the path and query count: the host never matches by accident.
                 size_t scheme = request.url.find("://");
                 size_t path = request.url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
                 return path != std::string::npos &&
                        request.url.find(substring, path) != std::string::npos;
               },
               std::move(bucket)};
}

RateLimitedTransport::RateLimitedTransport(std::unique_ptr<Transport> target,
                                           std::shared_ptr<RateBudget> bucket,
                                           std::vector<Route> routes, Clock* clock)
    : TransportWrapper(std::move(target)),
      bucket_(std::move(bucket)),
      routes_(std::move(routes)),
      clock_(clock) {}

RateBudget* RateLimitedTransport::BucketFor(const Request& request) const {
  for (const Route& route : routes_) {
    if (route.match && route.match(request)) return route.bucket.get();
  }
  return bucket_.get();
}

Result<Response> RateLimitedTransport::Send(const Request& request) {
  RateBudget* bucket = BucketFor(request);
  if (bucket != nullptr) {
    // Stopping (SIGTERM, SIGINT): a request that would wait for the budget is not sent, so a
    // budget of a few requests an hour cannot hold the process; what it carried stays queued.
    bool room = true;
    if (StopRequested()) {
      room = bucket->TryAcquire();
    } else {
      bucket->Acquire();                // its wait ends early on a stop
      room = !StopRequested();
    }
    if (!room)
      return Status(StatusCode::kUnavailable,
                    "not sent: crmbridge is stopping (SIGTERM or SIGINT), and the rate budget had "
                    "no room for the request")
          .set_system(request.system);
  }
  Result<Response> result = TransportWrapper::Send(request);
  if (bucket != nullptr && result.ok() && result->status == 429) {
    Clock::TimePoint now = clock_->Now();
    std::optional<Clock::Duration> delay;
    if (auto header = result->Header("Retry-After")) delay = ParseRetryAfter(*header, now);
    // Without a Retry-After (HubSpot's search 429), the server still counts the requests of its
    // current window: hold everyone for one window rather than let them refill it at once.
    bucket->PauseUntil(now + (delay ? *delay : bucket->period()));
  }
  return result;
}

}  // namespace crmbridge
