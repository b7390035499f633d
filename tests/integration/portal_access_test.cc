// Portal access end to end, in process: HubSpot companies and contacts become Dynamics 365
// accounts and contacts; the onboarding team sets the portal flags in Dynamics 365; crmbridge then
// creates the portal users, grants each its main property with one password reset, revokes the
// grants when a flag turns off, and writes every step to the audit trail.
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <map>
#include <set>

#include "mocks/dynamics365/dynamics365_mock.h"
#include "mocks/hubspot/hubspot_mock.h"
#include "mocks/portal/portal_mock.h"
#include "src/engine/bootstrap.h"
#include "tests/integration/mock_systems.h"

namespace crmbridge {
namespace {

using nlohmann::json;

class PortalAccessTest : public ::testing::Test {
 protected:
  void Start(int companies, FakeClock* clock = nullptr) {
    mocks::HubSpotMock::Options hs;
    hs.tokens = {"pat-it"};
    hs.enforce_limits = false;
    hubspot_ = std::make_unique<mocks::HubSpotMock>(hs);
    mocks::Dynamics365Mock::Options d;
    d.client_id = "it-client";
    d.client_secret = "it-secret";
    d.service_protection = false;
    dynamics_ = std::make_unique<mocks::Dynamics365Mock>(d);
    mocks::PortalMock::Options p;
    p.tokens = {"portal-it"};
    p.enforce_limits = false;
    portal_ = std::make_unique<mocks::PortalMock>(p);
    hubspot_->Seed(23, companies);
    portal_->Seed(5, 3);  // properties seed-prop-1..3
    ASSERT_TRUE(hubspot_->Start().ok());
    ASSERT_TRUE(dynamics_->Start().ok());
    ASSERT_TRUE(portal_->Start().ok());
    if (clock != nullptr) clock_ = clock;

    char tmpl[] = "/tmp/crmbridge-portal-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_.path = dir_ + "/crmbridge.yaml";
    config_.state_path = dir_ + "/state.db";
    const std::string presets = std::string(CRMBRIDGE_SOURCE_DIR) + "/mappings/presets/";
    config_.mapping_paths = {presets + "onboarding.yaml", presets + "onboarding-portal.yaml"};
    config_.systems = {
        {"hubspot", testing_systems::HubSpot(hubspot_->base_url(), "pat-it")},
        {"dynamics365", testing_systems::Dynamics365(dynamics_->base_url(), "it-client", "it-secret")},
        {"portal", testing_systems::Portal(portal_->base_url(), "portal-it")}};
    auto plan = LoadPlanFor(config_);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
    auto store = OpenSqliteStore(config_.state_path);
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
  }
  void TearDown() override {
    if (hubspot_) hubspot_->Stop();
    if (dynamics_) dynamics_->Stop();
    if (portal_) portal_->Stop();
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  RunSummary Sync() {
    auto connectors = BuildConnectors(config_, *plan_, clock_);
    EXPECT_TRUE(connectors.ok()) << connectors.status().ToString();
    SyncEngine engine(&config_, plan_, store_.get(), std::move(*connectors), clock_);
    RunOptions opt;
    opt.holder = "it";
    auto s = engine.RunOnce(opt);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : RunSummary{};
  }

  // Sets columns of a Dynamics 365 row, as a user of Dynamics 365 would.
  void Patch(const std::string& set, const std::string& id, const json& body) {
    httplib::Client client(dynamics_->base_url());
    if (bearer_.empty()) {
      httplib::Params form = {{"grant_type", "client_credentials"}, {"client_id", "it-client"},
                              {"client_secret", "it-secret"},
                              {"scope", dynamics_->base_url() + "/.default"}};
      auto token = client.Post("/tenant/oauth2/v2.0/token", form);
      ASSERT_TRUE(token && token->status == 200) << (token ? token->body : "no answer");
      bearer_ = json::parse(token->body)["access_token"];
    }
    const std::string& bearer = bearer_;
    auto r = client.Patch(("/api/data/v9.2/" + set + "(" + id + ")").c_str(),
                          {{"Authorization", "Bearer " + bearer}, {"If-Match", "*"}}, body.dump(),
                          "application/json");
    ASSERT_TRUE(r && r->status / 100 == 2) << (r ? r->body : "no answer");
  }

  // Turns portal access on for every contact of the first `accounts` accounts, each with the
  // property seed-prop-1. Returns the portal emails given.
  std::set<std::string> GrantInDynamics(size_t accounts) {
    const json d = dynamics_->Dump();
    std::set<std::string> emails, on;
    for (size_t i = 0; i < accounts && i < d["accounts"].size(); ++i) {
      const std::string id = d["accounts"][i]["accountid"];
      Patch("accounts", id, {{"crmb_activateportalaccess", true}});
      on.insert(id);
    }
    for (const json& c : d["contacts"]) {
      if (!on.count(c.value("_parentcustomerid_value", std::string()))) continue;
      const std::string email = "portal." + c["emailaddress1"].get<std::string>();
      Patch("contacts", c["contactid"], {{"crmb_portalaccess", true}, {"crmb_portalemail", email},
                                         {"crmb_mainproperty", "seed-prop-1"}});
      emails.insert(email);
    }
    return emails;
  }

  std::vector<AuditEntry> Audit(const std::string& action) {
    auto all = store_->ListAudit(0, 0);
    EXPECT_TRUE(all.ok());
    std::vector<AuditEntry> out;
    for (const AuditEntry& e : *all)
      if (e.action == action) out.push_back(e);
    return out;
  }

  std::unique_ptr<mocks::HubSpotMock> hubspot_;
  std::unique_ptr<mocks::Dynamics365Mock> dynamics_;
  std::unique_ptr<mocks::PortalMock> portal_;
  std::string dir_;
  AppConfig config_;
  std::shared_ptr<const MappingPlan> plan_;
  std::unique_ptr<Store> store_;
  Clock* clock_ = Clock::Real();
  std::string bearer_;  // a Dynamics 365 token for Patch()
};

TEST_F(PortalAccessTest, FlagsInDynamicsGrantTheMainPropertyWithOneResetAndRevokeWhenTheyTurnOff) {
  Start(4);
  Sync();  // companies and contacts reach Dynamics 365; nobody has portal access yet
  const size_t seeded_users = portal_->Dump()["users"].size();
  EXPECT_TRUE(Audit("grant").empty());

  const std::set<std::string> emails = GrantInDynamics(2);
  ASSERT_FALSE(emails.empty());
  RunSummary granted = Sync();
  json p = portal_->Dump();
  std::map<std::string, std::string> user_by_email;
  for (const json& u : p["users"]) user_by_email[u["email"]] = u["id"];
  std::string property_id;
  for (const json& pr : p["properties"])
    if (pr.value("external_id", "") == "seed-prop-1") property_id = pr["id"];
  ASSERT_FALSE(property_id.empty());
  EXPECT_EQ(p["users"].size(), seeded_users + emails.size()) << granted.ToJson().dump();
  std::set<std::string> granted_users;
  for (const json& g : p["grants"])
    if (g["property_id"] == property_id) granted_users.insert(g["user_id"]);
  for (const std::string& e : emails) {
    ASSERT_TRUE(user_by_email.count(e)) << e << " has no portal user";
    EXPECT_TRUE(granted_users.count(user_by_email[e])) << e << " has no grant";
  }
  EXPECT_EQ(Audit("grant").size(), emails.size());
  EXPECT_EQ(Audit("reset").size(), emails.size());
  // The portal's answer is on the Dynamics 365 contacts, written in the same run.
  int reflected = 0;
  const json after_grant = dynamics_->Dump();
  for (const json& c : after_grant["contacts"]) {
    if (!c.contains("crmb_portalemail") || !c["crmb_portalemail"].is_string()) continue;
    const std::string email = c["crmb_portalemail"];
    EXPECT_EQ(c.value("crmb_portaluserid", json()), user_by_email[email]) << c.dump();
    EXPECT_EQ(c.value("crmb_portalstate", json()), "granted") << c.dump();
    ++reflected;
  }
  EXPECT_EQ(reflected, static_cast<int>(emails.size()));
  const size_t resets = p["password_resets"].size();
  EXPECT_GE(resets, emails.size());

  // Nothing changed: nothing is written, no second reset.
  RunSummary again = Sync();
  EXPECT_EQ(again.TotalWrites(), 0) << again.ToJson().dump();
  EXPECT_EQ(portal_->Dump()["password_resets"].size(), resets);

  // The first account's flag turns off: its contacts lose access in the same run.
  const json d = dynamics_->Dump();
  const std::string first = d["accounts"][0]["accountid"];
  std::set<std::string> losing;
  for (const json& c : d["contacts"])
    if (c.value("_parentcustomerid_value", std::string()) == first)
      losing.insert("portal." + c["emailaddress1"].get<std::string>());
  ASSERT_FALSE(losing.empty());
  Patch("accounts", first, {{"crmb_activateportalaccess", false}});
  Sync();
  p = portal_->Dump();
  granted_users.clear();
  for (const json& g : p["grants"])
    if (g["property_id"] == property_id) granted_users.insert(g["user_id"]);
  for (const std::string& e : emails)
    EXPECT_EQ(granted_users.count(user_by_email[e]), losing.count(e) ? 0u : 1u) << e;
  const auto revokes = Audit("revoke");
  EXPECT_EQ(revokes.size(), losing.size());
  for (const AuditEntry& r : revokes)
    EXPECT_NE(r.detail.value("reason", "").find("activate_portal_access"), std::string::npos)
        << r.detail.dump();
  EXPECT_EQ(p["password_resets"].size(), resets) << "a revoke sends no reset";
  const json after_revoke = dynamics_->Dump();
  for (const json& c : after_revoke["contacts"]) {
    if (!c.contains("crmb_portalemail") || !c["crmb_portalemail"].is_string()) continue;
    EXPECT_EQ(c.value("crmb_portalstate", json()),
              losing.count(c["crmb_portalemail"]) ? "revoked" : "granted") << c.dump();
  }
  EXPECT_EQ(Sync().TotalWrites(), 0);
}

// A revocation is flushed before anything else the portal has queued: with every grant failing
// and waiting in the outbox (over 1,000 of them), the revoke still reaches the portal in the run
// that plans it.
TEST_F(PortalAccessTest, ARevocationIsNotHeldBehindQueuedGrants) {
  FakeClock clock(Clock::Real()->NowMillis());
  Start(680, &clock);  // about 1,000 contacts, each with a grant queued
  config_.systems["portal"].max_attempts = 1;
  Sync();
  const std::set<std::string> emails = GrantInDynamics(680);
  ASSERT_GE(emails.size(), 1000u);
  portal_->SetFaults({*mocks::FaultRule::Parse("PUT /grants status=503")}, 1);
  Sync();  // users are created; every grant fails and stays queued
  auto pending = store_->OutboxCounts();
  ASSERT_TRUE(pending.ok());
  const int64_t queued_grants = pending->value("portal", 0);
  EXPECT_GE(queued_grants, static_cast<int64_t>(emails.size()) - 1) << pending->dump();

  // One account's "activate portal access" turns off; every queued grant is due again when the
  // next run starts.
  const json d = dynamics_->Dump();
  const std::string account = d["accounts"][0]["accountid"];
  int64_t losing = 0;
  for (const json& c : d["contacts"])
    if (c.value("_parentcustomerid_value", std::string()) == account) ++losing;
  ASSERT_GT(losing, 0);
  Patch("accounts", account, {{"crmb_activateportalaccess", false}});
  clock.Advance(std::chrono::hours(2));
  const json before = portal_->Stats();
  RunSummary s = Sync();
  const json after = portal_->Stats();
  auto deletes = [](const json& stats) {
    int64_t n = 0;
    for (const auto& [route, count] : stats.items())
      if (route.rfind("DELETE ", 0) == 0) n += count.get<int64_t>();
    return n;
  };
  EXPECT_EQ(deletes(after) - deletes(before), losing) << after.dump();
  EXPECT_EQ(static_cast<int64_t>(Audit("revoke").size()), losing);
  EXPECT_EQ(s.counts["portal"]["portal_access"].updated, losing) << s.ToJson().dump();
}

// A contact moved to another main property loses the old grant and gets the new one (with its
// own reset) in one run; a management company's contacts get every property its account lists.
TEST_F(PortalAccessTest, AMovedContactIsRegrantedAndAManagementCompanyGetsEachProperty) {
  Start(3);
  Sync();
  GrantInDynamics(1);
  Sync();
  json d = dynamics_->Dump();
  std::string moved_contact, moved_email;
  const std::string first = d["accounts"][0]["accountid"];
  for (const json& c : d["contacts"])
    if (c.value("_parentcustomerid_value", std::string()) == first) {
      moved_contact = c["contactid"];
      moved_email = c["crmb_portalemail"];
    }
  ASSERT_FALSE(moved_contact.empty());
  auto property_id = [&](const std::string& external_id) {
    const json dump = portal_->Dump();
    for (const json& p : dump["properties"])
      if (p.value("external_id", "") == external_id) return p["id"].get<std::string>();
    return std::string();
  };
  auto grants_of = [&](const std::string& email) {
    const json p = portal_->Dump();
    std::string user;
    for (const json& u : p["users"])
      if (u["email"] == email) user = u["id"];
    std::set<std::string> out;
    for (const json& g : p["grants"])
      if (g["user_id"] == user) out.insert(g["property_id"]);
    return out;
  };
  ASSERT_EQ(grants_of(moved_email), std::set<std::string>{property_id("seed-prop-1")});
  const size_t resets = portal_->Dump()["password_resets"].size();

  Patch("contacts", moved_contact, {{"crmb_mainproperty", "seed-prop-2"}});
  Sync();
  EXPECT_EQ(grants_of(moved_email), std::set<std::string>{property_id("seed-prop-2")});
  EXPECT_EQ(portal_->Dump()["password_resets"].size(), resets + 1) << "one reset for the new grant";
  EXPECT_EQ(Audit("revoke").size(), 1u);

  // The second account manages two properties: its contacts get both, not their main property.
  d = dynamics_->Dump();
  const std::string managing = d["accounts"][1]["accountid"];
  Patch("accounts", managing, {{"crmb_activateportalaccess", true},
                               {"crmb_managedproperties", "seed-prop-2, seed-prop-3"}});
  std::vector<std::string> managed_emails;
  for (const json& c : d["contacts"]) {
    if (c.value("_parentcustomerid_value", std::string()) != managing) continue;
    const std::string email = "portal." + c["emailaddress1"].get<std::string>();
    Patch("contacts", c["contactid"], {{"crmb_portalaccess", true}, {"crmb_portalemail", email},
                                       {"crmb_mainproperty", "seed-prop-1"}});
    managed_emails.push_back(email);
  }
  ASSERT_FALSE(managed_emails.empty());
  Sync();
  for (const std::string& e : managed_emails)
    EXPECT_EQ(grants_of(e), (std::set<std::string>{property_id("seed-prop-2"), property_id("seed-prop-3")}))
        << e;
  EXPECT_EQ(Sync().TotalWrites(), 0);
}

}  // namespace
}  // namespace crmbridge
