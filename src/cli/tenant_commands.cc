// `crmbridge tenants ...` and `crmbridge worker`: many tenants' syncs on one PostgreSQL, run by
// any number of workers (state/tenant_registry.h, src/worker/tenant_worker.h).
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "src/cli/commands.h"
#include "src/cli/process.h"
#include "src/config/app_config.h"
#include "src/core/time_util.h"
#include "src/engine/bootstrap.h"
#include "src/serve/health_server.h"
#include "src/worker/tenant_worker.h"
#include "state/postgres_store.h"
#include "state/tenant_registry.h"

namespace crmbridge::cli {
namespace {

using nlohmann::json;

std::string Time(int64_t ms) { return ms <= 0 ? "-" : FormatIsoUtc(ms, false); }

std::string Duration(int64_t ms) {
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  return std::to_string(ms / 1000) + "s";
}

// The registry at --state (or $CRMBRIDGE_STATE_URL); nullptr with the exit code in *rc.
std::unique_ptr<TenantRegistry> OpenRegistry(const std::string& given, const char* command,
                                             std::string* url, int* rc) {
  *rc = ResolveStateUrl(given, command, url);
  if (*rc != kExitOk) return nullptr;
  auto registry = TenantRegistry::Open(*url);
  if (!registry.ok()) {
    std::cerr << command << ": cannot open the tenant registry: " << registry.status().ToString()
              << "\n";
    *rc = ExitCodeFor(registry.status());
    return nullptr;
  }
  return std::move(*registry);
}

// A tenant's state store, in its schema, read-only use (no fence).
Result<std::unique_ptr<Store>> OpenTenantStore(const std::string& url, const TenantRow& t) {
  PostgresStoreOptions options;
  options.schema = t.schema;
  return OpenPostgresStore(url, options);
}

}  // namespace

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
      return kExitUsage;
    case StatusCode::kFailedPrecondition:
    case StatusCode::kUnavailable:
    case StatusCode::kUnauthenticated:
    case StatusCode::kDeadlineExceeded:
      return kExitUnreachable;
    default:
      return kExitInternal;
  }
}

int ResolveStateUrl(const std::string& given, const char* command, std::string* url) {
  const char* env = std::getenv("CRMBRIDGE_STATE_URL");
  *url = !given.empty() ? given : env != nullptr ? env : "";
  if (url->empty()) {
    std::cerr << command
              << ": name the tenants' PostgreSQL with --state postgresql://USER@HOST/DB or in "
                 "CRMBRIDGE_STATE_URL\n";
    return kExitUsage;
  }
  if (!IsPostgresUrl(*url)) {
    std::cerr << command << ": tenants live in PostgreSQL: " << RedactPostgresUrl(*url)
              << " is not a postgresql:// URL\n";
    return kExitUsage;
  }
  if (!given.empty() && PostgresUrlHasPassword(given)) {
    std::cerr << command << ": --state holds a password, which every user of this machine can "
                 "read from the process list; put the URL in CRMBRIDGE_STATE_URL, or the password "
                 "in PGPASSWORD or ~/.pgpass\n";
    return kExitUsage;
  }
  return kExitOk;
}

bool ParseListen(const std::string& listen, std::string* host, int* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  const std::string digits = listen.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos)
    return false;
  const int p = std::stoi(digits);
  if (p > 65535) return false;
  *host = listen.substr(0, colon);
  *port = p;
  return true;
}

int RunTenantsAdd(const GlobalOptions& global, const TenantsOptions& options) {
  SetUpLogging(global);
  if (std::string why = TenantNameProblem(options.name); !why.empty()) {
    std::cerr << "crmbridge tenants add: \"" << options.name << "\": " << why << "\n";
    return kExitUsage;
  }
  // Checked here, where the person adding it sees the problems: without its secrets, which only
  // the workers need.
  std::vector<std::string> warnings;
  auto config = LoadTenantConfig(options.config_path, &warnings);
  if (!config.ok()) {
    std::cerr << "crmbridge tenants add: configuration error:\n" << config.status().message() << "\n";
    return kExitUsage;
  }
  if (Status keys = CheckSystemKeysOf(*config); !keys.ok()) {
    std::cerr << "crmbridge tenants add: configuration error:\n" << keys.message() << "\n";
    return kExitUsage;
  }
  if (auto plan = LoadPlanFor(*config); !plan.ok()) {
    std::cerr << "crmbridge tenants add: mapping error:\n" << plan.status().message() << "\n";
    return kExitUsage;
  }
  // Absolute, symlinks kept: a Kubernetes ConfigMap's file is a symlink into a folder that is
  // replaced whenever the ConfigMap changes, and workers must follow it.
  std::error_code ec;
  const std::string resolved = std::filesystem::absolute(options.config_path, ec).lexically_normal();
  if (ec) {
    std::cerr << "crmbridge tenants add: cannot make " << options.config_path
              << " an absolute path: " << ec.message() << "\n";
    return kExitUsage;
  }
  std::string url;
  int rc = kExitOk;
  auto registry = OpenRegistry(options.state_url, "crmbridge tenants add", &url, &rc);
  if (!registry) return rc;
  const int64_t every = config->schedule.every.count();
  Status added = registry->Add(options.name, resolved, every);
  if (!added.ok()) {
    std::cerr << "crmbridge tenants add: " << added.message() << "\n";
    return ExitCodeFor(added);
  }
  // Its state schema now, so that a worker's first claim finds it ready.
  TenantRow row;
  row.name = options.name;
  row.schema = SchemaOfTenant(options.name);
  if (auto store = OpenTenantStore(url, row); !store.ok()) {
    std::cerr << "crmbridge tenants add: tenant " << options.name
              << " is registered, but its state could not be made: " << store.status().ToString()
              << "\n";
    return kExitInternal;
  }
  for (const std::string& w : warnings) std::cerr << w << "\n";
  std::cout << "Tenant " << options.name << " added: " << resolved << ", every " << Duration(every)
            << ", state in schema " << row.schema << ". A worker runs it at once.\n";
  return kExitOk;
}

