// RetryingTransport: what is retried, how long it waits, and what comes back in the end.
#include "src/core/retrying_transport.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/core/fake_transport.h"
#include "src/core/stop.h"
#include "tests/core/test_clock.h"

namespace crmbridge {
namespace {

using std::chrono::milliseconds;
using testing::RecordingClock;

Request Get(bool idempotent = true) {
  Request r;
  r.method = "GET";
  r.url = "https://api.example.test/crm/v3/objects/contacts?limit=100";
  r.idempotent = idempotent;
  r.system = "crm";
  return r;
}

Request Post(bool idempotent) {
  Request r = Get(idempotent);
  r.method = "POST";
  r.url = "https://api.example.test/crm/v3/objects/contacts/batch/create";
  return r;
}

// Retries log at warn; these tests provoke hundreds of them on purpose.
class QuietLogs : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = spdlog::default_logger()->level();
    spdlog::set_level(spdlog::level::err);
  }
  void TearDown() override { spdlog::set_level(saved_); }

 private:
  spdlog::level::level_enum saved_ = spdlog::level::info;
};

class RetryingTransportTest : public QuietLogs {
 protected:
  // Builds the transport over a fresh FakeTransport kept in `fake_`.
  std::unique_ptr<RetryingTransport> Make(RetryPolicy policy = RetryPolicy(), uint64_t seed = 42) {
    auto fake = std::make_unique<FakeTransport>();
    fake_ = fake.get();
    return std::make_unique<RetryingTransport>(std::move(fake), policy, &clock_, seed);
  }

  RecordingClock clock_;
  FakeTransport* fake_ = nullptr;
};

TEST_F(RetryingTransportTest, HonoursRetryAfterSecondsExactly) {
  auto t = Make();
  fake_->Respond(429, "", {{"Retry-After", "7"}}).Respond(200, "ok");
  Result<Response> r = t->Send(Post(/*idempotent=*/false));  // 429 retried even for writes
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(fake_->request_count(), 2u);
  // max(jitter <= 500 ms, 7000 ms) is exactly the server's delay.
  EXPECT_EQ(clock_.sleeps(), std::vector<int64_t>{7000});
}

TEST_F(RetryingTransportTest, StoppingTheLastOutcomeStandsWithoutARetry) {
  auto t = Make();
  fake_->Respond(429, "", {{"Retry-After", "7"}}).Respond(200, "ok");
  RequestStop();
  Result<Response> r = t->Send(Post(/*idempotent=*/false));
  ClearStopRequest();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(fake_->request_count(), 1u);
}

TEST_F(RetryingTransportTest, TheWaitsOfOneRequestStayWithinItsBound) {
  // Five 429s asking 299 s each would hold one call for 25 minutes, past a run's lease; bounded
  // at 10 minutes, the third wait is not taken and the last 429 stands.
  RetryPolicy policy;
  policy.max_total_wait = std::chrono::minutes(10);
  auto t = Make(policy);
  for (int i = 0; i < 5; ++i) fake_->Respond(429, "", {{"Retry-After", "299"}});
  fake_->Respond(200, "ok");
  Result<Response> r = t->Send(Post(/*idempotent=*/true));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(fake_->request_count(), 3u);
  EXPECT_EQ(clock_.sleeps(), (std::vector<int64_t>{299000, 299000}));
}

