// The portal mock is the ground truth of the portal connector tests: its shapes, paging,
// uniqueness, idempotency, auth, limits and error bodies must be mocks/portal/openapi.yaml's.
#include "mocks/portal/portal_mock.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <set>

namespace crmbridge::mocks {
namespace {

using nlohmann::json;

constexpr char kToken[] = "portal-t";

struct Answer {
  int status = 0;
  json body;
  httplib::Headers headers;
};

class PortalMockTest : public ::testing::Test {
 protected:
  void StartMock(bool limits = false, int per_minute_max = 600) {
    PortalMock::Options o;
    o.tokens = {kToken, "portal-other"};
    o.enforce_limits = limits;
    o.per_minute_max = per_minute_max;
    o.clock = &clock_;
    mock_ = std::make_unique<PortalMock>(o);
    ASSERT_TRUE(mock_->Start().ok());
    client_ = std::make_unique<httplib::Client>(mock_->base_url());
  }
  void TearDown() override {
    if (mock_) mock_->Stop();
  }

  // `body` null sends no body; `token` empty sends no Authorization header.
  Answer Call(const std::string& method, const std::string& path, const json& body = json(),
              const std::string& idempotency_key = "", const std::string& token = kToken) {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    if (!idempotency_key.empty()) h.emplace("Idempotency-Key", idempotency_key);
    const std::string text = body.is_null() ? "" : body.dump();
    return Raw(method, path, text, h);
  }
  Answer Raw(const std::string& method, const std::string& path, const std::string& text,
             httplib::Headers h) {
    httplib::Result r = method == "GET"      ? client_->Get(path.c_str(), h)
                        : method == "DELETE" ? client_->Delete(path.c_str(), h)
                        : method == "PUT" ? client_->Put(path.c_str(), h, text, "application/json")
                        : method == "PATCH"
                            ? client_->Patch(path.c_str(), h, text, "application/json")
                            : client_->Post(path.c_str(), h, text, "application/json");
    if (!r) return {};
    return {r->status, r->body.empty() ? json() : json::parse(r->body, nullptr, false), r->headers};
  }
  std::string CreateProperty(const std::string& name, const std::string& external_id = "") {
    json body = {{"name", name}};
    if (!external_id.empty()) body["external_id"] = external_id;
    Answer a = Call("POST", "/v1/properties", body);
    EXPECT_EQ(a.status, 201) << a.body;
    return a.body.value("id", "");
  }
  std::string CreateUser(const std::string& email) {
    Answer a = Call("POST", "/v1/users", {{"email", email}});
    EXPECT_EQ(a.status, 201) << a.body;
    return a.body.value("id", "");
  }
  static void ExpectError(const Answer& a, int status, const std::string& code) {
    EXPECT_EQ(a.status, status) << a.body;
    ASSERT_TRUE(a.body.is_object()) << a.body;
    ASSERT_TRUE(a.body.contains("error")) << a.body;
    EXPECT_EQ(a.body["error"].value("code", ""), code) << a.body;
    EXPECT_TRUE(a.body["error"]["message"].is_string()) << a.body;
    EXPECT_FALSE(a.body["error"].value("message", "").empty()) << a.body;
  }
  size_t ResetsOf(const std::string& user_id) const {
    const json dump = mock_->Dump();  // kept alive: the loop reads into it
    size_t n = 0;
    for (const json& r : dump["password_resets"]) n += r["user_id"] == user_id;
    return n;
  }

  FakeClock clock_;
  std::unique_ptr<PortalMock> mock_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(PortalMockTest, CreateGetAndListPagesWithoutDuplicates) {
  StartMock();
  Answer created =
      Call("POST", "/v1/properties", {{"name", "Brf Ekbacken"}, {"external_id", "crm-1"}});
  ASSERT_EQ(created.status, 201);
  EXPECT_EQ(created.body["id"], "prop_1");
  EXPECT_EQ(created.body["name"], "Brf Ekbacken");
  EXPECT_EQ(created.body["external_id"], "crm-1");
  EXPECT_EQ(created.body["created_at"], "2026-01-01T00:00:00.000Z");
  Answer got = Call("GET", "/v1/properties/prop_1");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body, created.body);
  ExpectError(Call("GET", "/v1/properties/prop_99"), 404, "not_found");
  ExpectError(Call("GET", "/v1/users/usr_1"), 404, "not_found");

