// Totango connector against the in-process Totango mock, through the real transport stack: full
// scans past the 10,000-record search cap, SDR writes reported unverified, values Totango would
// ignore refused up front, and touchpoint creates that are never doubled by a retry.
#include "connectors/totango/totango_connector.h"

#include <gtest/gtest.h>

#include <set>

#include "mocks/totango/totango_mock.h"
#include "src/core/fake_transport.h"
#include "src/engine/bootstrap.h"

namespace crmbridge {
namespace {

using nlohmann::json;

class TotangoConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mocks::TotangoMock::Options o;
    o.tokens = {"tt-token"};
    o.enforce_limits = false;
    mock_ = std::make_unique<mocks::TotangoMock>(o);
    ASSERT_TRUE(mock_->Start().ok());
    config_.name = config_.kind = "totango";
    config_.base_url = mock_->base_url();
    config_.auth = {{"app_token", "tt-token"}};
    config_.options = {{"service_id", "SP-0000-11"},
                       {"allowed.Onboarding Stage",
                        "Kick Off|Business Discovery|Integration|Configuration|Training/UAT|Live"}};
    config_.max_attempts = 3;
    connector_ = std::make_unique<TotangoConnector>(config_, BuildSystemTransport(config_, &clock_), &clock_);
  }
  void TearDown() override {
    connector_.reset();  // closes its keep-alive connections, so the mock stops at once
    mock_->Stop();
  }

  ObjectRef Accounts() {
    ObjectRef r;
    r.object = "accounts";
    r.fields = {"display_name", "Onboarding Stage", "Status"};
    return r;
  }
  // Every record of a full scan, page by page, as the engine reads it.
  std::vector<NativeRecord> Scan(const ObjectRef& object, int* pages = nullptr) {
    std::vector<NativeRecord> out;
    Cursor cursor;
    ReadContext ctx;
    ctx.run_start_ms = clock_.NowMillis();
    for (int n = 1;; ++n) {
      auto page = connector_->ReadChanges(object, cursor, ctx);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      for (NativeRecord& r : page->records) out.push_back(std::move(r));
      cursor = page->next;
      if (pages) *pages = n;
      if (!page->has_more) break;
    }
    EXPECT_EQ(cursor, "") << "a finished scan starts over next time";
    return out;
  }
  json Account(const std::string& id) {
    const json dump = mock_->Dump();
    for (const json& a : dump["accounts"])
      if (a["id"] == id) return a;
    return json();
  }

  FakeClock clock_{1790000000000LL};
  std::unique_ptr<mocks::TotangoMock> mock_;
  SystemConfig config_;
  std::unique_ptr<TotangoConnector> connector_;
};

TEST_F(TotangoConnectorTest, AScanOf25000AccountsReturnsEveryOneExactlyOnce) {
  mock_->Seed(5, 25000);
  int pages = 0;
  std::vector<NativeRecord> all = Scan(Accounts(), &pages);
  std::set<std::string> ids;
  for (const NativeRecord& r : all) EXPECT_TRUE(ids.insert(r.id).second) << "twice: " << r.id;
  EXPECT_EQ(ids.size(), 25000u) << "past the 10,000-record cap by splitting on Create Date";
  EXPECT_GE(pages, 25);
  EXPECT_FALSE(all[0].fields["display_name"].get<std::string>().empty());
  EXPECT_TRUE(all[0].fields["Onboarding Stage"].is_string());
}

TEST_F(TotangoConnectorTest, UsersCarryTheirAccount) {
  mock_->Seed(2, 5);
  ObjectRef users;
  users.object = "users";
  users.fields = {"name", "Key Contact", "Contact"};
  std::vector<NativeRecord> all = Scan(users);
  EXPECT_EQ(all.size(), mock_->Dump()["users"].size());
  for (const NativeRecord& u : all) {
    EXPECT_EQ(u.fields["account_id"].get<std::string>().rfind("acc_", 0), 0u);
    EXPECT_EQ(u.id, u.fields["account_id"].get<std::string>() + "/" + u.fields["email"].get<std::string>());
  }
}

