// AccountBudgets: the rate limits of a vendor account, shared in PostgreSQL by the tenants that
// spend it, whichever workers run them.
//
// A vendor counts requests per account (a HubSpot private app, a Dynamics 365 application user in
// one organization: connectors' AccountOf). Two tenants on one account, each pacing itself with
// its own TokenBucket, would together send twice what the account allows. So each run records
// which account each of its systems spends (tenant_accounts in the registry), and a budget whose
// account more than one tenant spends keeps its slots in the registry instead of in the process:
//
//   rate_budgets (budget, paused_until_ms)   one row per account and budget ("<account>|rest"),
//                                            locked while a slot is taken
//   rate_slots (budget, slot_ms)             the slots handed out in the last window
//
// A slot is taken as TokenBucket takes one (src/core/rate_limiter.h): the earliest time at which
// fewer than `capacity` slots fall in the window before it, the window being the period and its
// margin, and never before a pause (a 429's Retry-After) ends. One statement does it on the
// database server's clock, under the budget's row lock, so workers on machines whose clocks
// disagree still space their requests right; the caller then sleeps until its slot.
//
// A tenant alone on its account keeps its local TokenBucket and spends no round trip per request.
// Whether the account is shared is looked at again every kRecheck, so a run that began alone
// joins the shared budget soon after a second tenant starts on its account, counting there the
// tokens it took while alone. When the registry cannot be reached, a budget falls back to its
// local bucket (warned once per budget): requests keep their own tenant's pace, and the vendor's
// 429s, which the retries honour, cover the rest.
//
// Thread-safety: AccountBudgets holds one connection behind a mutex; the budgets it hands out are
// safe to use from several threads. It must outlive them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/core/clock.h"
#include "src/core/rate_limiter.h"
#include "src/core/status.h"

namespace crmbridge {

namespace pg {
class Session;
}

class AccountBudgets {
 public:
  // How often a budget asks whether its account is (still) shared.
  static constexpr Clock::Duration kRecheck = std::chrono::seconds(5);

  // Connects to the registry's database (TenantRegistry::Open creates its tables). Errors as
  // TenantRegistry::Open's, never quoting the password.
  static Result<std::unique_ptr<AccountBudgets>> Open(const std::string& url,
                                                      int connect_timeout_s = 10);
  ~AccountBudgets();

  // Tenant `tenant` spends these accounts (system name -> AccountOf), and no others.
  Status RecordAccounts(const std::string& tenant,
                        const std::map<std::string, std::string>& account_of_system);
  // How many tenants spend `account`.
  Result<int> TenantsOn(const std::string& account);

  // Takes a slot of `budget` ("<account>|<name>"): at most `capacity` in any `window_ms`.
  // Returns how many ms from now the slot is (0: at once), or -1 when `try_only` and none is free
  // now (then nothing is taken).
  Result<int64_t> Take(const std::string& budget, int capacity, int64_t window_ms, bool try_only);
  // No slot of `budget` is handed out for `for_ms` from now. Never shortens a pause.
  Status Pause(const std::string& budget, int64_t for_ms);
  // Counts slots taken elsewhere at these offsets from now (ms; negative: in the past).
  Status Count(const std::string& budget, const std::vector<int64_t>& offsets_ms);

  // The budget `name` ("rest", "search") of `account`: at most `capacity` requests in any
  // `period` (and TokenBucket's margin), shared when more than one tenant spends the account.
  std::shared_ptr<RateBudget> Budget(const std::string& account, const std::string& name,
                                     int capacity, Clock::Duration period, Clock* clock);

 private:
  explicit AccountBudgets(std::unique_ptr<pg::Session> session);
  // The connection, made again if it was lost. REQUIRES mu_.
  Status Connected();

  std::mutex mu_;
  std::unique_ptr<pg::Session> session_;
};

}  // namespace crmbridge
