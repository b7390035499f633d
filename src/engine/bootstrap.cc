#include "src/engine/bootstrap.h"

#include <set>

#include "connectors/registry.h"
#include "src/core/cpprest_transport.h"
#include "src/core/did_you_mean.h"
#include "src/core/logging.h"
#include "src/core/rate_limiter.h"
#include "src/core/retrying_transport.h"

namespace crmbridge {

namespace {

std::shared_ptr<RateBudget> BudgetFor(const SystemConfig& system, const std::string& name,
                                      const RateLimitConfig& limit, Clock* clock,
                                      const RateBudgetFactory& budgets) {
  if (limit.requests <= 0) return nullptr;
  if (budgets) return budgets(system, name, limit);
  return std::make_shared<TokenBucket>(limit.requests, limit.per, clock);
}

}  // namespace

std::shared_ptr<Transport> BuildSystemTransport(const SystemConfig& system, Clock* clock,
                                                ExchangeObserver observer,
                                                const RateBudgetFactory& budgets,
                                                std::chrono::milliseconds max_total_wait) {
  CpprestOptions http;
  std::unique_ptr<Transport> t = NewCpprestTransport(http);
  if (observer) t = std::make_unique<ObservedTransport>(std::move(t), std::move(observer));
  t = std::make_unique<RedactingLogTransport>(std::move(t), clock);
  // The limiter sits below the retries, so every retry also waits for a token: a burst of
  // retries can never exceed the budget the vendor enforces.
  std::vector<RateLimitedTransport::Route> routes;
  // Paths the system does not count against its REST limit get no bucket.
  if (const Capabilities* capabilities = CapabilitiesOfKind(system.kind))
    for (const std::string& path : capabilities->rate_limit_exempt_paths)
      routes.push_back(RateLimitedTransport::PathContains(path, nullptr));
  if (auto search = BudgetFor(system, "search", system.search_rate_limit, clock, budgets))
    if (const Capabilities* capabilities = CapabilitiesOfKind(system.kind))
      for (const std::string& path : capabilities->search_paths)
        routes.push_back(RateLimitedTransport::PathContains(path, search));
  t = std::make_unique<RateLimitedTransport>(
      std::move(t), BudgetFor(system, "rest", system.rate_limit, clock, budgets), std::move(routes),
      clock);
  RetryPolicy policy;
  policy.max_attempts = system.max_attempts;
  policy.classify = HttpClassifierOfKind(system.kind);
  policy.max_total_wait = max_total_wait;
  t = std::make_unique<RetryingTransport>(std::move(t), policy, clock);
  return std::shared_ptr<Transport>(std::move(t));
}

MappingSystems MappingSystemsOf(const std::map<std::string, std::string>& kinds) {
  MappingSystems out;
  out.systems = kinds;
  for (const std::string& kind : ConnectorKinds()) {
    const Capabilities& can = *CapabilitiesOfKind(kind);
    SystemTraits traits;
    traits.kind = kind;
    traits.carries_references = can.carries_references;
    traits.reference_fields = can.reference_fields;
    traits.required_params = can.required_params;
    traits.binds_lookups = can.binds_lookups;
    traits.references_name_objects = can.references_name_objects;
    traits.provisions_portal_access = can.provisions_portal_access;
    traits.objects = can.objects;
    traits.other_objects = can.other_objects;
    traits.plain_field_names = can.plain_field_names;
    traits.written_only = can.written_only;
    for (const ParamSpec& p : can.params) {
      SystemTraits::Param param(p.name, p.type, p.objects, p.values);
      param.default_value = p.default_value;
      param.value_is_own_field = p.value_is_own_field;
      param.own_field_when_given = p.own_field_when_given;
      traits.params.push_back(std::move(param));
    }
    out.kinds.push_back(std::move(traits));
  }
  return out;
}

Status CheckSystemKeysOf(const AppConfig& config) {
  Diagnostics diags;
  for (const auto& [name, system] : config.systems) CheckSystemKeys(system, &diags);
  return diags.ToStatus();
}

Status CheckSystemsWithoutSecrets(const AppConfig& config) {
  CRMB_RETURN_IF_ERROR(CheckSystemKeysOf(config));
  std::vector<std::string> problems;
  for (const auto& [name, loaded] : config.systems) {
    // What an unset variable left empty is taken as given: a missing credential is a warning
    // here, and said where the configuration was loaded.
    SystemConfig system = loaded;
    for (const auto& [path, pos] : system.key_pos) {
      if (path.rfind("auth.", 0) != 0) continue;
      const std::string key = path.substr(5);
      const bool url = key.size() > 4 && key.compare(key.size() - 4, 4, "_url") == 0;
      std::string& value = system.auth[key];
      if (value.empty()) value = url ? "https://unset.invalid" : "unset";
    }
    if (system.base_url.empty()) system.base_url = "https://unset.invalid";
    if (Status s = ValidateSystemConfig(system); !s.ok()) problems.push_back(s.message());
  }
  if (problems.empty()) return Status::Ok();
  std::string text;
  for (const std::string& p : problems) text += (text.empty() ? "" : "\n") + p;
  return Status(StatusCode::kFailedPrecondition, text);
}

Status CheckOptionsAgainstPlan(const AppConfig& config, const MappingPlan& plan) {
  Diagnostics diags;
  for (const auto& [name, system] : config.systems) {
    const Capabilities* can = CapabilitiesOfKind(system.kind);
    if (can == nullptr) continue;
    std::set<std::string> written;  // the native fields the mappings write to this system
    for (const SystemEntityMapping& m : plan.mappings())
      if (m.system == name)
        for (const FieldMap& f : m.fields)
          if (f.writes()) written.insert(f.native);
    for (const auto& [key, value] : system.options) {
      for (const ParamSpec& spec : can->options) {
        const std::string prefix = spec.name.substr(0, spec.name.size() - 1);  // "allowed."
        if (!spec.suffix_is_written_field || key.rfind(prefix, 0) != 0) continue;
        const std::string field = key.substr(prefix.size());
        if (written.count(field)) continue;
        auto at = system.key_pos.find("options." + key);
        diags.Error(at != system.key_pos.end() ? at->second : system.pos,
                    "option '" + key + "' of system '" + name + "' names " + field +
                        ", which no mapping writes to " + name,
                    written.empty() ? "no mapping writes to " + name : DidYouMean(field, written));
      }
    }
  }
  return diags.ToStatus();
}

Result<std::shared_ptr<const MappingPlan>> LoadPlanFor(const AppConfig& config) {
  std::map<std::string, std::string> kinds;
  for (const auto& [name, system] : config.systems) kinds[name] = system.kind;
  auto plan = LoadMappingPlan(config.mapping_paths, MappingSystemsOf(kinds));
  if (plan.ok()) CRMB_RETURN_IF_ERROR(CheckOptionsAgainstPlan(config, **plan));
  return plan;
}

Result<std::map<std::string, std::unique_ptr<Connector>>> BuildConnectors(
    const AppConfig& config, const MappingPlan& plan, Clock* clock,
    const ExchangeObserver& observer, const RateBudgetFactory& budgets) {
  std::map<std::string, std::unique_ptr<Connector>> out;
  for (const std::string& name : plan.systems()) {
    auto it = config.systems.find(name);
    if (it == config.systems.end()) {
      // The mapping loader already refuses unknown systems; this guards a caller that skipped it.
      return Status(StatusCode::kFailedPrecondition,
                    "the mapping names system '" + name + "', which " + config.path +
                        " does not declare");
    }
    CRMB_RETURN_IF_ERROR(ValidateSystemConfig(it->second));
    // Half the lease: the lease is renewed between calls, so no call outlasts it.
    auto connector = NewConnector(
        it->second,
        BuildSystemTransport(it->second, clock, observer, budgets, config.sync.lease_ttl / 2),
        clock);
    if (!connector.ok()) return connector.status();
    out.emplace(name, std::move(*connector));
  }
  return out;
}

}  // namespace crmbridge
