// DecideWrite: every outcome of an attempt, in one table.
#include "src/engine/write_outcome.h"

#include <gtest/gtest.h>

namespace crmbridge {
namespace {

WriteAttempt Attempt(Status status, int attempts = 0, int max = 3) {
  WriteAttempt a;
  a.status = std::move(status);
  a.attempts = attempts;
  a.max_attempts = max;
  return a;
}

TEST(DecideWriteTest, DeliveredIsDone) {
  EXPECT_EQ(DecideWrite(Attempt(Status::Ok())), WriteDecision::kDone);
}

TEST(DecideWriteTest, NoAnswerAtAllOrBadCredentialsStopTheSystemNotTheRecord) {
  EXPECT_EQ(DecideWrite(Attempt(Status(StatusCode::kUnavailable, "connection refused"))),
            WriteDecision::kStopSystem);
  EXPECT_EQ(DecideWrite(Attempt(StatusFromHttp(401, "token expired"))), WriteDecision::kStopSystem);
  EXPECT_EQ(DecideWrite(Attempt(Status(StatusCode::kUnavailable, "refused"), 9, 3)),
            WriteDecision::kStopSystem)
      << "never dead-lettered for the system's fault, whatever its attempts";
}

TEST(DecideWriteTest, TransientFailuresAndConflictsAreRetriedWhileAttemptsAreLeft) {
  for (int http : {429, 500, 502, 503, 504, 409, 412}) {
    EXPECT_EQ(DecideWrite(Attempt(StatusFromHttp(http, "x"), 1, 3)), WriteDecision::kRetryLater)
        << http;
    EXPECT_EQ(DecideWrite(Attempt(StatusFromHttp(http, "x"), 2, 3)), WriteDecision::kDeadLetter)
        << http << ": the last attempt";
  }
  EXPECT_EQ(DecideWrite(Attempt(Status(StatusCode::kDeadlineExceeded, "timed out"))),
            WriteDecision::kRetryLater);
}

TEST(DecideWriteTest, ARecordLevelRefusalIsDeadLetteredAtOnce) {
  for (int http : {400, 403, 404, 422})
    EXPECT_EQ(DecideWrite(Attempt(StatusFromHttp(http, "x"))), WriteDecision::kDeadLetter) << http;
}

TEST(DecideWriteTest, AWriteWaitingForAReferencedRecordOnItsWayWaitsOnceWithoutAnAttempt) {
  WriteAttempt a = Attempt(Status::Ok(), 2, 3);
  a.wait = RefWait{true, true, "waits for company c1"};
  EXPECT_EQ(DecideWrite(a), WriteDecision::kWait);
  a.first_wait = false;
  EXPECT_EQ(DecideWrite(a), WriteDecision::kDeadLetter) << "not twice in a run: out of attempts";
  a.attempts = 0;
  EXPECT_EQ(DecideWrite(a), WriteDecision::kRetryLater);
  // A referenced record with no write queued anywhere: waiting spends attempts.
  a.wait.on_its_way = false;
  a.first_wait = true;
  EXPECT_EQ(DecideWrite(a), WriteDecision::kRetryLater);
}

}  // namespace
}  // namespace crmbridge
