// The merge as a pure function: echoes (values known to be held, values sent with an unknown
// outcome, a queued write), conflicts (system of record, most recent change), change dates of
// mixed precision, and the stage move. No store and no connector.
#include "src/engine/merge.h"

#include <gtest/gtest.h>

#include "src/core/time_util.h"

namespace crmbridge {
namespace {

using nlohmann::json;

constexpr int64_t kSecond = 1000;
// 2026-12-03T12:00:00Z
constexpr int64_t kNoon = 1796299200000;

class MergeTest : public ::testing::Test {
 protected:
  MergeTest() {
    entity_.name = "company";
    CanonicalField name;
    name.name = "name";
    CanonicalField city;
    city.name = "city";
    CanonicalField owner;
    owner.name = "owner";
    owner.system_of_record = "dynamics365";
    CanonicalField stage;
    stage.name = "stage";
    entity_.fields = {name, city, owner, stage};
    snap_.entity = "company";
    snap_.canonical_id = "c1";
  }

  // `read` from `system`, dated `changed_at`, its read begun at `read_started`.
  MergeResult Merge(const std::string& system, const json& read, int64_t changed_at,
                    int64_t read_started = kNoon + 3600 * kSecond, bool known = true) {
    read_ = read;
    MergeInput in;
    in.snapshot = &snap_;
    in.known = known;
    in.system = system;
    in.read = &read_;
    in.changed_at_ms = changed_at;
    in.read_started_ms = read_started;
    in.entity = &entity_;
    in.queued_values = [this]() -> Result<json> {
      ++queued_lookups_;
      return queued_;
    };
    auto out = MergeRead(in);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : MergeResult{};
  }

  // A record both systems hold as {name: A0, city: Oslo}, changed at noon.
  void Synced() {
    snap_.fields = {{"name", "A0"}, {"city", "Oslo"}};
    snap_.seen = {{"hubspot", {{"name", "A0"}, {"city", "Oslo"}}},
                  {"dynamics365", {{"name", "A0"}, {"city", "Oslo"}}}};
    snap_.changed_ms = {{"name", kNoon}, {"city", kNoon}};
  }

  CanonicalEntity entity_;
  Snapshot snap_;
  json read_;
  json queued_;  // the canonical values of the write queued in the system read, or null
  int queued_lookups_ = 0;
};

TEST_F(MergeTest, ARecordNewToCrmbridgeTakesEveryFieldAndIsDatedByItsChange) {
  MergeResult r = Merge("hubspot", {{"name", "Acme"}, {"city", "Oslo"}}, kNoon, kNoon, false);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.snapshot.fields, json({{"name", "Acme"}, {"city", "Oslo"}}));
  EXPECT_EQ(r.snapshot.seen["hubspot"], json({{"name", "Acme"}, {"city", "Oslo"}}));
  EXPECT_EQ(r.snapshot.changed_ms["name"], kNoon);
  EXPECT_EQ(queued_lookups_, 0) << "a new record has no queued write to look up";
}

TEST_F(MergeTest, WhatTheSystemWasKnownToHoldIsNotAChangeEvenAfterTheSnapshotMovedOn) {
  Synced();
  snap_.fields["name"] = "A1";  // changed elsewhere, not yet written to dynamics365
  MergeResult r = Merge("dynamics365", {{"name", "A0"}, {"city", "Oslo"}}, kNoon + 9 * kSecond);
  EXPECT_FALSE(r.changed);
  EXPECT_FALSE(r.seen_changed);
  EXPECT_EQ(r.snapshot.fields["name"], "A1");
  EXPECT_TRUE(r.conflicts.empty());
}

TEST_F(MergeTest, AChangeMadeThereIsTakenAndDated) {
  Synced();
  MergeResult r = Merge("dynamics365", {{"name", "A0"}, {"city", "Bergen"}}, kNoon + 5 * kSecond);
  EXPECT_TRUE(r.changed);
  EXPECT_TRUE(r.seen_changed);
  EXPECT_EQ(r.snapshot.fields["city"], "Bergen");
  EXPECT_EQ(r.snapshot.changed_ms["city"], kNoon + 5 * kSecond);
  EXPECT_EQ(r.snapshot.seen["dynamics365"]["city"], "Bergen");
}

TEST_F(MergeTest, AnOlderChangeLosesToTheNewerOneAndIsReportedAsAConflict) {
  Synced();
  snap_.fields["name"] = "A1";
  snap_.changed_ms["name"] = kNoon + 10 * kSecond;
  MergeResult r = Merge("dynamics365", {{"name", "B1"}, {"city", "Oslo"}}, kNoon + 5 * kSecond);
  EXPECT_FALSE(r.changed);
  ASSERT_EQ(r.conflicts.size(), 1u);
  EXPECT_EQ(r.conflicts[0].field, "name");
  EXPECT_EQ(r.conflicts[0].value, "B1");
  EXPECT_NE(r.conflicts[0].lost_to.find("2026-12-03T12:00:10.000Z"), std::string::npos)
      << "times are logged with milliseconds: " << r.conflicts[0].lost_to;
  EXPECT_EQ(r.snapshot.fields["name"], "A1");
  EXPECT_EQ(r.snapshot.seen["dynamics365"]["name"], "B1") << "what it holds, to be overwritten";
}

TEST_F(MergeTest, OnATieTheChangeReadLaterWins) {
  Synced();
  snap_.fields["name"] = "A1";
  snap_.changed_ms["name"] = kNoon + 10 * kSecond;
  MergeResult r = Merge("dynamics365", {{"name", "B1"}, {"city", "Oslo"}}, kNoon + 10 * kSecond);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.snapshot.fields["name"], "B1");
}

