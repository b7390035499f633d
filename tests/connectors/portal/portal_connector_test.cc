// Portal connector against the in-process PortalMock, through the real transport stack
// (CpprestTransport inside RetryingTransport): paging, creates whose answer was lost, adoption of
// existing records, the one password reset per grant, and how errors reach the engine. The mock,
// the retry backoff and the connector share one FakeClock, so retries never sleep.
#include "connectors/portal/portal_connector.h"

#include <gtest/gtest.h>

#include "src/core/url.h"

#include <cctype>
#include <map>
#include <set>

#include "connectors/portal/portal_codec.h"
#include "connectors/portal/portal_errors.h"
#include "connectors/portal/portal_limits.h"
#include "mocks/portal/portal_mock.h"
#include "src/core/cpprest_transport.h"
#include "src/core/fake_transport.h"
#include "src/core/retrying_transport.h"

namespace crmbridge {
namespace {

using mocks::FaultRule;
using mocks::PortalMock;
using nlohmann::json;

constexpr char kToken[] = "portal-connector-test-token";

ObjectRef Object(const std::string& name) {
  ObjectRef r;
  r.object = name;
  return r;
}

WriteOp Upsert(const std::string& key, json fields, const std::string& native_id = "") {
  WriteOp op;
  op.kind = WriteOp::Kind::kUpsert;
  op.key = key;
  op.native_id = native_id;
  op.fields = std::move(fields);
  return op;
}

WriteOp Update(const std::string& native_id, json fields) {
  WriteOp op = Upsert("", std::move(fields), native_id);
  op.kind = WriteOp::Kind::kUpdate;
  return op;
}

WriteOp Delete(const std::string& native_id, json fields = json::object()) {
  WriteOp op = Upsert("", std::move(fields), native_id);
  op.kind = WriteOp::Kind::kDelete;
  return op;
}

WriteOp Grant(const std::string& user, const std::string& property) {
  return Upsert("", {{"user_id", user}, {"property_id", property}});
}

class PortalConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override { StartMock(); }
  void TearDown() override {
    portal_.reset();  // closes its keep-alive connections, so the mock stops at once
    if (mock_) mock_->Stop();
  }

  void StartMock(bool limits = false, int per_minute_max = 600) {
    portal_.reset();
    if (mock_) mock_->Stop();
    PortalMock::Options o;
    o.tokens = {kToken};
    o.enforce_limits = limits;
    o.per_minute_max = per_minute_max;
    o.clock = &clock_;
    mock_ = std::make_unique<PortalMock>(o);
    ASSERT_TRUE(mock_->Start().ok());
    portal_ = Connect(kToken);
  }

  std::unique_ptr<PortalConnector> Connect(const std::string& token, int max_attempts = 4) {
    SystemConfig c;
    c.name = c.kind = "portal";
    c.base_url = mock_->base_url();
    c.auth = {{"token", token}};
    c.timeout = std::chrono::seconds(10);
    EXPECT_TRUE(PortalConnector::ValidateConfig(c).ok());
    RetryPolicy policy;
    policy.max_attempts = max_attempts;
    policy.initial_backoff = std::chrono::milliseconds(100);
    auto transport =
        std::make_shared<RetryingTransport>(NewCpprestTransport(), policy, &clock_, /*seed=*/7);
    return std::make_unique<PortalConnector>(c, transport, &clock_);
  }

  // Writes `ops` and expects the Write as a whole to succeed.
  std::vector<WriteOutcome> Write(const std::string& object, const std::vector<WriteOp>& ops,
                                  PortalConnector* connector = nullptr) {
    auto r = (connector ? connector : portal_.get())->Write(Object(object), ops);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return std::vector<WriteOutcome>(ops.size());
    EXPECT_EQ(r->size(), ops.size());
    return *r;
  }
  WriteOutcome WriteOne(const std::string& object, const WriteOp& op) {
    return Write(object, {op}).at(0);
  }
  std::string CreateUser(const std::string& key, const std::string& email) {
    WriteOutcome o = WriteOne("users", Upsert(key, {{"email", email}, {"portal_access", true}}));
    EXPECT_TRUE(o.status.ok()) << o.status.ToString();
    return o.native_id;
  }
  std::string CreateProperty(const std::string& key, const std::string& name) {
    WriteOutcome o = WriteOne("properties", Upsert(key, {{"name", name}}));
    EXPECT_TRUE(o.status.ok()) << o.status.ToString();
    return o.native_id;
  }

