#include "connectors/hubspot/hubspot_webhook.h"

#include <gtest/gtest.h>

#include "connectors/registry.h"
#include "src/core/hash.h"

namespace crmbridge::hubspot {
namespace {

constexpr int64_t kSentMs = 1700000000000;

SystemConfig WithSecret(const std::string& secret) {
  SystemConfig c;
  c.name = "hubspot";
  c.kind = "hubspot";
  c.auth["client_secret"] = secret;
  return c;
}

// Signed as HubSpot signs: the expected signature below was computed apart from crmbridge, with
//   printf 'POSThttps://example.com/webhooks/hubspot[{"objectId":1}]1700000000000' |
//     openssl dgst -sha256 -hmac 'secret-123' -binary | base64
WebhookRequest Delivery(const std::string& body = R"([{"objectId":1}])") {
  WebhookRequest r;
  r.method = "POST";
  r.url = "https://example.com/webhooks/hubspot";
  r.body = body;
  r.headers["x-hubspot-signature-v3"] = "M4B5zMa5Dj7GGSMzb+4x8jZb9SrhZ+AmUPPilQwOX20=";
  r.headers["x-hubspot-request-timestamp"] = std::to_string(kSentMs);
  r.now_ms = kSentMs + 1000;
  return r;
}

// Re-signs `r` with `secret`, as HubSpot would after the body or URL changed.
void Sign(WebhookRequest* r, const std::string& secret) {
  const std::string ts = r->headers["x-hubspot-request-timestamp"];
  r->headers["x-hubspot-signature-v3"] =
      HmacSha256Base64(secret, r->method + SignedUri(r->url) + r->body + ts);
}

TEST(HubSpotWebhookTest, AcceptsADeliverySignedWithTheClientSecret) {
  WebhookReceipt receipt = ReceiveWebhook(WithSecret("secret-123"), Delivery());
  EXPECT_EQ(receipt.http_status, 200) << receipt.error;
  // The event has no subscriptionType: nothing to read, counted as ignored.
  EXPECT_TRUE(receipt.changes.empty());
  EXPECT_EQ(receipt.ignored, 1);
}

TEST(HubSpotWebhookTest, RefusesAWrongSecretATamperedBodyAndAMissingSignature) {
  EXPECT_EQ(ReceiveWebhook(WithSecret("secret-124"), Delivery()).http_status, 401);
  WebhookRequest tampered = Delivery(R"([{"objectId":2}])");
  EXPECT_EQ(ReceiveWebhook(WithSecret("secret-123"), tampered).http_status, 401);
  WebhookRequest unsigned_request = Delivery();
  unsigned_request.headers.erase("x-hubspot-signature-v3");
  WebhookReceipt r = ReceiveWebhook(WithSecret("secret-123"), unsigned_request);
  EXPECT_EQ(r.http_status, 401);
  EXPECT_NE(r.error.find("X-HubSpot-Signature-v3"), std::string::npos);
  // No secret configured: nothing can be verified, so nothing is accepted.
  EXPECT_EQ(ReceiveWebhook(WithSecret(""), Delivery()).http_status, 401);
}

TEST(HubSpotWebhookTest, RefusesADeliveryMoreThanFiveMinutesOld) {
  WebhookRequest late = Delivery();
  late.now_ms = kSentMs + kWebhookMaxAgeMs + 1;
  WebhookReceipt r = ReceiveWebhook(WithSecret("secret-123"), late);
  EXPECT_EQ(r.http_status, 401);
  EXPECT_NE(r.error.find("5 minutes"), std::string::npos);
  late.now_ms = kSentMs + kWebhookMaxAgeMs;
  EXPECT_EQ(ReceiveWebhook(WithSecret("secret-123"), late).http_status, 200);
}

TEST(HubSpotWebhookTest, TheSignedUriHasHubSpotsCharactersDecoded) {
  EXPECT_EQ(SignedUri("https://x.io/h?a=b%3Ac%2Fd%3f%40%21%24%27%28%29%2A%2C%3B%20"),
            "https://x.io/h?a=b:c/d?@!$'()*,;%20");
  WebhookRequest r = Delivery();
  r.url = "https://example.com/webhooks/hubspot?tenant=a%3Ab";
  Sign(&r, "s");
  EXPECT_EQ(ReceiveWebhook(WithSecret("s"), r).http_status, 200);
}

TEST(HubSpotWebhookTest, NamesTheRecordsItsEventsAnnounce) {
  WebhookRequest r = Delivery(R"([
    {"eventId":100,"subscriptionId":7,"portalId":62515,"occurredAt":1699999990000,
     "subscriptionType":"ticket.propertyChange","attemptNumber":0,"objectId":123,
     "propertyName":"hs_pipeline_stage","propertyValue":"2","changeSource":"CRM"},
    {"eventId":100,"subscriptionType":"contact.merge","occurredAt":1699999991000,"objectId":5,
     "primaryObjectId":5,"mergedObjectIds":[6,7]},
    {"eventId":101,"subscriptionType":"line_item.creation","objectId":9,"occurredAt":1},
    {"eventId":102,"subscriptionType":"company.deletion","objectId":"44","occurredAt":2}])");
  Sign(&r, "s");
  WebhookReceipt receipt = ReceiveWebhook(WithSecret("s"), r);
  ASSERT_EQ(receipt.http_status, 200) << receipt.error;
  EXPECT_EQ(receipt.ignored, 1);  // line items are not read
  ASSERT_EQ(receipt.changes.size(), 6u);
  EXPECT_EQ(receipt.changes[0].object, "tickets");
  EXPECT_EQ(receipt.changes[0].record_id, "123");
  EXPECT_EQ(receipt.changes[0].kind, "propertyChange");
  EXPECT_EQ(receipt.changes[0].occurred_ms, 1699999990000);
  // A merge announces the survivor and every absorbed record.
  EXPECT_EQ(receipt.changes[1].record_id, "5");
  EXPECT_EQ(receipt.changes[3].record_id, "6");
  EXPECT_EQ(receipt.changes[4].record_id, "7");
  EXPECT_EQ(receipt.changes[5].object, "companies");
  EXPECT_EQ(receipt.changes[5].record_id, "44");
  // eventId 100 twice, different events: different keys. The same event again: the same key.
  EXPECT_NE(receipt.changes[0].dedupe_key, receipt.changes[1].dedupe_key);
  WebhookReceipt again = ReceiveWebhook(WithSecret("s"), r);
  EXPECT_EQ(again.changes[0].dedupe_key, receipt.changes[0].dedupe_key);
}

// An association event names its records by fromObjectId and toObjectId: the `from` record, of
// the subscribed type, is read again (its reference moved); the batch is never refused for it.
TEST(HubSpotWebhookTest, AnAssociationChangeAnnouncesItsFromRecord) {
  WebhookRequest r = Delivery(R"([
    {"eventId":200,"subscriptionType":"contact.associationChange","occurredAt":1699999992000,
     "associationType":"CONTACT_TO_COMPANY","fromObjectId":301,"toObjectId":901,
     "associationRemoved":false,"isPrimaryAssociation":true,"changeSource":"CRM_UI"},
    {"eventId":201,"subscriptionType":"ticket.propertyChange","objectId":123,"occurredAt":3,
     "propertyName":"subject"}])");
  Sign(&r, "s");
  WebhookReceipt receipt = ReceiveWebhook(WithSecret("s"), r);
  ASSERT_EQ(receipt.http_status, 200) << receipt.error;
  ASSERT_EQ(receipt.changes.size(), 2u);
  EXPECT_EQ(receipt.changes[0].object, "contacts");
  EXPECT_EQ(receipt.changes[0].record_id, "301");
  EXPECT_EQ(receipt.changes[0].kind, "associationChange");
  EXPECT_EQ(receipt.changes[1].record_id, "123");
}

