// Dynamics 365 connector against a scripted transport: token caching and the one refresh on 401,
// alternate-key upserts with the created flag, change tracking with deletes.
#include "connectors/dynamics365/dynamics365_connector.h"

#include <gtest/gtest.h>

#include "connectors/dynamics365/dynamics365_codec.h"
#include "src/core/fake_transport.h"
#include "src/core/utf8.h"

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
        return Json(200, {{"token_type", "Bearer"},
                          {"expires_in", 3599},
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
    if (*auth == "Bearer tok1" && rejected++ == 2)
      return Json(401, {{"error", {{"code", ""}, {"message", "expired"}}}});
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
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  WriteOp fresh, old;
  fresh.key = "O'Brien";
  fresh.fields = {{"name", "a"}, {"crmb_externalid", "O'Brien"}};
  old.key = "old";
  // One op per call goes as a plain request (several travel in a $batch: see the mock tests).
  auto out = c.Write(Opportunities(), {fresh});
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].created);
  EXPECT_EQ((*out)[0].native_id, "guid-new");
  auto second = c.Write(Opportunities(), {old});
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE((*second)[0].created);
  const Request put = dv.transport->requests()[1];
  EXPECT_EQ(put.method, "PATCH");
  EXPECT_NE(put.url.find("opportunities(crmb_externalid='O''Brien')?$select=opportunityid"),
            std::string::npos)
      << put.url;
  EXPECT_EQ(json::parse(put.body).count("crmb_externalid"), 0u) << "the key stays out of the body";
  EXPECT_FALSE(FindHeader(put.headers, "If-Match").has_value()) << "an upsert, not update-only";
}

