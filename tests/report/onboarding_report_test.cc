// The onboarding report on rows built by hand and on a real store: the intervals of each stage,
// days in stage with the clock stopping at the end stage and restarting when it leaves, the 30-
// and 60-day thresholds, the funnel, and text that cannot break out of the HTML.
#include "src/report/onboarding_report.h"

#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "src/core/clock.h"
#include "src/core/time_util.h"
#include "state/store.h"

namespace crmbridge::report {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

constexpr int64_t kDay = kDayMs;
constexpr int64_t kHour = 3'600'000;

// The report's "now" comes from an injected clock, never from the wall clock.
class OnboardingReportTest : public ::testing::Test {
 protected:
  OnboardingReportTest() : clock_(*ParseIsoUtcMillis("2026-03-01T12:00:00Z")) {
    options_.stages = {"new", "onboarding", "follow_up", "manual_follow_up", "inactive", "closed"};
    options_.end_stages = {"closed"};
  }
  int64_t DaysAgo(double days) { return clock_.NowMillis() - static_cast<int64_t>(days * kDay); }

  void Move(const std::string& id, const std::string& system, const std::string& from,
            const std::string& to, int64_t at_ms) {
    transitions_.push_back(StageTransition{"onboarding", id, system, from, to, at_ms});
  }
  void Snap(const std::string& id, const std::string& title, const std::string& stage,
            int64_t deleted_ms = 0) {
    Snapshot s;
    s.entity = "onboarding";
    s.canonical_id = id;
    s.fields = {{"title", title}, {"stage", stage}};
    s.deleted_ms = deleted_ms;
    snapshots_.push_back(s);
  }
  OnboardingReport Build() {
    options_.now_ms = clock_.NowMillis();
    return BuildOnboardingReport(snapshots_, transitions_, options_);
  }
  static const OnboardingTimeline* Find(const OnboardingReport& r, const std::string& id) {
    for (const OnboardingTimeline& t : r.onboardings)
      if (t.canonical_id == id) return &t;
    return nullptr;
  }

