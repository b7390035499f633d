// TokenBucket pacing, the rolling-window guarantee and its margin; RateLimitedTransport routing and
// pausing.
#include "src/core/rate_limiter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "src/core/fake_transport.h"
#include "src/core/stop.h"
#include "tests/core/test_clock.h"

namespace crmbridge {
namespace {

using std::chrono::milliseconds;
using testing::RecordingClock;

// The largest number of timestamps (ms) that fall in any half-open window [t, t + period).
int MaxInAnyWindow(std::vector<int64_t> times, int64_t period) {
  std::sort(times.begin(), times.end());
  int best = 0;
  size_t lo = 0;
  for (size_t hi = 0; hi < times.size(); ++hi) {
    while (times[hi] - times[lo] >= period) ++lo;
    best = std::max(best, static_cast<int>(hi - lo + 1));
  }
  return best;
}

TEST(TokenBucketTest, PacesThirtyAcquisitionsAtTenPerSecond) {
  FakeClock clock;
  TokenBucket bucket(10, milliseconds(1000), &clock);
  int64_t start = clock.NowMillis();
  std::vector<int64_t> times;
  for (int i = 0; i < 30; ++i) {
    bucket.Acquire();
    times.push_back(clock.NowMillis());
  }
  // (N - C) * (P + margin) / C = (30 - 10) * (1000 + 20) / 10 = 2040 ms.
  EXPECT_EQ(clock.NowMillis() - start, 2040);
  EXPECT_EQ(clock.slept_ms(), 2040);
  EXPECT_LE(MaxInAnyWindow(times, 1000), 10);
}

TEST(TokenBucketTest, DefaultMarginIsTwoPercentAndAtLeastFiveMs) {
  FakeClock clock;
  EXPECT_EQ(TokenBucket(5, milliseconds(1000), &clock).margin(), milliseconds(20));
  EXPECT_EQ(TokenBucket(100, milliseconds(10000), &clock).margin(), milliseconds(200));
  EXPECT_EQ(TokenBucket(1, milliseconds(100), &clock).margin(), milliseconds(5));
  EXPECT_EQ(TokenBucket(1, milliseconds(100), &clock, milliseconds(0)).margin(), milliseconds(0));
}

TEST(TokenBucketTest, WithoutAMarginPacingIsExactlyOnePeriod) {
  FakeClock clock;
  TokenBucket bucket(10, milliseconds(1000), &clock, milliseconds(0));
  for (int i = 0; i < 30; ++i) bucket.Acquire();
  EXPECT_EQ(clock.slept_ms(), 2000);
}

// The server counts a request when it arrives, some time after the client took its token. Sends
// delayed by up to the margin, in the worst order (the first of a window late, the one a period
// later on time), still never put more than the limit in one of the server's windows; without the
// margin the same delays do.
std::vector<int64_t> ArrivalsOfPacedSends(TokenBucket* bucket, FakeClock* clock, int sends,
                                          const std::vector<int64_t>& delays) {
  std::vector<int64_t> arrivals;
  for (int i = 0; i < sends; ++i) {
    bucket->Acquire();
    arrivals.push_back(clock->NowMillis() + delays[i % delays.size()]);
  }
  return arrivals;
}

TEST(TokenBucketTest, MarginAbsorbsArrivalJitterAtTheServer) {
  // Five per second, as HubSpot's search: send i arrives delays[i % 7] ms after its slot, the
  // largest delay just under the 20 ms margin; a cycle of 7 against a capacity of 5 puts late
  // sends opposite punctual ones.
  const std::vector<int64_t> delays = {19, 0, 7, 19, 3, 0, 12};
  {
    FakeClock clock;
    TokenBucket bucket(5, milliseconds(1000), &clock);
    ASSERT_LT(delays[0], bucket.margin().count());
    auto arrivals = ArrivalsOfPacedSends(&bucket, &clock, 200, delays);
    EXPECT_LE(MaxInAnyWindow(arrivals, 1000), 5);
  }
  {
    FakeClock clock;
    TokenBucket bucket(5, milliseconds(1000), &clock, milliseconds(0));
    auto arrivals = ArrivalsOfPacedSends(&bucket, &clock, 200, delays);
    EXPECT_GT(MaxInAnyWindow(arrivals, 1000), 5) << "the case the margin is for";
  }
}

TEST(TokenBucketTest, TryAcquireNeverBlocks) {
  FakeClock clock;
  TokenBucket bucket(2, milliseconds(1000), &clock);
  EXPECT_TRUE(bucket.TryAcquire());
  EXPECT_TRUE(bucket.TryAcquire());
  EXPECT_FALSE(bucket.TryAcquire());
  clock.Advance(milliseconds(1019));
  EXPECT_FALSE(bucket.TryAcquire());
  clock.Advance(milliseconds(1));
  // Both tokens were taken at the same instant, so both come back together.
  EXPECT_TRUE(bucket.TryAcquire());
  EXPECT_TRUE(bucket.TryAcquire());
  EXPECT_FALSE(bucket.TryAcquire());
  EXPECT_EQ(clock.slept_ms(), 0);
}

TEST(TokenBucketTest, PauseHoldsEveryone) {
  FakeClock clock;
  TokenBucket bucket(100, milliseconds(1000), &clock);
  bucket.PauseUntil(clock.Now() + milliseconds(4000));
  bucket.PauseUntil(clock.Now() + milliseconds(1000));  // never shortens a pause
  EXPECT_FALSE(bucket.TryAcquire());
  bucket.Acquire();
  EXPECT_EQ(clock.slept_ms(), 4000);
}

// A clock that never moves and records the sleeps asked of it: with time standing still, the slots
// concurrent callers reserve are fully determined, whatever the interleaving.
class StillClock : public Clock {
 public:
  TimePoint Now() override { return TimePoint(Duration(1767225600000LL)); }
  void SleepFor(Duration d) override {
    std::lock_guard<std::mutex> lock(mu_);
    sleeps_.push_back(d.count());
  }
  std::vector<int64_t> sleeps() {
    std::lock_guard<std::mutex> lock(mu_);
    return sleeps_;
  }

