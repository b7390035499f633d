// Engine behaviour users depend on: idempotent reruns, echo suppression, retries that converge,
// dead letters that do not stop a batch, crash recovery without duplicates, dry runs that write
// nothing, and the lease.
#include "src/engine/sync_engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <thread>

#include "src/engine/bootstrap.h"
#include "src/engine/chunk_writes.h"
#include "tests/engine/fake_connector.h"

namespace crmbridge {
namespace {

using testing::FakeConnector;
using testing::FakeSystem;
using nlohmann::json;

constexpr char kMapping[] = R"(version: 1
entities:
  onboarding:
    fields:
      title: {type: string, required: true}
      stage: {type: string}
tables:
  beta_stage:
    - {native: 1, canonical: new}
    - {native: 2, canonical: onboarding}
systems:
  alpha:
    onboarding:
      object: tickets
      fields:
        title: {native: subject, transforms: [trim]}
        stage: {native: stage}
  beta:
    onboarding:
      object: opportunities
      fields:
        title: {native: name}
        stage: {native: stagecode, transforms: [{table: beta_stage}]}
)";

// The systems kMapping names, as a HubSpot and a Dynamics 365 system.
MappingSystems AlphaBeta() { return MappingSystemsOf({{"alpha", "hubspot"}, {"beta", "dynamics365"}}); }

class SyncEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crmbridge-engine-XXXXXX";
    dir_ = mkdtemp(tmpl);
    const std::string path = dir_ + "/mapping.yaml";
    std::ofstream(path) << kMapping;
    auto plan = LoadMappingPlan({path}, AlphaBeta());
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
    auto store = OpenSqliteStore(dir_ + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    config_.sync.max_outbox_attempts = 3;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  // A fresh engine over the same systems and store, as a new process would build.
  std::unique_ptr<SyncEngine> NewEngine() {
    std::map<std::string, std::unique_ptr<Connector>> connectors;
    auto a = std::make_unique<FakeConnector>("alpha", &alpha_);
    auto b = std::make_unique<FakeConnector>("beta", &beta_);
    alpha_conn_ = a.get();
    beta_conn_ = b.get();
    connectors["alpha"] = std::move(a);
    connectors["beta"] = std::move(b);
    return std::make_unique<SyncEngine>(&config_, plan_, store_.get(), std::move(connectors),
                                        &clock_);
  }

  // Runs one sync with a fresh engine, kept alive so its connectors' call counts can be read.
  RunSummary Sync(bool dry_run = false) {
    engine_ = NewEngine();
    RunOptions opt;
    opt.holder = "test";
    opt.dry_run = dry_run;
    auto s = engine_->RunOnce(opt);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : RunSummary{};
  }

  // One run over connectors of the test's own making (a fake answering as a broken API would),
  // its engine kept in engine_ so that they can be looked at afterwards.
  Result<RunSummary> RunWith(std::unique_ptr<Connector> alpha, std::unique_ptr<Connector> beta) {
    std::map<std::string, std::unique_ptr<Connector>> connectors;
    connectors["alpha"] = std::move(alpha);
    connectors["beta"] = std::move(beta);
    engine_ = std::make_unique<SyncEngine>(&config_, plan_, store_.get(), std::move(connectors),
                                           &clock_);
    RunOptions opt;
    opt.holder = "test";
    return engine_->RunOnce(opt);
  }

  void SeedAlpha(int n) {
    for (int i = 0; i < n; ++i)
      alpha_.Put("t" + std::to_string(i), {{"subject", "  Customer " + std::to_string(i) + " "},
                                           {"stage", i % 2 ? "onboarding" : "new"}});
  }

  std::string dir_;
  AppConfig config_;
  std::shared_ptr<const MappingPlan> plan_;
  std::unique_ptr<Store> store_;
  FakeClock clock_;
  FakeSystem alpha_, beta_;
  FakeConnector* alpha_conn_ = nullptr;
  FakeConnector* beta_conn_ = nullptr;
  std::unique_ptr<SyncEngine> engine_;
};

TEST_F(SyncEngineTest, FirstRunCreatesEveryRecordMappedFieldByField) {
  SeedAlpha(5);
  RunSummary s = Sync();
  EXPECT_EQ(s.TotalWrites(), 5);
  EXPECT_EQ(s.counts["beta"]["onboarding"].created, 5);
  ASSERT_EQ(beta_.rows().size(), 5u);
  for (const auto& [id, row] : beta_.rows()) {
    const std::string title = row.fields["name"];
    EXPECT_EQ(title.rfind("Customer ", 0), 0u) << "trimmed on the way in";
    EXPECT_NE(title.back(), ' ');
    EXPECT_TRUE(row.fields["stagecode"] == 1 || row.fields["stagecode"] == 2);
  }
  // Batches of the connector's maximum (2): 5 writes take 3 calls.
  EXPECT_EQ(beta_conn_->write_calls, 3);
}

// A next-page link that changes every time (a counter in a skip token) over pages that repeat the
// same records: without a check, the read would never end.
class RepeatingPagesConnector : public FakeConnector {
 public:
  using FakeConnector::FakeConnector;
  Result<Page> ReadChanges(const ObjectRef& ref, const Cursor&, const ReadContext& ctx) override {
    auto page = FakeConnector::ReadChanges(ref, "", ctx);
    if (!page.ok()) return page;
    ++pages;
    page->has_more = true;
    page->next = "skip=" + std::to_string(pages);
    return page;
  }
  int pages = 0;
};

TEST_F(SyncEngineTest, PagesThatRepeatTheSameRecordsUnderNewLinksAreALoop) {
  SeedAlpha(2);  // one page of two
  auto looping = std::make_unique<RepeatingPagesConnector>("alpha", &alpha_);
  RepeatingPagesConnector* alpha = looping.get();
  auto s = RunWith(std::move(looping), std::make_unique<FakeConnector>("beta", &beta_));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(alpha->pages, 2) << "the second page, the first one again, ends the read";
  ASSERT_TRUE(s->unreachable.count("alpha"));
  EXPECT_NE(s->unreachable.at("alpha").find("the page holds the same 2 records as an earlier page "
                                            "of this read"),
            std::string::npos)
      << s->unreachable.at("alpha");
  EXPECT_EQ(beta_.rows().size(), 2u) << "the first page was read and carried over";
}

// A write answer that gives the records ids crmbridge cannot keep, or one id for two records.
class BadIdsConnector : public FakeConnector {
 public:
  using FakeConnector::FakeConnector;
  Result<std::vector<WriteOutcome>> Write(const ObjectRef& ref,
                                          const std::vector<WriteOp>& ops) override {
    auto out = FakeConnector::Write(ref, ops);
    if (!out.ok() || out->size() < 2 || answers_left == 0) return out;
    --answers_left;
    if (same_id) {
      (*out)[1].native_id = (*out)[0].native_id;
    } else {
      (*out)[0].native_id = std::string(10240, '7');
    }
    return out;
  }
  bool same_id = false;
  int answers_left = 1;
};

class WriteAnswerIdsTest : public SyncEngineTest {
 protected:
  // The first answer for beta spoilt as `same_id` says; then the writes must settle, retried.
  void ExpectRetriedNotStored(bool same_id) {
    SeedAlpha(2);
    auto bad = std::make_unique<BadIdsConnector>("beta", &beta_);
    bad->same_id = same_id;
    auto first = RunWith(std::make_unique<FakeConnector>("alpha", &alpha_), std::move(bad));
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_EQ(first->counts["beta"]["onboarding"].dead_lettered, 0);
    EXPECT_EQ(first->counts["beta"]["onboarding"].retrying, same_id ? 2 : 1);
    // A later attempt settles it: one copy each, no dead letter, and then nothing to do.
    clock_.Advance(std::chrono::hours(2));
    RunSummary second = Sync();
    EXPECT_EQ(second.TotalDeadLettered(), 0);
    EXPECT_EQ(beta_.rows().size(), 2u);
    EXPECT_EQ(Sync().TotalWrites(), 0);
  }
};

TEST_F(WriteAnswerIdsTest, AnIdTooLongToKeepIsRetriedNotStored) { ExpectRetriedNotStored(false); }

TEST_F(WriteAnswerIdsTest, OneIdForTwoRecordsIsRetriedNotStored) { ExpectRetriedNotStored(true); }

// A page that gives its first record twice, the second copy changed later.
class RepeatedIdConnector : public FakeConnector {
 public:
  using FakeConnector::FakeConnector;
  Result<Page> ReadChanges(const ObjectRef& ref, const Cursor& cursor,
                           const ReadContext& ctx) override {
    auto page = FakeConnector::ReadChanges(ref, cursor, ctx);
    if (!page.ok() || page->records.size() < 2 || repeated) return page;
    repeated = true;
    NativeRecord later = page->records[0];
    later.fields["subject"] = "Changed later";
    later.modified_ms += 1000;
    page->records[1] = later;  // the second record of the page is left out of it
    std::swap(page->records[0], page->records[1]);  // and the later copy comes first
    return page;
  }
  bool repeated = false;
};

TEST_F(SyncEngineTest, AnIdGivenTwiceInOnePageIsReadOnceAsItsLastChange) {
  SeedAlpha(2);
  auto s = RunWith(std::make_unique<RepeatedIdConnector>("alpha", &alpha_),
                   std::make_unique<FakeConnector>("beta", &beta_));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->counts["beta"]["onboarding"].created, 1);
  ASSERT_EQ(beta_.rows().size(), 1u);
  EXPECT_EQ(beta_.rows().begin()->second.fields["name"], "Changed later")
      << "the copy changed last, though it came first";
}

