// The flush's pure steps (chunk_writes.h): a chunk of outbox items built into the connector's ops
// with references as the target's ids, waits and nothing-to-do deletes; and what a delivered write
// leaves in the snapshot. The store is a mock, asked only whether a referenced record's own write
// is queued: no SQLite, no HTTP.
#include "src/engine/chunk_writes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>


#include "src/engine/bootstrap.h"
#include "tests/engine/mock_store.h"
#include "tests/engine/plan_from_text.h"

namespace crmbridge {
namespace {

using ::testing::_;
using ::testing::Return;
using ::testing::StrictMock;
using nlohmann::json;
using testing::MockStore;

constexpr char kMapping[] = R"(version: 1
entities:
  company:
    fields:
      name: {type: string, required: true}
  contact:
    fields:
      email: {type: string}
      company: {type: ref, entity: company}
systems:
  alpha:
    company:
      object: accounts
      params: {key: crmb_externalid}
      fields:
        name: {native: name}
    contact:
      object: contacts
      params: {key: crmb_externalid}
      fields:
        email: {native: emailaddress1}
        company: {native: parentcustomerid, bind: parentcustomerid_account}
)";

class ChunkWritesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto plan = testing::PlanFromText(kMapping, {{"alpha", "dynamics365"}});
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
  }
  const SystemEntityMapping& Contacts() const { return *plan_->Find("alpha", "contact"); }
  OutboxItem Item(const std::string& cid, OutboxOp op, const std::string& native_id, json payload) {
    OutboxItem item;
    item.id = static_cast<int64_t>(cid.size()) + (next_id_++);
    item.system = "alpha";
    item.object = "contacts";
    item.entity = "contact";
    item.canonical_id = cid;
    item.op = op;
    item.native_id = native_id;
    item.idempotency_key = cid;
    item.payload = std::move(payload);
    item.attempts = 2;
    return item;
  }

  std::shared_ptr<const MappingPlan> plan_;
  StrictMock<MockStore> store_;
  int64_t next_id_ = 1;
};

TEST_F(ChunkWritesTest, ItemsBecomeOpsWithTheirReferencesAsTheTargetsIds) {
  References references(plan_.get(), &store_);
  References::Chunk refs;
  refs.native_ids["company"]["co1"] = "guid-co1";
  std::vector<OutboxItem> items = {
      Item("k1", OutboxOp::kUpsert, "",
           {{"emailaddress1", "a@x.se"}, {"parentcustomerid", RefPlaceholder("company", "co1")}}),
      Item("k2", OutboxOp::kUpdate, "guid-k2", {{"emailaddress1", "b@x.se"}}),
      Item("k3", OutboxOp::kDelete, "guid-k3", json::object())};
  auto built = BuildChunkWrites(references, Contacts(), items, refs);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  ASSERT_EQ(built->ops.size(), 3u);
  EXPECT_EQ(built->sent_index, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(built->ops[0].kind, WriteOp::Kind::kUpsert);
  EXPECT_EQ(built->ops[0].key, "k1");
  EXPECT_EQ(built->ops[0].attempt, 2);
  EXPECT_EQ(built->ops[0].fields, (json{{"emailaddress1", "a@x.se"}})) << "the reference moved out";
  ASSERT_EQ(built->ops[0].refs.count("parentcustomerid"), 1u);
  EXPECT_EQ(built->ops[0].refs.at("parentcustomerid").id, "guid-co1");
  EXPECT_EQ(built->ops[0].refs.at("parentcustomerid").bind, "parentcustomerid_account");
  EXPECT_EQ(built->ops[1].kind, WriteOp::Kind::kUpdate);
  EXPECT_EQ(built->ops[1].native_id, "guid-k2");
  EXPECT_EQ(built->ops[2].kind, WriteOp::Kind::kDelete);
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_FALSE(built->waits[i].waiting);
    EXPECT_FALSE(built->nothing_to_do[i]);
  }
}

