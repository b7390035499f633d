// The Totango mock is the ground truth of the Totango connector: its search paging and 10,000-row
// cap, the SDR gateway that answers 200 whatever happens, its per-minute limit and its REST shapes.
#include "mocks/totango/totango_mock.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <set>

namespace crmbridge::mocks {
namespace {

using nlohmann::json;

class TotangoMockTest : public ::testing::Test {
 protected:
  void StartMock(bool limits = false) {
    TotangoMock::Options o;
    o.tokens = {"tok"};
    o.enforce_limits = limits;
    o.clock = &clock_;
    mock_ = std::make_unique<TotangoMock>(o);
    ASSERT_TRUE(mock_->Start().ok());
    client_ = std::make_unique<httplib::Client>(mock_->base_url());
  }
  void TearDown() override {
    if (mock_) mock_->Stop();
  }
  httplib::Result Search(const std::string& what, const json& query, const std::string& token = "tok") {
    return client_->Post(("/api/v1/search/" + what).c_str(), {{"app-token", token}},
                         "query=" + httplib::detail::encode_query_param(query.dump()),
                         "application/x-www-form-urlencoded");
  }
  // Every account id the search reaches, paging with `count` until a short page.
  std::vector<std::string> AllIds(const json& terms, int count, int64_t* total = nullptr) {
    std::vector<std::string> ids;
    for (int offset = 0;; offset += count) {
      auto r = Search("accounts", {{"terms", terms}, {"fields", json::array()}, {"count", count}, {"offset", offset}});
      EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
      if (!r || r->status != 200) break;
      json body = json::parse(r->body)["response"]["accounts"];
      if (total) *total = body["total_hits"];
      for (const json& h : body["hits"]) ids.push_back(h["name"]);
      if (static_cast<int>(body["hits"].size()) < count) break;
    }
    return ids;
  }
  std::string Sdr(const std::string& query) {
    auto r = client_->Get(("/pixel.gif/?" + query).c_str());
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "image/gif");
    return r->body;
  }
  json Account(const std::string& id) {
    const json dump = mock_->Dump();
    for (const json& a : dump["accounts"])
      if (a["id"] == id) return a;
    return json();
  }

  FakeClock clock_;
  std::unique_ptr<TotangoMock> mock_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(TotangoMockTest, SearchPagesByOffsetAndReturnsEveryAccountOnce) {
  StartMock();
  mock_->Seed(7, 2500);
  int64_t total = 0;
  std::vector<std::string> ids = AllIds(json::array(), 1000, &total);
  EXPECT_EQ(total, 2500);
  EXPECT_EQ(ids.size(), 2500u);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 2500u);
  auto r = Search("accounts", {{"terms", json::array()}, {"fields", json::array()}, {"count", 1001}});
  EXPECT_EQ(r->status, 400) << "count cannot exceed 1000";
  r = Search("accounts", {{"fields", json::array()}});
  EXPECT_EQ(r->status, 400) << "terms is mandatory";
  EXPECT_EQ(json::parse(r->body)["status"], "error");
}

TEST_F(TotangoMockTest, OnlyTenThousandRecordsAreReachableButFilteredQueriesReachTheRest) {
  StartMock();
  mock_->Seed(3, 12000);
  int64_t total = 0;
  std::vector<std::string> ids = AllIds(json::array(), 1000, &total);
  EXPECT_EQ(total, 12000) << "total_hits counts every match";
  EXPECT_EQ(ids.size(), 10000u) << "paging stops at the cap";
  // Split by the lifecycle stage: each part is under the cap, together they are everything.
  std::set<std::string> all;
  for (const char* stage : {"Kick Off", "Business Discovery", "Integration", "Configuration", "Training/UAT", "Live"}) {
    json terms = {{{"type", "string_attribute"}, {"attribute", "Onboarding Stage"}, {"in_list", {stage}}}};
    for (const std::string& id : AllIds(terms, 1000)) EXPECT_TRUE(all.insert(id).second) << id;
  }
  EXPECT_EQ(all.size(), 12000u);
}

TEST_F(TotangoMockTest, FieldsComeBackInOrderAndUsersCarryTheirAccountsFields) {
  StartMock();
  mock_->Seed(1, 3);
  auto r = Search("accounts", {{"terms", {{{"type", "string"}, {"term", "identifier"}, {"eq", "acc_2"}}}},
                               {"fields", {{{"type", "string_attribute"}, {"attribute", "Onboarding Stage"}},
                                           {{"type", "string"}, {"term", "status_group"}}}}});
  ASSERT_EQ(r->status, 200) << r->body;
  json hits = json::parse(r->body)["response"]["accounts"]["hits"];
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0]["name"], "acc_2");
  EXPECT_EQ(hits[0]["selected_fields"][0], Account("acc_2")["attributes"]["Onboarding Stage"]);
  EXPECT_TRUE(hits[0]["selected_fields"][1] == "paying");

  r = Search("users", {{"terms", json::array()},
                       {"fields", {{{"type", "string_attribute"}, {"attribute", "Key Contact"}}}},
                       {"parent_account_fields", {{{"type", "string"}, {"term", "identifier"}, {"index", 0}}}}});
  ASSERT_EQ(r->status, 200) << r->body;
  json users = json::parse(r->body)["response"]["users"];
  EXPECT_EQ(users["total_hits"], mock_->Dump()["users"].size());
  for (const json& u : users["hits"]) {
    EXPECT_TRUE(u["selected_fields"][0] == "yes" || u["selected_fields"][0] == "no");
    EXPECT_EQ(u["selected_fields"][1].get<std::string>().rfind("acc_", 0), 0u) << u.dump();
  }
}

