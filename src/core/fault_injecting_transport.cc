#include "src/core/fault_injecting_transport.h"

#include <optional>
#include <utility>

namespace crmbridge {

Fault Fault::HttpStatus(int http_status, Headers headers, std::string body) {
  Fault f;
  f.kind = Kind::kStatus;
  f.http_status = http_status;
  f.headers = std::move(headers);
  f.body = std::move(body);
  return f;
}

Fault Fault::Reset() {
  Fault f;
  f.kind = Kind::kReset;
  return f;
}

Fault Fault::TimeoutBeforeSend() {
  Fault f;
  f.kind = Kind::kTimeoutBeforeSend;
  return f;
}

Fault Fault::AppliedThenTimeout() {
  Fault f;
  f.kind = Kind::kAppliedThenTimeout;
  return f;
}

Fault Fault::Delay(std::chrono::milliseconds delay) {
  Fault f;
  f.kind = Kind::kDelay;
  f.delay = delay;
  return f;
}

Fault& Fault::Matching(std::string method_exact, std::string url_substring) {
  method = std::move(method_exact);
  url_contains = std::move(url_substring);
  return *this;
}

Fault& Fault::Times(int n) {
  count = n;
  return *this;
}

Fault& Fault::After(int n) {
  skip = n;
  return *this;
}

FaultInjectingTransport::FaultInjectingTransport(std::unique_ptr<Transport> target, Clock* clock)
    : TransportWrapper(std::move(target)), clock_(clock) {}

void FaultInjectingTransport::Add(Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.push_back(std::move(fault));
}

void FaultInjectingTransport::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.clear();
}

int64_t FaultInjectingTransport::injected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return injected_;
}

int64_t FaultInjectingTransport::forwarded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return forwarded_;
}

Result<Response> FaultInjectingTransport::Send(const Request& request) {
  std::optional<Fault> fired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = rules_.begin(); it != rules_.end(); ++it) {
      if (!it->method.empty() && it->method != request.method) continue;
      if (!it->url_contains.empty() && request.url.find(it->url_contains) == std::string::npos) {
        continue;
      }
      if (it->skip > 0) {
        --it->skip;
        continue;
      }
      fired = *it;
      if (it->count != Fault::kForever && --it->count <= 0) rules_.erase(it);
      ++injected_;
      break;
    }
    bool reaches_inner = !fired || fired->kind == Fault::Kind::kAppliedThenTimeout ||
                         fired->kind == Fault::Kind::kDelay;
    if (reaches_inner) ++forwarded_;
  }
  if (!fired) return TransportWrapper::Send(request);

  const std::string where = request.method + " " + request.url;
  switch (fired->kind) {
    case Fault::Kind::kStatus: {
      Response response;
      response.status = fired->http_status;
      response.headers = fired->headers;
      response.body = fired->body;
      return response;
    }
    case Fault::Kind::kReset:
      return Status(StatusCode::kUnavailable, "injected fault: connection reset: " + where);
    case Fault::Kind::kTimeoutBeforeSend:
      return Status(StatusCode::kDeadlineExceeded,
                    "injected fault: timed out before send: " + where);
    case Fault::Kind::kAppliedThenTimeout: {
      // The inner outcome is deliberately dropped: the write may have been applied, and the caller
      // must treat the result as unknown.
      (void)TransportWrapper::Send(request);
      return Status(StatusCode::kDeadlineExceeded,
                    "injected fault: timed out after send: " + where);
    }
    case Fault::Kind::kDelay:
      clock_->SleepFor(fired->delay);
      return TransportWrapper::Send(request);
  }
  return Status(StatusCode::kInternal, "unknown fault kind");
}

}  // namespace crmbridge
