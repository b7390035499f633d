// Bootstrap: from a loaded AppConfig to what a SyncEngine is built from (the command line opens
// the state store and builds the engine).
//
// Loads the mapping files and validates them against the systems the config declares, then builds,
// per system, the HTTP stack every connector shares (cpprest -> redacting log -> rate limiter ->
// retries) and the connector itself through the registry. Nothing here performs I/O beyond reading
// the mapping files; connections are made on first use.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "connectors/connector.h"
#include "mappings/mapping.h"
#include "src/config/app_config.h"
#include "src/core/clock.h"
#include "src/core/rate_limiter.h"
#include "src/core/transport.h"
#include "src/engine/sync_engine.h"
#include "state/store.h"

namespace crmbridge {

// Makes the budget `name` ("rest", or "search" for HubSpot's search) of a system, limited as
// `limit` says (limit.requests > 0). Where it is not given, each system keeps a TokenBucket of its
// own; a worker gives one that shares the budget with the other tenants on the same vendor account
// (state/rate_budgets.h).
using RateBudgetFactory = std::function<std::shared_ptr<RateBudget>(
    const SystemConfig& system, const std::string& name, const RateLimitConfig& limit)>;

// The HTTP stack for one system: real network, redacting debug log, the system's client-side
// rate limits, and retries with backoff that honour Retry-After, waiting at most
// `max_total_wait` per request (0: no bound; RetryPolicy::max_total_wait). `observer`, when
// given, sees every attempt (metrics).
std::shared_ptr<Transport> BuildSystemTransport(const SystemConfig& system, Clock* clock,
                                                ExchangeObserver observer = nullptr,
                                                const RateBudgetFactory& budgets = nullptr,
                                                std::chrono::milliseconds max_total_wait = {});

// The systems the mapping loader checks a mapping against: `kinds` (system name -> kind), and what
// every kind in the connector registry can do.
MappingSystems MappingSystemsOf(const std::map<std::string, std::string>& kinds);

// Every system's `auth` keys and options checked against what its kind declares, all reported at
// once at their file:line:column.
Status CheckSystemKeysOf(const AppConfig& config);

// CheckSystemKeysOf, then each system's own checks (ValidateSystemConfig: an option out of its
// range, a required one missing, two that exclude each other), with credentials and URLs whose
// variables are unset taken as given: what `mappings validate` reports without the secrets.
Status CheckSystemsWithoutSecrets(const AppConfig& config);

// The options of `config`'s systems that name a field the mappings write (ParamSpec::
// suffix_is_written_field), checked against `plan`: each at its key, with the nearest field.
Status CheckOptionsAgainstPlan(const AppConfig& config, const MappingPlan& plan);

// Loads the mapping files named by `config`, validated against its systems and its options
// (CheckOptionsAgainstPlan).
Result<std::shared_ptr<const MappingPlan>> LoadPlanFor(const AppConfig& config);

// One connector per system named in `plan`, each over its own transport stack.
Result<std::map<std::string, std::unique_ptr<Connector>>> BuildConnectors(
    const AppConfig& config, const MappingPlan& plan, Clock* clock,
    const ExchangeObserver& observer = nullptr, const RateBudgetFactory& budgets = nullptr);

}  // namespace crmbridge
