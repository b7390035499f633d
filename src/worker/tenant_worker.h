// TenantWorker: what `crmbridge worker` does. Runs tenants' syncs from the tenant registry on
// PostgreSQL (state/tenant_registry.h) until stopped, side by side with any number of other
// workers on any machines.
//
//   worker threads (--concurrency)      each: claim one due tenant (SKIP LOCKED), run it, release
//   renewer thread                      every ttl/3, renews each claim in hand; a claim found lost
//                                       (another worker has the tenant now) stops its run
//
// A run's writes to the tenant's state are fenced by its claim's epoch (PostgresStoreOptions::
// fence): renewing is what keeps the claim, and the fence is what makes a lost claim harmless.
// Stopping (SIGTERM) takes no new claim and stops the runs in hand after their batch in flight,
// as `crmbridge sync` does; their claims are released.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "state/rate_budgets.h"
#include "state/tenant_registry.h"

namespace crmbridge {

struct TenantWorkerOptions {
  std::string holder;           // this worker, as claims name it ("host:pid:uuid")
  int concurrency = 2;          // tenants run at once
  int64_t lease_ttl_ms = 120'000;
  int64_t poll_ms = 5'000;      // how often an idle worker looks for due tenants
};

// How one run of a tenant ended, as the registry records it.
struct TenantOutcome {
  std::string outcome;  // "ok", "dead-lettered", "unreachable", "failed", "config", "lease lost"
  std::string error;    // "" when ok
};

// Runs the tenant of `claim` once; stops early when *stop becomes true.
using TenantRunner = std::function<TenantOutcome(const TenantClaim& claim,
                                                 const std::atomic<bool>* stop)>;

class TenantWorker {
 public:
  // `registry` is not owned and must outlive the worker.
  TenantWorker(TenantRegistry* registry, TenantWorkerOptions options, TenantRunner runner);
  ~TenantWorker();

  // Works until *stop is true, then waits for the runs in hand and returns.
  void Run(const std::atomic<bool>* stop);

  // Runs ended since start, and those whose claim was found lost.
  int64_t runs() const { return runs_.load(); }
  int64_t lost() const { return lost_.load(); }

 private:
  struct Active {
    TenantClaim claim;
    std::atomic<bool> stop{false};
    int64_t renewed_steady_ms = 0;
  };
  void WorkLoop(const std::atomic<bool>* stop);
  void RenewLoop(const std::atomic<bool>* stop);
  // Sleeps up to `ms`, waking early on stop.
  void Nap(int64_t ms, const std::atomic<bool>* stop);

  TenantRegistry* registry_;
  const TenantWorkerOptions options_;
  const TenantRunner runner_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Active*> active_;  // by run id; guarded by mu_
  std::atomic<int64_t> runs_{0}, lost_{0};
  std::atomic<bool> done_{false};
};

// The runner `crmbridge worker` uses: loads the tenant's configuration from its path (a broken one
// is outcome "config", its problems at their file:line:column in the error), opens its state in
// `state_url` under the tenant's schema fenced by the claim's epoch, and runs one sync, or the
// backfill the claim's job asks for (JSON: {"system", "entity", "since_ms"}). With `budgets`,
// the run records the vendor account each of its systems spends and paces its requests in budgets
// shared with every other tenant on the same account; without, each system keeps its own.
TenantOutcome RunTenantOnce(const TenantClaim& claim, const std::string& state_url,
                            const std::string& holder, int64_t lease_ttl_ms,
                            const std::atomic<bool>* stop, AccountBudgets* budgets = nullptr);

}  // namespace crmbridge