TEST_F(SyncEngineTest, SecondRunWritesNothingAnywhere) {
  SeedAlpha(5);
  Sync();
  RunSummary second = Sync();
  EXPECT_EQ(second.TotalWrites(), 0);
  EXPECT_EQ(second.TotalQueued(), 0);
  EXPECT_EQ(alpha_conn_->write_calls, 0);
  EXPECT_EQ(beta_conn_->write_calls, 0);
  EXPECT_GT(second.counts["alpha"]["onboarding"].unchanged, 0);
}

TEST_F(SyncEngineTest, OwnWritesReadBackFromTheTargetAreNotEchoed) {
  SeedAlpha(3);
  Sync();
  // Beta now holds the 3 records crmbridge created; reading them back must not write to alpha.
  RunSummary s = Sync();
  EXPECT_EQ(s.counts["beta"]["onboarding"].read, 3);
  EXPECT_EQ(s.counts["beta"]["onboarding"].unchanged, 3);
  EXPECT_EQ(alpha_conn_->write_calls, 0);
}

TEST_F(SyncEngineTest, AChangeOnEitherSideReachesTheOther) {
  SeedAlpha(3);
  Sync();
  alpha_.Put("t1", {{"subject", "Renamed customer"}});
  RunSummary s = Sync();
  EXPECT_EQ(s.counts["beta"]["onboarding"].updated, 1);
  bool found = false;
  for (const auto& [id, row] : beta_.rows()) found |= row.fields["name"] == "Renamed customer";
  EXPECT_TRUE(found);

  // A change made in beta flows back to alpha, mapped through the stage table in reverse.
  std::string beta_id = beta_.rows().begin()->first;
  beta_.Put(beta_id, {{"stagecode", 2}, {"name", beta_.rows().at(beta_id).fields["name"]}});
  Sync();
  int onboarding = 0;
  for (const auto& [id, row] : alpha_.rows()) onboarding += row.fields["stage"] == "onboarding";
  EXPECT_EQ(onboarding, 2) << "t1 was already onboarding; the changed one moved too";
  // And the write to alpha does not echo back into beta.
  RunSummary quiet = Sync();
  EXPECT_EQ(quiet.TotalWrites(), 0);
}

TEST_F(SyncEngineTest, TransientFailureIsRetriedOnALaterRunAndConverges) {
  SeedAlpha(2);
  auto engine = NewEngine();
  // Fail the first record's write once with a 503.
  Status unavailable = StatusFromHttp(503, "upstream down");
  RunOptions opt;
  opt.holder = "test";
  // Keys are canonical ids, unknown before the run: fail every write of the first call instead.
  beta_conn_->write_call_fault = unavailable;
  auto first = engine->RunOnce(opt);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->counts["beta"]["onboarding"].retrying, 2);
  EXPECT_EQ(beta_.rows().size(), 0u);

  beta_conn_->write_call_fault = Status();
  clock_.Advance(std::chrono::hours(2));  // past the outbox backoff
  auto second = engine->RunOnce(opt);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->counts["beta"]["onboarding"].created, 2);
  EXPECT_EQ(beta_.rows().size(), 2u);
}

