// The one file that includes cpprestsdk. Every exception it throws is caught here and turned into
// a Status; no cpprest type leaves this file.
#define _TURN_OFF_PLATFORM_STRING
#include "src/core/cpprest_transport.h"
#include "src/core/logging.h"
#include "src/core/url.h"

#include <cpprest/base_uri.h>
#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>
#include <pplx/pplxtasks.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <map>
#include <optional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace crmbridge {
namespace {

namespace http = web::http;
using SteadyTime = std::chrono::steady_clock::time_point;

// Set once by a continuation, waited for by the calling thread.
struct Signal {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;

  void Notify() {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  }
};

// Waits, on the calling thread, until `task` finishes or `deadline` passes; true if it finished.
// The continuation only signals: it neither blocks nor touches the task's result, so cpprest's
// pool threads are never held, and the result is read by the caller with get() on its own thread.
template <typename T>
bool WaitUntil(const pplx::task<T>& task, SteadyTime deadline) {
  auto signal = std::make_shared<Signal>();
  task.then([signal](pplx::task<T>) { signal->Notify(); });
  std::unique_lock<std::mutex> lock(signal->mu);
  return signal->cv.wait_until(lock, deadline, [&] { return signal->done; });
}

// The deadline passed: cancel the exchange and wait for cpprest to wind it down (prompt: the
// cancellation closes the socket, and the per-leg client timeout bounds it anyway), so that the
// task's exception is observed here rather than left to terminate the process when it is dropped.
template <typename T>
Status Abandon(pplx::cancellation_token_source& cts, const pplx::task<T>& task,
               const Request& request) {
  cts.cancel();
  try {
    task.wait();
  } catch (...) {
    // Cancelled or failed: either way the deadline has passed.
  }
  return Status(StatusCode::kDeadlineExceeded, request.method + " timed out after " +
                                                   std::to_string(request.timeout.count()) + " ms");
}

bool ContainsAny(const std::string& text, std::initializer_list<const char*> needles) {
  std::string lower = text;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* n : needles) {
    if (lower.find(n) != std::string::npos) return true;
  }
  return false;
}

