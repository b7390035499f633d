// ReadProcessor: a record read for the first time is linked, stored and queued for the other
// system; a record that hashes to the digest on its link changes nothing and reads nothing more; a
// changed one is merged and queued as an update of the target's copy. Over a mock store: no
// SQLite, and a StrictMock fails on any store call a path should not make.
#include "src/engine/read_processor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>


#include "src/core/hash.h"
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
      city: {type: string}
systems:
  alpha:
    company:
      object: companies
      fields:
        name: {native: name}
        city: {native: city}
  beta:
    company:
      object: accounts
      fields:
        name: {native: accountname}
        city: {native: address1_city}
)";

class ReadProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto plan = testing::PlanFromText(kMapping, {{"alpha", "hubspot"}, {"beta", "dynamics365"}});
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
    identity_ = std::make_unique<Identity>(plan_.get(), &view_);
    references_ = std::make_unique<References>(plan_.get(), &store_);
    planner_ = std::make_unique<WritePlanner>(plan_.get(), &view_, &tally_, false, kRunStart);
    reader_ = std::make_unique<ReadProcessor>(ReadProcessor::Deps{
        plan_.get(), &store_, &sync_, &view_, identity_.get(), references_.get(), planner_.get(),
        &tally_, /*dry_run=*/false, kRunStart, /*capabilities_of=*/nullptr});
    reader_->SetPageTime(PageTime{kRunStart, kRunStart + 10, 1});
  }

  const SystemEntityMapping& Alpha() const { return *plan_->Find("alpha", "company"); }
  static NativeRecord Company(const std::string& id, const std::string& name) {
    NativeRecord r;
    r.id = id;
    r.modified_ms = kRunStart - 1000;
    r.fields = {{"name", name}, {"city", "Oslo"}};
    return r;
  }
  static Link L(const std::string& system, const std::string& native, std::string read_hash = "") {
    Link l;
    l.entity = "company";
    l.canonical_id = "c1";
    l.system = system;
    l.native_id = native;
    l.last_read_hash = std::move(read_hash);
    return l;
  }
  // The page as the store holds it: `page` for native id 11 of alpha.
  void LoadPage(const RecordStates& page) {
    EXPECT_CALL(store_, LoadRecords("company", "alpha", std::vector<std::string>{"11"}, _))
        .WillOnce([page](auto&&...) { return Result<RecordStates>(page); });
    ASSERT_TRUE(view_.Load("alpha", "company", {"11"}).ok());
  }
  std::vector<StateBatch::Op::Kind> Kinds() const {
    std::vector<StateBatch::Op::Kind> kinds;
    for (const StateBatch::Op& op : batch_.ops()) kinds.push_back(op.kind);
    return kinds;
  }
  const StateBatch::Op& OpOf(StateBatch::Op::Kind kind) const {
    for (const StateBatch::Op& op : batch_.ops())
      if (op.kind == kind) return op;
    ADD_FAILURE() << "no op of kind " << static_cast<int>(kind);
    return batch_.ops().front();
  }

  static constexpr int64_t kRunStart = 1767225600000LL;
  std::shared_ptr<const MappingPlan> plan_;
  StrictMock<MockStore> store_;
  SyncConfig sync_;
  RecordView view_{&store_};
  RunTally tally_;
  std::unique_ptr<Identity> identity_;
  std::unique_ptr<References> references_;
  std::unique_ptr<WritePlanner> planner_;
  std::unique_ptr<ReadProcessor> reader_;
  StateBatch batch_;
};

