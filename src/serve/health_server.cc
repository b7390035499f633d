// HealthServer: see src/serve/health_server.h.
#include "src/serve/health_server.h"

#include <httplib.h>

namespace crmbridge {

Status BindServer(httplib::Server* server, const std::string& host, int port, int* bound) {
  // httplib's default also sets SO_REUSEPORT, with which a second process binds a port already
  // taken and the kernel shares the connections between the two: one customer's webhooks could
  // reach another configuration's process. SO_REUSEADDR alone still lets a restart bind at once.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
  });
  if (port == 0) {
    *bound = server->bind_to_any_port(host);
    if (*bound <= 0)
      return Status(StatusCode::kUnavailable, "cannot listen on " + host + ": no free port");
    return Status::Ok();
  }
  if (!server->bind_to_port(host, port))
    return Status(StatusCode::kUnavailable, "cannot listen on " + host + ":" +
                                                std::to_string(port) +
                                                " (taken, or not an address of this machine)");
  *bound = port;
  return Status::Ok();
}

HealthServer::HealthServer(std::string host, int port, std::function<Status()> ready)
    : host_(std::move(host)), port_(port), ready_(std::move(ready)) {}

HealthServer::~HealthServer() { Stop(); }

Status HealthServer::Start() {
  server_ = std::make_unique<httplib::Server>();
  server_->set_tcp_nodelay(true);
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    Status ready = ready_();
    if (!ready.ok()) {
      res.status = 503;
      res.set_content("not ready: " + ready.ToString() + "\n", "text/plain");
      return;
    }
    res.set_content("ready\n", "text/plain");
  });
  CRMB_RETURN_IF_ERROR(BindServer(server_.get(), host_, port_, &port_));
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return Status::Ok();
}

void HealthServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace crmbridge
