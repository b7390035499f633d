// Dynamics 365 bulk writes against the in-process Dataverse mock, through the real transport
// stack: ceil(N / batch size) $batch calls, one answer per row, and one bad row failing alone.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <map>
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

// Deactivation is a column like any other: statecode, written and read back (with the state's
// default statuscode), so a mapping can carry it as a field.
TEST_F(Dynamics365BatchTest, AnAccountDeactivatedByItsStatecodeReadsBackInactive) {
  ObjectRef accounts;
  accounts.object = "accounts";
  accounts.params = {{"key", "crmb_externalid"}};
  accounts.fields = {"name", "statecode"};
  std::vector<WriteOp> ops(2);
  for (int i = 0; i < 2; ++i) {
    ops[i].key = "a" + std::to_string(i);
    ops[i].fields = {{"name", "Account " + std::to_string(i)}};
  }
  auto made = connector_->Write(accounts, ops);
  ASSERT_TRUE(made.ok() && (*made)[0].status.ok() && (*made)[1].status.ok());
  std::vector<WriteOp> deactivate(1);
  deactivate[0].kind = WriteOp::Kind::kUpdate;
  deactivate[0].native_id = (*made)[1].native_id;
  deactivate[0].fields = {{"statecode", 1}};
  auto done = connector_->Write(accounts, deactivate);
  ASSERT_TRUE(done.ok() && (*done)[0].status.ok()) << (*done)[0].status.ToString();

  ReadContext ctx;
  ctx.run_start_ms = clock_.NowMillis() + 1000;
  auto page = connector_->ReadChanges(accounts, "", ctx);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  std::map<std::string, json> state;
  for (const NativeRecord& r : page->records) state[r.id] = r.fields.value("statecode", json());
  EXPECT_EQ(state[(*made)[0].native_id], 0);
  EXPECT_EQ(state[(*made)[1].native_id], 1);
  for (const json& row : mock_->Dump()["accounts"]) {
    if (row["accountid"] == (*made)[1].native_id) {
      EXPECT_EQ(row["statuscode"], 2) << "Inactive";
    }
  }
}

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

TEST_F(Dynamics365BatchTest, AnAnswerThatBrokeOffKeepsTheRowsItAnsweredAndRetriesTheRest) {
  // The whole $batch lands; its answer breaks off half way through its parts.
  mock_->SetFaults({*mocks::FaultRule::Parse("POST /$batch drop applied times=1")});
  auto out = connector_->Write(Opportunities(), Ops(40));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  size_t answered = 0;
  while (answered < out->size() && (*out)[answered].status.ok()) ++answered;
  EXPECT_GT(answered, 0u) << "the rows answered before the break keep their outcome";
  EXPECT_LT(answered, 40u);
  for (size_t i = 0; i < answered; ++i) {
    EXPECT_TRUE((*out)[i].created);
    EXPECT_FALSE((*out)[i].native_id.empty());
  }
  for (size_t i = answered; i < out->size(); ++i) {
    const Status& s = (*out)[i].status;
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << i << ": " << s.ToString();
    EXPECT_EQ(s.http_status(), 200) << "Dynamics 365 answered: the row's trouble, not the system's";
    EXPECT_NE(s.message().find("k" + std::to_string(i)), std::string::npos) << "names the record";
    EXPECT_NE(s.message().find("may have been applied"), std::string::npos) << s.message();
  }
  EXPECT_EQ(BatchCalls(), 1) << "the rows answered are not sent again";
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 40u);

  // A later attempt of the rest (as the engine makes) finds the rows they made.
  std::vector<WriteOp> rest = Ops(40);
  rest.erase(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(answered));
  auto again = connector_->Write(Opportunities(), rest);
  ASSERT_TRUE(again.ok());
  for (const WriteOutcome& o : *again) {
    EXPECT_TRUE(o.status.ok()) << o.status.ToString();
    EXPECT_FALSE(o.created) << "updated, not made twice";
  }
  EXPECT_EQ(mock_->Dump()["opportunities"].size(), 40u);
}

