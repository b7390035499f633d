// Dataverse and token-endpoint error bodies -> Status.
#include "connectors/dynamics365/dynamics365_errors.h"

#include <gtest/gtest.h>

#include "src/core/utf8.h"

namespace crmbridge::dynamics365 {
namespace {

Response Error(int status, std::string body, Headers headers = {}) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

TEST(Dynamics365ErrorsTest, ParsesTheErrorObject) {
  auto e = ParseDataverseError(
      R"({"error":{"code":"0x80040217","message":"account With Id = x Does Not Exist"}})");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "0x80040217");
  EXPECT_EQ(e->message, "account With Id = x Does Not Exist");
  EXPECT_FALSE(ParseDataverseError(R"({"error":"invalid_client"})").has_value());
  EXPECT_FALSE(ParseDataverseError("Service Unavailable").has_value());
}

TEST(Dynamics365ErrorsTest, TheHttpStatusDecidesTheCode) {
  Status missing = StatusFromDataverse(
      Error(404, R"({"error":{"code":"","message":"account With Id = x Does Not Exist"}})"),
      "PATCH accounts x");
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.message(), "PATCH accounts x: account With Id = x Does Not Exist");
  EXPECT_EQ(missing.system(), "dynamics365");

  Status invalid = StatusFromDataverse(
      Error(400, R"({"error":{"code":"0x80044331","message":"A validation error occurred."}})"),
      "upsert");
  EXPECT_EQ(invalid.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(invalid.message(), "upsert: 0x80044331: A validation error occurred.");

  EXPECT_EQ(StatusFromDataverse(Error(412, R"({"error":{"code":"","message":"x"}})"), "w").code(),
            StatusCode::kAborted);
  EXPECT_EQ(StatusFromDataverse(Error(403, R"({"error":{"code":"0x80040220","message":"x"}})"), "w")
                .code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(StatusFromDataverse(Error(204, ""), "w").ok());
}

TEST(Dynamics365ErrorsTest, ThrottlingKeepsRetryAfter) {
  Status s = StatusFromDataverse(
      Error(
          429,
          R"({"error":{"code":"0x80072322","message":"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}})",
          {{"Retry-After", "7"}}),
      "reading accounts");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  ASSERT_TRUE(s.retry_after().has_value());
  EXPECT_EQ(*s.retry_after(), std::chrono::seconds(7));
  EXPECT_NE(s.message().find("0x80072322"), std::string::npos);
}

TEST(Dynamics365ErrorsTest, ABodyThatIsNotJsonIsQuoted) {
  Status s = StatusFromDataverse(Error(503, "Service Unavailable"), "reading accounts");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("Service Unavailable"), std::string::npos);
}

TEST(Dynamics365ErrorsTest, TokenRefusalIsUnauthenticatedWithTheAadstsDescription) {
  Status s = StatusFromTokenEndpoint(Error(
      400,
      R"({"error":"invalid_scope","error_description":"AADSTS70011: The provided value for scope is not valid.",
               "error_codes":[70011],"correlation_id":"corr-1"})"));
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(s.IsSystemFatal());
  EXPECT_NE(s.message().find("invalid_scope: AADSTS70011"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("correlation_id=corr-1"), std::string::npos);
  EXPECT_EQ(s.http_status(), 400);
}

// A long description is cut between characters, never inside one: the message stays UTF-8 for the
// JSON logs and dead letters it ends up in.
TEST(Dynamics365ErrorsTest, ALongTokenDescriptionIsCutBetweenCharacters) {
  const std::string description = "AADSTS7000215: " + std::string(284, 'a') + "\u00e5\u00e4\u00f6";
  Status s = StatusFromTokenEndpoint(
      Error(401, R"({"error":"invalid_client","error_description":")" + description + R"("})"));
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(IsValidUtf8(s.message())) << s.message();
  EXPECT_NE(s.message().find("AADSTS7000215: aaa"), std::string::npos);
  EXPECT_EQ(s.message().find("\xc3\xa5"), std::string::npos) << "past the limit";
}

TEST(Dynamics365ErrorsTest, BusyTokenEndpointIsTransient) {
  Status s = StatusFromTokenEndpoint(Error(503, "", {{"Retry-After", "3"}}));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  ASSERT_TRUE(s.retry_after().has_value());
  EXPECT_EQ(*s.retry_after(), std::chrono::seconds(3));
}

}  // namespace
}  // namespace crmbridge::dynamics365