  // Every page of a full scan from the start, checking the scan ends as the engine expects.
  std::vector<NativeRecord> ReadAll(const std::string& object, int page_size = 0,
                                    int* pages = nullptr) {
    std::vector<NativeRecord> out;
    ReadContext ctx;
    ctx.page_size = page_size;
    Cursor cursor;
    for (int n = 1;; ++n) {
      auto page = portal_->ReadChanges(Object(object), cursor, ctx);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      const size_t cap = page_size > 0 ? page_size : portal::kMaxPage;
      EXPECT_LE(page->records.size(), cap);
      for (NativeRecord& r : page->records) out.push_back(std::move(r));
      if (pages) *pages = n;
      if (!page->has_more) {
        EXPECT_EQ(page->next, "") << "a finished scan starts over next run";
        break;
      }
      EXPECT_NE(page->next, "");
      cursor = page->next;
      if (n > 1000) {
        ADD_FAILURE() << "the scan does not end";
        break;
      }
    }
    return out;
  }

  json Dump() const { return mock_->Dump(); }
  size_t Count(const char* what) const { return mock_->Dump()[what].size(); }
  int64_t Requests(const std::string& route) const {
    return mock_->Stats().value(route, int64_t{0});
  }

  FakeClock clock_;
  std::unique_ptr<PortalMock> mock_;
  std::unique_ptr<PortalConnector> portal_;
};

TEST_F(PortalConnectorTest, CreatesUsersAndReadsThemAllBackOnceAcrossPages) {
  WriteOutcome first = WriteOne("users", Upsert("crm-u-0", {{"email", "anna.berg@example.se"},
                                                            {"first_name", "Anna"},
                                                            {"last_name", "Berg"},
                                                            {"portal_access", "true"}}));
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.native_id, "usr_1");
  const json stored = Dump()["users"][0];
  EXPECT_EQ(stored["email"], "anna.berg@example.se");
  EXPECT_EQ(stored["portal_access"], true) << "\"true\" is sent as a boolean";

  std::vector<WriteOp> more;
  for (int i = 1; i < 230; ++i)
    more.push_back(
        Upsert("crm-u-" + std::to_string(i), {{"email", "user" + std::to_string(i) + "@example.se"},
                                              {"first_name", "User " + std::to_string(i)}}));
  for (const WriteOutcome& o : Write("users", more)) {
    EXPECT_TRUE(o.status.ok()) << o.status.ToString();
    EXPECT_TRUE(o.created);
  }
  ASSERT_EQ(Count("users"), 230u);

  int pages = 0;
  std::vector<NativeRecord> users = ReadAll("users", 0, &pages);
  EXPECT_EQ(pages, 3) << "100 + 100 + 30";
  std::map<std::string, int> seen;
  for (const NativeRecord& u : users) ++seen[u.id];
  EXPECT_EQ(seen.size(), 230u);
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
  ASSERT_FALSE(users.empty());
  const NativeRecord& anna = users[0];
  EXPECT_EQ(anna.id, "usr_1");
  EXPECT_EQ(anna.fields["email"], "anna.berg@example.se");
  EXPECT_EQ(anna.fields["first_name"], "Anna");
  EXPECT_EQ(anna.fields["last_name"], "Berg");
  EXPECT_EQ(anna.fields["portal_access"], true);
  EXPECT_TRUE(anna.fields["main_property_id"].is_null());
  EXPECT_FALSE(anna.fields.contains("id"));
  EXPECT_FALSE(anna.fields.contains("updated_at"));
  EXPECT_EQ(anna.modified_ms, clock_.NowMillis());
  EXPECT_EQ(anna.key, "") << "users carry no key";
  EXPECT_TRUE(users[1].fields["last_name"].is_null()) << "absent fields read as null";
  EXPECT_EQ(Requests("GET /v1/users"), 3);

  // A smaller page size is honoured, and the next scan covers everything again.
  EXPECT_EQ(ReadAll("users", 40, &pages).size(), 230u);
  EXPECT_EQ(pages, 6);
}