// A gateway in front of Dynamics 365 that gives a $batch answer's parts in reverse order (or one
// part twice): each part is then another request's answer.
class ReorderingTransport : public Transport {
 public:
  ReorderingTransport(std::shared_ptr<Transport> target, bool repeat_first)
      : target_(std::move(target)), repeat_first_(repeat_first) {}
  Result<Response> Send(const Request& request) override {
    auto r = target_->Send(request);
    if (!r.ok() || request.url.find("$batch") == std::string::npos) return r;
    const std::string type = r->Header("Content-Type").value_or("");
    const std::string delimiter = "--" + type.substr(type.find("boundary=") + 9);
    std::vector<std::string> parts;
    for (size_t at = r->body.find(delimiter); at != std::string::npos;) {
      const size_t next = r->body.find(delimiter, at + delimiter.size());
      if (next == std::string::npos) break;
      parts.push_back(r->body.substr(at, next - at));
      at = next;
    }
    if (repeat_first_) parts.insert(parts.begin(), parts.front());
    else std::reverse(parts.begin(), parts.end());
    std::string body;
    for (const std::string& p : parts) body += p;
    r->body = body + delimiter + "--\r\n";
    return r;
  }

 private:
  std::shared_ptr<Transport> target_;
  bool repeat_first_;
};

TEST_F(Dynamics365BatchTest, AnAnswerWhosePartsAreOutOfOrderLinksNoRowToAnotherRecord) {
  for (const bool repeat_first : {false, true}) {
    SCOPED_TRACE(repeat_first ? "one part twice" : "parts reversed");
    connector_ = std::make_unique<Dynamics365Connector>(
        config_,
        std::make_shared<ReorderingTransport>(BuildSystemTransport(config_, &clock_),
                                              repeat_first),
        &clock_);
    auto out = connector_->Write(Opportunities(), Ops(6, repeat_first ? "Again" : "Deal"));
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_EQ(out->size(), 6u);
    for (size_t i = 0; i < out->size(); ++i) {
      const Status& s = (*out)[i].status;
      EXPECT_EQ(s.code(), StatusCode::kUnavailable) << i << ": " << s.ToString();
      EXPECT_NE(s.message().find("k" + std::to_string(i)), std::string::npos) << s.message();
      EXPECT_NE(s.message().find("may have been applied"), std::string::npos) << s.message();
      EXPECT_TRUE((*out)[i].native_id.empty()) << "no row is linked";
    }
  }
  // Every upsert landed (by its key): the engine's next attempt finds each its own row.
  Connect();
  auto again = connector_->Write(Opportunities(), Ops(6, "Deal"));
  ASSERT_TRUE(again.ok());
  const json rows = mock_->Dump()["opportunities"];
  ASSERT_EQ(rows.size(), 6u);
  for (size_t i = 0; i < again->size(); ++i) {
    ASSERT_TRUE((*again)[i].status.ok()) << (*again)[i].status.ToString();
    bool own = false;
    for (const auto& row : rows)
      if (row.value("opportunityid", "") == (*again)[i].native_id)
        own = row.value("crmb_externalid", "") == "k" + std::to_string(i);
    EXPECT_TRUE(own) << "k" << i << " linked to " << (*again)[i].native_id;
  }
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

// A row a webhook announced is read alone, by its id, as a read of changes gives it; a row deleted
// since, or an id that is no GUID (never put into a URL), is left out.
TEST_F(Dynamics365BatchTest, RowsReadByIdComeAsAReadOfChangesGivesThem) {
  auto created = connector_->Write(Opportunities(), Ops(3));
  ASSERT_TRUE(created.ok());
  WriteOp del;
  del.kind = WriteOp::Kind::kDelete;
  del.native_id = (*created)[1].native_id;
  ASSERT_TRUE((*connector_->Write(Opportunities(), {del}))[0].status.ok());
  ObjectRef ref = Opportunities();
  ref.fields = {"name"};
  const int64_t gets_before = mock_->Stats().value("GET /api/data/v9.2/opportunities({key})", int64_t{0});
  auto read = connector_->ReadByIds(
      ref, {(*created)[0].native_id, del.native_id, "x')/../accounts?$top=1", (*created)[2].native_id});
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].id, (*created)[0].native_id);
  EXPECT_EQ((*read)[0].fields["name"], "Deal 0");
  EXPECT_EQ((*read)[0].key, "k0");
  EXPECT_GT((*read)[0].modified_ms, 0);
  EXPECT_EQ((*read)[1].fields["name"], "Deal 2");
  EXPECT_EQ(mock_->Stats().value("GET /api/data/v9.2/opportunities({key})", int64_t{0}) - gets_before, 3)
      << mock_->Stats().dump();
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

