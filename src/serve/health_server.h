// HealthServer: the orchestrator's view of a worker (Kubernetes probes, a load balancer).
//
//   GET /healthz   200 while the process serves
//   GET /readyz    200 when `ready` says so (the worker: PostgreSQL answers), else 503 with why
//
// Loopback unless told otherwise; nothing here is for the public.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "src/core/status.h"

namespace httplib {
class Server;
}

namespace crmbridge {

// Binds `server` to host:port (port 0: any free one), the port bound in *bound. kUnavailable,
// saying which address, when it cannot. Shared by the servers of serve and worker.
Status BindServer(httplib::Server* server, const std::string& host, int port, int* bound);

class HealthServer {
 public:
  // `ready` is called for each /readyz, from the server's thread.
  HealthServer(std::string host, int port, std::function<Status()> ready);
  ~HealthServer();

  // Binds and serves on a thread of its own. kUnavailable when the address is taken.
  Status Start();
  void Stop();
  int port() const { return port_; }

 private:
  std::string host_;
  int port_;
  std::function<Status()> ready_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace crmbridge
