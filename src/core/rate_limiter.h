// Client-side rate limiting: a TokenBucket per budget and RateLimitedTransport to apply it.
//
// The vendors enforce ROLLING windows (HubSpot: N per rolling 10 s; Dynamics 365: 6000 per sliding
// 300 s; Totango: 100 per minute). A classic bucket that starts full and refills continuously lets
// up to 2 * capacity through in one window (a full bucket, then a window's worth of refill), which
// such a server answers with 429s. So this bucket returns each token one period after it was
// taken, plus a margin: at most `capacity` acquisitions fall in ANY window of length `period`.
// Pacing is the same as a classic bucket's in the long run: N acquisitions take about
// (N - C) * (P + margin) / C.
//
// The margin is there because the server stamps a request when it ARRIVES, a few milliseconds
// after the client took its token and not by the same amount every time: with tokens returned
// exactly one period later, the server saw one request too many in ~9% of paced windows
// (docs/PERFORMANCE.md, measurement 3). By default it is 2% of the period, at least 5 ms
// (DefaultMargin); a request may then arrive up to that much later than the one `capacity` places
// before it and still never be the (capacity + 1)-th in the server's window.
//
// Acquire() reserves the earliest free slot and then sleeps until it on the injected Clock, so
// concurrent callers queue in order without spinning, and tests on a FakeClock never block.
// PauseUntil() lets a server's Retry-After stop every user of a shared budget at once (Dynamics
// 365: "pause all sends until Retry-After has passed"); a 429 without one pauses the budget for one
// period (HubSpot's search 429 carries no Retry-After; a window's worth of waiting lets every
// request the server counted fall out of it).
//
// Several transports of one system share one budget through a shared_ptr<TokenBucket>. Tenants
// of one vendor account run by several workers share theirs in PostgreSQL instead
// (state/rate_budgets.h): both are a RateBudget, which is all RateLimitedTransport needs.
//
// Thread-safety: TokenBucket and RateLimitedTransport are safe to use from several threads.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/core/clock.h"
#include "src/core/transport.h"

namespace crmbridge {

// Requests a vendor account may send: at most some number in any window of one period.
class RateBudget {
 public:
  virtual ~RateBudget() = default;
  // Blocks until the budget lets one more request go, and counts it.
  virtual void Acquire() = 0;
  // Counts one request if the budget lets it go now; never blocks.
  virtual bool TryAcquire() = 0;
  // Nothing goes before `until` (a server's Retry-After). Never shortens a pause.
  virtual void PauseUntil(Clock::TimePoint until) = 0;
  // The window: how long a 429 without Retry-After holds the budget.
  virtual Clock::Duration period() const = 0;
};

// A budget kept in this process.
class TokenBucket : public RateBudget {
 public:
  // The share of the period added to it before a token comes back, and the least margin.
  static constexpr int kMarginPercent = 2;
  static constexpr Clock::Duration kMinMargin{5};
  // max(kMinMargin, period * kMarginPercent / 100).
  static Clock::Duration DefaultMargin(Clock::Duration period);

  // At most `capacity` acquisitions in any window of `period`; a token comes back `period` +
  // `margin` after it was taken. `capacity` >= 1, `period` > 0, `margin` >= 0 (0: exactly one
  // period, only for a server that stamps requests when they are sent); `clock` must outlive the
  // bucket.
  TokenBucket(int capacity, Clock::Duration period, Clock* clock);
  TokenBucket(int capacity, Clock::Duration period, Clock* clock, Clock::Duration margin);

  // Blocks (Clock::SleepFor) until a token is free, then takes it.
  void Acquire() override;
  // Takes a token if one is free now; never blocks.
  bool TryAcquire() override;
  // No token is handed out before `until` (a server's Retry-After). Never shortens a pause.
  void PauseUntil(Clock::TimePoint until) override;

  int capacity() const { return capacity_; }
  Clock::Duration period() const override { return period_; }
  Clock::Duration margin() const { return margin_; }
  // The last (at most capacity()) tokens taken, ascending: what a budget taking over from this one
  // must count as already spent.
  std::vector<Clock::TimePoint> Taken();

 private:
  // The earliest time a token can be handed out, given the slots already taken. REQUIRES mu_.
  Clock::TimePoint NextSlotLocked(Clock::TimePoint now) const;
  void TakeLocked(Clock::TimePoint slot);

  const int capacity_;
  const Clock::Duration period_;
  const Clock::Duration margin_;
  Clock* const clock_;
  std::mutex mu_;
  // The last (at most capacity_) slots handed out, ascending; some may lie in the future (reserved
  // by callers still sleeping).
  std::deque<Clock::TimePoint> slots_;  // GUARDED_BY(mu_)
  Clock::TimePoint paused_until_{};     // GUARDED_BY(mu_)
};

// Takes a token from the request's bucket before every send. A response 429 pauses that bucket for
// everyone sharing it: until its Retry-After, or for one period of the bucket without one.
class RateLimitedTransport : public TransportWrapper {
 public:
  // A request matching `match` draws from `bucket` INSTEAD of the default bucket (HubSpot's search
  // has its own 5/s budget, exempt from the 10-second one).
  struct Route {
    std::function<bool(const Request&)> match;
    std::shared_ptr<RateBudget> bucket;
  };
  // A route for requests whose URL path contains `substring` (e.g. "/search").
  static Route PathContains(std::string substring, std::shared_ptr<RateBudget> bucket);

  // `bucket` may be null (no default limit). Routes are tried in order; the first match wins.
  RateLimitedTransport(std::unique_ptr<Transport> target, std::shared_ptr<RateBudget> bucket,
                       std::vector<Route> routes = {}, Clock* clock = Clock::Real());

  Result<Response> Send(const Request& request) override;

 private:
  RateBudget* BucketFor(const Request& request) const;

  const std::shared_ptr<RateBudget> bucket_;
  const std::vector<Route> routes_;
  Clock* const clock_;
};

}  // namespace crmbridge
