// TenantWorker: see src/worker/tenant_worker.h.
#include "src/worker/tenant_worker.h"

#include <chrono>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "connectors/registry.h"
#include "src/config/app_config.h"
#include "src/core/clock.h"
#include "src/engine/bootstrap.h"
#include "src/engine/sync_engine.h"
#include "state/postgres_store.h"

namespace crmbridge {
namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TenantWorker::TenantWorker(TenantRegistry* registry, TenantWorkerOptions options, TenantRunner runner)
    : registry_(registry), options_(std::move(options)), runner_(std::move(runner)) {}

TenantWorker::~TenantWorker() = default;

void TenantWorker::Run(const std::atomic<bool>* stop) {
  done_ = false;
  std::thread renewer([this, stop] { RenewLoop(stop); });
  std::vector<std::thread> workers;
  for (int i = 0; i < std::max(1, options_.concurrency); ++i)
    workers.emplace_back([this, stop] { WorkLoop(stop); });
  for (std::thread& t : workers) t.join();
  done_ = true;
  cv_.notify_all();
  renewer.join();
}

void TenantWorker::Nap(int64_t ms, const std::atomic<bool>* stop) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  // Woken at least every 100 ms to see a stop signal (set by a signal handler, which cannot
  // notify a condition variable).
  while (!stop->load() && !done_.load() && std::chrono::steady_clock::now() < until)
    cv_.wait_for(lock, std::min(std::chrono::milliseconds(100),
                                std::chrono::duration_cast<std::chrono::milliseconds>(
                                    until - std::chrono::steady_clock::now() +
                                    std::chrono::milliseconds(1))));
}

void TenantWorker::WorkLoop(const std::atomic<bool>* stop) {
  while (!stop->load()) {
    auto claims = registry_->ClaimDue(options_.holder, options_.lease_ttl_ms, 1);
    if (!claims.ok()) {
      spdlog::error("worker: claiming tenants: {}", claims.status().ToString());
      Nap(options_.poll_ms, stop);
      continue;
    }
    if (claims->empty()) {
      Nap(options_.poll_ms, stop);
      continue;
    }
    Active active;
    active.claim = claims->front();
    active.renewed_steady_ms = SteadyMs();
    const TenantClaim& claim = active.claim;
    {
      std::lock_guard<std::mutex> lock(mu_);
      active_[claim.run_id] = &active;
    }
    spdlog::info("worker: tenant {}: {} (epoch {})", claim.name,
                 claim.job.empty() ? "sync" : "backfill", claim.epoch);
    TenantOutcome outcome = runner_(claim, &active.stop);
    {
      std::lock_guard<std::mutex> lock(mu_);
      active_.erase(claim.run_id);
    }
    // A claim left unreleased waits out its lease (and a backfill done would run again): a failed
    // release is tried again, a few times, before that is left to the lease.
    Status released = registry_->Release(claim, outcome.outcome, outcome.error);
    for (int attempt = 1; !released.ok() && attempt < 4 && !stop->load(); ++attempt) {
      spdlog::warn("worker: tenant {}: releasing it: {}", claim.name, released.ToString());
      Nap(1000 * attempt, stop);
      released = registry_->Release(claim, outcome.outcome, outcome.error);
    }
    if (!released.ok())
      spdlog::error("worker: tenant {}: releasing it: {}; its lease runs out instead", claim.name,
                    released.ToString());
    ++runs_;
    if (outcome.outcome == "ok")
      spdlog::info("worker: tenant {}: done", claim.name);
    else
      spdlog::warn("worker: tenant {}: {}: {}", claim.name, outcome.outcome, outcome.error);
  }
}

void TenantWorker::RenewLoop(const std::atomic<bool>* stop) {
  const int64_t every = std::max<int64_t>(options_.lease_ttl_ms / 3, 1);
  while (!done_.load()) {
    std::vector<TenantClaim> due;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, active] : active_) {
        if (stop->load()) active->stop = true;  // the runs in hand stop after their batch
        const int64_t since = SteadyMs() - active->renewed_steady_ms;
        // Not renewed for nearly a whole lease (the registry unreachable): another worker may
        // have the tenant soon, so this run stops before it writes more to the vendors.
        if (since >= options_.lease_ttl_ms - every && !active->stop.exchange(true))
          spdlog::error("worker: tenant {}: its claim could not be renewed for {} ms; this run "
                        "stops", active->claim.name, since);
        if (since >= every) due.push_back(active->claim);
      }
    }
    // Renewed outside mu_, from copies: a slow server must not hold up the work loops, and a run
    // that ends meanwhile takes its Active with it. The outcome is applied only to a run still in
    // hand.
    for (const TenantClaim& claim : due) {
      auto renewed = registry_->Renew(claim, options_.lease_ttl_ms);
      if (!renewed.ok()) {
        spdlog::error("worker: tenant {}: renewing its claim: {}", claim.name,
                      renewed.status().ToString());
        continue;  // tried again next pass; the fence keeps the state safe meanwhile
      }
      std::lock_guard<std::mutex> lock(mu_);
      auto it = active_.find(claim.run_id);
      if (it == active_.end()) continue;
      it->second->renewed_steady_ms = SteadyMs();
      if (!*renewed) {
        ++lost_;
        spdlog::error("worker: tenant {}: its claim (epoch {}) was taken over by another worker; "
                      "this run stops and its commits are refused",
                      claim.name, claim.epoch);
        it->second->stop = true;
      }
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(every, 500)));
  }
}