TEST_F(RetryingTransportTest, HonoursRetryAfterHttpDateAgainstInjectedClock) {
  auto t = Make();
  // The FakeClock starts at 2026-01-01T00:00:00Z.
  fake_->Respond(503, "", {{"Retry-After", "Thu, 01 Jan 2026 00:00:12 GMT"}}).Respond(200);
  Result<Response> r = t->Send(Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(clock_.sleeps(), std::vector<int64_t>{12000});
}

TEST_F(RetryingTransportTest, RateLimitResetSecondsWhenNoRetryAfter) {
  auto t = Make();
  fake_->Respond(429, "", {{"RateLimit-Reset", "4"}}).Respond(200);
  ASSERT_TRUE(t->Send(Get()).ok());
  EXPECT_EQ(clock_.sleeps(), std::vector<int64_t>{4000});
}

// A system's API that answers 460 for "busy, at least 2.5 s", and 429 with "QUOTA" in the body
// for a quota that does not lift today, and names its own wait in X-Vendor-Wait-Ms.
std::optional<HttpReading> VendorReading(const Response& response) {
  HttpReading reading;
  if (response.status == 460) {
    reading.code = StatusCode::kUnavailable;
    reading.min_wait = milliseconds(2500);
    return reading;
  }
  if (response.status == 429) {
    reading.code = response.body == "QUOTA" ? StatusCode::kFailedPrecondition
                                            : StatusCode::kResourceExhausted;
    reading.wait = HeaderDuration(response, "X-Vendor-Wait-Ms", milliseconds(1));
    return reading;
  }
  return std::nullopt;
}

TEST_F(RetryingTransportTest, AClassifierMakesAVendorStatusTransientWithALeastWait) {
  auto plain = Make();
  fake_->Respond(460).Respond(200);
  EXPECT_EQ(plain->Send(Get())->status, 460) << "without the classifier, another 4xx";
  EXPECT_EQ(fake_->request_count(), 1u);

  RetryPolicy policy;
  policy.classify = VendorReading;
  auto t = Make(policy);
  fake_->Respond(460).Respond(460, "", {{"Retry-After", "5"}}).Respond(200);
  ASSERT_EQ(t->Send(Get())->status, 200);
  EXPECT_EQ(clock_.sleeps(), (std::vector<int64_t>{2500, 5000}))
      << "never less than the least wait; more when the server asks for more";

  auto w = Make(policy);
  fake_->Respond(460).Respond(200);
  EXPECT_EQ(w->Send(Post(/*idempotent=*/false))->status, 460) << "transient, so writes are not resent";
  EXPECT_EQ(fake_->request_count(), 1u);
}

TEST_F(RetryingTransportTest, AClassifierNamesTheWaitOrStopsTheRetries) {
  RetryPolicy policy;
  policy.classify = VendorReading;
  auto t = Make(policy);
  fake_->Respond(429, "", {{"X-Vendor-Wait-Ms", "10000"}, {"RateLimit-Reset", "1"}})
      .Respond(429, "", {{"X-Vendor-Wait-Ms", "10000"}, {"Retry-After", "3"}})
      .Respond(200);
  ASSERT_EQ(t->Send(Get())->status, 200);
  EXPECT_EQ(clock_.sleeps(), (std::vector<int64_t>{10000, 3000}))
      << "the system's own wait before RateLimit-Reset, Retry-After before both";

  auto quota = Make(policy);
  fake_->Respond(429, "QUOTA").Respond(200);
  EXPECT_EQ(quota->Send(Get())->status, 429);
  EXPECT_EQ(fake_->request_count(), 1u) << "a limit that does not lift is not retried";
}

TEST_F(RetryingTransportTest, RetryAfterBeyondLimitIsLeftToTheCaller) {
  RetryPolicy policy;
  policy.max_retry_after = milliseconds(60000);
  auto t = Make(policy);
  fake_->Respond(429, "", {{"Retry-After", "3600"}});
  Result<Response> r = t->Send(Get());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(fake_->request_count(), 1u);
  EXPECT_EQ(clock_.slept_ms(), 0);
}

TEST_F(RetryingTransportTest, PermanentErrorsAreNeverRetried) {
  for (int code : {400, 401, 403, 404, 409, 412, 422}) {
    SCOPED_TRACE(code);
    auto t = Make();
    fake_->Respond(code, "{}");
    Result<Response> r = t->Send(Get());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, code);
    EXPECT_EQ(fake_->request_count(), 1u);
  }
  EXPECT_EQ(clock_.slept_ms(), 0);
}

TEST_F(RetryingTransportTest, FatalTransportErrorsAreNeverRetried) {
  for (StatusCode code : {StatusCode::kFailedPrecondition, StatusCode::kUnauthenticated}) {
    auto t = Make();
    fake_->Fail(Status(code, "bad certificate"));
    Result<Response> r = t->Send(Get());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code);
    EXPECT_EQ(fake_->request_count(), 1u);
  }
}

TEST_F(RetryingTransportTest, ServerErrorsRetriedOnlyWhenIdempotent) {
  for (int code : {500, 502, 503, 504, 408}) {
    SCOPED_TRACE(code);
    auto t = Make();
    fake_->Respond(code).Respond(200);
    Result<Response> r = t->Send(Get(/*idempotent=*/true));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(fake_->request_count(), 2u);

    auto w = Make();
    fake_->Respond(code).Respond(200);
    Result<Response> wr = w->Send(Post(/*idempotent=*/false));
    ASSERT_TRUE(wr.ok());
    EXPECT_EQ(wr->status, code) << "a write that may have been applied must not be resent";
    EXPECT_EQ(fake_->request_count(), 1u);
  }
}

