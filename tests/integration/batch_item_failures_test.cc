// One item failing inside a batch is that item's trouble, not the system's, in process against the
// mocks: a HubSpot 207 naming a failed input, and a Dynamics 365 $batch answer cut off half way,
// retry the items concerned on a later attempt while the run goes on writing and reading. Only a
// system that gives no answer at all sits out the run.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <set>

#include "mocks/dynamics365/dynamics365_mock.h"
#include "mocks/hubspot/hubspot_mock.h"
#include "src/engine/bootstrap.h"
#include "tests/integration/mock_systems.h"

namespace crmbridge {
namespace {

using nlohmann::json;

class BatchItemFailuresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mocks::HubSpotMock::Options hs;
    hs.tokens = {"pat-it"};
    hs.enforce_limits = false;
    hubspot_ = std::make_unique<mocks::HubSpotMock>(hs);
    mocks::Dynamics365Mock::Options d;
    d.client_id = "it-client";
    d.client_secret = "it-secret";
    d.service_protection = false;
    dynamics_ = std::make_unique<mocks::Dynamics365Mock>(d);
    ASSERT_TRUE(hubspot_->Start().ok());
    ASSERT_TRUE(dynamics_->Start().ok());

    char tmpl[] = "/tmp/crmbridge-items-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_.path = dir_ + "/crmbridge.yaml";
    config_.state_path = dir_ + "/state.db";
    config_.systems = {
        {"hubspot", testing_systems::HubSpot(hubspot_->base_url(), "pat-it")},
        {"dynamics365", testing_systems::Dynamics365(dynamics_->base_url(), "it-client", "it-secret")}};
    auto store = OpenSqliteStore(config_.state_path);
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
  }
  void TearDown() override {
    hubspot_->Stop();
    dynamics_->Stop();
    std::system(("rm -rf " + dir_).c_str());
  }

  void UseMappings(const std::vector<std::string>& paths) {
    config_.mapping_paths = paths;
    auto plan = LoadPlanFor(config_);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
  }

  RunSummary Sync() {
    auto connectors = BuildConnectors(config_, *plan_, &clock_);
    EXPECT_TRUE(connectors.ok()) << connectors.status().ToString();
    SyncEngine engine(&config_, plan_, store_.get(), std::move(*connectors), &clock_);
    RunOptions opt;
    opt.holder = "it";
    auto s = engine.RunOnce(opt);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : RunSummary{};
  }

  // Runs again, past the outbox backoff, until a run has nothing left to do; the runs it took.
  int SyncUntilDone() {
    int runs = 0;
    for (; runs < 10; ++runs) {
      clock_.Advance(std::chrono::hours(2));
      RunSummary s = Sync();
      auto pending = store_->OutboxCounts();
      EXPECT_TRUE(pending.ok());
      if (s.unreachable.empty() && s.TotalWrites() == 0 && pending.ok() && pending->empty()) break;
    }
    EXPECT_LT(runs, 10) << "did not finish";
    return runs;
  }

  void ExpectNoDeadLetters() {
    auto dead = store_->ListDeadLetters(100);
    ASSERT_TRUE(dead.ok());
    for (const DeadLetter& l : *dead) ADD_FAILURE() << l.item.entity << " " << l.reason;
  }

  std::unique_ptr<mocks::HubSpotMock> hubspot_;
  std::unique_ptr<mocks::Dynamics365Mock> dynamics_;
  std::string dir_;
  AppConfig config_;
  std::shared_ptr<const MappingPlan> plan_;
  std::unique_ptr<Store> store_;
  FakeClock clock_{Clock::Real()->NowMillis()};
};

