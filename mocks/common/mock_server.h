// MockServer: the shared base of the vendor API fakes in mocks/.
//
// A mock keeps its state in memory, speaks its vendor's paths, paging, error bodies and limits, and
// runs a cpp-httplib server on its own thread. It binds port 0 unless given a port and reports the
// bound port, so tests never collide. TCP_NODELAY is on: without it a keep-alive client waits
// ~20 ms per request on Nagle's algorithm. Idle keep-alive connections close after 5 s. Up to 64
// connections are served at once (a worker holds a keep-alive connection while it is open).
//
// Every mock also serves the admin routes under /__admin/ (not part of any vendor API):
//   GET  /__admin/dump    the whole store as JSON, for tests that assert end states
//   POST /__admin/reset   empties the store
//   GET  /__admin/stats   request counts per route, for API-call efficiency checks
//   GET|POST|DELETE /__admin/faults   the fault rules in force (POST replaces them with a JSON
//                         list of FaultRule objects, or {"seed": N, "rules": [...]})
//
// Thread-safety: Start/Stop from one thread; the route handlers run on the server's pool and guard
// the store with the subclass's own mutex.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "src/core/status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace crmbridge::mocks {

// A fault the mock injects into matching requests, deterministically (the decisions follow a
// seeded generator, so a seed replays the same faults in the same order).
struct FaultRule {
  std::string method;      // "GET", "POST", ...; empty = any
  std::string path;        // substring of the request path; empty = any
  int status = 0;          // answer with this status (and the vendor's error body); 0 = serve
  double rate = 1.0;       // fraction of matching requests affected
  int times = -1;          // affect at most this many requests; -1 = no limit
  int latency_ms = 0;      // wait this long before answering (a timeout when longer than the
                           // client's deadline)
  int retry_after_s = -1;  // with status: also send Retry-After
  // Serve the request (its writes land), then answer `status` instead: the client cannot tell
  // whether it was applied, as after a timeout or a dropped connection.
  bool after_apply = false;
  // Break the connection instead of answering. Without after_apply the request is not applied and
  // the connection closes before any status line: the client reads no answer at all. With
  // after_apply the request is applied and its answer breaks off half way through the body (the
  // status line and headers went out), or before the status line when the answer has no body.
  bool drop = false;
  // Serve the request, but fail this fraction of the items of a batch (HubSpot batch inputs,
  // Dynamics 365 $batch requests and change sets) with the vendor's per-item error; the rest land.
  double partial = 0;
  // Answer as if the write succeeded but keep nothing of it: the silent loss of a gateway that
  // answers 200 whatever happens (Totango's SDR pixel). Mocks without such a route ignore it.
  bool lost = false;
  // Serve the request, then spoil its answer the way a faulty API, proxy or gateway does (see
  // kCorruptions): "truncate" (the JSON cut in half, sized as if whole), "html" (an HTML error
  // page with status 200), "huge" (the page padded to 50 MB), "types" (record i's value at
  // position i, counted through nested objects, of another JSON type), "ids" (the first record's id empty, the second's 10 KB),
  // "text" (strings of every other record with a NUL and bytes that are not UTF-8), "loop" (the
  // next-page link points back at this page), "backwards" (every modification time in 2001),
  // "deep" (the first record's first text value an array nested 100,000 deep), "twice" (a key
  // given twice in the first record's object that holds its first text value).
  std::string corrupt;

  nlohmann::json ToJson() const;
  // Parses "POST /batch status=503 rate=0.2 times=3 latency=100 retry_after=2 partial=0.1
  // corrupt=truncate applied [drop] [lost]"; the
  // method and path are optional ("*" matches any). kInvalidArgument naming the bad word.
  static Result<FaultRule> Parse(const std::string& spec);
  static Result<FaultRule> FromJson(const nlohmann::json& j);
};

// The corruptions FaultRule::corrupt takes.
extern const char* const kCorruptions[10];

// Decodes an application/x-www-form-urlencoded body or query string ('+' is a space, %XX a byte).
std::multimap<std::string, std::string> DecodeForm(const std::string& text);

class MockServer {
 public:
  explicit MockServer(std::string name);
  virtual ~MockServer();
  MockServer(const MockServer&) = delete;
  MockServer& operator=(const MockServer&) = delete;

  // Binds host:port (port 0 = any free port), registers routes and starts serving on a background
  // thread. Returns once the server accepts connections. kUnavailable if the port cannot be bound.
  Status Start(const std::string& host = "127.0.0.1", int port = 0);
  // Stops serving and joins the thread. Safe to call twice.
  void Stop();

  const std::string& name() const { return name_; }
  int port() const { return port_; }
  // "http://127.0.0.1:<port>"
  std::string base_url() const;

  // The store as JSON (what GET /__admin/dump returns).
  virtual nlohmann::json Dump() const = 0;
  // Empties the store.
  virtual void Reset() = 0;
  // Requests served per "METHOD /route-pattern".
  nlohmann::json Stats() const;

  // Replaces the fault rules; `seed` drives the rate decisions. Thread-safe.
  void SetFaults(std::vector<FaultRule> rules, uint64_t seed = 1);
  std::vector<FaultRule> Faults() const;
  // Requests a fault was injected into so far.
  int64_t faults_injected() const;

 protected:
  // Subclasses register their vendor routes here.
  virtual void RegisterRoutes(httplib::Server& server) = 0;
  // Call at the top of each handler: counts the request under `route` for Stats().
  void CountRequest(const std::string& route);
  // Sends the status line, headers and half the body of `res`, then closes the connection.
  static void BreakResponse(httplib::Response& res);
  // Spoils a served answer as FaultRule::corrupt says.
  void Corrupt(const std::string& kind, const httplib::Request& req, httplib::Response& res) const;
  // Closes the connection of `req` before anything of `res` is sent.
  static void DropConnection(const httplib::Request& req, httplib::Response& res);
  // For batch handlers: whether the next item of this request fails by a `partial` fault
  // (deterministic, from the fault seed). Always false when no partial fault matched the request.
  bool FailBatchItem(const httplib::Response& res);
  // For write handlers: whether a `lost` fault matched this request (its writes must be dropped).
  static bool WriteLost(const httplib::Response& res);
  // The vendor's error body for an injected fault of `status`.
  virtual nlohmann::json FaultBody(int status, const std::string& message) const;
  // For a "loop" corruption: points the next-page link of `body` (this mock's answer to `req`)
  // back at the page just served. False when the answer has no next-page link to spoil.
  virtual bool LoopPaging(const httplib::Request& req, nlohmann::json* body) const;

 private:
  std::string name_;
  std::string host_;
  int port_ = 0;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  mutable std::mutex stats_mu_;
  std::map<std::string, int64_t> stats_;

  struct ActiveFault {
    FaultRule rule;
    int64_t used = 0;
  };
  // The fault to inject into this request, if any (counts it).
  std::optional<FaultRule> PickFault(const std::string& method, const std::string& path);
  // The next draw in [0, 1) of the fault generator; faults_mu_ held.
  double DrawLocked();
  mutable std::mutex faults_mu_;
  std::vector<ActiveFault> faults_;
  uint64_t fault_rng_ = 1;
  int64_t faults_injected_ = 0;
};

}  // namespace crmbridge::mocks
