#include "src/serve/webhook_inbox.h"

#include <chrono>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "connectors/registry.h"
#include "src/serve/health_server.h"
#include "src/serve/status_page.h"

namespace crmbridge {

WebhookInbox::WebhookInbox(const AppConfig* config, Store* store, Clock* clock, InboxOptions options,
                           Metrics* metrics, const MappingPlan* plan)
    : config_(config),
      store_(store),
      clock_(clock),
      options_(std::move(options)),
      metrics_(metrics),
      plan_(plan) {}

WebhookInbox::~WebhookInbox() { Stop(); }

Status WebhookInbox::Start() {
  server_ = std::make_unique<httplib::Server>();
  server_->set_tcp_nodelay(true);
  // HubSpot keeps at most 10 deliveries in flight per account.
  server_->new_task_queue = [] { return new httplib::ThreadPool(8); };
  server_->set_payload_max_length(kMaxWebhookBody);  // a longer body is answered 413
  Route();
  CRMB_RETURN_IF_ERROR(BindServer(server_.get(), options_.host, options_.port, &port_));
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return Status::Ok();
}

void WebhookInbox::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  Wake();
}

bool WebhookInbox::WaitForChanges(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return changed_ || woken_; });
  const bool changed = changed_;
  changed_ = false;
  woken_ = false;
  return changed;
}

void WebhookInbox::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void WebhookInbox::SetCredentialFailures(std::map<std::string, std::string> failures) {
  std::lock_guard<std::mutex> lock(mu_);
  credential_failures_ = std::move(failures);
}

void WebhookInbox::Route() {
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    auto version = store_->SchemaVersion();
    if (!version.ok()) {
      res.status = 503;
      res.set_content("the state store does not answer: " + version.status().ToString() + "\n",
                      "text/plain");
      return;
    }
    std::string refused;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [system, why] : credential_failures_)
        refused += system + " refused crmbridge's credentials: " + why + "\n";
    }
    if (!refused.empty()) {
      res.status = 503;
      res.set_content(refused, "text/plain");
      return;
    }
    res.set_content("ready\n", "text/plain");
  });
  if (metrics_) {
    server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      // The store's gauges are read at each scrape; a store that does not answer leaves them as
      // they were and is itself what /readyz reports.
      if (Status s = metrics_->ReadStore(*store_); !s.ok())
        spdlog::warn("metrics: cannot read the state store: {}", s.ToString());
      res.set_content(metrics_->Text(), "text/plain; version=0.0.4; charset=utf-8");
    });
  }
  if (plan_) {
    auto live = [this]() -> Result<std::string> {
      StatusFacts facts;
      facts.now_ms = clock_->NowMillis();
      {
        std::lock_guard<std::mutex> lock(mu_);
        facts.last_webhook_ms = last_webhook_ms_;
        facts.last_webhook_system = last_webhook_system_;
      }
      return RenderLiveStatus(*store_, *plan_, facts);
    };
    auto unavailable = [](httplib::Response& res, const Status& why) {
      res.status = 503;
      res.set_content("the state store cannot be read: " + why.ToString() + "\n", "text/plain");
    };
    server_->Get("/", [live, unavailable](const httplib::Request&, httplib::Response& res) {
      auto html = live();
      if (!html.ok()) return unavailable(res, html.status());
      res.set_content(RenderStatusPage(*html, kStatusRefreshMs), "text/html; charset=utf-8");
    });
    server_->Get("/status/live", [live, unavailable](const httplib::Request&, httplib::Response& res) {
      auto html = live();
      if (!html.ok()) return unavailable(res, html.status());
      res.set_content(*html, "text/html; charset=utf-8");
    });
  }
  // A body over the limit is answered 413 by the server before any route sees it.
  server_->set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    const std::string prefix = "/webhooks/";
    if (res.status == 413 && metrics_ && req.path.rfind(prefix, 0) == 0)
      metrics_->AddWebhookEvents(req.path.substr(prefix.size()), WebhookOutcome::kTooLarge, 1);
  });
  server_->Post(R"(/webhooks/([A-Za-z0-9_.-]+))", [this](const httplib::Request& req,
                                                          httplib::Response& res) {
    const std::string system = req.matches[1];
    auto answer = [&](int status, const std::string& text) {
      res.status = status;
      res.set_content(text + "\n", "text/plain");
      if (status != 200) {
        ++refused_;
        spdlog::warn("webhook for {} refused ({}): {}", system, status, text);
      }
    };
    auto it = config_->systems.find(system);
    WebhookReceiver receive = it == config_->systems.end() ? nullptr : WebhookReceiverOfKind(it->second.kind);
    if (!receive) return answer(404, "no system named " + system + " takes webhooks here");
    WebhookRequest request;
    request.method = req.method;
    const std::string base = !options_.public_url.empty()
                                 ? options_.public_url
                                 : "http://" + req.get_header_value("Host");
    request.url = base + req.target;
    for (const auto& [name, value] : req.headers) {
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      request.headers[lower] = value;
    }
    request.body = req.body;
    request.now_ms = clock_->NowMillis();
    const WebhookReceipt receipt = receive(it->second, request);
    if (receipt.http_status != 200) {
      if (metrics_)
        metrics_->AddWebhookEvents(system,
                                   receipt.http_status == 401 ? WebhookOutcome::kRefused
                                                              : WebhookOutcome::kMalformed,
                                   1);
      return answer(receipt.http_status, receipt.error);
    }

    std::vector<WebhookEvent> events;
    for (const AnnouncedChange& c : receipt.changes) {
      WebhookEvent e;
      e.system = system;
      e.object = c.object;
      e.record_id = c.record_id;
      e.kind = c.kind;
      e.dedupe_key = c.dedupe_key;
      e.occurred_ms = c.occurred_ms;
      e.received_ms = request.now_ms;
      events.push_back(std::move(e));
    }
    int added = 0;
    if (!events.empty()) {
      auto stored = store_->AddWebhookEvents(events);
      if (!stored.ok()) {
        spdlog::error("webhook for {}: its changes could not be stored: {}", system,
                      stored.status().ToString());
        return answer(503, "the changes could not be stored; deliver again later");
      }
      added = *stored;
    }
    ++accepted_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_webhook_ms_ = request.now_ms;
      last_webhook_system_ = system;
    }
    if (metrics_) {
      const int64_t announced = static_cast<int64_t>(receipt.changes.size());
      metrics_->AddWebhookEvents(system, WebhookOutcome::kAccepted, added);
      metrics_->AddWebhookEvents(system, WebhookOutcome::kDuplicate, announced - added);
      metrics_->AddWebhookEvents(system, WebhookOutcome::kIgnored, receipt.ignored);
    }
    spdlog::info("webhook for {}: {} change(s) announced, {} new, {} event(s) ignored", system,
                 receipt.changes.size(), added, receipt.ignored);
    if (added > 0) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        changed_ = true;
      }
      cv_.notify_all();
    }
    res.status = 200;
    res.set_content("{\"accepted\":" + std::to_string(receipt.changes.size()) + "}",
                    "application/json");
  });
}

}  // namespace crmbridge
