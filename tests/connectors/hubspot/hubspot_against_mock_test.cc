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

TEST_F(HubSpotAgainstMockTest, AConnectionDroppedBeforeAnyAnswerIsRetriedNeverTakenAsSuccess) {
  // The upsert is idempotent by its key: the transport sends it again and it lands once.
  mock_->SetFaults({*mocks::FaultRule::Parse("POST /batch/upsert drop times=1")});
  auto out = connector_->Write(Tickets(), Ops(20));
  ASSERT_TRUE(out.ok());
  for (const WriteOutcome& o : *out) EXPECT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(mock_->faults_injected(), 1);
  EXPECT_EQ(mock_->Dump()["tickets"].size(), 20u);

  // Out of attempts, every write fails as one that had no answer at all (the system, not the
  // record, is at fault): nothing is taken for done. (cpprestsdk itself sends a request again on
  // another connection when a kept-alive one closes before the status line: every upsert drops.)
  config_.max_attempts = 1;
  HubSpotConnector once(config_, BuildSystemTransport(config_, &clock_), &clock_);
  std::vector<WriteOp> more = Ops(25);
  more.erase(more.begin(), more.begin() + 20);
  mock_->SetFaults({*mocks::FaultRule::Parse("POST /batch/upsert drop")});
  auto failed = once.Write(Tickets(), more);
  ASSERT_TRUE(failed.ok()) << failed.status().ToString();
  for (const WriteOutcome& o : *failed) {
    EXPECT_EQ(o.status.code(), StatusCode::kUnavailable) << o.status.ToString();
    EXPECT_EQ(o.status.http_status(), 0) << "no HTTP status was received";
  }
  EXPECT_EQ(mock_->Dump()["tickets"].size(), 20u) << "the dropped write did not land";
}

TEST_F(HubSpotAgainstMockTest, ALockedBatchIsRetriedAfterHubSpotsLockDelay) {
  // The stack bootstrap builds for a HubSpot system reads 423 the HubSpot way.
  mock_->SetFaults({*mocks::FaultRule::Parse("POST /batch/upsert status=423 times=1")});
  auto out = connector_->Write(Tickets(), Ops(3));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  for (const WriteOutcome& o : *out) EXPECT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(mock_->faults_injected(), 1);
  EXPECT_EQ(Calls("POST /crm/v3/objects/{type}/batch/upsert"), 1) << "served on the retry";
  EXPECT_EQ(mock_->Dump()["tickets"].size(), 3u);
  EXPECT_GE(clock_.slept_ms(), 2000) << "HubSpot's least wait after 423 Locked";
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
  EXPECT_EQ(Calls("POST /oauth/v3/token"), 2) << "the current token endpoint, not the legacy v1";
  EXPECT_EQ(Calls("POST /oauth/v1/token"), 0);
}

