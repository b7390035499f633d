#include "mocks/hubspot/hubspot_webhook_sender.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>

#include <httplib.h>

#include "src/core/hash.h"

namespace crmbridge::mocks {
namespace {

using nlohmann::json;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr size_t kMaxEventsPerDelivery = 100;
constexpr int64_t kPortalId = 62515;

}  // namespace

HubSpotWebhookSender::HubSpotWebhookSender() : thread_([this] { Loop(); }) {}

HubSpotWebhookSender::~HubSpotWebhookSender() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status HubSpotWebhookSender::Subscribe(const json& request) {
  if (!request.is_object() || !request.value("url", json()).is_string() ||
      request["url"].get<std::string>().rfind("http://", 0) != 0)
    return Status(StatusCode::kInvalidArgument, "expected {\"url\": \"http://...\", \"secret\": ...}");
  WebhookSubscription sub;
  sub.url = request["url"];
  sub.secret = request.value("secret", "");
  const json faults = request.value("faults", json::array());
  if (!faults.is_array()) return Status(StatusCode::kInvalidArgument, "faults must be a list");
  for (const json& f : faults) {
    const std::string text = f.is_string() ? f.get<std::string>() : "";
    if (text == "duplicate") sub.duplicate = true;
    else if (text == "reorder") sub.reorder = true;
    else if (text == "late") sub.late = true;
    else if (text == "badsig") sub.badsig = true;
    else if (text.rfind("drop=", 0) == 0) sub.drop = std::atof(text.c_str() + 5);
    else return Status(StatusCode::kInvalidArgument, "unknown webhook fault \"" + text + "\"");
  }
  sub.retry_ms = request.value("retry_ms", 200);
  std::lock_guard<std::mutex> lock(mu_);
  sub_ = sub;
  subscribed_ = true;
  return Status::Ok();
}

bool HubSpotWebhookSender::subscribed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return subscribed_;
}

void HubSpotWebhookSender::Enqueue(const std::string& type, const std::string& change,
                                   int64_t object_id, int64_t occurred_ms,
                                   const std::string& property, const json& value) {
  static const std::map<std::string, std::string> kSubscribed = {
      {"tickets", "ticket"}, {"companies", "company"}, {"contacts", "contact"}, {"deals", "deal"}};
  auto it = kSubscribed.find(type);
  if (it == kSubscribed.end()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (!subscribed_) return;
  json e = {{"eventId", next_event_id_++},
            {"subscriptionId", 9000 + static_cast<int>(it->first.size())},
            {"portalId", kPortalId},
            {"appId", 4711},
            {"occurredAt", occurred_ms},
            {"subscriptionType", it->second + "." + change},
            {"attemptNumber", 0},
            {"objectId", object_id},
            {"changeSource", "CRM"}};
  if (change == "propertyChange") {
    e["propertyName"] = property;
    e["propertyValue"] = value.is_string() ? value.get<std::string>() : "";
  }
  queued_.push_back(std::move(e));
  ++events_;
  cv_.notify_all();
}

json HubSpotWebhookSender::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {{"subscribed", subscribed_}, {"events", events_},     {"attempts", attempts_},
          {"delivered", delivered_},   {"retried", retried_},   {"given_up", given_up_},
          {"dropped", dropped_},       {"pending", queued_.size() + retries_.size()}};
}

void HubSpotWebhookSender::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (stop_) break;
    // Events that came in together leave together: a short pause gathers a burst.
    std::vector<Batch> due;
    while (!queued_.empty()) {
      Batch b;
      const size_t n = std::min(queued_.size(), kMaxEventsPerDelivery);
      b.events.assign(queued_.begin(), queued_.begin() + static_cast<long>(n));
      queued_.erase(queued_.begin(), queued_.begin() + static_cast<long>(n));
      due.push_back(std::move(b));
    }
    const int64_t now = NowMs();
    for (auto it = retries_.begin(); it != retries_.end();) {
      if (it->due_ms <= now) {
        due.push_back(std::move(*it));
        it = retries_.erase(it);
      } else {
        ++it;
      }
    }
    const WebhookSubscription sub = sub_;
    for (Batch& b : due) {
      if (b.attempt == 0 && sub.drop > 0 &&
          std::uniform_real_distribution<double>(0, 1)(rng_) < sub.drop) {
        ++dropped_;
        continue;
      }
      if (b.attempt == 0 && sub.reorder) std::reverse(b.events.begin(), b.events.end());
      ++attempts_;
      lock.unlock();
      bool ok = Deliver(b, sub);
      if (ok && b.attempt == 0 && sub.duplicate) Deliver(b, sub);
      lock.lock();
      if (ok) {
        ++delivered_;
      } else if (b.attempt + 1 >= sub.max_attempts) {
        ++given_up_;
      } else {
        ++retried_;
        ++b.attempt;
        b.due_ms = NowMs() + (static_cast<int64_t>(sub.retry_ms) << std::min(b.attempt - 1, 16));
        retries_.push_back(std::move(b));
      }
    }
  }
}

bool HubSpotWebhookSender::Deliver(const Batch& batch, const WebhookSubscription& sub) {
  json body = json::array();
  for (json e : batch.events) {
    e["attemptNumber"] = batch.attempt;
    body.push_back(std::move(e));
  }
  const std::string text = body.dump();
  const bool first = batch.attempt == 0;
  const int64_t ts = NowMs() - (first && sub.late ? 6 * 60 * 1000 : 0);
  const std::string secret = first && sub.badsig ? sub.secret + "-not" : sub.secret;
  const std::string signature =
      HmacSha256Base64(secret, "POST" + sub.url + text + std::to_string(ts));
  // http://host:port/path -> the client's "http://host:port" and the path.
  const size_t path_at = sub.url.find('/', 7);
  const std::string origin = path_at == std::string::npos ? sub.url : sub.url.substr(0, path_at);
  const std::string path = path_at == std::string::npos ? "/" : sub.url.substr(path_at);
  httplib::Client client(origin);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);  // HubSpot waits 5 seconds for an answer
  httplib::Headers headers = {{"X-HubSpot-Signature-v3", signature},
                              {"X-HubSpot-Request-Timestamp", std::to_string(ts)},
                              {"X-HubSpot-Signature-Version", "v3"}};
  auto res = client.Post(path.c_str(), headers, text, "application/json");
  return res && res->status >= 200 && res->status < 300;
}

}  // namespace crmbridge::mocks
