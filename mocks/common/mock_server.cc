#include "mocks/common/mock_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <algorithm>
#include <iterator>
#include <sstream>
#include <thread>

namespace crmbridge::mocks {
namespace {
// Marker headers from the fault picker to the route handlers; never sent to the client.
constexpr char kPartialHeader[] = "X-Crmbridge-Mock-Partial";
constexpr char kLostHeader[] = "X-Crmbridge-Mock-Lost";
constexpr char kCorruptHeader[] = "X-Crmbridge-Mock-Corrupt";

// The records of an answer: the first array of objects found, breadth first, within three levels
// ("results" of HubSpot, "value" of an OData collection, Totango's hits, the portal's data).
nlohmann::json* RecordsOf(nlohmann::json* body, int depth = 0) {
  if (!body->is_object() || depth > 3) return nullptr;
  for (auto& [key, value] : body->items())
    if (value.is_array() && !value.empty() && value.front().is_object()) return &value;
  for (auto& [key, value] : body->items())
    if (auto* found = RecordsOf(&value, depth + 1)) return found;
  return nullptr;
}

// A value of another JSON type than `v`.
nlohmann::json WrongType(const nlohmann::json& v) {
  if (v.is_string()) return nlohmann::json{{"unexpected", {1, 2}}};
  if (v.is_number()) return "not a number";
  if (v.is_boolean()) return "maybe";
  if (v.is_null()) return nlohmann::json::array();
  if (v.is_array()) return 42;
  return "an object was expected here";
}

// Applies `change` to every value of `record` and of the objects it holds (HubSpot's properties).
template <typename Change>
void EachValue(nlohmann::json* record, Change change) {
  for (auto& [key, value] : record->items()) {
    if (value.is_object()) {
      for (auto& [inner_key, inner] : value.items()) change(inner_key, &inner);
    } else {
      change(key, &value);
    }
  }
}

// The record's id field: "id" where there is one, else the first key ending in "id" with a text
// value (an OData row's accountid).
std::string IdFieldOf(const nlohmann::json& record) {
  if (record.contains("id")) return "id";
  for (const auto& [key, value] : record.items())
    if (value.is_string() && key.size() > 2 && key.compare(key.size() - 2, 2, "id") == 0) return key;
  return "";
}
// Connections served at once (see Start).
constexpr size_t kWorkers = 64;

// The address and port of a socket's end, as cpp-httplib writes them into a Request.
bool Endpoint(const sockaddr_storage& a, std::string* address, int* port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    *port = ntohs(in->sin_port);
    return inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) != nullptr && (*address = text, true);
  }
  if (a.ss_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(&a);
    *port = ntohs(in->sin6_port);
    return inet_ntop(AF_INET6, &in->sin6_addr, text, sizeof text) != nullptr && (*address = text, true);
  }
  return false;
}

// The server's socket of the connection `req` arrived on: among the process's sockets, the one
// whose local port is the request's and whose peer is the request's remote address and port (the
// client's socket of an in-process client has those the other way round). -1 when none is.
// cpp-httplib hands its handlers no socket, hence the search.
int ConnectionSocket(const httplib::Request& req) {
  DIR* fds = opendir("/proc/self/fd");
  if (fds == nullptr) return -1;
  int found = -1;
  while (const dirent* entry = readdir(fds)) {
    const int fd = std::atoi(entry->d_name);
    if (fd <= 2) continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
      continue;
    std::string local_address, peer_address;
    int local_port = 0, peer_port = 0;
    if (!Endpoint(local, &local_address, &local_port) || !Endpoint(peer, &peer_address, &peer_port))
      continue;
    if (local_port == req.local_port && peer_port == req.remote_port &&
        peer_address == req.remote_addr) {
      found = fd;
      break;
    }
  }
  closedir(fds);
  return found;
}
}  // namespace

std::multimap<std::string, std::string> DecodeForm(const std::string& text) {
  auto decode = [](const std::string& in) {
    std::string out;
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i] == '+') {
        out += ' ';
      } else if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
        out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        out += in[i];
      }
    }
    return out;
  };
  std::multimap<std::string, std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('&', start);
    if (end == std::string::npos) end = text.size();
    const std::string pair = text.substr(start, end - start);
    if (!pair.empty()) {
      const size_t eq = pair.find('=');
      out.emplace(decode(pair.substr(0, eq)), eq == std::string::npos ? "" : decode(pair.substr(eq + 1)));
    }
    start = end + 1;
  }
  return out;
}

