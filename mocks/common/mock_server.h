// MockServer: the shared base of the vendor API fakes in mocks/.
//
// A mock keeps its state in memory, speaks its vendor's paths, paging, error bodies and limits, and
// runs a cpp-httplib server on its own thread. It binds port 0 unless given a port and reports the
// bound port, so tests never collide; TCP_NODELAY is on and keep-alive is generous, because a
// keep-alive client otherwise waits ~20 ms per request on Nagle's algorithm.
//
// Every mock also serves the admin routes under /__admin/ (not part of any vendor API):
//   GET  /__admin/dump    the whole store as JSON, for tests that assert end states
//   POST /__admin/reset   empties the store
//   GET  /__admin/stats   request counts per route, for API-call efficiency checks
//
// Thread-safety: Start/Stop from one thread; the route handlers run on the server's pool and guard
// the store with the subclass's own mutex.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
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

 protected:
  // Subclasses register their vendor routes here.
  virtual void RegisterRoutes(httplib::Server& server) = 0;
  // Call at the top of each handler: counts the request under `route` for Stats().
  void CountRequest(const std::string& route);

 private:
  std::string name_;
  std::string host_;
  int port_ = 0;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  mutable std::mutex stats_mu_;
  std::map<std::string, int64_t> stats_;
};

}  // namespace crmbridge::mocks