// A create the target does not key (Capabilities::unkeyed_creates: each POST makes a new record) is
// recorded as sent before it goes out, so that a run dying before its answer is stored leaves the
// item saying so, and the next attempt looks for what the first made instead of making another.
TEST_F(SyncEngineTest, AnUnkeyedCreateIsRecordedAsSentBeforeItGoesOut) {
  SeedAlpha(2);
  auto engine = NewEngine();
  beta_conn_->mutable_capabilities().unkeyed_creates = {"opportunities"};
  std::vector<std::string> errors_at_send;
  std::vector<int> attempts_sent;
  beta_conn_->on_write = [&](const std::vector<WriteOp>& ops) {
    auto due = store_->DueOutbox(OutboxFilter("beta", clock_.NowMillis(), 0));
    ASSERT_TRUE(due.ok()) << due.status().ToString();
    for (const OutboxItem& item : *due) errors_at_send.push_back(item.last_error);
    for (const WriteOp& op : ops) attempts_sent.push_back(op.attempt);
  };
  RunOptions opt;
  opt.holder = "test";
  auto run = engine->RunOnce(opt);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->counts["beta"]["onboarding"].created, 2);
  EXPECT_EQ(errors_at_send, (std::vector<std::string>(2, kSentUnrecorded)));
  EXPECT_EQ(attempts_sent, (std::vector<int>{0, 0})) << "a first send is no retry";
  auto left = store_->DueOutbox(OutboxFilter("beta", clock_.NowMillis(), 0));
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty()) << "delivered: nothing is left recorded as sent";

  // Without the declaration, nothing is recorded before sending.
  SeedAlpha(3);
  beta_conn_->mutable_capabilities().unkeyed_creates.clear();
  errors_at_send.clear();
  ASSERT_TRUE(engine->RunOnce(opt).ok());
  EXPECT_FALSE(errors_at_send.empty());
  EXPECT_THAT(errors_at_send, ::testing::Each(std::string()));
}

// A connector that throws while writing (an answer it cannot decode, after the writes landed)
// fails that call, not the process: the writes stay queued, and a later run finds the records the
// first call made instead of making them twice.
TEST_F(SyncEngineTest, AWriteThatThrowsFailsTheCallAndALaterRunConverges) {
  SeedAlpha(2);
  auto engine = NewEngine();
  RunOptions opt;
  opt.holder = "test";
  beta_conn_->throw_on_write = true;
  auto first = engine->RunOnce(opt);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->counts["beta"]["onboarding"].created, 0);
  EXPECT_FALSE(beta_conn_->throw_on_write) << "the write was tried";
  auto pending = store_->OutboxCounts();
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ((*pending)["beta"], 2) << pending->dump();

  clock_.Advance(std::chrono::hours(2));  // past the outbox backoff
  auto second = engine->RunOnce(opt);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(beta_.rows().size(), 2u) << "each record once in beta";
  EXPECT_EQ(store_->OutboxCounts()->size(), 0u);
  EXPECT_EQ(Sync().TotalWrites(), 0) << "settled";
}

TEST_F(SyncEngineTest, PermanentFailureDeadLettersOneRecordAndTheBatchGoesOn) {
  SeedAlpha(4);
  // The first run learns the canonical ids; make one record invalid for beta on the next write.
  Sync();
  std::string victim = beta_.rows().begin()->second.key;
  alpha_.Put("t0", {{"subject", "Changed 0"}});
  alpha_.Put("t1", {{"subject", "Changed 1"}});
  alpha_.Put("t2", {{"subject", "Changed 2"}});
  alpha_.Put("t3", {{"subject", "Changed 3"}});
  auto engine = NewEngine();
  beta_conn_->op_faults[victim].push_back(StatusFromHttp(400, "name is too long"));
  RunOptions opt;
  opt.holder = "test";
  auto s = engine->RunOnce(opt);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->TotalDeadLettered(), 1);
  EXPECT_EQ(s->counts["beta"]["onboarding"].updated, 3);
  auto dead = store_->ListDeadLetters(10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].item.canonical_id, victim);
  EXPECT_EQ((*dead)[0].http_status, 400);
  EXPECT_NE((*dead)[0].reason.find("name is too long"), std::string::npos);
}

TEST_F(SyncEngineTest, WriteThatLandedButTimedOutIsNotDuplicated) {
  SeedAlpha(1);
  Sync();  // learn the canonical id
  std::string key = beta_.rows().begin()->second.key;
  alpha_.Put("t0", {{"subject", "Second version"}});
  auto engine = NewEngine();
  beta_conn_->op_faults[key].push_back(Status(StatusCode::kDeadlineExceeded, "timed out"));
  RunOptions opt;
  opt.holder = "test";
  ASSERT_TRUE(engine->RunOnce(opt).ok());
  clock_.Advance(std::chrono::hours(2));
  ASSERT_TRUE(engine->RunOnce(opt).ok());
  EXPECT_EQ(beta_.rows().size(), 1u);
  EXPECT_EQ(beta_.rows().begin()->second.fields["name"], "Second version");
}

TEST_F(SyncEngineTest, CreateThatLandedButTimedOutIsNotDuplicated) {
  // The batch create reaches the system, then the connection drops: no link is saved. The next
  // run reads the record back (it carries crmbridge's key) and retries the upsert by that key, so
  // there is still exactly one record.
  SeedAlpha(3);
  auto engine = NewEngine();
  beta_conn_->applied_then_fault = Status(StatusCode::kDeadlineExceeded, "timed out");
  RunOptions opt;
  opt.holder = "test";
  auto first = engine->RunOnce(opt);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(beta_.rows().size(), 3u);
  clock_.Advance(std::chrono::hours(2));
  auto second = engine->RunOnce(opt);
  ASSERT_TRUE(second.ok());
  auto third = engine->RunOnce(opt);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(beta_.rows().size(), 3u);
  EXPECT_EQ(third->TotalWrites(), 0);
  auto pending = store_->OutboxCounts();
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty() || (*pending)["beta"] == 0) << pending->dump();
}

TEST_F(SyncEngineTest, DryRunWritesNothingAndLeavesStateUntouched) {
  SeedAlpha(3);
  RunSummary plan = Sync(/*dry_run=*/true);
  EXPECT_EQ(plan.plan.size(), 3u);
  EXPECT_EQ(plan.plan[0].action, WriteAction::kCreate);
  EXPECT_EQ(beta_.rows().size(), 0u);
  auto cursors = store_->ListCursors();
  ASSERT_TRUE(cursors.ok());
  EXPECT_TRUE(cursors->empty());
  auto runs = store_->RecentRuns(10);
  ASSERT_TRUE(runs.ok());
  EXPECT_TRUE(runs->empty());
  // The real run afterwards does everything the plan said.
  EXPECT_EQ(Sync().TotalWrites(), 3);
}

TEST_F(SyncEngineTest, AnotherLiveRunHoldingTheLeaseStopsThisOne) {
  ASSERT_TRUE(*store_->AcquireLease("other-host:42", clock_.NowMillis(), 60000));
  SeedAlpha(1);
  RunSummary s = Sync();
  EXPECT_TRUE(s.lease_denied);
  EXPECT_EQ(s.lease_holder, "other-host:42");
  EXPECT_EQ(beta_.rows().size(), 0u);
}