TEST_F(MergeTest, OnlyTheSystemOfRecordChangesItsField) {
  Synced();
  snap_.fields["owner"] = "anna";
  snap_.changed_ms["owner"] = kNoon;
  MergeResult r = Merge("hubspot", {{"owner", "bob"}}, kNoon + 60 * kSecond);
  EXPECT_FALSE(r.changed);
  ASSERT_EQ(r.conflicts.size(), 1u);
  EXPECT_EQ(r.conflicts[0].lost_to, "dynamics365 is its system of record");
  r = Merge("dynamics365", {{"owner", "carl"}}, kNoon - 60 * kSecond);
  EXPECT_TRUE(r.changed) << "older, but from its system of record";
  EXPECT_EQ(r.snapshot.fields["owner"], "carl");
}

// The lost update: crmbridge sent A1 to Dynamics 365 and never learned that it landed; A2 has
// since replaced it in the outbox, and a later edit of another field dates the record. A1 read
// back is crmbridge's own write, not a change, so A2 stays.
TEST_F(MergeTest, AValueSentWithAnUnknownOutcomeReadBackIsAnEchoNotAChange) {
  Synced();
  AddInDoubt(&snap_, "dynamics365", {{"name", "A1"}}, kNoon + 1 * kSecond);
  snap_.fields["name"] = "A2";
  snap_.changed_ms["name"] = kNoon + 2 * kSecond;
  snap_.seen["hubspot"]["name"] = "A2";
  queued_ = {{"name", "A2"}};
  MergeResult r = Merge("dynamics365", {{"name", "A1"}, {"city", "Bergen"}}, kNoon + 3 * kSecond,
                        kNoon + 4 * kSecond);
  EXPECT_EQ(r.snapshot.fields["name"], "A2");
  EXPECT_EQ(r.snapshot.fields["city"], "Bergen") << "the other field's change is still taken";
  EXPECT_TRUE(r.conflicts.empty());
  EXPECT_EQ(r.echoes, std::vector<std::string>{"name"});
  EXPECT_EQ(r.snapshot.seen["dynamics365"]["name"], "A1") << "what it holds";
  EXPECT_FALSE(r.snapshot.in_doubt.contains("dynamics365")) << "settled by the read";
  EXPECT_TRUE(r.seen_changed);
}

TEST_F(MergeTest, AValueInDoubtThatAReadDoesNotShowIsForgottenOnlyIfSentBeforeTheReadBegan) {
  Synced();
  AddInDoubt(&snap_, "dynamics365", {{"name", "A1"}}, kNoon + 1 * kSecond);
  AddInDoubt(&snap_, "dynamics365", {{"name", "A2"}}, kNoon + 8 * kSecond);
  MergeResult r = Merge("dynamics365", {{"name", "A0"}, {"city", "Oslo"}}, kNoon,
                        /*read_started=*/kNoon + 5 * kSecond);
  EXPECT_FALSE(r.changed);
  ASSERT_TRUE(r.snapshot.in_doubt.contains("dynamics365"));
  const json& left = r.snapshot.in_doubt["dynamics365"]["name"];
  ASSERT_EQ(left.size(), 1u) << left.dump();
  EXPECT_EQ(left[0]["value"], "A2") << "sent while the read went on: it may still show";
  EXPECT_TRUE(r.seen_changed);
}

