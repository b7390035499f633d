// FaultInjectingTransport: scripted network and server faults, for tests and benchmarks (leveldb's
// fault-injection Env, for HTTP).
//
// Faults are rules tried in the order added. A rule matches a request by method (exact, empty =
// any) and URL substring (empty = any); it may first let `skip` matching requests through, then
// fires `count` times (kForever = every time) and is dropped. The first rule that fires decides
// the request; when none fires, the request goes to the inner transport untouched.
//
//   kStatus              answers with an HTTP status (plus headers and body, e.g. Retry-After)
//                        without calling the inner transport
//   kReset               kUnavailable ("connection reset") without calling the inner transport
//   kTimeoutBeforeSend   kDeadlineExceeded without calling the inner transport (not applied)
//   kAppliedThenTimeout  calls the inner transport, discards its response and returns
//                        kDeadlineExceeded: the write happened but the caller cannot know
//   kDelay               waits `delay` on the injected clock, then forwards
//
// Timeouts are reported at once, without waiting out the request's deadline.
//
// Thread-safety: all methods are safe to call concurrently with Send().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/core/clock.h"
#include "src/core/transport.h"

namespace crmbridge {

struct Fault {
  enum class Kind { kStatus, kReset, kTimeoutBeforeSend, kAppliedThenTimeout, kDelay };
  static constexpr int kForever = -1;

  Kind kind = Kind::kStatus;
  int http_status = 503;               // kStatus
  Headers headers;                     // kStatus
  std::string body;                    // kStatus
  std::chrono::milliseconds delay{0};  // kDelay
  std::string method;                  // exact match; empty = any
  std::string url_contains;            // substring of Request::url; empty = any
  int skip = 0;                        // matching requests let through before the rule fires
  int count = 1;                       // times it fires, or kForever

  static Fault HttpStatus(int http_status, Headers headers = {}, std::string body = {});
  static Fault Reset();
  static Fault TimeoutBeforeSend();
  static Fault AppliedThenTimeout();
  static Fault Delay(std::chrono::milliseconds delay);

  // Builders: Fault::HttpStatus(429, {{"Retry-After", "2"}}).Matching("POST", "/batch/").Times(3)
  Fault& Matching(std::string method_exact, std::string url_substring);
  Fault& Times(int n);
  Fault& After(int n);
};

class FaultInjectingTransport : public TransportWrapper {
 public:
  // `clock` (for kDelay) must outlive the transport.
  explicit FaultInjectingTransport(std::unique_ptr<Transport> target, Clock* clock = Clock::Real());

  // Appends a rule.
  void Add(Fault fault);
  // Drops every rule.
  void Clear();

  // How many faults fired, and how many requests reached the inner transport (including those
  // of kAppliedThenTimeout and kDelay).
  int64_t injected() const;
  int64_t forwarded() const;

  Result<Response> Send(const Request& request) override;

 private:
  Clock* const clock_;
  mutable std::mutex mu_;
  std::vector<Fault> rules_;  // GUARDED_BY(mu_)
  int64_t injected_ = 0;      // GUARDED_BY(mu_)
  int64_t forwarded_ = 0;     // GUARDED_BY(mu_)
};

}  // namespace crmbridge