// A holder known to have ended (a process of this machine, killed) has its lease taken over at
// once; one not known so is waited out.
TEST_F(SyncEngineTest, ALeaseLeftByAnEndedProcessIsTakenOverAtOnce) {
  ASSERT_TRUE(*store_->AcquireLease("this-host:42:dead", clock_.NowMillis(), 600000));
  SeedAlpha(1);
  auto engine = NewEngine();
  std::vector<std::string> asked;
  RunOptions opt;
  opt.holder = "test";
  opt.holder_has_ended = [&](const std::string& holder) {
    asked.push_back(holder);
    return false;
  };
  auto waited = engine->RunOnce(opt);
  ASSERT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_TRUE(waited->lease_denied);
  EXPECT_EQ(asked, (std::vector<std::string>{"this-host:42:dead"}));
  EXPECT_EQ(beta_.rows().size(), 0u);

  opt.holder_has_ended = [](const std::string& holder) { return holder == "this-host:42:dead"; };
  auto taken = engine->RunOnce(opt);
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_FALSE(taken->lease_denied);
  EXPECT_EQ(beta_.rows().size(), 1u);
  auto lease = store_->GetLease();
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->has_value()) << "released at the end of the run";
}

TEST_F(SyncEngineTest, ARunWhoseLeaseWasTakenOverStopsWithoutWriting) {
  SeedAlpha(6);  // three pages of two
  auto engine = NewEngine();
  int reads = 0;
  alpha_conn_->on_read = [&] {
    if (++reads == 2) {
      // This run stalled past its lease; another run took the lease over.
      clock_.Advance(config_.sync.lease_ttl + std::chrono::seconds(1));
      ASSERT_TRUE(*store_->AcquireLease("other-run", clock_.NowMillis(), 60000));
    }
  };
  RunOptions opt;
  opt.holder = "test";
  auto s = engine->RunOnce(opt);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->lease_lost) << "the summary says so; the exit code follows from it";
  EXPECT_EQ(beta_conn_->write_calls, 0);
  auto lease = store_->GetLease();
  ASSERT_TRUE(lease.ok() && lease->has_value());
  EXPECT_EQ((*lease)->holder, "other-run") << "the other run keeps its lease";
}

TEST_F(SyncEngineTest, UnreachableSystemKeepsItsWritesQueued) {
  SeedAlpha(2);
  auto engine = NewEngine();
  beta_conn_->write_call_fault = Status(StatusCode::kUnauthenticated, "token rejected");
  RunOptions opt;
  opt.holder = "test";
  auto s = engine->RunOnce(opt);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->unreachable.count("beta"), 1u);
  EXPECT_EQ(s->TotalDeadLettered(), 0) << "a bad token never dead-letters records";
  auto pending = store_->OutboxCounts();
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ((*pending)["beta"], 2);
}

TEST_F(SyncEngineTest, StageChangesAreRecordedInTheStageHistory) {
  alpha_.Put("t0", {{"subject", "Customer"}, {"stage", "new"}});
  Sync();
  alpha_.Put("t0", {{"stage", "onboarding"}});
  Sync();
  std::string cid = beta_.rows().begin()->second.key;
  auto history = store_->StageHistory("onboarding", cid);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].to_stage, "new");
  EXPECT_EQ((*history)[1].from_stage, "new");
  EXPECT_EQ((*history)[1].to_stage, "onboarding");
  EXPECT_EQ((*history)[1].system, "alpha");
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

using testing::FakeConnector;

// Beta stands for a system like Totango's SDR gateway: it acknowledges every write without
// confirming it, has no change feed, and may silently drop what it was sent.
class UnconfirmedWritesTest : public SyncEngineTest {
 protected:
  RunSummary SyncUnconfirmed() {
    engine_ = NewEngine();
    beta_conn_->full_scan = true;
    beta_conn_->unconfirmed = true;
    beta_conn_->lose_writes = lose_;
    RunOptions opt;
    opt.holder = "test";
    auto s = engine_->RunOnce(opt);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    lose_ = beta_conn_->lose_writes;
    return s.ok() ? *s : RunSummary{};
  }
  std::string BetaName() const { return beta_.rows().begin()->second.fields["name"]; }
  std::string Key() const { return beta_.rows().begin()->second.key; }

  std::map<std::string, int> lose_;
};

TEST_F(UnconfirmedWritesTest, ALostWriteIsDetectedOnReadBackAndWrittenAgain) {
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  SyncUnconfirmed();
  ASSERT_EQ(beta_.rows().size(), 1u);
  alpha_.Put("t0", {{"subject", "Acme Group"}});
  lose_[Key()] = 1;
  RunSummary sent = SyncUnconfirmed();
  EXPECT_EQ(sent.counts["beta"]["onboarding"].unverified, 1);
  EXPECT_EQ(BetaName(), "Acme") << "beta acknowledged the write and dropped it";

  RunSummary reread = SyncUnconfirmed();
  EXPECT_EQ(reread.counts["beta"]["onboarding"].rewritten, 1);
  EXPECT_EQ(BetaName(), "Acme Group") << "written again";
  EXPECT_EQ(alpha_.rows().at("t0").fields["subject"], "Acme Group")
      << "the stale value beta still showed was not taken for a change made there";

  RunSummary verified = SyncUnconfirmed();
  EXPECT_EQ(verified.counts["beta"]["onboarding"].verified, 1);
  EXPECT_EQ(verified.TotalWrites(), 0);
  EXPECT_EQ(SyncUnconfirmed().TotalWrites(), 0) << "converged";
}

TEST_F(UnconfirmedWritesTest, ALostCreateIsFoundMissingByTheNextFullScanAndMadeAgain) {
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  alpha_.Put("t1", {{"subject", "Beta AB"}, {"stage", "new"}});
  engine_ = NewEngine();
  beta_conn_->full_scan = true;
  beta_conn_->unconfirmed = true;
  beta_conn_->lose_next = 1;  // the first create vanishes
  RunOptions opt;
  opt.holder = "test";
  ASSERT_TRUE(engine_->RunOnce(opt).ok());
  ASSERT_EQ(beta_.rows().size(), 1u);

  RunSummary second = SyncUnconfirmed();
  EXPECT_EQ(second.counts["beta"]["onboarding"].rewritten, 1);
  EXPECT_EQ(beta_.rows().size(), 2u) << "the missing record was written again";
  SyncUnconfirmed();
  EXPECT_EQ(SyncUnconfirmed().TotalWrites(), 0) << "converged";
}

TEST_F(UnconfirmedWritesTest, AWriteThatNeverLandsIsDeadLetteredWithTheReason) {
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  SyncUnconfirmed();
  alpha_.Put("t0", {{"subject", "Acme Group"}});
  lose_[Key()] = 100;
  for (int i = 0; i < 5; ++i) SyncUnconfirmed();
  auto dead = store_->ListDeadLetters(10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].item.system, "beta");
  EXPECT_NE((*dead)[0].reason.find("did not apply it"), std::string::npos) << (*dead)[0].reason;
  EXPECT_NE((*dead)[0].reason.find("Acme Group"), std::string::npos);
  EXPECT_EQ(alpha_.rows().at("t0").fields["subject"], "Acme Group") << "never reverted";
  const int calls = beta_conn_->write_calls;
  SyncUnconfirmed();
  EXPECT_EQ(beta_conn_->write_calls, 0) << "no endless rewriting after the dead letter";
  (void)calls;
}

