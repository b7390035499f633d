// The connector registry: one explicit list of kind -> factory (no static self-registration,
// which static libraries silently drop).
#pragma once

#include <memory>

#include "connectors/connector.h"
#include "src/config/app_config.h"
#include "src/core/clock.h"
#include "src/core/transport.h"

namespace crmbridge {

// Builds the connector for `config.kind` over `transport`. kFailedPrecondition for an unknown kind.
Result<std::unique_ptr<Connector>> NewConnector(const SystemConfig& config,
                                                std::shared_ptr<Transport> transport, Clock* clock);

// Checks a system's configuration for its kind, without I/O (Kafka Connect's validate()).
Status ValidateSystemConfig(const SystemConfig& config);

}  // namespace crmbridge
