#include "connectors/registry.h"

#include <functional>
#include <map>

#include "connectors/dynamics365/dynamics365_connector.h"
#include "connectors/hubspot/hubspot_connector.h"

namespace crmbridge {

namespace {

using Factory = std::function<std::unique_ptr<Connector>(const SystemConfig&,
                                                         std::shared_ptr<Transport>, Clock*)>;

// Every connector kind, in one explicit list.
const std::map<std::string, Factory>& Factories() {
  static const std::map<std::string, Factory> kFactories = {
      {"hubspot",
       [](const SystemConfig& c, std::shared_ptr<Transport> t, Clock* clock) {
         return std::unique_ptr<Connector>(new HubSpotConnector(c, std::move(t), clock));
       }},
      {"dynamics365",
       [](const SystemConfig& c, std::shared_ptr<Transport> t, Clock* clock) {
         return std::unique_ptr<Connector>(new Dynamics365Connector(c, std::move(t), clock));
       }},
  };
  return kFactories;
}

}  // namespace

Status ValidateSystemConfig(const SystemConfig& config) {
  if (!Factories().count(config.kind))
    return Status(StatusCode::kFailedPrecondition,
                  config.pos.ToString() + ": system '" + config.name + "' is of kind '" +
                      config.kind + "', which this crmbridge has no connector for yet");
  if (config.base_url.empty())
    return Status(StatusCode::kFailedPrecondition, "system '" + config.name + "' has no base_url");
  return Status::Ok();
}

Result<std::unique_ptr<Connector>> NewConnector(const SystemConfig& config,
                                                std::shared_ptr<Transport> transport,
                                                Clock* clock) {
  CRMB_RETURN_IF_ERROR(ValidateSystemConfig(config));
  return Factories().at(config.kind)(config, std::move(transport), clock);
}

}  // namespace crmbridge
