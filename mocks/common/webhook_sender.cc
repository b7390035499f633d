#include "mocks/common/webhook_sender.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include <httplib.h>

namespace crmbridge::mocks {

using nlohmann::json;

int64_t WebhookNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

WebhookSender::WebhookSender(WebhookVendor vendor)
    : vendor_(std::move(vendor)), thread_([this] { Loop(); }) {}

WebhookSender::~WebhookSender() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status WebhookSender::Subscribe(const json& request) {
  const std::string& field = vendor_.credential_field;
  if (!request.is_object() || !request.value("url", json()).is_string() ||
      request["url"].get<std::string>().rfind("http://", 0) != 0)
    return Status(StatusCode::kInvalidArgument,
                  "expected {\"url\": \"http://...\", \"" + field + "\": ...}");
  WebhookSubscription sub;
  sub.url = request["url"];
  if (const json c = request.value(field, json()); c.is_string()) sub.credential = c;
  const json faults = request.value("faults", json::array());
  if (!faults.is_array()) return Status(StatusCode::kInvalidArgument, "faults must be a list");
  for (const json& f : faults) {
    const std::string text = f.is_string() ? f.get<std::string>() : "";
    if (text == "duplicate") sub.duplicate = true;
    else if (text == "reorder") sub.reorder = true;
    else if (text == "late") sub.late = true;
    else if (text == vendor_.bad_credential_fault) sub.bad_credential = true;
    else if (text.rfind("drop=", 0) == 0) sub.drop = std::atof(text.c_str() + 5);
    else return Status(StatusCode::kInvalidArgument, "unknown webhook fault \"" + text + "\"");
  }
  const json retry = request.value("retry_ms", json(200));
  if (!retry.is_number_integer() || retry.get<int>() < 1)
    return Status(StatusCode::kInvalidArgument, "retry_ms must be a positive number");
  sub.retry_ms = retry.get<int>();
  std::lock_guard<std::mutex> lock(mu_);
  sub_ = sub;
  subscribed_ = true;
  return Status::Ok();
}

bool WebhookSender::subscribed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return subscribed_;
}

void WebhookSender::Enqueue(json event) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!subscribed_) return;
  queued_.push_back(std::move(event));
  ++events_;
  cv_.notify_all();
}

json WebhookSender::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {{"subscribed", subscribed_}, {"events", events_},     {"attempts", attempts_},
          {"delivered", delivered_},   {"retried", retried_},   {"given_up", given_up_},
          {"dropped", dropped_},       {"pending", queued_.size() + retries_.size()}};
}

void WebhookSender::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (stop_) break;
    // Events that came in together leave together: a short pause gathers a burst.
    std::vector<Batch> due;
    while (!queued_.empty()) {
      Batch b;
      const size_t n = std::min(queued_.size(), std::max<size_t>(vendor_.max_events, 1));
      b.events.assign(queued_.begin(), queued_.begin() + static_cast<long>(n));
      queued_.erase(queued_.begin(), queued_.begin() + static_cast<long>(n));
      due.push_back(std::move(b));
    }
    const int64_t now = WebhookNowMs();
    for (auto it = retries_.begin(); it != retries_.end();) {
      if (it->due_ms <= now) {
        due.push_back(std::move(*it));
        it = retries_.erase(it);
      } else {
        ++it;
      }
    }
    const WebhookSubscription sub = sub_;
    if (sub.reorder) std::reverse(due.begin(), due.end());
    for (Batch& b : due) {
      if (b.attempt == 0 && sub.drop > 0 &&
          std::uniform_real_distribution<double>(0, 1)(rng_) < sub.drop) {
        ++dropped_;
        continue;
      }
      if (b.attempt == 0 && sub.reorder) std::reverse(b.events.begin(), b.events.end());
      ++attempts_;
      lock.unlock();
      const int status = Deliver(b, sub);
      const bool ok = status >= 200 && status < 300;
      if (ok && b.attempt == 0 && sub.duplicate) Deliver(b, sub);
      lock.lock();
      if (ok) {
        ++delivered_;
      } else if (b.attempt + 1 >= vendor_.max_attempts || !vendor_.retried ||
                 !vendor_.retried(status)) {
        ++given_up_;
      } else {
        ++retried_;
        ++b.attempt;
        b.due_ms = WebhookNowMs() + (static_cast<int64_t>(sub.retry_ms) << std::min(b.attempt - 1, 16));
        retries_.push_back(std::move(b));
      }
    }
  }
}

int WebhookSender::Deliver(const Batch& batch, const WebhookSubscription& sub) {
  const OutgoingDelivery out = vendor_.render(batch.events, batch.attempt, sub);
  // http://host:port/path?query -> the client's "http://host:port" and the rest.
  const size_t path_at = out.target.find('/', 7);
  const std::string origin = path_at == std::string::npos ? out.target : out.target.substr(0, path_at);
  const std::string path = path_at == std::string::npos ? "/" : out.target.substr(path_at);
  httplib::Client client(origin);
  client.set_connection_timeout(2);
  client.set_read_timeout(vendor_.read_timeout_s);
  httplib::Headers headers(out.headers.begin(), out.headers.end());
  auto res = client.Post(path.c_str(), headers, out.body, "application/json");
  return res ? res->status : 0;
}

void ServeWebhookAdmin(httplib::Server& server, WebhookSender* sender) {
  server.Post("/__admin/webhooks", [sender](const httplib::Request& req, httplib::Response& res) {
    Status st = sender->Subscribe(json::parse(req.body, nullptr, /*allow_exceptions=*/false));
    res.status = st.ok() ? 204 : 400;
    if (!st.ok()) res.set_content(json{{"error", st.message()}}.dump(), "application/json");
  });
  server.Get("/__admin/webhooks", [sender](const httplib::Request&, httplib::Response& res) {
    res.set_content(sender->Stats().dump(), "application/json");
  });
}

}  // namespace crmbridge::mocks
