#include "connectors/dynamics365/dynamics365_webhook.h"

#include <gtest/gtest.h>

#include "connectors/registry.h"

namespace crmbridge::dynamics365 {
namespace {

constexpr char kKey[] = "Zk3+q/9w==";  // base64-like, as Azure Function keys are

SystemConfig WithKey(const std::string& key) {
  SystemConfig c;
  c.name = "dynamics365";
  c.kind = "dynamics365";
  if (!key.empty()) c.auth["webhook_key"] = key;
  return c;
}

// The context of an asynchronous PostOperation step, in the shape Dataverse POSTs it (Learn,
// "Use webhooks": the sample request body), for an Update of an account.
std::string Context(const std::string& message = "Update", const std::string& entity = "account",
                    const std::string& extra = "") {
  return R"({"BusinessUnitId":"5d5c2f1a-0000-4000-8000-00000000b001",
    "CorrelationId":"0e3f5a7c-1111-4c2d-9e8f-0123456789ab","Depth":1,
    "InitiatingUserId":"5d5c2f1a-0000-4000-8000-00000000a001",
    "InputParameters":[{"key":"Target","value":{
      "__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
      "Attributes":[{"key":"name","value":"Contoso"}],"Id":"8A1B2C3D-0000-4000-8000-00000000AC01",
      "LogicalName":")" + entity + R"("}}],
    "IsExecutingOffline":false,"IsInTransaction":false,"IsolationMode":1,
    "MessageName":")" + message + R"(","Mode":1,
    "OperationCreatedOn":"\/Date(1700000000000+0000)\/",
    "OperationId":"b7c1d2e3-2222-4f00-8000-0000000000f1",
    "OrganizationId":"5d5c2f1a-0000-4000-8000-00000000c001","OrganizationName":"org",
    "OutputParameters":[],"ParentContext":null,"PostEntityImages":[],"PreEntityImages":[],
    "PrimaryEntityId":"8A1B2C3D-0000-4000-8000-00000000AC01",
    "PrimaryEntityName":")" + entity + R"(","RequestId":null,"SecondaryEntityName":"none",
    "SharedVariables":[],"Stage":40)" + extra + "}";
}

// As a WebhookKey registration calls: the key as the code query value.
WebhookRequest Delivery(const std::string& body = Context(),
                        const std::string& query = "?code=Zk3%2Bq%2F9w%3D%3D") {
  WebhookRequest r;
  r.method = "POST";
  r.url = "https://sync.example.com/webhooks/dynamics365" + query;
  r.body = body;
  r.headers["x-ms-dynamics-organization"] = "org";
  r.now_ms = 1700000001000;
  return r;
}

TEST(Dynamics365WebhookTest, AcceptsTheKeyAsTheCodeQueryValue) {
  WebhookReceipt receipt = ReceiveWebhook(WithKey(kKey), Delivery());
  ASSERT_EQ(receipt.http_status, 200) << receipt.error;
  ASSERT_EQ(receipt.changes.size(), 1u);
  const AnnouncedChange& c = receipt.changes[0];
  EXPECT_EQ(c.object, "accounts");  // the entity set, as mappings name the table
  EXPECT_EQ(c.record_id, "8a1b2c3d-0000-4000-8000-00000000ac01");  // as the Web API writes it
  EXPECT_EQ(c.kind, "Update");
  EXPECT_EQ(c.occurred_ms, 1700000000000);
  EXPECT_EQ(receipt.ignored, 0);
  // A key sent unencoded, with the other query values of the URL around it.
  WebhookRequest plain = Delivery(Context(), "?tenant=a&code=Zk3+q/9w==&x=1");
  EXPECT_EQ(ReceiveWebhook(WithKey(kKey), plain).http_status, 200);
}

TEST(Dynamics365WebhookTest, AcceptsTheKeyInTheHeader) {
  WebhookRequest r = Delivery(Context(), "");
  r.headers[kWebhookKeyHeader] = kKey;
  WebhookReceipt receipt = ReceiveWebhook(WithKey(kKey), r);
  EXPECT_EQ(receipt.http_status, 200) << receipt.error;
  EXPECT_EQ(receipt.changes.size(), 1u);
}