TEST_F(PortalConnectorTest, PropertyUpsertWritesTheKeyAndUpdatesById) {
  WriteOutcome created = WriteOne("properties", Upsert("crm-p-1", {{"name", "Brf Ekbacken"}}));
  ASSERT_TRUE(created.status.ok()) << created.status.ToString();
  EXPECT_TRUE(created.created);
  EXPECT_EQ(created.native_id, "prop_1");
  EXPECT_EQ(Dump()["properties"][0]["external_id"], "crm-p-1");

  WriteOutcome renamed =
      WriteOne("properties", Upsert("crm-p-1", {{"name", "Brf Ekbacken i Lund"}}, "prop_1"));
  ASSERT_TRUE(renamed.status.ok()) << renamed.status.ToString();
  EXPECT_FALSE(renamed.created);
  EXPECT_EQ(renamed.native_id, "prop_1");
  EXPECT_EQ(Requests("PATCH /v1/properties/{id}"), 1);
  EXPECT_EQ(Requests("POST /v1/properties"), 1) << "a known id is updated, not created";

  WriteOutcome updated = WriteOne("properties", Update("prop_1", {{"name", "Brf Ekbacken 2"}}));
  ASSERT_TRUE(updated.status.ok()) << updated.status.ToString();

  for (int i = 2; i <= 5; ++i)
    CreateProperty("crm-p-" + std::to_string(i), "Brf " + std::to_string(i));
  CreateProperty("", "Brf utan nyckel");
  int pages = 0;
  std::vector<NativeRecord> props = ReadAll("properties", 2, &pages);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(props.size(), 6u);
  EXPECT_EQ(props[0].id, "prop_1");
  EXPECT_EQ(props[0].key, "crm-p-1");
  EXPECT_EQ(props[0].fields, (json{{"name", "Brf Ekbacken 2"}, {"external_id", "crm-p-1"}}));
  EXPECT_EQ(props[5].key, "");
  EXPECT_TRUE(props[5].fields["external_id"].is_null());

  // A field the portal does not have is this op's error, not silently dropped.
  WriteOutcome unknown = WriteOne("properties", Upsert("crm-p-9", {{"city", "Lund"}}));
  EXPECT_EQ(unknown.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status.message().find("city"), std::string::npos);
  // The API cannot delete a property.
  EXPECT_EQ(WriteOne("properties", Delete("prop_1")).status.code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Count("properties"), 6u);
}

TEST_F(PortalConnectorTest, AUserCreateAppliedButAnswered503LeavesOneUser) {
  mock_->SetFaults({*FaultRule::Parse("POST /v1/users status=503 applied times=1")});
  WriteOutcome o = WriteOne("users", Upsert("crm-u-1", {{"email", "maja@example.se"}}));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.native_id, "usr_1");
  EXPECT_TRUE(o.created) << "the replay answers the create that landed";
  EXPECT_EQ(mock_->faults_injected(), 1);
  EXPECT_EQ(Requests("POST /v1/users"), 2) << "retried once, with the same Idempotency-Key";
  EXPECT_EQ(Count("users"), 1u);

  // Written again (the engine lost the outcome): the key replays again.
  WriteOutcome again = WriteOne("users", Upsert("crm-u-1", {{"email", "maja@example.se"}}));
  ASSERT_TRUE(again.status.ok()) << again.status.ToString();
  EXPECT_EQ(again.native_id, "usr_1");
  EXPECT_EQ(Count("users"), 1u);
}

TEST_F(PortalConnectorTest, APropertyCreateAppliedButAnswered503LeavesOneProperty) {
  mock_->SetFaults({*FaultRule::Parse("POST /v1/properties status=503 applied times=1")});
  WriteOutcome o = WriteOne("properties", Upsert("crm-p-1", {{"name", "Brf Tallåsen"}}));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.native_id, "prop_1");
  EXPECT_EQ(mock_->faults_injected(), 1);
  EXPECT_EQ(Requests("POST /v1/properties"), 2);
  const json props = Dump()["properties"];
  ASSERT_EQ(props.size(), 1u);
  EXPECT_EQ(props[0]["name"], "Brf Tallåsen");
  EXPECT_EQ(props[0]["external_id"], "crm-p-1");
}

TEST_F(PortalConnectorTest, AChangedPayloadForTheSameKeyIsNoIdempotencyMismatch) {
  const std::string id = CreateProperty("crm-p-1", "Brf Lindängen");
  // The link was never saved and the name changed meanwhile: a new body, so a new Idempotency-Key
  // (no 422); the external_id is taken (409), so the property is found by it and renamed.
  WriteOutcome o = WriteOne("properties", Upsert("crm-p-1", {{"name", "Brf Lindängen i Umeå"}}));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_FALSE(o.created);
  EXPECT_EQ(o.native_id, id);
  EXPECT_EQ(Count("properties"), 1u);
  EXPECT_EQ(Dump()["properties"][0]["name"], "Brf Lindängen i Umeå");
  EXPECT_EQ(Requests("PATCH /v1/properties/{id}"), 1);

  // Found with the name already right: nothing to update.
  WriteOutcome same = WriteOne("properties", Upsert("crm-p-1", {{"name", "Brf Lindängen i Umeå"}}));
  ASSERT_TRUE(same.status.ok()) << same.status.ToString();
  EXPECT_EQ(same.native_id, id);

  // Same for a user whose details changed before the create's outcome was known.
  const std::string user = CreateUser("crm-u-1", "oskar@example.se");
  WriteOutcome changed = WriteOne(
      "users", Upsert("crm-u-1", {{"email", "oskar@example.se"}, {"first_name", "Oskar"}}));
  ASSERT_TRUE(changed.status.ok()) << changed.status.ToString();
  EXPECT_FALSE(changed.created);
  EXPECT_EQ(changed.native_id, user);
  EXPECT_EQ(Dump()["users"][0]["first_name"], "Oskar");
  EXPECT_EQ(Count("users"), 1u);
}

