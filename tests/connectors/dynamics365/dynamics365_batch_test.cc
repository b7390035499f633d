// Dynamics 365 bulk writes against the in-process Dataverse mock, through the real transport
// stack: ceil(N / batch size) $batch calls, one answer per row, and one bad row failing alone.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "connectors/dynamics365/dynamics365_connector.h"
#include "mocks/dynamics365/dynamics365_mock.h"
#include "src/engine/bootstrap.h"

namespace crmbridge {
namespace {

using nlohmann::json;

class Dynamics365BatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mocks::Dynamics365Mock::Options o;
    o.client_id = "id";
    o.client_secret = "secret";
    o.service_protection = false;
    mock_ = std::make_unique<mocks::Dynamics365Mock>(o);
    ASSERT_TRUE(mock_->Start().ok());
    config_.name = config_.kind = "dynamics365";
    config_.base_url = mock_->base_url();
    config_.auth = {{"token_url", mock_->base_url() + "/tenant/oauth2/v2.0/token"},
                    {"client_id", "id"},
                    {"client_secret", "secret"}};
    config_.options = {{"batch_size", "100"}};
    Connect();
  }
  void TearDown() override {
    connector_.reset();
    mock_->Stop();
  }
  void Connect() {
    connector_ = std::make_unique<Dynamics365Connector>(config_, BuildSystemTransport(config_, &clock_), &clock_);
  }
  static ObjectRef Opportunities() {
    ObjectRef r;
    r.object = "opportunities";
    r.params = {{"key", "crmb_externalid"}};
    return r;
  }
  static std::vector<WriteOp> Ops(int n, const std::string& name = "Deal") {
    std::vector<WriteOp> ops(n);
    for (int i = 0; i < n; ++i) {
      ops[i].key = "k" + std::to_string(i);
      ops[i].fields = {{"name", name + " " + std::to_string(i)}};
    }
    return ops;
  }
  int64_t BatchCalls() const { return mock_->Stats().value("POST /api/data/v9.2/$batch", int64_t{0}); }

  FakeClock clock_;
  std::unique_ptr<mocks::Dynamics365Mock> mock_;
  SystemConfig config_;
  std::unique_ptr<Dynamics365Connector> connector_;
};

TEST_F(Dynamics365BatchTest, WritesNRowsInCeilNOverBatchSizeCalls) {
  EXPECT_EQ(connector_->capabilities().max_batch, 100);
  auto out = connector_->Write(Opportunities(), Ops(250));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(BatchCalls(), 3) << "ceil(250 / 100)";
  std::set<std::string> ids;
  for (const WriteOutcome& o : *out) {
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    EXPECT_TRUE(o.created);
    EXPECT_TRUE(ids.insert(o.native_id).second);
  }
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 250u);
  // The same keys again update the same rows: no duplicate, and each answer says so.
  out = connector_->Write(Opportunities(), Ops(250, "Renamed"));
  ASSERT_TRUE(out.ok());
  for (size_t i = 0; i < out->size(); ++i) {
    EXPECT_FALSE((*out)[i].created);
    EXPECT_TRUE(ids.count((*out)[i].native_id));
  }
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 250u);
  EXPECT_EQ(BatchCalls(), 6);
}

TEST_F(Dynamics365BatchTest, TheDefaultBatchIsTheApisMaximum) {
  config_.options.clear();
  Connect();
  EXPECT_EQ(connector_->capabilities().max_batch, 1000);
  auto out = connector_->Write(Opportunities(), Ops(1000));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(BatchCalls(), 1);
}

TEST_F(Dynamics365BatchTest, OneInvalidRowFailsAloneWithTheApisReason) {
  std::vector<WriteOp> ops = Ops(10);
  ops[4].fields["no_such_column"] = 1;
  auto out = connector_->Write(Opportunities(), ops);
  ASSERT_TRUE(out.ok());
  for (int i = 0; i < 10; ++i) {
    if (i == 4) {
      EXPECT_EQ((*out)[i].status.code(), StatusCode::kInvalidArgument) << (*out)[i].status.ToString();
      EXPECT_NE((*out)[i].status.message().find("no_such_column"), std::string::npos)
          << (*out)[i].status.message();
      EXPECT_NE((*out)[i].status.message().find("k4"), std::string::npos) << "names the record";
    } else {
      EXPECT_TRUE((*out)[i].status.ok()) << i << ": " << (*out)[i].status.ToString();
    }
  }
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 9u);
}

TEST_F(Dynamics365BatchTest, PartsFailedByTheServiceAreRetryableAndTheRestLand) {
  mock_->SetFaults({*mocks::FaultRule::Parse("POST /$batch partial=0.3")}, 9);
  auto out = connector_->Write(Opportunities(), Ops(40));
  ASSERT_TRUE(out.ok());
  int failed = 0;
  for (const WriteOutcome& o : *out) {
    if (o.status.ok()) continue;
    ++failed;
    EXPECT_TRUE(o.status.IsTransient()) << o.status.ToString();
  }
  EXPECT_GT(failed, 0);
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 40u - failed);
  // A later attempt (as the engine makes) completes them, without duplicates.
  mock_->SetFaults({});
  out = connector_->Write(Opportunities(), Ops(40));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 40u);
}

