#include "mocks/common/mock_server.h"

#include <httplib.h>

#include <chrono>

namespace crmbridge::mocks {

MockServer::MockServer(std::string name) : name_(std::move(name)) {}

MockServer::~MockServer() { Stop(); }

std::string MockServer::base_url() const {
  return "http://" + host_ + ":" + std::to_string(port_);
}

Status MockServer::Start(const std::string& host, int port) {
  if (server_) return Status(StatusCode::kFailedPrecondition, name_ + " mock already started");
  server_ = std::make_unique<httplib::Server>();
  httplib::Server& s = *server_;
  // Without TCP_NODELAY a keep-alive client waits ~20 ms per request on Nagle's algorithm.
  s.set_tcp_nodelay(true);
  s.set_keep_alive_max_count(100000);
  s.set_keep_alive_timeout(30);
  s.new_task_queue = [] { return new httplib::ThreadPool(8); };

  s.Get("/__admin/dump", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(Dump().dump(), "application/json");
  });
  s.Post("/__admin/reset", [this](const httplib::Request&, httplib::Response& res) {
    Reset();
    res.status = 204;
  });
  s.Get("/__admin/stats", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(Stats().dump(), "application/json");
  });
  RegisterRoutes(s);

  host_ = host;
  if (port == 0) {
    port_ = s.bind_to_any_port(host);
  } else {
    port_ = s.bind_to_port(host, port) ? port : -1;
  }
  if (port_ <= 0) {
    server_.reset();
    return Status(StatusCode::kUnavailable,
                  name_ + " mock: cannot bind " + host + ":" + std::to_string(port));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // Bound sockets accept connections already (the kernel queues them), but wait until the
  // server loop runs so that an immediate Stop() cannot race it.
  for (int i = 0; i < 500 && !server_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return Status::Ok();
}

void MockServer::Stop() {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

nlohmann::json MockServer::Stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [route, n] : stats_) j[route] = n;
  return j;
}

void MockServer::CountRequest(const std::string& route) {
  std::lock_guard<std::mutex> lock(stats_mu_);
  ++stats_[route];
}

}  // namespace crmbridge::mocks