TEST_F(PortalConnectorTest, AnEmailConflictAdoptsTheExistingUser) {
  mock_->Seed(3, 2);  // users the portal had before crmbridge
  const json before = Dump();
  const json existing = before["users"][0];
  const std::string email = existing["email"];
  std::string shouted = email;
  for (char& c : shouted) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));

  WriteOutcome o = WriteOne(
      "users",
      Upsert("crm-u-42", {{"email", shouted}, {"first_name", "Ny"}, {"portal_access", false}}));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_FALSE(o.created);
  EXPECT_EQ(o.native_id, existing["id"]);
  const json after = Dump();
  EXPECT_EQ(after["users"].size(), before["users"].size());
  EXPECT_EQ(after["users"][0]["first_name"], "Ny");
  EXPECT_EQ(after["users"][0]["portal_access"], false);
  EXPECT_EQ(Requests("GET /v1/users"), 1) << "looked up by email";
  EXPECT_EQ(Requests("PATCH /v1/users/{id}"), 1);
}

TEST_F(PortalConnectorTest, AGrantSendsOnePasswordResetHoweverOftenItIsRetried) {
  const std::string user = CreateUser("crm-u-1", "karl@example.se");
  const std::string prop = CreateProperty("crm-p-1", "Brf Rosendal");
  mock_->SetFaults({*FaultRule::Parse("PUT /grants/ status=503 applied times=1"),
                    *FaultRule::Parse("POST /password-reset status=503 applied times=1")});
  WriteOutcome o = WriteOne("access", Grant(user, prop));
  ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(o.native_id, user + "/" + prop);
  EXPECT_EQ(mock_->faults_injected(), 2);
  EXPECT_EQ(Requests("PUT /v1/users/{id}/grants/{propertyId}"), 2);
  EXPECT_EQ(Requests("POST /v1/users/{id}/password-reset"), 2);
  EXPECT_EQ(Count("grants"), 1u);
  EXPECT_EQ(Count("password_resets"), 1u);

  // Written again, by a retry or the next run: the grant stands, the reset key replays.
  clock_.Advance(std::chrono::seconds(30));
  WriteOutcome again = WriteOne("access", Grant(user, prop));
  ASSERT_TRUE(again.status.ok()) << again.status.ToString();
  EXPECT_FALSE(again.created) << "already granted";
  EXPECT_EQ(again.native_id, user + "/" + prop);
  EXPECT_EQ(Count("password_resets"), 1u);
  EXPECT_EQ(Requests("POST /v1/users/{id}/password-reset"), 3);
  const json grant = Dump()["grants"][0];
  EXPECT_EQ(grant["user_id"], user);
  EXPECT_EQ(grant["property_id"], prop);
}

TEST_F(PortalConnectorTest, AResetLostAfterTheGrantIsSentOnTheNextAttempt) {
  const std::string user = CreateUser("crm-u-1", "emma@example.se");
  const std::string prop = CreateProperty("crm-p-1", "Brf Kvarnberget");
  auto once = Connect(kToken, /*max_attempts=*/1);
  // The grant lands; the reset never reaches the portal (as if the process died in between).
  mock_->SetFaults({*FaultRule::Parse("POST /password-reset status=503 times=1")});
  auto r = once->Write(Object("access"), {Grant(user, prop)});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].status.code(), StatusCode::kUnavailable) << (*r)[0].status.ToString();
  EXPECT_EQ(Count("grants"), 1u);
  EXPECT_EQ(Count("password_resets"), 0u);

  WriteOutcome retried = WriteOne("access", Grant(user, prop));
  ASSERT_TRUE(retried.status.ok()) << retried.status.ToString();
  EXPECT_FALSE(retried.created);
  EXPECT_EQ(Count("password_resets"), 1u) << "the PUT answered 200, and the reset still went";
}