TEST_F(Dynamics365BatchTest, UpdatesAndDeletesByIdTravelInTheBatchToo) {
  auto created = connector_->Write(Opportunities(), Ops(3));
  ASSERT_TRUE(created.ok());
  std::vector<WriteOp> ops(3);
  ops[0].kind = WriteOp::Kind::kUpdate;
  ops[0].native_id = (*created)[0].native_id;
  ops[0].fields = {{"name", "Updated"}};
  ops[1].kind = WriteOp::Kind::kDelete;
  ops[1].native_id = (*created)[1].native_id;
  ops[2].kind = WriteOp::Kind::kUpdate;
  ops[2].native_id = "00000000-0000-0000-0000-000000000001";  // never existed: update-only
  ops[2].fields = {{"name", "Ghost"}};
  auto out = connector_->Write(Opportunities(), ops);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].status.ok());
  EXPECT_TRUE((*out)[1].status.ok());
  EXPECT_EQ((*out)[2].status.code(), StatusCode::kNotFound) << (*out)[2].status.ToString();
  const json rows = mock_->Dump()["opportunities"];
  ASSERT_EQ(rows.size(), 2u) << "one deleted, the ghost not created";
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

TEST_F(Dynamics365BatchTest, ABatchRetriedAfterATimeoutThatLandedLeavesOneRowPerKey) {
  mock_->SetFaults({*mocks::FaultRule::Parse("POST /$batch status=504 applied times=1")});
  auto out = connector_->Write(Opportunities(), Ops(30));
  ASSERT_TRUE(out.ok());
  for (const WriteOutcome& o : *out) EXPECT_TRUE(o.status.ok()) << o.status.ToString();
  EXPECT_EQ(BatchCalls(), 2) << "the transport repeated the batch once";
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 30u) << "upserts by key: no second row";
}

TEST_F(Dynamics365BatchTest, ADeltaReadReportsADeletedRow) {
  auto created = connector_->Write(Opportunities(), Ops(5));
  ASSERT_TRUE(created.ok());
  ObjectRef ref = Opportunities();
  ref.fields = {"name"};
  ReadContext ctx;
  Cursor cursor;
  for (;;) {  // the first read pages the table and ends on a delta link
    auto page = connector_->ReadChanges(ref, cursor, ctx);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    cursor = page->next;
    if (!page->has_more) break;
  }
  ASSERT_NE(cursor.find("deltatoken="), std::string::npos) << cursor;
  WriteOp del;
  del.kind = WriteOp::Kind::kDelete;
  del.native_id = (*created)[2].native_id;
  ASSERT_TRUE((*connector_->Write(Opportunities(), {del}))[0].status.ok());
  auto delta = connector_->ReadChanges(ref, cursor, ctx);
  ASSERT_TRUE(delta.ok()) << delta.status().ToString();
  ASSERT_EQ(delta->records.size(), 1u);
  EXPECT_TRUE(delta->records[0].deleted);
  EXPECT_EQ(delta->records[0].id, del.native_id);
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

TEST_F(Dynamics365BatchTest, ATableWithoutChangeTrackingIsReadByModifiedOn) {
  auto created = connector_->Write(Opportunities(), Ops(30));
  ASSERT_TRUE(created.ok());
  // modifiedon has whole seconds: one row changed a second later moves the watermark past the
  // bulk of them.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  WriteOp marker;
  marker.kind = WriteOp::Kind::kUpdate;
  marker.native_id = (*created)[0].native_id;
  marker.fields = {{"name", "Marker"}};
  ASSERT_TRUE(connector_->Write(Opportunities(), {marker}).ok());
  ObjectRef ref = Opportunities();
  ref.params["change_tracking"] = "false";
  ref.fields = {"name"};
  ReadContext ctx;
  ctx.page_size = 10;
  ctx.run_start_ms = Clock::Real()->NowMillis() + 60000;
  auto read_all = [&](Cursor* cursor) {
    std::vector<NativeRecord> out;
    for (;;) {
      auto page = connector_->ReadChanges(ref, *cursor, ctx);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      for (NativeRecord& r : page->records) out.push_back(std::move(r));
      *cursor = page->next;
      if (!page->has_more) break;
    }
    return out;
  };
  Cursor cursor;
  std::vector<NativeRecord> first = read_all(&cursor);
  EXPECT_EQ(first.size(), 30u);
  EXPECT_NE(cursor.find("\"w\""), std::string::npos) << cursor;
  // Two rows change; the next read starts at the watermark and returns them (rows sharing the
  // watermark's second may come again, which the engine recognises).
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  WriteOp a, b;
  a.kind = b.kind = WriteOp::Kind::kUpdate;
  a.native_id = (*created)[3].native_id;
  b.native_id = (*created)[17].native_id;
  a.fields = {{"name", "Changed A"}};
  b.fields = {{"name", "Changed B"}};
  ASSERT_TRUE(connector_->Write(Opportunities(), {a, b}).ok());
  std::vector<NativeRecord> second = read_all(&cursor);
  std::set<std::string> names;
  for (const NativeRecord& r : second) names.insert(r.fields["name"].get<std::string>());
  EXPECT_TRUE(names.count("Changed A") && names.count("Changed B"));
  EXPECT_EQ(second.size(), 3u) << "the two changed rows, and the marker at the watermark";
}

}  // namespace
}  // namespace crmbridge
