// FakeTransport: a scripted Transport for unit tests (connectors, decorators).
//
// Answers each request with the next scripted outcome (a Response or a non-OK Status), in order,
// and records every request it received. When the script runs out it calls the fallback handler
// if one is set, else returns kInternal naming the unexpected request, so a test that sends more
// than it scripted fails loudly.
//
// Wrappers own their target, so keep a raw pointer before handing the fake over:
//   auto fake = std::make_unique<FakeTransport>();
//   FakeTransport* script = fake.get();
//   RetryingTransport transport(std::move(fake), policy, &clock);
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "src/core/transport.h"

namespace crmbridge {

class FakeTransport : public Transport {
 public:
  using Handler = std::function<Result<Response>(const Request&)>;

  // Scripts the next response.
  FakeTransport& Respond(int status, std::string body = {}, Headers headers = {}) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    return Enqueue(std::move(r));
  }
  FakeTransport& Enqueue(Response response) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.emplace_back(std::move(response));
    return *this;
  }
  // Scripts the next outcome as a transport failure (kUnavailable, kDeadlineExceeded, ...).
  FakeTransport& Fail(Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.emplace_back(std::move(status));
    return *this;
  }
  // Answers requests once the script is exhausted.
  void SetFallback(Handler handler) {
    std::lock_guard<std::mutex> lock(mu_);
    fallback_ = std::move(handler);
  }

  Result<Response> Send(const Request& request) override {
    Handler fallback;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request);
      if (!script_.empty()) {
        Result<Response> next = std::move(script_.front());
        script_.pop_front();
        return next;
      }
      fallback = fallback_;
    }
    if (fallback) return fallback(request);
    return Status(StatusCode::kInternal,
                  "FakeTransport: nothing scripted for " + request.method + " " + request.url);
  }

  // Every request received, in order.
  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t request_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.size();
  }
  // Scripted outcomes not consumed yet.
  size_t pending() const {
    std::lock_guard<std::mutex> lock(mu_);
    return script_.size();
  }

 private:
  mutable std::mutex mu_;
  std::deque<Result<Response>> script_;  // GUARDED_BY(mu_)
  std::vector<Request> requests_;        // GUARDED_BY(mu_)
  Handler fallback_;                     // GUARDED_BY(mu_)
};

}  // namespace crmbridge