TEST_F(HubSpotAgainstMockTest, TheV3TokenEndpointTakesItsParametersInTheBodyOnly) {
  connector_.reset();
  config_.auth = {{"refresh_token", "mock-refresh-token"},
                  {"client_id", "mock-oauth-client"},
                  {"client_secret", "mock-oauth-secret"},
                  {"token_url", mock_->base_url() + "/oauth/v3/token?hapikey=x"}};
  connector_ = std::make_unique<HubSpotConnector>(config_, BuildSystemTransport(config_, &clock_), &clock_);
  auto out = connector_->Write(Tickets(), Ops(1));
  Status s = out.ok() ? (*out)[0].status : out.status();
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << s.ToString();
  EXPECT_NE(s.message().find("not the query"), std::string::npos) << s.message();
  EXPECT_EQ(mock_->oauth_issued(), 0);
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

namespace crmbridge {
namespace {

// References as v4 associations: a read gives each record's associated id under the association
// type, a write associates the records it wrote, and a known previous reference is removed.

ObjectRef TicketsWithCompany() {
  ObjectRef r;
  r.object = "tickets";
  r.params = {{"pipeline", "Order/faktura"}, {"id_property", "crmbridge_id"}};
  r.fields = {"subject", "hs_pipeline_stage", "companies"};
  r.ref_fields = {"companies"};
  return r;
}

ObjectRef Companies() {
  ObjectRef r;
  r.object = "companies";
  r.params = {{"id_property", "crmbridge_id"}};
  r.fields = {"name"};
  return r;
}

// The associated ids of one object of the mock's Dump, by id.
std::map<std::string, std::vector<std::string>> AssociationsOf(const json& dump, const std::string& type,
                                                               const std::string& to) {
  std::map<std::string, std::vector<std::string>> out;
  for (const json& o : dump[type]) {
    std::vector<std::string>& ids = out[o["id"].get<std::string>()];
    if (o["associations"].contains(to)) ids = o["associations"][to].get<std::vector<std::string>>();
  }
  return out;
}

TEST_F(HubSpotAgainstMockTest, AReadGivesEachTicketsAssociatedCompanyForOneBatchReadPerPage) {
  mock_->Seed(7, 250);  // 250 tickets, each with its company
  auto lone = connector_->Write(Tickets(), Ops(5));  // 5 tickets without one
  ASSERT_TRUE(lone.ok());
  std::set<std::string> unassociated;
  for (const WriteOutcome& o : *lone) {
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    unassociated.insert(o.native_id);
  }
  const auto expected = AssociationsOf(mock_->Dump(), "tickets", "companies");
  const int64_t searches_before = Calls("POST /crm/v3/objects/{type}/search");
  const int64_t reads_before = Calls("POST /crm/v4/associations/{from}/{to}/batch/read");

  ReadContext ctx;
  ctx.run_start_ms = mock_clock_.NowMillis() + 1000;
  std::map<std::string, json> read;
  Cursor cursor;
  for (int pages = 0; pages < 100; ++pages) {
    auto page = connector_->ReadChanges(TicketsWithCompany(), cursor, ctx);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const NativeRecord& r : page->records) {
      ASSERT_TRUE(r.fields.contains("companies")) << r.id << ": " << r.fields.dump();
      read[r.id] = r.fields["companies"];
      EXPECT_EQ(r.fields["subject"].is_string(), true) << "the properties are read as before";
    }
    cursor = page->next;
    if (!page->has_more) break;
  }
  ASSERT_EQ(read.size(), 255u);
  for (const auto& [id, company] : read) {
    if (unassociated.count(id)) {
      EXPECT_TRUE(company.is_null()) << id << ": " << company.dump();
      continue;
    }
    ASSERT_EQ(expected.at(id).size(), 1u) << id;
    EXPECT_EQ(company, expected.at(id)[0]) << "ticket " << id;
  }
  const int64_t searches = Calls("POST /crm/v3/objects/{type}/search") - searches_before;
  EXPECT_GE(searches, 2) << "255 tickets take more than one page of 200";
  EXPECT_EQ(Calls("POST /crm/v4/associations/{from}/{to}/batch/read") - reads_before, searches)
      << "one association read per page";

  // Two reference types: one batch read per page for each.
  ObjectRef both = TicketsWithCompany();
  both.fields.push_back("contacts");
  both.ref_fields.insert("contacts");
  const int64_t searches_then = Calls("POST /crm/v3/objects/{type}/search");
  const int64_t reads_then = Calls("POST /crm/v4/associations/{from}/{to}/batch/read");
  const auto contacts = AssociationsOf(mock_->Dump(), "tickets", "contacts");
  cursor.clear();
  size_t with_contact = 0;
  for (int pages = 0; pages < 100; ++pages) {
    auto page = connector_->ReadChanges(both, cursor, ctx);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const NativeRecord& r : page->records) {
      const std::vector<std::string>& ids = contacts.at(r.id);
      if (ids.empty()) {
        EXPECT_TRUE(r.fields["contacts"].is_null()) << r.id;
      } else {
        ++with_contact;
        // A ticket with two contacts gives one of them, the same on every read.
        EXPECT_NE(std::find(ids.begin(), ids.end(), r.fields["contacts"]), ids.end()) << r.id;
      }
    }
    cursor = page->next;
    if (!page->has_more) break;
  }
  EXPECT_EQ(with_contact, 250u);
  EXPECT_EQ(Calls("POST /crm/v4/associations/{from}/{to}/batch/read") - reads_then,
            2 * (Calls("POST /crm/v3/objects/{type}/search") - searches_then));
}

TEST_F(HubSpotAgainstMockTest, UpsertsWithReferencesAreAssociatedInCeilNOver100Calls) {
  const int n = 150;
  std::vector<WriteOp> companies(n);
  for (int i = 0; i < n; ++i) {
    companies[i].key = "company-" + std::to_string(i);
    companies[i].fields = {{"name", "Company " + std::to_string(i) + " AB"}};
  }
  auto made = connector_->Write(Companies(), companies);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::vector<std::string> company_ids;
  for (const WriteOutcome& o : *made) {
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    company_ids.push_back(o.native_id);
  }

  std::vector<WriteOp> tickets = Ops(n);
  for (int i = 0; i < n; ++i) tickets[i].refs["companies"] = NativeRef{"companies", company_ids[i], "", ""};
  auto out = connector_->Write(TicketsWithCompany(), tickets);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  std::vector<std::string> ticket_ids;
  for (const WriteOutcome& o : *out) {
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    ticket_ids.push_back(o.native_id);
  }
  EXPECT_EQ(Calls("POST /crm/v4/associations/{from}/{to}/batch/associate/default"), 2) << "ceil(150 / 100)";
  EXPECT_EQ(Calls("POST /crm/v4/associations/{from}/{to}/batch/archive"), 0) << "nothing to remove";
  json dump = mock_->Dump();
  auto by_ticket = AssociationsOf(dump, "tickets", "companies");
  auto by_company = AssociationsOf(dump, "companies", "tickets");
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(by_ticket[ticket_ids[i]], std::vector<std::string>{company_ids[i]}) << "ticket " << i;
    EXPECT_EQ(by_company[company_ids[i]], std::vector<std::string>{ticket_ids[i]}) << "both ways";
  }
  for (const json& t : dump["tickets"]) EXPECT_FALSE(t["properties"].contains("companies")) << "not a property";

  // Ticket 0 moves to company 1: the old association goes, the new one comes.
  std::vector<WriteOp> move = Ops(1);
  move[0].refs["companies"] = NativeRef{"companies", company_ids[1], company_ids[0], ""};
  out = connector_->Write(TicketsWithCompany(), move);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_TRUE((*out)[0].status.ok()) << (*out)[0].status.ToString();
  EXPECT_EQ((*out)[0].native_id, ticket_ids[0]);
  EXPECT_EQ(Calls("POST /crm/v4/associations/{from}/{to}/batch/archive"), 1);
  dump = mock_->Dump();
  by_ticket = AssociationsOf(dump, "tickets", "companies");
  by_company = AssociationsOf(dump, "companies", "tickets");
  EXPECT_EQ(by_ticket[ticket_ids[0]], std::vector<std::string>{company_ids[1]}) << "the new company alone";
  EXPECT_TRUE(by_company[company_ids[0]].empty()) << "the old company lost the ticket";
  EXPECT_EQ(by_company[company_ids[1]].size(), 2u) << "its own ticket and the one moved to it";

  // Ticket 1 moves to company 2, but removing its old association fails: it must not end up
  // associated with both (a read could not tell which one it refers to). It keeps the old one
  // and the write fails, to be retried.
  mock_->SetFaults({*mocks::FaultRule::Parse("POST /batch/archive status=400 times=1")});
  std::vector<WriteOp> stuck = Ops(2);
  stuck.erase(stuck.begin());
  stuck[0].refs["companies"] = NativeRef{"companies", company_ids[2], company_ids[1], ""};
  const int64_t adds = Calls("POST /crm/v4/associations/{from}/{to}/batch/associate/default");
  out = connector_->Write(TicketsWithCompany(), stuck);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_FALSE((*out)[0].status.ok());
  EXPECT_EQ(Calls("POST /crm/v4/associations/{from}/{to}/batch/associate/default"), adds)
      << "no association added beside the one that could not be removed";
  mock_->SetFaults({});
  EXPECT_EQ(AssociationsOf(mock_->Dump(), "tickets", "companies")[ticket_ids[1]],
            std::vector<std::string>{company_ids[1]});

  // A read agrees.
  ReadContext ctx;
  ctx.run_start_ms = mock_clock_.NowMillis() + 1000;
  Cursor cursor;
  std::map<std::string, json> read;
  for (int pages = 0; pages < 100; ++pages) {
    auto page = connector_->ReadChanges(TicketsWithCompany(), cursor, ctx);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const NativeRecord& r : page->records) read[r.id] = r.fields["companies"];
    cursor = page->next;
    if (!page->has_more) break;
  }
  EXPECT_EQ(read[ticket_ids[0]], company_ids[1]);
  EXPECT_EQ(read[ticket_ids[2]], company_ids[2]);
}