  clock_.Advance(std::chrono::milliseconds(1234));
  Answer user = Call("POST", "/v1/users",
                     {{"email", "Anna@Example.se"},
                      {"first_name", "Anna"},
                      {"portal_access", true},
                      {"main_property_id", "prop_1"}});
  ASSERT_EQ(user.status, 201) << user.body;
  EXPECT_EQ(user.body["id"], "usr_1");
  EXPECT_EQ(user.body["email"], "Anna@Example.se");
  EXPECT_EQ(user.body["portal_access"], true);
  EXPECT_EQ(user.body["main_property_id"], "prop_1");
  EXPECT_EQ(user.body["created_at"], "2026-01-01T00:00:01.234Z");
  EXPECT_EQ(user.body["updated_at"], user.body["created_at"]);
  EXPECT_EQ(Call("GET", "/v1/users/usr_1").body, user.body);

  clock_.Advance(std::chrono::milliseconds(1000));
  Answer patched =
      Call("PATCH", "/v1/users/usr_1", {{"last_name", "Berg"}, {"main_property_id", nullptr}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.body["last_name"], "Berg");
  EXPECT_TRUE(patched.body["main_property_id"].is_null());
  EXPECT_EQ(patched.body["updated_at"], "2026-01-01T00:00:02.234Z");
  EXPECT_EQ(patched.body["created_at"], user.body["created_at"]);

  // 2..31 more properties; a record created between pages must not shift the pages.
  for (int i = 2; i <= 31; ++i) CreateProperty("Brf " + std::to_string(i));
  std::set<std::string> seen;
  std::vector<std::string> order;
  std::string cursor;
  int pages = 0;
  while (true) {
    Answer page =
        Call("GET", "/v1/properties?limit=7" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(page.status, 200) << page.body;
    ++pages;
    for (const json& p : page.body["data"]) {
      EXPECT_TRUE(seen.insert(p["id"].get<std::string>()).second) << p;
      order.push_back(p["id"]);
    }
    if (pages == 2) CreateProperty("Brf late");
    if (page.body["next_cursor"].is_null()) break;
    cursor = page.body["next_cursor"];
    ASSERT_LT(pages, 20);
  }
  EXPECT_EQ(seen.size(), 32u);
  EXPECT_EQ(pages, 5);
  EXPECT_EQ(order.front(), "prop_1");
  EXPECT_EQ(order.back(), "prop_32");
  EXPECT_EQ(order[9], "prop_10");  // by id counter, not by string

  // Default limit 25; an exactly full last page has no next_cursor.
  Answer first = Call("GET", "/v1/properties");
  EXPECT_EQ(first.body["data"].size(), 25u);
  Answer rest = Call("GET", "/v1/properties?limit=100");
  EXPECT_EQ(rest.body["data"].size(), 32u);
  EXPECT_TRUE(rest.body["next_cursor"].is_null());
  Answer exact = Call("GET", "/v1/properties?limit=32");
  EXPECT_TRUE(exact.body["next_cursor"].is_null());

  Answer users = Call("GET", "/v1/users");
  ASSERT_EQ(users.status, 200);
  ASSERT_EQ(users.body["data"].size(), 1u);
  EXPECT_EQ(users.body["data"][0], patched.body);
}

TEST_F(PortalMockTest, EmailIsUniqueCaseInsensitively) {
  StartMock();
  const std::string anna = CreateUser("anna.berg@example.se");
  const std::string erik = CreateUser("erik@example.se");
  ExpectError(Call("POST", "/v1/users", {{"email", "Anna.Berg@EXAMPLE.se"}}), 409, "conflict");
  ExpectError(Call("PATCH", "/v1/users/" + erik, {{"email", "ANNA.BERG@example.se"}}), 409,
              "conflict");
  // A user may change the case of their own address.
  EXPECT_EQ(Call("PATCH", "/v1/users/" + anna, {{"email", "Anna.Berg@example.se"}}).status, 200);

  Answer found = Call("GET", "/v1/users?email=ANNA.BERG%40EXAMPLE.SE");
  ASSERT_EQ(found.status, 200);
  ASSERT_EQ(found.body["data"].size(), 1u);
  EXPECT_EQ(found.body["data"][0]["id"], anna);
  EXPECT_EQ(found.body["data"][0]["email"], "Anna.Berg@example.se");
  // Exact match, not a substring.
  EXPECT_EQ(Call("GET", "/v1/users?email=berg%40example.se").body["data"].size(), 0u);

  CreateProperty("Brf Tallåsen", "ext-1");
  ExpectError(Call("POST", "/v1/properties", {{"name", "Other"}, {"external_id", "ext-1"}}), 409,
              "conflict");
  EXPECT_EQ(mock_->Dump()["users"].size(), 2u);
  EXPECT_EQ(mock_->Dump()["properties"].size(), 1u);
}

TEST_F(PortalMockTest, PropertiesArePatchedAndFoundByExternalId) {
  StartMock();
  const std::string a = CreateProperty("Brf Granlunden", "crm-a");
  const std::string b = CreateProperty("Brf Fyrtornet", "crm-b");
  CreateProperty("Brf utan nyckel");

  Answer found = Call("GET", "/v1/properties?external_id=crm-b");
  ASSERT_EQ(found.status, 200) << found.body;
  ASSERT_EQ(found.body["data"].size(), 1u);
  EXPECT_EQ(found.body["data"][0]["id"], b);
  EXPECT_TRUE(found.body["next_cursor"].is_null());
  // Exact match only.
  EXPECT_EQ(Call("GET", "/v1/properties?external_id=crm").body["data"].size(), 0u);
  EXPECT_EQ(Call("GET", "/v1/properties?external_id=CRM-B").body["data"].size(), 0u);

  clock_.Advance(std::chrono::seconds(7));
  Answer renamed = Call("PATCH", "/v1/properties/" + a, {{"name", "Brf Granlunden i Lund"}});
  ASSERT_EQ(renamed.status, 200) << renamed.body;
  EXPECT_EQ(renamed.body["name"], "Brf Granlunden i Lund");
  EXPECT_EQ(renamed.body["external_id"], "crm-a");
  EXPECT_EQ(renamed.body["created_at"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(Call("GET", "/v1/properties/" + a).body, renamed.body);

  Answer rekeyed =
      Call("PATCH", "/v1/properties/" + a, {{"external_id", "crm-a2"}, {"ignored", true}});
  ASSERT_EQ(rekeyed.status, 200) << rekeyed.body;
  EXPECT_EQ(rekeyed.body["external_id"], "crm-a2");
  EXPECT_EQ(Call("GET", "/v1/properties?external_id=crm-a2").body["data"][0]["id"], a);
  // Its own external_id again is no conflict; another property's is.
  EXPECT_EQ(Call("PATCH", "/v1/properties/" + a, {{"external_id", "crm-a2"}}).status, 200);
  ExpectError(Call("PATCH", "/v1/properties/" + a, {{"name", "X"}, {"external_id", "crm-b"}}), 409,
              "conflict");
  EXPECT_EQ(Call("GET", "/v1/properties/" + a).body["name"], "Brf Granlunden i Lund")
      << "a refused PATCH changes nothing";

  ExpectError(Call("PATCH", "/v1/properties/" + a, json::object()), 400, "bad_request");
  ExpectError(Call("PATCH", "/v1/properties/" + a, {{"unknown", 1}}), 400, "bad_request");
  ExpectError(Call("PATCH", "/v1/properties/" + a, {{"name", ""}}), 400, "bad_request");
  ExpectError(Call("PATCH", "/v1/properties/" + a, {{"name", 5}}), 400, "bad_request");
  ExpectError(Call("PATCH", "/v1/properties/" + a, {{"external_id", nullptr}}), 400, "bad_request");
  ExpectError(Call("PATCH", "/v1/properties/prop_99", {{"name", "X"}}), 404, "not_found");
  ExpectError(Call("PATCH", "/v1/properties/" + a, {{"name", "X"}}, "", ""), 401, "unauthorized");
  EXPECT_EQ(mock_->Dump()["properties"].size(), 3u);
  EXPECT_EQ(mock_->Stats()["PATCH /v1/properties/{id}"], 11);
}

TEST_F(PortalMockTest, IdempotencyKeyReplaysAndRejectsADifferentBody) {
  StartMock();
  const json body = {{"name", "Brf Solgläntan"}, {"external_id", "crm-7"}};
  Answer first = Call("POST", "/v1/properties", body, "key-1");
  ASSERT_EQ(first.status, 201);
  clock_.Advance(std::chrono::seconds(5));
  // Same body with its keys in another order is the same body.
  Answer replay = Call("POST", "/v1/properties",
                       json::parse(R"({"external_id":"crm-7","name":"Brf Solgläntan"})"), "key-1");
  EXPECT_EQ(replay.status, 200);
  EXPECT_EQ(replay.body, first.body);
  EXPECT_EQ(mock_->Dump()["properties"].size(), 1u);
  ExpectError(Call("POST", "/v1/properties", {{"name", "Brf Annat"}}, "key-1"), 422,
              "idempotency_mismatch");
  // Another token has its own keys (and here meets the external_id).
  ExpectError(Call("POST", "/v1/properties", body, "key-1", "portal-other"), 409, "conflict");

  // Users, with the same key: a different route is a different scope.
  Answer user = Call("POST", "/v1/users", {{"email", "maja@example.se"}}, "key-1");
  ASSERT_EQ(user.status, 201);
  Answer user_replay = Call("POST", "/v1/users", {{"email", "maja@example.se"}}, "key-1");
  EXPECT_EQ(user_replay.status, 200);
  EXPECT_EQ(user_replay.body["id"], user.body["id"]);
  ExpectError(
      Call("POST", "/v1/users", {{"email", "maja@example.se"}, {"first_name", "Maja"}}, "key-1"),
      422, "idempotency_mismatch");
  EXPECT_EQ(mock_->Dump()["users"].size(), 1u);

  // A refused request is not remembered: the same key may carry the corrected body.
  ExpectError(Call("POST", "/v1/users", {{"email", "no-at-sign"}}, "key-2"), 400, "bad_request");
  EXPECT_EQ(Call("POST", "/v1/users", {{"email", "oskar@example.se"}}, "key-2").status, 201);
  ExpectError(Call("POST", "/v1/users", {{"email", "x@example.se"}}, std::string(256, 'k')), 400,
              "bad_request");
}

TEST_F(PortalMockTest, GrantPutIsCreatedThenOkAndDeleteIsAlways204) {
  StartMock();
  const std::string prop = CreateProperty("Brf Lindängen");
  const std::string user = CreateUser("karl@example.se");
  const std::string path = "/v1/users/" + user + "/grants/" + prop;
  Answer granted = Call("PUT", path);
  ASSERT_EQ(granted.status, 201) << granted.body;
  EXPECT_EQ(
      granted.body,
      (json{{"user_id", user}, {"property_id", prop}, {"granted_at", "2026-01-01T00:00:00.000Z"}}));
  clock_.Advance(std::chrono::seconds(3));
  Answer again = Call("PUT", path);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, granted.body);  // unchanged: the first granted_at

  Answer list = Call("GET", "/v1/users/" + user + "/grants");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["data"].size(), 1u);
  EXPECT_EQ(list.body["data"][0], granted.body);
  EXPECT_TRUE(list.body["next_cursor"].is_null());

  EXPECT_EQ(Call("DELETE", path).status, 204);
  EXPECT_EQ(Call("DELETE", path).status, 204);
  EXPECT_EQ(Call("GET", "/v1/users/" + user + "/grants").body["data"].size(), 0u);
  EXPECT_EQ(mock_->Dump()["grants"].size(), 0u);

  ExpectError(Call("PUT", "/v1/users/usr_404/grants/" + prop), 404, "not_found");
  ExpectError(Call("PUT", "/v1/users/" + user + "/grants/prop_404"), 404, "not_found");
  ExpectError(Call("DELETE", "/v1/users/usr_404/grants/" + prop), 404, "not_found");
  ExpectError(Call("DELETE", "/v1/users/" + user + "/grants/prop_404"), 404, "not_found");
  ExpectError(Call("GET", "/v1/users/usr_404/grants"), 404, "not_found");
}

TEST_F(PortalMockTest, PasswordResetCountsOncePerIdempotencyKey) {
  StartMock();
  const std::string anna = CreateUser("anna@example.se");
  const std::string erik = CreateUser("erik@example.se");
  const std::string path = "/v1/users/" + anna + "/password-reset";
  Answer first = Call("POST", path, json(), "reset-1");
  ASSERT_EQ(first.status, 202) << first.body;
  EXPECT_EQ(first.body["id"], "pwr_1");
  EXPECT_EQ(first.body["user_id"], anna);
  EXPECT_EQ(first.body["requested_at"], "2026-01-01T00:00:00.000Z");
  Answer replay = Call("POST", path, json::object(), "reset-1");  // {} is the empty body
  EXPECT_EQ(replay.status, 202);
  EXPECT_EQ(replay.body, first.body);
  EXPECT_EQ(ResetsOf(anna), 1u);

  EXPECT_EQ(Call("POST", path, json(), "reset-2").status, 202);
  EXPECT_EQ(ResetsOf(anna), 2u);
  EXPECT_EQ(Call("POST", path).status, 202);  // no key: every call counts
  EXPECT_EQ(ResetsOf(anna), 3u);
  ExpectError(Call("POST", path, {{"reason", "other"}}, "reset-1"), 422, "idempotency_mismatch");

  // The key is scoped to the user's path.
  EXPECT_EQ(Call("POST", "/v1/users/" + erik + "/password-reset", json(), "reset-1").status, 202);
  EXPECT_EQ(ResetsOf(erik), 1u);
  EXPECT_EQ(ResetsOf(anna), 3u);
  ExpectError(Call("POST", "/v1/users/usr_404/password-reset", json(), "reset-9"), 404,
              "not_found");
  EXPECT_EQ(mock_->Stats()["POST /v1/users/{id}/password-reset"], 7);
}

TEST_F(PortalMockTest, MissingOrUnknownTokenIs401) {
  StartMock();
  ExpectError(Call("GET", "/v1/properties", json(), "", ""), 401, "unauthorized");
  ExpectError(Call("GET", "/v1/properties", json(), "", "nope"), 401, "unauthorized");
  ExpectError(Raw("GET", "/v1/users", "", {{"Authorization", "Basic dXNlcjpwdw=="}}), 401,
              "unauthorized");
  ExpectError(Call("POST", "/v1/users", {{"email", "a@example.se"}}, "", ""), 401, "unauthorized");
  EXPECT_EQ(mock_->Dump()["users"].size(), 0u);
  EXPECT_EQ(Call("GET", "/v1/properties").status, 200);
}

TEST_F(PortalMockTest, BadRequestsHaveTheErrorShape) {
  StartMock();
  CreateProperty("Brf Rosendal");
  const std::string user = CreateUser("sara@example.se");
  httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kToken}};
  ExpectError(Raw("POST", "/v1/properties", "{\"name\":", auth), 400, "bad_request");
  ExpectError(Raw("POST", "/v1/properties", "", auth), 400, "bad_request");
  ExpectError(Call("POST", "/v1/properties", json::array()), 400, "bad_request");
  ExpectError(Call("POST", "/v1/properties", {{"external_id", "x"}}), 400, "bad_request");
  ExpectError(Call("POST", "/v1/properties", {{"name", ""}}), 400, "bad_request");
  ExpectError(Call("POST", "/v1/properties", {{"name", 7}}), 400, "bad_request");
  ExpectError(Call("POST", "/v1/properties", {{"name", "X"}, {"external_id", 7}}), 400,
              "bad_request");
  ExpectError(Call("POST", "/v1/users", {{"first_name", "Sara"}}), 400, "bad_request");
  ExpectError(Call("POST", "/v1/users", {{"email", "sara.example.se"}}), 400, "bad_request");
  ExpectError(Call("POST", "/v1/users", {{"email", 12}}), 400, "bad_request");
  ExpectError(Call("POST", "/v1/users", {{"email", "b@example.se"}, {"portal_access", "yes"}}), 400,
              "bad_request");
  ExpectError(
      Call("POST", "/v1/users", {{"email", "b@example.se"}, {"main_property_id", "prop_9"}}), 400,
      "bad_request");
  ExpectError(Call("PATCH", "/v1/users/" + user, json::object()), 400, "bad_request");
  ExpectError(Call("PATCH", "/v1/users/" + user, {{"unknown", 1}}), 400, "bad_request");
  ExpectError(Call("PATCH", "/v1/users/" + user, {{"email", nullptr}}), 400, "bad_request");
  ExpectError(Call("PATCH", "/v1/users/" + user, {{"main_property_id", "prop_9"}}), 400,
              "bad_request");
  ExpectError(Call("GET", "/v1/properties?limit=0"), 400, "bad_request");
  ExpectError(Call("GET", "/v1/properties?limit=101"), 400, "bad_request");
  ExpectError(Call("GET", "/v1/properties?limit=ten"), 400, "bad_request");
  ExpectError(Call("GET", "/v1/users?cursor=garbage"), 400, "bad_request");
  ExpectError(Call("GET", "/v1/users/" + user + "/grants?cursor=c_x"), 400, "bad_request");
  ExpectError(Call("GET", "/v1/nowhere"), 404, "not_found");
  EXPECT_EQ(mock_->Dump()["properties"].size(), 1u);
  EXPECT_EQ(mock_->Dump()["users"].size(), 1u);
}

TEST_F(PortalMockTest, RateLimitAnswers429WithRetryAfterAndFreesAfterTheWindow) {
  StartMock(/*limits=*/true, /*per_minute_max=*/5);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Call("GET", "/v1/properties").status, 200);
  clock_.Advance(std::chrono::milliseconds(20500));
  for (int i = 0; i < 2; ++i) ASSERT_EQ(Call("GET", "/v1/properties").status, 200);
  Answer over = Call("GET", "/v1/properties");
  ExpectError(over, 429, "rate_limited");
  // The first three leave the window 60 s after they came: 39.5 s from now, rounded up.
  ASSERT_TRUE(over.headers.count("Retry-After"));
  EXPECT_EQ(over.headers.find("Retry-After")->second, "40");
  // Another token has its own window.
  EXPECT_EQ(Call("GET", "/v1/properties", json(), "", "portal-other").status, 200);