TEST_F(UnconfirmedWritesTest, AChangeMadeThereAfterAnUnconfirmedWriteIsMerged) {
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  SyncUnconfirmed();
  alpha_.Put("t0", {{"subject", "Acme Group"}});
  SyncUnconfirmed();  // lands, unverified
  beta_.Put(beta_.rows().begin()->first, {{"name", "Acme Holding"}});
  SyncUnconfirmed();
  EXPECT_EQ(alpha_.rows().at("t0").fields["subject"], "Acme Holding");
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

// Both systems change the same field between two runs.
class ConflictTest : public SyncEngineTest {
 protected:
  std::string BetaId() const { return beta_.rows().begin()->first; }
  std::string AlphaTitle() const { return alpha_.rows().at("t0").fields["subject"]; }
  std::string BetaTitle() const { return beta_.rows().begin()->second.fields["name"]; }
  void UseMapping(const std::string& text) {
    const std::string path = dir_ + "/conflict.yaml";
    std::ofstream(path) << text;
    auto plan = LoadMappingPlan({path}, AlphaBeta());
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
  }
};

TEST_F(ConflictTest, TheMostRecentChangeWinsWhicheverSystemIsReadFirst) {
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}}, 1000);
  Sync();
  // Alpha (read first) changed it earlier than beta did: beta's later change wins.
  alpha_.Put("t0", {{"subject", "Acme Alpha"}}, 2000);
  beta_.Put(BetaId(), {{"name", "Acme Beta"}}, 3000);
  RunSummary s = Sync();
  Sync();
  EXPECT_EQ(AlphaTitle(), "Acme Beta");
  EXPECT_EQ(BetaTitle(), "Acme Beta");
  // And the other way round: alpha's change is the newer one, and beta's older change loses.
  alpha_.Put("t0", {{"subject", "Acme 2 Alpha"}}, 9000);
  beta_.Put(BetaId(), {{"name", "Acme 2 Beta"}}, 5000);
  s = Sync();
  EXPECT_EQ(s.counts["beta"]["onboarding"].conflicts, 1);
  Sync();
  EXPECT_EQ(AlphaTitle(), "Acme 2 Alpha");
  EXPECT_EQ(BetaTitle(), "Acme 2 Alpha");
  EXPECT_EQ(Sync().TotalWrites(), 0) << "settled";
}

TEST_F(ConflictTest, ASystemOfRecordWinsAndAChangeElsewhereIsUndone) {
  std::string mapping = kMapping;
  mapping.replace(mapping.find("title: {type: string, required: true}"),
                  std::string("title: {type: string, required: true}").size(),
                  "title: {type: string, required: true, system_of_record: beta}");
  UseMapping(mapping);
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}}, 1000);
  Sync();
  alpha_.Put("t0", {{"subject", "Renamed in alpha"}}, 9000);  // newer, but not the owner
  RunSummary s = Sync();
  EXPECT_EQ(s.counts["alpha"]["onboarding"].conflicts, 1);
  EXPECT_EQ(BetaTitle(), "Acme") << "beta owns the title";
  EXPECT_EQ(AlphaTitle(), "Acme") << "alpha's change was overwritten with beta's value";
  beta_.Put(BetaId(), {{"name", "Renamed in beta"}}, 100);  // older, but the owner
  Sync();
  EXPECT_EQ(AlphaTitle(), "Renamed in beta");
  // The stage has no system of record: alpha's change still travels.
  alpha_.Put("t0", {{"stage", "onboarding"}}, 9500);
  Sync();
  EXPECT_EQ(beta_.rows().begin()->second.fields["stagecode"], 2);
  EXPECT_EQ(Sync().TotalWrites(), 0);
}

// A rename reaches beta, whose answer is lost (the write landed, then a gateway timeout), so the
// write stays queued. Alpha renames again, and beta's record is then touched later (another
// field): reading beta's copy of the first rename must not be taken for a newer change there.
TEST_F(ConflictTest, AWriteOfUnknownOutcomeReadBackNeverUndoesANewerEdit) {
  alpha_.Put("t0", {{"subject", "A0"}, {"stage", "new"}}, 1000);
  Sync();
  const std::string key = beta_.rows().begin()->second.key;
  alpha_.Put("t0", {{"subject", "A1"}}, 2000);
  {
    auto engine = NewEngine();
    beta_conn_->op_faults[key].push_back(Status(StatusCode::kDeadlineExceeded, "HTTP 504"));
    RunOptions opt;
    opt.holder = "test";
    auto s = engine->RunOnce(opt);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->counts["beta"]["onboarding"].retrying, 1);
  }
  ASSERT_EQ(BetaTitle(), "A1") << "the write landed although its answer was lost";
  alpha_.Put("t0", {{"subject", "A2"}}, 3000);
  beta_.Put(BetaId(), {{"stagecode", 2}}, 4000);
  clock_.Advance(std::chrono::hours(2));  // the queued write is due again
  Sync();
  Sync();
  EXPECT_EQ(AlphaTitle(), "A2");
  EXPECT_EQ(BetaTitle(), "A2");
  EXPECT_EQ(alpha_.rows().at("t0").fields["stage"], "onboarding") << "beta's own edit travels";
  EXPECT_EQ(beta_.rows().begin()->second.fields["stagecode"], 2);
  EXPECT_EQ(Sync().TotalWrites(), 0) << "settled";
}

TEST(ConflictPolicyValidationTest, ASystemOfRecordMustReadTheField) {
  char tmpl[] = "/tmp/crmbridge-sor-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string path = dir + "/m.yaml";
  std::ofstream(path) << "version: 1\n"
                         "entities:\n"
                         "  onboarding:\n"
                         "    fields: {title: {type: string, system_of_record: beta}}\n"
                         "systems:\n"
                         "  alpha:\n"
                         "    onboarding: {object: tickets, fields: {title: {native: subject}}}\n"
                         "  beta:\n"
                         "    onboarding: {object: opps, fields: {title: {native: name, direction: out}}}\n";
  auto plan = LoadMappingPlan({path}, AlphaBeta());
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find(
                path + ":4:54: error: beta is the system of record of onboarding.title, but no "
                       "mapping reads that field from beta"),
            std::string::npos)
      << plan.status().message();
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

