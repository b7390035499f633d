// HubSpot connector against the in-process HubSpot mock, through the real transport stack: reads
// that lose nothing when many records share a timestamp, batch writes in the fewest calls, one bad
// record failing alone, and a retried upsert that never duplicates.
#include <gtest/gtest.h>

#include <set>

#include "connectors/hubspot/hubspot_connector.h"
#include "mocks/hubspot/hubspot_mock.h"
#include "src/engine/bootstrap.h"

namespace crmbridge {
namespace {

using nlohmann::json;

class HubSpotAgainstMockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mocks::HubSpotMock::Options o;
    o.tokens = {"pat-t"};
    o.enforce_limits = false;
    o.clock = &mock_clock_;
    mock_ = std::make_unique<mocks::HubSpotMock>(o);
    ASSERT_TRUE(mock_->Start().ok());
    config_.name = config_.kind = "hubspot";
    config_.base_url = mock_->base_url();
    config_.auth = {{"token", "pat-t"}};
    connector_ = std::make_unique<HubSpotConnector>(config_, BuildSystemTransport(config_, &clock_), &clock_);
  }
  void TearDown() override {
    connector_.reset();
    mock_->Stop();
  }
  static ObjectRef Tickets() {
    ObjectRef r;
    r.object = "tickets";
    r.params = {{"pipeline", "Order/faktura"}, {"id_property", "crmbridge_id"}};
    r.fields = {"subject", "hs_pipeline_stage"};
    return r;
  }
  static std::vector<WriteOp> Ops(int n) {
    std::vector<WriteOp> ops(n);
    for (int i = 0; i < n; ++i) {
      ops[i].key = "key-" + std::to_string(i);
      ops[i].fields = {{"subject", "Ticket " + std::to_string(i)}, {"hs_pipeline_stage", "Ny"}};
    }
    return ops;
  }
  int64_t Calls(const std::string& route) const { return mock_->Stats().value(route, int64_t{0}); }

  FakeClock mock_clock_{1780000000000LL};  // the mock's timestamps: moved by hand
  FakeClock clock_;
  std::unique_ptr<mocks::HubSpotMock> mock_;
  SystemConfig config_;
  std::unique_ptr<HubSpotConnector> connector_;
};

TEST_F(HubSpotAgainstMockTest, TwentyFiveThousandTicketsSharingThreeTimestampsAreEachReadOnce) {
  // Three bulk imports: every record of one import carries the same hs_lastmodifieddate, so a
  // single timestamp holds more than a search can page through (10,000).
  for (int i = 0; i < 3; ++i) {
    mock_->Seed(100 + i, i < 2 ? 8400 : 8200);
    mock_clock_.Advance(std::chrono::seconds(1));
  }
  ReadContext ctx;
  ctx.run_start_ms = mock_clock_.NowMillis() + 1000;
  std::set<std::string> ids;
  int64_t records = 0;
  Cursor cursor;
  for (int pages = 0; pages < 1000; ++pages) {
    auto page = connector_->ReadChanges(Tickets(), cursor, ctx);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const NativeRecord& r : page->records) {
      ++records;
      ids.insert(r.id);
    }
    cursor = page->next;
    if (!page->has_more) break;
  }
  EXPECT_EQ(ids.size(), 25000u) << "every ticket";
  EXPECT_EQ(records, 25000) << "each exactly once";
}

TEST_F(HubSpotAgainstMockTest, WritesNRecordsInCeilNOver100BatchCalls) {
  auto out = connector_->Write(Tickets(), Ops(250));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  for (const WriteOutcome& o : *out) ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(Calls("POST /crm/v3/objects/{type}/batch/upsert"), 3) << "ceil(250 / 100)";
  EXPECT_EQ(mock_->Dump()["tickets"].size(), 250u);
}

TEST_F(HubSpotAgainstMockTest, OneInvalidRecordFailsAloneWithHubSpotsReason) {
  std::vector<WriteOp> ops = Ops(10);
  ops[6].fields["no_such_property"] = "x";
  auto out = connector_->Write(Tickets(), ops);
  ASSERT_TRUE(out.ok());
  for (int i = 0; i < 10; ++i) {
    if (i == 6) {
      EXPECT_EQ((*out)[i].status.code(), StatusCode::kInvalidArgument);
      EXPECT_NE((*out)[i].status.message().find("no_such_property"), std::string::npos)
          << (*out)[i].status.message();
      EXPECT_NE((*out)[i].status.message().find("correlationId="), std::string::npos);
    } else {
      EXPECT_TRUE((*out)[i].status.ok()) << i << ": " << (*out)[i].status.ToString();
    }
  }
  EXPECT_EQ(mock_->Dump()["tickets"].size(), 9u);
}