  clock_.Advance(std::chrono::milliseconds(39000));
  Answer still = Call("GET", "/v1/properties");
  ExpectError(still, 429, "rate_limited");
  EXPECT_EQ(still.headers.find("Retry-After")->second, "1");
  clock_.Advance(std::chrono::milliseconds(500));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Call("GET", "/v1/properties").status, 200);
  ExpectError(Call("GET", "/v1/properties"), 429, "rate_limited");
}

TEST_F(PortalMockTest, InjectedFaultsUseThePortalErrorBody) {
  StartMock();
  mock_->SetFaults({*FaultRule::Parse("POST /v1/users status=503 times=1 retry_after=2")});
  Answer fault = Call("POST", "/v1/users", {{"email", "emma@example.se"}});
  ExpectError(fault, 503, "internal");
  EXPECT_EQ(fault.headers.find("Retry-After")->second, "2");
  EXPECT_EQ(mock_->Dump()["users"].size(), 0u);

  // Applied, then failed: the retry with the same key is answered from the first write.
  mock_->SetFaults({*FaultRule::Parse("POST /v1/users status=429 times=1 applied")});
  ExpectError(Call("POST", "/v1/users", {{"email", "emma@example.se"}}, "k"), 429, "rate_limited");
  EXPECT_EQ(mock_->Dump()["users"].size(), 1u);
  Answer retry = Call("POST", "/v1/users", {{"email", "emma@example.se"}}, "k");
  EXPECT_EQ(retry.status, 200);
  EXPECT_EQ(retry.body["id"], "usr_1");

  mock_->SetFaults({*FaultRule::Parse("GET /v1/properties status=404 times=1")});
  ExpectError(Call("GET", "/v1/properties"), 404, "not_found");
  EXPECT_EQ(Call("GET", "/v1/properties").status, 200);
  EXPECT_EQ(mock_->faults_injected(), 3);
}