  FakeClock clock_;
  ReportOptions options_;
  std::vector<Snapshot> snapshots_;
  std::vector<StageTransition> transitions_;
};

TEST_F(OnboardingReportTest, IntervalsFollowTheTransitionsAcrossSystems) {
  Snap("o1", "Acme AB", "follow_up");
  Move("o1", "hubspot", "", "new", DaysAgo(40));
  Move("o1", "hubspot", "new", "onboarding", DaysAgo(38));
  Move("o1", "dynamics365", "onboarding", "follow_up", DaysAgo(8));
  // The same move read back from another system is not a second stay.
  Move("o1", "totango", "onboarding", "follow_up", DaysAgo(7));
  OnboardingReport r = Build();

  ASSERT_EQ(r.onboardings.size(), 1u);
  const OnboardingTimeline& t = r.onboardings[0];
  EXPECT_EQ(t.title, "Acme AB");
  EXPECT_EQ(t.stage, "follow_up");
  ASSERT_EQ(t.intervals.size(), 3u);
  EXPECT_EQ(t.intervals[0].stage, "new");
  EXPECT_EQ(t.intervals[0].entered_ms, DaysAgo(40));
  EXPECT_EQ(t.intervals[0].left_ms, DaysAgo(38));
  EXPECT_EQ(t.intervals[0].moved_by, "hubspot");
  EXPECT_EQ(t.intervals[1].stage, "onboarding");
  EXPECT_EQ(t.intervals[1].left_ms, DaysAgo(8));
  EXPECT_EQ(t.intervals[2].stage, "follow_up");
  EXPECT_EQ(t.intervals[2].moved_by, "dynamics365");
  EXPECT_EQ(t.intervals[2].left_ms, 0);
  EXPECT_EQ(t.in_stage_ms, 8 * kDay);
  EXPECT_EQ(WholeDays(t.in_stage_ms), 8);
  EXPECT_EQ(t.open_ms, 40 * kDay);
  EXPECT_FALSE(t.ended);
  EXPECT_EQ(t.started_ms(), DaysAgo(40));
}

TEST_F(OnboardingReportTest, TheClockStopsAtTheEndStage) {
  Snap("o1", "Done AB", "closed");
  Move("o1", "hubspot", "", "new", DaysAgo(50));
  Move("o1", "hubspot", "new", "onboarding", DaysAgo(45));
  Move("o1", "hubspot", "onboarding", "closed", DaysAgo(20));
  OnboardingReport r = Build();

  // Ended onboardings are not listed by default, but the funnel counts them.
  EXPECT_TRUE(r.onboardings.empty());
  EXPECT_EQ(r.total, 1);
  EXPECT_EQ(r.open, 0);
  EXPECT_EQ(r.funnel.back().stage, "closed");
  EXPECT_EQ(r.funnel.back().count, 1);
  EXPECT_TRUE(r.funnel.back().end);

  options_.include_ended = true;
  r = Build();
  ASSERT_EQ(r.onboardings.size(), 1u);
  const OnboardingTimeline& t = r.onboardings[0];
  EXPECT_TRUE(t.ended);
  EXPECT_EQ(t.in_stage_ms, 0);  // 20 days in closed are not counted
  EXPECT_EQ(t.open_ms, 30 * kDay);
  // 30 days open, 25 of them in onboarding, but ended: neither stuck nor overdue.
  EXPECT_FALSE(t.stuck);
  EXPECT_FALSE(t.overdue);

  // A month later nothing has moved: the clock stays stopped.
  clock_.Advance(std::chrono::hours(24 * 30));
  r = Build();
  EXPECT_EQ(r.onboardings[0].in_stage_ms, 0);
  EXPECT_EQ(r.onboardings[0].open_ms, 30 * kDay);
}

TEST_F(OnboardingReportTest, LeavingTheEndStageRestartsTheClockFromZero) {
  Snap("o1", "Reopened AB", "onboarding");
  Move("o1", "hubspot", "", "onboarding", DaysAgo(70));
  Move("o1", "hubspot", "onboarding", "closed", DaysAgo(60));
  Move("o1", "totango", "closed", "onboarding", DaysAgo(5));
  OnboardingReport r = Build();

  ASSERT_EQ(r.onboardings.size(), 1u);
  const OnboardingTimeline& t = r.onboardings[0];
  ASSERT_EQ(t.intervals.size(), 3u);
  EXPECT_TRUE(t.intervals[1].end);
  EXPECT_EQ(t.intervals[2].moved_by, "totango");
  // Counted again from when it left closed, not from its first stay in onboarding.
  EXPECT_EQ(t.in_stage_ms, 5 * kDay);
  // Open: 10 days before closing and 5 since; the 55 days in closed are left out.
  EXPECT_EQ(t.open_ms, 15 * kDay);
  EXPECT_FALSE(t.ended);
  EXPECT_FALSE(t.stuck);
  EXPECT_FALSE(t.overdue);
}

TEST_F(OnboardingReportTest, StuckAtThirtyDaysInAStageAndOverdueAtSixtyDaysOpen) {
  Snap("just_under", "Under", "onboarding");
  Move("just_under", "hubspot", "", "onboarding", DaysAgo(30) + kHour);
  Snap("at_thirty", "At thirty", "onboarding");
  Move("at_thirty", "hubspot", "", "onboarding", DaysAgo(30));
  Snap("moving", "Moving but long", "follow_up");
  Move("moving", "hubspot", "", "new", DaysAgo(61));
  Move("moving", "hubspot", "new", "follow_up", DaysAgo(3));
  OnboardingReport r = Build();

  EXPECT_FALSE(Find(r, "just_under")->stuck);
  EXPECT_TRUE(Find(r, "at_thirty")->stuck);
  EXPECT_FALSE(Find(r, "at_thirty")->overdue);
  // Moved recently, so not stuck in its stage, but open past the 60-day rule.
  EXPECT_FALSE(Find(r, "moving")->stuck);
  EXPECT_TRUE(Find(r, "moving")->overdue);
  EXPECT_EQ(r.stuck, 1);
  EXPECT_EQ(r.overdue, 1);
  // The longest in its stage first.
  std::vector<std::string> order;
  for (const OnboardingTimeline& t : r.onboardings) order.push_back(t.canonical_id);
  EXPECT_THAT(order, ElementsAre("at_thirty", "just_under", "moving"));

  // --stuck-after 7d: a tighter threshold flags more.
  options_.stuck_after_ms = 7 * kDay;
  options_.escalate_after_ms = 90 * kDay;
  r = Build();
  EXPECT_TRUE(Find(r, "just_under")->stuck);
  EXPECT_FALSE(Find(r, "moving")->overdue);
}

TEST_F(OnboardingReportTest, FunnelCountsEveryStageInProcessOrder) {
  Snap("a", "A", "new");
  Move("a", "hubspot", "", "new", DaysAgo(40));
  Snap("b", "B", "new");
  Move("b", "hubspot", "", "new", DaysAgo(2));
  Snap("c", "C", "inactive");
  Move("c", "hubspot", "", "inactive", DaysAgo(1));
  Snap("d", "D", "closed");
  Move("d", "hubspot", "", "closed", DaysAgo(1));
  Snap("gone", "Deleted", "new", /*deleted_ms=*/DaysAgo(1));
  Move("gone", "hubspot", "", "new", DaysAgo(3));
  Snap("odd", "Odd", "paused");  // not a declared stage: still counted, after the others
  OnboardingReport r = Build();

  std::vector<std::string> rows;
  for (const FunnelRow& f : r.funnel) rows.push_back(f.stage + "=" + std::to_string(f.count) + "/" + std::to_string(f.stuck));
  EXPECT_THAT(rows, ElementsAre("new=2/1", "onboarding=0/0", "follow_up=0/0", "manual_follow_up=0/0",
                                "inactive=1/0", "closed=1/0", "paused=1/0"));
  EXPECT_EQ(r.total, 5);  // the deleted one is left out
  EXPECT_EQ(r.open, 4);
  EXPECT_EQ(Find(r, "gone"), nullptr);
}

TEST_F(OnboardingReportTest, SnapshotStageWithoutATransitionCountsFromItsChange) {
  // Moved by an on_delete mark, which records no transition: the snapshot says when.
  Snapshot s;
  s.entity = "onboarding";
  s.canonical_id = "m";
  s.fields = {{"title", "Marked"}, {"stage", "inactive"}};
  s.changed_ms = {{"stage", DaysAgo(4)}};
  snapshots_.push_back(s);
  Move("m", "hubspot", "", "onboarding", DaysAgo(10));
  OnboardingReport r = Build();
  const OnboardingTimeline* t = Find(r, "m");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->stage, "inactive");
  ASSERT_EQ(t->intervals.size(), 2u);
  EXPECT_EQ(t->intervals[0].left_ms, DaysAgo(4));
  EXPECT_EQ(t->intervals[1].moved_by, "");
  EXPECT_EQ(t->in_stage_ms, 4 * kDay);
}

