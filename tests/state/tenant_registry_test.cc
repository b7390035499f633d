// The tenant registry on a real PostgreSQL server: claims that two workers never share, leases
// that run out and are taken over with the next epoch, commits refused once the epoch has moved
// on, each tenant's state out of every other's reach, schedules and backfill jobs.
#include "state/tenant_registry.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "src/core/clock.h"
#include "state/postgres_store.h"
#include "state/store.h"
#include "tests/state/postgres_database_test.h"
#include "tests/state/store_test_data.h"

namespace crmbridge {
namespace store_test {
namespace {

using ::testing::HasSubstr;

class PostgresTenantRegistryTest : public PostgresDatabaseTest {
 protected:
  void SetUp() override {
    PostgresDatabaseTest::SetUp();
    if (!Ready()) return;
    registry_ = OpenRegistry();
    ASSERT_NE(registry_, nullptr);
  }
  void TearDown() override {
    registry_.reset();
    PostgresDatabaseTest::TearDown();
  }

  std::unique_ptr<TenantRegistry> OpenRegistry() {
    auto registry = TenantRegistry::Open(cluster_->Url(db_));
    EXPECT_TRUE(registry.ok()) << registry.status().ToString();
    return registry.ok() ? std::move(*registry) : nullptr;
  }
  // Tenant `name`'s state, fenced by `epoch` when given.
  std::unique_ptr<Store> OpenState(const std::string& name, int64_t epoch = -1) {
    PostgresStoreOptions options;
    options.schema = SchemaOfTenant(name);
    if (epoch >= 0) {
      options.fence.tenant = name;
      options.fence.epoch = epoch;
    }
    auto store = OpenPostgresStore(cluster_->Url(db_), options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }
  void AddTenants(int n) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(registry_->Add("t" + std::to_string(i), "/etc/t.yaml", 60'000).ok());
  }

  std::unique_ptr<TenantRegistry> registry_;
};

TEST_F(PostgresTenantRegistryTest, WorkersClaimingAtOnceNeverGetTheSameTenant) {
  AddTenants(24);
  std::vector<std::unique_ptr<TenantRegistry>> workers;
  for (int w = 0; w < 4; ++w) workers.push_back(OpenRegistry());
  std::vector<std::vector<TenantClaim>> got(4);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (;;) {
        auto claims = workers[w]->ClaimDue("worker-" + std::to_string(w), 60'000, 2);
        ASSERT_TRUE(claims.ok()) << claims.status().ToString();
        if (claims->empty()) return;
        for (auto& c : *claims) got[w].push_back(c);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> claimed;
  size_t total = 0;
  for (const auto& claims : got) {
    total += claims.size();
    for (const TenantClaim& c : claims) {
      claimed.insert(c.name);
      EXPECT_GT(c.epoch, 0);
      EXPECT_EQ(c.schema, SchemaOfTenant(c.name));
    }
  }
  EXPECT_EQ(total, 24u) << "a tenant was claimed twice";
  EXPECT_EQ(claimed.size(), 24u);
  EXPECT_TRUE(registry_->ClaimDue("late", 60'000, 10)->empty()) << "every lease is live";
}

TEST_F(PostgresTenantRegistryTest, AClaimThatRunsOutIsTakenOverWithTheNextEpoch) {
  AddTenants(1);
  auto first = registry_->ClaimDue("worker-a", 2000, 1);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  auto early = registry_->ClaimDue("worker-b", 60'000, 1);
  ASSERT_TRUE(early.ok());
  EXPECT_TRUE(early->empty()) << "the lease is live";
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  auto second = registry_->ClaimDue("worker-b", 60'000, 1);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 1u) << "a lease that ran out is free";
  EXPECT_GT(second->front().epoch, first->front().epoch);
  auto lost = registry_->Renew(first->front(), 60'000);
  ASSERT_TRUE(lost.ok());
  EXPECT_FALSE(*lost) << "the first claim is lost";
  auto kept = registry_->Renew(second->front(), 60'000);
  ASSERT_TRUE(kept.ok());
  EXPECT_TRUE(*kept);

  // The lost claim's release changes nothing of the tenant; its run is logged as lost.
  ASSERT_TRUE(registry_->Release(first->front(), "ok", "").ok());
  auto row = registry_->Get("t0");
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->holder, "worker-b");
  EXPECT_GT((*row)->lease_until_ms, (*row)->now_ms);
  auto runs = registry_->Runs("t0");
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].outcome, "lease lost: ok");
  EXPECT_EQ((*runs)[1].outcome, "running");
  EXPECT_LE((*runs)[0].lease_until_ms, (*runs)[1].started_ms) << "the leases never overlapped";
}

TEST_F(PostgresTenantRegistryTest, ACommitWithAStaleEpochIsRefusedWholeAndCounted) {
  AddTenants(1);
  auto first = registry_->ClaimDue("worker-a", 2000, 1);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  auto paused = OpenState("t0", first->front().epoch);
  ASSERT_NE(paused, nullptr);
  StateBatch before;
  before.SetCursor("hubspot", "companies", "page-1");
  ASSERT_TRUE(paused->Apply(before).ok()) << "the holder of the live claim writes";

  // worker-a is paused past its lease; worker-b claims the tenant.
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  auto second = registry_->ClaimDue("worker-b", 60'000, 1);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 1u);
  auto holder = OpenState("t0", second->front().epoch);
  ASSERT_NE(holder, nullptr);

  StateBatch stale;
  stale.PutLink(MakeLink("c1", "hubspot", "101"));
  stale.SetCursor("hubspot", "companies", "page-2");
  Status refused = paused->Apply(stale);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_THAT(refused.message(), HasSubstr("claimed again"));
  auto lease = paused->AcquireLease("worker-a", kT0, 60'000);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_FALSE(*lease) << "nor is its lease renewed";
  EXPECT_EQ(**holder->GetCursor("hubspot", "companies"), "page-1") << "nothing of it landed";
  EXPECT_FALSE(holder->FindLink("company", "c1", "hubspot")->has_value());
  EXPECT_EQ((*registry_->Get("t0"))->refused_commits, 1);

  EXPECT_TRUE(*holder->AcquireLease("worker-b", kT0, 60'000))
      << "the new holder takes the tenant's lease whoever held it";
  StateBatch fresh;
  fresh.SetCursor("hubspot", "companies", "page-2b");
  EXPECT_TRUE(holder->Apply(fresh).ok());
}

TEST_F(PostgresTenantRegistryTest, ARemovedTenantsWorkerHasItsNextCommitRefused) {
  AddTenants(1);
  auto claim = registry_->ClaimDue("worker-a", 60'000, 1);
  ASSERT_EQ(claim->size(), 1u);
  auto store = OpenState("t0", claim->front().epoch);
  ASSERT_TRUE(registry_->Remove("t0", /*drop_state=*/false).ok());
  StateBatch batch;
  batch.SetCursor("hubspot", "companies", "x");
  Status s = store->Apply(batch);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("no longer registered"));
  EXPECT_EQ(registry_->Remove("t0", false).code(), StatusCode::kNotFound);
}

TEST_F(PostgresTenantRegistryTest, ATenantAddedAgainNeverGivesAnEpochAnEarlierClaimHeld) {
  AddTenants(1);
  auto before = registry_->ClaimDue("worker-a", 60'000, 1);
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->size(), 1u);
  auto old_state = OpenState("t0", before->front().epoch);
  ASSERT_NE(old_state, nullptr);
  ASSERT_TRUE(registry_->Remove("t0", /*drop_state=*/false).ok());
  ASSERT_TRUE(registry_->Add("t0", "/etc/t.yaml", 60'000).ok());
  auto after = registry_->ClaimDue("worker-b", 60'000, 1);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_GT(after->front().epoch, before->front().epoch);
  StateBatch batch;
  batch.SetCursor("hubspot", "companies", "from the removed tenant's worker");
  EXPECT_EQ(old_state->Apply(batch).code(), StatusCode::kFailedPrecondition);
  auto renewed = registry_->Renew(before->front(), 60'000);
  ASSERT_TRUE(renewed.ok());
  EXPECT_FALSE(*renewed);
  ASSERT_TRUE(registry_->Release(before->front(), "ok", "").ok());
  EXPECT_EQ((*registry_->Get("t0"))->holder, "worker-b") << "the old claim released nothing";
}

TEST_F(PostgresTenantRegistryTest, ARenewArrivingAfterTheReleaseLeasesNothing) {
  AddTenants(1);
  auto claim = registry_->ClaimDue("worker-a", 60'000, 1);
  ASSERT_TRUE(claim.ok());
  ASSERT_EQ(claim->size(), 1u);
  ASSERT_TRUE(registry_->Release(claim->front(), "ok", "").ok());
  auto renewed = registry_->Renew(claim->front(), 60'000);
  ASSERT_TRUE(renewed.ok());
  EXPECT_FALSE(*renewed);
  auto row = registry_->Get("t0");
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->lease_until_ms, 0) << "a released tenant stays free";
}

TEST_F(PostgresTenantRegistryTest, AClaimLostBeforeTheStoreOpensCreatesNothing) {
  AddTenants(1);
  auto claim = registry_->ClaimDue("worker-a", 60'000, 1);
  ASSERT_TRUE(claim.ok());
  ASSERT_EQ(claim->size(), 1u);
  ASSERT_TRUE(registry_->Remove("t0", /*drop_state=*/true).ok());
  PostgresStoreOptions options;
  options.schema = SchemaOfTenant("t0");
  options.fence.tenant = "t0";
  options.fence.epoch = claim->front().epoch;
  auto store = OpenPostgresStore(cluster_->Url(db_), options);
  EXPECT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("no longer registered"));
}

TEST_F(PostgresTenantRegistryTest, NoTenantsStoreReadsOrWritesAnothersRows) {
  ASSERT_TRUE(registry_->Add("acme", "/etc/acme.yaml", 60'000).ok());
  ASSERT_TRUE(registry_->Add("globex", "/etc/globex.yaml", 60'000).ok());
  auto acme = OpenState("acme");
  auto globex = OpenState("globex");
  ASSERT_NE(acme, nullptr);
  ASSERT_NE(globex, nullptr);
  StateBatch batch;
  batch.PutLink(MakeLink("c1", "hubspot", "101"));
  Snapshot snap;
  snap.entity = "company";
  snap.canonical_id = "c1";
  snap.fields = {{"name", "Acme AB"}};
  batch.PutSnapshot(snap);
  batch.SetCursor("hubspot", "companies", "acme's");
  batch.Enqueue(Item("dynamics365", "c1", {{"name", "Acme AB"}}));
  batch.PutMatchKey("company", "acme.se", "c1");
  ASSERT_TRUE(acme->Apply(batch).ok());
  ASSERT_TRUE(*acme->AcquireLease("worker-a", kT0, 60'000));

  EXPECT_FALSE(globex->FindLinkByNative("hubspot", "company", "101")->has_value());
  EXPECT_FALSE(globex->GetSnapshot("company", "c1")->has_value());
  EXPECT_TRUE(globex->ListSnapshots("company")->empty());
  EXPECT_TRUE(globex->ListCursors()->empty());
  EXPECT_TRUE(globex->OutboxCounts()->empty());
  EXPECT_FALSE(globex->FindByMatchKey("company", "acme.se")->has_value());
  EXPECT_FALSE(globex->GetLease()->has_value());
  EXPECT_TRUE(*globex->AcquireLease("worker-b", kT0, 60'000)) << "a lease of its own";
  // The same ids written on one side leave the other's rows as they were.
  StateBatch other;
  other.PutLink(MakeLink("c1", "hubspot", "999"));
  ASSERT_TRUE(globex->Apply(other).ok());
  EXPECT_EQ((*acme->FindLink("company", "c1", "hubspot"))->native_id, "101");
  // A schema name is never taken from input: a name that is not one is refused.
  PostgresStoreOptions bad;
  bad.schema = "acme\"; DROP SCHEMA tenant_globex; --";
  EXPECT_EQ(OpenPostgresStore(cluster_->Url(db_), bad).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(PostgresTenantRegistryTest, NamesAreCheckedAndNeverShareASchema) {
  EXPECT_EQ(registry_->Add("Acme", "/x", 60'000).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->Add("acme;drop", "/x", 60'000).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->Add("", "/x", 60'000).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->Add("acme", "/x", 1000).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(registry_->Add("acme-se", "/x", 60'000).ok());
  EXPECT_EQ(registry_->Add("acme-se", "/y", 60'000).code(), StatusCode::kAlreadyExists);
  Status clash = registry_->Add("acme_se", "/y", 60'000);
  EXPECT_EQ(clash.code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(clash.message(), HasSubstr("tenant_acme_se"));
}

TEST_F(PostgresTenantRegistryTest, AReleasedTenantIsDueAgainAfterItsScheduleAndABackfillAtOnce) {
  ASSERT_TRUE(registry_->Add("acme", "/etc/acme.yaml", 60'000).ok());
  auto claim = registry_->ClaimDue("worker-a", 60'000, 1);
  ASSERT_EQ(claim->size(), 1u);
  EXPECT_TRUE(claim->front().job.empty());
  ASSERT_TRUE(registry_->Release(claim->front(), "ok", "").ok());
  auto row = *registry_->Get("acme");
  EXPECT_EQ(row->last_outcome, "ok");
  EXPECT_EQ(row->holder, "");
  EXPECT_EQ(row->next_due_ms, claim->front().started_ms + 60'000);
  EXPECT_TRUE(registry_->ClaimDue("worker-a", 60'000, 1)->empty()) << "not due for a minute";

  ASSERT_TRUE(registry_->RequestBackfill("acme", R"({"system":"hubspot"})").ok());
  EXPECT_EQ(registry_->RequestBackfill("acme", R"({"system":"hubspot"})").code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(registry_->RequestBackfill("nobody", "{}").code(), StatusCode::kNotFound);
  auto job = registry_->ClaimDue("worker-b", 60'000, 1);
  ASSERT_EQ(job->size(), 1u) << "a backfill is due at once";
  EXPECT_EQ(job->front().job, R"({"system":"hubspot"})");
  ASSERT_TRUE(registry_->Release(job->front(), "ok", "").ok());
  EXPECT_TRUE((*registry_->Get("acme"))->job.empty()) << "done, so not run again";
  auto runs = *registry_->Runs("acme");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].job, "sync");
  EXPECT_EQ(runs[1].job, "backfill");
}

}  // namespace
}  // namespace store_test
}  // namespace crmbridge