TEST_F(TotangoMockTest, SdrUpsertsAttributesAndSilentlyDropsWhatTheDataModelRefuses) {
  StartMock();
  const std::string gif = Sdr("sdr_s=SP-0000-11&sdr_o=acme_1&sdr_o.account_name=ACME%20AB&sdr_o.Onboarding%20Stage=Integration&sdr_o.Plan=Pro");
  EXPECT_EQ(gif.size(), 43u);
  EXPECT_EQ(gif.substr(0, 6), "GIF89a");
  json a = Account("acme_1");
  EXPECT_EQ(a["display_name"], "ACME AB");
  EXPECT_EQ(a["attributes"]["Onboarding Stage"], "Integration");
  EXPECT_EQ(a["attributes"]["Plan"], "Pro");

  // An unknown stage is ignored, the rest of the request still lands; all answered 200.
  Sdr("sdr_s=SP-0000-11&sdr_o=acme_1&sdr_o.Onboarding%20Stage=Kickoff&sdr_o.Plan=Enterprise");
  a = Account("acme_1");
  EXPECT_EQ(a["attributes"]["Onboarding Stage"], "Integration");
  EXPECT_EQ(a["attributes"]["Plan"], "Enterprise");
  Sdr("sdr_s=SP-9999-99&sdr_o=acme_1&sdr_o.Plan=Free");  // another tenant's service id
  Sdr("sdr_s=SP-0000-11&sdr_o=acme-2&sdr_o.Plan=Free");  // '-' is not allowed in an account id
  Sdr("sdr_s=SP-0000-11&sdr_o=acme_1&sdr_u=ann%40acme.se&sdr_u.name=Ann&sdr_u.Contact=Yes&sdr_u.Key%20Contact=yes");
  json d = mock_->Dump();
  EXPECT_EQ(Account("acme_1")["attributes"]["Plan"], "Enterprise");
  EXPECT_TRUE(Account("acme-2").is_null());
  ASSERT_EQ(d["users"].size(), 1u);
  EXPECT_EQ(d["users"][0]["name"], "Ann");
  EXPECT_FALSE(d["users"][0]["attributes"].contains("Contact")) << "only lower-case yes/no";
  EXPECT_EQ(d["users"][0]["attributes"]["Key Contact"], "yes");
  EXPECT_GE(d["sdr"]["ignored"].size(), 4u);

  // POST with a form body works alike.
  auto r = client_->Post("/pixel.gif", "sdr_s=SP-0000-11&sdr_o=acme_1&sdr_o.Status=Paying", "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Account("acme_1")["attributes"]["Status"], "Paying");
}

TEST_F(TotangoMockTest, ALostFaultAnswers200AndKeepsNothing) {
  StartMock();
  mock_->SetFaults({*FaultRule::Parse("GET /pixel.gif lost times=1")});
  Sdr("sdr_s=SP-0000-11&sdr_o=acme_1&sdr_o.Plan=Pro");
  EXPECT_TRUE(Account("acme_1").is_null()) << "the write was lost, and the client was told 200";
  Sdr("sdr_s=SP-0000-11&sdr_o=acme_1&sdr_o.Plan=Pro");
  EXPECT_EQ(Account("acme_1")["attributes"]["Plan"], "Pro");
}

TEST_F(TotangoMockTest, RestCallsShareOneHundredPerMinutePerTokenButSdrIsUnlimited) {
  StartMock(/*limits=*/true);
  mock_->Seed(1, 1);
  for (int i = 0; i < 100; ++i) {
    auto r = client_->Get("/api/v3/activity-types", {{"app-token", "tok"}});
    ASSERT_EQ(r->status, 200) << i;
    EXPECT_EQ(r->get_header_value("RateLimit-Limit"), "100");
    EXPECT_EQ(r->get_header_value("RateLimit-Remaining"), std::to_string(99 - i));
  }
  auto over = Search("accounts", {{"terms", json::array()}, {"fields", json::array()}});
  ASSERT_EQ(over->status, 429);
  EXPECT_EQ(over->body, "Too many requests");
  EXPECT_EQ(over->get_header_value("Retry-After"), "60");
  EXPECT_EQ(over->get_header_value("RateLimit-Reset"), "60");
  for (int i = 0; i < 150; ++i) Sdr("sdr_s=SP-0000-11&sdr_o=acc_1&sdr_o.Plan=P" + std::to_string(i));
  clock_.Advance(std::chrono::seconds(45));
  EXPECT_EQ(client_->Get("/api/v3/activity-types", {{"app-token", "tok"}})->get_header_value("Retry-After"), "15");
  clock_.Advance(std::chrono::seconds(15));
  EXPECT_EQ(client_->Get("/api/v3/activity-types", {{"app-token", "tok"}})->status, 200) << "a new window";
  EXPECT_EQ(client_->Get("/api/v3/activity-types")->status, 401) << "no token";
}

TEST_F(TotangoMockTest, TouchpointsAreCreatedReadAsNoteEventsAndNeedAnExistingAccount) {
  StartMock();
  mock_->Seed(1, 1);
  json tp = {{"account_id", "acc_1"}, {"subject", "Kick-off"}, {"content", "Agenda agreed"},
             {"activity_type_id", "onboarding"}, {"disable_sync", true}, {"create_date", 1700000000000}};
  auto r = client_->Post("/api/v3/touchpoints/", {{"app-token", "tok"}}, tp.dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  const int64_t id = json::parse(r->body)["note"]["id"];
  // Form-encoded, as older clients send it.
  r = client_->Post("/api/v3/touchpoints/", {{"app-token", "tok"}},
                    "account_id=acc_1&subject=Follow-up&content=Call+notes&activity_type_id=onboarding",
                    "application/x-www-form-urlencoded");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["note"]["content"], "Call notes");

  auto events = client_->Get("/api/v2/events/?account_id=acc_1", {{"app-token", "tok"}});
  ASSERT_EQ(events->status, 200);
  bool found = false;
  for (const json& e : json::parse(events->body))
    if (e["type"] == "note" && e["note_content"]["note_id"] == id) {
      found = true;
      EXPECT_EQ(e["timestamp"], 1700000000000) << "create_date backdates";
    }
  EXPECT_TRUE(found);
  tp["account_id"] = "no_such";
  r = client_->Post("/api/v3/touchpoints/", {{"app-token", "tok"}}, tp.dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"], "Account not found");
  tp["account_id"] = "acc_1";
  tp["content"] = std::string(12001, 'x');
  EXPECT_EQ(client_->Post("/api/v3/touchpoints/", {{"app-token", "tok"}}, tp.dump(), "application/json")->status, 400);
}

TEST_F(TotangoMockTest, TasksValidateAndUpdate) {
  StartMock();
  mock_->Seed(1, 1);
  json task = {{"title", "Configure SSO"}, {"account_id", "acc_1"}, {"activity_type_id", "onboarding"},
               {"priority", 1}, {"due_date", "2026-12-01"}, {"status", "open"}};
  auto r = client_->Post("/api/v3/tasks", {{"app-token", "tok"}}, task.dump(), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  const std::string id = json::parse(r->body)["id"];
  auto one = client_->Get(("/api/v3/tasks?id=" + id).c_str(), {{"app-token", "tok"}});
  ASSERT_EQ(one->status, 200);
  EXPECT_EQ(json::parse(one->body)[0]["title"], "Configure SSO");
  r = client_->Put(("/api/v3/tasks/" + id).c_str(), {{"app-token", "tok"}}, json{{"status", "closed"}}.dump(), "application/json");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(mock_->Dump()["tasks"][0]["status"], "closed");
  task["priority"] = 7;
  EXPECT_EQ(client_->Post("/api/v3/tasks", {{"app-token", "tok"}}, task.dump(), "application/json")->status, 400);
  task["priority"] = 2;
  task.erase("activity_type_id");
  EXPECT_EQ(client_->Post("/api/v3/tasks", {{"app-token", "tok"}}, task.dump(), "application/json")->status, 400);
  task["activity_type_id"] = "onboarding";
  task["account_id"] = "nope";
  r = client_->Post("/api/v3/tasks", {{"app-token", "tok"}}, task.dump(), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"], "Account not found");
}

TEST_F(TotangoMockTest, SeedIsDeterministic) {
  StartMock();
  mock_->Seed(9, 20);
  const json first = mock_->Dump();
  mock_->Reset();
  EXPECT_TRUE(mock_->Dump()["accounts"].empty());
  mock_->Seed(9, 20);
  json second = mock_->Dump();
  EXPECT_EQ(first["accounts"].size(), 20u);
  EXPECT_EQ(first["users"], second["users"]);
  EXPECT_EQ(first["accounts"][5]["attributes"], second["accounts"][5]["attributes"]);
}

}  // namespace
}  // namespace crmbridge::mocks