TEST_F(MergeTest, TheValueOfAWriteStillQueuedThereReadBackIsAnEcho) {
  Synced();
  snap_.fields["name"] = "A1";
  snap_.changed_ms["name"] = kNoon + 1 * kSecond;
  queued_ = {{"name", "A1"}};
  MergeResult r = Merge("dynamics365", {{"name", "A1"}, {"city", "Oslo"}}, kNoon + 9 * kSecond);
  EXPECT_FALSE(r.changed);
  queued_ = {{"name", "A1"}};
  MergeResult other = Merge("dynamics365", {{"name", "Z"}, {"city", "Oslo"}}, kNoon + 9 * kSecond);
  EXPECT_TRUE(other.changed);
  EXPECT_EQ(other.snapshot.fields["name"], "Z");
}

// A create landed in HubSpot but its association did not (the answer was lost before the second
// call): the first read shows no company. That is a value missing there, not one cleared.
TEST_F(MergeTest, EmptyInASystemNeverKnownToHoldAValueIsMissingNotCleared) {
  snap_.fields = {{"name", "Anna"}, {"company", "c7"}};
  snap_.seen = {{"dynamics365", {{"name", "Anna"}, {"company", "c7"}}}};
  snap_.changed_ms = {{"name", kNoon}, {"company", kNoon}};
  MergeResult r = Merge("hubspot", {{"name", "Anna"}, {"company", nullptr}}, kNoon + 60 * kSecond);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.snapshot.fields["company"], "c7");
  EXPECT_TRUE(r.snapshot.seen["hubspot"]["company"].is_null()) << "so it is written there";
  // Once it held one, emptying it there is a change like any other.
  snap_ = r.snapshot;
  snap_.seen["hubspot"]["company"] = "c7";
  r = Merge("hubspot", {{"name", "Anna"}, {"company", nullptr}}, kNoon + 90 * kSecond);
  EXPECT_TRUE(r.changed);
  EXPECT_TRUE(r.snapshot.fields["company"].is_null());
}

// Replacing a reference is two calls in HubSpot (remove the old association, add the new); the
// answer to the first was lost after it landed, so the second was never sent. The record then
// shows no company: crmbridge's half-done write, not a user clearing it.
TEST_F(MergeTest, EmptyWhileAValueSentThereIsInDoubtIsMissingNotCleared) {
  snap_.fields = {{"name", "Anna"}, {"company", "c4"}};
  snap_.seen = {{"hubspot", {{"name", "Anna"}, {"company", "c5"}}}};
  snap_.changed_ms = {{"name", kNoon}, {"company", kNoon}};
  AddInDoubt(&snap_, "hubspot", {{"name", "Anna"}, {"company", "c4"}}, kNoon + kSecond);
  MergeResult r = Merge("hubspot", {{"name", "Anna"}, {"company", nullptr}}, kNoon + 2 * kSecond);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.snapshot.fields["company"], "c4");
}

// crmbridge sent {name: A1, city: Bergen} to Dynamics 365 and never heard back; it landed. Then
// someone set the name back to A0 there. The read shows city Bergen (so the write landed whole) and
// name A0: a change made there, although A0 is what crmbridge knew before its write.
TEST_F(MergeTest, AValueSetBackAfterAWriteOfUnknownOutcomeLandedIsAChange) {
  Synced();
  snap_.fields = {{"name", "A1"}, {"city", "Bergen"}};
  snap_.changed_ms = {{"name", kNoon + kSecond}, {"city", kNoon + kSecond}};
  AddInDoubt(&snap_, "dynamics365", {{"name", "A1"}, {"city", "Bergen"}}, kNoon + 2 * kSecond);
  MergeResult r = Merge("dynamics365", {{"name", "A0"}, {"city", "Bergen"}}, kNoon + 9 * kSecond);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.snapshot.fields["name"], "A0");
  // A value the system held before proves nothing: the write may not have landed.
  snap_.in_doubt = json::object();
  snap_.seen["dynamics365"]["city"] = "Bergen";
  AddInDoubt(&snap_, "dynamics365", {{"name", "A1"}, {"city", "Bergen"}}, kNoon + 2 * kSecond);
  r = Merge("dynamics365", {{"name", "A0"}, {"city", "Bergen"}}, kNoon + 9 * kSecond);
  EXPECT_EQ(r.snapshot.fields["name"], "A1");
  snap_.seen["dynamics365"]["city"] = "Oslo";
  // Without the proof (the write may not have landed), the known value is no news.
  snap_.in_doubt = json::object();
  AddInDoubt(&snap_, "dynamics365", {{"name", "A1"}}, kNoon + 2 * kSecond);
  r = Merge("dynamics365", {{"name", "A0"}, {"city", "Oslo"}}, kNoon + 9 * kSecond);
  EXPECT_EQ(r.snapshot.fields["name"], "A1");
}