TEST_F(TotangoConnectorTest, AttributeWritesGoThroughTheSdrAndAreReportedUnverified) {
  WriteOp op;
  op.key = "6f1c2a9e-0000-4000-8000-000000000001";
  op.fields = {{"display_name", "Bygg Umeå AB"}, {"Onboarding Stage", "Integration"}, {"Contract Value", 12000}};
  auto out = connector_->Write(Accounts(), {op});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const WriteOutcome& o = (*out)[0];
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_TRUE(o.unverified);
  EXPECT_TRUE(connector_->capabilities().acknowledges_unapplied_writes) << "and the kind says so";
  EXPECT_EQ(o.native_id, "crmb_6f1c2a9e_0000_4000_8000_000000000001");
  EXPECT_EQ(TotangoConnector::KeyOfAccountId(o.native_id), op.key);
  json a = Account(o.native_id);
  EXPECT_EQ(a["display_name"], "Bygg Umeå AB");
  EXPECT_EQ(a["attributes"]["Onboarding Stage"], "Integration");
  EXPECT_EQ(a["attributes"]["Contract Value"], "12000");
  // Read back, the record carries crmbridge's key: a lost link is recovered from the id.
  auto read = Scan(Accounts());
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].key, op.key);
}

TEST_F(TotangoConnectorTest, ALostWriteStillAnswers200SoOnlyAReadBackCanTell) {
  mock_->SetFaults({*mocks::FaultRule::Parse("GET /pixel.gif lost times=1")});
  WriteOp op;
  op.key = "k1";
  op.fields = {{"display_name", "Lost AB"}};
  auto out = connector_->Write(Accounts(), {op});
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].status.ok());
  EXPECT_TRUE((*out)[0].unverified) << "the engine verifies it on its next read";
  EXPECT_TRUE(Account("crmb_k1").is_null());
}

TEST_F(TotangoConnectorTest, ValuesTotangoWouldIgnoreAreRefusedBeforeSending) {
  WriteOp bad_stage;
  bad_stage.key = "k1";
  bad_stage.fields = {{"Onboarding Stage", "Kickoff"}};
  WriteOp good;
  good.key = "k2";
  good.fields = {{"Onboarding Stage", "Live"}};
  auto out = connector_->Write(Accounts(), {bad_stage, good});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE((*out)[0].status.message().find("'Kickoff' is not an allowed value of Onboarding Stage"),
            std::string::npos)
      << (*out)[0].status.message();
  EXPECT_TRUE((*out)[1].status.ok()) << "one bad record does not stop the others";
  EXPECT_EQ(mock_->Stats().value("GET /pixel.gif", 0), 1) << "the refused one was never sent";

  ObjectRef users;
  users.object = "users";
  WriteOp flag;
  flag.fields = {{"account_id", "crmb_k2"}, {"email", "ann@example.se"}, {"Contact", "Yes"}};
  out = connector_->Write(users, {flag});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].status.code(), StatusCode::kInvalidArgument);
}

TEST_F(TotangoConnectorTest, ATouchpointCreateRetriedAfterATimeoutThatLandedLeavesOne) {
  mock_->Seed(1, 1);
  mock_->SetFaults({*mocks::FaultRule::Parse("POST /api/v3/touchpoints status=504 applied times=1")});
  ObjectRef touchpoints;
  touchpoints.object = "touchpoints";
  WriteOp op;
  op.key = "note-1";
  op.fields = {{"account_id", "acc_1"}, {"subject", "Onboarding call"}, {"content", "Data import agreed"},
               {"activity_type_id", "onboarding"}};
  const size_t before = mock_->Dump()["touchpoints"].size();
  auto first = connector_->Write(touchpoints, {op});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)[0].status.code(), StatusCode::kUnavailable) << "outcome unknown: not retried blind";
  EXPECT_EQ(mock_->Dump()["touchpoints"].size(), before + 1) << "yet it landed";

  op.attempt = 1;  // the engine's retry on its next flush
  auto second = connector_->Write(touchpoints, {op});
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE((*second)[0].status.ok()) << (*second)[0].status.ToString();
  EXPECT_FALSE((*second)[0].created) << "adopted, not created again";
  const json dump = mock_->Dump();
  EXPECT_EQ(dump["touchpoints"].size(), before + 1) << "one touchpoint, not two";
  EXPECT_EQ(std::to_string(dump["touchpoints"].back()["id"].get<int64_t>()), (*second)[0].native_id);
  EXPECT_EQ(dump["touchpoints"].back()["disable_sync"], true) << "never echoed on by Totango";
}