TEST_F(BatchItemFailuresTest, AnInputAHubSpot207NamesAsFailedIsRetriedAloneAndTheRunGoesOn) {
  // Dynamics 365 accounts become HubSpot companies, written in batch upserts of up to 100.
  const std::string mapping = dir_ + "/accounts-to-companies.yaml";
  std::ofstream(mapping) << R"(version: 1
entities:
  company:
    fields:
      name: {type: string, required: true}
systems:
  dynamics365:
    company:
      object: accounts
      params: {key: crmb_externalid}
      fields:
        name: {native: name, direction: in}
  hubspot:
    company:
      object: companies
      params: {id_property: crmbridge_id}
      fields:
        name: {native: name, direction: out}
)";
  UseMappings({mapping});
  dynamics_->Seed(7, 30);
  const size_t accounts = dynamics_->Dump()["accounts"].size();
  ASSERT_GT(accounts, 10u);
  // HubSpot fails some inputs of each batch with an internal error, naming them in errors[].
  hubspot_->SetFaults({*mocks::FaultRule::Parse("POST /batch/upsert partial=0.3")}, 3);

  RunSummary first = Sync();
  EXPECT_TRUE(first.unreachable.empty()) << "one input's error is no outage: " << first.ToJson().dump();
  const EntityCounts& c = first.counts["hubspot"]["company"];
  EXPECT_GT(c.retrying, 0) << first.ToJson().dump();
  EXPECT_GT(c.created, 0);
  EXPECT_EQ(c.created + c.retrying, static_cast<int64_t>(accounts)) << "every input has its outcome";
  EXPECT_EQ(c.dead_lettered, 0);
  auto made = [&] {
    std::set<std::string> names;
    const json hs = hubspot_->Dump();
    for (const json& co : hs["companies"]) {
      if (co["properties"].value("crmbridge_id", "").empty()) continue;
      EXPECT_TRUE(names.insert(co["properties"].value("name", "")).second) << co.dump();
    }
    return names;
  };
  EXPECT_EQ(made().size(), static_cast<size_t>(c.created)) << "the inputs that did not fail landed";

  hubspot_->SetFaults({});
  SyncUntilDone();
  EXPECT_EQ(made().size(), accounts) << "each account once in HubSpot";
  ExpectNoDeadLetters();
}

TEST_F(BatchItemFailuresTest, ADynamics365BatchAnswerCutOffMidwayRetriesOnlyTheRowsItDidNotAnswer) {
  UseMappings({std::string(CRMBRIDGE_SOURCE_DIR) + "/mappings/presets/onboarding.yaml"});
  hubspot_->Seed(11, 25);
  // Rows travel in $batch calls of 5; the transport does not retry, so the engine sees the cut.
  config_.systems["dynamics365"].options["batch_size"] = "5";
  config_.systems["dynamics365"].max_attempts = 1;
  // The first $batch lands whole, and its answer breaks off half way through its parts.
  dynamics_->SetFaults({*mocks::FaultRule::Parse("POST /$batch drop applied times=1")});

  RunSummary first = Sync();
  EXPECT_EQ(dynamics_->faults_injected(), 1);
  EXPECT_TRUE(first.unreachable.empty()) << "a cut answer is no outage: " << first.ToJson().dump();
  // Companies are written first: the rows whose answers arrived are done, the others retry
  // (they landed, but crmbridge cannot know it).
  const EntityCounts& companies = first.counts["dynamics365"]["company"];
  EXPECT_GE(companies.retrying, 1) << first.ToJson().dump();
  EXPECT_LE(companies.retrying, 4) << "the rows answered before the cut keep their outcome";
  EXPECT_EQ(companies.created + companies.retrying, 25);
  EXPECT_EQ(first.counts["dynamics365"]["onboarding"].created +
                first.counts["dynamics365"]["onboarding"].waiting_on_refs,
            25)
      << "the run went on writing";
  EXPECT_EQ(dynamics_->Dump()["accounts"].size(), 25u) << "the whole batch landed";

  dynamics_->SetFaults({});
  SyncUntilDone();
  const json d = dynamics_->Dump();
  std::set<std::string> accounts, opportunities;
  for (const json& a : d["accounts"]) EXPECT_TRUE(accounts.insert(a["name"]).second) << a["name"];
  for (const json& o : d["opportunities"])
    EXPECT_TRUE(opportunities.insert(o["name"]).second) << o["name"];
  EXPECT_EQ(accounts.size(), 25u);
  EXPECT_EQ(opportunities.size(), 25u);
  for (const json& o : d["opportunities"])
    EXPECT_TRUE(o.contains("_parentaccountid_value")) << "every opportunity on its account: " << o.dump();
  ExpectNoDeadLetters();
}

}  // namespace
}  // namespace crmbridge