TEST_F(OnboardingReportTest, AsOfAnEarlierDateIgnoresLaterMoves) {
  Snap("o1", "Acme AB", "closed");
  snapshots_.back().updated_ms = DaysAgo(5);  // the snapshot is today's: closed since
  Move("o1", "hubspot", "", "onboarding", DaysAgo(40));
  Move("o1", "hubspot", "onboarding", "closed", DaysAgo(5));
  options_.now_ms = DaysAgo(10);
  OnboardingReport r = BuildOnboardingReport(snapshots_, transitions_, options_);
  ASSERT_EQ(r.onboardings.size(), 1u);
  EXPECT_EQ(r.onboardings[0].stage, "onboarding");
  EXPECT_EQ(r.onboardings[0].in_stage_ms, 30 * kDay);
  EXPECT_TRUE(r.onboardings[0].stuck);
}

// As of a date before an onboarding existed, it is not in the report: not listed as open with no
// stage, not counted in the funnel.
TEST_F(OnboardingReportTest, AsOfADateBeforeAnOnboardingExistedLeavesItOut) {
  Snap("o1", "Acme AB", "onboarding");
  snapshots_.back().updated_ms = DaysAgo(5);
  Move("o1", "hubspot", "", "new", DaysAgo(20));
  Move("o1", "hubspot", "new", "onboarding", DaysAgo(5));
  Snap("o2", "Beta AB", "new");  // no history: its stage since the snapshot's change
  snapshots_.back().changed_ms = {{"stage", DaysAgo(15)}};
  Snap("o3", "Gamma AB", "new");
  Move("o3", "hubspot", "", "new", DaysAgo(40));
  options_.now_ms = DaysAgo(30);
  OnboardingReport r = BuildOnboardingReport(snapshots_, transitions_, options_);
  EXPECT_EQ(r.total, 1);
  EXPECT_EQ(r.open, 1);
  ASSERT_EQ(r.onboardings.size(), 1u);
  EXPECT_EQ(r.onboardings[0].canonical_id, "o3");
  for (const FunnelRow& row : r.funnel) EXPECT_EQ(row.count, row.stage == "new" ? 1 : 0) << row.stage;
}

