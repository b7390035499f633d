#include "src/core/retrying_transport.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>

#include "src/core/stop.h"

namespace crmbridge {
namespace {

// The path of `url` without scheme, host or query: enough to say which call is retried, and the
// query (which may carry tokens or personal data) never reaches the log.
std::string_view UrlPath(std::string_view url) {
  size_t scheme = url.find("://");
  size_t path = url.find('/', scheme == std::string_view::npos ? 0 : scheme + 3);
  if (path == std::string_view::npos) return "/";
  std::string_view rest = url.substr(path);
  return rest.substr(0, rest.find_first_of("?#"));
}

}  // namespace

RetryingTransport::RetryingTransport(std::unique_ptr<Transport> target, RetryPolicy policy,
                                     Clock* clock, uint64_t seed)
    : TransportWrapper(std::move(target)), policy_(std::move(policy)), clock_(clock), rng_(seed) {}

std::chrono::milliseconds RetryingTransport::BackoffCeiling(const RetryPolicy& policy, int retry) {
  int64_t ceiling = std::max<int64_t>(policy.initial_backoff.count(), 0);
  int64_t cap = policy.max_backoff.count();
  for (int i = 0; i < retry && ceiling < cap; ++i) ceiling *= 2;
  return std::chrono::milliseconds(std::min(ceiling, cap));
}

std::chrono::milliseconds RetryingTransport::Jitter(int retry) {
  int64_t ceiling = BackoffCeiling(policy_, retry).count();
  if (ceiling <= 0) return std::chrono::milliseconds(0);
  std::uniform_int_distribution<int64_t> dist(0, ceiling);
  std::lock_guard<std::mutex> lock(rng_mu_);
  return std::chrono::milliseconds(dist(rng_));
}

RetryingTransport::Decision RetryingTransport::Classify(const Request& request,
                                                        const Result<Response>& result) {
  Decision d;
  if (!result.ok()) {
    StatusCode code = result.status().code();
    d.retry = request.idempotent &&
              (code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded);
    return d;
  }
  const Response& response = *result;
  if (response.status < 400) return d;
  std::optional<HttpReading> reading;
  if (policy_.classify) reading = policy_.classify(response);
  const StatusCode code = reading ? reading->code : StatusFromHttp(response.status, "").code();
  if (code == StatusCode::kResourceExhausted) {
    d.retry = true;  // refused before it was acted on, whatever the request
  } else if (code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded) {
    d.retry = request.idempotent;
  } else {
    return d;
  }
  if (auto header = response.Header("Retry-After")) {
    d.server_delay = ParseRetryAfter(*header, clock_->Now());
  }
  if (!d.server_delay && reading) d.server_delay = reading->wait;
  if (!d.server_delay && code == StatusCode::kResourceExhausted) {
    d.server_delay = HeaderDuration(response, "RateLimit-Reset", std::chrono::seconds(1));
  }
  if (reading && reading->min_wait.count() > 0) {
    d.server_delay = std::max(d.server_delay.value_or(reading->min_wait), reading->min_wait);
  }
  return d;
}

Result<Response> RetryingTransport::Send(const Request& request) {
  const int attempts = std::max(policy_.max_attempts, 1);
  std::chrono::milliseconds waited{0};
  for (int attempt = 1;; ++attempt) {
    Result<Response> result = TransportWrapper::Send(request);
    if (attempt >= attempts) return result;
    Decision decision = Classify(request, result);
    if (!decision.retry) return result;
    if (decision.server_delay && *decision.server_delay > policy_.max_retry_after) {
      spdlog::warn("{}{} {}: server asked to wait {} ms (more than {} ms); not retrying now",
                   request.system.empty() ? "" : request.system + ": ", request.method,
                   UrlPath(request.url), decision.server_delay->count(),
                   policy_.max_retry_after.count());
      return result;
    }
    std::chrono::milliseconds delay = Jitter(attempt - 1);
    if (decision.server_delay) delay = std::max(delay, *decision.server_delay);
    if (policy_.max_total_wait.count() > 0 && waited + delay > policy_.max_total_wait) {
      spdlog::warn("{}{} {}: another {} ms of waiting would pass the {} ms one request may "
                   "wait (half the run's lease); not retrying now",
                   request.system.empty() ? "" : request.system + ": ", request.method,
                   UrlPath(request.url), delay.count(),
                   policy_.max_total_wait.count());
      return result;
    }
    waited += delay;

    std::string outcome = result.ok() ? "HTTP " + std::to_string(result->status)
                                      : std::string(StatusCodeName(result.status().code()));
    // One retry is routine (a rate-limit window, a blip); a second one in a row is worth a warning.
    auto level = attempt == 1 ? spdlog::level::debug : spdlog::level::warn;
    spdlog::log(level, "{}{} {} attempt {}/{} got {}; retrying in {} ms",
                request.system.empty() ? "" : request.system + ": ", request.method,
                UrlPath(request.url), attempt, attempts, outcome, delay.count());
    // Stopping: the last outcome stands, and what it carried stays queued for the next run.
    if (!SleepUnlessStopped(clock_, delay)) return result;
  }
}

}  // namespace crmbridge