TenantOutcome RunTenantOnce(const TenantClaim& claim, const std::string& state_url,
                            const std::string& holder, int64_t lease_ttl_ms,
                            const std::atomic<bool>* stop, AccountBudgets* budgets) {
  auto config = LoadTenantConfig(claim.config_path, /*warnings=*/nullptr);
  if (!config.ok()) return {"config", config.status().message()};
  if (Status keys = CheckSystemKeysOf(*config); !keys.ok()) return {"config", keys.message()};
  auto plan = LoadPlanFor(*config);
  if (!plan.ok()) return {"config", plan.status().message()};
  // The claim is the lease: the engine's own, in the tenant's schema, follows its epoch and ttl.
  config->sync.lease_ttl = std::chrono::milliseconds(lease_ttl_ms);

  PostgresStoreOptions store_options;
  store_options.schema = claim.schema;
  store_options.fence.tenant = claim.name;
  store_options.fence.epoch = claim.epoch;
  // A transaction left open by a paused worker ends within a lease, so the share lock it holds on
  // the tenant's registry row never keeps the tenant from being taken over for longer.
  store_options.idle_in_transaction_timeout_ms = static_cast<int>(lease_ttl_ms);
  auto store = OpenPostgresStore(state_url, store_options);
  if (!store.ok()) return {"failed", store.status().ToString()};
  RateBudgetFactory shared_budgets;
  if (budgets != nullptr) {
    std::map<std::string, std::string> accounts;
    for (const std::string& system : (*plan)->systems())
      if (auto it = config->systems.find(system); it != config->systems.end())
        accounts[system] = AccountOf(it->second);
    // Unrecorded, the accounts count as this tenant's alone: its own pace, as before.
    if (Status s = budgets->RecordAccounts(claim.name, accounts); !s.ok())
      spdlog::warn("tenant {}: its vendor accounts were not recorded ({}); its rate limits are "
                   "its own this run", claim.name, s.ToString());
    shared_budgets = [budgets](const SystemConfig& system, const std::string& name,
                               const RateLimitConfig& limit) {
      return budgets->Budget(AccountOf(system), name, limit.requests, limit.per, Clock::Real());
    };
  }
  auto connectors = BuildConnectors(*config, **plan, Clock::Real(), nullptr, shared_budgets);
  if (!connectors.ok()) return {"config", connectors.status().message()};
  SyncEngine engine(&*config, *plan, store->get(), std::move(*connectors), Clock::Real());

  RunOptions run;
  run.mode = "sync";
  run.holder = holder;
  run.stop = stop;
  if (!claim.job.empty()) {
    const nlohmann::json job = nlohmann::json::parse(claim.job, nullptr, false);
    if (!job.is_object() || !job.value("system", nlohmann::json()).is_string())
      return {"failed", "the backfill asked for is not one this crmbridge reads: " + claim.job};
    run.mode = "backfill";
    run.backfill_system = job["system"].get<std::string>();
    if (job.contains("entity") && job["entity"].is_string())
      run.backfill_entity = job["entity"].get<std::string>();
    if (job.contains("since_ms") && job["since_ms"].is_number_integer())
      run.since_ms = job["since_ms"].get<int64_t>();
  }
  auto summary = engine.RunOnce(run);
  if (!summary.ok()) {
    // A commit refused by the fence fails the run: the claim had been lost.
    return {"failed", summary.status().ToString()};
  }
  if (summary->lease_lost || summary->lease_denied)
    return {"lease lost", "another worker claimed the tenant while this run was under way"};
  if (!summary->unreachable.empty()) {
    std::string why;
    for (const auto& [system, reason] : summary->unreachable)
      why += (why.empty() ? "" : "; ") + system + ": " + reason;
    return {"unreachable", why};
  }
  if (summary->TotalDeadLettered() > 0)
    return {"dead-lettered", std::to_string(summary->TotalDeadLettered()) + " write(s) dead-lettered"};
  if (stop->load()) return {"stopped", "stopped before the run was over; the next claim goes on"};
  return {"ok", ""};
}

}  // namespace crmbridge