TEST_F(OnboardingReportTest, HistoryStartingMidwayKeepsTheEarlierStageWithAnUnknownStart) {
  Snap("o1", "Old AB", "follow_up");
  Move("o1", "hubspot", "onboarding", "follow_up", DaysAgo(2));
  OnboardingReport r = Build();
  const OnboardingTimeline& t = r.onboardings[0];
  ASSERT_EQ(t.intervals.size(), 2u);
  EXPECT_EQ(t.intervals[0].stage, "onboarding");
  EXPECT_EQ(t.intervals[0].entered_ms, 0);
  EXPECT_EQ(t.open_ms, 2 * kDay);  // an unknown start is not guessed at
  EXPECT_EQ(RenderJson(r)["onboardings"][0]["history"][0]["entered"], json());
}

TEST_F(OnboardingReportTest, StagesAndEndStagesComeFromTheMapping) {
  ReportOptions o;
  o.entity = "onboarding";
  // A plan is built by the loader only: use the shipped preset.
  // No kind traits: the report needs the plan's stages, not what each system can carry.
  MappingSystems systems{{{"hubspot", "hubspot"}, {"dynamics365", "dynamics365"}}, {}};
  auto plan = LoadMappingPlan(
      {std::string(CRMBRIDGE_SOURCE_DIR) + "/mappings/presets/onboarding.yaml"}, systems);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_TRUE(StagesFromPlan(**plan, &o).ok());
  EXPECT_EQ(o.stages.front(), "new");
  EXPECT_EQ(o.end_stages, std::set<std::string>{"closed"});
  // The team's names for the stages: HubSpot's, the first system whose mapping reads the stage
  // through a value table into labels (Dynamics 365 stores choice numbers, no labels).
  EXPECT_EQ(o.label_system, "hubspot");
  EXPECT_EQ(o.stage_labels.at("onboarding"), "Onboarding – Pågår");
  EXPECT_EQ(o.stage_labels.at("follow_up"), "Må följas upp");
  EXPECT_EQ(o.stage_labels.size(), o.stages.size()) << "every declared stage has its label";
  o.entity = "invoice";
  Status s = StagesFromPlan(**plan, &o);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("invoice"));
}

TEST_F(OnboardingReportTest, TextAndJsonShowStageDaysAndFlags) {
  Snap("o1", "Söderberg & Co", "onboarding");
  Move("o1", "hubspot", "", "onboarding", DaysAgo(31.5));
  Snap("o2", "Fresh AB", "new");
  Move("o2", "dynamics365", "", "new", DaysAgo(1));
  OnboardingReport r = Build();

  const std::string text = RenderText(r);
  EXPECT_THAT(text, HasSubstr("2 open, 1 stuck 30+ days in their stage, 0 open 60+ days"));
  EXPECT_THAT(text, HasSubstr("Söderberg & Co"));
  EXPECT_THAT(text, HasSubstr("stuck 30d+"));
  EXPECT_THAT(text, HasSubstr("2026-01-29"));  // entered onboarding 31.5 days before 2026-03-01 12:00

  const json j = RenderJson(r);
  EXPECT_EQ(j["as_of"], "2026-03-01T12:00:00Z");
  EXPECT_EQ(j["summary"]["open"], 2);
  EXPECT_EQ(j["onboardings"][0]["title"], "Söderberg & Co");
  EXPECT_EQ(j["onboardings"][0]["days_in_stage"], 31);
  EXPECT_EQ(j["onboardings"][0]["stuck"], true);
  EXPECT_EQ(j["onboardings"][0]["history"][0]["moved_by"], "hubspot");
  EXPECT_EQ(j["onboardings"][1]["days_in_stage"], 1);
  EXPECT_EQ(j["end_stages"], json::array({"closed"}));
}

