// Rate budgets shared in PostgreSQL by the tenants of one vendor account: slots spaced on the
// server's clock whichever connection takes them, pauses that hold everyone, the accounts each
// tenant spends, and a budget that stays local while its tenant is the account's only one.
#include "state/rate_budgets.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "src/core/clock.h"
#include "state/pg_session.h"
#include "state/tenant_registry.h"
#include "tests/state/postgres_database_test.h"

namespace crmbridge {
namespace store_test {
namespace {

class PostgresRateBudgetsTest : public PostgresDatabaseTest {
 protected:
  void SetUp() override {
    PostgresDatabaseTest::SetUp();
    if (!Ready()) return;
    // The registry creates the budgets' tables.
    auto registry = TenantRegistry::Open(Url());
    ASSERT_TRUE(registry.ok()) << registry.status().ToString();
    registry_ = std::move(*registry);
    budgets_ = OpenBudgets();
    ASSERT_NE(budgets_, nullptr);
  }
  void TearDown() override {
    budgets_.reset();
    registry_.reset();
    PostgresDatabaseTest::TearDown();
  }

  // Another worker's connection.
  std::unique_ptr<AccountBudgets> OpenBudgets() {
    auto budgets = AccountBudgets::Open(Url());
    EXPECT_TRUE(budgets.ok()) << budgets.status().ToString();
    return budgets.ok() ? std::move(*budgets) : nullptr;
  }
  int64_t Take(AccountBudgets* b, const std::string& budget, int capacity, int64_t window_ms,
               bool try_only = false) {
    auto wait = b->Take(budget, capacity, window_ms, try_only);
    EXPECT_TRUE(wait.ok()) << wait.status().ToString();
    return wait.ok() ? *wait : -2;
  }
  // The slots the registry holds for `budget`, ascending (ms, server clock).
  std::vector<int64_t> Slots(const std::string& budget) {
    auto session = pg::Session::Open(Url(), 10, "the test's database", "test");
    EXPECT_TRUE(session.ok()) << session.status().ToString();
    if (!session.ok()) return {};
    auto rows = (*session)->Run(
        "SELECT slot_ms FROM crmbridge_registry.rate_slots WHERE budget = $1 ORDER BY slot_ms",
        pg::Params().Text(budget), "reading slots");
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    std::vector<int64_t> out;
    if (rows.ok())
      for (int i = 0; i < rows->size(); ++i) out.push_back(rows->Int(i, 0));
    return out;
  }