int RunTenantsList(const GlobalOptions& global, const TenantsOptions& options) {
  SetUpLogging(global);
  std::string url;
  int rc = kExitOk;
  auto registry = OpenRegistry(options.state_url, "crmbridge tenants list", &url, &rc);
  if (!registry) return rc;
  auto tenants = registry->List();
  if (!tenants.ok()) {
    std::cerr << "crmbridge tenants list: " << tenants.status().ToString() << "\n";
    return ExitCodeFor(tenants.status());
  }
  json out = json::array();
  for (const TenantRow& t : *tenants) {
    const bool held = t.lease_until_ms > t.now_ms;
    json j = {{"name", t.name},
              {"config", t.config_path},
              {"every", Duration(t.every_ms)},
              {"last_started", Time(t.last_started_ms)},
              {"last_finished", Time(t.last_finished_ms)},
              {"last_outcome", t.last_outcome},
              {"last_error", t.last_error},
              {"next_due", t.job.empty() ? Time(t.next_due_ms) : "now (backfill asked for)"},
              {"holder", held ? json(t.holder) : json(nullptr)},
              {"epoch", t.epoch},
              {"refused_commits", t.refused_commits}};
    auto backlog = registry->BacklogOf(t);
    if (backlog.ok() && backlog->has_value()) {
      j["outbox_pending"] = (*backlog)->outbox_pending;
      j["dead_letters"] = (*backlog)->dead_letters;
    } else {
      j["outbox_pending"] = nullptr;
      j["dead_letters"] = nullptr;
      j["state_error"] = backlog.ok() ? "its state has no tables yet" : backlog.status().ToString();
    }
    out.push_back(std::move(j));
  }
  if (options.json) {
    std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << std::endl;
    return kExitOk;
  }
  if (out.empty()) {
    std::cout << "No tenants yet: crmbridge tenants add NAME --config FILE\n";
    return kExitOk;
  }
  std::printf("%-20s %-6s %-20s %-14s %-20s %-28s %7s %5s\n", "TENANT", "EVERY", "LAST RUN",
              "OUTCOME", "NEXT DUE", "HOLDER", "OUTBOX", "DEAD");
  for (const json& j : out) {
    auto num = [](const json& v) { return v.is_null() ? std::string("?") : v.dump(); };
    std::printf("%-20s %-6s %-20s %-14s %-20s %-28s %7s %5s\n",
                j["name"].get<std::string>().c_str(), j["every"].get<std::string>().c_str(),
                j["last_finished"].get<std::string>().c_str(),
                j["last_outcome"].get<std::string>().empty()
                    ? "-"
                    : j["last_outcome"].get<std::string>().c_str(),
                j["next_due"].get<std::string>().c_str(),
                j["holder"].is_null() ? "-" : j["holder"].get<std::string>().c_str(),
                num(j["outbox_pending"]).c_str(), num(j["dead_letters"]).c_str());
    const std::string error = j["last_error"];
    if (!error.empty()) std::printf("    last error: %s\n", error.c_str());
  }
  return kExitOk;
}

int RunTenantsRemove(const GlobalOptions& global, const TenantsOptions& options) {
  SetUpLogging(global);
  std::string url;
  int rc = kExitOk;
  auto registry = OpenRegistry(options.state_url, "crmbridge tenants remove", &url, &rc);
  if (!registry) return rc;
  Status s = registry->Remove(options.name, options.drop_state);
  if (!s.ok()) {
    std::cerr << "crmbridge tenants remove: " << s.message() << "\n";
    return ExitCodeFor(s);
  }
  std::cout << "Tenant " << options.name << " removed"
            << (options.drop_state ? ", and its state with it.\n"
                                   : "; its state stays in schema " +
                                         SchemaOfTenant(options.name) +
                                         " (adding it again goes on from there).\n");
  return kExitOk;
}