// Both systems already hold some of the same customers before crmbridge first runs.
class MatchKeyTest : public ConflictTest {
 protected:
  void SetUp() override {
    ConflictTest::SetUp();
    std::string mapping = kMapping;
    for (const char* object : {"object: tickets", "object: opportunities"}) {
      const size_t at = mapping.find(object);
      mapping.insert(at + std::strlen(object), "\n      match: [title]");
    }
    UseMapping(mapping);
  }
};

TEST_F(MatchKeyTest, RecordsWithTheSameMatchKeyAreLinkedNotDuplicated) {
  alpha_.Put("t0", {{"subject", "Acme AB"}, {"stage", "new"}});
  alpha_.Put("t1", {{"subject", "Beta AB"}, {"stage", "new"}});
  beta_.Put("b0", {{"name", "  ACME ab "}, {"stagecode", 2}});  // typed by hand in beta
  RunSummary s = Sync();
  EXPECT_EQ(beta_.rows().size(), 2u) << "Acme was linked to b0; only Beta AB was created";
  EXPECT_EQ(alpha_.rows().size(), 2u) << "and b0 did not come back to alpha as a new record";
  EXPECT_EQ(s.counts["beta"]["onboarding"].created, 1);
  RunSummary again = Sync();
  EXPECT_EQ(again.TotalWrites(), 0) << "settled";
}

TEST_F(MatchKeyTest, ASecondRecordWithTheSameMatchKeyIsReportedNotMerged) {
  alpha_.Put("t0", {{"subject", "Acme AB"}, {"stage", "new"}});
  beta_.Put("b0", {{"name", "Acme AB"}, {"stagecode", 1}});
  beta_.Put("b1", {{"name", "acme ab"}, {"stagecode", 2}});  // a duplicate inside beta
  RunSummary s = Sync();
  EXPECT_EQ(s.counts["beta"]["onboarding"].duplicates, 1);
  EXPECT_EQ(alpha_.rows().size(), 1u) << "the duplicate made nothing in alpha";
  EXPECT_EQ(beta_.rows().size(), 2u) << "and nothing was created in beta";
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

class DeletePolicyTest : public ConflictTest {
 protected:
  void UsePolicy(const std::string& policy) {
    std::string mapping = kMapping;
    mapping.insert(mapping.find("    fields:\n      title:"), "    on_delete: " + policy + "\n");
    mapping.insert(mapping.find("    - {native: 2, canonical: onboarding}") +
                       std::string("    - {native: 2, canonical: onboarding}\n").size(),
                   "    - {native: 9, canonical: inactive}\n");
    UseMapping(mapping);
  }
};

TEST_F(DeletePolicyTest, ByDefaultADeleteIsReportedAndTheOtherSystemKeepsItsRecord) {
  UsePolicy("ignore");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  Sync();
  alpha_.Delete("t0");
  RunSummary s = Sync();
  EXPECT_EQ(s.counts["alpha"]["onboarding"].deletes_seen, 1);
  EXPECT_EQ(beta_.live(), 1u);
  EXPECT_EQ(s.TotalWrites(), 0);
}

TEST_F(DeletePolicyTest, PropagateDeletesTheLinkedRecordsAndTheirTombstonesEndIt) {
  UsePolicy("propagate");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  alpha_.Put("t1", {{"subject", "Kept AB"}, {"stage", "new"}});
  Sync();
  ASSERT_EQ(beta_.live(), 2u);
  alpha_.Delete("t0");
  RunSummary s = Sync();
  EXPECT_EQ(beta_.live(), 1u) << "Acme deleted in beta too";
  EXPECT_EQ(s.counts["beta"]["onboarding"].queued, 1);
  RunSummary after = Sync();  // beta's tombstone comes back: already done
  EXPECT_EQ(after.TotalWrites(), 0);
  EXPECT_EQ(alpha_.live(), 1u);
}

TEST_F(DeletePolicyTest, MarkSetsTheFieldsEverywhereInstead) {
  UsePolicy("{set: {stage: inactive}}");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  Sync();
  alpha_.Delete("t0");
  Sync();
  ASSERT_EQ(beta_.live(), 1u) << "kept, marked";
  EXPECT_EQ(beta_.rows().begin()->second.fields["stagecode"], 9);
}

TEST_F(DeletePolicyTest, ADeleteReadAgainIsNotASecondDelete) {
  UsePolicy("{set: {stage: inactive}}");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  Sync();
  alpha_.Delete("t0");
  EXPECT_EQ(Sync().counts["alpha"]["onboarding"].deletes_seen, 1);
  beta_.Put(beta_.rows().begin()->first, {{"stagecode", 2}});  // moved on in beta since
  Sync();
  alpha_.Put("t0", {});  // the tombstone read again (a sweep, a webhook)
  alpha_.Delete("t0");
  RunSummary again = Sync();
  EXPECT_EQ(again.counts["alpha"]["onboarding"].deletes_seen, 0);
  EXPECT_EQ(beta_.rows().begin()->second.fields["stagecode"], 2) << "not marked a second time";
}

TEST_F(DeletePolicyTest, ARestoredRecordIsLinkedAsBeforeAndItsMarkUndone) {
  UsePolicy("{set: {stage: inactive}}");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "onboarding"}});
  Sync();
  alpha_.Delete("t0");
  Sync();
  ASSERT_EQ(beta_.rows().begin()->second.fields["stagecode"], 9);
  alpha_.Restore("t0");
  RunSummary s = Sync();
  EXPECT_EQ(s.counts["alpha"]["onboarding"].restored, 1);
  ASSERT_EQ(beta_.rows().size(), 1u) << "the same record, not a duplicate";
  EXPECT_EQ(beta_.rows().begin()->second.fields["stagecode"], 2) << "its stage as alpha has it";
  EXPECT_EQ(alpha_.rows().size(), 1u);
  EXPECT_EQ(Sync().TotalWrites(), 0) << "settled";
}

// An incremental read (a search index lagging behind) that still shows a deleted record unchanged
// since its delete was read is not taken for a restore; changed since, it is.
TEST_F(DeletePolicyTest, ADeletedRecordShownUnchangedByALaggingReadIsNotRestored) {
  UsePolicy("{set: {stage: inactive}}");
  const int64_t before = clock_.NowMillis() - 60000;
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "onboarding"}}, before);
  Sync();
  alpha_.Delete("t0");
  Sync();
  alpha_.Restore("t0");  // shown again, modified as before its delete
  RunSummary lagging = Sync();
  EXPECT_EQ(lagging.counts["alpha"]["onboarding"].restored, 0);
  EXPECT_EQ(beta_.rows().begin()->second.fields["stagecode"], 9) << "still marked";
  clock_.Advance(std::chrono::minutes(1));
  alpha_.Put("t0", {{"subject", "Acme"}}, clock_.NowMillis());  // edited after its restore
  RunSummary s = Sync();
  EXPECT_EQ(s.counts["alpha"]["onboarding"].restored, 1);
  EXPECT_EQ(beta_.rows().begin()->second.fields["stagecode"], 2);
}