TEST_F(PortalConnectorTest, RevokeIsIdempotentAndANewGrantGetsItsOwnReset) {
  const std::string user = CreateUser("crm-u-1", "sara@example.se");
  const std::string prop = CreateProperty("crm-p-1", "Brf Fyrtornet");
  WriteOutcome granted = WriteOne("access", Grant(user, prop));
  ASSERT_TRUE(granted.status.ok()) << granted.status.ToString();
  EXPECT_TRUE(granted.created);
  EXPECT_EQ(Count("password_resets"), 1u);

  const std::string id = user + "/" + prop;
  for (int i = 0; i < 2; ++i) {
    WriteOutcome revoked = WriteOne("access", Delete(id));
    ASSERT_TRUE(revoked.status.ok()) << revoked.status.ToString();
    EXPECT_EQ(revoked.native_id, id);
  }
  EXPECT_EQ(Requests("DELETE /v1/users/{id}/grants/{propertyId}"), 2) << "204 both times";
  EXPECT_EQ(Count("grants"), 0u);
  // By fields as well as by id; a property that does not exist cannot hold a grant either.
  EXPECT_TRUE(
      WriteOne("access", Delete("", {{"user_id", user}, {"property_id", prop}})).status.ok());
  EXPECT_TRUE(WriteOne("access", Delete(user + "/prop_404")).status.ok());

  clock_.Advance(std::chrono::seconds(5));
  WriteOutcome regranted = WriteOne("access", Grant(user, prop));
  ASSERT_TRUE(regranted.status.ok()) << regranted.status.ToString();
  EXPECT_TRUE(regranted.created);
  EXPECT_EQ(Count("grants"), 1u);
  EXPECT_EQ(Count("password_resets"), 2u) << "the new grant has a new granted_at";
  // And only one for it, however often it is written.
  EXPECT_TRUE(WriteOne("access", Grant(user, prop)).status.ok());
  EXPECT_EQ(Count("password_resets"), 2u);

  WriteOutcome bad = WriteOne("access", Upsert("", {{"user_id", user}}));
  EXPECT_EQ(bad.status.code(), StatusCode::kInvalidArgument);
  WriteOutcome missing = WriteOne("access", Grant("usr_404", prop));
  EXPECT_EQ(missing.status.code(), StatusCode::kNotFound) << missing.status.ToString();
}

TEST_F(PortalConnectorTest, AccessIsReadAsOneRecordPerGrantAcrossUserPages) {
  mock_->Seed(11, 120);  // 120 properties, 120 to 240 users: more than one page of users
  const json dump = Dump();
  ASSERT_GT(dump["users"].size(), static_cast<size_t>(portal::kMaxPage));
  ASSERT_GT(dump["grants"].size(), dump["users"].size()) << "some users hold two grants";
  std::set<std::string> want;
  for (const json& g : dump["grants"])
    want.insert(g["user_id"].get<std::string>() + "/" + g["property_id"].get<std::string>());

  for (int page_size : {0, 7}) {
    std::vector<NativeRecord> grants = ReadAll("access", page_size);
    std::map<std::string, int> seen;
    for (const NativeRecord& g : grants) ++seen[g.id];
    EXPECT_EQ(grants.size(), want.size()) << "page size " << page_size;
    for (const std::string& id : want) EXPECT_EQ(seen[id], 1) << id;
    ASSERT_FALSE(grants.empty());
    EXPECT_EQ(grants[0].fields["user_id"], "usr_1");
    EXPECT_EQ(grants[0].fields["property_id"], "prop_1");
    EXPECT_TRUE(grants[0].fields["granted_at"].is_string());
    EXPECT_EQ(grants[0].modified_ms, clock_.NowMillis());
  }

  // A cursor the connector cannot read starts the scan over instead of failing every run.
  auto restart = portal_->ReadChanges(Object("access"), "not a cursor", ReadContext{});
  ASSERT_TRUE(restart.ok()) << restart.status().ToString();
  EXPECT_FALSE(restart->records.empty());
  EXPECT_EQ(restart->records[0].id, "usr_1/prop_1");
}

TEST_F(PortalConnectorTest, ABadTokenFailsTheWholeWriteWithoutShowingTheToken) {
  const std::string secret = "portal-wrong-secret-5f3a9c";
  auto wrong = Connect(secret);
  auto r = wrong->Write(Object("users"), {Upsert("crm-u-1", {{"email", "a@example.se"}}),
                                          Upsert("crm-u-2", {{"email", "b@example.se"}})});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(r.status().http_status(), 401);
  EXPECT_EQ(r.status().system(), "portal");
  EXPECT_EQ(r.status().ToString().find(secret), std::string::npos) << r.status().ToString();
  EXPECT_EQ(Requests("POST /v1/users"), 1) << "the second op is not tried";

  auto read = wrong->ReadChanges(Object("access"), "", ReadContext{});
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(read.status().ToString().find(secret), std::string::npos);
  EXPECT_EQ(Count("users"), 0u);
}