TEST_F(TotangoConnectorTest, TasksAreCreatedAndUpdated) {
  mock_->Seed(1, 1);
  ObjectRef tasks;
  tasks.object = "tasks";
  WriteOp op;
  op.key = "task-1";
  op.fields = {{"account_id", "acc_1"}, {"title", "Configure SSO"}, {"description", "Customer IT"},
               {"activity_type_id", "onboarding"}, {"priority", 2}, {"due_date", "2026-12-01"}};
  auto out = connector_->Write(tasks, {op});
  ASSERT_TRUE(out.ok() && (*out)[0].status.ok()) << (out.ok() ? (*out)[0].status.ToString() : out.status().ToString());
  op.kind = WriteOp::Kind::kUpdate;
  op.native_id = (*out)[0].native_id;
  op.fields["status"] = "closed";
  out = connector_->Write(tasks, {op});
  ASSERT_TRUE(out.ok() && (*out)[0].status.ok());
  EXPECT_EQ(mock_->Dump()["tasks"][0]["status"], "closed");
}

TEST_F(TotangoConnectorTest, AUserIsWrittenUnderTheAccountItsReferenceNamesWithItsFullName) {
  mock_->Seed(1, 1);
  ObjectRef users;
  users.object = "users";
  users.params = {{"contact", "true"}};
  users.ref_fields = {"account_id"};
  WriteOp op;
  op.fields = {{"email", "ann.berg@bygg1.example.se"}, {"First Name", "Ann"}, {"Last Name", "Berg"}};
  op.refs["account_id"] = NativeRef{"accounts", "acc_1", "", ""};
  auto out = connector_->Write(users, {op});
  ASSERT_TRUE(out.ok() && (*out)[0].status.ok())
      << (out.ok() ? (*out)[0].status.ToString() : out.status().ToString());
  EXPECT_EQ((*out)[0].native_id, "acc_1/ann.berg@bygg1.example.se");
  EXPECT_TRUE((*out)[0].unverified);
  json user;
  const json dump = mock_->Dump();
  for (const json& u : dump["users"])
    if (u["id"] == "ann.berg@bygg1.example.se") user = u;
  ASSERT_FALSE(user.is_null());
  EXPECT_EQ(user["account_id"], "acc_1");
  EXPECT_EQ(user["name"], "Ann Berg") << "the display name from First Name and Last Name";
  EXPECT_EQ(user["attributes"]["First Name"], "Ann");
  EXPECT_EQ(user["attributes"]["Contact"], "yes") << "params.contact: in the Contacts widget";

  // Read back, the account is the reference the engine translates.
  users.fields = {"email", "First Name", "Last Name", "account_id"};
  bool found = false;
  for (const NativeRecord& r : Scan(users))
    if (r.id == (*out)[0].native_id) {
      found = true;
      EXPECT_EQ(r.fields["account_id"], "acc_1");
      EXPECT_EQ(r.fields["Last Name"], "Berg");
    }
  EXPECT_TRUE(found);

  // A user whose reference names no account has nowhere to go: refused, never sent.
  WriteOp orphan = op;
  orphan.fields["email"] = "nobody@example.se";
  orphan.refs["account_id"].id = "";
  const int64_t sdr_calls = mock_->Stats().value("GET /pixel.gif", 0);
  out = connector_->Write(users, {orphan});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE((*out)[0].status.message().find("a user needs an account"), std::string::npos)
      << (*out)[0].status.message();
  EXPECT_EQ(mock_->Stats().value("GET /pixel.gif", 0), sdr_calls);
}

