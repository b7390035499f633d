// Dynamics 365 connector against a scripted transport: token caching and the one refresh on 401,
// alternate-key upserts with the created flag, change tracking with deletes.
#include "connectors/dynamics365/dynamics365_connector.h"

#include <gtest/gtest.h>

#include "connectors/dynamics365/dynamics365_codec.h"
#include "src/core/fake_transport.h"

namespace crmbridge {
namespace {

using nlohmann::json;

SystemConfig Config() {
  SystemConfig c;
  c.name = c.kind = "dynamics365";
  c.base_url = "http://org.test";
  c.auth = {{"token_url", "http://login.test/t/oauth2/v2.0/token"},
            {"client_id", "id"},
            {"client_secret", "s3cr3t value"},
            {"scope", "http://org.test/.default"}};
  return c;
}

ObjectRef Opportunities() {
  ObjectRef r;
  r.object = "opportunities";
  r.params = {{"key", "crmb_externalid"}};
  r.fields = {"name"};
  return r;
}

Response Json(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

class Dataverse {
 public:
  Dataverse() : transport(std::make_shared<FakeTransport>()) {
    transport->SetFallback([this](const Request& r) -> Result<Response> {
      if (r.url.find("/oauth2/") != std::string::npos) {
        ++tokens;
        return Json(200, {{"token_type", "Bearer"}, {"expires_in", 3599},
                          {"access_token", "tok" + std::to_string(tokens)}});
      }
      return api(r);
    });
  }
  std::shared_ptr<FakeTransport> transport;
  int tokens = 0;
  std::function<Result<Response>(const Request&)> api;
};

TEST(Dynamics365ConnectorTest, TokenIsCachedAndA401RefreshesItOnce) {
  Dataverse dv;
  int rejected = 0;
  dv.api = [&](const Request& r) -> Result<Response> {
    auto auth = FindHeader(r.headers, "Authorization");
    if (*auth == "Bearer tok1" && rejected++ == 2) return Json(401, {{"error", {{"code", ""}, {"message", "expired"}}}});
    return Json(201, {{"opportunityid", "00000000-0000-0000-0000-000000000001"}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  WriteOp op;
  op.key = "k1";
  op.fields = {{"name", "x"}};
  ASSERT_TRUE(c.Write(Opportunities(), {op}).ok());
  ASSERT_TRUE(c.Write(Opportunities(), {op}).ok());
  EXPECT_EQ(dv.tokens, 1) << "one token for two writes";
  auto third = c.Write(Opportunities(), {op});  // tok1 now answered 401 once
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE((*third)[0].status.ok());
  EXPECT_EQ(dv.tokens, 2);
  // The form body carries the secret encoded; it goes only to the token URL.
  const Request token_request = dv.transport->requests()[0];
  EXPECT_NE(token_request.body.find("client_secret=s3cr3t%20value"), std::string::npos);
  // Near expiry a new token is fetched before the request, not after a failure.
  clock.Advance(std::chrono::seconds(3400));
  ASSERT_TRUE(c.Write(Opportunities(), {op}).ok());
  EXPECT_EQ(dv.tokens, 3);
}

TEST(Dynamics365ConnectorTest, UpsertsByAlternateKeyAndTellsCreatedFromUpdated) {
  Dataverse dv;
  dv.api = [&](const Request& r) -> Result<Response> {
    const bool known = r.url.find("'old'") != std::string::npos;
    return Json(known ? 200 : 201, {{"opportunityid", known ? "guid-old" : "guid-new"}});
  };
  Dynamics365Connector c(Config(), dv.transport, Clock::Real());
  WriteOp fresh, old;
  fresh.key = "O'Brien";
  fresh.fields = {{"name", "a"}, {"crmb_externalid", "O'Brien"}};
  old.key = "old";
  auto out = c.Write(Opportunities(), {fresh, old});
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].created);
  EXPECT_EQ((*out)[0].native_id, "guid-new");
  EXPECT_FALSE((*out)[1].created);
  const Request put = dv.transport->requests()[1];
  EXPECT_EQ(put.method, "PATCH");
  EXPECT_NE(put.url.find("opportunities(crmb_externalid='O''Brien')?$select=opportunityid"), std::string::npos)
      << put.url;
  EXPECT_EQ(json::parse(put.body).count("crmb_externalid"), 0u) << "the key stays out of the body";
  EXPECT_FALSE(FindHeader(put.headers, "If-Match").has_value()) << "an upsert, not update-only";
}

TEST(Dynamics365ConnectorTest, UpdatesByIdAreUpdateOnly) {
  Dataverse dv;
  dv.api = [&](const Request&) -> Result<Response> {
    return Json(404, {{"error", {{"code", "0x80040217"}, {"message", "opportunity With Id = x Does Not Exist"}}}});
  };
  Dynamics365Connector c(Config(), dv.transport, Clock::Real());
  WriteOp op;
  op.kind = WriteOp::Kind::kUpdate;
  op.native_id = "x";
  auto out = c.Write(Opportunities(), {op});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].status.code(), StatusCode::kNotFound);
  EXPECT_EQ(*FindHeader(dv.transport->requests()[1].headers, "If-Match"), "*");
}

TEST(Dynamics365ConnectorTest, ChangeTrackingPagesAndReportsDeletes) {
  Dataverse dv;
  dv.api = [&](const Request& r) -> Result<Response> {
    if (r.url.find("$select=") != std::string::npos && r.url.find("skiptoken") == std::string::npos &&
        r.url.find("deltatoken") == std::string::npos) {
      EXPECT_NE(FindHeader(r.headers, "Prefer")->find("odata.track-changes"), std::string::npos);
      return Json(200, {{"value", {{{"opportunityid", "g1"}, {"name", "A"}, {"crmb_externalid", "k1"},
                                    {"modifiedon", "2026-01-01T00:00:00Z"}, {"@odata.etag", "W/\"1\""}}}},
                        {"@odata.nextLink", "http://org.test/api/data/v9.2/opportunities?$skiptoken=2"}});
    }
    if (r.url.find("skiptoken") != std::string::npos)
      return Json(200, {{"value", json::array()},
                        {"@odata.deltaLink", "http://org.test/api/data/v9.2/opportunities?$deltatoken=7"}});
    return Json(200, {{"value", {{{"@odata.context", "http://org.test/$metadata#opportunities/$deletedEntity"},
                                  {"id", "g1"}, {"reason", "deleted"}}}},
                      {"@odata.deltaLink", "http://org.test/api/data/v9.2/opportunities?$deltatoken=8"}});
  };
  Dynamics365Connector c(Config(), dv.transport, Clock::Real());
  auto p1 = c.ReadChanges(Opportunities(), "", ReadContext{});
  ASSERT_TRUE(p1.ok()) << p1.status().ToString();
  ASSERT_EQ(p1->records.size(), 1u);
  EXPECT_EQ(p1->records[0].key, "k1");
  EXPECT_EQ(p1->records[0].fields.count("@odata.etag"), 0u);
  EXPECT_TRUE(p1->has_more);
  auto p2 = c.ReadChanges(Opportunities(), p1->next, ReadContext{});
  ASSERT_TRUE(p2.ok());
  EXPECT_FALSE(p2->has_more);
  EXPECT_NE(p2->next.find("deltatoken=7"), std::string::npos) << "the delta link is the cursor";
  auto p3 = c.ReadChanges(Opportunities(), p2->next, ReadContext{});
  ASSERT_TRUE(p3.ok());
  ASSERT_EQ(p3->records.size(), 1u);
  EXPECT_TRUE(p3->records[0].deleted);
  EXPECT_EQ(p3->records[0].id, "g1");
}

TEST(Dynamics365ConnectorTest, RefusedCredentialsStopTheSystemWithoutLeakingTheSecret) {
  auto transport = std::make_shared<FakeTransport>();
  transport->Respond(401, R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."})");
  Dynamics365Connector c(Config(), transport, Clock::Real());
  WriteOp op;
  op.key = "k";
  auto out = c.Write(Opportunities(), {op});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(out.status().message().find("AADSTS7000215"), std::string::npos);
  EXPECT_EQ(out.status().message().find("s3cr3t"), std::string::npos);
}

}  // namespace
}  // namespace crmbridge
