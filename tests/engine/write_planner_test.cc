// WritePlanner: a write is queued only where a target's copy differs, as an update of a record the
// target has or an upsert by crmbridge's key, and a dry run plans without queueing. The links come
// from a RecordView over a mock store: no SQLite.
#include "src/engine/write_planner.h"

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
        city: {native: address1_city, direction: out}
  gamma:
    company:
      object: accounts
      fields:
        name: {native: title}
)";

class WritePlannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto plan = testing::PlanFromText(
        kMapping, {{"alpha", "hubspot"}, {"beta", "dynamics365"}, {"gamma", "totango"}});
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
    snap_.entity = "company";
    snap_.canonical_id = "c1";
    snap_.fields = {{"name", "Acme"}, {"city", "Oslo"}};
  }

  // The store's links of c1: none but those given.
  void Links(std::vector<Link> links) {
    RecordStates r;
    r.links["c1"] = std::move(links);
    EXPECT_CALL(store_, LoadRecords("company", "alpha", _, _))
        .WillOnce(Return(Result<RecordStates>(r)));
    ASSERT_TRUE(view_.Load("alpha", "company", {}, {"c1"}).ok());
  }
  static Link L(const std::string& system, const std::string& native, std::string written = "") {
    Link l;
    l.entity = "company";
    l.canonical_id = "c1";
    l.system = system;
    l.native_id = native;
    l.last_written_hash = std::move(written);
    return l;
  }
  const SystemEntityMapping& Alpha() const { return *plan_->Find("alpha", "company"); }
  std::vector<OutboxItem> Queued() const {
    std::vector<OutboxItem> out;
    for (const StateBatch::Op& op : batch_.ops())
      if (op.kind == StateBatch::Op::Kind::kEnqueue) out.push_back(op.outbox());
    return out;
  }

  std::shared_ptr<const MappingPlan> plan_;
  StrictMock<MockStore> store_;
  RecordView view_{&store_};
  RunTally tally_;
  Snapshot snap_;
  StateBatch batch_;
};

TEST_F(WritePlannerTest, ARecordATargetHasIsUpdatedByItsIdAndANewOneUpsertedByKey) {
  Links({L("alpha", "11"), L("beta", "d1")});
  WritePlanner planner(plan_.get(), &view_, &tally_, false, 5);
  ASSERT_TRUE(planner.PlanTargets(Alpha(), "c1", snap_, &batch_).ok());
  std::vector<OutboxItem> q = Queued();
  ASSERT_EQ(q.size(), 2u) << "beta and gamma; never alpha, where it was read";
  for (const OutboxItem& item : q) {
    EXPECT_EQ(item.idempotency_key, "c1");
    EXPECT_EQ(item.created_ms, 5);
    EXPECT_EQ(item.payload_hash, HashJson(item.payload));
    if (item.system == "beta") {
      EXPECT_EQ(item.op, OutboxOp::kUpdate);
      EXPECT_EQ(item.native_id, "d1");
      EXPECT_EQ(item.payload, json({{"accountname", "Acme"}, {"address1_city", "Oslo"}}));
    } else {
      EXPECT_EQ(item.system, "gamma");
      EXPECT_EQ(item.op, OutboxOp::kUpsert);
      EXPECT_EQ(item.native_id, "");
    }
  }
  EXPECT_EQ(tally_.Count("beta", "company").queued, 1);
}

TEST_F(WritePlannerTest, NothingIsQueuedWhereTheTargetHoldsItAlready) {
  const std::string beta_hash = HashJson(json({{"accountname", "Acme"}, {"address1_city", "Oslo"}}));
  Links({L("alpha", "11"), L("beta", "d1", beta_hash), L("gamma", "g1")});
  snap_.seen = {{"gamma", {{"name", "Acme"}}}};  // read from gamma with this name
  WritePlanner planner(plan_.get(), &view_, &tally_, false, 5);
  ASSERT_TRUE(planner.PlanTargets(Alpha(), "c1", snap_, &batch_).ok());
  EXPECT_TRUE(Queued().empty()) << "beta: the same payload was written; gamma: read as it is";
}

TEST_F(WritePlannerTest, ADryRunPlansWithoutQueueing) {
  Links({});
  WritePlanner planner(plan_.get(), &view_, &tally_, true, 5);
  ASSERT_TRUE(planner.PlanTargets(Alpha(), "c1", snap_, &batch_).ok());
  EXPECT_TRUE(batch_.empty());
  ASSERT_EQ(tally_.summary().plan.size(), 2u);
  EXPECT_EQ(tally_.summary().plan[0].action, WriteAction::kCreate);
}

TEST_F(WritePlannerTest, ARecordThatCannotBeMappedOutIsCountedNotQueued) {
  Links({});
  snap_.fields = {{"city", "Oslo"}};  // no name, which every system requires
  WritePlanner planner(plan_.get(), &view_, &tally_, false, 5);
  ASSERT_TRUE(planner.PlanTargets(Alpha(), "c1", snap_, &batch_).ok());
  EXPECT_TRUE(Queued().empty());
  EXPECT_EQ(tally_.Count("beta", "company").rejected, 1);
}