TEST_F(TotangoConnectorTest, TouchpointsAndTasksTakeTheirAccountFromTheReferenceAndTheRestFromParams) {
  mock_->Seed(1, 1);
  ObjectRef touchpoints;
  touchpoints.object = "touchpoints";
  touchpoints.params = {{"activity_type_id", "onboarding"}, {"subject", "Onboarding note"}};
  WriteOp note;
  note.key = "note-1";
  note.fields = {{"content", "Start meeting booked for Monday"}};
  note.refs["account_id"] = NativeRef{"accounts", "acc_1", "", ""};
  auto out = connector_->Write(touchpoints, {note});
  ASSERT_TRUE(out.ok() && (*out)[0].status.ok())
      << (out.ok() ? (*out)[0].status.ToString() : out.status().ToString());
  const json made = mock_->Dump()["touchpoints"].back();
  EXPECT_EQ(std::to_string(made["id"].get<int64_t>()), (*out)[0].native_id);
  EXPECT_EQ(made["account_id"], "acc_1");
  EXPECT_EQ(made["subject"], "Onboarding note");
  EXPECT_EQ(made["activity_type_id"], "onboarding");
  EXPECT_EQ(made["disable_sync"], true);

  ObjectRef tasks;
  tasks.object = "tasks";
  WriteOp task;
  task.key = "task-1";
  task.fields = {{"title", "Boka startmöte"}, {"due_date", "2026-12-10"}};
  task.refs["account_id"] = NativeRef{"accounts", "acc_1", "", ""};
  out = connector_->Write(tasks, {task});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].status.code(), StatusCode::kInvalidArgument) << "a task needs its Flow";
  EXPECT_NE((*out)[0].status.message().find("params.activity_type_id"), std::string::npos)
      << (*out)[0].status.message();
  EXPECT_TRUE(mock_->Dump()["tasks"].empty()) << "refused before sending";

  tasks.params = {{"activity_type_id", "onboarding"}, {"priority", "1"}};
  out = connector_->Write(tasks, {task});
  ASSERT_TRUE(out.ok() && (*out)[0].status.ok())
      << (out.ok() ? (*out)[0].status.ToString() : out.status().ToString());
  const json made_task = mock_->Dump()["tasks"][0];
  EXPECT_EQ(made_task["account_id"], "acc_1");
  EXPECT_EQ(made_task["due_date"], "2026-12-10");
  EXPECT_EQ(made_task["priority"], 1);

  // A reference anywhere else is a mapping Totango cannot hold.
  WriteOp account;
  account.key = "k9";
  account.fields = {{"display_name", "X AB"}};
  account.refs["parent"] = NativeRef{"accounts", "acc_1", "", ""};
  out = connector_->Write(Accounts(), {account});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE((*out)[0].status.message().find("take no reference but account_id"), std::string::npos);
}

TEST_F(TotangoConnectorTest, AnAccountAUserWriteCreatedReadsUnnamedAndItsTouchpointWaits) {
  // The account's own SDR write is lost; its user's write then creates it, unnamed.
  mock_->SetFaults({*mocks::FaultRule::Parse("GET /pixel.gif lost times=1")});
  WriteOp account;
  account.key = "k7";
  account.fields = {{"display_name", "Bygg Lund AB"}};
  auto out = connector_->Write(Accounts(), {account});
  ASSERT_TRUE(out.ok() && (*out)[0].status.ok());

  ObjectRef touchpoints;
  touchpoints.object = "touchpoints";
  touchpoints.params = {{"activity_type_id", "onboarding"}};
  WriteOp note;
  note.key = "note-7";
  note.fields = {{"content", "Welcome mail sent"}};
  note.refs["account_id"] = NativeRef{"accounts", "crmb_k7", "", ""};
  note.attempt = 1;  // a retry looks for an earlier create first, on an account not there yet
  out = connector_->Write(touchpoints, {note});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].status.code(), StatusCode::kUnavailable)
      << "no account yet: tried again later, not dead-lettered: " << (*out)[0].status.ToString();

  ObjectRef users;
  users.object = "users";
  WriteOp user;
  user.fields = {{"email", "eva@bygglund.example.se"}, {"First Name", "Eva"}};
  user.refs["account_id"] = NativeRef{"accounts", "crmb_k7", "", ""};
  out = connector_->Write(users, {user});
  ASSERT_TRUE(out.ok() && (*out)[0].status.ok());
  ASSERT_EQ(Account("crmb_k7")["display_name"], "crmb_k7") << "Totango named it by its id";

  const std::vector<NativeRecord> read = Scan(Accounts());
  ASSERT_EQ(read.size(), 1u);
  EXPECT_FALSE(read[0].fields.contains("display_name"))
      << "read as unnamed, so the lost write of the name shows as lost: " << read[0].fields.dump();

  out = connector_->Write(touchpoints, {note});  // the account is there now
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].status.ok()) << (*out)[0].status.ToString();
}