TEST_F(HubSpotAgainstMockTest, AnUpsertRetriedAfterATimeoutThatLandedLeavesOneRecord) {
  mock_->SetFaults({*mocks::FaultRule::Parse("POST /batch/upsert status=504 applied times=1")});
  auto out = connector_->Write(Tickets(), Ops(20));
  ASSERT_TRUE(out.ok());
  for (const WriteOutcome& o : *out) EXPECT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(mock_->faults_injected(), 1);
  EXPECT_EQ(Calls("POST /crm/v3/objects/{type}/batch/upsert"), 2) << "retried once by the transport";
  EXPECT_EQ(mock_->Dump()["tickets"].size(), 20u) << "the retry updated what the first call made";
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

TEST_F(HubSpotAgainstMockTest, AnOAuthAppRefreshesItsAccessTokenBeforeItExpires) {
  connector_.reset();
  config_.auth = {{"refresh_token", "mock-refresh-token"},
                  {"client_id", "mock-oauth-client"},
                  {"client_secret", "mock-oauth-secret"}};
  ASSERT_TRUE(HubSpotConnector::ValidateConfig(config_).ok());
  // The mock's clock is the connector's here, so expiry is seen alike on both sides.
  connector_ = std::make_unique<HubSpotConnector>(config_, BuildSystemTransport(config_, &mock_clock_),
                                                  &mock_clock_);
  ASSERT_TRUE((*connector_->Write(Tickets(), Ops(1)))[0].status.ok());
  ASSERT_TRUE((*connector_->Write(Tickets(), Ops(2)))[1].status.ok());
  EXPECT_EQ(mock_->oauth_issued(), 1) << "cached between calls";
  mock_clock_.Advance(std::chrono::minutes(26));  // within 5 minutes of the 30-minute expiry
  ASSERT_TRUE((*connector_->Write(Tickets(), Ops(1)))[0].status.ok());
  EXPECT_EQ(mock_->oauth_issued(), 2) << "refreshed ahead of expiry, without a 401";
}

TEST_F(HubSpotAgainstMockTest, ARefusedRefreshTokenStopsTheSystemWithoutLeakingSecrets) {
  connector_.reset();
  config_.auth = {{"refresh_token", "revoked-refresh-token"},
                  {"client_id", "mock-oauth-client"},
                  {"client_secret", "mock-oauth-secret"}};
  connector_ = std::make_unique<HubSpotConnector>(config_, BuildSystemTransport(config_, &clock_), &clock_);
  auto out = connector_->Write(Tickets(), Ops(1));
  Status s = out.ok() ? (*out)[0].status : out.status();
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << s.ToString();
  EXPECT_NE(s.message().find("unknown refresh token"), std::string::npos) << s.message();
  EXPECT_EQ(s.ToString().find("mock-oauth-secret"), std::string::npos);
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

TEST(HubSpotDailyLimitTest, TheConnectorStopsWhenTheDailyBudgetIsSpentBeforeA429) {
  mocks::HubSpotMock::Options o;
  o.tokens = {"pat-t"};
  o.daily_max = 5;  // a tiny daily budget
  mocks::HubSpotMock mock(o);
  ASSERT_TRUE(mock.Start().ok());
  SystemConfig config;
  config.name = config.kind = "hubspot";
  config.base_url = mock.base_url();
  config.auth = {{"token", "pat-t"}};
  FakeClock clock;
  {
    HubSpotConnector c(config, BuildSystemTransport(config, &clock), &clock);
    ObjectRef tickets;
    tickets.object = "tickets";
    tickets.params = {{"id_property", "crmbridge_id"}};
    Status last;
    int writes = 0;
    for (int i = 0; i < 10 && last.ok(); ++i) {
      WriteOp op;
      op.key = "k" + std::to_string(i);
      op.fields = {{"subject", "T"}, {"hs_pipeline_stage", "1"}};
      auto out = c.Write(tickets, {op});
      last = out.ok() ? (*out)[0].status : out.status();
      writes += last.ok();
    }
    EXPECT_EQ(last.code(), StatusCode::kFailedPrecondition) << last.ToString();
    EXPECT_NE(last.message().find("Daily-Remaining reached 0"), std::string::npos)
        << "stopped by the header, before HubSpot had to answer 429: " << last.message();
    EXPECT_GE(writes, 1);
  }
  mock.Stop();
}

}  // namespace
}  // namespace crmbridge
