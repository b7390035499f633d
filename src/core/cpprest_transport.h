// CpprestTransport: the real network, over cpprestsdk's http_client.
//
// The factory hides every cpprestsdk type: cpprest_transport.cc is the only file in the project
// that includes <cpprest/...>, so another HTTP library (libcurl) can replace it in one file.
//
// Behaviour:
//   - One http_client per base URL (scheme://host:port) and timeout, created on first use and
//     cached: each client owns a keep-alive connection pool, so reusing it saves a TCP (and TLS)
//     handshake per call.
//   - Request::timeout bounds the whole exchange (connect, send, headers and body); when it passes
//     the request is cancelled and kDeadlineExceeded returned.
//   - The body is sent as raw bytes with the request's own Content-Type (no charset added, nothing
//     re-encoded); all response headers and the raw body are returned.
//   - A Result that is OK holds whatever HTTP status arrived. Failures without a response:
//       kUnavailable        connection refused or reset, DNS failure, other network errors
//                           (http_status() 0); an answer that broke off after its status line
//                           carries that status (or, with Request::accept_truncated, comes back
//                           as a Response with what arrived of its body and `truncated` set)
//       kDeadlineExceeded   the deadline passed
//       kFailedPrecondition TLS/certificate failure, a malformed or non-http(s) URL
//   - cpprestsdk sends a request once more, on another connection, when a kept-alive connection
//     closes before any status line (it takes the server to have closed an idle connection),
//     whether or not the request is idempotent.
//
// Thread-safety: Send() may be called from many threads at once; each call blocks its own thread
// only (no blocking call inside cpprest's thread pool).
#pragma once

#include <memory>
#include <string>

#include "src/core/transport.h"

namespace crmbridge {

struct CpprestOptions {
  // Verify the server certificate and host name. Turning this off is for local test set-ups only.
  bool validate_certificates = true;
  // An explicit proxy ("http://proxy:3128"); empty means direct connections. cpprestsdk on Linux
  // does not read http_proxy/https_proxy from the environment.
  std::string proxy;
  // Sent when the request carries no User-Agent of its own.
  std::string user_agent = "crmbridge/0.1";
};

std::unique_ptr<Transport> NewCpprestTransport(const CpprestOptions& options = CpprestOptions());

}  // namespace crmbridge