TEST_F(HubSpotAgainstMockTest, AReferenceToARecordThatIsGoneFailsThatWriteAlone) {
  std::vector<WriteOp> companies(1);
  companies[0].key = "company-0";
  companies[0].fields = {{"name", "Acme AB"}};
  auto made = connector_->Write(Companies(), companies);
  ASSERT_TRUE(made.ok());
  ASSERT_TRUE((*made)[0].status.ok());
  std::vector<WriteOp> tickets = Ops(3);
  tickets[0].refs["companies"] = NativeRef{"companies", (*made)[0].native_id, "", ""};
  tickets[1].refs["companies"] = NativeRef{"companies", "987654321", "", ""};  // no such company
  tickets[2].refs["companies"] = NativeRef{"companies", (*made)[0].native_id, "", ""};
  auto out = connector_->Write(TicketsWithCompany(), tickets);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE((*out)[0].status.ok()) << (*out)[0].status.ToString();
  EXPECT_TRUE((*out)[2].status.ok()) << (*out)[2].status.ToString();
  // Not found: the engine looks whether a delete or merge it has not read yet explains it.
  EXPECT_EQ((*out)[1].status.code(), StatusCode::kNotFound) << (*out)[1].status.ToString();
  EXPECT_NE((*out)[1].status.message().find("987654321"), std::string::npos) << (*out)[1].status.message();
  auto by_ticket = AssociationsOf(mock_->Dump(), "tickets", "companies");
  EXPECT_EQ(by_ticket[(*out)[0].native_id], std::vector<std::string>{(*made)[0].native_id});
  EXPECT_EQ(Calls("POST /crm/v4/associations/{from}/{to}/batch/associate/default"), 1);
}

