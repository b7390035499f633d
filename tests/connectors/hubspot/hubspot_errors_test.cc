// HubSpot error bodies -> Status: the HTTP status decides the code, the body the words.
#include "connectors/hubspot/hubspot_errors.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <vector>

#include "src/core/fake_transport.h"
#include "src/core/retrying_transport.h"
#include "tests/core/test_clock.h"

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

TEST(HubSpotErrorsTest, LockedAndMigrationInProgressAreTransient) {
  // HTTP leaves 423 and 477 to the vendor: they are HubSpot's, read by ClassifyHubSpotHttp.
  for (int http : {423, 477}) {
    SCOPED_TRACE(http);
    for (const char* body : {"{}", "<html>busy</html>"}) {
      Status s = StatusFromHubSpot(Error(http, body), "x");
      EXPECT_EQ(s.code(), StatusCode::kUnavailable);
      EXPECT_TRUE(s.IsTransient());
      EXPECT_FALSE(s.IsSystemFatal());
      EXPECT_FALSE(s.IsRecordLevel());
      EXPECT_EQ(s.http_status(), http);
      EXPECT_EQ(s.system(), "hubspot");
    }
  }
}

TEST(HubSpotErrorsTest, TheClassifierReadsOnlyWhatHttpDoesNotSay) {
  auto locked = ClassifyHubSpotHttp(Error(423, ""));
  ASSERT_TRUE(locked.has_value());
  EXPECT_EQ(locked->code, StatusCode::kUnavailable);
  EXPECT_EQ(locked->min_wait, std::chrono::milliseconds(2000));
  auto daily = ClassifyHubSpotHttp(Error(429, R"({"policyName":"DAILY"})"));
  ASSERT_TRUE(daily.has_value());
  EXPECT_EQ(daily->code, StatusCode::kFailedPrecondition);
  auto burst = ClassifyHubSpotHttp(
      Error(429, "", {{"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}}));
  ASSERT_TRUE(burst.has_value());
  EXPECT_EQ(burst->code, StatusCode::kResourceExhausted);
  EXPECT_EQ(burst->wait, std::chrono::milliseconds(10000));
  for (int http : {200, 400, 404, 409, 500, 503})
    EXPECT_FALSE(ClassifyHubSpotHttp(Error(http, "{}")).has_value()) << http;
}

// The transport stack's retries, through the classifier bootstrap gives a HubSpot system.
class HubSpotRetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = spdlog::default_logger()->level();
    spdlog::set_level(spdlog::level::err);
  }
  void TearDown() override { spdlog::set_level(saved_); }

  std::unique_ptr<RetryingTransport> Make() {
    auto fake = std::make_unique<FakeTransport>();
    fake_ = fake.get();
    RetryPolicy policy;
    policy.classify = ClassifyHubSpotHttp;
    return std::make_unique<RetryingTransport>(std::move(fake), policy, &clock_, /*seed=*/42);
  }
  static Request Get(bool idempotent = true) {
    Request r;
    r.method = idempotent ? "GET" : "POST";
    r.url = "https://api.example.test/crm/v3/objects/contacts";
    r.idempotent = idempotent;
    r.system = "hubspot";
    return r;
  }

  crmbridge::testing::RecordingClock clock_;
  FakeTransport* fake_ = nullptr;

 private:
  spdlog::level::level_enum saved_ = spdlog::level::info;
};

TEST_F(HubSpotRetryTest, IntervalHeaderWhenNoRetryAfter) {
  auto t = Make();
  fake_
      ->Respond(429, R"({"policyName":"TEN_SECONDLY_ROLLING"})",
                {{"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}})
      .Respond(200);
  ASSERT_TRUE(t->Send(Get()).ok());
  EXPECT_EQ(clock_.sleeps(), std::vector<int64_t>{10000});
}

TEST_F(HubSpotRetryTest, DailyLimitIsNotRetried) {
  auto t = Make();
  fake_->Respond(429, R"({"status":"error","policyName":"DAILY"})",
                 {{"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}});
  Result<Response> r = t->Send(Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(fake_->request_count(), 1u);
}

TEST_F(HubSpotRetryTest, LockedAndMigrationRetriedOnlyWhenIdempotent) {
  for (int code : {423, 477}) {
    SCOPED_TRACE(code);
    auto t = Make();
    fake_->Respond(code).Respond(200);
    Result<Response> r = t->Send(Get(/*idempotent=*/true));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(fake_->request_count(), 2u);

    auto w = Make();
    fake_->Respond(code).Respond(200);
    Result<Response> wr = w->Send(Get(/*idempotent=*/false));
    ASSERT_TRUE(wr.ok());
    EXPECT_EQ(wr->status, code) << "a write that may have been applied must not be resent";
    EXPECT_EQ(fake_->request_count(), 1u);
  }
}

TEST_F(HubSpotRetryTest, LockedWaitsAtLeastTwoSeconds) {
  auto t = Make();
  fake_->Respond(423).Respond(200);
  ASSERT_TRUE(t->Send(Get()).ok());
  ASSERT_EQ(clock_.sleeps().size(), 1u);
  EXPECT_GE(clock_.sleeps()[0], 2000);
}

}  // namespace
}  // namespace crmbridge::hubspot