  std::unique_ptr<TenantRegistry> registry_;
  std::unique_ptr<AccountBudgets> budgets_;
};

TEST_F(PostgresRateBudgetsTest, CapacitySlotsAtOnceThenTheNextOneAWindowLater) {
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Take(budgets_.get(), "acct|rest", 3, 60'000), 0) << i;
  // Full: a try takes nothing, and the next slot is one window after the first.
  EXPECT_EQ(Take(budgets_.get(), "acct|rest", 3, 60'000, /*try_only=*/true), -1);
  EXPECT_EQ(Slots("acct|rest").size(), 3u);
  const int64_t wait = Take(budgets_.get(), "acct|rest", 3, 60'000);
  EXPECT_GT(wait, 59'000);
  EXPECT_LE(wait, 60'000);
  // Another budget, and another account's, are untouched.
  EXPECT_EQ(Take(budgets_.get(), "acct|search", 3, 60'000), 0);
  EXPECT_EQ(Take(budgets_.get(), "other|rest", 3, 60'000, /*try_only=*/true), 0);
}

TEST_F(PostgresRateBudgetsTest, TwoWorkersConnectionsSpendOneBudget) {
  auto other = OpenBudgets();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(Take(budgets_.get(), "acct|rest", 2, 60'000), 0);
  EXPECT_EQ(Take(other.get(), "acct|rest", 2, 60'000), 0);
  EXPECT_EQ(Take(budgets_.get(), "acct|rest", 2, 60'000, /*try_only=*/true), -1);
  EXPECT_GT(Take(other.get(), "acct|rest", 2, 60'000), 59'000);
}

TEST_F(PostgresRateBudgetsTest, SlotsTakenAtOnceFromManyThreadsNeverCrowdAWindow) {
  // Two workers, three threads each, taking 8 slots apiece of a budget of 4 per 300 ms: the
  // server spaces them, so no 300 ms holds more than 4 of the 48.
  constexpr int kCapacity = 4;
  constexpr int64_t kWindow = 300;
  auto other = OpenBudgets();
  ASSERT_NE(other, nullptr);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (AccountBudgets* b : {budgets_.get(), other.get()}) {
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([b, &failed] {
        for (int i = 0; i < 8; ++i)
          if (!b->Take("acct|rest", kCapacity, kWindow, false).ok()) ++failed;
      });
    }
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  // The takers never slept until their slots, so none has fallen out of the window yet.
  const std::vector<int64_t> slots = Slots("acct|rest");
  ASSERT_EQ(slots.size(), 48u);
  for (size_t i = kCapacity; i < slots.size(); ++i)
    EXPECT_GE(slots[i] - slots[i - kCapacity], kWindow) << "slot " << i;
  EXPECT_GE(slots.back() - slots.front(), (48 / kCapacity - 1) * kWindow);
}

TEST_F(PostgresRateBudgetsTest, APauseHoldsEveryConnectionAndIsNeverShortened) {
  ASSERT_TRUE(budgets_->Pause("acct|rest", 30'000).ok());
  ASSERT_TRUE(budgets_->Pause("acct|rest", 1'000).ok());
  auto other = OpenBudgets();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(Take(other.get(), "acct|rest", 100, 10'000, /*try_only=*/true), -1);
  const int64_t wait = Take(other.get(), "acct|rest", 100, 10'000);
  EXPECT_GT(wait, 29'000);
  EXPECT_LE(wait, 30'000);
}

TEST_F(PostgresRateBudgetsTest, SlotsCountedFromElsewhereSpendTheBudget) {
  ASSERT_TRUE(budgets_->Count("acct|rest", {-20'000, -10'000}).ok());
  EXPECT_EQ(Take(budgets_.get(), "acct|rest", 3, 60'000), 0);
  // The oldest of the three (20 s ago) frees its token a window after it was taken.
  const int64_t wait = Take(budgets_.get(), "acct|rest", 3, 60'000);
  EXPECT_GT(wait, 39'000);
  EXPECT_LE(wait, 40'000);
  EXPECT_TRUE(budgets_->Count("acct|rest", {}).ok());
}

TEST_F(PostgresRateBudgetsTest, EachTenantsAccountsAreTheOnesItsLastRunRecorded) {
  ASSERT_TRUE(registry_->Add("acme", "/etc/crmbridge/acme.yaml", 60'000).ok());
  ASSERT_TRUE(registry_->Add("globex", "/etc/crmbridge/globex.yaml", 60'000).ok());
  ASSERT_TRUE(
      budgets_->RecordAccounts("acme", {{"crm", "hubspot:aaa"}, {"erp", "dynamics365:ddd"}}).ok());
  ASSERT_TRUE(budgets_->RecordAccounts("globex", {{"hub", "hubspot:aaa"}}).ok());
  EXPECT_EQ(*budgets_->TenantsOn("hubspot:aaa"), 2);
  EXPECT_EQ(*budgets_->TenantsOn("dynamics365:ddd"), 1);
  EXPECT_EQ(*budgets_->TenantsOn("nobody"), 0);

  // A later run on another account replaces what the earlier one recorded.
  ASSERT_TRUE(budgets_->RecordAccounts("globex", {{"hub", "hubspot:bbb"}}).ok());
  EXPECT_EQ(*budgets_->TenantsOn("hubspot:aaa"), 1);
  // A tenant removed spends nothing.
  ASSERT_TRUE(registry_->Remove("acme", /*drop_state=*/false).ok());
  EXPECT_EQ(*budgets_->TenantsOn("hubspot:aaa"), 0);
  EXPECT_EQ(*budgets_->TenantsOn("dynamics365:ddd"), 0);
  // A run of a tenant removed meanwhile records nothing, and says why.
  Status gone = budgets_->RecordAccounts("acme", {{"crm", "hubspot:aaa"}});
  EXPECT_FALSE(gone.ok());
  EXPECT_EQ(*budgets_->TenantsOn("hubspot:aaa"), 0);
}

TEST_F(PostgresRateBudgetsTest, ABudgetIsLocalWhileItsTenantIsAloneAndSharedOnceAnotherJoins) {
  ASSERT_TRUE(registry_->Add("acme", "/etc/acme.yaml", 60'000).ok());
  ASSERT_TRUE(registry_->Add("globex", "/etc/globex.yaml", 60'000).ok());
  ASSERT_TRUE(budgets_->RecordAccounts("acme", {{"crm", "hubspot:aaa"}}).ok());
  FakeClock clock;
  // 3 per minute: the slots taken alone are still in the window when the budget turns shared.
  auto budget = budgets_->Budget("hubspot:aaa", "rest", 3, std::chrono::minutes(1), &clock);
  budget->Acquire();
  budget->Acquire();
  EXPECT_EQ(clock.slept_ms(), 0);
  EXPECT_TRUE(Slots("hubspot:aaa|rest").empty()) << "a tenant alone spends no round trip";

  // Another tenant starts on the account. Until the next check the budget stays local...
  ASSERT_TRUE(budgets_->RecordAccounts("globex", {{"hub", "hubspot:aaa"}}).ok());
  clock.Advance(AccountBudgets::kRecheck);
  // ...then it joins the shared one, bringing the two tokens it took alone.
  budget->Acquire();
  EXPECT_EQ(Slots("hubspot:aaa|rest").size(), 3u);
  EXPECT_EQ(clock.slept_ms(), 0);
  auto other = OpenBudgets();
  ASSERT_NE(other, nullptr);
  const int64_t window =
      60'000 + std::chrono::duration_cast<std::chrono::milliseconds>(
                   TokenBucket::DefaultMargin(std::chrono::minutes(1)))
                   .count();
  EXPECT_EQ(Take(other.get(), "hubspot:aaa|rest", 3, window, /*try_only=*/true), -1)
      << "the other tenant finds the account's minute spent";
  EXPECT_FALSE(budget->TryAcquire());

  // A 429's Retry-After pauses the account for both tenants.
  budget->PauseUntil(clock.Now() + std::chrono::seconds(600));
  EXPECT_GT(Take(other.get(), "hubspot:aaa|rest", 3, window), 590'000);
  EXPECT_EQ(Take(other.get(), "hubspot:aaa|search", 3, window), 0) << "another budget goes on";

  // The other tenant leaves: at the next check the budget is local again (and held by the
  // pause, which it kept locally too), taking nothing from the registry.
  ASSERT_TRUE(registry_->Remove("globex", false).ok());
  clock.Advance(AccountBudgets::kRecheck);
  const size_t shared_slots = Slots("hubspot:aaa|rest").size();
  EXPECT_FALSE(budget->TryAcquire());
  EXPECT_EQ(Slots("hubspot:aaa|rest").size(), shared_slots);
}

TEST_F(PostgresRateBudgetsTest, ABudgetWhoseRegistryIsGoneKeepsItsTenantsOwnPace) {
  ASSERT_TRUE(registry_->Add("acme", "/etc/acme.yaml", 60'000).ok());
  ASSERT_TRUE(registry_->Add("globex", "/etc/globex.yaml", 60'000).ok());
  ASSERT_TRUE(budgets_->RecordAccounts("acme", {{"crm", "hubspot:aaa"}}).ok());
  ASSERT_TRUE(budgets_->RecordAccounts("globex", {{"hub", "hubspot:aaa"}}).ok());
  FakeClock clock;
  auto budget = budgets_->Budget("hubspot:aaa", "rest", 2, std::chrono::seconds(10), &clock);
  budget->Acquire();
  EXPECT_EQ(Slots("hubspot:aaa|rest").size(), 1u);
  // The budgets' tables go away under it (as a registry out of reach would answer errors): the
  // next requests still go, at the tenant's own pace.
  registry_.reset();
  budgets_.reset();
  auto session = pg::Session::Open(Url(), 10, "the test's database", "test");
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE((*session)->ExecPlain("DROP TABLE crmbridge_registry.rate_slots", "dropping").ok());
  budgets_ = OpenBudgets();
  budget = budgets_->Budget("hubspot:aaa", "rest", 2, std::chrono::seconds(10), &clock);
  budget->Acquire();
  budget->Acquire();
  EXPECT_EQ(clock.slept_ms(), 0);
  budget->Acquire();  // the third within 10 s waits for the first, locally
  EXPECT_GE(clock.slept_ms(), 10'000);
}

}  // namespace
}  // namespace store_test
}  // namespace crmbridge
