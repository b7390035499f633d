// Stage history on day one: a first-seen record's stage moves as its system's history has them,
// through the stage field's transforms, marked imported; without a history, the move the read saw.
#include "src/engine/stage_history_import.h"

#include <gtest/gtest.h>

#include "tests/engine/plan_from_text.h"

namespace crmbridge {
namespace {

constexpr char kMapping[] = R"(version: 1
entities:
  onboarding:
    fields:
      stage: {type: string, values: [new, onboarding, closed]}
tables:
  stage:
    - {native: "Ny", canonical: new}
    - {native: "Pågår", canonical: onboarding, prefer: true}
    - {native: "Pågår igen", canonical: onboarding}
    - {native: "Klar", canonical: closed}
systems:
  hubspot:
    onboarding:
      object: tickets
      fields:
        stage: {native: hs_pipeline_stage, transforms: [{table: stage}]}
)";

class StageHistoryImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto plan = testing::PlanFromText(kMapping, {{"hubspot", "hubspot"}});
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
    first_.entity = "onboarding";
    first_.canonical_id = "c1";
    first_.system = "hubspot";
    first_.to_stage = "onboarding";
    first_.at_ms = 10'000;
  }
  const FieldMap& Stage() const { return plan_->Find("hubspot", "onboarding")->fields[0]; }

  std::shared_ptr<const MappingPlan> plan_;
  StageTransition first_;
};

TEST_F(StageHistoryImportTest, EachEarlierMoveIsRecordedAsItsSystemDatedItMarkedImported) {
  const std::vector<StageTransition> t =
      ImportedStages(Stage(), {{"Ny", 1'000}, {"Pågår", 4'000}}, first_);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].from_stage, "");
  EXPECT_EQ(t[0].to_stage, "new");
  EXPECT_EQ(t[0].at_ms, 1'000);
  EXPECT_EQ(t[1].from_stage, "new");
  EXPECT_EQ(t[1].to_stage, "onboarding");
  EXPECT_EQ(t[1].at_ms, 4'000);
  for (const StageTransition& x : t) {
    EXPECT_TRUE(x.imported);
    EXPECT_EQ(x.system, "hubspot");
    EXPECT_EQ(x.canonical_id, "c1");
  }
}

TEST_F(StageHistoryImportTest, ValuesThatDoNotMoveTheCanonicalStageOrDoNotMapAreSkipped) {
  const std::vector<StageTransition> t = ImportedStages(
      Stage(), {{"Ny", 1'000}, {"Okänd", 2'000}, {"Pågår", 3'000}, {"Pågår igen", 4'000}}, first_);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[1].to_stage, "onboarding");
  EXPECT_EQ(t[1].at_ms, 3'000) << "the stage was entered then; Pågår igen is the same stage";
}

TEST_F(StageHistoryImportTest, AHistoryEndingElsewhereIsFollowedByTheMoveTheReadSaw) {
  // Later entries than the read (moved since) are not part of what came before it.
  const std::vector<StageTransition> t =
      ImportedStages(Stage(), {{"Ny", 1'000}, {"Klar", 20'000}}, first_);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].to_stage, "new");
  EXPECT_TRUE(t[0].imported);
  EXPECT_EQ(t[1].from_stage, "new");
  EXPECT_EQ(t[1].to_stage, "onboarding");
  EXPECT_EQ(t[1].at_ms, 10'000);
  EXPECT_FALSE(t[1].imported);
}

TEST_F(StageHistoryImportTest, WithoutAHistoryTheFirstStageIsTheMoveTheReadSaw) {
  const std::vector<StageTransition> t = ImportedStages(Stage(), {}, first_);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].from_stage, "");
  EXPECT_EQ(t[0].to_stage, "onboarding");
  EXPECT_FALSE(t[0].imported);
}

}  // namespace
}  // namespace crmbridge
