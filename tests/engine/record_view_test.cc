// RecordView: pending changes first, then the loaded page, then the store, with no store call
// where the page already answers.
#include "src/engine/record_view.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/engine/mock_store.h"

namespace crmbridge {
namespace {

using ::testing::_;
using ::testing::Return;
using ::testing::StrictMock;
using testing::MockStore;

Link L(const std::string& cid, const std::string& system, const std::string& native) {
  Link l;
  l.entity = "company";
  l.canonical_id = cid;
  l.system = system;
  l.native_id = native;
  return l;
}

Snapshot S(const std::string& cid, const std::string& name) {
  Snapshot s;
  s.entity = "company";
  s.canonical_id = cid;
  s.fields = {{"name", name}};
  return s;
}

// The store holds c1 (hubspot 11, dynamics365 d1, with a snapshot); 12 is not linked.
RecordStates PageOf11And12() {
  RecordStates r;
  r.by_native["11"] = L("c1", "hubspot", "11");
  r.links["c1"] = {L("c1", "hubspot", "11"), L("c1", "dynamics365", "d1")};
  r.snapshots["c1"] = S("c1", "Acme");
  return r;
}

TEST(RecordViewTest, ALoadedPageAnswersWithoutAStoreCallIncludingWhatItDoesNotHold) {
  StrictMock<MockStore> store;
  EXPECT_CALL(store, LoadRecords("company", "hubspot", std::vector<std::string>{"11", "12"}, _))
      .WillOnce(Return(Result<RecordStates>(PageOf11And12())));
  RecordView view(&store);
  ASSERT_TRUE(view.Load("hubspot", "company", {"11", "12", "11"}).ok()) << "asked once each";

  EXPECT_EQ(*view.CanonicalIdOf(NativeKey{"hubspot", "company", "11"}), "c1");
  EXPECT_FALSE(view.CanonicalIdOf(NativeKey{"hubspot", "company", "12"})->has_value())
      << "looked up with the page: not linked, no store call";
  EXPECT_EQ((*view.LinkOf(RecordKey{"company", "c1"}, "dynamics365"))->native_id, "d1");
  EXPECT_FALSE(view.LinkOf(RecordKey{"company", "c1"}, "totango")->has_value());
  EXPECT_EQ((*view.SnapshotOf(RecordKey{"company", "c1"}))->fields["name"], "Acme");
}

// A page found by native id comes with digests, not snapshots: a record whose read matches its
// system's digest needs nothing more; one that does not has its snapshot read once, when asked.
TEST(RecordViewTest, ARecordFoundByNativeIdIsSettledByDigestAndDecodedOnlyWhenAsked) {
  StrictMock<MockStore> store;
  RecordStates page = PageOf11And12();
  page.snapshots.clear();
  SettledDigests digests;
  digests.known = true;
  digests.by_system = {{"hubspot", "00aa"}};
  page.digests["c1"] = digests;
  EXPECT_CALL(store, LoadRecords(_, _, _, _)).WillOnce(Return(Result<RecordStates>(page)));
  RecordView view(&store);
  ASSERT_TRUE(view.Load("hubspot", "company", {"11", "12"}).ok());
  const RecordKey c1{"company", "c1"};
  EXPECT_TRUE(view.SettledOn(c1, "hubspot", "00aa"));
  EXPECT_FALSE(view.SettledOn(c1, "hubspot", "00bb")) << "another value read";
  EXPECT_FALSE(view.SettledOn(c1, "dynamics365", "00aa")) << "not settled there";
  EXPECT_FALSE(view.SettledOn(RecordKey{"company", "c2"}, "hubspot", "00aa")) << "not loaded";
  EXPECT_FALSE(view.LacksDigests(c1));

  EXPECT_CALL(store, GetSnapshot("company", "c1"))
      .WillOnce(Return(Result<std::optional<Snapshot>>(std::optional<Snapshot>(S("c1", "Acme")))));
  EXPECT_EQ((*view.SnapshotOf(c1))->fields["name"], "Acme");
  EXPECT_EQ((*view.SnapshotOf(c1))->fields["name"], "Acme") << "read once";

  // Changed by this page: the digest no longer tells.
  view.PutSnapshot(S("c1", "Acme Group"));
  EXPECT_FALSE(view.SettledOn(c1, "hubspot", "00aa"));
}

// Found by native id, a record comes with its link in the page's system; its links elsewhere are
// read once each, when asked for, and a record without digests has no snapshot to read.
TEST(RecordViewTest, ARecordFoundByNativeIdReadsItsOtherLinksOnceWhenAsked) {
  StrictMock<MockStore> store;
  RecordStates page;
  page.by_native["11"] = L("c1", "hubspot", "11");
  page.by_native["12"] = L("c2", "hubspot", "12");
  page.digests["c1"] = SettledDigests{true, {{"hubspot", "00aa"}}};
  EXPECT_CALL(store, LoadRecords(_, _, _, _)).WillOnce(Return(Result<RecordStates>(page)));
  RecordView view(&store);
  ASSERT_TRUE(view.Load("hubspot", "company", {"11", "12"}).ok());
  const RecordKey c1{"company", "c1"};
  EXPECT_EQ((*view.LinkOf(c1, "hubspot"))->native_id, "11") << "no store call";
  EXPECT_CALL(store, FindLink("company", "c1", "dynamics365"))
      .WillOnce(Return(Result<std::optional<Link>>(std::optional<Link>(L("c1", "dynamics365", "d1")))));
  EXPECT_EQ((*view.LinkOf(c1, "dynamics365"))->native_id, "d1");
  EXPECT_EQ((*view.LinkOf(c1, "dynamics365"))->native_id, "d1") << "read once";
  EXPECT_CALL(store, FindLink("company", "c1", "totango"))
      .WillOnce(Return(Result<std::optional<Link>>(std::optional<Link>())));
  EXPECT_FALSE(view.LinkOf(c1, "totango")->has_value());
  EXPECT_FALSE(view.LinkOf(c1, "totango")->has_value()) << "its absence is kept too";
  EXPECT_CALL(store, GetSnapshot("company", "c2"))
      .WillOnce(Return(Result<std::optional<Snapshot>>(std::optional<Snapshot>())));
  EXPECT_FALSE(view.SnapshotOf(RecordKey{"company", "c2"})->has_value()) << "read when asked";
}

TEST(RecordViewTest, ASnapshotStoredBeforeDigestsSaysSo) {
  StrictMock<MockStore> store;
  RecordStates page = PageOf11And12();
  page.snapshots.clear();
  page.digests["c1"] = SettledDigests{};  // known = false
  EXPECT_CALL(store, LoadRecords(_, _, _, _)).WillOnce(Return(Result<RecordStates>(page)));
  RecordView view(&store);
  ASSERT_TRUE(view.Load("hubspot", "company", {"11"}).ok());
  EXPECT_TRUE(view.LacksDigests(RecordKey{"company", "c1"}));
  EXPECT_FALSE(view.SettledOn(RecordKey{"company", "c1"}, "hubspot", ""));
}

TEST(RecordViewTest, ANewRecordIsKnownToHaveNothingStored) {
  StrictMock<MockStore> store;
  EXPECT_CALL(store, LoadRecords(_, _, _, _)).WillOnce(Return(Result<RecordStates>(RecordStates{})));
  RecordView view(&store);
  ASSERT_TRUE(view.Load("hubspot", "company", {"13"}).ok());
  view.NoteNew("company", "c9");
  EXPECT_FALSE(view.LinkOf(RecordKey{"company", "c9"}, "dynamics365")->has_value());
  EXPECT_FALSE(view.SnapshotOf(RecordKey{"company", "c9"})->has_value());
}

TEST(RecordViewTest, PendingChangesComeFirstUntilCleared) {
  StrictMock<MockStore> store;
  EXPECT_CALL(store, LoadRecords(_, _, _, _))
      .WillOnce(Return(Result<RecordStates>(PageOf11And12())));
  RecordView view(&store);
  ASSERT_TRUE(view.Load("hubspot", "company", {"11", "12"}).ok());
  view.PutLink(L("c2", "hubspot", "12"));
  view.PutSnapshot(S("c1", "Acme Group"));
  EXPECT_TRUE(view.PutMatchKey("company", "domain=acme.se", "c1"));
  EXPECT_FALSE(view.PutMatchKey("company", "domain=acme.se", "c2")) << "the first keeps it";

  EXPECT_EQ(*view.CanonicalIdOf(NativeKey{"hubspot", "company", "12"}), "c2");
  EXPECT_EQ((*view.LinkOf(RecordKey{"company", "c2"}, "hubspot"))->native_id, "12");
  EXPECT_EQ((*view.SnapshotOf(RecordKey{"company", "c1"}))->fields["name"], "Acme Group");
  EXPECT_EQ(**view.ByMatchKey("company", "domain=acme.se"), "c1");

  // Committed: the pending changes are the store's now; the loaded page answers again.
  view.ClearPending();
  EXPECT_EQ((*view.SnapshotOf(RecordKey{"company", "c1"}))->fields["name"], "Acme");
  EXPECT_CALL(store, FindByMatchKey("company", "domain=acme.se"))
      .WillOnce(Return(Result<std::optional<std::string>>(std::optional<std::string>("c1"))));
  EXPECT_EQ(**view.ByMatchKey("company", "domain=acme.se"), "c1");
}

TEST(RecordViewTest, WhatThePageDidNotLoadIsAskedOfTheStore) {
  StrictMock<MockStore> store;
  RecordView view(&store);  // nothing loaded
  EXPECT_CALL(store, FindLinkByNative("hubspot", "company", "77"))
      .WillOnce(Return(Result<std::optional<Link>>(std::optional<Link>(L("c7", "hubspot", "77")))));
  EXPECT_CALL(store, FindLink("contact", "p1", "hubspot"))
      .WillOnce(Return(Result<std::optional<Link>>(std::optional<Link>())));
  EXPECT_CALL(store, GetSnapshot("company", "c7"))
      .WillOnce(Return(Result<std::optional<Snapshot>>(std::optional<Snapshot>(S("c7", "Beta")))));
  EXPECT_EQ(*view.CanonicalIdOf(NativeKey{"hubspot", "company", "77"}), "c7");
  EXPECT_FALSE(view.LinkOf(RecordKey{"contact", "p1"}, "hubspot")->has_value());
  EXPECT_EQ((*view.SnapshotOf(RecordKey{"company", "c7"}))->fields["name"], "Beta");
}

TEST(RecordViewTest, AStoreFailureIsReturnedNotHidden) {
  StrictMock<MockStore> store;
  EXPECT_CALL(store, LoadRecords(_, _, _, _))
      .WillOnce(Return(Result<RecordStates>(Status(StatusCode::kUnavailable, "database is locked"))));
  RecordView view(&store);
  Status s = view.Load("hubspot", "company", {"11"});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  // Nothing half-loaded stays behind: the next lookup goes to the store.
  EXPECT_CALL(store, FindLinkByNative("hubspot", "company", "11"))
      .WillOnce(Return(Result<std::optional<Link>>(std::optional<Link>())));
  EXPECT_FALSE(view.CanonicalIdOf(NativeKey{"hubspot", "company", "11"})->has_value());
}

}  // namespace
}  // namespace crmbridge