TEST_F(MergeTest, AStageMoveIsReportedWithWhereItCameFrom) {
  Synced();
  snap_.fields["stage"] = "kickoff";
  MergeResult r = Merge("hubspot", {{"stage", "live"}}, kNoon + kSecond);
  ASSERT_TRUE(r.stage.has_value());
  EXPECT_EQ(r.stage->from, "kickoff");
  EXPECT_EQ(r.stage->to, "live");
  EXPECT_FALSE(Merge("hubspot", {{"stage", "kickoff"}}, kNoon + kSecond).stage.has_value());
}

TEST(ChangeDateTest, MillisecondTimesStandAsReported) {
  EXPECT_EQ(ChangeDate(ChangeTime{kNoon + 700, 1, kNoon + 5000}, 42), kNoon + 700);
  EXPECT_EQ(ChangeDate(ChangeTime{0, 1, kNoon}, 42), 42) << "no time: the run's start";
}

TEST(ChangeDateTest, ASecondPrecisionTimeCountsFromTheEndOfItsSecond) {
  // Dynamics 365 says 12:00:00; the edit was made somewhere in that second.
  EXPECT_EQ(ChangeDate(ChangeTime{kNoon, 1000, kNoon + 60 * kSecond}, 0), kNoon + 999);
  // So it is not older than a HubSpot change at 12:00:00.700 of the same field.
  EXPECT_GT(ChangeDate(ChangeTime{kNoon, 1000, kNoon + 60 * kSecond}, 0), kNoon + 700);
}

TEST(ChangeDateTest, ButNeverFromLaterThanItWasReadWhichKeepsAnOrderCrmbridgeHasSeen) {
  // Read at 12:00:00.400: a HubSpot change at 12:00:00.600 was made after it, and must win.
  const int64_t d365 = ChangeDate(ChangeTime{kNoon, 1000, kNoon + 400}, 0);
  EXPECT_EQ(d365, kNoon + 400);
  EXPECT_LT(d365, kNoon + 600);
  // A system clock ahead of crmbridge's: the reported time is a floor.
  EXPECT_EQ(ChangeDate(ChangeTime{kNoon + 2000, 1000, kNoon}, 0), kNoon + 2000);
}

TEST(InDoubtTest, AValueSentAgainIsKeptOnceFromItsLatestAttemptAndADeliveryClearsTheField) {
  Snapshot s;
  AddInDoubt(&s, "dynamics365", {{"name", "A1"}, {"city", "Oslo"}}, 100);
  AddInDoubt(&s, "dynamics365", {{"name", "A1"}}, 200);
  AddInDoubt(&s, "dynamics365", {{"name", "A2"}}, 300);
  ASSERT_EQ(s.in_doubt["dynamics365"]["name"].size(), 2u);
  EXPECT_EQ(s.in_doubt["dynamics365"]["name"][0]["sent_ms"], 200);
  SettleInDoubt(&s, "dynamics365", {{"name", "A3"}});
  EXPECT_FALSE(s.in_doubt["dynamics365"].contains("name"));
  EXPECT_TRUE(s.in_doubt["dynamics365"].contains("city"));
  SettleInDoubt(&s, "dynamics365", {{"city", "Oslo"}});
  EXPECT_FALSE(s.in_doubt.contains("dynamics365")) << "nothing left: nothing kept";
}

}  // namespace
}  // namespace crmbridge
