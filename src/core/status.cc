#include "src/core/status.h"

namespace crmbridge {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

bool Status::IsTransient() const {
  return code_ == StatusCode::kResourceExhausted || code_ == StatusCode::kUnavailable ||
         code_ == StatusCode::kDeadlineExceeded;
}

bool Status::IsSystemFatal() const {
  return code_ == StatusCode::kUnauthenticated || code_ == StatusCode::kFailedPrecondition;
}

bool Status::IsRecordLevel() const {
  return code_ == StatusCode::kInvalidArgument || code_ == StatusCode::kNotFound ||
         code_ == StatusCode::kPermissionDenied;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out = StatusCodeName(code_);
  out += ": ";
  if (!system_.empty()) out += system_ + ": ";
  if (http_status_ != 0) out += "HTTP " + std::to_string(http_status_) + ": ";
  out += message_;
  return out;
}

Status StatusFromHttp(int http_status, std::string message) {
  StatusCode code;
  if (http_status < 400) return Status::Ok();
  switch (http_status) {
    case 401: code = StatusCode::kUnauthenticated; break;
    case 403: code = StatusCode::kPermissionDenied; break;
    case 404: code = StatusCode::kNotFound; break;
    case 409: code = StatusCode::kAlreadyExists; break;
    case 412: code = StatusCode::kAborted; break;
    case 429: code = StatusCode::kResourceExhausted; break;
    case 408: code = StatusCode::kDeadlineExceeded; break;
    default:
      code = http_status >= 500 ? StatusCode::kUnavailable : StatusCode::kInvalidArgument;
  }
  Status s(code, std::move(message));
  s.set_http_status(http_status);
  return s;
}

}  // namespace crmbridge