const char* const kCorruptions[10] = {"truncate", "html", "huge",      "types", "ids",
                                      "text",     "loop", "backwards", "deep",  "twice"};

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
  // Idle keep-alive connections close after 5 s: Stop() waits for them, so longer would hold up
  // every shutdown while a client keeps a connection open.
  s.set_keep_alive_timeout(5);
  // One worker serves one connection for as long as it stays open, so a pool smaller than the
  // connections a client holds makes the extra requests wait for an idle connection to time out
  // (5 s): the vendors' SDKs open one keep-alive connection per call in flight. Workers mostly
  // sleep in a read, so a generous pool costs little.
  s.new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };

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
  s.Get("/__admin/faults", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json rules = nlohmann::json::array();
    for (const FaultRule& r : Faults()) rules.push_back(r.ToJson());
    res.set_content(nlohmann::json{{"rules", rules}, {"injected", faults_injected()}}.dump(),
                    "application/json");
  });
  s.Post("/__admin/faults", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    const nlohmann::json list = body.is_object() ? body.value("rules", nlohmann::json()) : body;
    if (!list.is_array()) {
      res.status = 400;
      res.set_content("{\"error\":\"expected a JSON list of fault rules\"}", "application/json");
      return;
    }
    std::vector<FaultRule> rules;
    for (const auto& item : list) {
      auto rule = FaultRule::FromJson(item);
      if (!rule.ok()) {
        res.status = 400;
        res.set_content(nlohmann::json{{"error", rule.status().message()}}.dump(), "application/json");
        return;
      }
      rules.push_back(*rule);
    }
    SetFaults(std::move(rules), body.is_object() ? body.value("seed", uint64_t{1}) : 1);
    res.status = 204;
  });
  s.Delete("/__admin/faults", [this](const httplib::Request&, httplib::Response& res) {
    SetFaults({});
    res.status = 204;
  });

  // Faults apply to vendor routes only, never to /__admin/.
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path.rfind("/__admin/", 0) == 0) return httplib::Server::HandlerResponse::Unhandled;
    auto fault = PickFault(req.method, req.path);
    if (!fault) return httplib::Server::HandlerResponse::Unhandled;
    if (fault->latency_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(fault->latency_ms));
    if ((fault->status == 0 && !fault->drop) || fault->after_apply) {
      // Served normally; an after_apply fault replaces the answer once the handler has run, and
      // partial or lost faults are read by the handler from these marker headers (removed before
      // the answer goes out).
      if (fault->partial > 0) res.set_header(kPartialHeader, std::to_string(fault->partial));
      if (fault->lost) res.set_header(kLostHeader, "1");
      if (!fault->corrupt.empty()) res.set_header(kCorruptHeader, fault->corrupt);
      if (fault->after_apply)
        res.set_header("X-Crmbridge-Mock-Fault", fault->drop ? "drop" : std::to_string(fault->status));
      return httplib::Server::HandlerResponse::Unhandled;
    }
    if (fault->drop) {
      // Not applied: the connection goes before a byte of an answer does.
      DropConnection(req, res);
      return httplib::Server::HandlerResponse::Handled;
    }
    res.status = fault->status;
    // Answered before the request body was read: the connection cannot carry another request,
    // so the client is told to close it (as a failing front end often does).
    res.set_header("Connection", "close");
    if (fault->retry_after_s >= 0) res.set_header("Retry-After", std::to_string(fault->retry_after_s));
    res.set_content(FaultBody(fault->status, "injected fault").dump(), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
  s.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    res.headers.erase(kPartialHeader);
    res.headers.erase(kLostHeader);
    if (res.has_header(kCorruptHeader)) {
      const std::string kind = res.get_header_value(kCorruptHeader);
      res.headers.erase(kCorruptHeader);
      Corrupt(kind, req, res);
      return;
    }
    if (!res.has_header("X-Crmbridge-Mock-Fault")) return;
    const std::string fault = res.get_header_value("X-Crmbridge-Mock-Fault");
    res.headers.erase("X-Crmbridge-Mock-Fault");
    if (fault == "drop") {
      // Applied: the answer breaks off half way through its body, or before its status line
      // when it has no body to cut.
      if (res.body.empty()) {
        DropConnection(req, res);
      } else {
        BreakResponse(res);
      }
      return;
    }
    const int status = std::stoi(fault);
    res.status = status;
    res.set_content(FaultBody(status, "injected fault after the request was applied").dump(),
                    "application/json");
    // cpp-httplib has sized the response before this handler runs: size it again.
    res.headers.erase("Content-Length");
    res.set_header("Content-Length", std::to_string(res.body.size()));
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

// Sends the answer's status line, its headers (the Content-Length of the whole body) and the first
// half of its body, then closes the connection: the client reads a truncated response, as when a
// connection drops mid-answer.
void MockServer::BreakResponse(httplib::Response& res) {
  auto body = std::make_shared<const std::string>(std::move(res.body));
  res.body.clear();
  const std::string type = res.get_header_value("Content-Type");
  res.headers.erase("Content-Type");
  // cpp-httplib has sized the response before the post-routing handler runs: size it here.
  res.headers.erase("Content-Length");
  res.set_header("Content-Length", std::to_string(body->size()));
  // A content provider that fails makes cpp-httplib abandon the response and close the socket
  // after what it wrote went out.
  res.set_content_provider(body->size(), type,
                           [body](size_t offset, size_t, httplib::DataSink& sink) {
                             if (offset == 0) sink.write(body->data(), body->size() / 2);
                             return false;
                           });
}

// Closes the connection for both directions: cpp-httplib's writes of the answer then fail, and
// the client reads the end of the connection where it expects a status line.
void MockServer::DropConnection(const httplib::Request& req, httplib::Response& res) {
  res.set_header("Connection", "close");
  const int fd = ConnectionSocket(req);
  if (fd < 0) {
    // Never seen; were it so, a status of the mock's own is better than a made-up success.
    res.status = 599;
    res.set_content(R"({"message":"mock: the connection to drop was not found"})", "application/json");
    return;
  }
  // Only shut down, never closed here: cpp-httplib closes the descriptor it owns.
  shutdown(fd, SHUT_RDWR);
}

void MockServer::Corrupt(const std::string& kind, const httplib::Request& req,
                         httplib::Response& res) const {
  const std::string type = res.get_header_value("Content-Type");
  auto resize = [&res, &type](int status, std::string body, std::string content_type) {
    res.status = status;
    res.set_content(std::move(body), content_type.empty() ? type : content_type);
    // cpp-httplib has sized the response before this handler runs: size it again.
    res.headers.erase("Content-Length");
    res.set_header("Content-Length", std::to_string(res.body.size()));
  };
  if (kind == "truncate") return resize(res.status, res.body.substr(0, res.body.size() / 2), "");
  if (kind == "html") {
    return resize(200,
                  "<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>"
                  "<h1>We'll be right back</h1><p>The service is under maintenance.</p></body></html>",
                  "text/html; charset=utf-8");
  }
  nlohmann::json body = nlohmann::json::parse(res.body, nullptr, false);
  if (body.is_discarded()) return;  // not JSON: nothing of the kinds below applies
  nlohmann::json* records = RecordsOf(&body);
  std::string marker;       // replaced by `replacement` once serialized
  std::string replacement;  // bytes that are not UTF-8, or a nesting nlohmann would not build
  if (kind == "huge") {
    body["crmbridge_mock_padding"] = std::string(50u << 20, 'x');
  } else if (kind == "types" && records != nullptr) {
    // Record i has its value at position i (counted through nested objects) of the wrong type, so
    // a page of enough records has each position wrong once.
    for (size_t i = 0; i < records->size(); ++i) {
      size_t position = 0;
      EachValue(&(*records)[i], [&](const std::string&, nlohmann::json* v) {
        if (position++ == i) *v = WrongType(*v);
      });
    }
  } else if (kind == "ids" && records != nullptr) {
    for (size_t i = 0; i < records->size() && i < 2; ++i) {
      const std::string id = IdFieldOf((*records)[i]);
      if (!id.empty()) (*records)[i][id] = i == 0 ? std::string() : std::string(10 * 1024, '7');
    }
  } else if (kind == "text" && records != nullptr) {
    marker = "@@crmbridge-mock-not-utf8@@";
    for (size_t i = 1; i < records->size(); i += 2)
      EachValue(&(*records)[i], [&marker](const std::string&, nlohmann::json* v) {
        if (v->is_string()) *v = v->get<std::string>() + std::string("\0nul", 4) + marker;
      });
    replacement = "\xC3\x28\xFF";
  } else if ((kind == "deep" || kind == "twice") && records != nullptr && !records->empty()) {
    // Written as text: a value this deep, built as a json, would overflow the mock's own stack,
    // and a json holds no key twice.
    marker = "@@crmbridge-mock-" + kind + "@@";
    replacement = kind == "deep" ? std::string(100000, '[') + std::string(100000, ']')
                                 : R"("first","crmbridge_mock_twice":1,"crmbridge_mock_twice":2)";
    bool done = false;
    EachValue(&(*records)[0], [&](const std::string&, nlohmann::json* v) {
      if (!done && v->is_string()) *v = marker, done = true;
    });
  } else if (kind == "loop") {
    if (!LoopPaging(req, &body)) return;
  } else if (kind == "backwards" && records != nullptr) {
    for (auto& record : *records)
      EachValue(&record, [](const std::string& key, nlohmann::json* v) {
        const bool modified = key.find("modified") != std::string::npos || key == "updatedAt";
        if (modified && v->is_string()) *v = "2001-01-01T00:00:00Z";
      });
  }
  std::string text = body.dump();
  // The marker is a JSON string: its quotes go with it when the replacement is no string.
  const std::string quoted = kind == "text" ? marker : "\"" + marker + "\"";
  for (size_t at = marker.empty() ? std::string::npos : text.find(quoted);
       at != std::string::npos; at = text.find(quoted, at + replacement.size()))
    text.replace(at, quoted.size(), replacement);
  resize(res.status, std::move(text), "");
}

bool MockServer::LoopPaging(const httplib::Request&, nlohmann::json*) const { return false; }

nlohmann::json MockServer::FaultBody(int status, const std::string& message) const {
  return {{"status", status}, {"message", message}};
}

void MockServer::SetFaults(std::vector<FaultRule> rules, uint64_t seed) {
  std::lock_guard<std::mutex> lock(faults_mu_);
  faults_.clear();
  for (FaultRule& r : rules) faults_.push_back(ActiveFault{std::move(r), 0});
  fault_rng_ = seed == 0 ? 1 : seed;
}

std::vector<FaultRule> MockServer::Faults() const {
  std::lock_guard<std::mutex> lock(faults_mu_);
  std::vector<FaultRule> out;
  for (const ActiveFault& f : faults_) out.push_back(f.rule);
  return out;
}

int64_t MockServer::faults_injected() const {
  std::lock_guard<std::mutex> lock(faults_mu_);
  return faults_injected_;
}

std::optional<FaultRule> MockServer::PickFault(const std::string& method, const std::string& path) {
  std::lock_guard<std::mutex> lock(faults_mu_);
  for (ActiveFault& f : faults_) {
    const FaultRule& r = f.rule;
    if (!r.method.empty() && r.method != method) continue;
    if (!r.path.empty() && path.find(r.path) == std::string::npos) continue;
    if (r.times >= 0 && f.used >= r.times) continue;
    if (DrawLocked() >= r.rate) continue;
    ++f.used;
    ++faults_injected_;
    return r;
  }
  return std::nullopt;
}

double MockServer::DrawLocked() {
  // xorshift64*: a tiny deterministic generator, so a seed replays the same faults.
  fault_rng_ ^= fault_rng_ >> 12;
  fault_rng_ ^= fault_rng_ << 25;
  fault_rng_ ^= fault_rng_ >> 27;
  return static_cast<double>((fault_rng_ * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

bool MockServer::FailBatchItem(const httplib::Response& res) {
  if (!res.has_header(kPartialHeader)) return false;
  const double rate = std::stod(res.get_header_value(kPartialHeader));
  std::lock_guard<std::mutex> lock(faults_mu_);
  return DrawLocked() < rate;
}

bool MockServer::WriteLost(const httplib::Response& res) { return res.has_header(kLostHeader); }

nlohmann::json FaultRule::ToJson() const {
  return {{"method", method},         {"path", path},
          {"status", status},         {"rate", rate},
          {"times", times},           {"latency_ms", latency_ms},
          {"retry_after_s", retry_after_s}, {"after_apply", after_apply}, {"drop", drop},
          {"partial", partial},       {"lost", lost},
          {"corrupt", corrupt}};
}

Result<FaultRule> FaultRule::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status(StatusCode::kInvalidArgument, "a fault rule must be an object");
  FaultRule r;
  try {
    r.method = j.value("method", "");
    r.path = j.value("path", "");
    r.status = j.value("status", 0);
    r.rate = j.value("rate", 1.0);
    r.times = j.value("times", -1);
    r.latency_ms = j.value("latency_ms", 0);
    r.retry_after_s = j.value("retry_after_s", -1);
    r.after_apply = j.value("after_apply", false);
    r.drop = j.value("drop", false);
    r.partial = j.value("partial", 0.0);
    r.lost = j.value("lost", false);
    r.corrupt = j.value("corrupt", "");
  } catch (const nlohmann::json::exception& e) {
    return Status(StatusCode::kInvalidArgument, std::string("bad fault rule: ") + e.what());
  }
  if (r.rate < 0 || r.rate > 1) return Status(StatusCode::kInvalidArgument, "rate must be within 0..1");
  if (r.partial < 0 || r.partial > 1)
    return Status(StatusCode::kInvalidArgument, "partial must be within 0..1");
  if (r.status != 0 && (r.status < 100 || r.status > 599))
    return Status(StatusCode::kInvalidArgument, "status must be an HTTP status");
  if (!r.corrupt.empty() &&
      std::find(std::begin(kCorruptions), std::end(kCorruptions), r.corrupt) == std::end(kCorruptions))
    return Status(StatusCode::kInvalidArgument,
                  "corrupt must be one of truncate, html, huge, types, ids, text, loop, backwards, "
                  "deep, twice");
  return r;
}

Result<FaultRule> FaultRule::Parse(const std::string& spec) {
  FaultRule r;
  std::istringstream words(spec);
  std::string w;
  int position = 0;
  while (words >> w) {
    const auto eq = w.find('=');
    if (eq == std::string::npos) {
      if (w == "applied") {
        r.after_apply = true;
      } else if (w == "drop") {
        r.drop = true;
      } else if (w == "lost") {
        r.lost = true;
      } else if (position == 0 && w.find('/') == std::string::npos) {
        r.method = w == "*" ? "" : w;
      } else if (w[0] == '/' || w == "*") {
        r.path = w == "*" ? "" : w;
      } else {
        return Status(StatusCode::kInvalidArgument, "fault \"" + spec + "\": unexpected '" + w + "'");
      }
      ++position;
      continue;
    }
    const std::string key = w.substr(0, eq), value = w.substr(eq + 1);
    try {
      if (key == "status") r.status = std::stoi(value);
      else if (key == "rate") r.rate = std::stod(value);
      else if (key == "times") r.times = std::stoi(value);
      else if (key == "latency") r.latency_ms = std::stoi(value);
      else if (key == "retry_after") r.retry_after_s = std::stoi(value);
      else if (key == "partial") r.partial = std::stod(value);
      else if (key == "corrupt") r.corrupt = value;
      else
        return Status(StatusCode::kInvalidArgument,
                      "fault \"" + spec + "\": unknown key '" + key +
                          "' (status, rate, times, latency, retry_after, partial, corrupt)");
    } catch (const std::exception&) {
      return Status(StatusCode::kInvalidArgument, "fault \"" + spec + "\": bad value in '" + w + "'");
    }
    ++position;
  }
  return FromJson(r.ToJson());
}

}  // namespace crmbridge::mocks
