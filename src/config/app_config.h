// AppConfig: crmbridge.yaml compiled into an immutable value.
//
// crmbridge.yaml names the systems (kind, base URL, credentials, rate limits, timeouts), the
// mapping files and the state store path. Credentials are never written in the file itself: they
// are `${env:NAME}` references resolved at load time, and every resolved secret is registered with
// the log Redactor before anything can log it. Relative paths are resolved against the directory
// of the config file.
//
// LoadAppConfig reports every problem it finds, not only the first, each as
// "file:line:column: message" (1-based), with a hint where one helps.
//
// AppConfig is a plain value; share it read-only between threads.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "src/core/status.h"
#include "src/core/yaml_source.h"

namespace crmbridge {

struct RateLimitConfig {
  int requests = 0;                      // 0 = unlimited
  std::chrono::milliseconds per{1000};   // window the budget refills over
};

struct SystemConfig {
  std::string name;       // key under `systems:` ("hubspot"); persisted in links: never rename
  std::string kind;       // "hubspot" | "dynamics365" | "totango" | "portal"
  std::string base_url;   // without trailing slash
  // Resolved credential values by key ("token", "client_id", "client_secret", "token_url",
  // "scope", "app_token", ...). Values are secrets: never log them.
  std::map<std::string, std::string> auth;
  RateLimitConfig rate_limit;
  // Optional second budget for search endpoints (HubSpot: 5 requests/second).
  RateLimitConfig search_rate_limit;
  std::chrono::milliseconds timeout{30000};
  int max_attempts = 6;   // per HTTP call, including the first
  // Free-form kind-specific options (`options:` map of strings), e.g. {"api_version": "v9.2"}.
  std::map<std::string, std::string> options;
  SourcePos pos;          // where the system was declared
  // Where each `auth` and `options` key is written ("auth.token", "options.service_id"), whether
  // or not its value resolved, and search_rate_limit: its kind's check of the names points at
  // the key itself.
  std::map<std::string, SourcePos> key_pos;
};

struct SyncConfig {
  std::chrono::milliseconds lease_ttl{10 * 60 * 1000};
  int max_outbox_attempts = 8;  // across runs, before a transient failure is dead-lettered
  // Writes a system acknowledged but did not apply (found on read-back) before dead-lettering.
  int max_verify_attempts = 3;
  // Backoff of a transiently failed write: doubling from retry_backoff up to retry_backoff_max,
  // with jitter. 0s retries within the same run (useful in tests against faulty mocks).
  std::chrono::milliseconds retry_backoff{30'000};
  std::chrono::milliseconds retry_backoff_max{3'600'000};
};

// When a worker runs this configuration as a tenant (`crmbridge worker`): a sync every `every`.
struct ScheduleConfig {
  std::chrono::milliseconds every{5 * 60 * 1000};
};

struct AppConfig {
  std::string path;                        // the config file as given
  // The state store: a SQLite file path, resolved against the config file's folder, or a
  // postgresql:// URL as written (its password, if any, from the environment and redacted).
  std::string state_path;
  std::vector<std::string> mapping_paths;  // resolved against the config file's directory
  std::map<std::string, SystemConfig> systems;  // by name
  SyncConfig sync;
  ScheduleConfig schedule;
};

// One key crmbridge.yaml takes, declared once. The loader accepts exactly these (and each kind's
// `auth` keys and `options`, which its connector declares); docs/OPERATIONS.md lists exactly
// these (tests/architecture checks both, and that the member each fills is read by code outside
// this loader: a setting nothing reads is not a setting).
struct ConfigKey {
  const char* section;  // "" (top level), "sync", "schedule", "system" (under systems.NAME) or "limit"
                        // (rate_limit and search_rate_limit)
  const char* key;      // "lease_ttl"
  const char* member;   // the member of AppConfig, SystemConfig, SyncConfig or RateLimitConfig
                        // the key fills ("lease_ttl"; "state_path" for `state`)
  const char* type;     // "path", "duration", "number", "string", "map", "list", "kind", "url"
  const char* doc;      // one line
};
const std::vector<ConfigKey>& ConfigKeys();
// The section's dotted name as a person writes it: "sync.lease_ttl", "systems.NAME.timeout",
// "rate_limit.per".
std::string ConfigKeyPath(const ConfigKey& key);

// Looks up an environment variable; injectable for tests. Returns nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnv();

// Loads and validates `path`. On failure returns kInvalidArgument (kNotFound if the file is
// missing) whose message lists every diagnostic, one "file:line:col: message" per line.
Result<AppConfig> LoadAppConfig(const std::string& path, const EnvLookup& env = ProcessEnv());

// The same for checking a configuration where its secrets are not at hand (`mappings validate` on
// an engineer's machine): an unset ${env:NAME} is a warning (in `warnings`, one
// "file:line:col: warning: ..." each) instead of an error, and the value that names it is left
// unset; everything else is checked as LoadAppConfig checks it. Never for running a sync.
Result<AppConfig> LoadAppConfigWithoutSecrets(const std::string& path,
                                              std::vector<std::string>* warnings,
                                              const EnvLookup& env = ProcessEnv());

// A tenant's configuration (`crmbridge tenants add`, `crmbridge worker`): the same keys, with a
// `schedule`, but no `state` (a tenant's state is the workers' PostgreSQL; the key is refused at
// its position) and state_path left empty. With `warnings`, its secrets need not be set, as in
// LoadAppConfigWithoutSecrets; with nullptr, they must be, as in LoadAppConfig.
Result<AppConfig> LoadTenantConfig(const std::string& path, std::vector<std::string>* warnings,
                                   const EnvLookup& env = ProcessEnv());

}  // namespace crmbridge
