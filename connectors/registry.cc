#include "connectors/registry.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "connectors/dynamics365/dynamics365_connector.h"
#include "connectors/dynamics365/dynamics365_webhook.h"
#include "connectors/hubspot/hubspot_connector.h"
#include "connectors/hubspot/hubspot_errors.h"
#include "connectors/hubspot/hubspot_webhook.h"
#include "connectors/portal/portal_connector.h"
#include "connectors/totango/totango_connector.h"
#include "src/core/did_you_mean.h"
#include "src/core/hash.h"
#include "src/core/param_value.h"

namespace crmbridge {

namespace {

struct Kind {
  std::string name;
  const Capabilities& (*capabilities)();
  Status (*validate)(const SystemConfig&);
  std::unique_ptr<Connector> (*make)(const SystemConfig&, std::shared_ptr<Transport>, Clock*);
  // The kind's reading of its HTTP errors; nullptr when the statuses say it all.
  std::optional<HttpReading> (*classify_http)(const Response&) = nullptr;
  // Reads the kind's webhook deliveries; nullptr when crmbridge takes none from it.
  WebhookReceipt (*receive_webhook)(const SystemConfig&, const WebhookRequest&) = nullptr;
};

// Every connector kind, in one explicit list.
const std::vector<Kind>& Kinds() {
  static const std::vector<Kind> kKinds = {
      {"hubspot", &HubSpotConnector::KindCapabilities, &HubSpotConnector::ValidateConfig,
       [](const SystemConfig& c, std::shared_ptr<Transport> t, Clock* clock) {
         return std::unique_ptr<Connector>(new HubSpotConnector(c, std::move(t), clock));
       },
       &hubspot::ClassifyHubSpotHttp, &hubspot::ReceiveWebhook},
      {"dynamics365", &Dynamics365Connector::KindCapabilities, &Dynamics365Connector::ValidateConfig,
       [](const SystemConfig& c, std::shared_ptr<Transport> t, Clock* clock) {
         return std::unique_ptr<Connector>(new Dynamics365Connector(c, std::move(t), clock));
       },
       nullptr, &dynamics365::ReceiveWebhook},
      {"portal", &PortalConnector::KindCapabilities, &PortalConnector::ValidateConfig,
       [](const SystemConfig& c, std::shared_ptr<Transport> t, Clock* clock) {
         return std::unique_ptr<Connector>(new PortalConnector(c, std::move(t), clock));
       }},
      {"totango", &TotangoConnector::KindCapabilities, &TotangoConnector::ValidateConfig,
       [](const SystemConfig& c, std::shared_ptr<Transport> t, Clock* clock) {
         return std::unique_ptr<Connector>(new TotangoConnector(c, std::move(t), clock));
       }},
  };
  return kKinds;
}

// "file:line:col: " where the system was declared, or "" for a config built in code.
std::string Where(const SystemConfig& config) {
  const std::string pos = config.pos.ToString();
  return pos.empty() ? "" : pos + ": ";
}

const Kind* FindKind(const std::string& name) {
  for (const Kind& k : Kinds())
    if (k.name == name) return &k;
  return nullptr;
}

}  // namespace

void CheckSystemKeys(const SystemConfig& config, Diagnostics* diags) {
  const Kind* kind = FindKind(config.kind);
  if (!kind) return;  // the loader refuses an unknown kind at its own position
  const Capabilities& can = kind->capabilities();
  const std::set<std::string> auth_keys(can.auth_keys.begin(), can.auth_keys.end());
  std::set<std::string> options;
  for (const ParamSpec& o : can.options) options.insert(o.name);
  // The option's declaration: "allowed.*" stands for every "allowed.<name>".
  const auto option_spec = [&](const std::string& key) -> const ParamSpec* {
    for (const ParamSpec& o : can.options)
      if (o.name == key) return &o;
    for (const ParamSpec& o : can.options)
      if (o.name.size() > 2 && o.name.compare(o.name.size() - 2, 2, ".*") == 0 &&
          key.rfind(o.name.substr(0, o.name.size() - 1), 0) == 0)
        return &o;
    return nullptr;
  };
  // The keys as written (a value that did not resolve still has its key), else as built in code.
  std::map<std::string, SourcePos> keys = config.key_pos;
  if (keys.empty()) {
    for (const auto& [key, value] : config.auth) keys["auth." + key] = config.pos;
    for (const auto& [key, value] : config.options) keys["options." + key] = config.pos;
    if (config.search_rate_limit.requests > 0) keys["search_rate_limit"] = config.pos;
  }
  for (const auto& [path, pos] : keys) {
    const SourcePos& where = pos.line > 0 ? pos : config.pos;
    if (path.rfind("auth.", 0) == 0) {
      const std::string key = path.substr(5);
      if (!auth_keys.count(key))
        diags->Error(where, "unknown auth key '" + key + "' for " + config.kind + " system '" +
                                config.name + "'",
                     DidYouMean(key, auth_keys));
    } else if (path.rfind("options.", 0) == 0) {
      const std::string key = path.substr(8);
      const ParamSpec* spec = option_spec(key);
      const auto value = config.options.find(key);
      if (spec == nullptr) {
        diags->Error(where, "unknown option '" + key + "' for " + config.kind + " system '" +
                                config.name + "'",
                     options.empty() ? config.kind + " takes no options" : DidYouMean(key, options));
      } else if (value != config.options.end() && !value->second.empty()) {
        // Its value, as the kind declares it (a value that did not resolve is not there).
        if (std::string problem = ParamValueProblem(spec->type, spec->values, value->second);
            !problem.empty())
          diags->Error(where, "option '" + key + "' of " + config.kind + " system '" +
                                  config.name + "' " + problem);
      }
    } else if (path == "search_rate_limit" && can.search_paths.empty()) {
      diags->Error(where, config.kind + " system '" + config.name + "' makes no search requests: "
                              "its search_rate_limit would have no effect",
                   "remove it; rate_limit is the budget of all its requests");
    }
  }
}

Status ValidateSystemConfig(const SystemConfig& config) {
  const Kind* kind = FindKind(config.kind);
  if (!kind) {
    std::string known;
    for (const Kind& k : Kinds()) known += (known.empty() ? "" : ", ") + k.name;
    return Status(StatusCode::kFailedPrecondition,
                  Where(config) + "system '" + config.name + "' is of kind '" + config.kind +
                      "', which this crmbridge has no connector for (known: " + known + ")");
  }
  Diagnostics diags;
  CheckSystemKeys(config, &diags);
  if (!diags.empty()) return Status(StatusCode::kFailedPrecondition, diags.ToString());
  Status s = kind->validate(config);
  if (s.ok()) return s;
  // At the key the complaint names ("options.batch_size must be 1..1000"), as written, where it
  // names one; else at the system.
  SourcePos where = config.pos;
  size_t named = 0;
  for (const auto& [path, pos] : config.key_pos)
    if (pos.line > 0 && path.size() > named && s.message().find(path) != std::string::npos) {
      where = pos;
      named = path.size();
    }
  const std::string at = where.ToString();
  // In the diagnostics' form (file:line:column: error: ...), which editors and scripts read.
  return Status(s.code(), (at.empty() ? "" : at + ": error: ") + "system '" + config.name +
                              "': " + s.message());
}

std::vector<std::string> ConnectorKinds() {
  std::vector<std::string> names;
  for (const Kind& k : Kinds()) names.push_back(k.name);
  return names;
}

const Capabilities* CapabilitiesOfKind(const std::string& kind) {
  const Kind* k = FindKind(kind);
  return k ? &k->capabilities() : nullptr;
}

std::string AccountOf(const SystemConfig& config) {
  // Each part is length-prefixed, so no two different lists of parts hash alike.
  std::string identity;
  auto add = [&identity](const std::string& part) {
    identity += std::to_string(part.size()) + ":" + part;
  };
  add(config.kind);
  std::string base = config.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  // Scheme and host are case-insensitive; the path is not, so only the part before it is folded.
  const size_t scheme = base.find("://");
  const size_t path = base.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  for (size_t i = 0; i < std::min(path, base.size()); ++i)
    base[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(base[i])));
  add(base);
  if (const Capabilities* can = CapabilitiesOfKind(config.kind)) {
    for (const std::string& key : can->account_keys) {
      auto it = config.auth.find(key);
      add(key);
      add(it == config.auth.end() ? std::string() : it->second);
    }
  }
  return config.kind + ":" + Sha256Hex(identity).substr(0, 24);
}

HttpClassifier HttpClassifierOfKind(const std::string& kind) {
  const Kind* k = FindKind(kind);
  if (k == nullptr || k->classify_http == nullptr) return nullptr;
  return k->classify_http;
}

WebhookReceiver WebhookReceiverOfKind(const std::string& kind) {
  const Kind* k = FindKind(kind);
  if (k == nullptr || k->receive_webhook == nullptr) return nullptr;
  return k->receive_webhook;
}

Result<std::unique_ptr<Connector>> NewConnector(const SystemConfig& config,
                                                std::shared_ptr<Transport> transport,
                                                Clock* clock) {
  CRMB_RETURN_IF_ERROR(ValidateSystemConfig(config));
  return FindKind(config.kind)->make(config, std::move(transport), clock);
}

}  // namespace crmbridge
