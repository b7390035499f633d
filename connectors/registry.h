// The connector registry: one explicit list of kind -> factory (no static self-registration,
// which static libraries silently drop).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "connectors/connector.h"
#include "connectors/webhook.h"
#include "src/config/app_config.h"
#include "src/core/clock.h"
#include "src/core/transport.h"

namespace crmbridge {

// Builds the connector for `config.kind` over `transport` (which the engine has already wrapped in
// retries, rate limits and logging). Validates `config` first: kFailedPrecondition for an unknown
// kind or a configuration the kind cannot work with. `clock` must outlive the connector.
Result<std::unique_ptr<Connector>> NewConnector(const SystemConfig& config,
                                                std::shared_ptr<Transport> transport, Clock* clock);

// Checks a system's configuration for its kind, without I/O (Kafka Connect's validate()):
// kFailedPrecondition naming the system and what is missing or malformed.
Status ValidateSystemConfig(const SystemConfig& config);

// Adds to `diags` every `auth` key and option of `config` its kind does not declare, each at the
// key as written with the nearest declared one as a hint. Nothing for an unknown kind (the
// configuration loader reports that). Part of ValidateSystemConfig; also run where a whole
// configuration is checked, so that every such key is reported at once.
void CheckSystemKeys(const SystemConfig& config, Diagnostics* diags);

// Every kind this crmbridge has a connector for, in the registry's order.
std::vector<std::string> ConnectorKinds();

// What connectors of `kind` can do, declared without building one; nullptr for an unknown kind.
const Capabilities* CapabilitiesOfKind(const std::string& kind);

// The vendor account whose rate limits `config`'s requests spend: "<kind>:" and 24 hex digits of
// a SHA-256 over the kind, the base URL and the kind's account_keys values. Equal for two systems
// that spend one account's limits; it tells nothing of the credentials (it may be stored and
// shown). Credentials referred to by different names but equal in value are one account.
std::string AccountOf(const SystemConfig& config);

// How `kind`'s API is to be read where it departs from HTTP (for the system's RetryingTransport);
// empty for a kind whose HTTP statuses say it all, or an unknown kind.
HttpClassifier HttpClassifierOfKind(const std::string& kind);

// Reads `kind`'s webhook deliveries (checks where they come from, names the records they announce);
// empty for a kind crmbridge takes no webhooks from, or an unknown kind.
WebhookReceiver WebhookReceiverOfKind(const std::string& kind);

}  // namespace crmbridge