TEST_F(RetryingTransportTest, TimeoutsAndResetsRetriedOnlyWhenIdempotent) {
  for (StatusCode code : {StatusCode::kDeadlineExceeded, StatusCode::kUnavailable}) {
    SCOPED_TRACE(StatusCodeName(code));
    auto t = Make();
    fake_->Fail(Status(code, "net")).Fail(Status(code, "net")).Respond(200);
    Result<Response> r = t->Send(Get(true));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(fake_->request_count(), 3u);

    auto w = Make();
    fake_->Fail(Status(code, "net")).Respond(200);
    Result<Response> wr = w->Send(Post(false));
    ASSERT_FALSE(wr.ok());
    EXPECT_EQ(wr.status().code(), code);
    EXPECT_EQ(fake_->request_count(), 1u);
  }
}

TEST_F(RetryingTransportTest, LastOutcomeReturnedUnchangedAfterMaxAttempts) {
  RetryPolicy policy;
  policy.max_attempts = 4;
  auto t = Make(policy);
  for (int i = 0; i < 4; ++i) fake_->Respond(429, "slow down", {{"Retry-After", "1"}});
  Result<Response> r = t->Send(Get());
  ASSERT_TRUE(r.ok()) << "a final 429 is a Response for the caller to classify";
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->body, "slow down");
  EXPECT_EQ(fake_->request_count(), 4u);
  EXPECT_EQ(clock_.sleeps().size(), 3u);  // no sleep after the last attempt

  auto u = Make(policy);
  for (int i = 0; i < 4; ++i)
    fake_->Fail(Status(StatusCode::kUnavailable, "reset #" + std::to_string(i)));
  Result<Response> ur = u->Send(Get());
  ASSERT_FALSE(ur.ok());
  EXPECT_EQ(ur.status().message(), "reset #3");
}

TEST_F(RetryingTransportTest, SingleAttemptPolicyNeverRetries) {
  RetryPolicy policy;
  policy.max_attempts = 1;
  auto t = Make(policy);
  fake_->Respond(503).Respond(200);
  EXPECT_EQ(t->Send(Get())->status, 503);
  EXPECT_EQ(fake_->request_count(), 1u);
}

using RetryBackoffTest = QuietLogs;

TEST_F(RetryBackoffTest, CeilingGrowsExponentiallyAndIsCapped) {
  RetryPolicy policy;  // 500 ms initial, 60 s cap
  const int64_t expected[] = {500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(RetryingTransport::BackoffCeiling(policy, i).count(), expected[i]) << i;
  }
  EXPECT_EQ(RetryingTransport::BackoffCeiling(policy, 1000).count(), 60000);  // no overflow
}

TEST_F(RetryBackoffTest, FullJitterStaysWithinBoundsAndGrows) {
  RetryPolicy policy;
  policy.max_attempts = 10;
  policy.initial_backoff = milliseconds(100);
  policy.max_backoff = milliseconds(3000);
  constexpr int kRuns = 200;
  std::vector<int64_t> max_seen(9, 0);
  std::vector<int64_t> sum(9, 0);
  for (int run = 0; run < kRuns; ++run) {
    RecordingClock clock;
    auto fake = std::make_unique<FakeTransport>();
    FakeTransport* script = fake.get();
    for (int i = 0; i < 10; ++i) script->Respond(503);
    RetryingTransport t(std::move(fake), policy, &clock, /*seed=*/run);
    EXPECT_EQ(t.Send(Get())->status, 503);
    std::vector<int64_t> sleeps = clock.sleeps();
    ASSERT_EQ(sleeps.size(), 9u);
    for (int i = 0; i < 9; ++i) {
      int64_t ceiling = RetryingTransport::BackoffCeiling(policy, i).count();
      EXPECT_GE(sleeps[i], 0);
      EXPECT_LE(sleeps[i], ceiling) << "retry " << i;
      max_seen[i] = std::max(max_seen[i], sleeps[i]);
      sum[i] += sleeps[i];
    }
  }
  // Jitter actually spreads: with 200 runs the largest draw comes near each ceiling, and the mean
  // (about half the ceiling) grows until the cap.
  for (int i = 0; i < 9; ++i) {
    int64_t ceiling = RetryingTransport::BackoffCeiling(policy, i).count();
    EXPECT_GE(max_seen[i], ceiling * 8 / 10) << "retry " << i;
  }
  for (int i = 1; i < 6; ++i) EXPECT_GT(sum[i], sum[i - 1]) << "retry " << i;
}

TEST_F(RetryBackoffTest, SameSeedSameDelays) {
  auto run = [](uint64_t seed) {
    RecordingClock clock;
    auto fake = std::make_unique<FakeTransport>();
    for (int i = 0; i < 6; ++i) fake->Respond(502);
    RetryingTransport t(std::move(fake), RetryPolicy(), &clock, seed);
    (void)t.Send(Get());
    return clock.sleeps();
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

}  // namespace
}  // namespace crmbridge