namespace crmbridge {
namespace {

// References as lookups: a read gives a lookup's value (_parentaccountid_value) under the lookup's
// name, a write binds it through @odata.bind (a polymorphic one through its typed navigation
// property), and an empty reference unbinds it.

ObjectRef Keyed(const std::string& set) {
  ObjectRef r;
  r.object = set;
  r.params = {{"key", "crmb_externalid"}};
  return r;
}

// Rows of one set of the mock's Dump, by primary key.
std::map<std::string, json> RowsOf(const json& dump, const std::string& set, const std::string& pk) {
  std::map<std::string, json> out;
  for (const json& row : dump[set]) out[row[pk].get<std::string>()] = row;
  return out;
}

class Dynamics365LookupTest : public Dynamics365BatchTest {
 protected:
  // `n` accounts written through the connector; their ids.
  std::vector<std::string> Accounts(int n) {
    std::vector<WriteOp> ops(n);
    for (int i = 0; i < n; ++i) {
      ops[i].key = "acct-" + std::to_string(i);
      ops[i].fields = {{"name", "Account " + std::to_string(i) + " AB"}};
    }
    auto out = connector_->Write(Keyed("accounts"), ops);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    std::vector<std::string> ids;
    if (!out.ok()) return ids;
    for (const WriteOutcome& o : *out) {
      EXPECT_TRUE(o.status.ok()) << o.status.ToString();
      ids.push_back(o.native_id);
    }
    return ids;
  }
  std::vector<NativeRecord> ReadAll(const ObjectRef& ref, Cursor* cursor, const ReadContext& ctx = {}) {
    std::vector<NativeRecord> out;
    for (int pages = 0; pages < 100; ++pages) {
      auto page = connector_->ReadChanges(ref, *cursor, ctx);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      for (NativeRecord& r : page->records) out.push_back(std::move(r));
      *cursor = page->next;
      if (!page->has_more) break;
    }
    return out;
  }
};

TEST_F(Dynamics365LookupTest, AReadGivesTheAccountIdUnderTheLookupsName) {
  mock_->Seed(11, 30);  // 30 accounts, each with an opportunity whose parentaccountid is it
  const auto rows = RowsOf(mock_->Dump(), "opportunities", "opportunityid");
  ASSERT_EQ(rows.size(), 30u);
  ObjectRef ref = Keyed("opportunities");
  ref.fields = {"name", "parentaccountid"};
  ref.ref_fields = {"parentaccountid"};
  ReadContext ctx;
  ctx.page_size = 7;  // several pages
  Cursor cursor;
  std::vector<NativeRecord> read = ReadAll(ref, &cursor, ctx);
  ASSERT_EQ(read.size(), 30u);
  const auto accounts = RowsOf(mock_->Dump(), "accounts", "accountid");
  for (const NativeRecord& r : read) {
    SCOPED_TRACE(r.id);
    ASSERT_TRUE(r.fields.contains("parentaccountid")) << r.fields.dump();
    ASSERT_TRUE(r.fields["parentaccountid"].is_string()) << r.fields.dump();
    EXPECT_EQ(r.fields["parentaccountid"], rows.at(r.id)["_parentaccountid_value"]);
    EXPECT_TRUE(accounts.count(r.fields["parentaccountid"].get<std::string>())) << "an account's id";
    EXPECT_FALSE(r.fields.contains("_parentaccountid_value")) << "given under the lookup's name only";
  }

  // A change of the lookup comes through the delta link the same way.
  ASSERT_NE(cursor.find("deltatoken="), std::string::npos) << cursor;
  const std::string moved = read[0].id;
  const std::string other = read[1].fields["parentaccountid"].get<std::string>();
  WriteOp op;
  op.kind = WriteOp::Kind::kUpdate;
  op.native_id = moved;
  op.refs["parentaccountid"] = NativeRef{"accounts", other, "", ""};
  auto out = connector_->Write(Keyed("opportunities"), {op});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_TRUE((*out)[0].status.ok()) << (*out)[0].status.ToString();
  std::vector<NativeRecord> delta = ReadAll(ref, &cursor);
  ASSERT_EQ(delta.size(), 1u);
  EXPECT_EQ(delta[0].id, moved);
  EXPECT_EQ(delta[0].fields["parentaccountid"], other);
}

TEST_F(Dynamics365LookupTest, ATableReadByModifiedOnGivesTheLookupToo) {
  mock_->Seed(12, 5);
  ObjectRef ref = Keyed("opportunities");
  ref.params["change_tracking"] = "false";
  ref.fields = {"name", "parentaccountid"};
  ref.ref_fields = {"parentaccountid"};
  ReadContext ctx;
  ctx.run_start_ms = Clock::Real()->NowMillis() + 60000;
  Cursor cursor;
  std::vector<NativeRecord> read = ReadAll(ref, &cursor, ctx);
  ASSERT_EQ(read.size(), 5u);
  const auto rows = RowsOf(mock_->Dump(), "opportunities", "opportunityid");
  for (const NativeRecord& r : read)
    EXPECT_EQ(r.fields["parentaccountid"], rows.at(r.id)["_parentaccountid_value"]) << r.id;
}

TEST_F(Dynamics365LookupTest, AWriteWithARefBindsTheLookupAndAnEmptyOneUnbindsIt) {
  const std::vector<std::string> accounts = Accounts(3);
  ASSERT_EQ(accounts.size(), 3u);
  // Three in a $batch, then one alone (a plain request): both bind.
  std::vector<WriteOp> ops = Ops(4);
  for (int i = 0; i < 4; ++i) ops[i].refs["parentaccountid"] = NativeRef{"accounts", accounts[i % 3], "", ""};
  std::vector<WriteOp> first(ops.begin(), ops.begin() + 3), last(ops.begin() + 3, ops.end());
  const int64_t batches = BatchCalls();
  auto out = connector_->Write(Keyed("opportunities"), first);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(BatchCalls(), batches + 1);
  auto single = connector_->Write(Keyed("opportunities"), last);
  ASSERT_TRUE(single.ok()) << single.status().ToString();
  out->push_back((*single)[0]);
  std::vector<std::string> ids;
  for (const WriteOutcome& o : *out) {
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    ids.push_back(o.native_id);
  }
  auto rows = RowsOf(mock_->Dump(), "opportunities", "opportunityid");
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(rows.at(ids[i])["_parentaccountid_value"], accounts[i % 3]) << i;
    EXPECT_EQ(rows.at(ids[i])["name"], "Deal " + std::to_string(i)) << "the fields land with the bind";
  }