 private:
  std::mutex mu_;
  std::vector<int64_t> sleeps_;
};

TEST(TokenBucketTest, ConcurrentAcquirersReserveDistinctSlots) {
  StillClock clock;
  TokenBucket bucket(20, milliseconds(1000), &clock);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) bucket.Acquire();
    });
  }
  for (auto& th : threads) th.join();
  // 80 acquisitions at one instant: 20 now, then 20 in each of the next three windows (each a
  // period and the 20 ms margin after the one before).
  std::vector<int64_t> sleeps = clock.sleeps();
  std::sort(sleeps.begin(), sleeps.end());
  std::vector<int64_t> expected;
  for (int64_t wait : {1020, 2040, 3060}) expected.insert(expected.end(), 20, wait);
  EXPECT_EQ(sleeps, expected);
  EXPECT_FALSE(bucket.TryAcquire());
}

Request To(const std::string& path) {
  Request r;
  r.url = "https://api.hubapi.test" + path;
  return r;
}

TEST(RateLimitedTransportTest, RoutesSearchToItsOwnBucket) {
  FakeClock clock;
  auto general = std::make_shared<TokenBucket>(100, milliseconds(10000), &clock);
  auto search = std::make_shared<TokenBucket>(5, milliseconds(1000), &clock);
  auto fake = std::make_unique<FakeTransport>();
  FakeTransport* script = fake.get();
  script->SetFallback([](const Request&) -> Result<Response> {
    Response r;
    r.status = 200;
    return r;
  });
  RateLimitedTransport t(std::move(fake), general,
                         {RateLimitedTransport::PathContains("/search", search)}, &clock);

  // 15 searches at 5/s: (15 - 5) * (1000 + 20) / 5 = 2040 ms, and they do not use the general
  // budget.
  for (int i = 0; i < 15; ++i) ASSERT_TRUE(t.Send(To("/crm/v3/objects/contacts/search")).ok());
  EXPECT_EQ(clock.slept_ms(), 2040);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(t.Send(To("/crm/v3/objects/contacts")).ok());
  EXPECT_EQ(clock.slept_ms(), 2040) << "the general bucket still had all 100 tokens";
  ASSERT_TRUE(t.Send(To("/crm/v3/objects/contacts")).ok());
  EXPECT_GT(clock.slept_ms(), 2040);
  EXPECT_EQ(script->request_count(), 116u);
}

TEST(RateLimitedTransportTest, HostNeverMatchesARoute) {
  FakeClock clock;
  auto search = std::make_shared<TokenBucket>(1, milliseconds(1000), &clock);
  auto route = RateLimitedTransport::PathContains("search", search);
  Request r;
  r.url = "https://search.example.test/objects";
  EXPECT_FALSE(route.match(r));
  r.url = "https://api.example.test/objects/search";
  EXPECT_TRUE(route.match(r));
}

TEST(RateLimitedTransportTest, SharedBucketIsOneBudget) {
  FakeClock clock;
  auto bucket = std::make_shared<TokenBucket>(3, milliseconds(1000), &clock);
  auto make = [&] {
    auto fake = std::make_unique<FakeTransport>();
    fake->SetFallback([](const Request&) -> Result<Response> {
      Response r;
      r.status = 204;
      return r;
    });
    return std::make_unique<RateLimitedTransport>(
        std::move(fake), bucket, std::vector<RateLimitedTransport::Route>{}, &clock);
  };
  auto a = make();
  auto b = make();
  ASSERT_TRUE(a->Send(To("/x")).ok());
  ASSERT_TRUE(b->Send(To("/x")).ok());
  ASSERT_TRUE(a->Send(To("/x")).ok());
  EXPECT_EQ(clock.slept_ms(), 0);
  ASSERT_TRUE(b->Send(To("/x")).ok());
  EXPECT_EQ(clock.slept_ms(), 1020);
}