TEST_F(ReadProcessorTest, ARecordSeenForTheFirstTimeIsLinkedStoredAndQueuedForTheOtherSystem) {
  LoadPage(RecordStates{});
  ASSERT_TRUE(reader_->Process(Alpha(), Company("11", "Acme"), &batch_).ok());
  using K = StateBatch::Op::Kind;
  EXPECT_THAT(Kinds(), ::testing::UnorderedElementsAre(K::kPutLink, K::kEnqueue, K::kPutSnapshot));
  const Link& link = OpOf(K::kPutLink).link();
  EXPECT_EQ(link.system, "alpha");
  EXPECT_EQ(link.native_id, "11");
  EXPECT_EQ(link.last_read_hash, HashJson(json{{"name", "Acme"}, {"city", "Oslo"}}));
  const Snapshot& snap = OpOf(K::kPutSnapshot).snapshot();
  EXPECT_EQ(snap.canonical_id, link.canonical_id);
  EXPECT_EQ(snap.fields, (json{{"name", "Acme"}, {"city", "Oslo"}}));
  EXPECT_EQ(snap.seen["alpha"], snap.fields);
  const OutboxItem& item = OpOf(K::kEnqueue).outbox();
  EXPECT_EQ(item.system, "beta");
  EXPECT_EQ(item.op, OutboxOp::kUpsert);
  EXPECT_EQ(item.payload, (json{{"accountname", "Acme"}, {"address1_city", "Oslo"}}));
  const EntityCounts& counts = tally_.Count("alpha", "company");
  EXPECT_EQ(counts.read, 1);
  EXPECT_EQ(counts.changed, 1);
}

TEST_F(ReadProcessorTest, ARecordThatHashesToTheDigestOnItsLinkChangesNothing) {
  const std::string hash = HashJson(json{{"name", "Acme"}, {"city", "Oslo"}});
  RecordStates page;
  page.by_native["11"] = L("alpha", "11", hash);
  page.digests["c1"] = SettledDigests{true, {{"alpha", ShortHash(hash)}}};
  LoadPage(page);
  // No other store call: the StrictMock fails on a snapshot or link read.
  ASSERT_TRUE(reader_->Process(Alpha(), Company("11", "Acme"), &batch_).ok());
  EXPECT_TRUE(batch_.empty());
  EXPECT_EQ(tally_.Count("alpha", "company").unchanged, 1);
}

TEST_F(ReadProcessorTest, AChangedRecordIsMergedAndQueuedAsAnUpdateOfTheTargetsCopy) {
  const json before{{"name", "Acme"}, {"city", "Oslo"}};
  const std::string hash = HashJson(before);
  RecordStates page;
  page.by_native["11"] = L("alpha", "11", hash);
  page.digests["c1"] = SettledDigests{true, {{"alpha", ShortHash(hash)}}};
  LoadPage(page);
  Snapshot snap;
  snap.entity = "company";
  snap.canonical_id = "c1";
  snap.fields = before;
  snap.seen = {{"alpha", before}, {"beta", before}};
  snap.changed_ms = {{"name", kRunStart - 5000}, {"city", kRunStart - 5000}};
  EXPECT_CALL(store_, GetSnapshot("company", "c1"))
      .WillOnce(Return(Result<std::optional<Snapshot>>(std::optional<Snapshot>(snap))));
  EXPECT_CALL(store_, FindLink("company", "c1", "beta"))
      .WillRepeatedly(Return(Result<std::optional<Link>>(std::optional<Link>(L("beta", "d1")))));
  EXPECT_CALL(store_, PendingOutbox("alpha", "company", "c1"))
      .WillRepeatedly(Return(Result<std::optional<OutboxItem>>(std::optional<OutboxItem>())));

  ASSERT_TRUE(reader_->Process(Alpha(), Company("11", "Acme AB"), &batch_).ok());
  using K = StateBatch::Op::Kind;
  EXPECT_EQ(OpOf(K::kPutSnapshot).snapshot().fields["name"], "Acme AB");
  EXPECT_EQ(OpOf(K::kPutSnapshot).snapshot().seen["alpha"]["name"], "Acme AB");
  const OutboxItem& item = OpOf(K::kEnqueue).outbox();
  EXPECT_EQ(item.system, "beta");
  EXPECT_EQ(item.op, OutboxOp::kUpdate);
  EXPECT_EQ(item.native_id, "d1");
  EXPECT_EQ(item.payload["accountname"], "Acme AB");
  EXPECT_EQ(OpOf(K::kPutLink).link().last_read_hash,
            HashJson(json{{"name", "Acme AB"}, {"city", "Oslo"}}));
  EXPECT_EQ(tally_.Count("alpha", "company").changed, 1);
}

}  // namespace
}  // namespace crmbridge