  // An empty ref id unbinds; an op without refs leaves the lookup alone.
  std::vector<WriteOp> clear = Ops(2, "Again");
  clear[0].refs["parentaccountid"] = NativeRef{"accounts", "", "", ""};
  out = connector_->Write(Keyed("opportunities"), clear);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  for (const WriteOutcome& o : *out) ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  rows = RowsOf(mock_->Dump(), "opportunities", "opportunityid");
  EXPECT_TRUE(rows.at(ids[0])["_parentaccountid_value"].is_null()) << rows.at(ids[0]).dump();
  EXPECT_EQ(rows.at(ids[0])["name"], "Again 0");
  EXPECT_EQ(rows.at(ids[1])["_parentaccountid_value"], accounts[1]) << "no ref: not touched";
  EXPECT_EQ(rows.at(ids[2])["_parentaccountid_value"], accounts[2]);
}

TEST_F(Dynamics365LookupTest, APolymorphicLookupIsBoundThroughItsBind) {
  const std::vector<std::string> accounts = Accounts(2);
  ASSERT_EQ(accounts.size(), 2u);
  std::vector<WriteOp> ops(2);
  for (int i = 0; i < 2; ++i) {
    ops[i].key = "contact-" + std::to_string(i);
    ops[i].fields = {{"lastname", "Berg " + std::to_string(i)}};
    ops[i].refs["parentcustomerid"] = NativeRef{"accounts", accounts[i], "", "parentcustomerid_account"};
  }
  auto out = connector_->Write(Keyed("contacts"), ops);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  std::vector<std::string> ids;
  for (const WriteOutcome& o : *out) {
    ASSERT_TRUE(o.status.ok()) << o.status.ToString();
    ids.push_back(o.native_id);
  }
  auto rows = RowsOf(mock_->Dump(), "contacts", "contactid");
  for (int i = 0; i < 2; ++i) EXPECT_EQ(rows.at(ids[i])["_parentcustomerid_value"], accounts[i]) << i;

  // Read back under the lookup's name.
  ObjectRef ref = Keyed("contacts");
  ref.fields = {"lastname", "parentcustomerid"};
  ref.ref_fields = {"parentcustomerid"};
  Cursor cursor;
  std::vector<NativeRecord> read = ReadAll(ref, &cursor);
  ASSERT_EQ(read.size(), 2u);
  for (const NativeRecord& r : read)
    EXPECT_EQ(r.fields["parentcustomerid"], rows.at(r.id)["_parentcustomerid_value"]) << r.id;

  // Unbound through the same navigation property.
  WriteOp clear;
  clear.key = "contact-1";
  clear.refs["parentcustomerid"] = NativeRef{"accounts", "", "", "parentcustomerid_account"};
  auto cleared = connector_->Write(Keyed("contacts"), {clear});
  ASSERT_TRUE(cleared.ok()) << cleared.status().ToString();
  ASSERT_TRUE((*cleared)[0].status.ok()) << (*cleared)[0].status.ToString();
  rows = RowsOf(mock_->Dump(), "contacts", "contactid");
  EXPECT_TRUE(rows.at(ids[1])["_parentcustomerid_value"].is_null());
  EXPECT_EQ(rows.at(ids[0])["_parentcustomerid_value"], accounts[0]);
}

TEST_F(Dynamics365LookupTest, ANoteIsBoundToItsOpportunityThroughObjectIdOpportunity) {
  auto opportunity = connector_->Write(Keyed("opportunities"), Ops(1));
  ASSERT_TRUE(opportunity.ok());
  ASSERT_TRUE((*opportunity)[0].status.ok());
  WriteOp note;
  note.key = "note-1";
  note.fields = {{"notetext", "Start meeting booked"}};
  note.refs["objectid"] = NativeRef{"opportunities", (*opportunity)[0].native_id, "", "objectid_opportunity"};
  auto out = connector_->Write(Keyed("annotations"), {note});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_TRUE((*out)[0].status.ok()) << (*out)[0].status.ToString();
  auto rows = RowsOf(mock_->Dump(), "annotations", "annotationid");
  const json& row = rows.at((*out)[0].native_id);
  EXPECT_EQ(row["_objectid_value"], (*opportunity)[0].native_id);
  EXPECT_EQ(row["objecttypecode"], "opportunity");
}

}  // namespace
}  // namespace crmbridge