// A record new to a target whose payload there holds no value (every field it maps out is empty)
// is never created there as an empty record: counted as rejected, not queued. A target where it
// holds a value gets it.
TEST_F(WritePlannerTest, ACreateThatWouldWriteNoValueIsNeverSent) {
  auto plan = testing::PlanFromText(R"(version: 1
entities:
  company:
    fields:
      name: {type: string}
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
        city: {native: address1_city, direction: out}
  gamma:
    company:
      object: accounts
      fields:
        name: {native: title}
)",
                                    {{"alpha", "hubspot"}, {"beta", "dynamics365"}, {"gamma", "totango"}});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  plan_ = *plan;
  Links({L("alpha", "11")});
  snap_.fields = {{"name", ""}, {"city", "Oslo"}};
  WritePlanner planner(plan_.get(), &view_, &tally_, false, 5);
  ASSERT_TRUE(planner.PlanTargets(*plan_->Find("alpha", "company"), "c1", snap_, &batch_).ok());
  std::vector<OutboxItem> q = Queued();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].system, "beta");
  EXPECT_EQ(tally_.Count("gamma", "company").rejected, 1);
  EXPECT_EQ(tally_.Count("gamma", "company").queued, 0);
}

TEST_F(WritePlannerTest, ASystemThatReceivesNoCreatesIsOnlyUpdated) {
  auto plan = testing::PlanFromText(R"(version: 1
entities:
  company:
    fields:
      name: {type: string}
systems:
  alpha:
    company:
      object: companies
      fields:
        name: {native: name}
  beta:
    company:
      object: accounts
      create: false
      fields:
        name: {native: accountname}
)",
                                    {{"alpha", "hubspot"}, {"beta", "dynamics365"}});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  plan_ = *plan;
  ASSERT_FALSE(plan_->Find("beta", "company")->create);
  WritePlanner planner(plan_.get(), &view_, &tally_, false, 5);
  // Not there: not created, and counted so.
  Links({L("alpha", "11")});
  ASSERT_TRUE(planner.PlanTargets(*plan_->Find("alpha", "company"), "c1", snap_, &batch_).ok());
  EXPECT_TRUE(Queued().empty());
  EXPECT_EQ(tally_.Count("beta", "company").not_created, 1);
  EXPECT_EQ(tally_.Count("beta", "company").rejected, 0);
}

TEST_F(WritePlannerTest, ARecordASystemThatReceivesNoCreatesHasIsUpdatedThere) {
  auto plan = testing::PlanFromText(R"(version: 1
entities:
  company:
    fields:
      name: {type: string}
systems:
  alpha:
    company: {object: companies, fields: {name: {native: name}}}
  beta:
    company: {object: accounts, create: false, fields: {name: {native: accountname}}}
)",
                                    {{"alpha", "hubspot"}, {"beta", "dynamics365"}});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  plan_ = *plan;
  Links({L("alpha", "11"), L("beta", "d1")});  // linked by its match key, say
  WritePlanner planner(plan_.get(), &view_, &tally_, false, 5);
  ASSERT_TRUE(planner.PlanTargets(*plan_->Find("alpha", "company"), "c1", snap_, &batch_).ok());
  std::vector<OutboxItem> q = Queued();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].op, OutboxOp::kUpdate);
  EXPECT_EQ(q[0].native_id, "d1");
  EXPECT_EQ(tally_.Count("beta", "company").not_created, 0);
}

TEST_F(WritePlannerTest, DeletesGoOnlyWhereTheRecordExists) {
  Links({L("alpha", "11"), L("beta", "d1")});
  WritePlanner planner(plan_.get(), &view_, &tally_, false, 5);
  ASSERT_TRUE(planner.PlanDeletes(Alpha(), "c1", &batch_).ok());
  std::vector<OutboxItem> q = Queued();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].system, "beta");
  EXPECT_EQ(q[0].op, OutboxOp::kDelete);
  EXPECT_EQ(q[0].native_id, "d1");
  EXPECT_EQ(q[0].payload_hash, "delete");
}

TEST_F(WritePlannerTest, ARewriteOfARecordThatNeverAppearedIsAnUpsertByKey) {
  Links({});
  WritePlanner planner(plan_.get(), &view_, &tally_, false, 5);
  ASSERT_TRUE(planner.Rewrite(Alpha(), "", "c1", snap_, &batch_, /*lost=*/true).ok());
  ASSERT_TRUE(planner.Rewrite(Alpha(), "11", "c1", snap_, &batch_, /*lost=*/false).ok());
  std::vector<OutboxItem> q = Queued();
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0].op, OutboxOp::kUpsert);
  EXPECT_EQ(q[1].op, OutboxOp::kUpdate);
  EXPECT_EQ(q[1].native_id, "11");
  EXPECT_EQ(tally_.Count("alpha", "company").rewritten, 1) << "only the lost one counts";
}

}  // namespace
}  // namespace crmbridge