bool EqualsIgnoreCase(const std::string& a, const char* b) {
  size_t n = std::char_traits<char>::length(b);
  if (a.size() != n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// Bytes cpprest reads at a time into a body kept for Request::accept_truncated. It hands a body
// to the response stream a read at a time, and what sits in an unfinished read is lost when the
// connection breaks: small reads keep nearly all that arrived.
constexpr size_t kPartialReadBytes = 512;

// How often a request goes again after it could not be written on a connection the server had
// closed: each try drops one such connection, and a client keeps no more idle ones to a host than
// requests ran at once (a few per system).
constexpr int kStaleConnectionRetries = 16;

// The connection broke after the status line of `answer` arrived: kUnavailable carrying that
// status (an answer began: the server is there, the outcome of this request is unknown).
Status BrokenOff(const Request& request, const Response& answer, const std::string& why) {
  return Status(StatusCode::kUnavailable,
                request.method + " " + request.url.substr(0, request.url.find('?')) +
                    ": the answer broke off after its status line: " + why)
      .set_http_status(answer.status);
}

Status FromHttpException(const http::http_exception& e) {
  const std::string what = e.what();
  const int value = e.error_code().value();
  // TLS first: a handshake failure may surface with a generic code, and must never be retried.
  if (ContainsAny(what, {"ssl", "tls", "certificate", "handshake"})) {
    return Status(StatusCode::kFailedPrecondition, "TLS failure: " + what);
  }
  if (value == ETIMEDOUT) return Status(StatusCode::kDeadlineExceeded, what);
  if (value == ECANCELED) return Status(StatusCode::kDeadlineExceeded, what);
  // Refused, reset, unreachable, DNS failures and anything else on the wire: nothing (or nothing
  // known) was applied, and a later attempt may succeed.
  return Status(StatusCode::kUnavailable, what);
}

class CpprestTransport : public Transport {
 public:
  explicit CpprestTransport(CpprestOptions options) : options_(std::move(options)) {}

  Result<Response> Send(const Request& request) override {
    const SteadyTime deadline = std::chrono::steady_clock::now() + request.timeout;
    bool never_sent = false;
    Result<Response> result = SendOnce(request, deadline, &never_sent);
    // A server closes a kept-alive connection after it has been idle a while; the next request
    // on it fails while being written, so it never reached the server and goes again, whatever
    // its method. Each failure drops one stale connection from the client's pool, which may
    // hold several.
    for (int again = 0; again < kStaleConnectionRetries && !result.ok() && never_sent &&
                        std::chrono::steady_clock::now() < deadline;
         ++again)
      result = SendOnce(request, deadline, &never_sent);
    return result;
  }

 private:
  // One attempt; `never_sent` says a failure happened while the request was written, before any
  // answer: the server did not get it whole, so did not act on it.
  Result<Response> SendOnce(const Request& request, SteadyTime deadline, bool* never_sent) {
    *never_sent = false;
    std::shared_ptr<http::client::http_client> client;
    http::http_request message;
    try {
      web::uri uri(request.url);
      if (uri.scheme() != "http" && uri.scheme() != "https") {
        return Status(StatusCode::kFailedPrecondition, "unsupported URL scheme: " + request.url);
      }
      if (uri.host().empty()) {
        return Status(StatusCode::kFailedPrecondition, "URL has no host: " + request.url);
      }
      client = ClientFor(uri, request.timeout, request.accept_truncated);
      message = BuildMessage(request, uri);
    } catch (const web::uri_exception& e) {
      return Status(StatusCode::kFailedPrecondition, std::string("malformed URL: ") + e.what());
    } catch (const std::invalid_argument& e) {
      return Status(StatusCode::kFailedPrecondition, std::string("malformed URL: ") + e.what());
    }

    // With accept_truncated the body goes to a buffer of ours as it arrives, so that what came
    // before a break is still there.
    concurrency::streams::container_buffer<std::vector<uint8_t>> kept;
    if (request.accept_truncated) message.set_response_stream(kept.create_ostream());
    // Filled once the status line and headers arrived: a failure after that is an answer broken
    // off, not a server that never answered.
    Response out;
    auto broken_off = [&](const std::string& why) -> Result<Response> {
      if (!request.accept_truncated) return BrokenOff(request, out, why);
      out.body.assign(kept.collection().begin(), kept.collection().end());
      out.truncated = true;
      return out;
    };
    pplx::cancellation_token_source cts;
    try {
      pplx::task<http::http_response> response_task = client->request(message, cts.get_token());
      if (!WaitUntil(response_task, deadline)) return Abandon(cts, response_task, request);
      http::http_response response = response_task.get();
      out.status = response.status_code();
      for (const auto& [name, value] : response.headers()) out.headers.emplace_back(name, value);
      if (out.status >= 300 && out.status < 400) {
        // Not followed (set_max_redirects(0)), and no answer to read: a moved API, or a base_url
        // of http:// where https:// is served. Where it points is named by its origin alone.
        cts.cancel();
        const std::string location = out.Header("Location").value_or("");
        const std::optional<UrlParts> target = SplitUrl(location);
        const std::string where =
            target ? std::string(target->origin) : "another path of the same host";
        return Status(StatusCode::kFailedPrecondition,
                      request.method + " " + RedactUrlForLog(request.url) + ": HTTP " +
                          std::to_string(out.status) + ", a redirect to " + where +
                          ", which crmbridge does not follow (the request's credentials would go "
                          "with it): check base_url")
            .set_http_status(out.status);
      }

      // Refused before it is read when it says its size, else once read.
      const auto too_large = [&](unsigned long long size) {
        cts.cancel();
        return Status(StatusCode::kFailedPrecondition,
                      request.method + " " + RedactUrlForLog(request.url) + ": the answer is " +
                          std::to_string(size) + " bytes, more than the " +
                          std::to_string(kMaxResponseBytes >> 20) +
                          " MiB crmbridge reads in one answer")
            .set_http_status(out.status);
      };
      if (auto length = out.Header("Content-Length")) {
        const unsigned long long declared = std::strtoull(length->c_str(), nullptr, 10);
        if (declared > kMaxResponseBytes) return too_large(declared);
      }
      if (request.accept_truncated) {
        pplx::task<http::http_response> ready = response.content_ready();
        if (!WaitUntil(ready, deadline)) return Abandon(cts, ready, request);
        ready.get();
        out.body.assign(kept.collection().begin(), kept.collection().end());
      } else {
        pplx::task<std::vector<unsigned char>> body_task = response.extract_vector();
        if (!WaitUntil(body_task, deadline)) return Abandon(cts, body_task, request);
        std::vector<unsigned char> body = body_task.get();
        out.body.assign(body.begin(), body.end());
      }
      if (out.body.size() > kMaxResponseBytes) return too_large(out.body.size());
      // A body shorter than its Content-Length never arrived whole, so its outcome is unknown.
      if (auto length = out.Header("Content-Length"); length && request.method != "HEAD") {
        char* end = nullptr;
        const unsigned long long expected = std::strtoull(length->c_str(), &end, 10);
        if (end != length->c_str() && out.body.size() < expected) {
          return broken_off("the connection closed after " + std::to_string(out.body.size()) +
                            " of " + std::to_string(expected) + " response bytes");
        }
      }
      return out;
    } catch (const http::http_exception& e) {
      Status s = FromHttpException(e);
      // cpprest's words for a write that failed: "Failed to write request headers" / "... body".
      *never_sent = out.status == 0 && s.code() == StatusCode::kUnavailable &&
                    std::string(e.what()).rfind("Failed to write request", 0) == 0;
      if (out.status == 0 || s.code() != StatusCode::kUnavailable) return s;
      return broken_off(s.message());
    } catch (const pplx::task_canceled&) {
      return Status(StatusCode::kDeadlineExceeded, request.method + " cancelled at its deadline");
    } catch (const std::exception& e) {
      if (out.status != 0) return broken_off(e.what());
      return Status(StatusCode::kUnavailable, std::string("HTTP failure: ") + e.what());
    }
  }

  // The client for the request's scheme://host:port and timeout (cpprest's timeout is a client
  // setting), and for bodies read in small pieces (accept_truncated); created on first use.
  std::shared_ptr<http::client::http_client> ClientFor(const web::uri& uri,
                                                       std::chrono::milliseconds timeout,
                                                       bool small_reads) {
    web::uri base = uri.authority();
    std::string key = base.to_string() + "|" + std::to_string(timeout.count()) +
                      (small_reads ? "|small-reads" : "");
    std::lock_guard<std::mutex> lock(mu_);
    auto it = clients_.find(key);
    if (it != clients_.end()) return it->second;
    http::client::http_client_config config;
    // Per leg (connect, send, each read); the whole-exchange deadline is enforced in Send().
    config.set_timeout(timeout);
    config.set_validate_certificates(options_.validate_certificates);
    // A redirect is answered as it is, never followed: followed, it would carry the request's
    // Authorization header to wherever the Location names (another host included).
    config.set_max_redirects(0);
    if (small_reads) config.set_chunksize(kPartialReadBytes);
    if (!options_.proxy.empty()) config.set_proxy(web::web_proxy(web::uri(options_.proxy)));
    auto client = std::make_shared<http::client::http_client>(base, config);
    clients_.emplace(std::move(key), client);
    return client;
  }

  http::http_request BuildMessage(const Request& request, const web::uri& uri) const {
    http::http_request message(request.method);
    message.set_request_uri(uri.resource());
    std::string content_type = "application/octet-stream";
    bool has_user_agent = false;
    for (const auto& [name, value] : request.headers) {
      // cpprest writes Host and Content-Length itself; Content-Type travels with the body.
      if (EqualsIgnoreCase(name, "Host") || EqualsIgnoreCase(name, "Content-Length")) continue;
      if (EqualsIgnoreCase(name, "Content-Type")) {
        content_type = value;
        continue;
      }
      if (EqualsIgnoreCase(name, "User-Agent")) has_user_agent = true;
      message.headers().add(name, value);
    }
    if (!has_user_agent && !options_.user_agent.empty()) {
      message.headers().add("User-Agent", options_.user_agent);
    }
    if (!request.body.empty()) {
      // A byte stream with an explicit length and type: cpprest neither re-encodes it nor appends
      // a charset, which its string overloads would.
      auto stream = concurrency::streams::bytestream::open_istream(request.body);
      message.set_body(stream, request.body.size(), content_type);
    }
    return message;
  }

  const CpprestOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<http::client::http_client>> clients_;  // GUARDED_BY(mu_)
};

}  // namespace

std::unique_ptr<Transport> NewCpprestTransport(const CpprestOptions& options) {
  return std::make_unique<CpprestTransport>(options);
}

}  // namespace crmbridge
