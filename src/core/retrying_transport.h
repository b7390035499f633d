// RetryingTransport: retries transient failures with exponential backoff and full jitter, honouring
// the server's Retry-After.
//
// What is retried (the classification of docs/ARCHITECTURE.md), by the code StatusFromHttp() gives
// a response, or the system's HttpClassifier (RetryPolicy::classify) where it reads it otherwise:
//   - kResourceExhausted (HTTP 429), always: the server refused the request before acting on it.
//     Waits at least the server's Retry-After; without one, the wait the system's own headers ask
//     for (HttpReading::wait), else the RateLimit-Reset seconds some APIs send.
//   - kUnavailable and kDeadlineExceeded (HTTP 5xx, 408, and the transport failures), only when
//     Request::idempotent: otherwise the first attempt may have been applied and a retry could
//     apply it twice.
//   - Never: any other code (other 4xx, a limit the classifier says does not lift within a run,
//     kFailedPrecondition for TLS or a bad URL, kUnauthenticated).
// A wait is never shorter than the classifier's HttpReading::min_wait.
//
// The wait before retry n (n = 0 for the first retry) is uniform in [0, min(max_backoff,
// initial_backoff * 2^n)] ("full jitter"), raised to the server's delay when it gave one. When the
// server asks for more than max_retry_after, the response is returned at once: a long pause is the
// caller's decision (the outbox reschedules), not a blocked worker thread's.
//
// After the last attempt the last outcome is returned unchanged: a final 429 comes back as an OK
// Result holding the 429 Response, so the caller classifies it with StatusFromResponse().
//
// All waiting goes through the injected Clock, so tests on a FakeClock never sleep.
//
// Thread-safety: Send() may be called from several threads; the jitter source is mutex-guarded.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>

#include "src/core/clock.h"
#include "src/core/transport.h"

namespace crmbridge {

struct RetryPolicy {
  int max_attempts = 6;  // including the first; 1 disables retries
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{60000};
  // A server-requested delay longer than this is not waited out here (see above).
  std::chrono::milliseconds max_retry_after{5 * 60 * 1000};
  // The waits of one request's retries together, at most (0: no bound): a run holds its lease
  // for a time, renewed between calls, and a call that waited past it would write after another
  // run took the lease over. The last outcome stands instead; a later attempt settles it.
  std::chrono::milliseconds max_total_wait{0};
  // The system's own reading of its error responses (its connector kind's); empty where the HTTP
  // status says it all.
  HttpClassifier classify;
};

// Parses a Retry-After header value: delta-seconds ("120") or an HTTP date in any of the three
// forms of RFC 9110 (measured against `now`; a date in the past gives 0). nullopt when the value
// is neither. Values are clamped to one week. Defined in transport.cc, which StatusFromResponse
// shares.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         Clock::TimePoint now);

class RetryingTransport : public TransportWrapper {
 public:
  // `clock` must outlive the transport. `seed` makes the jitter reproducible in tests.
  RetryingTransport(std::unique_ptr<Transport> target, RetryPolicy policy, Clock* clock,
                    uint64_t seed = std::random_device{}());

  Result<Response> Send(const Request& request) override;

  // The upper bound of the jittered wait before retry `retry` (0-based): min(max_backoff,
  // initial_backoff * 2^retry).
  static std::chrono::milliseconds BackoffCeiling(const RetryPolicy& policy, int retry);

  const RetryPolicy& policy() const { return policy_; }

 private:
  struct Decision {
    bool retry = false;
    // The least wait the server asked for, if any.
    std::optional<std::chrono::milliseconds> server_delay;
  };
  Decision Classify(const Request& request, const Result<Response>& result);
  std::chrono::milliseconds Jitter(int retry);

  const RetryPolicy policy_;
  Clock* const clock_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;  // GUARDED_BY(rng_mu_)
};

}  // namespace crmbridge
