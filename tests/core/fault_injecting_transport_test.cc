// FaultInjectingTransport rules and FakeTransport scripting.
#include "src/core/fault_injecting_transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "src/core/fake_transport.h"

namespace crmbridge {
namespace {

using std::chrono::milliseconds;

Request Make(const std::string& method, const std::string& path) {
  Request r;
  r.method = method;
  r.url = "http://127.0.0.1:1" + path;
  return r;
}

class FaultInjectingTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fake = std::make_unique<FakeTransport>();
    fake_ = fake.get();
    fake_->SetFallback([](const Request&) -> Result<Response> {
      Response r;
      r.status = 200;
      r.body = "inner";
      return r;
    });
    faults_ = std::make_unique<FaultInjectingTransport>(std::move(fake), &clock_);
  }

  FakeClock clock_;
  FakeTransport* fake_ = nullptr;
  std::unique_ptr<FaultInjectingTransport> faults_;
};

TEST_F(FaultInjectingTransportTest, NoRulesForwardsUntouched) {
  Result<Response> r = faults_->Send(Make("GET", "/a"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "inner");
  EXPECT_EQ(faults_->injected(), 0);
  EXPECT_EQ(faults_->forwarded(), 1);
}

TEST_F(FaultInjectingTransportTest, StatusFaultWithHeadersFiresCountTimes) {
  faults_->Add(Fault::HttpStatus(429, {{"Retry-After", "7"}}, "slow").Times(2));
  for (int i = 0; i < 2; ++i) {
    Result<Response> r = faults_->Send(Make("GET", "/a"));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 429);
    EXPECT_EQ(r->Header("retry-after"), "7");
    EXPECT_EQ(r->body, "slow");
  }
  EXPECT_EQ(faults_->Send(Make("GET", "/a"))->status, 200);
  EXPECT_EQ(fake_->request_count(), 1u);
  EXPECT_EQ(faults_->injected(), 2);
}

TEST_F(FaultInjectingTransportTest, MatchesMethodAndUrlAndSkips) {
  faults_->Add(Fault::HttpStatus(502).Matching("POST", "/batch/").After(1).Times(Fault::kForever));
  EXPECT_EQ(faults_->Send(Make("GET", "/batch/create"))->status, 200);   // wrong method
  EXPECT_EQ(faults_->Send(Make("POST", "/objects"))->status, 200);       // wrong URL
  EXPECT_EQ(faults_->Send(Make("POST", "/batch/create"))->status, 200);  // skipped once
  for (int i = 0; i < 5; ++i) EXPECT_EQ(faults_->Send(Make("POST", "/batch/create"))->status, 502);
  EXPECT_EQ(faults_->injected(), 5);
}

TEST_F(FaultInjectingTransportTest, NetworkFaults) {
  faults_->Add(Fault::Reset());
  faults_->Add(Fault::TimeoutBeforeSend());
  faults_->Add(Fault::AppliedThenTimeout());

  Result<Response> reset = faults_->Send(Make("POST", "/a"));
  EXPECT_EQ(reset.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(fake_->request_count(), 0u);

  Result<Response> before = faults_->Send(Make("POST", "/a"));
  EXPECT_EQ(before.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(fake_->request_count(), 0u) << "not applied";

  Result<Response> after = faults_->Send(Make("POST", "/a"));
  EXPECT_EQ(after.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(fake_->request_count(), 1u) << "applied, but the caller cannot know";

  EXPECT_TRUE(faults_->Send(Make("POST", "/a")).ok());
  EXPECT_EQ(faults_->injected(), 3);
  EXPECT_EQ(faults_->forwarded(), 2);
}

TEST_F(FaultInjectingTransportTest, DelayWaitsOnTheClockThenForwards) {
  faults_->Add(Fault::Delay(milliseconds(1500)));
  Result<Response> r = faults_->Send(Make("GET", "/a"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "inner");
  EXPECT_EQ(clock_.slept_ms(), 1500);
}

TEST_F(FaultInjectingTransportTest, ClearDropsRules) {
  faults_->Add(Fault::Reset().Times(Fault::kForever));
  EXPECT_FALSE(faults_->Send(Make("GET", "/a")).ok());
  faults_->Clear();
  EXPECT_TRUE(faults_->Send(Make("GET", "/a")).ok());
}

TEST_F(FaultInjectingTransportTest, CountsExactlyUnderConcurrency) {
  faults_->Add(Fault::HttpStatus(503).Times(100));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (faults_->Send(Make("GET", "/a"))->status == 503) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 100);
  EXPECT_EQ(faults_->injected(), 100);
  EXPECT_EQ(faults_->forwarded(), 100);
}

TEST(FakeTransportTest, ScriptedInOrderAndRecordsRequests) {
  FakeTransport fake;
  fake.Respond(200, "one").Fail(Status(StatusCode::kUnavailable, "two")).Respond(404);
  EXPECT_EQ(fake.pending(), 3u);
  EXPECT_EQ(fake.Send(Make("GET", "/1"))->body, "one");
  EXPECT_EQ(fake.Send(Make("POST", "/2")).status().message(), "two");
  EXPECT_EQ(fake.Send(Make("GET", "/3"))->status, 404);
  Result<Response> extra = fake.Send(Make("DELETE", "/4"));
  ASSERT_FALSE(extra.ok());
  EXPECT_EQ(extra.status().code(), StatusCode::kInternal);
  EXPECT_NE(extra.status().message().find("DELETE http://127.0.0.1:1/4"), std::string::npos);
  std::vector<Request> seen = fake.requests();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[1].method, "POST");
  EXPECT_EQ(seen[1].url, "http://127.0.0.1:1/2");
}

}  // namespace
}  // namespace crmbridge