TEST_F(OnboardingReportTest, StagesAreShownByTheirLabelsWithTheCanonicalNameBeside) {
  options_.stage_labels = {{"onboarding", "Onboarding – Pågår"}, {"closed", "Avslutad"}};
  options_.label_system = "hubspot";
  Snap("o1", "SE Bygg Göteborg 14 AB – onboarding of the whole group", "onboarding");
  Move("o1", "hubspot", "new", "onboarding", DaysAgo(3));
  OnboardingReport r = Build();

  const std::string text = RenderText(r);
  EXPECT_THAT(text, HasSubstr("Stages as hubspot names them"));
  EXPECT_THAT(text, HasSubstr("Onboarding – Pågår"));
  EXPECT_THAT(text, HasSubstr("end stage: Avslutad"));

  const json j = RenderJson(r);
  EXPECT_EQ(j["stage_labels"]["system"], "hubspot");
  EXPECT_EQ(j["onboardings"][0]["stage"], "onboarding");
  EXPECT_EQ(j["onboardings"][0]["stage_label"], "Onboarding – Pågår");
  EXPECT_EQ(j["onboardings"][0]["history"][0]["stage_label"], "new") << "no label: the canonical name";

  const std::string html = RenderHtml(r);
  EXPECT_THAT(html, HasSubstr(">Onboarding – Pågår</text>"));  // the funnel's row
  EXPECT_THAT(html, HasSubstr("<title>Onboarding – Pågår (onboarding): 1 onboarding(s)</title>"));
  EXPECT_THAT(html, HasSubstr("3 d in Onboarding – Pågår"));
  EXPECT_THAT(html, HasSubstr("<td title=\"onboarding\">Onboarding – Pågår</td>"));
  // A long name keeps its beginning and is cut at its end; the whole of it is the tooltip.
  EXPECT_THAT(html, HasSubstr(">SE Bygg Göteborg 14 AB – on…</text>"));
  EXPECT_THAT(html, HasSubstr("<title>SE Bygg Göteborg 14 AB – onboarding of the whole group</title>"));
}

TEST_F(OnboardingReportTest, EndedOnboardingsShowTheirClockStoppedInJson) {
  Snap("o1", "Done", "closed");
  Move("o1", "hubspot", "", "closed", DaysAgo(3));
  options_.include_ended = true;
  const json j = RenderJson(Build());
  EXPECT_EQ(j["onboardings"][0]["ended"], true);
  EXPECT_EQ(j["onboardings"][0]["days_in_stage"], json());
}

