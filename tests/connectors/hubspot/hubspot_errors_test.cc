// HubSpot error bodies -> Status: the HTTP status decides the code, the body the words.
#include "connectors/hubspot/hubspot_errors.h"

#include <gtest/gtest.h>

namespace crmbridge::hubspot {
namespace {

Response Error(int status, std::string body, Headers headers = {}) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

TEST(HubSpotErrorsTest, ParsesEveryOptionalField) {
  auto e = ParseHubSpotError(
      R"({"status":"error","message":"Property values were not valid","correlationId":"aeb5f871",
          "category":"VALIDATION_ERROR","subCategory":"x","errors":[{"message":"discount was not a valid number",
          "code":"INVALID_INTEGER"},{"code":"NO_MESSAGE"}]})");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->category, "VALIDATION_ERROR");
  EXPECT_EQ(e->sub_category, "x");
  EXPECT_EQ(e->message, "Property values were not valid");
  EXPECT_EQ(e->correlation_id, "aeb5f871");
  ASSERT_EQ(e->details.size(), 1u);
  EXPECT_EQ(e->details[0], "discount was not a valid number");
  EXPECT_FALSE(ParseHubSpotError("<html>Bad gateway</html>").has_value());
  auto sparse = ParseHubSpotError(R"({"message":7,"errors":"none"})");
  ASSERT_TRUE(sparse.has_value()) << "fields of the wrong type are skipped, not fatal";
  EXPECT_TRUE(sparse->message.empty());
}

TEST(HubSpotErrorsTest, ValidationErrorIsRecordLevelWithVendorWords) {
  Status s = StatusFromHubSpot(
      Error(400,
            R"({"status":"error","message":"Property values were not valid","correlationId":"c-123",
                     "category":"VALIDATION_ERROR","errors":[{"message":"discount was not a valid number"}]})"),
      "upsert tickets");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.http_status(), 400);
  EXPECT_EQ(s.system(), "hubspot");
  EXPECT_EQ(s.message(),
            "upsert tickets: VALIDATION_ERROR: Property values were not valid (discount was not a "
            "valid number) correlationId=c-123");
}

TEST(HubSpotErrorsTest, CodesFollowTheHttpStatus) {
  EXPECT_TRUE(StatusFromHubSpot(Error(200, ""), "x").ok());
  EXPECT_EQ(StatusFromHubSpot(Error(401, R"({"category":"INVALID_AUTHENTICATION"})"), "x").code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(StatusFromHubSpot(Error(403, R"({"category":"MISSING_SCOPES"})"), "x").code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromHubSpot(Error(404, R"({"category":"OBJECT_NOT_FOUND"})"), "x").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(StatusFromHubSpot(Error(409, R"({"category":"CONFLICT"})"), "x").code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusFromHubSpot(Error(423, "{}"), "x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromHubSpot(Error(502, "<html>Bad gateway</html>"), "x").code(),
            StatusCode::kUnavailable);
}

TEST(HubSpotErrorsTest, ABodyThatIsNotJsonIsQuoted) {
  Status s = StatusFromHubSpot(Error(502, "<html>Bad gateway</html>"), "searching tickets");
  EXPECT_NE(s.message().find("searching tickets"), std::string::npos);
  EXPECT_NE(s.message().find("Bad gateway"), std::string::npos);
}

TEST(HubSpotErrorsTest, BurstLimitIsTransientAndKeepsRetryAfter) {
  Status s = StatusFromHubSpot(
      Error(429,
            R"({"status":"error","message":"You have reached your ten_secondly_rolling limit.",
                "errorType":"RATE_LIMIT","correlationId":"c","policyName":"TEN_SECONDLY_ROLLING"})",
            {{"Retry-After", "2"}}),
      "search");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(s.IsTransient());
  ASSERT_TRUE(s.retry_after().has_value());
  EXPECT_EQ(*s.retry_after(), std::chrono::seconds(2));
  EXPECT_NE(s.message().find("RATE_LIMIT"), std::string::npos);
}

TEST(HubSpotErrorsTest, DailyLimitStopsTheSystem) {
  Status s = StatusFromHubSpot(
      Error(429, R"({"status":"error","message":"You have reached your daily limit.",
                     "errorType":"RATE_LIMIT","correlationId":"c","policyName":"DAILY"})"),
      "upsert tickets");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(s.IsSystemFatal());
  EXPECT_EQ(s.http_status(), 429);
  EXPECT_NE(s.message().find("daily"), std::string::npos);
}

}  // namespace
}  // namespace crmbridge::hubspot
