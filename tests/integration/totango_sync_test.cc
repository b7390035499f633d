// HubSpot onboarding tickets to Totango accounts, end to end through the real connectors, engine
// and state store against the mocks, while Totango's SDR gateway silently drops some writes (it
// answers 200 whatever it keeps). The lost writes must be found on read-back and written again
// until Totango holds every account and stage, without a single stale value flowing back.
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <fstream>
#include <map>

#include "mocks/hubspot/hubspot_mock.h"
#include "mocks/totango/totango_mock.h"
#include "src/engine/bootstrap.h"
#include "tests/integration/mock_systems.h"

namespace crmbridge {
namespace {

using nlohmann::json;

constexpr char kMapping[] = R"(version: 1
entities:
  onboarding:
    fields:
      title: {type: string, required: true}
      stage: {type: string}
tables:
  hubspot_stage:
    - {native: "Ny", canonical: new}
    - {native: "Onboarding – Pågår", canonical: onboarding}
    - {native: "Må följas upp", canonical: follow_up}
    - {native: "Manuell uppföljning", canonical: manual_follow_up}
    - {native: "Inaktiva kunder", canonical: inactive}
    - {native: "Avslutad", canonical: closed}
  totango_stage:
    - {native: "Kick Off", canonical: new}
    - {native: "Business Discovery", canonical: onboarding}
    - {native: "Integration", canonical: follow_up}
    - {native: "Configuration", canonical: manual_follow_up}
    - {native: "Training/UAT", canonical: inactive}
    - {native: "Live", canonical: closed}
systems:
  hubspot:
    onboarding:
      object: tickets
      params: {pipeline: "Order/faktura", id_property: crmbridge_id}
      fields:
        title: {native: subject}
        stage: {native: hs_pipeline_stage, transforms: [{table: hubspot_stage}]}
  totango:
    onboarding:
      object: accounts
      fields:
        title: {native: display_name}
        stage: {native: Onboarding Stage, transforms: [{table: totango_stage}]}
)";

class TotangoSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mocks::HubSpotMock::Options hs;
    hs.tokens = {"pat-it"};
    hs.enforce_limits = false;
    hubspot_ = std::make_unique<mocks::HubSpotMock>(hs);
    mocks::TotangoMock::Options t;
    t.tokens = {"tt-it"};
    t.enforce_limits = false;
    totango_ = std::make_unique<mocks::TotangoMock>(t);
    hubspot_->Seed(21, 30);
    ASSERT_TRUE(hubspot_->Start().ok());
    ASSERT_TRUE(totango_->Start().ok());

    char tmpl[] = "/tmp/crmbridge-tt-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_.path = dir_ + "/crmbridge.yaml";
    config_.state_path = dir_ + "/state.db";
    config_.mapping_paths = {dir_ + "/mapping.yaml"};
    std::ofstream(config_.mapping_paths[0]) << kMapping;
    SystemConfig h = testing_systems::HubSpot(hubspot_->base_url(), "pat-it");
    SystemConfig tt;
    tt.name = tt.kind = "totango";
    tt.base_url = totango_->base_url();
    tt.auth = {{"app_token", "tt-it"}};
    tt.options = {{"service_id", "SP-0000-11"},
                  {"allowed.Onboarding Stage",
                   "Kick Off|Business Discovery|Integration|Configuration|Training/UAT|Live"}};
    config_.systems = {{"hubspot", h}, {"totango", tt}};
    auto plan = LoadPlanFor(config_);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
    auto store = OpenSqliteStore(config_.state_path);
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
  }
  void TearDown() override {
    hubspot_->Stop();
    totango_->Stop();
    std::system(("rm -rf " + dir_).c_str());
  }

  RunSummary Sync() {
    auto connectors = BuildConnectors(config_, *plan_, Clock::Real());
    EXPECT_TRUE(connectors.ok()) << connectors.status().ToString();
    SyncEngine engine(&config_, plan_, store_.get(), std::move(*connectors), Clock::Real());
    RunOptions opt;
    opt.holder = "it";
    auto s = engine.RunOnce(opt);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : RunSummary{};
  }
  // Ticket subject -> stage label, as HubSpot shows them.
  std::map<std::string, std::string> TicketStages() {
    std::map<std::string, std::string> label;  // stage id -> label
    httplib::Client client(hubspot_->base_url());
    auto pipes = client.Get("/crm/v3/pipelines/tickets", {{"Authorization", "Bearer pat-it"}});
    const json pipelines = json::parse(pipes->body);
    for (const json& p : pipelines["results"])
      for (const json& st : p["stages"]) label[st["id"]] = st["label"];
    std::map<std::string, std::string> out;
    const json tickets = hubspot_->Dump()["tickets"];
    for (const json& t : tickets)
      out[t["properties"]["subject"]] = label[t["properties"]["hs_pipeline_stage"]];
    return out;
  }

  std::unique_ptr<mocks::HubSpotMock> hubspot_;
  std::unique_ptr<mocks::TotangoMock> totango_;
  std::string dir_;
  AppConfig config_;
  std::shared_ptr<const MappingPlan> plan_;
  std::unique_ptr<Store> store_;
};

TEST_F(TotangoSyncTest, SilentlyDroppedAttributeWritesAreDetectedAndRepeatedUntilTheyLand) {
  const std::map<std::string, std::string> hubspot_before = TicketStages();
  totango_->SetFaults({*mocks::FaultRule::Parse("GET /pixel.gif lost rate=0.25 times=8")}, 7);
  int64_t rewritten = 0, runs = 0;
  for (; runs < 8; ++runs) {
    RunSummary s = Sync();
    rewritten += s.counts["totango"]["onboarding"].rewritten;
    if (runs > 0 && s.TotalWrites() == 0) break;
  }
  EXPECT_EQ(totango_->faults_injected(), 8) << "the gateway dropped writes";
  EXPECT_GE(rewritten, 1) << "found on read-back and written again";
  EXPECT_LT(runs, 8) << "converged";

  const std::map<std::string, std::string> totango_stage = {
      {"Ny", "Kick Off"},         {"Onboarding – Pågår", "Business Discovery"},
      {"Må följas upp", "Integration"}, {"Manuell uppföljning", "Configuration"},
      {"Inaktiva kunder", "Training/UAT"}, {"Avslutad", "Live"}};
  const json accounts = totango_->Dump()["accounts"];
  ASSERT_EQ(accounts.size(), 30u) << "every ticket has its account, none twice";
  for (const json& a : accounts) {
    const std::string name = a["display_name"];
    ASSERT_TRUE(hubspot_before.count(name)) << name;
    EXPECT_EQ(a["attributes"]["Onboarding Stage"], totango_stage.at(hubspot_before.at(name))) << name;
  }
  EXPECT_EQ(TicketStages(), hubspot_before) << "no stale Totango value flowed back to HubSpot";
  auto dead = store_->ListDeadLetters(10);
  ASSERT_TRUE(dead.ok());
  EXPECT_TRUE(dead->empty());
}

}  // namespace
}  // namespace crmbridge