TEST(Dynamics365WebhookTest, RefusesAWrongOrMissingKeyWithoutSayingTheKey) {
  WebhookReceipt wrong = ReceiveWebhook(WithKey(kKey), Delivery(Context(), "?code=guess"));
  EXPECT_EQ(wrong.http_status, 401);
  EXPECT_TRUE(wrong.changes.empty());
  EXPECT_EQ(wrong.error.find(kKey), std::string::npos);
  // A right key in one place does not excuse a wrong one in the other.
  WebhookRequest mixed = Delivery();
  mixed.headers[kWebhookKeyHeader] = "guess";
  EXPECT_EQ(ReceiveWebhook(WithKey(kKey), mixed).http_status, 401);
  WebhookReceipt missing = ReceiveWebhook(WithKey(kKey), Delivery(Context(), ""));
  EXPECT_EQ(missing.http_status, 401);
  EXPECT_NE(missing.error.find("code"), std::string::npos);
  // An empty code is no key; no key configured: nothing can be trusted.
  EXPECT_EQ(ReceiveWebhook(WithKey(kKey), Delivery(Context(), "?code=")).http_status, 401);
  EXPECT_EQ(ReceiveWebhook(WithKey(""), Delivery()).http_status, 401);
  EXPECT_EQ(ReceiveWebhook(WithKey(""), Delivery(Context(), "?code=")).http_status, 401);
}

TEST(Dynamics365WebhookTest, RefusesWhatIsNotAnExecutionContext) {
  for (const std::string& body :
       {std::string("{"), std::string("[]"), std::string("{}"), std::string(R"({"MessageName":"Update"})"),
        Context("Update", "account", R"(,"PrimaryEntityId":"not-a-guid")"),
        Context("Update", "account", R"(,"OperationCreatedOn":"2023-11-14T22:13:20Z")"),
        Context("Update", "account",
                R"(,"OperationId":null,"CorrelationId":null,"RequestId":null)")}) {
    WebhookReceipt r = ReceiveWebhook(WithKey(kKey), Delivery(body));
    EXPECT_EQ(r.http_status, 400) << body;
    EXPECT_TRUE(r.changes.empty());
  }
}

TEST(Dynamics365WebhookTest, ADeleteAnnouncesTheRowItRemoved) {
  const std::string body = Context("Delete", "contact", R"(,"InputParameters":[{"key":"Target",
      "value":{"__type":"EntityReference:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
      "Id":"8a1b2c3d-0000-4000-8000-00000000ac01","LogicalName":"contact","Name":null}}])");
  WebhookReceipt receipt = ReceiveWebhook(WithKey(kKey), Delivery(body));
  ASSERT_EQ(receipt.http_status, 200) << receipt.error;
  ASSERT_EQ(receipt.changes.size(), 1u);
  EXPECT_EQ(receipt.changes[0].object, "contacts");
  EXPECT_EQ(receipt.changes[0].kind, "Delete");
}