TEST_F(DeletePolicyTest, ARestoredRecordIsMadeAgainWherePropagateDeletedIt) {
  UsePolicy("propagate");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  Sync();
  alpha_.Delete("t0");
  Sync();
  ASSERT_EQ(beta_.live(), 0u);
  Sync();  // beta's tombstone comes back: already done
  alpha_.Restore("t0");
  RunSummary s = Sync();
  EXPECT_EQ(s.counts["alpha"]["onboarding"].restored, 1);
  EXPECT_EQ(s.counts["beta"]["onboarding"].created, 1);
  ASSERT_EQ(beta_.live(), 1u) << "made again in beta";
  EXPECT_EQ(alpha_.rows().size(), 1u) << "and not sent back to alpha as a new record";
  EXPECT_EQ(Sync().TotalWrites(), 0) << "settled";
  alpha_.Delete("t0");  // deleted once more: propagated again
  Sync();
  EXPECT_EQ(beta_.live(), 0u);
}

// Restored while the delete propagate queued has not reached beta (beta was down): the delete
// never happens, and beta's record stays the one linked; no second record is made.
TEST_F(DeletePolicyTest, ARecordRestoredBeforeItsQueuedDeleteWentOutIsKeptNotMadeTwice) {
  UsePolicy("propagate");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  Sync();
  ASSERT_EQ(beta_.live(), 1u);
  alpha_.Delete("t0");
  auto engine = NewEngine();
  beta_conn_->write_call_fault = Status(StatusCode::kUnavailable, "down");
  RunOptions opt;
  opt.holder = "test";
  ASSERT_TRUE(engine->RunOnce(opt).ok());
  ASSERT_EQ(beta_.live(), 1u) << "the delete is still queued";
  alpha_.Restore("t0");
  clock_.Advance(std::chrono::hours(2));  // past the outbox backoff
  RunSummary s = Sync();
  EXPECT_EQ(s.counts["alpha"]["onboarding"].restored, 1);
  EXPECT_EQ(beta_.rows().size(), 1u) << "no second record in beta";
  EXPECT_EQ(beta_.live(), 1u) << "and its record was never deleted";
  EXPECT_EQ(Sync().TotalWrites(), 0) << "settled";
}

// Runs once with beta's write calls failing (beta down): what the run queued for beta waits.
class QueuedWritesTest : public DeletePolicyTest {
 protected:
  // One run whose connectors `arrange` sets up first (faults on alpha_conn_ or beta_conn_).
  void SyncWith(const std::function<void()>& arrange) {
    auto engine = NewEngine();
    arrange();
    RunOptions opt;
    opt.holder = "test";
    ASSERT_TRUE(engine->RunOnce(opt).ok());
  }
  void SyncWithBetaDown() {
    SyncWith([&] { beta_conn_->write_call_fault = Status(StatusCode::kUnavailable, "down"); });
  }
  // The name of beta's one live record (its deleted ones stay as tombstones).
  std::string LiveBetaName() const {
    for (const auto& [id, row] : beta_.rows())
      if (!row.deleted) return row.fields.value("name", "");
    return "";
  }
  int DeadLetters() {
    auto dead = store_->ListDeadLetters(10);
    EXPECT_TRUE(dead.ok());
    return dead.ok() ? static_cast<int>(dead->size()) : -1;
  }
};

// An update queued for beta's copy, which a user deletes in beta before it goes: once the delete
// is read, the update (answered 404) is dropped, never dead-lettered.
TEST_F(QueuedWritesTest, AnUpdateOfACopyDeletedThereIsDroppedNotDeadLettered) {
  UsePolicy("ignore");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  Sync();
  alpha_.Put("t0", {{"subject", "Acme AB"}});
  SyncWithBetaDown();
  beta_.Delete(BetaId());
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(std::chrono::hours(2));  // past the outbox backoff
    Sync();
  }
  EXPECT_EQ(DeadLetters(), 0);
  auto pending = store_->OutboxCounts();
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty() || (*pending)["beta"] == 0) << pending->dump();
  EXPECT_EQ(beta_.live(), 0u) << "ignore: the copy deleted in beta is not made again";
  EXPECT_EQ(alpha_.live(), 1u);
}

// A create sent to beta lands, its answer lost; then the record is deleted in alpha (propagate)
// before the create is retried. The delete could not name beta's copy then; the copy is deleted
// all the same, once crmbridge learns it.
TEST_F(QueuedWritesTest, ACreateThatLandedUnansweredIsDeletedWhenItsRecordIsDeleted) {
  UsePolicy("propagate");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  SyncWith([&] { beta_conn_->applied_then_fault = Status(StatusCode::kDeadlineExceeded, "timed out"); });
  ASSERT_EQ(beta_.live(), 1u) << "the create landed";
  alpha_.Delete("t0");
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(std::chrono::hours(2));
    Sync();
  }
  EXPECT_EQ(beta_.live(), 0u) << "beta's copy of the deleted record is deleted too";
  EXPECT_EQ(DeadLetters(), 0);
  EXPECT_EQ(Sync().TotalWrites(), 0) << "settled";
}

// The delete propagate sends to alpha lands, its answer lost; the user restores the record in
// alpha before crmbridge learns the delete happened. The restore is seen (the delete crmbridge
// sent counts as one read), the delete still queued does not undo it, and beta gets the record
// again.
TEST_F(QueuedWritesTest, ARestoreAfterAnUnansweredDeleteIsKeptAndMadeAgainElsewhere) {
  UsePolicy("propagate");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}});
  Sync();
  beta_.Delete(BetaId());
  SyncWith([&] { alpha_conn_->applied_then_fault = Status(StatusCode::kDeadlineExceeded, "timed out"); });
  ASSERT_EQ(alpha_.live(), 0u) << "the delete landed";
  clock_.Advance(std::chrono::minutes(1));
  alpha_.Restore("t0");
  alpha_.Put("t0", {{"subject", "Acme again"}}, clock_.NowMillis());  // restored and edited
  clock_.Advance(std::chrono::hours(2));
  RunSummary s = Sync();
  EXPECT_EQ(s.counts["alpha"]["onboarding"].restored, 1);
  for (int i = 0; i < 2; ++i) {
    clock_.Advance(std::chrono::hours(2));
    Sync();
  }
  EXPECT_EQ(alpha_.live(), 1u) << "the restored record stays";
  ASSERT_EQ(beta_.live(), 1u) << "and is made again in beta";
  EXPECT_EQ(LiveBetaName(), "Acme again");
  EXPECT_EQ(DeadLetters(), 0);
  EXPECT_EQ(Sync().TotalWrites(), 0) << "settled";
}