TEST_F(TotangoConnectorTest, TheRestLimitIsKeptWithoutA429) {
  mocks::TotangoMock::Options o;
  o.tokens = {"tt-token"};
  o.clock = &clock_;
  connector_.reset();
  mock_->Stop();
  mock_ = std::make_unique<mocks::TotangoMock>(o);  // limits on, on the test's clock
  ASSERT_TRUE(mock_->Start().ok());
  mock_->Seed(1, 1);
  config_.base_url = mock_->base_url();
  config_.rate_limit = {100, std::chrono::milliseconds(60000)};
  connector_ = std::make_unique<TotangoConnector>(config_, BuildSystemTransport(config_, &clock_), &clock_);
  ObjectRef tasks;
  tasks.object = "tasks";
  for (int i = 0; i < 150; ++i) {
    WriteOp op;
    op.key = "t" + std::to_string(i);
    op.fields = {{"account_id", "acc_1"}, {"title", "T" + std::to_string(i)}, {"activity_type_id", "support"}};
    auto out = connector_->Write(tasks, {op});
    ASSERT_TRUE(out.ok() && (*out)[0].status.ok()) << i << ": " << (*out)[0].status.ToString();
  }
  EXPECT_EQ(mock_->Dump()["tasks"].size(), 150u);
  EXPECT_GE(clock_.slept_ms(), 59000) << "the client waited for the next minute instead of a 429";
  // SDR writes are outside the limit: no waiting for them.
  const int64_t slept = clock_.slept_ms();
  for (int i = 0; i < 120; ++i) {
    WriteOp op;
    op.key = "a" + std::to_string(i);
    op.fields = {{"display_name", "A"}};
    ASSERT_TRUE((*connector_->Write(Accounts(), {op}))[0].status.ok());
  }
  EXPECT_EQ(clock_.slept_ms(), slept);
}

// Answers Totango's contract does not promise, on a scripted transport: read what can be read,
// and fail an op whose answer makes no sense, never the process.
class TotangoAnswerTest : public ::testing::Test {
 protected:
  TotangoAnswerTest() : transport_(std::make_shared<FakeTransport>()) {
    config_.name = config_.kind = "totango";
    config_.base_url = "https://api-eu1.totango.com";
    config_.auth = {{"app_token", "tt-token"}};
    config_.options = {{"service_id", "SP-0000-11"}};
    connector_ = std::make_unique<TotangoConnector>(config_, transport_, &clock_);
  }
  FakeClock clock_;
  SystemConfig config_;
  std::shared_ptr<FakeTransport> transport_;
  std::unique_ptr<TotangoConnector> connector_;
};

TEST_F(TotangoAnswerTest, ASearchAnswerOfOddShapesGivesTheHitsThatHaveAName) {
  transport_->Respond(200, R"({"response":{"accounts":{"total_hits":"three","hits":[
      {"name":"a1","display_name":"Acme","selected_fields":{"Status":"Paying"}},
      {"display_name":"no name"}, "not a hit", {"name":"a2","selected_fields":["Trial"]}]}}})");
  ObjectRef accounts;
  accounts.object = "accounts";
  accounts.fields = {"Status"};
  auto page = connector_->ReadChanges(accounts, "", ReadContext{});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->records.size(), 2u);
  EXPECT_EQ(page->records[0].id, "a1");
  EXPECT_FALSE(page->records[0].fields.contains("Status")) << "selected_fields is not a list";
  EXPECT_EQ(page->records[1].id, "a2");
  EXPECT_EQ(page->records[1].fields["Status"], "Trial");
}