TEST(Dynamics365WebhookTest, MessagesAndTablesCrmbridgeDoesNotReadAreIgnored) {
  for (const auto& [message, entity] :
       std::vector<std::pair<std::string, std::string>>{{"Retrieve", "account"},
                                                        {"Associate", "account"},
                                                        {"Update", "systemuser"}}) {
    WebhookReceipt r = ReceiveWebhook(WithKey(kKey), Delivery(Context(message, entity)));
    EXPECT_EQ(r.http_status, 200) << message << " " << entity;
    EXPECT_TRUE(r.changes.empty());
    EXPECT_EQ(r.ignored, 1);
  }
  // A Create step before the main operation: no row exists yet, nothing to read. After it, a
  // context without the PrimaryEntityId still names the new row among its outputs.
  const std::string no_id = R"(,"PrimaryEntityId":"00000000-0000-0000-0000-000000000000")";
  WebhookReceipt before = ReceiveWebhook(WithKey(kKey), Delivery(Context("Create", "account", no_id)));
  EXPECT_EQ(before.http_status, 200);
  EXPECT_TRUE(before.changes.empty());
  EXPECT_EQ(before.ignored, 1);
  WebhookReceipt after = ReceiveWebhook(
      WithKey(kKey),
      Delivery(Context("Create", "account",
                       no_id + R"(,"OutputParameters":[{"key":"id","value":"11111111-2222-4333-8444-555555555555"}])")));
  ASSERT_EQ(after.changes.size(), 1u);
  EXPECT_EQ(after.changes[0].record_id, "11111111-2222-4333-8444-555555555555");
  // A merge announces the target and the subordinate row it absorbed.
  WebhookReceipt merge = ReceiveWebhook(
      WithKey(kKey), Delivery(Context("Merge", "account", R"(,"InputParameters":[
        {"key":"SubordinateId","value":"11111111-2222-4333-8444-555555555555"}])")));
  ASSERT_EQ(merge.changes.size(), 2u);
  EXPECT_EQ(merge.changes[1].record_id, "11111111-2222-4333-8444-555555555555");
}

TEST(Dynamics365WebhookTest, OneExecutionHasOneDedupeKeyAcrossRetries) {
  WebhookReceipt a = ReceiveWebhook(WithKey(kKey), Delivery());
  WebhookReceipt again = ReceiveWebhook(WithKey(kKey), Delivery());
  ASSERT_EQ(a.changes.size(), 1u);
  ASSERT_EQ(again.changes.size(), 1u);
  EXPECT_EQ(a.changes[0].dedupe_key, again.changes[0].dedupe_key);
  // Another system job (the next change of the same row) is another event.
  WebhookReceipt next = ReceiveWebhook(
      WithKey(kKey),
      Delivery(Context("Update", "account", R"(,"OperationId":"b7c1d2e3-2222-4f00-8000-0000000000f2")")));
  ASSERT_EQ(next.changes.size(), 1u);
  EXPECT_NE(next.changes[0].dedupe_key, a.changes[0].dedupe_key);
  // A synchronous step has no system job: its CorrelationId and time tell it apart.
  WebhookReceipt sync = ReceiveWebhook(
      WithKey(kKey),
      Delivery(Context("Update", "account", R"(,"OperationId":"00000000-0000-0000-0000-000000000000")")));
  ASSERT_EQ(sync.changes.size(), 1u);
  EXPECT_NE(sync.changes[0].dedupe_key.find("0e3f5a7c-1111-4c2d-9e8f-0123456789ab@1700000000000"),
            std::string::npos);
}

TEST(Dynamics365WebhookTest, ReadsTheJsonDateFormat) {
  EXPECT_EQ(ParseJsonDate("/Date(1700000000000)/"), 1700000000000);
  EXPECT_EQ(ParseJsonDate("/Date(1700000000000+0000)/"), 1700000000000);
  // The offset names the sender's zone; the milliseconds are UTC all the same.
  EXPECT_EQ(ParseJsonDate("/Date(1700000000000+0100)/"), 1700000000000);
  EXPECT_EQ(ParseJsonDate("/Date(-86400000)/"), -86400000);
  for (const char* bad : {"", "/Date()/", "/Date(17x)/", "Date(1700000000000)", "/Date(1+01)/",
                          "/Date(99999999999999999999)/", "2023-11-14T22:13:20Z"})
    EXPECT_FALSE(ParseJsonDate(bad).has_value()) << bad;
}

TEST(Dynamics365WebhookTest, TheRegistryReadsDynamics365Webhooks) {
  EXPECT_TRUE(WebhookReceiverOfKind("dynamics365") != nullptr);
  EXPECT_TRUE(WebhookReceiverOfKind("portal") == nullptr);
}

}  // namespace
}  // namespace crmbridge::dynamics365
