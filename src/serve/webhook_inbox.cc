#include "src/serve/webhook_inbox.h"

#include <charconv>
#include <chrono>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "connectors/registry.h"
#include "src/core/utf8.h"
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
  // HubSpot keeps at most 10 deliveries in flight per account; the rest is room for connections
  // that idle or send slowly, each of which holds a thread until it times out.
  server_->new_task_queue = [] { return new httplib::ThreadPool(32); };
  server_->set_keep_alive_timeout(2);
  server_->set_payload_max_length(kMaxWebhookBody);  // a longer body is answered 413
  // Before any body is read: the limit above holds only for a body of a declared length (a chunked
  // one would be read whole, however long), so a body without one is refused, as no vendor sends
  // it; one declared too long is refused (and logged) before it is read.
  server_->set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    const std::string coding = req.get_header_value("Transfer-Encoding");
    const std::string length = req.get_header_value("Content-Length");
    unsigned long long declared = 0;
    const auto parsed = std::from_chars(length.data(), length.data() + length.size(), declared);
    const bool too_long = !length.empty() && (parsed.ec != std::errc() ||
                                              parsed.ptr != length.data() + length.size() ||
                                              declared > kMaxWebhookBody);
    std::string refused;
    if (!coding.empty()) {
      res.status = 411;
      refused = "a body sent with Transfer-Encoding (" + PrintableText(coding.substr(0, 40)) +
                "), not a Content-Length";
    } else if (too_long) {
      res.status = 413;
      refused = "a body of " + PrintableText(length.substr(0, 20)) + " bytes, over the " +
                std::to_string(kMaxWebhookBody) + " taken";
    } else {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    spdlog::warn("webhook request {} {} refused ({}): {}", req.method,
                 PrintableText(req.path.substr(0, 80)), res.status, refused);
    res.set_header("Connection", "close");  // the body is left unread
    res.set_content(refused + "\n", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  });
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
