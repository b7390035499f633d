// What a shared rate budget costs a request: the same requests' acquisitions from a local
// TokenBucket and from a budget two tenants share in PostgreSQL (state/rate_budgets.h), and how
// many slots per second one account's budget hands out when several workers take them at once.
//
//   crmbridge_bench_rate_budget --state URL [--takes 2000] [--workers 4]
//
// URL is a database of its own (bench/workers_scale.sh starts a throwaway one and runs this): the
// bench registers two tenants there for the time it runs.
// The budget is never the limit here (its capacity is far above the rate taken, or its slots are
// taken without sleeping until them): what is measured is the cost of taking a slot, a round trip
// and one locked statement, at HubSpot's capacity (100 per 10 s) and at Dynamics 365's (6000 per
// 300 s, the most slots a window can hold). Exits 1 when a take failed or the shared budget did not
// count the takes.
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "src/core/clock.h"
#include "src/core/rate_limiter.h"
#include "state/postgres_store.h"
#include "state/rate_budgets.h"
#include "state/tenant_registry.h"

namespace crmbridge::bench {
namespace {

int Main(int argc, char** argv) {
  Flags flags(argc, argv,
              "What a rate budget shared in PostgreSQL costs a request, against a local one.");
  const std::string url =
      flags.Text("state", "", "a PostgreSQL database of its own (postgresql://...), required",
                 "URL");
  const int takes = static_cast<int>(flags.Int("takes", 2000, "slots taken per measurement"));
  const int workers = static_cast<int>(flags.Int("workers", 4, "threads taking slots at once"));
  if (const int rc = flags.Done(); rc >= 0) return rc;
  if (url.empty() || takes < 1 || workers < 1) {
    std::fprintf(stderr, "--state is required, and --takes and --workers are at least 1\n");
    return 2;
  }
  auto registry = TenantRegistry::Open(url);
  if (!registry.ok()) {
    std::fprintf(stderr, "%s\n", registry.status().ToString().c_str());
    return 1;
  }
  auto budgets = AccountBudgets::Open(url);
  if (!budgets.ok()) {
    std::fprintf(stderr, "%s\n", budgets.status().ToString().c_str());
    return 1;
  }
  // Two tenants on one account: its budgets are shared.
  const std::string account = "bench:" + std::to_string(getpid());
  const std::vector<std::string> tenants = {"bench-rate-a-" + std::to_string(getpid()),
                                            "bench-rate-b-" + std::to_string(getpid())};
  for (const std::string& tenant : tenants) {
    Status added = (*registry)->Add(tenant, "/dev/null", 3'600'000);
    if (!added.ok() && added.code() != StatusCode::kAlreadyExists) {
      std::fprintf(stderr, "%s\n", added.ToString().c_str());
      return 1;
    }
    if (Status s = (*budgets)->RecordAccounts(tenant, {{"hubspot", account}}); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::printf("rate budget: %d takes on %s\n", takes, Machine().c_str());

  // 1. Local and shared acquisitions of a budget that never makes them wait (so many per 1 ms
  // that only the cost of taking a slot is measured), one thread.
  auto per_acquire_us = [takes](RateBudget* budget) {
    const Sample a = Sample::Now();
    for (int i = 0; i < takes; ++i) budget->Acquire();
    const Sample b = Sample::Now();
    return std::make_pair((b.wall_s - a.wall_s) * 1e6 / takes, (b.cpu_s() - a.cpu_s()) * 1e6 / takes);
  };
  TokenBucket local(1'000'000, std::chrono::milliseconds(1), Clock::Real());
  auto shared = (*budgets)->Budget(account, "free", 1000, std::chrono::milliseconds(1), Clock::Real());
  const auto [local_us, local_cpu_us] = per_acquire_us(&local);
  const auto [shared_us, shared_cpu_us] = per_acquire_us(shared.get());
  std::printf("  acquire: local %.2f us, shared %.0f us (%.0f us of this process's CPU)\n", local_us,
              shared_us, shared_cpu_us);

  // 2. Taking slots of a full window, at each vendor's capacity: the statement reads the
  // capacity-th latest slot, so a larger window costs more.
  struct Vendor {
    const char* name;
    int capacity;
    int64_t window_ms;
    double us = 0;
  };
  Vendor vendors[] = {{"hubspot", 100, 10'200}, {"dynamics365", 6000, 306'000}};
  for (Vendor& v : vendors) {
    const std::string key = account + "|" + v.name;
    // The window full from the start: `capacity` slots taken a second ago.
    if (Status s = (*budgets)->Count(key, std::vector<int64_t>(v.capacity, -1000)); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    const double t0 = Sample::Now().wall_s;
    int64_t last_wait = 0;
    for (int i = 0; i < takes; ++i) {
      auto wait = (*budgets)->Take(key, v.capacity, v.window_ms, false);
      if (!wait.ok()) {
        std::fprintf(stderr, "%s\n", wait.status().ToString().c_str());
        return 1;
      }
      last_wait = *wait;
    }
    v.us = (Sample::Now().wall_s - t0) * 1e6 / takes;
    // The window was full: every slot handed out lies ahead.
    if (last_wait <= 0) {
      std::fprintf(stderr, "the %s budget handed out slot %d at once, past its capacity\n", v.name,
                   takes);
      return 1;
    }
    std::printf("  take, window full at %s's capacity (%d): %.0f us\n", v.name, v.capacity, v.us);
  }

  // 3. Several workers (a connection each) taking one account's slots at once.
  std::vector<std::unique_ptr<AccountBudgets>> conns;
  for (int w = 0; w < workers; ++w) {
    auto b = AccountBudgets::Open(url);
    if (!b.ok()) return 1;
    conns.push_back(std::move(*b));
  }
  std::atomic<int> failed{0};
  const double t0 = Sample::Now().wall_s;
  std::vector<std::thread> threads;
  for (auto& conn : conns)
    threads.emplace_back([&conn, &failed, &account, takes] {
      for (int i = 0; i < takes; ++i)
        if (!conn->Take(account + "|contended", 100, 10'200, false).ok()) ++failed;
    });
  for (std::thread& t : threads) t.join();
  const double per_s = workers * takes / (Sample::Now().wall_s - t0);
  if (failed > 0) {
    std::fprintf(stderr, "%d takes failed\n", failed.load());
    return 1;
  }
  std::printf("  %d workers taking one account's slots at once: %.0f slots/s\n", workers, per_s);
  for (const std::string& tenant : tenants) (void)(*registry)->Remove(tenant, false);
  std::printf("JSON {\"takes\":%d,\"local_acquire_us\":%.3f,\"shared_acquire_us\":%.1f,"
              "\"shared_acquire_cpu_us\":%.1f,\"take_us_hubspot\":%.1f,\"take_us_dynamics365\":%.1f,"
              "\"workers\":%d,\"contended_slots_per_s\":%.0f}\n",
              takes, local_us, shared_us, shared_cpu_us, vendors[0].us, vendors[1].us, workers,
              per_s);
  std::printf("reproduce: crmbridge_bench_rate_budget --state %s --takes %d --workers %d\n",
              RedactPostgresUrl(url).c_str(), takes, workers);
  return 0;
}

}  // namespace
}  // namespace crmbridge::bench

int main(int argc, char** argv) { return crmbridge::bench::Main(argc, argv); }