int RunTenantsMigrate(const GlobalOptions& global, const TenantsOptions& options) {
  SetUpLogging(global);
  std::string url;
  int rc = kExitOk;
  auto registry = OpenRegistry(options.state_url, "crmbridge tenants migrate", &url, &rc);
  if (!registry) return rc;
  auto tenants = registry->List();
  if (!tenants.ok()) {
    std::cerr << "crmbridge tenants migrate: " << tenants.status().ToString() << "\n";
    return ExitCodeFor(tenants.status());
  }
  int failed = 0;
  for (const TenantRow& t : *tenants) {
    auto store = OpenTenantStore(url, t);  // opening applies the migrations it lacks
    if (!store.ok()) {
      std::cerr << "crmbridge tenants migrate: tenant " << t.name << ": "
                << store.status().ToString() << "\n";
      ++failed;
      continue;
    }
    auto version = (*store)->SchemaVersion();
    std::cout << "tenant " << t.name << ": schema version "
              << (version.ok() ? std::to_string(*version) : version.status().ToString()) << "\n";
  }
  std::cout << "The registry and " << tenants->size() - failed << " of " << tenants->size()
            << " tenant(s) are at this crmbridge's schema.\n";
  return failed > 0 ? kExitInternal : kExitOk;
}

int RunWorker(const GlobalOptions& global, const WorkerOptions& options) {
  SetUpLogging(global);
  const auto ttl = ParseDuration(options.lease_ttl);
  if (!ttl || ttl->count() < 3000) {
    std::cerr << "crmbridge worker: --lease-ttl \"" << options.lease_ttl
              << "\" is not a duration of at least 3s (e.g. 30s, 2m)\n";
    return kExitUsage;
  }
  const auto poll = ParseDuration(options.poll);
  if (!poll || poll->count() < 100) {
    std::cerr << "crmbridge worker: --poll \"" << options.poll
              << "\" is not a duration of at least 100ms (e.g. 1s, 5s)\n";
    return kExitUsage;
  }
  if (options.concurrency < 1 || options.concurrency > 64) {
    std::cerr << "crmbridge worker: --concurrency takes 1 to 64 tenants at once\n";
    return kExitUsage;
  }
  std::string host;
  int port = 0;
  if (!ParseListen(options.listen, &host, &port)) {
    std::cerr << "crmbridge worker: --listen \"" << options.listen
              << "\" is not HOST:PORT (e.g. 127.0.0.1:8081, 0.0.0.0:8081 in a container)\n";
    return kExitUsage;
  }
  std::string url;
  int rc = kExitOk;
  auto registry = OpenRegistry(options.state_url, "crmbridge worker", &url, &rc);
  if (!registry) return rc;

  HealthServer health(host, port, [&registry] { return registry->Ping(); });
  if (Status s = health.Start(); !s.ok()) {
    std::cerr << "crmbridge worker: " << s.message() << "\n";
    return kExitUsage;
  }
  InstallStopHandlers();
  TenantWorkerOptions worker_options;
  worker_options.holder = Holder();
  worker_options.concurrency = options.concurrency;
  worker_options.lease_ttl_ms = ttl->count();
  worker_options.poll_ms = poll->count();
  const std::string holder = worker_options.holder;
  const int64_t ttl_ms = ttl->count();
  // Tenants on one vendor account share its rate limits through the registry's database.
  auto budgets = AccountBudgets::Open(url);
  if (!budgets.ok()) {
    std::cerr << "crmbridge worker: " << budgets.status().message() << "\n";
    return ExitCodeFor(budgets.status());
  }
  AccountBudgets* shared = budgets->get();
  TenantWorker worker(registry.get(), worker_options,
                      [&url, holder, ttl_ms, shared](const TenantClaim& claim,
                                                     const std::atomic<bool>* stop) {
                        return RunTenantOnce(claim, url, holder, ttl_ms, stop, shared);
                      });
  // The first line on stdout says where it listens (with port 0, the port it was given).
  std::cout << "crmbridge worker: as " << holder << ", " << options.concurrency
            << " tenant(s) at once; health on http://" << host << ":" << health.port()
            << " (/healthz, /readyz)" << std::endl;
  spdlog::info("worker: tenants from {}; SIGTERM or SIGINT stops it after the batches in flight",
               RedactPostgresUrl(url));
  worker.Run(&g_stop);
  health.Stop();
  spdlog::info("worker: stopped after {} run(s), {} claim(s) lost", worker.runs(), worker.lost());
  return kExitOk;
}

}  // namespace crmbridge::cli
