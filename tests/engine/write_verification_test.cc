// Write verification (write_verification.h): a write acknowledged without confirmation is checked
// against the next read, field by field, and given up after its attempts. Pure: no store.
#include "src/engine/write_verification.h"

#include <gtest/gtest.h>

namespace crmbridge {
namespace {

using nlohmann::json;

Snapshot Pending(json entries) {
  Snapshot snap;
  snap.entity = "onboarding";
  snap.canonical_id = "c1";
  snap.seen = {{"cs", {{"stage", "live"}, {"owner", "Eva"}, {"tier", "gold"}}}};
  snap.unverified = {{"cs", std::move(entries)}};
  return snap;
}

json Entry(const std::string& sent, const std::string& before, int attempts) {
  return json{{"sent", sent}, {"before", before}, {"attempts", attempts}};
}

TEST(WriteVerificationTest, EachFieldIsVerifiedLostOrChangedThereSince) {
  Snapshot snap = Pending({{"stage", Entry("live", "kickoff", 1)},
                           {"owner", Entry("Eva", "Anna", 1)},
                           {"tier", Entry("gold", "silver", 1)}});
  json read = {{"stage", "live"}, {"owner", "Anna"}, {"tier", "bronze"}};
  const Verification v = VerifyWrites(&snap, "cs", &read, 3);
  EXPECT_EQ(v.verified, 1) << "stage landed";
  EXPECT_TRUE(v.rewrite) << "owner still shows what it held before: sent again";
  EXPECT_FALSE(v.gave_up);
  EXPECT_EQ(read["owner"], "Eva") << "a lost write is not a change made there";
  EXPECT_EQ(read["tier"], "bronze") << "changed there since: the merge decides";
  EXPECT_EQ(snap.unverified, (json{{"cs", {{"owner", Entry("Eva", "Anna", 1)}}}}))
      << "only the lost field still waits for a read-back";
}

TEST(WriteVerificationTest, AFieldLostOnItsLastAttemptIsGivenUpAndTheOldValueStands) {
  Snapshot snap = Pending({{"owner", Entry("Eva", "Anna", 3)}});
  json read = {{"owner", "Anna"}};
  const Verification v = VerifyWrites(&snap, "cs", &read, 3);
  EXPECT_TRUE(v.gave_up);
  EXPECT_FALSE(v.rewrite);
  EXPECT_EQ(v.reason, "owner written as \"Eva\" 3 times, still \"Anna\"");
  EXPECT_EQ(snap.seen["cs"]["owner"], "Anna") << "what the system is known to hold";
  EXPECT_EQ(read["owner"], "Anna");
  EXPECT_TRUE(snap.unverified.empty());
}

TEST(WriteVerificationTest, ARecordThatDidNotShowUpLostEveryField) {
  Snapshot snap = Pending({{"stage", Entry("live", "kickoff", 1)}, {"owner", Entry("Eva", "Anna", 2)}});
  const Verification v = VerifyWrites(&snap, "cs", nullptr, 2);
  EXPECT_EQ(v.verified, 0);
  EXPECT_TRUE(v.rewrite) << "stage: one attempt of two";
  EXPECT_TRUE(v.gave_up) << "owner: its last";
  EXPECT_EQ(snap.unverified, (json{{"cs", {{"stage", Entry("live", "kickoff", 1)}}}}));
}

TEST(WriteVerificationTest, NothingPendingForTheSystemIsNothingToDo) {
  Snapshot snap = Pending({{"stage", Entry("live", "kickoff", 1)}});
  json read = {{"stage", "kickoff"}};
  const Verification v = VerifyWrites(&snap, "crm", &read, 3);
  EXPECT_EQ(v.verified, 0);
  EXPECT_FALSE(v.rewrite || v.gave_up);
  EXPECT_EQ(read["stage"], "kickoff");
}

}  // namespace
}  // namespace crmbridge