// A change a webhook announced is read alone: by id, 100 per batch read, with its properties and
// associations as a search page has them; an id HubSpot no longer shows, or a ticket of another
// pipeline, is left out.
TEST_F(HubSpotAgainstMockTest, RecordsReadByIdComeAsASearchGivesThemInBatchesOf100) {
  mock_->Seed(7, 150);  // 150 tickets, each with its company
  ObjectRef support = Tickets();
  support.params["pipeline"] = "Support Pipeline";
  std::vector<WriteOp> other(1);
  other[0].key = "support-1";
  other[0].fields = {{"subject", "Printer on fire"}, {"hs_pipeline_stage", "New"}};
  auto written = connector_->Write(support, other);
  ASSERT_TRUE(written.ok() && (*written)[0].status.ok());
  const std::string support_id = (*written)[0].native_id;

  const auto companies = AssociationsOf(mock_->Dump(), "tickets", "companies");
  std::vector<std::string> ids;
  for (const auto& [id, to] : companies)
    if (id != support_id) ids.push_back(id);
  ASSERT_EQ(ids.size(), 150u);
  ids.push_back(support_id);
  ids.push_back("999999999");  // archived or merged away
  const int64_t reads_before = Calls("POST /crm/v3/objects/{type}/batch/read");
  const int64_t searches_before = Calls("POST /crm/v3/objects/{type}/search");

  auto read = connector_->ReadByIds(TicketsWithCompany(), ids);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_EQ(read->size(), 150u) << "neither the other pipeline's ticket nor the unknown id";
  for (const NativeRecord& r : *read) {
    ASSERT_TRUE(r.invalid.empty()) << r.invalid;
    EXPECT_NE(r.id, support_id);
    EXPECT_TRUE(r.fields["subject"].is_string()) << r.fields.dump();
    // The stage as its label, as a search read gives it.
    EXPECT_EQ(r.fields["hs_pipeline_stage"].get<std::string>().rfind("7340", 0), std::string::npos)
        << r.fields.dump();
    EXPECT_GT(r.modified_ms, 0);
    ASSERT_EQ(companies.at(r.id).size(), 1u);
    EXPECT_EQ(r.fields["companies"], companies.at(r.id)[0]) << r.id;
  }
  EXPECT_EQ(Calls("POST /crm/v3/objects/{type}/batch/read") - reads_before, 2) << "ceil(152 / 100)";
  EXPECT_EQ(Calls("POST /crm/v3/objects/{type}/search") - searches_before, 0);
}

