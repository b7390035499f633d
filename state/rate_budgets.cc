// AccountBudgets: see state/rate_budgets.h. The tables and take_rate_slot() are the registry's
// (state/tenant_registry.cc, migration 2); every statement names them with their schema.
#include "state/rate_budgets.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "src/core/stop.h"
#include "state/pg_session.h"

namespace crmbridge {
namespace {

using pg::Params;

// A budget of one account: local while its tenant is the account's only one, in the registry
// once another tenant spends the account too.
class SharedBudget : public RateBudget {
 public:
  SharedBudget(AccountBudgets* budgets, std::string account, std::string name, int capacity,
               Clock::Duration period, Clock* clock)
      : budgets_(budgets),
        account_(std::move(account)),
        key_(account_ + "|" + name),
        capacity_(std::max(capacity, 1)),
        window_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(
                       period + TokenBucket::DefaultMargin(period))
                       .count()),
        clock_(clock),
        local_(capacity, period, clock) {}

  void Acquire() override {
    if (Shared()) {
      auto wait = budgets_->Take(key_, capacity_, window_ms_, /*try_only=*/false);
      if (wait.ok()) {
        if (*wait > 0) SleepUnlessStopped(clock_, std::chrono::milliseconds(*wait));
        return;
      }
      FellBack(wait.status());
    }
    local_.Acquire();
  }

  bool TryAcquire() override {
    if (Shared()) {
      auto wait = budgets_->Take(key_, capacity_, window_ms_, /*try_only=*/true);
      if (wait.ok()) return *wait >= 0;
      FellBack(wait.status());
    }
    return local_.TryAcquire();
  }

  void PauseUntil(Clock::TimePoint until) override {
    local_.PauseUntil(until);
    if (!Shared()) return;
    const int64_t ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_->Now()).count();
    if (ms <= 0) return;
    if (Status s = budgets_->Pause(key_, ms); !s.ok()) FellBack(s);
  }

  Clock::Duration period() const override { return local_.period(); }

 private:
  // Whether the account is shared now, asking the registry at most every kRecheck. Joining the
  // shared budget counts there the tokens this one took alone in the last window.
  bool Shared() {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::TimePoint now = clock_->Now();
    if (checked_ && now < next_check_) return shared_;
    checked_ = true;
    next_check_ = now + AccountBudgets::kRecheck;
    auto tenants = budgets_->TenantsOn(account_);
    if (!tenants.ok()) {
      WarnLocked(tenants.status());
      shared_ = false;
      return false;
    }
    const bool shared = *tenants > 1;
    if (shared && !shared_) {
      std::vector<int64_t> offsets;
      for (Clock::TimePoint slot : local_.Taken())
        offsets.push_back(
            std::chrono::duration_cast<std::chrono::milliseconds>(slot - now).count());
      if (Status s = budgets_->Count(key_, offsets); !s.ok()) {
        WarnLocked(s);
        return false;
      }
      spdlog::info("rate budget {}: {} tenants spend this account; its limit is now kept for "
                    "them all in PostgreSQL", key_, *tenants);
    }
    shared_ = shared;
    return shared_;
  }

  // The registry failed this budget: local pacing until the next check.
  void FellBack(const Status& why) {
    std::lock_guard<std::mutex> lock(mu_);
    WarnLocked(why);
    shared_ = false;
  }

  void WarnLocked(const Status& why) {
    if (warned_) return;
    warned_ = true;
    spdlog::warn("rate budget {}: the shared budget is out of reach ({}); this tenant keeps its "
                  "own pace meanwhile, and the vendor's 429s are honoured",
                  key_, why.ToString());
  }

  AccountBudgets* const budgets_;
  const std::string account_;
  const std::string key_;
  const int capacity_;
  const int64_t window_ms_;
  Clock* const clock_;
  TokenBucket local_;
  std::mutex mu_;
  bool checked_ = false;              // GUARDED_BY(mu_)
  bool shared_ = false;               // GUARDED_BY(mu_)
  bool warned_ = false;               // GUARDED_BY(mu_)
  Clock::TimePoint next_check_{};     // GUARDED_BY(mu_)
};

}  // namespace