TEST_F(PortalMockTest, SeedIsDeterministic) {
  StartMock();
  mock_->Seed(42, 12);
  const json a = mock_->Dump();
  ASSERT_EQ(a["properties"].size(), 12u);
  EXPECT_GE(a["users"].size(), 12u);
  EXPECT_LE(a["users"].size(), 24u);
  EXPECT_GE(a["grants"].size(), a["users"].size());
  EXPECT_EQ(a["properties"][0]["external_id"], "seed-prop-1");
  EXPECT_EQ(a["properties"][11]["external_id"], "seed-prop-12");
  for (const json& u : a["users"]) {
    EXPECT_EQ(u["portal_access"], true);
    ASSERT_TRUE(u["main_property_id"].is_string());
    const json grant = {{"user_id", u["id"]},
                        {"property_id", u["main_property_id"]},
                        {"granted_at", u["created_at"]}};
    EXPECT_NE(std::find(a["grants"].begin(), a["grants"].end(), grant), a["grants"].end()) << u;
  }

  FakeClock other_clock;
  PortalMock::Options o;
  o.clock = &other_clock;
  PortalMock other(o);
  other.Seed(42, 12);
  EXPECT_EQ(other.Dump(), a);
  PortalMock different(o);
  different.Seed(43, 12);
  EXPECT_NE(different.Dump(), a);

  // The seeded data is served like any other, and Reset() empties it.
  Answer users = Call("GET", "/v1/users?limit=100");
  EXPECT_EQ(users.body["data"], a["users"]);
  mock_->Reset();
  const json empty = mock_->Dump();
  for (const char* k : {"properties", "users", "grants", "password_resets"})
    EXPECT_TRUE(empty[k].empty()) << k;
  EXPECT_EQ(CreateProperty("Brf Efter"), "prop_1");
}

}  // namespace
}  // namespace crmbridge::mocks