// A ticket's stage history: read with propertiesWithHistory, 50 tickets per batch read, oldest
// first, each stage by its label as a read gives it; a change made through the API joins it.
TEST_F(HubSpotAgainstMockTest, AStageHistoryIsReadOldestFirstByLabelInBatchesOf50) {
  mock_->Seed(7, 60);
  ReadContext ctx;
  ctx.run_start_ms = mock_clock_.NowMillis() + 1000;
  auto page = connector_->ReadChanges(Tickets(), "", ctx);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  std::vector<std::string> ids;
  for (const NativeRecord& r : page->records) ids.push_back(r.id);
  ASSERT_EQ(ids.size(), 60u);
  ids.push_back("999999999");  // no such ticket
  const int64_t reads_before = Calls("POST /crm/v3/objects/{type}/batch/read");
  auto history = connector_->ReadFieldHistory(Tickets(), "hs_pipeline_stage", ids);
  ASSERT_TRUE(history.ok()) << history.status().ToString();
  EXPECT_EQ(Calls("POST /crm/v3/objects/{type}/batch/read") - reads_before, 2) << "ceil(61 / 50)";
  ASSERT_EQ(history->size(), 60u);
  const std::set<std::string> labels = {"Ny", "Onboarding – Pågår", "Må följas upp",
                                        "Manuell uppföljning", "Inaktiva kunder", "Avslutad"};
  for (const NativeRecord& r : page->records) {
    const std::vector<FieldChange>& changes = history->at(r.id);
    ASSERT_FALSE(changes.empty());
    EXPECT_EQ(changes.front().value, "Ny") << "every seeded ticket entered the first stage";
    EXPECT_EQ(changes.back().value, r.fields["hs_pipeline_stage"]) << "its history ends where it is";
    for (size_t i = 0; i < changes.size(); ++i) {
      EXPECT_TRUE(labels.count(changes[i].value.get<std::string>())) << changes[i].value;
      if (i > 0) {
        EXPECT_LT(changes[i - 1].at_ms, changes[i].at_ms);
      }
    }
    EXPECT_LT(changes.back().at_ms, mock_clock_.NowMillis()) << "reached before it was read";
  }

  // Moved now through the API: the move is the newest entry.
  std::vector<WriteOp> move(1);
  move[0].kind = WriteOp::Kind::kUpdate;
  move[0].native_id = ids[0];
  move[0].fields = {{"hs_pipeline_stage", "Må följas upp"}};
  mock_clock_.Advance(std::chrono::milliseconds(5000));
  auto out = connector_->Write(Tickets(), move);
  ASSERT_TRUE(out.ok() && (*out)[0].status.ok());
  auto again = connector_->ReadFieldHistory(Tickets(), "hs_pipeline_stage", {ids[0]});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->at(ids[0]).back().value, "Må följas upp");
  EXPECT_EQ(again->at(ids[0]).back().at_ms, mock_clock_.NowMillis());
}

