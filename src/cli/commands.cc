#include "src/cli/commands.h"
#include "src/cli/process.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "connectors/registry.h"
#include "src/core/ids.h"
#include "src/core/logging.h"
#include "src/core/time_util.h"
#include "src/core/url.h"
#include "src/engine/bootstrap.h"
#include "src/metrics/metrics.h"
#include "src/report/onboarding_report.h"
#include "src/serve/webhook_inbox.h"
#include "state/postgres_store.h"
#include "state/tenant_registry.h"

namespace crmbridge::cli {
namespace {

using nlohmann::json;

std::string FormatTime(int64_t ms) { return ms <= 0 ? "-" : FormatIsoUtc(ms, false); }

// Everything a command needs: config, mapping plan and state store, or the exit code and the
// message that says what is wrong and where.
struct Loaded {
  AppConfig config;
  std::shared_ptr<const MappingPlan> plan;
  std::unique_ptr<Store> store;
  std::unique_ptr<TenantRegistry> registry;  // with --tenant: the registry it came from
};

// JSON for stdout. Text that is not UTF-8 (a record's value or a vendor's message that got this
// far) is written as U+FFFD instead of aborting the command.
std::string JsonText(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

// "a, b, c".
std::string JoinWords(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

// The state store as messages show it: a path as it is, a URL without its user info.
std::string ShownStore(const std::string& state) {
  return IsPostgresUrl(state) ? RedactUrlForLog(state) : state;
}

// The mapping plan of out->config, or kExitUsage with the reason on stderr.
int LoadPlanInto(Loaded* out) {
  auto plan = LoadPlanFor(out->config);
  if (!plan.ok()) {
    std::cerr << "crmbridge: mapping error:\n" << plan.status().message() << "\n";
    return kExitUsage;
  }
  out->plan = *plan;
  return kExitOk;
}

// A registered tenant's configuration (read without its secrets: commands that name a tenant only
// read its state) and its state, in its schema of the registry's database.
int LoadTenant(const GlobalOptions& global, bool need_plan, Loaded* out) {
  std::string url;
  if (int rc = ResolveStateUrl(global.state_url, "crmbridge", &url); rc != kExitOk) return rc;
  auto registry = TenantRegistry::Open(url);
  if (!registry.ok()) {
    std::cerr << "crmbridge: cannot open the tenant registry: " << registry.status().ToString() << "\n";
    return ExitCodeFor(registry.status());
  }
  auto tenant = (*registry)->Get(global.tenant);
  if (!tenant.ok()) {
    std::cerr << "crmbridge: " << tenant.status().ToString() << "\n";
    return ExitCodeFor(tenant.status());
  }
  if (!tenant->has_value()) {
    std::cerr << "crmbridge: there is no tenant " << global.tenant
              << " (crmbridge tenants list shows those there are)\n";
    return kExitUsage;
  }
  std::vector<std::string> warnings;
  auto config = LoadTenantConfig((*tenant)->config_path, &warnings);
  if (!config.ok()) {
    std::cerr << "crmbridge: the configuration of tenant " << global.tenant << ":\n"
              << config.status().message() << "\n";
    return kExitUsage;
  }
  if (Status keys = CheckSystemKeysOf(*config); !keys.ok()) {
    std::cerr << "crmbridge: the configuration of tenant " << global.tenant << ":\n"
              << keys.message() << "\n";
    return kExitUsage;
  }
  out->config = std::move(*config);
  out->config.state_path = url;
  if (need_plan)
    if (int rc = LoadPlanInto(out); rc != kExitOk) return rc;
  PostgresStoreOptions store_options;
  store_options.schema = (*tenant)->schema;
  auto store = OpenPostgresStore(url, store_options);
  if (!store.ok()) {
    std::cerr << "crmbridge: cannot open the state of tenant " << global.tenant << ": "
              << store.status().ToString() << "\n";
    return ExitCodeFor(store.status());
  }
  out->store = std::move(*store);
  out->registry = std::move(*registry);
  return kExitOk;
}

// `existing_state`: a command that works on the state store alone (status, dlq, audit, report):
// it refuses to create an empty store where none is, and contacts no system, so the secrets of
// the systems need not be set where it runs.
// `dry_run`: a run that writes nothing, a state store's creation included: where none is yet, it
// runs on an empty one in memory.
int Load(const GlobalOptions& global, bool need_plan, Loaded* out, bool existing_state = false,
         bool dry_run = false) {
  if (!global.tenant.empty()) return LoadTenant(global, need_plan, out);
  std::vector<std::string> unset;
  auto config = existing_state ? LoadAppConfigWithoutSecrets(global.config_path, &unset)
                               : LoadAppConfig(global.config_path);
  if (config.ok() && config->state_path.empty()) {
    // The store's own location named a variable that is not set.
    for (const std::string& w : unset) std::cerr << w << "\n";
    std::cerr << "crmbridge: the state store's location is not set\n";
    return kExitUsage;
  }
  if (!config.ok()) {
    std::cerr << "crmbridge: configuration error:\n" << config.status().message() << "\n";
    if (config.status().code() == StatusCode::kNotFound)
      std::cerr << "Name the configuration with --config FILE or CRMBRIDGE_CONFIG; "
                   "examples/crmbridge.yaml is a commented example.\n";
    return kExitUsage;
  }
  if (Status keys = CheckSystemKeysOf(*config); !keys.ok()) {
    std::cerr << "crmbridge: configuration error:\n" << keys.message() << "\n";
    return kExitUsage;
  }
  out->config = std::move(*config);
  if (need_plan)
    if (int rc = LoadPlanInto(out); rc != kExitOk) return rc;
  const std::string& state = out->config.state_path;
  const bool server = IsPostgresUrl(state);
  const bool missing = !server && access(state.c_str(), F_OK) != 0;
  if (existing_state && missing) {
    std::cerr << "crmbridge: there is no state store at " << state
              << " yet: it is created by the first `crmbridge sync`\n";
    return kExitUsage;
  }
  auto store = OpenStore(dry_run && missing ? std::string(":memory:") : state);
  if (!store.ok()) {
    std::cerr << "crmbridge: cannot open the state store " << ShownStore(state) << ": "
              << store.status().ToString() << "\n";
    // A database server that cannot be reached is a system that cannot be reached; a file that
    // cannot be used is the state store failing (the message says why), not a usage error.
    if (server) {
      return store.status().code() == StatusCode::kFailedPrecondition ? kExitUnreachable
                                                                       : kExitUsage;
    }
    return kExitInternal;
  }
  out->store = std::move(*store);
  return kExitOk;
}

// `command`: the command as the user typed it ("sync", "backfill"), for the first line.
void PrintSummaryText(const RunSummary& s, bool verbose, const char* command = "sync") {
  const double secs = static_cast<double>(s.finished_ms - s.started_ms) / 1000.0;
  if (s.dry_run) {
    std::printf("crmbridge %s --dry-run: nothing was written (%.2f s)\n", command, secs);
  } else {
    std::printf("crmbridge %s: run %lld finished in %.2f s\n", command,
                static_cast<long long>(s.run_id), secs);
  }
  for (const auto& [system, entities] : s.counts) {
    for (const auto& [entity, c] : entities) {
      std::string line = fmt::format("  {:<12} {:<11}", system, entity);
      if (c.read > 0) {
        line += fmt::format(" read {} (changed {}, unchanged {}", c.read, c.changed, c.unchanged);
        if (c.matched > 0) line += fmt::format(", matched {}", c.matched);
        if (c.duplicates > 0) line += fmt::format(", duplicates {}", c.duplicates);
        if (c.rejected > 0) line += fmt::format(", rejected {}", c.rejected);
        if (c.deletes_seen > 0) line += fmt::format(", deletes {}", c.deletes_seen);
        if (c.restored > 0) line += fmt::format(", restored {}", c.restored);
        if (c.merged > 0) line += fmt::format(", merged {}", c.merged);
        line += ")";
      }
      if (s.dry_run) {
        if (c.queued > 0) line += fmt::format(" would write {}", c.queued);
      } else if (c.created + c.updated + c.retrying + c.dead_lettered > 0) {
        line += fmt::format(" created {}, updated {}", c.created, c.updated);
        if (c.retrying > 0) line += fmt::format(", retrying later {}", c.retrying);
        if (c.dead_lettered > 0) line += fmt::format(", dead-lettered {}", c.dead_lettered);
      }
      // A merge crmbridge made here, following one read elsewhere.
      if (c.read == 0 && c.merged > 0) line += fmt::format(", merged {}", c.merged);
      if (c.not_created > 0) line += fmt::format(" (not created here: {})", c.not_created);
      // Records refused on their way here (the log names each): with no read, not said above.
      if (c.read == 0 && c.rejected > 0) line += fmt::format(" (rejected: {})", c.rejected);
      std::printf("%s\n", line.c_str());
    }
  }
  for (const auto& [system, reason] : s.unreachable)
    std::printf("  %s was unreachable: %s\n", system.c_str(), reason.c_str());

  if (s.dry_run) {
    std::printf("%zu write(s) planned.\n", s.plan.size());
    for (const PlannedWrite& w : s.plan) {
      std::printf("  %s %s %s %s\n", WriteActionName(w.action), w.system.c_str(), w.entity.c_str(),
                  w.native_id.empty() ? w.canonical_id.c_str() : w.native_id.c_str());
      if (verbose) {
        for (const auto& [field, value] : w.fields.items())
          std::printf("      %s = %s\n", field.c_str(), value.dump().c_str());
      }
    }
    return;
  }
  if (verbose) {
    // One line per write, so a long run stays readable.
    for (const PlannedWrite& w : s.written) {
      std::string fields;
      for (const auto& [field, value] : w.fields.items())
        fields += (fields.empty() ? "" : ", ") + field + "=" + value.dump();
      std::printf("  %s %s %s %s: %s\n", WriteActionName(w.action), w.system.c_str(), w.entity.c_str(),
                  w.native_id.c_str(), fields.c_str());
    }
    if (s.written.size() < static_cast<size_t>(s.TotalWrites()))
      std::printf("  ... and %lld more\n",
                  static_cast<long long>(s.TotalWrites() - s.written.size()));
  }
  const int64_t writes = s.TotalWrites();
  const int64_t retrying = s.TotalRetrying();  // not up to date either
  if (writes == 0 && s.TotalDeadLettered() == 0 && s.unreachable.empty() && retrying == 0) {
    std::printf("Nothing to write: every system is up to date (0 write calls).\n");
  } else {
    std::printf("%lld record(s) written", static_cast<long long>(writes));
    if (s.TotalDeadLettered() > 0)
      std::printf(", %lld dead-lettered (see crmbridge dlq list)",
                  static_cast<long long>(s.TotalDeadLettered()));
    if (retrying > 0)
      std::printf(", %lld failed and queued for a later attempt (see crmbridge status)",
                  static_cast<long long>(retrying));
    std::printf(".\n");
  }
}

}  // namespace

static std::set<std::string> SystemNames(const AppConfig& config) {
  std::set<std::string> names;
  for (const auto& [name, system] : config.systems) names.insert(name);
  return names;
}

// The engine over the loaded configuration, with a connector per mapped system; nullopt (the
// reason printed) when a connector cannot be built from its configuration.
static std::optional<std::unique_ptr<SyncEngine>> NewEngine(Loaded& loaded,
                                                            Metrics* metrics = nullptr) {
  auto connectors = BuildConnectors(loaded.config, *loaded.plan, Clock::Real(),
                                    metrics ? metrics->ApiObserver() : nullptr);
  if (!connectors.ok()) {
    std::cerr << "crmbridge: " << connectors.status().message() << "\n";
    return std::nullopt;
  }
  return std::make_unique<SyncEngine>(&loaded.config, loaded.plan, loaded.store.get(),
                                      std::move(*connectors), Clock::Real());
}

// Why `path` cannot take a file crmbridge writes whole (a report, metrics), or "" when it can. The
// file is written beside it and renamed over it, which would turn a device or a pipe into a
// plain file and replace any file: so the path must be a plain file or none, in a folder that
// exists, and none of the files this command runs from.
static std::string OutputPathProblem(const std::string& path, const Loaded& loaded) {
  struct stat target {};
  if (stat(path.c_str(), &target) != 0) {
    const size_t slash = path.rfind('/');
    const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash + 1);
    struct stat dir {};
    if (stat(folder.c_str(), &dir) != 0 || !S_ISDIR(dir.st_mode))
      return "its folder " + folder + " does not exist";
    return "";
  }
  if (!S_ISREG(target.st_mode)) return "it is not a plain file (a folder, a device or a pipe)";
  std::vector<std::pair<std::string, std::string>> inputs = {
      {loaded.config.state_path, "the state store"}, {loaded.config.path, "the configuration"}};
  for (const std::string& mapping : loaded.config.mapping_paths)
    inputs.emplace_back(mapping, "a mapping file");
  for (const auto& [input, what] : inputs) {
    struct stat other {};
    if (!input.empty() && stat(input.c_str(), &other) == 0 && other.st_dev == target.st_dev &&
        other.st_ino == target.st_ino)
      return "it is " + what + " this command runs from";
  }
  return "";
}

// A run that lost its lease to another one stopped on purpose; the other run goes on. The exit
// code comes from the summary, never from a Status code.
static int LeaseLost(const RunSummary& summary) {
  if (!summary.lease_lost) return kExitOk;
  std::cerr << "crmbridge: this run's lease expired and another run took it over; it stopped "
               "without writing more (run "
            << summary.run_id << ")\n";
  return kExitLeaseHeld;
}

int RunSync(const GlobalOptions& global, const SyncOptions& options) {
  SetUpLogging(global);
  Loaded loaded;
  if (int rc = Load(global, /*need_plan=*/true, &loaded, /*existing_state=*/false,
                    /*dry_run=*/options.dry_run);
      rc != kExitOk)
    return rc;
  if (!options.metrics_file.empty())
    if (std::string problem = OutputPathProblem(options.metrics_file, loaded); !problem.empty()) {
      std::cerr << "crmbridge sync: --metrics-file " << options.metrics_file << ": " << problem
                << "\n";
      return kExitUsage;
    }

  std::optional<Metrics> metrics;
  if (!options.metrics_file.empty()) metrics.emplace(SystemNames(loaded.config));
  auto engine_or = NewEngine(loaded, metrics ? &*metrics : nullptr);
  if (!engine_or) return kExitUsage;
  SyncEngine& engine = **engine_or;
  InstallStopHandlers();
  RunOptions run;
  run.mode = options.dry_run ? "dry-run" : "sync";
  run.dry_run = options.dry_run;
  run.show_every_warning = options.verbose;
  run.holder = Holder();
  run.holder_has_ended = HolderHasEnded;
  run.stop = &g_stop;
  auto summary = engine.RunOnce(run);
  if (metrics) {
    // Written whatever the run's outcome: a failed run is what the metrics must show.
    if (summary.ok()) metrics->AddRun(*summary);
    Status s = metrics->ReadStore(*loaded.store);
    if (s.ok()) s = metrics->WriteFile(options.metrics_file);
    if (!s.ok()) std::cerr << "crmbridge: metrics not written: " << s.message() << "\n";
  }
  if (!summary.ok()) {
    std::cerr << "crmbridge: sync failed: " << summary.status().ToString() << "\n";
    return kExitInternal;
  }
  if (int rc = LeaseLost(*summary); rc != kExitOk) return rc;
  if (summary->lease_denied) {
    std::cerr << "crmbridge: another run holds the lease (" << summary->lease_holder
              << "); try again when it finishes\n";
    return kExitLeaseHeld;
  }
  if (options.json) {
    std::cout << JsonText(summary->ToJson()) << std::endl;
  } else {
    PrintSummaryText(*summary, options.verbose);
  }
  if (!summary->unreachable.empty()) return kExitUnreachable;
  if (summary->TotalDeadLettered() > 0) return kExitDeadLettered;
  return kExitOk;
}

// A point-in-time option (--since, --as-of): a date (midnight UTC) or an ISO-8601 UTC time; empty
// leaves *ms as it is. False, with the reason on stderr, when it is neither.
static bool ParseTimeOption(const std::string& command, const char* flag, const std::string& value,
                            int64_t* ms) {
  if (value.empty()) return true;
  auto t = ParseIsoUtcMillis(value.size() == 10 ? value + "T00:00:00Z" : value);
  if (!t) {
    std::cerr << command << ": " << flag << " \"" << value
              << "\" is not a date (2026-01-31) or an ISO-8601 UTC time (2026-01-31T08:00:00Z)\n";
    return false;
  }
  *ms = *t;
  return true;
}

// backfill --tenant: the backfill becomes the tenant's next job, which a worker runs; a long one
// holds up no other tenant. `loaded` is the tenant's, its mapping checked by RunBackfill.
static int AskTenantBackfill(const GlobalOptions& global, const BackfillOptions& options,
                             int64_t since_ms, const Loaded& loaded) {
  json job = {{"system", options.system}};
  if (!options.entity.empty()) job["entity"] = options.entity;
  if (since_ms > 0) job["since_ms"] = since_ms;
  Status s = loaded.registry->RequestBackfill(global.tenant, job.dump());
  if (!s.ok()) {
    std::cerr << "crmbridge backfill: " << s.message() << "\n";
    return ExitCodeFor(s);
  }
  std::cout << "Backfill of " << options.system
            << (options.entity.empty() ? "" : " (" + options.entity + ")") << " asked for tenant "
            << global.tenant
            << ": a worker runs it at its next claim; `crmbridge tenants list` shows its outcome.\n";
  return kExitOk;
}

int RunBackfill(const GlobalOptions& global, const BackfillOptions& options) {
  SetUpLogging(global);
  int64_t since_ms = 0;
  if (!ParseTimeOption("crmbridge backfill", "--since", options.since, &since_ms)) return kExitUsage;
  if (!global.tenant.empty() && options.dry_run) {
    std::cerr << "crmbridge backfill: --dry-run runs here, not on a worker: give the tenant's "
                 "configuration with --config instead of --tenant\n";
    return kExitUsage;
  }
  Loaded loaded;
  if (int rc = Load(global, /*need_plan=*/true, &loaded, /*existing_state=*/false,
                    /*dry_run=*/options.dry_run);
      rc != kExitOk)
    return rc;
  if (!loaded.config.systems.count(options.system)) {
    std::vector<std::string> names;
    for (const auto& [name, system] : loaded.config.systems) names.push_back(name);
    std::cerr << "crmbridge backfill: there is no system '" << options.system << "' in "
              << loaded.config.path << " (its systems: " << JoinWords(names) << ")\n";
    return kExitUsage;
  }
  bool known = false;
  for (const SystemEntityMapping& m : loaded.plan->mappings())
    known = known || (m.system == options.system && m.reads() &&
                      (options.entity.empty() || m.entity == options.entity));
  if (!known) {
    std::cerr << "crmbridge backfill: "
              << (global.tenant.empty() ? "the mapping" : "tenant " + global.tenant + "'s mapping")
              << " reads no " << (options.entity.empty() ? "entity" : options.entity)
              << " from system '" << options.system << "' (see `crmbridge mappings validate`)\n";
    return kExitUsage;
  }
  if (!global.tenant.empty()) return AskTenantBackfill(global, options, since_ms, loaded);
  auto engine_or = NewEngine(loaded);
  if (!engine_or) return kExitUsage;
  SyncEngine& engine = **engine_or;
  InstallStopHandlers();
  RunOptions run;
  run.mode = options.dry_run ? "backfill-dry-run" : "backfill";
  run.dry_run = options.dry_run;
  run.holder = Holder();
  run.holder_has_ended = HolderHasEnded;
  run.stop = &g_stop;
  run.backfill_system = options.system;
  run.backfill_entity = options.entity;
  run.since_ms = since_ms;
  run.show_every_warning = options.verbose;
  // Progress: a bar on a terminal, a log line every 10 s otherwise (logs, CI, cron mail).
  const bool tty = isatty(STDERR_FILENO) != 0;
  const auto started = std::chrono::steady_clock::now();
  auto last_log = started;
  std::string last_bar;
  run.progress = [&](int64_t read, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(now - started).count();
    const double rate = secs > 0 ? static_cast<double>(read) / secs : 0;
    if (tty) {
      std::string bar = "";
      if (total > 0) {
        const int filled = static_cast<int>(std::min<int64_t>(30, read * 30 / std::max<int64_t>(total, 1)));
        bar = "[" + std::string(filled, '#') + std::string(30 - filled, ' ') + "] ";
      }
      const double eta = total > read && rate > 0 ? static_cast<double>(total - read) / rate : 0;
      // Log lines (warnings about records) are printed above the bar, which is drawn again.
      last_bar = fmt::format(
          "{}{}{} records  {:.0f}/s{}", bar, read, total > 0 ? " / " + std::to_string(total) : "",
          rate,
          eta > 0 ? fmt::format("  ETA {}:{:02d}", static_cast<int>(eta) / 60, static_cast<int>(eta) % 60)
                  : "");
      SetStatusLine(last_bar);
    } else if (now - last_log >= std::chrono::seconds(10)) {
      last_log = now;
      spdlog::info("backfill: {} records read ({:.0f}/s{})", read, rate,
                   total > 0 ? fmt::format(", about {} in all", total) : "");
    }
  };
  auto summary = engine.RunOnce(run);
  if (tty && !last_bar.empty()) {
    SetStatusLine("");
    std::fprintf(stderr, "%s\n", last_bar.c_str());  // the last state stays on the screen
  }
  if (!summary.ok()) {
    std::cerr << "crmbridge: backfill failed: " << summary.status().ToString() << "\n";
    return kExitInternal;
  }
  if (int rc = LeaseLost(*summary); rc != kExitOk) return rc;
  if (summary->lease_denied) {
    std::cerr << "crmbridge: another run holds the lease (" << summary->lease_holder << ")\n";
    return kExitLeaseHeld;
  }
  if (options.json) {
    std::cout << JsonText(summary->ToJson()) << std::endl;
  } else {
    PrintSummaryText(*summary, options.verbose, "backfill");
  }
  if (g_stop.load())
    std::cout << "Stopped: run the same backfill again to continue from its checkpoint.\n";
  if (!summary->unreachable.empty()) return kExitUnreachable;
  if (summary->TotalDeadLettered() > 0) return kExitDeadLettered;
  return kExitOk;
}

// One line in the log for each run of a long-running command (`who`: daemon, serve).
static void LogScheduledRun(const char* who, const Result<RunSummary>& summary) {
  if (!summary.ok()) {
    // A failed run is logged and retried on the next tick: its work is in the state store.
    spdlog::error("{}: run failed: {}", who, summary.status().ToString());
  } else if (summary->lease_denied) {
    spdlog::warn("{}: skipped: another run holds the lease ({})", who, summary->lease_holder);
  } else if (summary->lease_lost) {
    spdlog::warn("{}: run {} stopped: its lease expired and another run took it over", who,
                 summary->run_id);
  } else {
    spdlog::info("{}: run {} wrote {} record(s), {} dead-lettered{}", who, summary->run_id,
                 summary->TotalWrites(), summary->TotalDeadLettered(),
                 summary->unreachable.empty() ? "" : "; some systems were unreachable");
  }
}

// --every as given (nullopt and a message when it is not a duration of at least 1s), or nothing
// when it is not given: then the configuration's schedule.every says.
bool ParseEvery(const char* command, const std::string& flag,
                std::optional<std::chrono::milliseconds>* every) {
  if (flag.empty()) return true;
  *every = ParseDuration(flag);
  if (*every && (*every)->count() >= 1000) return true;
  std::cerr << "crmbridge " << command << ": --every \"" << flag
            << "\" is not a duration of at least 1s (e.g. 30s, 5m, 1h)\n";
  return false;
}

// A duration as a person writes it: 90s, 5m, 1500ms.
std::string DurationText(std::chrono::milliseconds d) {
  const int64_t ms = d.count();
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

int RunDaemon(const GlobalOptions& global, const DaemonOptions& options) {
  SetUpLogging(global);
  std::optional<std::chrono::milliseconds> every;
  if (!ParseEvery("daemon", options.every, &every)) return kExitUsage;
  Loaded loaded;
  if (int rc = Load(global, /*need_plan=*/true, &loaded); rc != kExitOk) return rc;
  if (!every) every = loaded.config.schedule.every;
  // One engine for the daemon's life: connectors keep their tokens and setup between runs.
  auto engine_or = NewEngine(loaded);
  if (!engine_or) return kExitUsage;
  SyncEngine& engine = **engine_or;
  InstallStopHandlers();
  const std::string holder = Holder();
  spdlog::info("daemon: syncing every {} as {}; SIGTERM or SIGINT stops it after the current batch",
               DurationText(*every), holder);
  int runs = 0;
  while (!g_stop.load()) {
    const auto started = std::chrono::steady_clock::now();
    RunOptions run;
    run.mode = "sync";
    run.holder = holder;
    run.holder_has_ended = HolderHasEnded;
    run.stop = &g_stop;
    LogScheduledRun("daemon", engine.RunOnce(run));
    if (options.max_runs > 0 && ++runs >= options.max_runs) break;
    // Sleep until the next tick in short steps, so a stop signal is seen at once.
    while (!g_stop.load() && std::chrono::steady_clock::now() - started < *every)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  spdlog::info("daemon: stopped");
  return kExitOk;
}

// Whether every system that announced `events` reads records by id (a targeted run can take them).
static bool ReadsById(const AppConfig& config, const std::vector<WebhookEvent>& events) {
  for (const WebhookEvent& e : events) {
    auto system = config.systems.find(e.system);
    if (system == config.systems.end()) return false;
    const Capabilities* can = CapabilitiesOfKind(system->second.kind);
    if (can == nullptr || !can->reads_by_id) return false;
  }
  return true;
}

// Whether a write queued for any system is due at `now_ms` (a failed write whose backoff ended).
static bool WritesDue(Store& store, const AppConfig& config, int64_t now_ms) {
  for (const auto& [system, unused] : config.systems) {
    auto due = store.DueOutbox(OutboxFilter(system, now_ms, 1));
    if (!due.ok()) {
      spdlog::error("serve: reading the queued writes: {}", due.status().ToString());
      return false;
    }
    if (!due->empty()) return true;
  }
  return false;
}

int RunServe(const GlobalOptions& global, const ServeOptions& options) {
  SetUpLogging(global);
  std::optional<std::chrono::milliseconds> every;
  if (!ParseEvery("serve", options.every, &every)) return kExitUsage;
  const auto webhook_interval = ParseDuration(options.webhook_interval);
  if (!webhook_interval) {
    std::cerr << "crmbridge serve: --webhook-interval \"" << options.webhook_interval
              << "\" is not a duration (e.g. 500ms, 1s, 5s)\n";
    return kExitUsage;
  }
  InboxOptions inbox_options;
  if (!ParseListen(options.listen, &inbox_options.host, &inbox_options.port)) {
    std::cerr << "crmbridge serve: --listen \"" << options.listen
              << "\" is not HOST:PORT (e.g. 127.0.0.1:8080, or port 0 for any free one)\n";
    return kExitUsage;
  }
  inbox_options.public_url = options.public_url;
  while (!inbox_options.public_url.empty() && inbox_options.public_url.back() == '/')
    inbox_options.public_url.pop_back();
  if (!options.public_url.empty()) {
    // The senders sign the URL they call: one that is no URL fails every signature.
    const std::string& url = inbox_options.public_url;
    if (!IsHttpUrl(url) || url.find_first_of(" \t\r\n?#") != std::string::npos) {
      std::cerr << "crmbridge serve: --public-url \"" << options.public_url
                << "\" is not the URL senders call (e.g. https://sync.example.com)\n";
      return kExitUsage;
    }
  }

  Loaded loaded;
  if (int rc = Load(global, /*need_plan=*/true, &loaded); rc != kExitOk) return rc;
  if (!every) every = loaded.config.schedule.every;
  Metrics metrics(SystemNames(loaded.config));
  auto engine_or = NewEngine(loaded, &metrics);
  if (!engine_or) return kExitUsage;
  SyncEngine& engine = **engine_or;
  Store* store = loaded.store.get();
  WebhookInbox inbox(&loaded.config, store, Clock::Real(), inbox_options, &metrics,
                     loaded.plan.get());
  if (Status s = inbox.Start(); !s.ok()) {
    std::cerr << "crmbridge serve: " << s.message() << "\n";
    return kExitUsage;
  }
  InstallStopHandlers();
  const std::string holder = Holder();
  // The first line on stdout says where it listens (with port 0, the port it was given).
  std::cout << "crmbridge serve: listening on http://" << inbox_options.host << ":" << inbox.port()
            << " (/ the status page, /healthz, /readyz, /metrics, /webhooks/SYSTEM); syncing every "
            << DurationText(*every)
            << std::endl;
  spdlog::info("serve: as {}; SIGTERM or SIGINT stops it after the current batch", holder);

  // A run reads every change since the last one, so it also takes in every change webhooks have
  // announced before it started; those are marked done once it has read all systems. A change
  // announced while no run could take it (the lease held elsewhere, a system unreachable, a
  // crash) stays pending in the store and is taken by the next run.
  using Steady = std::chrono::steady_clock;
  auto next_run = Steady::now();
  auto retry_at = Steady::now();
  // Runs for announced changes start at most once per --webhook-interval: what arrives meanwhile
  // is read together, in one batch read per object, so a burst of changes costs a few calls,
  // not a few per change, and stays within the vendors' limits.
  auto last_announced_run = Steady::now() - *webhook_interval;
  // Writes that failed (a target down for a while) are queued with a backoff; once one is due, a
  // run of writes alone sends them, so a short outage delays a change by its backoff, not until
  // the next scheduled run. Looked for once a second; while a run of writes finds a target still
  // down, the next waits 5 s, then twice as long each time, up to the schedule's interval.
  auto next_writes_check = Steady::now();
  auto writes_pause = std::chrono::milliseconds(5000);
  constexpr int64_t kKeepEventsMs = 7LL * 24 * 3600 * 1000;  // past any vendor's retries
  while (!g_stop.load()) {
    auto pending = store->PendingWebhookEvents(10000);
    if (!pending.ok()) spdlog::error("serve: reading the webhook events: {}", pending.status().ToString());
    const bool waiting = pending.ok() && !pending->empty();
    const auto announced_at = std::max(retry_at, last_announced_run + *webhook_interval);
    const bool announced = waiting && Steady::now() >= announced_at;
    bool writes_due = false;
    if (!announced && Steady::now() < next_run && Steady::now() >= next_writes_check) {
      next_writes_check = Steady::now() + std::chrono::seconds(1);
      writes_due = WritesDue(*store, loaded.config, Clock::Real()->NowMillis());
    }
    if (!announced && !writes_due && Steady::now() < next_run) {
      const auto until = waiting ? std::min(next_run, announced_at) : next_run;
      const auto wait = std::min<int64_t>(
          250, std::chrono::duration_cast<std::chrono::milliseconds>(until - Steady::now()).count());
      if (inbox.WaitForChanges(std::max<int64_t>(wait, 1)))
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // take a burst in one run
      continue;
    }
    if (announced) last_announced_run = Steady::now();
    const int64_t up_to = announced ? pending->back().id : 0;
    RunOptions run;
    run.holder = holder;
    run.holder_has_ended = HolderHasEnded;
    run.stop = &g_stop;
    // Announced changes are read alone, by id, where every system they come from can; the
    // scheduled run, which reads everything, keeps its time whatever webhooks bring.
    const bool due = Steady::now() >= next_run;
    if (announced && !due && ReadsById(loaded.config, *pending)) {
      run.mode = "webhook";
      for (const WebhookEvent& e : *pending) {
        run.read_ids[e.system][e.object].push_back(e.record_id);
        auto sys = loaded.config.systems.find(e.system);
        const Capabilities* caps =
            sys == loaded.config.systems.end() ? nullptr : CapabilitiesOfKind(sys->second.kind);
        if (caps && std::find(caps->delete_events.begin(), caps->delete_events.end(), e.kind) !=
                        caps->delete_events.end())
          run.gone_ids[e.system][e.object].insert(e.record_id);
      }
      for (auto& [system, objects] : run.read_ids)
        for (auto& [object, ids] : objects) {
          std::sort(ids.begin(), ids.end());
          ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        }
      spdlog::info("serve: reading {} announced change(s)", pending->size());
    } else if (writes_due && !announced && !due) {
      run.mode = "writes";
      run.writes_only = true;
      spdlog::info("serve: sending the queued writes now due");
    } else {
      run.mode = "sync";
      next_run = Steady::now() + *every;
      if (announced) spdlog::info("serve: {} announced change(s) to read in a full run", pending->size());
    }
    auto summary = engine.RunOnce(run);
    LogScheduledRun("serve", summary);
    if (summary.ok() && !summary->lease_denied)
      inbox.SetCredentialFailures(summary->credentials_refused);
    if (summary.ok()) metrics.AddRun(*summary);
    const bool complete = summary.ok() && !summary->lease_denied && !summary->lease_lost &&
                          summary->unreachable.empty() && !g_stop.load();
    if (up_to > 0 && complete) {
      Status s = store->FinishWebhookEvents(up_to, Clock::Real()->NowMillis(), kKeepEventsMs);
      if (!s.ok()) spdlog::error("serve: marking webhook events done: {}", s.ToString());
    } else if (up_to > 0) {
      retry_at = Steady::now() + std::chrono::seconds(5);  // not at once: the cause may last
    }
    if (run.writes_only && !complete) {  // a target still down: not retried at once
      next_writes_check = Steady::now() + writes_pause;
      writes_pause = std::min<std::chrono::milliseconds>(writes_pause * 2, *every);
    } else if (complete) {
      writes_pause = std::chrono::milliseconds(5000);
    }
  }
  inbox.Stop();
  spdlog::info("serve: stopped ({} webhook deliveries accepted, {} refused)", inbox.accepted(),
               inbox.refused());
  return kExitOk;
}

int RunStatus(const GlobalOptions& global, const StatusOptions& options) {
  SetUpLogging(global);
  Loaded loaded;
  // A mistyped state path is an error, not a new empty store.
  if (int rc = Load(global, /*need_plan=*/false, &loaded, /*existing_state=*/true); rc != kExitOk)
    return rc;
  Store* store = loaded.store.get();

  auto runs = store->RecentRuns(options.runs);
  auto cursors = store->ListCursors();
  auto outbox = store->OutboxCounts();
  auto dead = store->DeadLetterCounts();
  auto lease = store->GetLease();
  auto announced = store->PendingWebhookEvents(0);
  for (const Status* s : {&runs.status(), &cursors.status(), &outbox.status(), &dead.status(),
                          &lease.status(), &announced.status()}) {
    if (!s->ok()) {
      std::cerr << "crmbridge: cannot read the state store: " << s->ToString() << "\n";
      return kExitInternal;
    }
  }

  // A run recorded as running still runs only while it is the newest and a live lease is held;
  // any other ended without finishing (killed, crashed, or its machine stopped) and is shown so.
  const bool lease_live = lease->has_value() &&
                          (*lease)->expires_ms > Clock::Real()->NowMillis() &&
                          !HolderHasEnded((*lease)->holder);
  int64_t newest = 0;
  for (const RunRecord& r : *runs) newest = std::max(newest, r.id);
  for (RunRecord& r : *runs)
    if (r.outcome == "running" && (r.id != newest || !lease_live)) r.outcome = "unfinished";

  json j;
  j["state"] = ShownStore(loaded.config.state_path);
  j["runs"] = json::array();
  for (const RunRecord& r : *runs)
    j["runs"].push_back({{"id", r.id},
                         {"mode", r.mode},
                         {"started", FormatTime(r.started_ms)},
                         {"duration_ms", r.finished_ms > 0 ? r.finished_ms - r.started_ms : 0},
                         {"outcome", r.outcome},
                         {"counts", r.counts},
                         {"error", r.error}});
  j["cursors"] = json::array();
  for (const CursorRow& c : *cursors)
    j["cursors"].push_back({{"system", c.system},
                            {"object", c.object},
                            {"cursor", c.cursor},
                            {"updated", FormatTime(c.updated_ms)}});
  j["outbox_pending"] = *outbox;
  int64_t dead_letters = 0;
  for (const auto& [system, n] : dead->items()) dead_letters += n.get<int64_t>();
  j["dead_letters"] = dead_letters;
  // Changes webhooks announced that no run has read yet (`crmbridge serve`).
  j["webhook_events_pending"] = static_cast<int64_t>(announced->size());
  if (lease->has_value()) {
    j["lease"] = {{"holder", (*lease)->holder},
                  {"acquired", FormatTime((*lease)->acquired_ms)},
                  {"expires", FormatTime((*lease)->expires_ms)}};
  } else {
    j["lease"] = nullptr;
  }

  if (options.json) {
    std::cout << JsonText(j) << std::endl;
    return kExitOk;
  }
  std::printf("State store: %s\n", ShownStore(loaded.config.state_path).c_str());
  std::printf("Lease: %s\n", lease->has_value()
                                 ? fmt::format("held by {} until {}", (*lease)->holder,
                                               FormatTime((*lease)->expires_ms))
                                       .c_str()
                                 : "free");
  if (!announced->empty())
    std::printf("Webhook changes waiting for a run: %zu (oldest received %s)\n", announced->size(),
                FormatTime(announced->front().received_ms).c_str());
  std::printf("\nRecent runs:\n");
  if (runs->empty()) std::printf("  (none yet)\n");
  for (const RunRecord& r : *runs) {
    std::printf("  #%-5lld %-8s %s  %6.1f s  %-13s writes %s\n", static_cast<long long>(r.id),
                r.mode.c_str(), FormatTime(r.started_ms).c_str(),
                r.finished_ms > 0 ? static_cast<double>(r.finished_ms - r.started_ms) / 1000 : 0.0,
                r.outcome.c_str(),
                r.counts.contains("writes") ? r.counts["writes"].dump().c_str() : "-");
    if (!r.error.empty()) std::printf("         error: %s\n", r.error.c_str());
  }
  std::printf("\nCursors:\n");
  if (cursors->empty()) std::printf("  (none yet)\n");
  for (const CursorRow& c : *cursors)
    std::printf("  %-12s %-28s updated %s\n", c.system.c_str(), c.object.c_str(),
                FormatTime(c.updated_ms).c_str());
  std::printf("\nOutbox pending: ");
  if (outbox->empty()) {
    std::printf("none\n");
  } else {
    std::printf("\n");
    for (const auto& [system, n] : outbox->items())
      std::printf("  %-12s %s\n", system.c_str(), n.dump().c_str());
  }
  std::printf("Dead letters: %lld%s\n", static_cast<long long>(dead_letters),
              dead_letters == 0 ? "" : " (crmbridge dlq list shows them)");
  return kExitOk;
}

namespace {

// Mapping files and the systems they may name: from the configuration when it loads, else any
// name, of no known kind (so a mapping can be checked before any config exists, for everything
// but what a system's kind can carry).
Result<std::shared_ptr<const MappingPlan>> LoadMappingsFor(const GlobalOptions& global,
                                                           const MappingsOptions& options,
                                                           std::string* note) {
  std::vector<std::string> files = options.files;
  std::map<std::string, std::string> systems;
  // Secrets need not be at hand to check a mapping: an unset ${env:} is a warning here.
  std::vector<std::string> warnings;
  auto config = LoadAppConfigWithoutSecrets(global.config_path, &warnings);
  for (const std::string& w : warnings) std::cerr << w << "\n";
  if (config.ok()) {
    CRMB_RETURN_IF_ERROR(CheckSystemsWithoutSecrets(*config));
    for (const auto& [name, sys] : config->systems) systems[name] = sys.kind;
    if (files.empty()) files = config->mapping_paths;
    if (!options.kinds.empty())
      return Status(StatusCode::kInvalidArgument,
                    "crmbridge: --kind is for validating without a configuration; " +
                        global.config_path + " says each system's kind");
  } else if (files.empty() || global.config_named ||
             config.status().code() != StatusCode::kNotFound) {
    // A configuration named, or one that is there but broken, is not passed over in silence: the
    // mapping would be checked against systems it does not declare.
    return config.status();
  } else {
    // Without a configuration, a system named after a connector kind is of that kind, and
    // --kind NAME=KIND says it of any other name; the rest are checked for nothing.
    const std::vector<std::string> kinds = ConnectorKinds();
    for (const std::string& kind : kinds) systems[kind] = kind;
    std::set<std::string> named;
    for (const std::string& given : options.kinds) {
      const size_t eq = given.find('=');
      const std::string name = given.substr(0, eq);
      const std::string kind = eq == std::string::npos ? "" : given.substr(eq + 1);
      if (name.empty() || std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
        return Status(StatusCode::kInvalidArgument, "crmbridge: --kind " + given +
                                                        ": expected NAME=KIND, KIND one of: " +
                                                        JoinWords(kinds));
      }
      if (!named.insert(name).second)
        return Status(StatusCode::kInvalidArgument,
                      "crmbridge: --kind gives system " + name + " a kind twice: give it once");
      systems[name] = kind;
    }
    *note = "no usable configuration (" + global.config_path +
            "): systems named after a connector kind (or given with --kind) are checked as that "
            "kind, and other system names are taken as they are";
  }
  MappingSystems known = MappingSystemsOf(systems);
  known.any_system = !config.ok();
  auto plan = LoadMappingPlan(files, known);
  if (plan.ok() && config.ok()) CRMB_RETURN_IF_ERROR(CheckOptionsAgainstPlan(*config, **plan));
  if (!plan.ok() || config.ok()) return plan;
  // A --kind for a name no file maps (a typo of one that is) would leave that system checked
  // for nothing, silently.
  const std::set<std::string> mapped = (*plan)->systems();
  for (const std::string& given : options.kinds) {
    const std::string name = given.substr(0, given.find('='));
    if (!mapped.count(name))
      return Status(StatusCode::kInvalidArgument,
                    "crmbridge: --kind " + given + ": no mapping file maps a system named " + name +
                        " (they map: " + JoinWords(std::vector<std::string>(mapped.begin(),
                                                                            mapped.end())) +
                        ")");
  }
  return plan;
}

std::string Describe(const FieldMap& f) {
  // A reference's value is translated by the engine through its links, per system.
  if (!f.ref_entity.empty()) return "reference to " + f.ref_entity + ", by its linked id";
  std::string t;
  for (const auto& tr : f.transforms) t += (t.empty() ? "" : ", ") + (tr ? tr->Name() : "?");
  return t.empty() ? "copied" : t;
}

}  // namespace

int RunConnectorsDescribe(const std::string& kind) {
  const std::vector<std::string> kinds = ConnectorKinds();
  if (!kind.empty() && std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
    std::cerr << "crmbridge: unknown kind '" << kind << "' (known: " << JoinWords(kinds) << ")\n";
    return kExitUsage;
  }
  bool first = true;
  for (const std::string& k : kinds) {
    if (!kind.empty() && k != kind) continue;
    const Capabilities& can = *CapabilitiesOfKind(k);
    std::printf("%s%s\n", first ? "" : "\n", k.c_str());
    first = false;
    std::printf("  objects:    %s\n", JoinWords(can.objects).c_str());
    if (!can.written_only.empty())
      std::printf("              written, not read: %s\n", JoinWords(can.written_only).c_str());
    if (!can.other_objects_doc.empty())
      std::printf("              or %s\n", can.other_objects_doc.c_str());
    if (can.plain_field_names)
      std::printf("  fields:     names of letters, digits and _, starting with a letter or _\n");
    std::string where;  // the fields that may hold one, when the kind says
    for (const auto& [object, fields] : can.reference_fields)
      for (const std::string& field : fields)
        where += (where.empty() ? " (in " : ", ") + object + "." + field;
    if (!where.empty()) where += ")";
    if (can.references_name_objects) where += " (native: the object of the record referred to)";
    std::printf("  references: %s%s%s\n", can.carries_references ? "yes" : "no", where.c_str(),
                can.binds_lookups ? " (bind: a navigation property for polymorphic lookups)" : "");
    if (can.provisions_portal_access) std::printf("  portal access: provisions users and grants\n");
    for (const auto& [object, params] : can.required_params)
      std::printf("  required:   %s need %s (in params, or a field written to it)\n",
                  object.c_str(), JoinWords(params).c_str());
    auto specs = [&](const char* title, const std::vector<ParamSpec>& list) {
      if (list.empty()) {
        std::printf("  %-11s none\n", title);
        return;
      }
      std::printf("  %s\n", title);
      for (const ParamSpec& p : list) {
        std::string facts = p.type == "name" ? "name (letters, digits and _)" : p.type;
        if (!p.values.empty()) facts += ", one of " + JoinWords(p.values);
        if (!p.default_value.empty()) facts += ", default " + p.default_value;
        if (!p.objects.empty()) facts += ", for " + JoinWords(p.objects);
        std::printf("    %-18s %s\n    %-18s %s\n", p.name.c_str(), facts.c_str(), "",
                    p.doc.c_str());
      }
    };
    specs("params:", can.params);
    std::printf("  in crmbridge.yaml: auth %s\n", JoinWords(can.auth_keys).c_str());
    if (!can.search_paths.empty())
      std::printf("  search_rate_limit: the budget of requests to %s\n",
                  JoinWords(can.search_paths).c_str());
    specs("options:", can.options);
  }
  return kExitOk;
}

int RunMappingsValidate(const GlobalOptions& global, const MappingsOptions& options) {
  std::string note;
  auto plan = LoadMappingsFor(global, options, &note);
  if (!note.empty()) std::cerr << "crmbridge: " << note << "\n";
  if (!plan.ok()) {
    std::cerr << plan.status().message() << "\n";
    return kExitUsage;
  }
  std::printf("OK: %zu entities, %zu system mappings", (*plan)->entities().size(),
              (*plan)->mappings().size());
  for (const SystemEntityMapping& m : (*plan)->mappings())
    std::printf("\n  %-12s %-12s %-16s %zu fields", m.system.c_str(), m.entity.c_str(),
                m.object.c_str(), m.fields.size());
  std::printf("\n");
  return kExitOk;
}

int RunMappingsPreview(const GlobalOptions& global, const MappingsOptions& options) {
  std::string note;
  auto plan = LoadMappingsFor(global, options, &note);
  if (!plan.ok()) {
    std::cerr << plan.status().message() << "\n";
    return kExitUsage;
  }
  const SystemEntityMapping* source = (*plan)->Find(options.system, options.entity);
  if (source == nullptr) {
    std::cerr << "crmbridge: the mapping has no " << options.entity << " for system "
              << options.system << "\n";
    return kExitUsage;
  }
  struct stat record_file {};
  if (stat(options.record_path.c_str(), &record_file) != 0 || !S_ISREG(record_file.st_mode)) {
    // A pipe would be waited on without end.
    std::cerr << "crmbridge: " << options.record_path << " is not a plain file\n";
    return kExitUsage;
  }
  std::ifstream in(options.record_path);
  json record = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!in || record.is_discarded() || !record.is_object()) {
    std::cerr << "crmbridge: " << options.record_path << " is not a JSON object of native fields\n";
    return kExitUsage;
  }
  // A HubSpot-style {"properties": {...}} wrapper is accepted as well as bare fields.
  if (record.contains("properties") && record["properties"].is_object()) record = record["properties"];
  // A record of another system (or --system naming the wrong one) maps to nothing at all.
  bool read_any = false;
  std::vector<std::string> read_fields;
  for (const FieldMap& f : source->fields)
    if (f.reads()) {
      read_fields.push_back(f.native);
      read_any = read_any || record.contains(f.native);
    }
  if (read_fields.empty()) {
    std::cerr << "crmbridge: the mapping reads no field of " << options.system << "."
              << options.entity << " (it only writes them): preview a record of a system it "
              << "reads " << options.entity << " from\n";
    return kExitUsage;
  }
  if (!read_any)
    std::cerr << "crmbridge: warning: " << options.record_path << " holds none of the fields "
              << options.system << "." << options.entity << " reads (" << JoinWords(read_fields)
              << "): is it a " << options.system << " " << source->object << " record?\n";
  auto canonical = MappingPlan::ToCanonical(*source, record);
  if (!canonical.ok()) {
    std::cerr << "crmbridge: the record cannot be mapped: " << canonical.status().message() << "\n";
    return kExitDeadLettered;
  }
  json out = {{"system", options.system}, {"entity", options.entity},
              {"canonical", canonical->fields}, {"targets", json::object()}};
  for (const SystemEntityMapping& target : (*plan)->mappings()) {
    if (target.entity != options.entity || target.system == options.system) continue;
    auto native = MappingPlan::ToNative(target, canonical->fields, /*creating=*/true);
    json fields = json::array();
    for (const FieldMap& f : target.fields) {
      if (!f.writes()) continue;
      json row = {{"native", f.native}, {"canonical", f.canonical}, {"transforms", Describe(f)}};
      if (native.ok() && native->contains(f.native)) row["value"] = (*native)[f.native];
      fields.push_back(row);
    }
    out["targets"][target.system] = {{"object", target.object}, {"fields", fields}};
    if (!native.ok()) out["targets"][target.system]["error"] = native.status().message();
  }
  // A record a target cannot take would be dead-lettered there: the exit code says so, as it does
  // for a record that cannot be read.
  bool targets_failed = false;
  for (const auto& [system, t] : out["targets"].items()) targets_failed |= t.contains("error");
  if (options.json) {
    std::cout << JsonText(out) << std::endl;
    return targets_failed ? kExitDeadLettered : kExitOk;
  }
  std::printf("%s %s (%s) as canonical %s:\n", options.system.c_str(), source->object.c_str(),
              options.record_path.c_str(), options.entity.c_str());
  for (const FieldMap& f : source->fields) {
    if (!f.reads()) continue;
    std::printf("  %-14s <- %-22s [%s] = %s\n", f.canonical.c_str(), f.native.c_str(),
                Describe(f).c_str(),
                canonical->fields.contains(f.canonical) ? canonical->fields[f.canonical].dump().c_str()
                                                        : "(absent)");
  }
  for (const auto& [system, t] : out["targets"].items()) {
    std::printf("\n%s %s:\n", system.c_str(), t["object"].get<std::string>().c_str());
    for (const json& row : t["fields"])
      std::printf("  %-22s <- %-14s [%s] = %s\n", row["native"].get<std::string>().c_str(),
                  row["canonical"].get<std::string>().c_str(),
                  row["transforms"].get<std::string>().c_str(),
                  row.contains("value") ? row["value"].dump().c_str() : "(not written)");
    if (t.contains("error")) std::printf("  error: %s\n", t["error"].get<std::string>().c_str());
  }
  return targets_failed ? kExitDeadLettered : kExitOk;
}

namespace {

// The audit trail from --since on, of merges (`merges`) or of everything else (portal access);
// nullopt after the error is printed, with the exit code in *rc.
std::optional<std::vector<AuditEntry>> ReadAudit(const GlobalOptions& global,
                                                 const AuditOptions& options, const char* command,
                                                 bool merges, int* rc) {
  SetUpLogging(global);
  int64_t since_ms = 0;
  if (!ParseTimeOption(command, "--since", options.since, &since_ms)) {
    *rc = kExitUsage;
    return std::nullopt;
  }
  Loaded loaded;
  if ((*rc = Load(global, /*need_plan=*/false, &loaded, /*existing_state=*/true)) != kExitOk)
    return std::nullopt;
  auto entries = loaded.store->ListAudit(since_ms, 0);
  if (!entries.ok()) {
    std::cerr << "crmbridge: cannot read the audit trail: " << entries.status().ToString() << "\n";
    *rc = kExitInternal;
    return std::nullopt;
  }
  std::vector<AuditEntry> kept;
  for (AuditEntry& e : *entries)
    if ((e.action == "merge") == merges) kept.push_back(std::move(e));
  return kept;
}

}  // namespace

int RunAuditMerges(const GlobalOptions& global, const AuditOptions& options) {
  int rc = kExitOk;
  auto entries = ReadAudit(global, options, "crmbridge audit merges", /*merges=*/true, &rc);
  if (!entries) return rc;
  if (options.json) {
    json j = json::array();
    for (const AuditEntry& e : *entries)
      j.push_back({{"id", e.id}, {"at", FormatTime(e.at_ms)}, {"system", e.system},
                   {"record", e.subject}, {"detail", e.detail}});
    std::cout << JsonText(j) << "\n";
    return kExitOk;
  }
  if (entries->empty()) {
    std::cout << "No merges" << (options.since.empty() ? "" : " since " + options.since) << ".\n";
    return kExitOk;
  }
  for (const AuditEntry& e : *entries) {
    auto text = [&](const char* key) {
      return e.detail.contains(key) && e.detail[key].is_string() ? e.detail[key].get<std::string>()
                                                                 : std::string("?");
    };
    std::cout << FormatTime(e.at_ms) << "  " << e.system << "  " << text("entity") << " "
              << text("absorbed") << " merged into " << text("into") << "  record " << e.subject;
    if (e.detail.contains("absorbed_record"))
      std::cout << " (absorbed record " << text("absorbed_record") << ")";
    std::cout << "\n";
  }
  return kExitOk;
}

int RunAuditPortal(const GlobalOptions& global, const AuditOptions& options) {
  int rc = kExitOk;
  auto entries = ReadAudit(global, options, "crmbridge audit portal", /*merges=*/false, &rc);
  if (!entries) return rc;
  if (options.json) {
    json j = json::array();
    for (const AuditEntry& e : *entries)
      j.push_back({{"id", e.id}, {"at", FormatTime(e.at_ms)}, {"action", e.action},
                   {"system", e.system}, {"contact", e.subject}, {"detail", e.detail}});
    std::cout << JsonText(j) << "\n";
    return kExitOk;
  }
  if (entries->empty()) {
    std::cout << "No portal access changes" << (options.since.empty() ? "" : " since " + options.since)
              << ".\n";
    return kExitOk;
  }
  for (const AuditEntry& e : *entries) {
    std::cout << FormatTime(e.at_ms) << "  " << e.action << std::string(8 - std::min<size_t>(7, e.action.size()), ' ')
              << e.system << "  contact " << e.subject;
    for (const char* key : {"email", "user", "grant", "property", "reason"})
      if (e.detail.contains(key) && !e.detail[key].is_null())
        std::cout << "  " << key << "=" << (e.detail[key].is_string() ? e.detail[key].get<std::string>()
                                                                    : e.detail[key].dump());
    std::cout << "\n";
  }
  return kExitOk;
}

int RunDlqList(const GlobalOptions& global, const DlqOptions& options) {
  SetUpLogging(global);
  Loaded loaded;
  // A mistyped state path is an error, not a new empty store.
  if (int rc = Load(global, /*need_plan=*/false, &loaded, /*existing_state=*/true); rc != kExitOk)
    return rc;
  auto dead = loaded.store->ListDeadLetters(options.limit);
  if (!dead.ok()) {
    std::cerr << "crmbridge: cannot read the dead letters: " << dead.status().ToString() << "\n";
    return kExitInternal;
  }
  if (options.json) {
    json j = json::array();
    for (const DeadLetter& d : *dead)
      j.push_back({{"id", d.id},
                   {"system", d.item.system},
                   {"entity", d.item.entity},
                   {"canonical_id", d.item.canonical_id},
                   {"native_id", d.item.native_id},
                   {"op", OutboxOpName(d.item.op)},
                   {"attempts", d.item.attempts},
                   {"http_status", d.http_status},
                   {"reason", d.reason},
                   {"failed", FormatTime(d.failed_ms)},
                   {"payload", d.item.payload}});
    std::cout << JsonText(j) << std::endl;
    return kExitOk;
  }
  if (dead->empty()) {
    std::printf("No dead letters.\n");
    return kExitOk;
  }
  for (const DeadLetter& d : *dead) {
    std::printf("#%lld  %s  %s %s %s (%s)  attempts %d\n    %s\n",
                static_cast<long long>(d.id), FormatTime(d.failed_ms).c_str(),
                OutboxOpName(d.item.op), d.item.system.c_str(), d.item.entity.c_str(),
                d.item.native_id.empty() ? d.item.canonical_id.c_str() : d.item.native_id.c_str(),
                d.item.attempts, d.reason.c_str());
  }
  std::printf("\nReplay one with `crmbridge dlq replay ID`, all with `crmbridge dlq replay --all`;\n"
              "they are written on the next sync.\n");
  return kExitOk;
}

int RunDlqReplay(const GlobalOptions& global, const DlqOptions& options) {
  SetUpLogging(global);
  Loaded loaded;
  // A mistyped state path is an error, not a new empty store.
  if (int rc = Load(global, /*need_plan=*/false, &loaded, /*existing_state=*/true); rc != kExitOk)
    return rc;
  std::vector<int64_t> ids = options.replay_ids;
  // An id given twice is replayed once.
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (options.replay_all) {
    auto dead = loaded.store->ListDeadLetters(1 << 30);
    if (!dead.ok()) {
      std::cerr << "crmbridge: cannot read the dead letters: " << dead.status().ToString() << "\n";
      return kExitInternal;
    }
    for (const DeadLetter& d : *dead) ids.push_back(d.id);
    // Nothing failed: --all has done what it was asked (a script may run it after every sync).
    if (ids.empty()) {
      std::printf("No dead letters to replay.\n");
      return kExitOk;
    }
  }
  if (ids.empty()) {
    std::cerr << "crmbridge: name the dead letters to replay (IDs from `crmbridge dlq list`) or "
                 "use --all\n";
    return kExitUsage;
  }
  int failed = 0;
  for (int64_t id : ids) {
    Status s = loaded.store->ReplayDeadLetter(id, Clock::Real()->NowMillis());
    if (!s.ok()) {
      std::cerr << "crmbridge: dead letter #" << id << ": " << s.ToString() << "\n";
      ++failed;
    }
  }
  // Only what moved is reported moved: every id refused says so above, and alone it says nothing
  // more.
  if (ids.size() > static_cast<size_t>(failed))
    std::printf("%zu dead letter(s) moved back to the outbox; the next sync writes them.\n",
                ids.size() - failed);
  return failed > 0 ? kExitUsage : kExitOk;
}

int RunReportOnboarding(const GlobalOptions& global, const ReportOptions& options) {
  SetUpLogging(global);
  const char* me = "crmbridge report onboarding";
  report::ReportOptions ro;
  ro.entity = options.entity;
  ro.include_ended = options.all;
  const auto stuck = ParseDuration(options.stuck_after);
  const auto escalate = ParseDuration(options.escalate_after);
  // The report counts whole days (days in stage, days open): a threshold of part of a day would
  // be shown as another number of days than it applies.
  using report::kDayMs;
  if (!stuck || stuck->count() <= 0 || stuck->count() % kDayMs != 0) {
    std::cerr << me << ": --stuck-after \"" << options.stuck_after
              << "\" is not a whole number of days of 1 or more (e.g. 30d, 14d, 1d)\n";
    return kExitUsage;
  }
  if (!escalate || escalate->count() <= 0 || escalate->count() % kDayMs != 0) {
    std::cerr << me << ": --escalate-after \"" << options.escalate_after
              << "\" is not a whole number of days of 1 or more (e.g. 60d)\n";
    return kExitUsage;
  }
  ro.stuck_after_ms = stuck->count();
  ro.escalate_after_ms = escalate->count();
  ro.now_ms = Clock::Real()->NowMillis();
  if (!ParseTimeOption(me, "--as-of", options.as_of, &ro.now_ms)) return kExitUsage;

  Loaded loaded;
  if (int rc = Load(global, /*need_plan=*/true, &loaded, /*existing_state=*/true); rc != kExitOk) return rc;
  if (Status s = report::StagesFromPlan(*loaded.plan, &ro); !s.ok()) {
    std::string entities;
    for (const CanonicalEntity& e : loaded.plan->entities()) entities += (entities.empty() ? "" : ", ") + e.name;
    std::cerr << me << ": " << s.message() << " (the mapping's entities: " << entities << ")\n";
    return kExitUsage;
  }
  if (ro.end_stages.empty())
    spdlog::warn("{}.{} declares no end_values, so no stage stops the clock (docs/MAPPINGS.md)",
                 ro.entity, ro.stage_field);
  // The output path is checked before the store is read for a report it could not take.
  if (!options.html_path.empty())
    if (std::string problem = OutputPathProblem(options.html_path, loaded); !problem.empty()) {
      std::cerr << me << ": --html " << options.html_path << ": " << problem << "\n";
      return kExitUsage;
    }
  auto built = report::LoadOnboardingReport(*loaded.store, ro);
  if (!built.ok()) {
    std::cerr << me << ": cannot read the state store: " << built.status().ToString() << "\n";
    return kExitInternal;
  }
  if (!options.html_path.empty()) {
    // Written next to its final name and renamed, so a browser never shows half a report.
    const std::string tmp = options.html_path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      // It names customers, as the state store does: readable by its owner alone, like it.
      chmod(tmp.c_str(), 0600);
      out << report::RenderHtml(*built);
      if (!out.flush()) {
        std::cerr << me << ": cannot write " << options.html_path << "\n";
        std::remove(tmp.c_str());
        return kExitUsage;
      }
    }
    if (std::rename(tmp.c_str(), options.html_path.c_str()) != 0) {
      std::cerr << me << ": cannot write " << options.html_path << "\n";
      std::remove(tmp.c_str());
      return kExitUsage;
    }
    std::printf("Wrote %s: %d open onboardings, %d stuck %lld+ days in their stage, %d open %lld+ days.\n",
                options.html_path.c_str(), built->open, built->stuck,
                static_cast<long long>(report::WholeDays(ro.stuck_after_ms)), built->overdue,
                static_cast<long long>(report::WholeDays(ro.escalate_after_ms)));
    return kExitOk;
  }
  if (options.json) {
    std::cout << JsonText(report::RenderJson(*built)) << std::endl;
    return kExitOk;
  }
  std::fputs(report::RenderText(*built).c_str(), stdout);
  return kExitOk;
}

}  // namespace crmbridge::cli
