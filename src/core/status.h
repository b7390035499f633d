// Status and Result<T>: how every fallible call in crmbridge reports failure.
//
// Errors are values; no exception crosses a module boundary. A Status carries a code that tells the
// caller what to do next (retry the call, retry at the transaction level, drop this record, or stop
// the run), a human message, and optionally the HTTP status, the server's Retry-After delay and the
// system that produced it. HTTP outcomes are classified in one place: StatusFromHttp() gives what
// a status means by HTTP itself, and a system whose API gives a status a meaning of its own refines
// it through its HttpClassifier (src/core/transport.h). Every later decision reads the code rather
// than re-inspecting HTTP statuses.
//
// Status and Result are value types; they are safe to copy between threads.
#pragma once

#include <cassert>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace crmbridge {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // 400/422, undecodable record: this record only; dead-letter it
  kNotFound,            // 404: this record only (deleted remotely)
  kAlreadyExists,       // 409: retry at the transaction level (re-read, re-diff)
  kAborted,             // 412: optimistic-concurrency failure; retry at the transaction level
  kPermissionDenied,    // 403
  kUnauthenticated,     // 401: run-fatal for the system
  kFailedPrecondition,  // bad config, TLS failure: run-fatal, never retried
  kResourceExhausted,   // 429: transient, retry after the delay
  kUnavailable,         // 5xx, connection refused/reset: transient, retry with backoff
  kDeadlineExceeded,    // timeout: transient for reads; outcome UNKNOWN for writes
  kInternal,            // a bug or an impossible state
};

const char* StatusCodeName(StatusCode code);

class Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // HTTP status of the response that produced this Status, 0 when there was none.
  int http_status() const { return http_status_; }
  Status& set_http_status(int s) { http_status_ = s; return *this; }

  // Delay the server asked for (Retry-After), when it gave one.
  const std::optional<std::chrono::milliseconds>& retry_after() const { return retry_after_; }
  Status& set_retry_after(std::chrono::milliseconds d) { retry_after_ = d; return *this; }

  // The system ("hubspot", "dynamics365", ...) that produced this Status, empty if none.
  const std::string& system() const { return system_; }
  Status& set_system(std::string s) { system_ = std::move(s); return *this; }

  // Transient: the same call may succeed later (429, 5xx, resets, timeouts).
  bool IsTransient() const;
  // Fatal for the whole system in this run: bad credentials or configuration. Retrying or
  // dead-lettering each record would be wrong.
  bool IsSystemFatal() const;
  // Concerns one record only; the rest of its batch goes on (dead-letter it).
  bool IsRecordLevel() const;

  // "UNAVAILABLE: hubspot: HTTP 503: upstream down" style, for logs and dead letters.
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  int http_status_ = 0;
  std::optional<std::chrono::milliseconds> retry_after_;
  std::string system_;
};

// Maps an HTTP status to a Status code by what HTTP itself says, per the table in
// docs/ARCHITECTURE.md: 429 -> kResourceExhausted; 5xx -> kUnavailable; 408 -> kDeadlineExceeded;
// 400/422/413/414 -> kInvalidArgument; 404 -> kNotFound; 409 -> kAlreadyExists; 412 -> kAborted;
// 401 -> kUnauthenticated; 403 -> kPermissionDenied; other 4xx -> kInvalidArgument. 2xx/3xx -> OK.
// A status a vendor gives a meaning of its own is read by that system's HttpClassifier.
Status StatusFromHttp(int http_status, std::string message);

// Result<T>: either a T or a non-OK Status, like absl::StatusOr.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {      // NOLINT: implicit by design
    assert(!std::get<Status>(v_).ok() && "Result built from an OK Status carries no value");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace crmbridge

// Propagates a non-OK Status to the caller.
#define CRMB_RETURN_IF_ERROR(expr)                   \
  do {                                               \
    ::crmbridge::Status _crmb_st = (expr);           \
    if (!_crmb_st.ok()) return _crmb_st;             \
  } while (0)
