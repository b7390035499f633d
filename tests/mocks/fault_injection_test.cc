// Fault injection, shared by every mock: deterministic from a seed, limited by count, with the
// vendor's own error body, and "applied, then failed" for writes whose outcome the client
// cannot know.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mocks/hubspot/hubspot_mock.h"

namespace crmbridge::mocks {
namespace {

using nlohmann::json;

class FaultInjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HubSpotMock::Options o;
    o.tokens = {"pat-t"};
    o.enforce_limits = false;
    mock_ = std::make_unique<HubSpotMock>(o);
    ASSERT_TRUE(mock_->Start().ok());
    client_ = std::make_unique<httplib::Client>(mock_->base_url());
  }
  void TearDown() override { mock_->Stop(); }

  int Get() {
    auto r = client_->Get("/crm/v3/objects/tickets", {{"Authorization", "Bearer pat-t"}});
    return r ? r->status : 0;
  }
  std::vector<int> Statuses(int n) {
    std::vector<int> out;
    for (int i = 0; i < n; ++i) out.push_back(Get());
    return out;
  }

  // Sends `request` on a connection of its own and returns every byte the mock sends back until
  // it closes the connection (the request asks it to close after answering).
  std::string Exchange(const std::string& request) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(mock_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    // Only keeps a broken mock from hanging the test.
    timeval guard{30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
    send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string answer;
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<size_t>(n));
    close(fd);
    return answer;
  }
  static std::string CreateTicketRequest() {
    const std::string body =
        json{{"properties", {{"subject", "x"}, {"hs_pipeline_stage", "1"}}}}.dump();
    return "POST /crm/v3/objects/tickets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Authorization: Bearer pat-t\r\nContent-Type: application/json\r\n"
           "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }

  std::unique_ptr<HubSpotMock> mock_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(FaultInjectionTest, RateDecisionsReplayFromTheSeed) {
  auto rule = FaultRule::Parse("GET /objects status=503 rate=0.3");
  ASSERT_TRUE(rule.ok());
  mock_->SetFaults({*rule}, 42);
  std::vector<int> first = Statuses(40);
  mock_->SetFaults({*rule}, 42);
  EXPECT_EQ(Statuses(40), first);
  const auto failed = std::count(first.begin(), first.end(), 503);
  EXPECT_GT(failed, 3);
  EXPECT_LT(failed, 25);
  EXPECT_EQ(std::count(first.begin(), first.end(), 200) + failed, 40);
}

TEST_F(FaultInjectionTest, TimesLimitsAFaultAndTheBodyIsHubSpots) {
  mock_->SetFaults({*FaultRule::Parse("* * status=429 times=2 retry_after=3")});
  auto r = client_->Get("/crm/v3/objects/tickets", {{"Authorization", "Bearer pat-t"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->get_header_value("Retry-After"), "3");
  EXPECT_EQ(json::parse(r->body)["policyName"], "TEN_SECONDLY_ROLLING");
  EXPECT_EQ(Statuses(3), (std::vector<int>{429, 200, 200}));
  EXPECT_EQ(mock_->faults_injected(), 2);
}

TEST_F(FaultInjectionTest, AppliedThenFailedWritesLand) {
  mock_->SetFaults({*FaultRule::Parse("POST /crm/v3/objects/tickets status=504 applied times=1")});
  json ticket = {{"properties", {{"subject", "x"}, {"hs_pipeline_stage", "1"}}}};
  auto r = client_->Post("/crm/v3/objects/tickets", {{"Authorization", "Bearer pat-t"}}, ticket.dump(),
                         "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504) << "the client sees a failure";
  EXPECT_EQ(mock_->Dump()["tickets"].size(), 1u) << "but the write landed";
}

TEST_F(FaultInjectionTest, AdminEndpointSetsListsAndClearsFaults) {
  json rules = {{"seed", 7}, {"rules", {{{"method", "GET"}, {"path", "/objects"}, {"status", 500}}}}};
  auto set = client_->Post("/__admin/faults", rules.dump(), "application/json");
  ASSERT_TRUE(set);
  EXPECT_EQ(set->status, 204);
  EXPECT_EQ(Get(), 500);
  auto listed = client_->Get("/__admin/faults");
  ASSERT_TRUE(listed);
  EXPECT_EQ(json::parse(listed->body)["rules"][0]["status"], 500);
  EXPECT_EQ(client_->Get("/__admin/dump")->status, 200) << "admin routes are never faulted";
  EXPECT_EQ(client_->Delete("/__admin/faults")->status, 204);
  EXPECT_EQ(Get(), 200);
  auto bad = client_->Post("/__admin/faults", R"([{"status": 42}])", "application/json");
  EXPECT_EQ(bad->status, 400);
}

TEST_F(FaultInjectionTest, DroppedConnectionsGiveNoAnswer) {
  mock_->SetFaults({*FaultRule::Parse("GET /objects drop times=1")});
  EXPECT_EQ(Get(), 0) << "no HTTP status: the response breaks off";
  EXPECT_EQ(Get(), 200) << "the next connection works";
  // Dropped after the write landed: the client learns nothing, the record exists.
  mock_->SetFaults({*FaultRule::Parse("POST /crm/v3/objects/tickets drop applied times=1")});
  json ticket = {{"properties", {{"subject", "x"}, {"hs_pipeline_stage", "1"}}}};
  auto r = client_->Post("/crm/v3/objects/tickets", {{"Authorization", "Bearer pat-t"}}, ticket.dump(),
                         "application/json");
  EXPECT_FALSE(r && r->status == 201);
  EXPECT_EQ(mock_->Dump()["tickets"].size(), 1u);
}

TEST_F(FaultInjectionTest, ADropBeforeTheWriteLandsClosesTheConnectionBeforeAnyStatusLine) {
  // A server that cut the connection never said 200: the client must not read any status.
  mock_->SetFaults({*FaultRule::Parse("POST /crm/v3/objects/tickets drop times=1")});
  EXPECT_EQ(Exchange(CreateTicketRequest()), "") << "not one byte of an answer";
  EXPECT_EQ(mock_->faults_injected(), 1);
  EXPECT_EQ(mock_->Dump().value("tickets", json::array()).size(), 0u) << "the write did not land";
  const std::string next = Exchange(CreateTicketRequest());
  EXPECT_EQ(next.rfind("HTTP/1.1 201 ", 0), 0u) << "the next connection works: " << next;
}

TEST_F(FaultInjectionTest, ADropAfterTheWriteLandedCutsTheRealAnswerShort) {
  // The write landed and its answer started: the status line and headers are the real ones, the
  // body stops before the length they announce.
  mock_->SetFaults({*FaultRule::Parse("POST /crm/v3/objects/tickets drop applied times=1")});
  const std::string answer = Exchange(CreateTicketRequest());
  EXPECT_EQ(answer.rfind("HTTP/1.1 201 ", 0), 0u) << answer;
  const size_t head_end = answer.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << answer;
  const std::string head = answer.substr(0, head_end);
  const size_t length_at = head.find("Content-Length: ");
  ASSERT_NE(length_at, std::string::npos) << head;
  const size_t announced = std::stoul(head.substr(length_at + 16));
  const size_t sent = answer.size() - head_end - 4;
  EXPECT_GT(sent, 0u) << "part of the body went out";
  EXPECT_LT(sent, announced) << "but not all of it";
  EXPECT_EQ(head.find("X-Crmbridge-Mock"), std::string::npos) << "no marker header leaves the mock";
  EXPECT_EQ(mock_->Dump()["tickets"].size(), 1u) << "the write landed";

  // An answer without a body has nothing to cut short: the connection drops before its status.
  mock_->SetFaults({*FaultRule::Parse("DELETE /crm/v3/objects/tickets drop applied times=1")});
  const std::string id = mock_->Dump()["tickets"][0]["id"];
  EXPECT_EQ(Exchange("DELETE /crm/v3/objects/tickets/" + id +
                     " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer pat-t\r\n"
                     "Connection: close\r\n\r\n"),
            "");
  EXPECT_EQ(mock_->faults_injected(), 2);
}

TEST_F(FaultInjectionTest, PartialFaultsFailSomeInputsOfABatchAndLandTheRest) {
  mock_->SetFaults({*FaultRule::Parse("POST /batch/create partial=0.3")}, 11);
  json inputs = json::array();
  for (int i = 0; i < 40; ++i)
    inputs.push_back({{"objectWriteTraceId", "t" + std::to_string(i)},
                      {"properties", {{"subject", "s" + std::to_string(i)}, {"hs_pipeline_stage", "1"}}}});
  auto r = client_->Post("/crm/v3/objects/tickets/batch/create", {{"Authorization", "Bearer pat-t"}},
                         json{{"inputs", inputs}}.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 207) << r->body;
  const json body = json::parse(r->body);
  const size_t failed = body["numErrors"];
  EXPECT_GT(failed, 3u);
  EXPECT_LT(failed, 25u);
  EXPECT_EQ(body["results"].size() + failed, 40u);
  EXPECT_EQ(mock_->Dump()["tickets"].size(), body["results"].size()) << "failed inputs did not land";
  const json& e = body["errors"][0];
  EXPECT_EQ(e["status"], "error");
  EXPECT_TRUE(e["context"]["objectWriteTraceId"][0].is_string()) << "the error names its input";
  EXPECT_FALSE(r->has_header("X-Crmbridge-Mock-Partial")) << "marker headers never leave the mock";

  // Upsert names the failed inputs by id; a replay of the same seed fails the same inputs.
  ASSERT_EQ(client_
                ->Post("/crm/v3/properties/tickets", {{"Authorization", "Bearer pat-t"}},
                       json{{"name", "ext"}, {"label", "Ext"}, {"type", "string"}, {"fieldType", "text"},
                            {"groupName", "ticketinformation"}, {"hasUniqueValue", true}}
                           .dump(),
                       "application/json")
                ->status,
            201);
  json upserts = json::array();
  for (int i = 0; i < 20; ++i)
    upserts.push_back({{"idProperty", "ext"}, {"id", "k" + std::to_string(i)},
                       {"properties", {{"subject", "u"}, {"hs_pipeline_stage", "1"}}}});
  std::vector<std::string> failed_ids[2];
  for (int round = 0; round < 2; ++round) {
    mock_->SetFaults({*FaultRule::Parse("POST /batch/upsert partial=0.25")}, 5);
    auto u = client_->Post("/crm/v3/objects/tickets/batch/upsert", {{"Authorization", "Bearer pat-t"}},
                           json{{"inputs", upserts}}.dump(), "application/json");
    ASSERT_TRUE(u);
    ASSERT_EQ(u->status, 207);
    const json answer = json::parse(u->body);
    for (const json& err : answer["errors"]) failed_ids[round].push_back(err["context"]["ids"][0]);
  }
  EXPECT_FALSE(failed_ids[0].empty());
  EXPECT_EQ(failed_ids[0], failed_ids[1]);
}

TEST(FaultRuleTest, ParseReportsTheBadWord) {
  EXPECT_FALSE(FaultRule::Parse("GET /x stauts=500").ok());
  EXPECT_NE(FaultRule::Parse("GET /x stauts=500").status().message().find("unknown key 'stauts'"),
            std::string::npos);
  EXPECT_FALSE(FaultRule::Parse("GET /x rate=2").ok());
  auto ok = FaultRule::Parse("PATCH /opportunities status=504 latency=10 applied");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->method, "PATCH");
  EXPECT_EQ(ok->path, "/opportunities");
  EXPECT_TRUE(ok->after_apply);
  EXPECT_EQ(ok->latency_ms, 10);
  auto partial = FaultRule::Parse("POST /$batch partial=0.2");
  ASSERT_TRUE(partial.ok());
  EXPECT_DOUBLE_EQ(partial->partial, 0.2);
  EXPECT_FALSE(FaultRule::Parse("POST /x partial=1.5").ok());
  auto lost = FaultRule::Parse("GET /pixel.gif lost");
  ASSERT_TRUE(lost.ok());
  EXPECT_TRUE(lost->lost);
  EXPECT_TRUE(FaultRule::FromJson(lost->ToJson())->lost) << "JSON round trip";
}

}  // namespace
}  // namespace crmbridge::mocks