TEST(Dynamics365ConnectorTest, UpdatesByIdAreUpdateOnly) {
  Dataverse dv;
  dv.api = [&](const Request&) -> Result<Response> {
    return Json(
        404, {{"error",
               {{"code", "0x80040217"}, {"message", "opportunity With Id = x Does Not Exist"}}}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  WriteOp op;
  op.kind = WriteOp::Kind::kUpdate;
  op.native_id = "6f2a1c3e-0000-4000-8000-00000000000a";
  auto out = c.Write(Opportunities(), {op});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].status.code(), StatusCode::kNotFound);
  EXPECT_EQ(*FindHeader(dv.transport->requests()[1].headers, "If-Match"), "*");
}

TEST(Dynamics365ConnectorTest, ChangeTrackingPagesAndReportsDeletes) {
  Dataverse dv;
  dv.api = [&](const Request& r) -> Result<Response> {
    if (r.url.find("$select=") != std::string::npos &&
        r.url.find("skiptoken") == std::string::npos &&
        r.url.find("deltatoken") == std::string::npos) {
      EXPECT_NE(FindHeader(r.headers, "Prefer")->find("odata.track-changes"), std::string::npos);
      return Json(
          200, {{"value",
                 {{{"opportunityid", "g1"},
                   {"name", "A"},
                   {"crmb_externalid", "k1"},
                   {"modifiedon", "2026-01-01T00:00:00Z"},
                   {"@odata.etag", "W/\"1\""}}}},
                {"@odata.nextLink", "http://org.test/api/data/v9.2/opportunities?$skiptoken=2"}});
    }
    if (r.url.find("skiptoken") != std::string::npos)
      return Json(
          200, {{"value", json::array()},
                {"@odata.deltaLink", "http://org.test/api/data/v9.2/opportunities?$deltatoken=7"}});
    return Json(
        200, {{"value",
               {{{"@odata.context", "http://org.test/$metadata#opportunities/$deletedEntity"},
                 {"id", "g1"},
                 {"reason", "deleted"}}}},
              {"@odata.deltaLink", "http://org.test/api/data/v9.2/opportunities?$deltatoken=8"}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
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

// Every request carries the organisation's token: a paging link from an answer that leads to
// another host is not followed, nor is one kept from a run against another organisation URL.
TEST(Dynamics365ConnectorTest, PagingLinkToAnotherHostIsNotFollowed) {
  Dataverse dv;
  dv.api = [&](const Request& r) -> Result<Response> {
    EXPECT_EQ(r.url.rfind("http://org.test/", 0), 0u) << r.url;
    return Json(200, {{"value", json::array()},
                      {"@odata.nextLink",
                       "http://org.test.elsewhere.example/api/data/v9.2/"
                       "opportunities?$skiptoken=2"}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  auto page = c.ReadChanges(Opportunities(), "", ReadContext{});
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(page.status().message().find("leads away from http://org.test"), std::string::npos)
      << page.status().ToString();

  ObjectRef by_time = Opportunities();
  by_time.params["change_tracking"] = "false";
  auto by_modifiedon = c.ReadChanges(by_time, "", ReadContext{});
  ASSERT_FALSE(by_modifiedon.ok());
  EXPECT_EQ(by_modifiedon.status().code(), StatusCode::kUnavailable);
}

TEST(Dynamics365ConnectorTest, StoredLinkToAnotherHostReadsTheTableAgain) {
  Dataverse dv;
  std::vector<std::string> urls;
  dv.api = [&](const Request& r) -> Result<Response> {
    urls.push_back(r.url);
    return Json(
        200, {{"value", json::array()},
              {"@odata.deltaLink", "http://org.test/api/data/v9.2/opportunities?$deltatoken=9"}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  auto page =
      c.ReadChanges(Opportunities(),
                    "http://old-org.test/api/data/v9.2/opportunities?$deltatoken=3", ReadContext{});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(urls.size(), 1u);
  EXPECT_EQ(urls[0].rfind("http://org.test/api/data/v9.2/opportunities?$select=", 0), 0u)
      << urls[0];
  EXPECT_NE(page->next.find("deltatoken=9"), std::string::npos);

  ObjectRef by_time = Opportunities();
  by_time.params["change_tracking"] = "false";
  urls.clear();
  auto from_watermark = c.ReadChanges(
      by_time,
      R"({"w":1767225600000,"max":1767225600000,"next":"http://old-org.test/x?$skiptoken=2"})",
      ReadContext{});
  ASSERT_TRUE(from_watermark.ok()) << from_watermark.status().ToString();
  ASSERT_EQ(urls.size(), 1u);
  EXPECT_NE(urls[0].find("$filter=modifiedon%20ge%202026-01-01T00%3A00%3A00Z"), std::string::npos)
      << urls[0];
}

// A link is sent as a URL: what a client cannot put on the request line is percent-encoded.
TEST(Dynamics365ConnectorTest, PagingLinkIsSentAsAUrl) {
  Dataverse dv;
  std::vector<std::string> urls;
  dv.api = [&](const Request& r) -> Result<Response> {
    urls.push_back(r.url);
    return Json(200, {{"value", json::array()}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  ASSERT_TRUE(
      c.ReadChanges(Opportunities(),
                    "http://org.test/api/data/v9.2/opportunities?$skiptoken=a b\r\nX: y\xc3\xa5",
                    ReadContext{})
          .ok());
  ASSERT_EQ(urls.size(), 1u);
  EXPECT_EQ(urls[0],
            "http://org.test/api/data/v9.2/opportunities?$skiptoken=a%20b%0D%0AX:%20y%C3%A5");
}

TEST(Dynamics365ConnectorTest, RefusedCredentialsStopTheSystemWithoutLeakingTheSecret) {
  auto transport = std::make_shared<FakeTransport>();
  transport->Respond(
      401,
      R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."})");
  FakeClock clock;
  Dynamics365Connector c(Config(), transport, &clock);
  WriteOp op;
  op.key = "k";
  auto out = c.Write(Opportunities(), {op});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(out.status().message().find("AADSTS7000215"), std::string::npos);
  EXPECT_EQ(out.status().message().find("s3cr3t"), std::string::npos);
}

TEST(Dynamics365ConnectorTest, RequestsCarryTheODataHeaders) {
  Dataverse dv;
  dv.api = [&](const Request& r) -> Result<Response> {
    if (r.method == "GET")
      return Json(
          200, {{"value", json::array()}, {"@odata.deltaLink", "http://org.test/d?$deltatoken=1"}});
    return Json(200, {{"opportunityid", "g"}});
  };
  FakeClock clock;
  SystemConfig config = Config();
  config.options["api_version"] = "v9.1";
  Dynamics365Connector c(config, dv.transport, &clock);
  ReadContext ctx;
  ctx.page_size = 50;
  ASSERT_TRUE(c.ReadChanges(Opportunities(), "", ctx).ok());
  WriteOp op;
  op.key = "k";
  ASSERT_TRUE(c.Write(Opportunities(), {op}).ok());
  const auto requests = dv.transport->requests();
  ASSERT_EQ(requests.size(), 3u);
  const Request& token = requests[0];
  EXPECT_EQ(token.method, "POST");
  EXPECT_EQ(*FindHeader(token.headers, "Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_NE(token.body.find("grant_type=client_credentials"), std::string::npos);
  EXPECT_NE(token.body.find("scope=http%3A%2F%2Forg.test%2F.default"), std::string::npos);

  const Request& get = requests[1];
  EXPECT_EQ(get.url,
            "http://org.test/api/data/v9.1/"
            "opportunities?$select=crmb_externalid,modifiedon,name,opportunityid");
  EXPECT_EQ(*FindHeader(get.headers, "Prefer"), "odata.track-changes,odata.maxpagesize=50");
  EXPECT_EQ(*FindHeader(get.headers, "OData-MaxVersion"), "4.0");
  EXPECT_EQ(*FindHeader(get.headers, "OData-Version"), "4.0");
  EXPECT_EQ(*FindHeader(get.headers, "Accept"), "application/json");
  EXPECT_EQ(*FindHeader(get.headers, "If-None-Match"), "null");
  EXPECT_EQ(*FindHeader(get.headers, "Authorization"), "Bearer tok1");
  EXPECT_TRUE(get.idempotent);
  EXPECT_EQ(get.system, "dynamics365");

  const Request& patch = requests[2];
  EXPECT_EQ(*FindHeader(patch.headers, "Prefer"), "return=representation");
  EXPECT_EQ(*FindHeader(patch.headers, "Content-Type"), "application/json");
  EXPECT_FALSE(FindHeader(patch.headers, "If-None-Match").has_value()) << "never on a write";
  EXPECT_TRUE(patch.idempotent);
}

TEST(Dynamics365ConnectorTest, AnExpiredDeltaLinkStartsAFullRead) {
  Dataverse dv;
  dv.api = [&](const Request& r) -> Result<Response> {
    if (r.url.find("deltatoken=old") != std::string::npos)
      return Json(400, {{"error",
                         {{"code", "0x80044352"},
                          {"message",
                           "Version stamp associated with the client has expired. Please perform a "
                           "full sync."}}}});
    return Json(
        200, {{"value", {{{"opportunityid", "g1"}, {"name", "A"}}}},
              {"@odata.deltaLink", "http://org.test/api/data/v9.2/opportunities?$deltatoken=new"}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  auto page =
      c.ReadChanges(Opportunities(), "http://org.test/api/data/v9.2/opportunities?$deltatoken=old",
                    ReadContext{});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->records.size(), 1u);
  EXPECT_NE(page->next.find("deltatoken=new"), std::string::npos);
  EXPECT_NE(dv.transport->requests().back().url.find("$select="), std::string::npos);
}

TEST(Dynamics365ConnectorTest, ADeltaLinkRefusedForLackOfPrivilegeIsNotAResync) {
  Dataverse dv;
  dv.api = [&](const Request&) -> Result<Response> {
    return Json(403,
                {{"error", {{"code", "0x80040220"}, {"message", "missing prvReadOpportunity"}}}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  auto page = c.ReadChanges(
      Opportunities(), "http://org.test/api/data/v9.2/opportunities?$deltatoken=7", ReadContext{});
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(page.status().message().find("0x80040220: missing prvReadOpportunity"),
            std::string::npos);
  EXPECT_EQ(dv.transport->request_count(), 2u) << "token + the one refused read";
}

TEST(Dynamics365ConnectorTest, ALastPageWithoutDeltaLinkKeepsAUsableCursor) {
  Dataverse dv;
  dv.api = [&](const Request&) -> Result<Response> {
    return Json(200, {{"value", json::array()}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  const std::string delta = "http://org.test/api/data/v9.2/opportunities?$deltatoken=7";
  auto from_delta = c.ReadChanges(Opportunities(), delta, ReadContext{});
  ASSERT_TRUE(from_delta.ok());
  EXPECT_EQ(from_delta->next, delta) << "the delta link read from stays valid";
  auto from_next = c.ReadChanges(
      Opportunities(), "http://org.test/api/data/v9.2/opportunities?$skiptoken=3", ReadContext{});
  ASSERT_TRUE(from_next.ok());
  EXPECT_EQ(from_next->next, "") << "a nextLink does not: start over";
  EXPECT_FALSE(from_next->has_more);
}

TEST(Dynamics365ConnectorTest, DeletingARowThatIsGoneSucceeds) {
  Dataverse dv;
  dv.api = [&](const Request&) -> Result<Response> {
    return Json(404, {{"error", {{"code", "0x80040217"}, {"message", "Does Not Exist"}}}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  WriteOp op;
  op.kind = WriteOp::Kind::kDelete;
  op.native_id = "6f2a1c3e-0000-4000-8000-000000000001";
  auto out = c.Write(Opportunities(), {op});
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].status.ok());
  const Request del = dv.transport->requests()[1];
  EXPECT_EQ(del.method, "DELETE");
  EXPECT_EQ(del.url,
            "http://org.test/api/data/v9.2/opportunities(6f2a1c3e-0000-4000-8000-000000000001)");
}

// A row id that is not a GUID would address something else in a URL, or end the request line of
// a $batch body: the op is refused with the id named, nothing is sent for it, and the others go.
TEST(Dynamics365ConnectorTest, ARowIdThatIsNotAGuidIsRefusedAndNeverSent) {
  Dataverse dv;
  std::vector<std::string> sent;
  dv.api = [&](const Request& r) -> Result<Response> {
    sent.push_back(r.url + "\n" + r.body);
    return Json(204, nullptr);
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  const std::string good = "6f2a1c3e-0000-4000-8000-000000000001";
  const std::vector<std::string> bad = {"x", "../systemusers(" + good + ")",
                                        good + ") HTTP/1.1\r\nX-Forged: 1\r\n\r\nPATCH (",
                                        "a1/b?read accounts104", ""};
  for (const std::string& id : bad) {
    for (const WriteOp::Kind kind : {WriteOp::Kind::kUpdate, WriteOp::Kind::kDelete,
                                     WriteOp::Kind::kMerge}) {
      sent.clear();
      WriteOp op;
      op.kind = kind;
      op.native_id = id;
      op.merge_into = good;
      if (kind != WriteOp::Kind::kDelete) op.fields = {{"name", "A"}};
      WriteOp fine;
      fine.kind = WriteOp::Kind::kUpdate;
      fine.native_id = good;
      fine.fields = {{"name", "B"}};
      auto out = c.Write(Opportunities(), {op, fine});
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      ASSERT_EQ(out->size(), 2u);
      EXPECT_EQ((*out)[0].status.code(), StatusCode::kInvalidArgument) << id;
      EXPECT_NE((*out)[0].status.message().find("is not a GUID"), std::string::npos)
          << (*out)[0].status.message();
      EXPECT_NE((*out)[0].status.message().find(PrintableText(id)), std::string::npos);
      EXPECT_TRUE((*out)[1].status.ok()) << (*out)[1].status.ToString();
      ASSERT_FALSE(sent.empty());
      for (const std::string& request : sent) {
        if (id.empty()) break;
        EXPECT_EQ(request.find(id), std::string::npos) << request;
      }
    }
  }
  // A merge into a row that is not a GUID is refused the same way.
  WriteOp merge;
  merge.kind = WriteOp::Kind::kMerge;
  merge.native_id = good;
  merge.merge_into = "x";
  auto out = c.Write(Opportunities(), {merge});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].status.code(), StatusCode::kInvalidArgument);
}

// The key and primary-key columns a mapping names go into URLs as they are. A name that is not a
// plain column name (the mapping loader refuses it first) is refused by every call, naming the
// param; nothing is sent.
TEST(Dynamics365ConnectorTest, AKeyColumnThatIsNotAColumnNameIsRefusedAndNeverSent) {
  Dataverse dv;
  std::vector<std::string> sent;
  dv.api = [&](const Request& r) -> Result<Response> {
    sent.push_back(r.url + "\n" + r.body);
    return Json(200, {{"value", json::array()}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  const std::string good = "6f2a1c3e-0000-4000-8000-000000000001";
  for (const char* param : {"key", "primary_key"}) {
    for (const std::string column : {"crmb_exte/b?c#d rnalid", "x)/systemusers(", "1col", "a b"}) {
      SCOPED_TRACE(std::string(param) + "=" + column);
      sent.clear();
      ObjectRef ref = Opportunities();
      ref.params[param] = column;
      WriteOp upsert;
      upsert.kind = WriteOp::Kind::kUpsert;
      upsert.key = "crmb-key-0";
      upsert.fields = {{"name", "A"}};
      WriteOp update;
      update.kind = WriteOp::Kind::kUpdate;
      update.native_id = good;
      update.fields = {{"name", "B"}};
      auto out = c.Write(ref, {upsert, update});
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      ASSERT_EQ(out->size(), 2u);
      for (const WriteOutcome& o : *out) {
        EXPECT_EQ(o.status.code(), StatusCode::kInvalidArgument);
        EXPECT_NE(o.status.message().find("params." + std::string(param) + " '" + column +
                                          "' is not a column name"),
                  std::string::npos)
            << o.status.message();
      }
      auto page = c.ReadChanges(ref, "", ReadContext{});
      EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument);
      auto by_id = c.ReadByIds(ref, {good});
      EXPECT_EQ(by_id.status().code(), StatusCode::kInvalidArgument);
      EXPECT_TRUE(sent.empty()) << sent.front();
    }
  }
}

// A table read by modifiedon keeps {"w": ms, "max": ms, "next": link} as its cursor; one whose
// numbers are of another type (a state file edited by hand, or of another version) is refused as
// unreadable, before any request, instead of throwing out of the connector.
TEST(Dynamics365ConnectorTest, AWatermarkCursorWithAValueOfAnotherTypeIsUnreadable) {
  Dataverse dv;
  int reads = 0;
  dv.api = [&](const Request&) -> Result<Response> {
    ++reads;
    return Json(200, {{"value", json::array()}});
  };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  ObjectRef ref = Opportunities();
  ref.params["change_tracking"] = "false";
  for (const std::string cursor :
       {R"({"w":1767225600000,"max":"https://org.test/api/data/v9.2/opportunities"})",
        R"({"w":"1767225600000"})", R"({"w":1.5})", R"({"max":1})", R"([1])", "not json"}) {
    auto page = c.ReadChanges(ref, cursor, ReadContext{});
    ASSERT_FALSE(page.ok()) << cursor;
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument) << cursor;
    EXPECT_NE(page.status().message().find("unreadable cursor"), std::string::npos);
  }
  EXPECT_EQ(reads, 0);
  auto page = c.ReadChanges(ref, R"({"w":1767225600000,"max":1767225600000})", ReadContext{});
  EXPECT_TRUE(page.ok()) << page.status().ToString();
}

TEST(Dynamics365ConnectorTest, ASecond401IsUnauthenticated) {
  Dataverse dv;
  dv.api = [&](const Request&) -> Result<Response> { return Json(401, nullptr); };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  auto page = c.ReadChanges(Opportunities(), "", ReadContext{});
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(dv.tokens, 2) << "one refresh, then give up";
  EXPECT_EQ(dv.transport->request_count(), 4u);
}

TEST(Dynamics365ConnectorTest, AnAnswerThatIsNeitherTheOneExpectedNorAnErrorIsNoSuccess) {
  for (int status : {100, 204, 302, 304}) {
    Dataverse dv;
    dv.api = [&](const Request&) -> Result<Response> { return Json(status, nullptr); };
    FakeClock clock;
    Dynamics365Connector c(Config(), dv.transport, &clock);
    // A read failed with an OK Status before: its Result held neither a page nor an error.
    auto page = c.ReadChanges(Opportunities(), "", ReadContext{});
    ASSERT_FALSE(page.ok()) << status;
    EXPECT_EQ(page.status().code(), StatusCode::kUnavailable) << status;
    EXPECT_EQ(page.status().http_status(), status);
    EXPECT_EQ(page.status().ToString(), "UNAVAILABLE: dynamics365: HTTP " +
                                            std::to_string(status) +
                                            ": reading opportunities: an unexpected answer");
    if (status < 300) continue;
    // A write so answered was done, with no row id.
    WriteOp op;
    op.key = "k1";
    op.fields = {{"name", "Deal"}};
    auto out = c.Write(Opportunities(), {op});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ((*out)[0].status.code(), StatusCode::kUnavailable) << status;
  }
}

TEST(Dynamics365ConnectorTest, PrimaryKeyParamOverridesTheDefault) {
  Dataverse dv;
  dv.api = [&](const Request&) -> Result<Response> { return Json(201, {{"crmb_rowid", "r1"}}); };
  FakeClock clock;
  Dynamics365Connector c(Config(), dv.transport, &clock);
  ObjectRef ref = Opportunities();
  ref.object = "crmb_rows";
  ref.params["primary_key"] = "crmb_rowid";
  WriteOp op;
  op.key = "k";
  auto out = c.Write(ref, {op});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].native_id, "r1");
  EXPECT_NE(dv.transport->requests()[1].url.find("?$select=crmb_rowid"), std::string::npos);
}

}  // namespace
}  // namespace crmbridge