// A change made in beta was on its way to alpha when beta's record was deleted: the delete took
// its place in the outbox, so alpha's copy was deleted holding the old title. Restored in alpha,
// it gets the title it missed, and beta's record is made again with it.
TEST_F(QueuedWritesTest, ARestoredCopyGetsTheChangeItsDeleteOvertook) {
  UsePolicy("propagate");
  alpha_.Put("t0", {{"subject", "Acme"}, {"stage", "new"}}, clock_.NowMillis());
  Sync();
  clock_.Advance(std::chrono::minutes(1));
  beta_.Put(BetaId(), {{"name", "Acme Nordic"}}, clock_.NowMillis());
  SyncWith([&] { alpha_conn_->write_call_fault = Status(StatusCode::kUnavailable, "down"); });
  ASSERT_EQ(AlphaTitle(), "Acme") << "the change waits for alpha";
  beta_.Delete(BetaId());
  clock_.Advance(std::chrono::hours(2));
  Sync();
  ASSERT_EQ(alpha_.live(), 0u) << "the delete went to alpha instead";
  clock_.Advance(std::chrono::minutes(1));
  alpha_.Restore("t0");
  alpha_.Put("t0", {{"stage", "onboarding"}}, clock_.NowMillis());  // restored, then moved on
  for (int i = 0; i < 2; ++i) {
    clock_.Advance(std::chrono::hours(2));
    Sync();
  }
  EXPECT_EQ(AlphaTitle(), "Acme Nordic") << "the change it missed";
  EXPECT_EQ(alpha_.rows().at("t0").fields["stage"], "onboarding") << "and its own change kept";
  ASSERT_EQ(beta_.live(), 1u);
  EXPECT_EQ(LiveBetaName(), "Acme Nordic");
  EXPECT_EQ(DeadLetters(), 0);
  EXPECT_EQ(Sync().TotalWrites(), 0) << "settled";
}

TEST_F(DeletePolicyTest, APolicyNamingAnUnknownFieldOrValueIsRefused) {
  std::string mapping = kMapping;
  mapping.insert(mapping.find("    fields:\n      title:"), "    on_delete: {set: {state: inactive}}\n");
  const std::string path = dir_ + "/bad.yaml";
  std::ofstream(path) << mapping;
  auto plan = LoadMappingPlan({path}, AlphaBeta());
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("on_delete sets 'state', which is not a field of onboarding"),
            std::string::npos)
      << plan.status().message();
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

class BackfillTest : public SyncEngineTest {
 protected:
  RunSummary Backfill(const std::atomic<bool>* stop = nullptr,
                      std::function<void(int64_t, int64_t)> progress = nullptr) {
    engine_ = NewEngine();
    RunOptions opt;
    opt.holder = "test";
    opt.mode = "backfill";
    opt.backfill_system = "alpha";
    opt.stop = stop;
    opt.progress = std::move(progress);
    auto s = engine_->RunOnce(opt);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : RunSummary{};
  }
  std::string Cursor(const std::string& key) {
    auto c = store_->GetCursor("alpha", key);
    return c.ok() && c->has_value() ? **c : "<none>";
  }
};

TEST_F(BackfillTest, ReadsEverythingOnItsOwnCheckpointAndNeverMovesTheSyncCursor) {
  SeedAlpha(5);
  Sync();
  const std::string sync_cursor = Cursor("onboarding:tickets");
  RunSummary s = Backfill();
  EXPECT_EQ(s.counts["alpha"]["onboarding"].read, 5) << "everything, not just what changed";
  EXPECT_EQ(s.counts["beta"]["onboarding"].read, 0) << "only the system asked for";
  EXPECT_EQ(Cursor("onboarding:tickets"), sync_cursor);
  EXPECT_EQ(Cursor("backfill:onboarding:tickets"), "") << "a finished backfill clears its checkpoint";
}

TEST_F(BackfillTest, AStoppedBackfillContinuesFromItsCheckpoint) {
  SeedAlpha(7);  // pages of 2
  std::atomic<bool> stop{false};
  int64_t seen = 0;
  RunSummary first = Backfill(&stop, [&](int64_t read, int64_t) {
    seen = read;
    if (read >= 4) stop = true;  // SIGTERM after the second page
  });
  EXPECT_EQ(first.counts["alpha"]["onboarding"].read, 4);
  EXPECT_NE(Cursor("backfill:onboarding:tickets"), "<none>");
  RunSummary rest = Backfill();
  EXPECT_EQ(rest.counts["alpha"]["onboarding"].read, 3) << "continued, not started over";
  EXPECT_EQ(Cursor("backfill:onboarding:tickets"), "");
  EXPECT_EQ(seen, 4);
}

// What a backfill reads is written while it reads on: beta is not read, so its writes need not
// wait for the last page, and they still go in whole batches.
TEST_F(BackfillTest, WritesStartWhileTheReadsGoOnInWholeBatches) {
  SeedAlpha(6);  // three pages of two, batches of two
  engine_ = NewEngine();
  int reads = 0;
  int writes_before_last_page = -1;
  alpha_conn_->on_read = [&] {
    if (++reads != 3) return;
    // The first two pages are committed: their batches go out without waiting for this one.
    for (int i = 0; i < 1000 && beta_conn_->write_calls == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    writes_before_last_page = beta_conn_->write_calls;
  };
  RunOptions opt;
  opt.holder = "test";
  opt.backfill_system = "alpha";
  auto s = engine_->RunOnce(opt);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_GE(writes_before_last_page, 1) << "a page's writes went out before the reads ended";
  EXPECT_EQ(beta_conn_->write_calls, 3) << "6 records in batches of 2: the minimum";
  EXPECT_EQ(beta_.live(), 6u);
  EXPECT_EQ(s->counts["beta"]["onboarding"].created, 6);
}

// A system that the run reads is written only after it has been read: otherwise a write could
// land before the change made there (a conflict) or the record it should match was seen.
TEST_F(SyncEngineTest, ASystemIsWrittenOnlyOnceThisRunHasReadIt) {
  SeedAlpha(6);
  engine_ = NewEngine();
  std::vector<int> beta_writes_at_alpha_reads;
  alpha_conn_->on_read = [&] {
    // Give a flush that wrongly started every chance to show itself.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    beta_writes_at_alpha_reads.push_back(beta_conn_->write_calls);
  };
  RunOptions opt;
  opt.holder = "test";
  auto s = engine_->RunOnce(opt);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(beta_writes_at_alpha_reads.size(), 3u);
  for (int w : beta_writes_at_alpha_reads) EXPECT_EQ(w, 0);
  EXPECT_EQ(beta_.live(), 6u);
  EXPECT_EQ(beta_conn_->write_calls, 3);
}

}  // namespace
}  // namespace crmbridge
