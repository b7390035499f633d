// Metrics: what a run, the API calls and webhook deliveries add, as a Prometheus scrape shows it.
#include "src/metrics/metrics.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/engine/mock_store.h"

namespace crmbridge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Return;

RunSummary ARun() {
  RunSummary s;
  s.run_id = 7;
  s.started_ms = 1'700'000'000'000;
  s.finished_ms = s.started_ms + 12'500;
  EntityCounts& c = s.counts["dynamics365"]["onboarding"];
  c.read = 3;
  c.created = 2;
  c.updated = 1;
  c.dead_lettered = 1;
  c.change_lag.Observe(0.2);
  c.change_lag.Observe(1.5);
  c.change_lag.Observe(4000);
  return s;
}

TEST(MetricsTest, ARunAddsReadsWritesByOutcomeItsDurationAndTheLagOfItsChanges) {
  Metrics m({"dynamics365", "hubspot"});
  m.AddRun(ARun());
  const std::string text = m.Text();
  EXPECT_THAT(text, HasSubstr(
      "crmbridge_records_read_total{entity=\"onboarding\",system=\"dynamics365\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_writes_total{entity=\"onboarding\",outcome=\"created\","
                              "system=\"dynamics365\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_writes_total{entity=\"onboarding\",outcome=\"dead_lettered\","
                              "system=\"dynamics365\"} 1\n"));
  // Cumulative buckets: 0.2 s is under 0.5, 1.5 s under 2, 4000 s over an hour.
  EXPECT_THAT(text, HasSubstr("crmbridge_change_lag_seconds_bucket{entity=\"onboarding\","
                              "system=\"dynamics365\",le=\"0.5\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_change_lag_seconds_bucket{entity=\"onboarding\","
                              "system=\"dynamics365\",le=\"2\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_change_lag_seconds_bucket{entity=\"onboarding\","
                              "system=\"dynamics365\",le=\"3600\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_change_lag_seconds_count{entity=\"onboarding\","
                              "system=\"dynamics365\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_run_duration_seconds_bucket{le=\"15\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_run_duration_seconds_bucket{le=\"5\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_runs_total{outcome=\"dead_lettered\"} 1\n"));
  // Every system reached: a success, though a record's write failed for good.
  EXPECT_THAT(text, HasSubstr("crmbridge_last_success_timestamp_seconds 1700000012.5\n"));
  // Series of every configured system exist from the start.
  EXPECT_THAT(text, HasSubstr("crmbridge_outbox_pending{system=\"hubspot\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_rate_limited_total{system=\"hubspot\"} 0\n"));
}

TEST(MetricsTest, ARunThatReadOnlyWhatWasAnnouncedOrNothingIsNoSuccess) {
  Metrics m({"hubspot"});
  RunSummary targeted = ARun();
  targeted.targeted = true;
  m.AddRun(targeted);
  RunSummary writes = ARun();
  writes.writes_only = true;
  m.AddRun(writes);
  const std::string text = m.Text();
  EXPECT_THAT(text, HasSubstr("crmbridge_runs_total{outcome=\"dead_lettered\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_last_success_timestamp_seconds 0\n"));
}

TEST(MetricsTest, ARunThatMissedASystemIsNoSuccessAndADryRunAddsNothing) {
  Metrics m({"hubspot"});
  RunSummary failed = ARun();
  failed.unreachable["hubspot"] = "UNAVAILABLE: connection refused";
  m.AddRun(failed);
  RunSummary dry = ARun();
  dry.dry_run = true;
  m.AddRun(dry);
  const std::string text = m.Text();
  EXPECT_THAT(text, HasSubstr("crmbridge_runs_total{outcome=\"unreachable\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_last_success_timestamp_seconds 0\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_records_read_total{entity=\"onboarding\","
                              "system=\"dynamics365\"} 3\n"));  // the real run's only
}

TEST(MetricsTest, EachApiAttemptIsCountedByStatusAndA429AlsoAsRateLimited) {
  Metrics m({"hubspot"});
  ExchangeObserver observe = m.ApiObserver();
  Request r;
  r.system = "hubspot";
  Response ok;
  ok.status = 200;
  Response limited;
  limited.status = 429;
  observe(r, ok);
  observe(r, ok);
  observe(r, limited);
  observe(r, Status(StatusCode::kDeadlineExceeded, "timed out"));
  observe(r, Status(StatusCode::kUnavailable, "connection refused"));
  const std::string text = m.Text();
  EXPECT_THAT(text, HasSubstr("crmbridge_api_requests_total{code=\"200\",system=\"hubspot\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_api_requests_total{code=\"429\",system=\"hubspot\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_api_requests_total{code=\"timeout\",system=\"hubspot\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("crmbridge_api_requests_total{code=\"connection\",system=\"hubspot\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_rate_limited_total{system=\"hubspot\"} 1\n"));
}

TEST(MetricsTest, WebhookEventsAreCountedOnlyUnderAConfiguredSystemsName) {
  Metrics m({"hubspot"});
  m.AddWebhookEvents("hubspot", WebhookOutcome::kAccepted, 3);
  m.AddWebhookEvents("hubspot", WebhookOutcome::kDuplicate, 1);
  m.AddWebhookEvents("hubspot", WebhookOutcome::kIgnored, 0);
  // A path segment a caller chose must not become a series.
  m.AddWebhookEvents("x<script>", WebhookOutcome::kRefused, 1);
  const std::string text = m.Text();
  EXPECT_THAT(text,
              HasSubstr("crmbridge_webhook_events_total{outcome=\"accepted\",system=\"hubspot\"} 3\n"));
  EXPECT_THAT(text,
              HasSubstr("crmbridge_webhook_events_total{outcome=\"duplicate\",system=\"hubspot\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("outcome=\"ignored\"")));
  EXPECT_THAT(text, Not(HasSubstr("script")));
}

TEST(MetricsTest, TheStoreGivesOutboxAndDeadLetterGaugesAndTheLastSuccessfulRun) {
  testing::MockStore store;
  EXPECT_CALL(store, OutboxCounts()).WillOnce(Return(nlohmann::json{{"hubspot", 4}}));
  EXPECT_CALL(store, DeadLetterCounts()).WillOnce(Return(nlohmann::json{{"portal", 2}}));
  RunRecord failed{9, "sync", 5000, 6000, "failed", nlohmann::json::object(), "boom"};
  RunRecord ok{8, "sync", 3000, 4000, "ok", nlohmann::json::object(), ""};
  EXPECT_CALL(store, RecentRuns(::testing::_))
      .WillOnce(Return(std::vector<RunRecord>{failed, ok}));
  Metrics m({"hubspot", "portal"});
  ASSERT_TRUE(m.ReadStore(store).ok());
  const std::string text = m.Text();
  EXPECT_THAT(text, HasSubstr("crmbridge_outbox_pending{system=\"hubspot\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_outbox_pending{system=\"portal\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_dead_letters{system=\"portal\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("crmbridge_last_success_timestamp_seconds 4\n"));
}

TEST(MetricsTest, TheFileIsReplacedWholeAndAnUnwritablePathIsAnError) {
  Metrics m({"hubspot"});
  const auto dir = std::filesystem::temp_directory_path() /
                   ("crmbridge-metrics-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "crmbridge.prom").string();
  ASSERT_TRUE(m.WriteFile(path).ok());
  std::ifstream in(path);
  std::stringstream read;
  read << in.rdbuf();
  EXPECT_EQ(read.str(), m.Text());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const Status bad = m.WriteFile((dir / "no-such-dir" / "x.prom").string());
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.message(), HasSubstr("no-such-dir"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace crmbridge