TEST(EscapeHtmlTest, EscapesEveryCharacterThatCanEndTextOrAnAttribute) {
  EXPECT_EQ(EscapeHtml("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;");
  EXPECT_EQ(EscapeHtml("Söderberg"), "Söderberg");
}

// Records' times reach the history unbounded (a vendor's modification time far before 1970):
// days are held to what can be counted instead of overflowing, and the time axis keeps to a few
// labels however long it spans (here from 1970 to an --as-of at the end of year 9999).
TEST_F(OnboardingReportTest, TimesAtTheEndsOfTheRangeNeitherOverflowNorFloodTheAxis) {
  Move("o1", "hubspot", "", "new", std::numeric_limits<int64_t>::min() + 1);
  Move("o1", "hubspot", "new", "onboarding", std::numeric_limits<int64_t>::min() + 2);
  OnboardingReport r = Build();
  const OnboardingTimeline* o1 = Find(r, "o1");
  ASSERT_NE(o1, nullptr);
  EXPECT_EQ(o1->open_ms, std::numeric_limits<int64_t>::max());
  EXPECT_TRUE(o1->overdue);
  EXPECT_TRUE(json::accept(RenderJson(r).dump()));

  Move("o2", "hubspot", "", "new", 1);
  options_.now_ms = *ParseIsoUtcMillis("9999-12-31T23:59:59Z");
  r = BuildOnboardingReport(snapshots_, transitions_, options_);
  const std::string html = RenderHtml(r);
  size_t ticks = 0;
  for (size_t at = html.find("<text class=\"muted\""); at != std::string::npos;
       at = html.find("<text class=\"muted\"", at + 1))
    ++ticks;
  EXPECT_GE(ticks, 1u);
  EXPECT_LE(ticks, 9u);
}

TEST_F(OnboardingReportTest, HtmlIsSelfContainedAndEscapesEveryText) {
  Snap("o1\"><u>", "<img src=x onerror=alert(1)> & Co", "onboarding");
  Move("o1\"><u>", "hub<spot>", "", "onboarding", DaysAgo(40));
  Snap("o2", "Plain AB", "new");
  Move("o2", "hubspot", "", "new", DaysAgo(3));
  const std::string html = RenderHtml(Build());

  EXPECT_THAT(html, HasSubstr("&lt;img src=x onerror=alert(1)&gt; &amp; Co"));
  EXPECT_THAT(html, Not(HasSubstr("<img")));
  EXPECT_THAT(html, Not(HasSubstr("<u>")));
  EXPECT_THAT(html, Not(HasSubstr("hub<spot>")));
  EXPECT_THAT(html, HasSubstr("data-id=\"o1&quot;&gt;&lt;u&gt;\""));
  // Nothing is fetched: no script, no external stylesheet, font or image.
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("http://")));
  EXPECT_THAT(html, Not(HasSubstr("https://")));
  EXPECT_THAT(html, Not(HasSubstr("<link")));
  EXPECT_THAT(html, Not(HasSubstr("url(")));
  // The funnel and the timeline are there, with one row per stage and per onboarding.
  EXPECT_THAT(html, HasSubstr("<section id=\"funnel\">"));
  EXPECT_THAT(html, HasSubstr("<g class=\"funnel-row\" data-stage=\"closed\" data-count=\"0\">"));
  EXPECT_THAT(html, HasSubstr("<g class=\"funnel-row\" data-stage=\"onboarding\" data-count=\"1\">"));
  EXPECT_THAT(html, HasSubstr("<section id=\"timeline\">"));
  EXPECT_THAT(html, HasSubstr("<g class=\"timeline stuck\""));
  EXPECT_THAT(html, HasSubstr("class=\"segment current stuck\""));
}

TEST(OnboardingReportStoreTest, LoadsFromARealStore) {
  auto store = OpenSqliteStore(":memory:");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const int64_t t0 = *ParseIsoUtcMillis("2026-02-01T00:00:00Z");
  StateBatch batch;
  Snapshot snap;
  snap.entity = "onboarding";
  snap.canonical_id = "c1";
  snap.fields = {{"title", "Store AB"}, {"stage", "onboarding"}};
  batch.PutSnapshot(snap);
  batch.AddStageTransition(StageTransition{"onboarding", "c1", "hubspot", "", "new", t0});
  batch.AddStageTransition(StageTransition{"onboarding", "c1", "hubspot", "new", "onboarding", t0 + 2 * kDay});
  ASSERT_TRUE((*store)->Apply(batch).ok());
  ReportOptions o;
  o.stages = {"new", "onboarding", "closed"};
  o.end_stages = {"closed"};
  o.now_ms = t0 + 12 * kDay;
  auto r = LoadOnboardingReport(**store, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->onboardings.size(), 1u);
  EXPECT_EQ(r->onboardings[0].title, "Store AB");
  EXPECT_EQ(r->onboardings[0].in_stage_ms, 10 * kDay);
  EXPECT_EQ(r->onboardings[0].intervals.size(), 2u);
}

}  // namespace
}  // namespace crmbridge::report
