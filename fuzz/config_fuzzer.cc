// LoadAppConfig and LoadAppConfigWithoutSecrets (src/config/app_config.h): crmbridge.yaml as an
// operator writes it, with ${env:NAME} resolved from a fixed environment (the credentials of
// examples/crmbridge.yaml and the demo's URLs are set; every other name is not).
//
// A refusal is kInvalidArgument and each of its lines is "<file>:<line>:<column>: error: ...", as
// is each warning. A configuration taken has a state path, systems of known kinds with http(s)
// base URLs without a trailing slash, and no negative duration or count.
#include <map>
#include <optional>

#include "fuzz/fuzz_util.h"
#include "src/config/app_config.h"

namespace crmbridge::fuzz {
namespace {

std::optional<std::string> Env(const std::string& name) {
  static const std::map<std::string, std::string> kEnv = {
      {"HUBSPOT_TOKEN", "pat-fuzz-hubspot-0001"},
      {"D365_CLIENT_ID", "client-id"},
      {"D365_CLIENT_SECRET", "secret-fuzz-0002"},
      {"TOTANGO_TOKEN", "totango-fuzz-0003"},
      {"PORTAL_TOKEN", "portal-fuzz-0004"},
      {"CRMBRIDGE_STATE", "state.db"},
      {"DEMO_HUBSPOT_URL", "http://127.0.0.1:1"},
      {"DEMO_DYNAMICS365_URL", "http://127.0.0.1:2"},
      {"DEMO_TOTANGO_URL", "http://127.0.0.1:3"},
      {"DEMO_PORTAL_URL", "http://127.0.0.1:4/"}};
  auto it = kEnv.find(name);
  if (it == kEnv.end()) return std::nullopt;
  return it->second;
}

// `unset`: values naming an unset variable are left empty (LoadAppConfigWithoutSecrets).
void CheckConfig(const AppConfig& config, bool unset) {
  FUZZ_CHECK(unset || !config.state_path.empty(), "a configuration without a state path");
  for (const auto& [name, system] : config.systems) {
    FUZZ_CHECK(system.name == name, "system " + name + " is named " + system.name);
    FUZZ_CHECK(system.kind == "hubspot" || system.kind == "dynamics365" ||
                   system.kind == "totango" || system.kind == "portal",
               "system " + name + " of unknown kind '" + system.kind + "'");
    if (!unset || !system.base_url.empty()) {
      FUZZ_CHECK(system.base_url.rfind("http://", 0) == 0 ||
                     system.base_url.rfind("https://", 0) == 0,
                 "system " + name + " with base_url " + system.base_url);
      FUZZ_CHECK(system.base_url.back() != '/', "a trailing slash in " + system.base_url);
    }
    FUZZ_CHECK(system.timeout.count() >= 0, "a negative timeout");
    FUZZ_CHECK(system.max_attempts >= 1, "max_attempts below 1");
    FUZZ_CHECK(system.rate_limit.requests >= 0 && system.rate_limit.per.count() >= 0,
               "a negative rate limit");
    FUZZ_CHECK(system.search_rate_limit.requests >= 0 && system.search_rate_limit.per.count() >= 0,
               "a negative search rate limit");
  }
  FUZZ_CHECK(config.sync.lease_ttl.count() >= 0 && config.sync.retry_backoff.count() >= 0 &&
                 config.sync.retry_backoff_max.count() >= 0,
             "a negative sync duration");
  FUZZ_CHECK(config.sync.max_outbox_attempts >= 1 && config.sync.max_verify_attempts >= 1,
             "sync attempts below 1");
}

}  // namespace
}  // namespace crmbridge::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crmbridge;
  using namespace crmbridge::fuzz;
  static InputFile file("-crmbridge.yaml");
  const std::string& path = file.Write(Text(data, size));

  auto config = LoadAppConfig(path, Env);
  if (config.ok()) {
    CheckConfig(*config, /*unset=*/false);
  } else {
    FUZZ_CHECK(config.status().code() == StatusCode::kInvalidArgument, config.status().ToString());
    CheckDiagnostics(config.status().message(), path);
  }

  std::vector<std::string> warnings;
  auto checked = LoadAppConfigWithoutSecrets(path, &warnings, Env);
  if (checked.ok()) {
    CheckConfig(*checked, /*unset=*/!warnings.empty());
  } else {
    FUZZ_CHECK(checked.status().code() == StatusCode::kInvalidArgument, checked.status().ToString());
    CheckDiagnostics(checked.status().message(), path);
  }
  for (const std::string& warning : warnings) CheckDiagnostics(warning, path);
  // Every secret of the environment is set, so a file LoadAppConfig takes has nothing to warn of.
  if (config.ok()) FUZZ_CHECK(checked.ok() && warnings.empty(), "taken with secrets, not without");
  return 0;
}