TEST_F(PortalConnectorTest, RecordErrorsStayWithTheirOpAndTheRestSucceed) {
  const std::string anna = CreateUser("crm-u-1", "anna@example.se");
  auto r = portal_->Write(
      Object("users"),
      {Update("usr_404", {{"first_name", "Ingen"}}),
       Upsert("crm-bad-7", {{"email", "not-an-email"}}), Update(anna, {{"last_name", "Holm"}}),
       Delete(anna), Upsert("crm-u-2", {{"email", "erik@example.se"}, {"shoe_size", 44}}),
       Upsert("crm-u-3", {{"email", "lars@example.se"}, {"main_property_id", ""}})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::vector<WriteOutcome>& o = *r;
  ASSERT_EQ(o.size(), 6u);

  EXPECT_EQ(o[0].status.code(), StatusCode::kNotFound) << o[0].status.ToString();
  EXPECT_NE(o[0].status.message().find("usr_404"), std::string::npos) << o[0].status.ToString();

  EXPECT_EQ(o[1].status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(o[1].status.http_status(), 400);
  EXPECT_NE(o[1].status.message().find("crm-bad-7"), std::string::npos)
      << "the 400 names the record: " << o[1].status.ToString();
  EXPECT_NE(o[1].status.message().find("bad_request"), std::string::npos);

  ASSERT_TRUE(o[2].status.ok()) << o[2].status.ToString();
  EXPECT_EQ(o[2].native_id, anna);
  EXPECT_FALSE(o[2].created);

  EXPECT_EQ(o[3].status.code(), StatusCode::kInvalidArgument) << "dead-letters this write only";
  EXPECT_NE(o[3].status.message().find("revoke"), std::string::npos) << o[3].status.ToString();

  EXPECT_EQ(o[4].status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(o[4].status.message().find("shoe_size"), std::string::npos);

  ASSERT_TRUE(o[5].status.ok()) << o[5].status.ToString();
  EXPECT_TRUE(o[5].created);

  const json users = Dump()["users"];
  ASSERT_EQ(users.size(), 2u) << "anna and lars";
  EXPECT_EQ(users[0]["last_name"], "Holm");
  EXPECT_TRUE(users[1]["main_property_id"].is_null());

  // Objects the portal does not have fail the whole call: a configuration error.
  auto unknown = portal_->Write(Object("tickets"), {Upsert("k", json::object())});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(portal_->ReadChanges(Object("tickets"), "", ReadContext{}).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(PortalConnectorTest, TheRateLimitIsWaitedOutByTheTransportOrReportedWithItsDelay) {
  StartMock(/*limits=*/true, /*per_minute_max=*/3);
  for (int i = 0; i < 3; ++i)
    CreateProperty("crm-p-" + std::to_string(i), "Brf " + std::to_string(i));

  // No retries left: the 429 comes back as kResourceExhausted with the portal's delay.
  auto once = Connect(kToken, /*max_attempts=*/1);
  auto refused = once->ReadChanges(Object("properties"), "", ReadContext{});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.status().http_status(), 429);
  ASSERT_TRUE(refused.status().retry_after().has_value());
  EXPECT_EQ(*refused.status().retry_after(), std::chrono::seconds(60));
  EXPECT_NE(refused.status().message().find("rate_limited"), std::string::npos);

  // With retries, the transport waits it out (on the shared fake clock) and the read succeeds.
  const int64_t slept = clock_.slept_ms();
  auto page = portal_->ReadChanges(Object("properties"), "", ReadContext{});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->records.size(), 3u);
  EXPECT_GE(clock_.slept_ms() - slept, 60000);
}

TEST_F(PortalConnectorTest, AGrantWhoseAnswerBrokeOffIsThatOpsTroubleNotAnUnreachablePortal) {
  const std::string user = CreateUser("crm-u-1", "emma@example.se");
  const std::string prop = CreateProperty("crm-p-1", "Brf Kvarnberget");
  auto once = Connect(kToken, /*max_attempts=*/1);
  mock_->SetFaults({*FaultRule::Parse("PUT /grants drop applied times=1")});
  auto r = once->Write(Object("access"), {Grant(user, prop)});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Status& s = (*r)[0].status;
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_EQ(s.http_status(), 201) << "the portal answered: " << s.ToString();
  EXPECT_EQ(Count("grants"), 1u) << "the grant landed";

  WriteOutcome retried = WriteOne("access", Grant(user, prop));
  ASSERT_TRUE(retried.status.ok()) << retried.status.ToString();
  EXPECT_EQ(Count("grants"), 1u);
  EXPECT_EQ(Count("password_resets"), 1u);
}

// Answers the portal's contract does not allow, from a scripted transport.
TEST(PortalConnectorAnswerTest, AnAnswerThatMakesNoSenseFailsItsOpWithTheAnswersStatus) {
  auto fake = std::make_shared<FakeTransport>();
  fake->Respond(201, "<html>Created</html>", {{"Content-Type", "text/html"}});
  fake->Respond(201, R"({"name":"Brf Kvarnberget"})", {{"Content-Type", "application/json"}});
  SystemConfig c;
  c.name = c.kind = "portal";
  c.base_url = "http://portal.test";
  c.auth = {{"token", "t"}};
  FakeClock clock;
  PortalConnector portal(c, fake, &clock);
  auto r = portal.Write(Object("properties"), {Upsert("crm-p-1", {{"name", "Brf Kvarnberget"}}),
                                               Upsert("crm-p-2", {{"name", "Brf Kvarnberget"}})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const WriteOutcome& o : *r) {
    EXPECT_EQ(o.status.code(), StatusCode::kUnavailable) << o.status.ToString();
    EXPECT_EQ(o.status.http_status(), 201) << "an answer came: " << o.status.ToString();
  }
  EXPECT_NE((*r)[0].status.message().find("not a JSON object"), std::string::npos);
  EXPECT_NE((*r)[1].status.message().find("crm-p-2"), std::string::npos) << "names the record";
}

TEST(PortalConnectorConfigTest, NeedsAnHttpBaseUrlAndAToken) {
  SystemConfig c;
  c.base_url = "https://portal.example.com";
  c.auth = {{"token", "t0ken"}};
  EXPECT_TRUE(PortalConnector::ValidateConfig(c).ok());
  c.base_url = "portal.example.com";
  EXPECT_EQ(PortalConnector::ValidateConfig(c).code(), StatusCode::kFailedPrecondition);
  c.base_url = "http://portal.test";
  c.auth.clear();
  Status s = PortalConnector::ValidateConfig(c);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("auth.token"), std::string::npos);

  FakeClock clock;
  c.name = "kundportal";
  PortalConnector named(c, nullptr, &clock);
  EXPECT_EQ(named.Name(), "kundportal");
  EXPECT_EQ(named.capabilities().max_batch, 1);
  EXPECT_EQ(named.capabilities().max_page, 100);
  c.name.clear();
  EXPECT_EQ(PortalConnector(c, nullptr, &clock).Name(), "portal");
}

Response PortalAnswer(int status, const std::string& code, const std::string& message,
                      Headers headers = {}) {
  Response r;
  r.status = status;
  r.body = json{{"error", {{"code", code}, {"message", message}}}}.dump();
  r.headers = std::move(headers);
  return r;
}

TEST(PortalErrorsTest, TheBodyCodeDecidesTheStatusCode) {
  using portal::StatusFromPortal;
  EXPECT_TRUE(StatusFromPortal(PortalAnswer(201, "", ""), "x").ok());
  const std::pair<std::string, StatusCode> table[] = {
      {"bad_request", StatusCode::kInvalidArgument},
      {"unauthorized", StatusCode::kUnauthenticated},
      {"not_found", StatusCode::kNotFound},
      {"conflict", StatusCode::kAlreadyExists},
      {"idempotency_mismatch", StatusCode::kFailedPrecondition},
      {"rate_limited", StatusCode::kResourceExhausted},
      {"internal", StatusCode::kUnavailable}};
  const std::map<std::string, int> http = {
      {"bad_request", 400},          {"unauthorized", 401}, {"not_found", 404}, {"conflict", 409},
      {"idempotency_mismatch", 422}, {"rate_limited", 429}, {"internal", 500}};
  for (const auto& [code, want] : table) {
    Status s = StatusFromPortal(PortalAnswer(http.at(code), code, "why"), "creating user k1");
    EXPECT_EQ(s.code(), want) << code;
    EXPECT_EQ(s.message(), "creating user k1: " + code + ": why");
    EXPECT_EQ(s.http_status(), http.at(code));
    EXPECT_EQ(s.system(), "portal");
  }
  Status limited = StatusFromPortal(
      PortalAnswer(429, "rate_limited", "slow down", {{"Retry-After", "17"}}), "x");
  ASSERT_TRUE(limited.retry_after().has_value());
  EXPECT_EQ(*limited.retry_after(), std::chrono::seconds(17));

  // A 5xx is transient whatever the body says; a body that is not the portal's falls back to the
  // HTTP status and is quoted.
  EXPECT_EQ(StatusFromPortal(PortalAnswer(503, "bad_request", "?"), "x").code(),
            StatusCode::kUnavailable);
  Response proxy;
  proxy.status = 502;
  proxy.body = "<html>Bad Gateway</html>";
  Status gateway = StatusFromPortal(proxy, "listing users");
  EXPECT_EQ(gateway.code(), StatusCode::kUnavailable);
  EXPECT_NE(gateway.message().find("Bad Gateway"), std::string::npos);
  EXPECT_EQ(StatusFromPortal(PortalAnswer(403, "forbidden", "no"), "x").code(),
            StatusCode::kPermissionDenied);
  // Credentials echoed by a body never reach the message.
  Status echoed = StatusFromPortal(
      PortalAnswer(401, "unauthorized", "token Bearer abcdef0123456789 refused"), "x");
  EXPECT_EQ(echoed.message().find("abcdef0123456789"), std::string::npos) << echoed.message();
}

TEST(PortalCodecTest, CreateKeysFollowTheKeyAndTheBody) {
  const json body = {{"email", "a@example.se"}, {"first_name", "A"}};
  const std::string k = portal::CreateIdempotencyKey("crm-1", body);
  EXPECT_EQ(k.rfind("crmb-crm-1-", 0), 0u) << k;
  EXPECT_EQ(k, portal::CreateIdempotencyKey("crm-1", json::parse(R"({"first_name":"A",
                                                                  "email":"a@example.se"})")));
  EXPECT_NE(k, portal::CreateIdempotencyKey("crm-1", {{"email", "a@example.se"}}));
  EXPECT_NE(k, portal::CreateIdempotencyKey("crm-2", body));
  const std::string long_key = portal::CreateIdempotencyKey(std::string(400, 'k'), body);
  EXPECT_LE(long_key.size(), portal::kMaxIdempotencyKey);
  EXPECT_NE(long_key, portal::CreateIdempotencyKey(std::string(401, 'k'), body));
  EXPECT_EQ(portal::CreateIdempotencyKey("räksmörgås nyckel", body).find(' '), std::string::npos);

  const portal::GrantRef g{"usr_1", "prop_2"};
  EXPECT_EQ(portal::ResetIdempotencyKey(g, "2026-01-01T00:00:00.000Z"),
            "reset-usr_1-prop_2-2026-01-01T00:00:00.000Z");
  EXPECT_LE(portal::ResetIdempotencyKey({std::string(300, 'u'), "p"}, "t").size(),
            portal::kMaxIdempotencyKey);

  portal::AccessCursor c{"c_100", 3, "usr_104", "c_7"};
  auto back = portal::DecodeAccessCursor(portal::EncodeAccessCursor(c));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->users, "c_100");
  EXPECT_EQ(back->index, 3);
  EXPECT_EQ(back->user, "usr_104");
  EXPECT_EQ(back->grants, "c_7");
  EXPECT_EQ(portal::DecodeAccessCursor("{}").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PercentEncode("Anna+x@example.se/å"), "Anna%2Bx%40example.se%2F%C3%A5");
}

// A 409 whose match comes back without an id (a proxy's or a broken answer) is no write done:
// crmbridge can neither update that record nor name it as the one written.
TEST(PortalConnectorConflictTest, AMatchWithoutAnIdIsNoWriteDone) {
  for (const std::string object : {"users", "properties"}) {
    auto transport = std::make_shared<FakeTransport>();
    transport->Respond(409, R"({"error":{"code":"conflict","message":"taken"}})");
    transport->Respond(200, R"({"data":[{"user_id":"u2","email":"ann@example.se"}]})");
    SystemConfig config;
    config.name = config.kind = "portal";
    config.base_url = "http://portal.test";
    config.auth = {{"token", "portal-token-0001"}};
    FakeClock clock;
    PortalConnector connector(config, transport, &clock);
    ObjectRef ref;
    ref.object = object;
    WriteOp op;
    op.kind = WriteOp::Kind::kUpsert;
    op.key = "crm-1";
    op.fields = object == "users" ? nlohmann::json{{"email", "ann@example.se"}}
                                  : nlohmann::json{{"name", "Villa Ek"}, {"external_id", "P-1"}};
    auto outcomes = connector.Write(ref, {op});
    ASSERT_TRUE(outcomes.ok()) << outcomes.status().ToString();
    ASSERT_EQ(outcomes->size(), 1u);
    EXPECT_FALSE((*outcomes)[0].status.ok()) << object;
    EXPECT_NE((*outcomes)[0].status.message().find("the record found has no id"), std::string::npos)
        << (*outcomes)[0].status.ToString();
    EXPECT_EQ(transport->request_count(), 2u) << "nothing is patched";
  }
}

}  // namespace
}  // namespace crmbridge
