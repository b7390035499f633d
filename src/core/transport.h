// Transport: the project's only door to the network, in leveldb's Env style.
//
// A Transport sends one HTTP request and returns its response, synchronously, with the deadline
// inside the request. No futures and no cpprestsdk types cross this interface: cpprest_transport.cc
// is the only file that includes <cpprest/...>, so another HTTP library can replace it in one file.
//
// A Result<Response> that is OK means an HTTP response arrived, *whatever its status code*: callers
// classify it with StatusFromResponse(). A non-OK Result means no whole response arrived:
//   kUnavailable       connection refused or reset, DNS failure (safe to retry: not applied, or,
//                      for a reset mid-request, unknown; see Request::idempotent). http_status()
//                      is 0 when no answer began, and the answer's status when the connection
//                      broke off after its status line (then the outcome is unknown too).
//   kDeadlineExceeded  the deadline passed; for a write the outcome is UNKNOWN
//   kFailedPrecondition TLS verification failed or the URL is malformed: never retried
//
// Decorators (RetryingTransport, RateLimitedTransport, RedactingLogTransport, FaultInjectingTransport)
// derive from TransportWrapper and override only what they change.
//
// Thread-safety: implementations are safe to call from several threads at once.
#pragma once

#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "src/core/status.h"

namespace crmbridge {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive header lookup; returns the first match.
std::optional<std::string> FindHeader(const Headers& headers, const std::string& name);

// The largest answer crmbridge reads: a page of records is a few megabytes at the vendors' page
// sizes, and an answer far past that (a proxy's runaway body, a page padded by a fault) is
// refused with kFailedPrecondition rather than held in memory.
inline constexpr size_t kMaxResponseBytes = 32u << 20;

struct Request {
  std::string method = "GET";  // GET, POST, PATCH, PUT, DELETE
  std::string url;             // absolute: scheme://host:port/path?query
  Headers headers;
  std::string body;
  // Deadline for the whole exchange.
  std::chrono::milliseconds timeout{30000};
  // True when sending the request twice has the same effect as once (reads, upserts by key,
  // PATCH by id, requests carrying an Idempotency-Key). Only idempotent requests are retried after
  // an outcome-unknown failure (5xx, reset, timeout). 429s are retried regardless: the server
  // rejected the request before acting on it.
  bool idempotent = false;
  // Logical system name ("hubspot"), used by logs, limiters and Status::system().
  std::string system;
  // For a caller that can use part of an answer (the complete parts of a Dynamics 365 $batch):
  // an answer that breaks off after its status line comes back as a Response holding the bytes
  // that arrived, with Response::truncated set, instead of as kUnavailable.
  bool accept_truncated = false;
};

struct Response {
  int status = 0;
  Headers headers;
  std::string body;
  // The connection broke off before the whole body arrived (only with Request::accept_truncated):
  // `body` is what came, and whatever the answer would have said after it is unknown.
  bool truncated = false;

  std::optional<std::string> Header(const std::string& name) const {
    return FindHeader(headers, name);
  }
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual Result<Response> Send(const Request& request) = 0;
};

// Forwards every call to `target`, which it owns. Decorators override only what they change.
class TransportWrapper : public Transport {
 public:
  explicit TransportWrapper(std::unique_ptr<Transport> target) : target_(std::move(target)) {}
  Result<Response> Send(const Request& request) override { return target_->Send(request); }

 protected:
  Transport* target() { return target_.get(); }

 private:
  std::unique_ptr<Transport> target_;
};

// Sees each exchange made through an ObservedTransport: the request and what came back.
using ExchangeObserver = std::function<void(const Request&, const Result<Response>&)>;

// Shows every exchange to an observer (metrics count them), after passing it on unchanged. Placed
// below the retries, it sees each attempt, so a 429 that a retry recovers from is still seen.
class ObservedTransport : public TransportWrapper {
 public:
  ObservedTransport(std::unique_ptr<Transport> target, ExchangeObserver observer)
      : TransportWrapper(std::move(target)), observer_(std::move(observer)) {}
  Result<Response> Send(const Request& request) override {
    Result<Response> result = target()->Send(request);
    observer_(request, result);
    return result;
  }

 private:
  ExchangeObserver observer_;
};

// A header holding a whole number of `unit`s ("10000" milliseconds, "3" seconds) as a duration,
// clamped to one week; nullopt when it is absent, negative or not a number.
std::optional<std::chrono::milliseconds> HeaderDuration(const Response& response,
                                                        const std::string& name,
                                                        std::chrono::milliseconds unit);

// What one system's API means by an error response where that differs from what its HTTP status
// says (a vendor status that is transient, a least wait the vendor documents, a limit that does
// not lift within a run).
struct HttpReading {
  StatusCode code = StatusCode::kUnavailable;
  // The least wait before a retry, whatever the response's headers ask for.
  std::chrono::milliseconds min_wait{0};
  // The wait the system's own headers ask for, taken when the response has no Retry-After.
  std::optional<std::chrono::milliseconds> wait;
};

// A system's reading of its error responses, nullopt where the HTTP status says it all. Each
// connector kind that needs one defines it beside its error parsing (connectors/<kind>/
// <kind>_errors) and the registry hands it to the system's transport stack, so that this library
// names no vendor.
using HttpClassifier = std::function<std::optional<HttpReading>(const Response&)>;

// Classifies a response: OK for 1xx-3xx, else StatusFromHttp(), or `classify`'s code when it has
// one for the response, with the Retry-After header parsed (seconds or an HTTP date) into
// Status::retry_after(), and Status::system() set from the request.
// The JSON of an answer that must be JSON, or kUnavailable naming `system` and `what` ("searching
// tickets") with what came instead: its HTTP status and content type, its size, where the JSON
// breaks (a page cut short, bytes that are not UTF-8) and an excerpt (an HTML maintenance page
// served with 200). kUnavailable: the next run asks again.
Result<nlohmann::json> ParseJsonAnswer(const Response& response, const std::string& system,
                                       const std::string& what);
// The value at `path` inside nested objects of an answer, or nullptr (no throw on a wrong type).
const nlohmann::json* FindPath(const nlohmann::json& j, std::initializer_list<const char*> path);

Status StatusFromResponse(const Response& response, const std::string& system,
                          std::string message, const HttpClassifier& classify = nullptr);

// What a call makes of an answer it did not wait for: `status` (its system's reading of the
// response) when that is an error, else kUnavailable naming the HTTP status. A 1xx, 2xx or 3xx
// other than the one a call expects (a 304, a redirect not followed, a 204 without the body it
// needs) is no success, and may be answered otherwise when asked again.
Status Unexpected(Status status, const Response& response, const std::string& what);

}  // namespace crmbridge