namespace crmbridge {
namespace {

// A create-only table (params create_only: "true") upserts with If-None-Match: *: a row someone
// else keyed the same is never overwritten, and a create repeated after its answer was lost (the
// row is there, with crmbridge's key) adopts that row instead of failing or duplicating it.
TEST_F(Dynamics365BatchTest, ACreateOnlyUpsertNeverOverwritesAndAdoptsItsOwnEarlierRow) {
  ObjectRef notes;
  notes.object = "annotations";
  notes.params = {{"key", "crmb_externalid"}, {"create_only", "true"}};
  std::vector<WriteOp> ops(3);
  for (int i = 0; i < 3; ++i) {
    ops[i].key = "note-" + std::to_string(i);
    ops[i].fields = {{"notetext", "Ny kund " + std::to_string(i)}};
  }
  auto first = connector_->Write(notes, ops);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  for (const WriteOutcome& o : *first) ASSERT_TRUE(o.status.ok() && o.created) << o.status.ToString();

  // The same creates again, with other text (batch and single): the rows keep their first text,
  // and each op is answered with the existing row's id.
  for (WriteOp& op : ops) op.fields["notetext"] = "overwritten";
  for (const std::vector<WriteOp>& again : {ops, std::vector<WriteOp>{ops[0]}}) {
    auto out = connector_->Write(notes, again);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    for (size_t i = 0; i < again.size(); ++i) {
      ASSERT_TRUE((*out)[i].status.ok()) << (*out)[i].status.ToString();
      EXPECT_FALSE((*out)[i].created);
      EXPECT_EQ((*out)[i].native_id, (*first)[i].native_id);
    }
  }
  const json rows = mock_->Dump()["annotations"];
  ASSERT_EQ(rows.size(), 3u);
  for (const json& r : rows) EXPECT_NE(r["notetext"], "overwritten") << r.dump();
}

// A row's owner is a systemuser in Dynamics 365 and an email to crmbridge: read as its user's
// internalemailaddress, written bound to the enabled user with that email. An email no enabled
// user has (one who left, or no user at all) gets options.default_owner's user; with none set,
// the row keeps its owner (a new row: the application user crmbridge calls as).
TEST_F(Dynamics365LookupTest, OwnersAreReadAndWrittenByEmail) {
  ObjectRef ref = Keyed("accounts");
  ref.fields = {"name", "ownerid"};
  std::vector<WriteOp> ops(4);
  const char* owners[] = {"Erik.Sand@bolaget.example", "maja.ek@bolaget.example",
                          "nobody@bolaget.example", ""};
  for (int i = 0; i < 4; ++i) {
    ops[i].key = "owned-" + std::to_string(i);
    ops[i].fields = {{"name", "Owned " + std::to_string(i) + " AB"}, {"ownerid", owners[i]}};
  }
  auto out = connector_->Write(ref, ops);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  for (const WriteOutcome& o : *out) ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  Cursor cursor;
  std::map<std::string, std::string> owner_of;  // account name -> owner as read
  for (const NativeRecord& r : ReadAll(ref, &cursor))
    owner_of[r.fields["name"].get<std::string>()] = r.fields["ownerid"].get<std::string>();
  EXPECT_EQ(owner_of["Owned 0 AB"], "erik.sand@bolaget.example");
  EXPECT_EQ(owner_of["Owned 1 AB"], "crmbridge@bolaget.example") << "a disabled user owns nothing new";
  EXPECT_EQ(owner_of["Owned 2 AB"], "crmbridge@bolaget.example");
  EXPECT_EQ(owner_of["Owned 3 AB"], "crmbridge@bolaget.example");

  config_.options["default_owner"] = "anna.lund@bolaget.example";
  Connect();
  out = connector_->Write(ref, {ops[1], ops[2]});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  for (const WriteOutcome& o : *out) ASSERT_TRUE(o.status.ok()) << o.status.ToString();
  const auto rows = RowsOf(mock_->Dump(), "accounts", "accountid");
  const auto users = RowsOf(mock_->Dump(), "systemusers", "systemuserid");
  for (const WriteOutcome& o : *out)
    EXPECT_EQ(users.at(rows.at(o.native_id)["_ownerid_value"])["internalemailaddress"],
              "anna.lund@bolaget.example");
}

// The stage history of rows crmbridge sees first, from the audit history: each seeded
// opportunity's stage column, oldest first, from its first value to the one it holds now, each
// dated in the past.
TEST_F(Dynamics365BatchTest, AColumnsHistoryComesFromTheAuditHistoryOldestFirst) {
  mock_->Seed(21, 6);
  const json dump = mock_->Dump();
  std::vector<std::string> ids;
  std::map<std::string, int> now;
  for (const json& o : dump["opportunities"]) {
    ids.push_back(o["opportunityid"].get<std::string>());
    now[ids.back()] = o["crmb_onboardingstage"].get<int>();
  }
  ASSERT_EQ(ids.size(), 6u);
  auto history = connector_->ReadFieldHistory(Opportunities(), "crmb_onboardingstage", ids);
  ASSERT_TRUE(history.ok()) << history.status().ToString();
  ASSERT_EQ(history->size(), ids.size());
  for (const std::string& id : ids) {
    const std::vector<FieldChange>& h = history->at(id);
    ASSERT_FALSE(h.empty());
    EXPECT_EQ(h.front().value, 100000000) << id;
    EXPECT_EQ(h.back().value, now[id]) << id;
    EXPECT_EQ(static_cast<int>(h.size()), now[id] - 100000000 + 1) << id;
    for (size_t i = 1; i < h.size(); ++i) EXPECT_LT(h[i - 1].at_ms, h[i].at_ms) << id;
    EXPECT_LT(h.back().at_ms, SystemClock().NowMillis()) << id;  // the mock's own clock
  }
  // A change made through the API joins it.
  std::vector<WriteOp> move(1);
  move[0].kind = WriteOp::Kind::kUpdate;
  move[0].native_id = ids[0];
  move[0].fields = {{"crmb_onboardingstage", 100000004}};
  auto moved = connector_->Write(Opportunities(), move);
  ASSERT_TRUE(moved.ok() && (*moved)[0].status.ok());
  auto again = connector_->ReadFieldHistory(Opportunities(), "crmb_onboardingstage", {ids[0]});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->at(ids[0]).back().value, 100000004);
}

// Auditing off for the table: no history (it starts now), and no audit row is asked for.
TEST_F(Dynamics365BatchTest, WithAuditingOffAColumnHasNoHistory) {
  mock_->Seed(22, 3);
  httplib::Client admin(mock_->base_url());
  auto off = admin.Post("/__admin/auditing", R"({"table": "opportunity", "enabled": false})",
                        "application/json");
  ASSERT_TRUE(off && off->status == 204);
  std::vector<std::string> ids;
  for (const json& o : mock_->Dump()["opportunities"]) ids.push_back(o["opportunityid"]);
  auto history = connector_->ReadFieldHistory(Opportunities(), "crmb_onboardingstage", ids);
  ASSERT_TRUE(history.ok()) << history.status().ToString();
  EXPECT_TRUE(history->empty());
  EXPECT_EQ(mock_->Stats().value("GET /api/data/v9.2/audits", int64_t{0}), 0);
}

}  // namespace
}  // namespace crmbridge