TEST_F(ChunkWritesTest, AWriteWhoseReferencedRecordIsNotThereWaitsAndADeleteOfItHasNothingToDo) {
  References references(plan_.get(), &store_);
  References::Chunk refs;  // co2 has no id in alpha yet; its own write is queued there
  OutboxItem queued;
  EXPECT_CALL(store_, PendingOutbox("alpha", "company", "co2"))
      .WillRepeatedly(Return(Result<std::optional<OutboxItem>>(std::optional<OutboxItem>(queued))));
  std::vector<OutboxItem> items = {
      Item("k1", OutboxOp::kUpsert, "", {{"parentcustomerid", RefPlaceholder("company", "co2")}}),
      Item("k2", OutboxOp::kDelete, "", {{"parentcustomerid", RefPlaceholder("company", "co2")}}),
      Item("k3", OutboxOp::kUpdate, "guid-k3", {{"emailaddress1", "c@x.se"}})};
  auto built = BuildChunkWrites(references, Contacts(), items, refs);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  EXPECT_EQ(built->sent_index, (std::vector<size_t>{2}));
  ASSERT_EQ(built->ops.size(), 1u);
  EXPECT_EQ(built->ops[0].native_id, "guid-k3");
  EXPECT_TRUE(built->waits[0].waiting);
  EXPECT_TRUE(built->waits[0].on_its_way);
  EXPECT_THAT(built->waits[0].reason, ::testing::HasSubstr("waits for company co2"));
  EXPECT_FALSE(built->nothing_to_do[0]);
  EXPECT_TRUE(built->nothing_to_do[1]) << "a delete of a record that was never created there";
  EXPECT_FALSE(built->waits[1].waiting);
}

// A create a run recorded as sent (kSentUnrecorded) and never answered is a second attempt for the
// connector, which then looks for what the first made; a first send is attempt 0.
TEST_F(ChunkWritesTest, ACreateLeftRecordedAsSentIsAttemptedAgainNotAfresh) {
  References references(plan_.get(), &store_);
  References::Chunk refs;
  std::vector<OutboxItem> items = {Item("k1", OutboxOp::kUpsert, "", {{"emailaddress1", "a@x.se"}}),
                                   Item("k2", OutboxOp::kUpsert, "", {{"emailaddress1", "b@x.se"}})};
  items[0].attempts = 0;
  items[0].last_error = kSentUnrecorded;
  items[1].attempts = 0;
  auto built = BuildChunkWrites(references, Contacts(), items, refs);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  ASSERT_EQ(built->ops.size(), 2u);
  EXPECT_EQ(built->ops[0].attempt, 1);
  EXPECT_EQ(built->ops[1].attempt, 0);
}

TEST(NoteDeliveredTest, TheTargetHoldsTheValuesAndWhatWasInDoubtIsSettled) {
  Snapshot snap;
  snap.seen = {{"alpha", {{"name", "Old"}, {"city", "Lund"}}}};
  snap.in_doubt = {{"alpha", {{"name", json::array({{{"value", "New"}, {"sent_ms", 5}}})},
                              {"phone", json::array({{{"value", "1"}, {"sent_ms", 5}}})}}}};
  NoteDelivered(&snap, "alpha", json{{"name", "New"}}, /*unverified=*/false);
  EXPECT_EQ(snap.seen["alpha"], (json{{"name", "New"}, {"city", "Lund"}}));
  EXPECT_EQ(snap.in_doubt, (json{{"alpha", {{"phone", json::array({{{"value", "1"}, {"sent_ms", 5}}})}}}}))
      << "only the fields this write delivered are settled";
  EXPECT_TRUE(snap.unverified.empty());

  NoteDelivered(&snap, "beta", json{{"name", "New"}}, false);
  EXPECT_EQ(snap.seen["beta"], (json{{"name", "New"}})) << "a system held nothing known before";
}

TEST(NoteDeliveredTest, AnUnconfirmedWriteKeepsWhatItReplacedFromItsFirstAttempt) {
  Snapshot snap;
  snap.seen = {{"cs", {{"stage", "kickoff"}, {"owner", "Eva"}}}};
  NoteDelivered(&snap, "cs", json{{"stage", "live"}, {"owner", "Eva"}}, /*unverified=*/true);
  EXPECT_EQ(snap.unverified, (json{{"cs", {{"stage", {{"sent", "live"}, {"before", "kickoff"},
                                                      {"attempts", 1}}}}}}))
      << "owner already held Eva: nothing to verify";
  EXPECT_EQ(snap.seen["cs"]["stage"], "live");

  // Sent again before a read-back verified it: still measured against the first "before".
  NoteDelivered(&snap, "cs", json{{"stage", "live"}}, true);
  EXPECT_EQ(snap.unverified["cs"]["stage"],
            (json{{"sent", "live"}, {"before", "kickoff"}, {"attempts", 2}}));
}

}  // namespace
}  // namespace crmbridge