TEST_F(TotangoAnswerTest, ACreateAnswerWithoutAnIdFailsItsOpOnly) {
  ObjectRef touchpoints;
  touchpoints.object = "touchpoints";
  WriteOp op;
  op.key = "note-1";
  op.fields = {{"account_id", "acc_1"}, {"subject", "Call"}, {"content", "Agreed"}};
  for (const char* answer : {"[1, 2]", "not json", R"({"note": "n-1"})"}) {
    transport_->Respond(201, answer);
    auto out = connector_->Write(touchpoints, {op});
    ASSERT_TRUE(out.ok()) << answer;
    EXPECT_EQ((*out)[0].status.code(), StatusCode::kUnavailable) << answer;
    EXPECT_EQ((*out)[0].status.message(), "totango: the create answer carried no id");
  }
  // A retried create looks for the one it may have made first; items of any shape are passed over.
  op.attempt = 1;
  transport_->Respond(200, R"([1, {"type": 5}, {"type":"note","note_content":"text"},
                                {"type":"note","note_content":{"note_id":"n-7","subject":"Call","text":"Agreed"}}])");
  transport_->Respond(200, "{}");  // the update of the one adopted
  auto adopted = connector_->Write(touchpoints, {op});
  ASSERT_TRUE(adopted.ok());
  ASSERT_TRUE((*adopted)[0].status.ok()) << (*adopted)[0].status.ToString();
  EXPECT_EQ((*adopted)[0].native_id, "n-7");
}

TEST_F(TotangoAnswerTest, ACursorOfAnotherShapeIsRefusedAsUnreadable) {
  ObjectRef accounts;
  accounts.object = "accounts";
  for (const char* cursor :
       {"[]", R"({"windows": 5})", R"({"windows": [[1.7e74, 1767225600000]]})",
        R"({"windows": [["a", "b"]]})", R"({"windows": [[5, 3]]})", R"({"windows": [[-1, 7]]})",
        R"({"windows": [[0, 9223372036854775807]]})", R"({"windows": [[-1, -1]], "offset": "3"})",
        R"({"windows": [[-1, -1]], "read": 18446744073709551615})",
        R"({"windows": [[-1, -1]], "expected": -4})"}) {
    auto page = connector_->ReadChanges(accounts, cursor, ReadContext{});
    ASSERT_FALSE(page.ok()) << cursor;
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument) << cursor;
    EXPECT_EQ(page.status().message(), std::string("totango: unreadable cursor \"") + cursor + "\"");
  }
  EXPECT_EQ(transport_->request_count(), 0u);
  // A total beyond any tenant is taken as at most a trillion: the cursor stays readable.
  transport_->Respond(200, R"({"response":{"accounts":{"total_hits":9223372036854775807,"hits":[]}}})");
  transport_->Respond(200, R"({"response":{"accounts":{"total_hits":1,"hits":[{"name":"a0"}]}}})");
  auto split = connector_->ReadChanges(accounts, "", ReadContext{});
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  ASSERT_TRUE(split->has_more);
  transport_->Respond(200, R"({"response":{"accounts":{"total_hits":1,"hits":[{"name":"a1"}]}}})");
  auto next = connector_->ReadChanges(accounts, split->next, ReadContext{});
  ASSERT_TRUE(next.ok()) << next.status().ToString();
}

TEST(TotangoConfigTest, ValidationNamesWhatIsMissing) {
  SystemConfig c;
  c.name = c.kind = "totango";
  c.base_url = "https://api-eu1.totango.com";
  EXPECT_NE(TotangoConnector::ValidateConfig(c).message().find("auth.app_token"), std::string::npos);
  c.auth = {{"app_token", "x"}};
  EXPECT_NE(TotangoConnector::ValidateConfig(c).message().find("service_id"), std::string::npos);
  c.options = {{"service_id", "SP-1-2"}, {"region", "asia"}};
  EXPECT_NE(TotangoConnector::ValidateConfig(c).message().find("us or eu"), std::string::npos);
  c.options = {{"service_id", "SP-1-2"}, {"region", "eu"}, {"sdr_url", "https://sdr.example"}};
  EXPECT_NE(TotangoConnector::ValidateConfig(c).message().find("give one"), std::string::npos);
  c.options = {{"service_id", "SP-1-2"}, {"region", "eu"}};
  EXPECT_TRUE(TotangoConnector::ValidateConfig(c).ok());
}

}  // namespace
}  // namespace crmbridge