AccountBudgets::AccountBudgets(std::unique_ptr<pg::Session> session)
    : session_(std::move(session)) {}
AccountBudgets::~AccountBudgets() = default;

Result<std::unique_ptr<AccountBudgets>> AccountBudgets::Open(const std::string& url,
                                                             int connect_timeout_s) {
  auto session = pg::Session::Open(url, connect_timeout_s, "the PostgreSQL tenant registry",
                                   "rate budgets");
  if (!session.ok()) return session.status();
  return std::unique_ptr<AccountBudgets>(new AccountBudgets(std::move(*session)));
}

Status AccountBudgets::Connected() {
  auto reconnected = session_->Reconnect();
  return reconnected.ok() ? Status::Ok() : reconnected.status();
}

Status AccountBudgets::RecordAccounts(const std::string& tenant,
                                      const std::map<std::string, std::string>& account_of_system) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  const std::string doing = "recording the accounts of tenant " + tenant;
  return session_->InTransaction("BEGIN", doing, [&]() -> Status {
    auto cleared = session_->Run("DELETE FROM crmbridge_registry.tenant_accounts WHERE tenant = $1",
                                 Params().Text(tenant), doing);
    if (!cleared.ok()) return cleared.status();
    for (const auto& [system, account] : account_of_system) {
      auto r = session_->Run(
          "INSERT INTO crmbridge_registry.tenant_accounts (tenant, system, account) "
          "VALUES ($1, $2, $3)",
          Params().Text(tenant).Text(system).Text(account), doing);
      if (!r.ok()) return r.status();
    }
    return Status::Ok();
  });
}

Result<int> AccountBudgets::TenantsOn(const std::string& account) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  auto r = session_->Run(
      "SELECT count(DISTINCT tenant) FROM crmbridge_registry.tenant_accounts WHERE account = $1",
      Params().Text(account), "counting the tenants of account " + account);
  if (!r.ok()) return r.status();
  return static_cast<int>(r->Int(0, 0));
}

Result<int64_t> AccountBudgets::Take(const std::string& budget, int capacity, int64_t window_ms,
                                     bool try_only) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  auto r = session_->Run("SELECT crmbridge_registry.take_rate_slot($1, $2, $3, $4)",
                         Params().Text(budget).Int(capacity).Int(window_ms).Bool(try_only),
                         "taking a slot of rate budget " + budget);
  if (!r.ok()) return r.status();
  return r->Int(0, 0);
}

Status AccountBudgets::Pause(const std::string& budget, int64_t for_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  auto r = session_->Run(
      "INSERT INTO crmbridge_registry.rate_budgets AS b (budget, paused_until_ms) "
      "VALUES ($1, (extract(epoch from clock_timestamp()) * 1000)::bigint + $2) "
      "ON CONFLICT (budget) DO UPDATE SET paused_until_ms = "
      "greatest(b.paused_until_ms, EXCLUDED.paused_until_ms)",
      Params().Text(budget).Int(for_ms), "pausing rate budget " + budget);
  return r.status();
}

Status AccountBudgets::Count(const std::string& budget, const std::vector<int64_t>& offsets_ms) {
  if (offsets_ms.empty()) return Status::Ok();
  std::string array = "{";
  for (size_t i = 0; i < offsets_ms.size(); ++i)
    array += (i ? "," : "") + std::to_string(offsets_ms[i]);
  array += "}";
  std::lock_guard<std::mutex> lock(mu_);
  CRMB_RETURN_IF_ERROR(Connected());
  auto r = session_->Run(
      "INSERT INTO crmbridge_registry.rate_slots (budget, slot_ms) "
      "SELECT $1, (extract(epoch from clock_timestamp()) * 1000)::bigint + o "
      "FROM unnest($2::bigint[]) AS o",
      Params().Text(budget).Text(array), "counting slots in rate budget " + budget);
  return r.status();
}

std::shared_ptr<RateBudget> AccountBudgets::Budget(const std::string& account,
                                                   const std::string& name, int capacity,
                                                   Clock::Duration period, Clock* clock) {
  return std::make_shared<SharedBudget>(this, account, name, capacity, period, clock);
}

}  // namespace crmbridge
