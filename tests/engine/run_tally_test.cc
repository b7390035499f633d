#include "src/engine/run_summary.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "src/core/logging.h"

namespace crmbridge {
namespace {

TEST(RunTallyTest, TheFirstFewWarningsOfAKindAreShownAndTheRestCountedAtTheEnd) {
  std::ostringstream log;
  InitLogging(LogFormat::kText, spdlog::level::info,
              std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  RunTally tally;
  int shown = 0;
  for (int i = 0; i < 1000; ++i) shown += tally.ShowRecordWarning("hubspot", "contacts not synced as duplicates");
  EXPECT_EQ(shown, RunTally::kRecordWarningsShown);
  // Another kind, or another system, has examples of its own.
  EXPECT_TRUE(tally.ShowRecordWarning("hubspot", "companies not synced as duplicates"));
  EXPECT_TRUE(tally.ShowRecordWarning("dynamics365", "contacts not synced as duplicates"));
  tally.LogHiddenWarnings();
  InitLogging(LogFormat::kText, spdlog::level::warn);
  EXPECT_NE(log.str().find("hubspot: 995 more contacts not synced as duplicates (the first 5 are "
                           "shown above; `sync --verbose` or `backfill --verbose` shows each)"),
            std::string::npos)
      << log.str();
  EXPECT_EQ(log.str().find("companies"), std::string::npos) << "nothing held back, nothing said";
}

TEST(RunTallyTest, VerboseShowsEveryWarning) {
  RunTally tally;
  tally.set_show_every_warning(true);
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(tally.ShowRecordWarning("hubspot", "contacts rejected"));
}

}  // namespace
}  // namespace crmbridge