TEST(RateLimitedTransportTest, RetryAfterOn429PausesTheSharedBucket) {
  FakeClock clock;
  auto bucket = std::make_shared<TokenBucket>(100, milliseconds(1000), &clock);
  auto fake = std::make_unique<FakeTransport>();
  fake->Respond(429, "", {{"Retry-After", "30"}}).Respond(200);
  RateLimitedTransport t(std::move(fake), bucket, {}, &clock);
  EXPECT_EQ(t.Send(To("/x"))->status, 429);
  EXPECT_EQ(clock.slept_ms(), 0);
  EXPECT_FALSE(bucket->TryAcquire()) << "every user of the budget is held";
  EXPECT_EQ(t.Send(To("/x"))->status, 200);
  EXPECT_EQ(clock.slept_ms(), 30000);
}

TEST(RateLimitedTransportTest, A429WithoutRetryAfterPausesTheBucketForOnePeriod) {
  // HubSpot's search 429: no Retry-After, and the server still counts its last second.
  FakeClock clock;
  auto search = std::make_shared<TokenBucket>(5, milliseconds(1000), &clock);
  auto fake = std::make_unique<FakeTransport>();
  fake->Respond(429, R"({"status":"error","policyName":"SECONDLY"})").Respond(200).Respond(200);
  RateLimitedTransport t(std::move(fake), nullptr,
                         {RateLimitedTransport::PathContains("/search", search)}, &clock);
  EXPECT_EQ(t.Send(To("/crm/v3/objects/tickets/search"))->status, 429);
  EXPECT_EQ(clock.slept_ms(), 0);
  EXPECT_FALSE(search->TryAcquire()) << "the bucket still had 4 tokens, but is paused";
  clock.Advance(milliseconds(999));
  EXPECT_FALSE(search->TryAcquire());
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(search->TryAcquire()) << "one period after the 429";
  EXPECT_EQ(t.Send(To("/crm/v3/objects/tickets/search"))->status, 200);
  EXPECT_EQ(clock.slept_ms(), 0);
}

TEST(RateLimitedTransportTest, A429PausesOnlyTheBucketItDrewFrom) {
  FakeClock clock;
  auto general = std::make_shared<TokenBucket>(100, milliseconds(10000), &clock);
  auto search = std::make_shared<TokenBucket>(5, milliseconds(1000), &clock);
  auto fake = std::make_unique<FakeTransport>();
  fake->Respond(429).Respond(200).Respond(200);
  RateLimitedTransport t(std::move(fake), general,
                         {RateLimitedTransport::PathContains("/search", search)}, &clock);
  EXPECT_EQ(t.Send(To("/crm/v3/objects/tickets/search"))->status, 429);
  EXPECT_EQ(t.Send(To("/crm/v3/objects/tickets"))->status, 200);
  EXPECT_EQ(clock.slept_ms(), 0) << "the general budget is not paused by a search 429";
  EXPECT_EQ(t.Send(To("/crm/v3/objects/tickets/search"))->status, 200);
  EXPECT_EQ(clock.slept_ms(), 1000);
}

TEST(RateLimitedTransportTest, StoppingARequestThatWouldWaitForTheBudgetIsNotSent) {
  // SIGTERM while a budget of one request an hour is spent: the process is not held for the
  // hour, and the request is not sent over the budget either.
  FakeClock clock;
  auto bucket = std::make_shared<TokenBucket>(1, std::chrono::hours(1), &clock);
  auto fake = std::make_unique<FakeTransport>();
  fake->Respond(200).Respond(200);
  FakeTransport* script = fake.get();
  RateLimitedTransport t(std::move(fake), bucket, {}, &clock);
  ASSERT_EQ(t.Send(To("/x"))->status, 200);
  RequestStop();
  auto stopped = t.Send(To("/x"));
  ClearStopRequest();
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(stopped.status().message().find("not sent: crmbridge is stopping"), std::string::npos);
  EXPECT_EQ(clock.slept_ms(), 0);
  EXPECT_EQ(script->requests().size(), 1u);
}

TEST(RateLimitedTransportTest, StoppingARequestTheBudgetHasRoomForIsSent) {
  // What is in flight finishes: only a wait is cut short.
  FakeClock clock;
  auto bucket = std::make_shared<TokenBucket>(10, std::chrono::hours(1), &clock);
  auto fake = std::make_unique<FakeTransport>();
  fake->Respond(200);
  RateLimitedTransport t(std::move(fake), bucket, {}, &clock);
  RequestStop();
  auto sent = t.Send(To("/x"));
  ClearStopRequest();
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  EXPECT_EQ(sent->status, 200);
}

TEST(RateLimitedTransportTest, NullBucketMeansUnlimited) {
  FakeClock clock;
  auto fake = std::make_unique<FakeTransport>();
  for (int i = 0; i < 50; ++i) fake->Respond(200);
  RateLimitedTransport t(std::move(fake), nullptr, {}, &clock);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(t.Send(To("/x")).ok());
  EXPECT_EQ(clock.slept_ms(), 0);
}

}  // namespace
}  // namespace crmbridge