// A record's owner is an owner id in HubSpot and an email to crmbridge: read as its owner's email
// (an archived owner's too), written as the id of the active owner with that email; an email no
// active owner has gets options.default_owner, or no owner when none is set. The owners are read
// once (two listings: active and archived), not once per page.
TEST_F(HubSpotAgainstMockTest, OwnersAreReadAndWrittenByEmail) {
  mock_->Seed(3, 12);
  ObjectRef owned = Tickets();
  owned.fields.push_back("hubspot_owner_id");
  std::map<std::string, std::string> expected;  // ticket id -> its owner's email, from the mock
  const std::map<std::string, std::string> kOwners = {
      {"61000101", "anna.lund@bolaget.example"}, {"61000102", "erik.sand@bolaget.example"},
      {"61000103", "maja.ek@bolaget.example"}, {"61000104", "karl.berg@bolaget.example"}};
  const json seeded = mock_->Dump();
  for (const auto& t : seeded["tickets"])
    expected[t["id"].get<std::string>()] =
        kOwners.at(t["properties"]["hubspot_owner_id"].get<std::string>());
  std::set<std::string> seen;
  ReadContext ctx;
  ctx.page_size = 5;
  Cursor cursor;
  for (int i = 0; i < 20; ++i) {
    auto page = connector_->ReadChanges(owned, cursor, ctx);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const NativeRecord& r : page->records) {
      if (r.deleted) continue;
      ASSERT_TRUE(expected.count(r.id)) << r.id;
      EXPECT_EQ(r.fields["hubspot_owner_id"], expected.at(r.id)) << r.id;
      seen.insert(r.fields["hubspot_owner_id"].get<std::string>());
    }
    cursor = page->next;
    if (!page->has_more) break;
  }
  EXPECT_TRUE(seen.count("maja.ek@bolaget.example")) << "an archived owner is read by email too";
  EXPECT_EQ(Calls("GET /crm/v3/owners"), 2) << "active and archived, once for every page";

  std::vector<WriteOp> ops = Ops(3);
  ops[0].fields["hubspot_owner_id"] = "Erik.Sand@bolaget.example";  // typed by hand elsewhere
  ops[1].fields["hubspot_owner_id"] = "maja.ek@bolaget.example";    // archived: owns nothing new
  ops[2].fields["hubspot_owner_id"] = "nobody@bolaget.example";
  auto written = connector_->Write(owned, ops);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  auto owner_of = [&](const WriteOutcome& o) {
    const json dump = mock_->Dump();
    for (const auto& t : dump["tickets"])
      if (t["id"] == o.native_id) return t["properties"].value("hubspot_owner_id", json()).dump();
    return std::string("<no ticket>");
  };
  for (const WriteOutcome& o : *written) ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(owner_of((*written)[0]), "\"61000102\"");
  EXPECT_EQ(owner_of((*written)[1]), "null") << "no default owner: written without one";
  EXPECT_EQ(owner_of((*written)[2]), "null");

  config_.options["default_owner"] = "anna.lund@bolaget.example";
  connector_ = std::make_unique<HubSpotConnector>(config_, BuildSystemTransport(config_, &clock_), &clock_);
  std::vector<WriteOp> again = Ops(2);
  again[0].fields["hubspot_owner_id"] = "maja.ek@bolaget.example";
  again[1].fields["hubspot_owner_id"] = "nobody@bolaget.example";
  written = connector_->Write(owned, again);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(owner_of((*written)[0]), "\"61000101\"") << "the default owner";
  EXPECT_EQ(owner_of((*written)[1]), "\"61000101\"");
}

}  // namespace
}  // namespace crmbridge