TEST(HubSpotWebhookTest, RefusesWhatIsNotAnArrayOfAtMostAHundredEvents) {
  for (const std::string& body : {std::string("{}"), std::string("[1]"), std::string("[{"),
                                   std::string(R"([{"subscriptionType":"ticket.creation"}])")}) {
    WebhookRequest r = Delivery(body);
    Sign(&r, "s");
    EXPECT_EQ(ReceiveWebhook(WithSecret("s"), r).http_status, 400) << body;
  }
  std::string many = "[";
  for (int i = 0; i < 101; ++i) many += std::string(i ? "," : "") + R"({"objectId":1})";
  WebhookRequest r = Delivery(many + "]");
  Sign(&r, "s");
  EXPECT_EQ(ReceiveWebhook(WithSecret("s"), r).http_status, 400);
}

// One event naming no record does not cost the others: HubSpot would retry the whole delivery,
// then drop it, good events and all.
TEST(HubSpotWebhookTest, AnEventNamingNoRecordIsSkippedAndTheOthersAreTaken) {
  WebhookRequest r = Delivery(
      R"([{"eventId":1,"occurredAt":5,"subscriptionType":"ticket.creation","objectId":7},)"
      R"({"eventId":2,"occurredAt":6,"subscriptionType":"ticket.propertyChange"},)"
      R"(3])");
  Sign(&r, "s");
  WebhookReceipt receipt = ReceiveWebhook(WithSecret("s"), r);
  EXPECT_EQ(receipt.http_status, 200) << receipt.error;
  ASSERT_EQ(receipt.changes.size(), 1u);
  EXPECT_EQ(receipt.changes[0].record_id, "7");
  EXPECT_EQ(receipt.ignored, 2);
}

// An event without its time or id is told apart by its values, so a later change of the same
// property is not taken for a repeat of the first; HubSpot's retry of one (its attemptNumber
// grown) still is.
TEST(HubSpotWebhookTest, EventsWithoutTimeOrIdAreToldApartByTheirValues) {
  auto key = [](const std::string& event) {
    WebhookRequest r = Delivery("[" + event + "]");
    Sign(&r, "s");
    WebhookReceipt receipt = ReceiveWebhook(WithSecret("s"), r);
    EXPECT_EQ(receipt.http_status, 200) << receipt.error;
    return receipt.changes.empty() ? std::string() : receipt.changes[0].dedupe_key;
  };
  const std::string first = key(
      R"({"subscriptionType":"ticket.propertyChange","objectId":7,"propertyName":"subject","propertyValue":"A","attemptNumber":0})");
  const std::string retried = key(
      R"({"subscriptionType":"ticket.propertyChange","objectId":7,"propertyName":"subject","propertyValue":"A","attemptNumber":1})");
  const std::string later = key(
      R"({"subscriptionType":"ticket.propertyChange","objectId":7,"propertyName":"subject","propertyValue":"B","attemptNumber":0})");
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(first, retried);
  EXPECT_NE(first, later);
}

TEST(HubSpotWebhookTest, TheRegistryKnowsWhichKindsTakeWebhooks) {
  EXPECT_TRUE(WebhookReceiverOfKind("hubspot") != nullptr);
  EXPECT_TRUE(WebhookReceiverOfKind("totango") == nullptr);
  EXPECT_TRUE(WebhookReceiverOfKind("nonesuch") == nullptr);
}

}  // namespace
}  // namespace crmbridge::hubspot
