// The Store conformance suite (store_conformance.h says what it is and how a backend joins it):
// every TEST_P here holds for every backend, and each backend is instantiated at the end.
#include "tests/state/store_conformance.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "state/sqlite_store.h"
#include "src/core/hash.h"
#include "state/store.h"
#include "tests/state/store_test_data.h"

namespace crmbridge {
namespace store_test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

TEST_P(StoreConformanceTest, ReopeningKeepsAllData) {
  int64_t run_id = 0;
  int schema_version = 0;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    StateBatch batch;
    batch.PutLink(MakeLink("c1", "hubspot", "101"));
    Snapshot snap;
    snap.entity = "company";
    snap.canonical_id = "c1";
    snap.fields = {{"name", "Acme"}, {"tier", "A"}};
    snap.updated_ms = kT0;
    batch.PutSnapshot(snap);
    batch.SetCursor("hubspot", "companies", "cur-7");
    batch.Enqueue(Item("portal", "c1", {{"name", "Acme"}}));
    batch.Enqueue(Item("totango", "c2", {{"name", "Beta"}}));
    batch.AddStageTransition(StageTransition{"onboarding", "o1", "hubspot", "Ny", "Pågår", kT0});
    ASSERT_TRUE(store->Apply(batch).ok());
    auto due = store->DueOutbox(OutboxFilter("totango", kT0, 10));
    ASSERT_TRUE(due.ok());
    ASSERT_EQ(due->size(), 1u);
    StateBatch dead;
    dead.DeadLetterOutbox((*due)[0].id, "INVALID_ARGUMENT: no", 422);
    ASSERT_TRUE(store->Apply(dead).ok());
    run_id = *store->BeginRun("backfill", kT0);
    schema_version = *store->SchemaVersion();
    ASSERT_TRUE(*store->AcquireLease("w1", kT0, 60000));
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto link = store->FindLinkByNative("hubspot", "company", "101");
  ASSERT_TRUE(link.ok());
  ASSERT_TRUE(link->has_value());
  EXPECT_EQ((*link)->canonical_id, "c1");
  EXPECT_EQ((*link)->last_written_hash, "w-101");
  auto snap = store->GetSnapshot("company", "c1");
  ASSERT_TRUE(snap.ok() && snap->has_value());
  EXPECT_EQ((*snap)->fields, (json{{"name", "Acme"}, {"tier", "A"}}));
  EXPECT_EQ(**store->GetCursor("hubspot", "companies"), "cur-7");
  auto due = store->DueOutbox(OutboxFilter("portal", kT0, 10));
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].payload, (json{{"name", "Acme"}}));
  auto letters = store->ListDeadLetters(10);
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].http_status, 422);
  EXPECT_EQ((*letters)[0].item.canonical_id, "c2");
  EXPECT_EQ(store->StageHistory("onboarding", "o1")->at(0).to_stage, "Pågår");
  auto runs = store->RecentRuns(5);
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].id, run_id);
  EXPECT_EQ((*runs)[0].outcome, "running");
  auto lease = store->GetLease();
  ASSERT_TRUE(lease->has_value());
  EXPECT_EQ((*lease)->holder, "w1");
  EXPECT_EQ(*store->SchemaVersion(), schema_version);
}

TEST_P(StoreConformanceTest, ApplyIsAllOrNothingWhenTheLastOpIsMissing) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (bool retry : {false, true}) {
    StateBatch batch;
    batch.PutLink(MakeLink("c1", "hubspot", "101"));
    batch.SetCursor("hubspot", "companies", "advanced");
    batch.Enqueue(Item("portal", "c1", {{"name", "Acme"}}));
    batch.AddStageTransition(StageTransition{"onboarding", "o1", "hubspot", "", "Ny", kT0});
    if (retry) {
      batch.RetryOutbox(987654, "UNAVAILABLE", kT0 + 1000);
    } else {
      batch.CompleteOutbox(987654);
    }
    Status s = store->Apply(batch);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kNotFound);
    EXPECT_THAT(s.message(), HasSubstr("987654"));
    EXPECT_THAT(s.message(), HasSubstr(retry ? "RetryOutbox" : "CompleteOutbox"));

    EXPECT_FALSE(store->FindLink("company", "c1", "hubspot")->has_value());
    EXPECT_FALSE(store->GetCursor("hubspot", "companies")->has_value());
    EXPECT_TRUE(store->DueOutbox(OutboxFilter("portal", kT0, 10))->empty());
    EXPECT_TRUE(store->StageHistory("onboarding", "o1")->empty());
    EXPECT_EQ(*store->OutboxCounts(), json::object());
  }
}

TEST_P(StoreConformanceTest, ApplyRollsBackOnAConstraintFailure) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch first;
  first.PutLink(MakeLink("c1", "hubspot", "101"));
  ASSERT_TRUE(store->Apply(first).ok());

  StateBatch batch;
  batch.SetCursor("hubspot", "companies", "advanced");
  batch.PutLink(MakeLink("c2", "hubspot", "101"));  // native id already linked to c1
  Status s = store->Apply(batch);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_FALSE(store->GetCursor("hubspot", "companies")->has_value());
  EXPECT_EQ((*store->FindLinkByNative("hubspot", "company", "101"))->canonical_id, "c1");
  EXPECT_FALSE(store->FindLink("company", "c2", "hubspot")->has_value());
}

TEST_P(StoreConformanceTest, CompletingAnOlderPayloadKeepsTheNewerOneQueued) {
  // A write is in flight when a newer change for the same record is queued (coalesced into the
  // same outbox row). Completing the delivered payload must not drop the newer one.
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch first;
  OutboxItem old_item = Item("hubspot", "c1", {{"name", "old"}});
  first.Enqueue(old_item);
  ASSERT_TRUE(store->Apply(first).ok());
  auto due = store->DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_EQ(due->size(), 1u);
  const OutboxItem in_flight = (*due)[0];

  StateBatch newer;
  newer.Enqueue(Item("hubspot", "c1", {{"name", "new"}}));
  ASSERT_TRUE(store->Apply(newer).ok());

  StateBatch done;
  done.CompleteOutbox(in_flight.id, in_flight.payload_hash);
  ASSERT_TRUE(store->Apply(done).ok());
  due = store->DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].payload, (json{{"name", "new"}}));

  StateBatch newer_done;
  newer_done.CompleteOutbox((*due)[0].id, (*due)[0].payload_hash);
  ASSERT_TRUE(store->Apply(newer_done).ok());
  EXPECT_TRUE(store->DueOutbox(OutboxFilter("hubspot", kT0, 10))->empty());
}

TEST_P(StoreConformanceTest, AFailureOfAnOlderPayloadNeitherRetriesNorDeadLettersTheNewerOne) {
  // The reads queue a newer change while the older payload's write is failing: the newer one
  // has not been tried, so it keeps its fresh budget and stays queued.
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch first;
  first.Enqueue(Item("hubspot", "c1", {{"name", "old"}}));
  ASSERT_TRUE(store->Apply(first).ok());
  const OutboxItem in_flight = (*store->DueOutbox(OutboxFilter("hubspot", kT0, 10)))[0];

  StateBatch newer;
  newer.Enqueue(Item("hubspot", "c1", {{"name", "new"}}));
  ASSERT_TRUE(store->Apply(newer).ok());

  StateBatch retry;
  retry.RetryOutbox(in_flight.id, "503 from hubspot", kT0 + 60000, true, in_flight.payload_hash);
  ASSERT_TRUE(store->Apply(retry).ok());
  auto due = store->DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_EQ(due->size(), 1u) << "not pushed back by the older payload's failure";
  EXPECT_EQ((*due)[0].attempts, 0);
  EXPECT_EQ((*due)[0].payload, (json{{"name", "new"}}));

  StateBatch dead;
  dead.DeadLetterOutbox(in_flight.id, "400 from hubspot", 400, in_flight.payload_hash);
  ASSERT_TRUE(store->Apply(dead).ok());
  EXPECT_EQ(store->DueOutbox(OutboxFilter("hubspot", kT0, 10))->size(), 1u) << "the newer payload stays queued";
  EXPECT_TRUE(store->ListDeadLetters(10)->empty());

  // The payload that was tried fails as before.
  StateBatch own;
  own.DeadLetterOutbox((*due)[0].id, "400 from hubspot", 400, (*due)[0].payload_hash);
  ASSERT_TRUE(store->Apply(own).ok());
  EXPECT_TRUE(store->DueOutbox(OutboxFilter("hubspot", kT0, 10))->empty());
  EXPECT_EQ(store->ListDeadLetters(10)->size(), 1u);
}

TEST_P(StoreConformanceTest, EnqueueCoalescesPerRecord) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("hubspot", "c1", {{"name", "old"}}));
  batch.Enqueue(Item("hubspot", "c2", {{"name", "other"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  auto due = store->DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_EQ(due->size(), 2u);
  const int64_t id_c1 = (*due)[0].id;
  const int64_t id_c2 = (*due)[1].id;

  StateBatch retry;
  retry.RetryOutbox(id_c1, "UNAVAILABLE: 503", kT0 + 60000);
  retry.RetryOutbox(id_c1, "UNAVAILABLE: 503", kT0 + 120000);
  ASSERT_TRUE(store->Apply(retry).ok());
  EXPECT_EQ(DueIds(store.get(), "hubspot", kT0), (std::vector<int64_t>{id_c2}));

  StateBatch newer;
  OutboxItem item = Item("hubspot", "c1", {{"name", "new"}});
  item.native_id = "101";
  newer.Enqueue(item);
  ASSERT_TRUE(store->Apply(newer).ok());

  due = store->DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_EQ(due->size(), 2u);
  const OutboxItem& c1 = (*due)[0];
  EXPECT_EQ(c1.id, id_c1);  // keeps its place in the queue
  EXPECT_EQ(c1.canonical_id, "c1");
  EXPECT_EQ(c1.payload, (json{{"name", "new"}}));
  EXPECT_EQ(c1.payload_hash, item.payload_hash);
  EXPECT_EQ(c1.native_id, "101");
  EXPECT_EQ(c1.attempts, 0);
  EXPECT_EQ(c1.next_attempt_ms, 0);
  EXPECT_EQ(c1.last_error, "");
  EXPECT_EQ(*store->OutboxCounts(), (json{{"hubspot", 2}}));

  // Another system or entity is another record.
  StateBatch more;
  more.Enqueue(Item("portal", "c1", {{"name", "new"}}));
  OutboxItem contact = Item("hubspot", "c1", {{"email", "a@b.c"}});
  contact.entity = "contact";
  more.Enqueue(contact);
  ASSERT_TRUE(store->Apply(more).ok());
  EXPECT_EQ(*store->OutboxCounts(), (json{{"hubspot", 3}, {"portal", 1}}));
}

TEST_P(StoreConformanceTest, DueOutboxIsOldestFirstDueOnlyAndLimited) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  for (int i = 0; i < 5; ++i) batch.Enqueue(Item("hubspot", "c" + std::to_string(i), {{"i", i}}));
  batch.Enqueue(Item("portal", "p", {{"i", 9}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  auto all = store->DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_EQ(all->size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ((*all)[i].payload["i"], i);

  StateBatch later;
  later.RetryOutbox((*all)[0].id, "UNAVAILABLE", kT0 + 5000);
  ASSERT_TRUE(store->Apply(later).ok());

  auto two = store->DueOutbox(OutboxFilter("hubspot", kT0, 2));
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0].canonical_id, "c1");
  EXPECT_EQ((*two)[1].canonical_id, "c2");
  EXPECT_EQ(DueIds(store.get(), "hubspot", kT0 + 4999).size(), 4u);
  auto at_due = store->DueOutbox(OutboxFilter("hubspot", kT0 + 5000, 1));
  ASSERT_EQ(at_due->size(), 1u);
  EXPECT_EQ((*at_due)[0].canonical_id, "c0");
  EXPECT_EQ((*at_due)[0].attempts, 1);
  EXPECT_EQ((*at_due)[0].last_error, "UNAVAILABLE");
}

TEST_P(StoreConformanceTest, DueOutboxNarrowsToAnEntityAndToDeletesKeepingTheOrder) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  // Queued across entities and ops; "name" says what each is.
  auto queued = [](const std::string& entity, const std::string& id, OutboxOp op) {
    OutboxItem item = Item("hubspot", id, {{"name", entity + "/" + id + "/" + OutboxOpName(op)}});
    item.entity = entity;
    item.op = op;
    return item;
  };
  StateBatch batch;
  batch.Enqueue(queued("contact", "k1", OutboxOp::kUpsert));
  batch.Enqueue(queued("company", "c1", OutboxOp::kDelete));
  batch.Enqueue(queued("company", "c2", OutboxOp::kUpsert));
  batch.Enqueue(queued("contact", "k2", OutboxOp::kDelete));
  batch.Enqueue(queued("company", "c3", OutboxOp::kDelete));
  batch.Enqueue(queued("contact", "k3", OutboxOp::kUpsert));
  batch.Enqueue(queued("company", "c4", OutboxOp::kMerge));  // not a delete
  OutboxItem elsewhere = queued("company", "c9", OutboxOp::kDelete);
  elsewhere.system = "portal";
  batch.Enqueue(elsewhere);
  ASSERT_TRUE(store->Apply(batch).ok());

  auto names = [&](const OutboxFilter& filter) {
    std::vector<std::string> out;
    auto due = store->DueOutbox(filter);
    EXPECT_TRUE(due.ok()) << due.status().ToString();
    if (due.ok())
      for (const OutboxItem& item : *due) out.push_back(item.payload["name"].get<std::string>());
    return out;
  };
  const OutboxFilter all("hubspot", kT0, 0);
  EXPECT_THAT(names(all),
              ElementsAre("contact/k1/upsert", "company/c1/delete", "company/c2/upsert",
                          "contact/k2/delete", "company/c3/delete", "contact/k3/upsert",
                          "company/c4/merge"));
  EXPECT_THAT(names(all.ForEntity("company")),
              ElementsAre("company/c1/delete", "company/c2/upsert", "company/c3/delete",
                          "company/c4/merge"));
  EXPECT_THAT(names(all.DeletesOnly()),
              ElementsAre("company/c1/delete", "contact/k2/delete", "company/c3/delete"));
  EXPECT_THAT(names(all.DeletesOnly().ForEntity("contact")), ElementsAre("contact/k2/delete"));
  EXPECT_TRUE(names(all.ForEntity("onboarding")).empty());
  EXPECT_THAT(names(OutboxFilter("portal", kT0, 0).DeletesOnly()),
              ElementsAre("company/c9/delete"));

  // Limits and due times apply after the narrowing.
  EXPECT_THAT(names(OutboxFilter("hubspot", kT0, 1).DeletesOnly()),
              ElementsAre("company/c1/delete"));
  EXPECT_THAT(names(OutboxFilter("hubspot", kT0, 2).ForEntity("contact")),
              ElementsAre("contact/k1/upsert", "contact/k2/delete"));
  const int64_t c1_id = store->DueOutbox(all.ForEntity("company"))->at(0).id;
  StateBatch later;
  later.RetryOutbox(c1_id, "UNAVAILABLE", kT0 + 5000);
  ASSERT_TRUE(store->Apply(later).ok());
  EXPECT_THAT(names(OutboxFilter("hubspot", kT0, 1).DeletesOnly()),
              ElementsAre("contact/k2/delete"));
  EXPECT_THAT(names(OutboxFilter("hubspot", kT0 + 5000, 0).ForEntity("company").DeletesOnly()),
              ElementsAre("company/c1/delete", "company/c3/delete"));
}

TEST_P(StoreConformanceTest, RetryCompleteDeadLetterReplayCycle) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("portal", "c1", {{"name", "Acme"}}));
  batch.Enqueue(Item("portal", "c2", {{"name", "Beta"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  auto due = store->DueOutbox(OutboxFilter("portal", kT0, 10));
  ASSERT_EQ(due->size(), 2u);
  const int64_t id1 = (*due)[0].id;
  const int64_t id2 = (*due)[1].id;

  StateBatch first;
  first.CompleteOutbox(id1);
  first.RetryOutbox(id2, "UNAVAILABLE: 503", kT0 + 1000);
  ASSERT_TRUE(store->Apply(first).ok());
  EXPECT_TRUE(DueIds(store.get(), "portal", kT0).empty());
  EXPECT_EQ(DueIds(store.get(), "portal", kT0 + 1000), (std::vector<int64_t>{id2}));

  clock_.Advance(std::chrono::milliseconds(1500));
  StateBatch second;
  second.DeadLetterOutbox(id2, "INVALID_ARGUMENT: portal: HTTP 422: bad email", 422);
  ASSERT_TRUE(store->Apply(second).ok());
  EXPECT_EQ(*store->OutboxCounts(), json::object());

  EXPECT_EQ(*store->DeadLetterCounts(), (json{{"portal", 1}}));
  auto letters = store->ListDeadLetters(10);
  ASSERT_EQ(letters->size(), 1u);
  const DeadLetter& dl = (*letters)[0];
  EXPECT_EQ(dl.reason, "INVALID_ARGUMENT: portal: HTTP 422: bad email");
  EXPECT_EQ(dl.http_status, 422);
  EXPECT_EQ(dl.failed_ms, kT0 + 1500);
  EXPECT_EQ(dl.item.id, id2);
  EXPECT_EQ(dl.item.system, "portal");
  EXPECT_EQ(dl.item.object, "companies");
  EXPECT_EQ(dl.item.canonical_id, "c2");
  EXPECT_EQ(dl.item.payload, (json{{"name", "Beta"}}));
  EXPECT_EQ(dl.item.attempts, 2);  // the retried attempt and the final one
  EXPECT_EQ(dl.item.last_error, dl.reason);

  // Dead-lettering an item twice, or completing a dead-lettered one, is an error.
  StateBatch again;
  again.DeadLetterOutbox(id2, "x", 400);
  EXPECT_EQ(store->Apply(again).code(), StatusCode::kNotFound);

  ASSERT_TRUE(store->ReplayDeadLetter(dl.id, kT0 + 2000).ok());
  EXPECT_TRUE(store->ListDeadLetters(10)->empty());
  EXPECT_EQ(*store->DeadLetterCounts(), json::object());
  EXPECT_TRUE(DueIds(store.get(), "portal", kT0 + 1999).empty());
  due = store->DueOutbox(OutboxFilter("portal", kT0 + 2000, 10));
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].canonical_id, "c2");
  EXPECT_EQ((*due)[0].payload, (json{{"name", "Beta"}}));
  EXPECT_EQ((*due)[0].attempts, 0);
  EXPECT_EQ((*due)[0].last_error, "");

  Status missing = store->ReplayDeadLetter(dl.id, kT0);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);

  StateBatch done;
  done.CompleteOutbox((*due)[0].id);
  ASSERT_TRUE(store->Apply(done).ok());
  EXPECT_EQ(*store->OutboxCounts(), json::object());
}

TEST_P(StoreConformanceTest, ReplayNeverSendsAPayloadOlderThanAPendingOne) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("hubspot", "c1", {{"name", "v1"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  StateBatch dead;
  dead.DeadLetterOutbox(DueIds(store.get(), "hubspot", kT0).at(0), "INVALID_ARGUMENT", 400);
  ASSERT_TRUE(store->Apply(dead).ok());

  StateBatch newer;
  newer.Enqueue(Item("hubspot", "c1", {{"name", "v2"}}));
  ASSERT_TRUE(store->Apply(newer).ok());
  auto pending = store->DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_EQ(pending->size(), 1u);
  StateBatch backoff;
  backoff.RetryOutbox((*pending)[0].id, "UNAVAILABLE", kT0 + 100000);
  ASSERT_TRUE(store->Apply(backoff).ok());

  ASSERT_TRUE(store->ReplayDeadLetter(store->ListDeadLetters(1)->at(0).id, kT0 + 10).ok());
  EXPECT_TRUE(store->ListDeadLetters(10)->empty());
  auto due = store->DueOutbox(OutboxFilter("hubspot", kT0 + 10, 10));
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].payload, (json{{"name", "v2"}}));
  EXPECT_EQ((*due)[0].attempts, 0);
}

TEST_P(StoreConformanceTest, ReplayingANewerDeadLetterReplacesAnOlderReplay) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (const char* version : {"v1", "v2"}) {
    StateBatch batch;
    batch.Enqueue(Item("hubspot", "c1", {{"name", version}}));
    ASSERT_TRUE(store->Apply(batch).ok());
    StateBatch dead;
    dead.DeadLetterOutbox(DueIds(store.get(), "hubspot", kT0).at(0), "INVALID_ARGUMENT", 400);
    ASSERT_TRUE(store->Apply(dead).ok());
  }
  auto letters = store->ListDeadLetters(10);
  ASSERT_EQ(letters->size(), 2u);
  ASSERT_TRUE(store->ReplayDeadLetter((*letters)[0].id, kT0).ok());  // v1
  ASSERT_TRUE(store->ReplayDeadLetter((*letters)[1].id, kT0).ok());  // v2
  auto due = store->DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].payload, (json{{"name", "v2"}}));
}

TEST_P(StoreConformanceTest, DeleteDeadLetter) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("hubspot", "c1", {{"name", "v1"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  StateBatch dead;
  dead.DeadLetterOutbox(DueIds(store.get(), "hubspot", kT0).at(0), "INVALID_ARGUMENT", 400);
  ASSERT_TRUE(store->Apply(dead).ok());
  const int64_t id = store->ListDeadLetters(1)->at(0).id;
  StateBatch del;
  del.DeleteDeadLetter(id);
  ASSERT_TRUE(store->Apply(del).ok());
  EXPECT_TRUE(store->ListDeadLetters(10)->empty());
  EXPECT_EQ(store->Apply(del).code(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, UnverifiedWritesAndDirectDeadLettersPersist) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Snapshot snap;
    snap.entity = "company";
    snap.canonical_id = "c1";
    snap.fields = {{"stage", "live"}};
    snap.unverified = {{"totango", {{"stage", {{"sent", "live"}, {"before", "kickoff"}, {"attempts", 2}}}}}};
    OutboxItem item = Item("totango", "c1", {{"Onboarding Stage", "Live"}});
    item.attempts = 3;
    StateBatch batch;
    batch.PutSnapshot(snap);
    batch.AddDeadLetter(item, "acknowledged but not applied");
    ASSERT_TRUE(store->Apply(batch).ok());
  }
  auto store = Open();  // reopened: the unverified writes and the dead letter survive
  auto snap = store->GetSnapshot("company", "c1");
  ASSERT_TRUE(snap.ok() && snap->has_value());
  EXPECT_EQ((**snap).unverified["totango"]["stage"]["attempts"], 2);
  auto dead = store->ListDeadLetters(10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].reason, "acknowledged but not applied");
  EXPECT_EQ((*dead)[0].item.payload["Onboarding Stage"], "Live");
  EXPECT_TRUE(store->ReplayDeadLetter((*dead)[0].id, kT0).ok()) << "replayable like any other";
  EXPECT_EQ(DueIds(store.get(), "totango", kT0 + 1).size(), 1u);
}

TEST_P(StoreConformanceTest, ValuesInDoubtPersistAndEverySnapshotReadReturnsTheWholeRow) {
  const json in_doubt = {{"dynamics365", {{"name", json::array({{{"value", "A1"}, {"sent_ms", 7}}})}}}};
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Snapshot snap;
    snap.entity = "company";
    snap.canonical_id = "c1";
    snap.fields = {{"name", "A2"}};
    snap.in_doubt = in_doubt;
    snap.unverified = {{"totango", {{"name", {{"sent", "A2"}, {"before", "A1"}, {"attempts", 1}}}}}};
    snap.deleted_ms = 5;
    StateBatch batch;
    batch.PutSnapshot(snap);
    ASSERT_TRUE(store->Apply(batch).ok());
  }
  auto store = Open();
  auto one = store->GetSnapshot("company", "c1");
  ASSERT_TRUE(one.ok() && one->has_value());
  EXPECT_EQ((**one).in_doubt, in_doubt);
  auto loaded = store->LoadRecords("company", "dynamics365", {}, {"c1"});
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->snapshots.at("c1").in_doubt, in_doubt);
  auto all = store->ListSnapshots("company");
  ASSERT_TRUE(all.ok() && all->size() == 1u);
  EXPECT_EQ((*all)[0].in_doubt, in_doubt);
  // The snapshots awaiting a read-back come whole: storing one back keeps its other columns.
  auto unverified = store->ListUnverified("totango", "company");
  ASSERT_TRUE(unverified.ok() && unverified->size() == 1u);
  EXPECT_EQ((*unverified)[0].in_doubt, in_doubt);
  EXPECT_EQ((*unverified)[0].deleted_ms, 5);
}

TEST_P(StoreConformanceTest, LeaseIsExclusiveExpiresAndRenews) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->GetLease()->has_value());
  EXPECT_TRUE(*store->AcquireLease("a", kT0, 1000));
  EXPECT_FALSE(*store->AcquireLease("b", kT0 + 999, 1000));
  EXPECT_EQ((*store->GetLease())->holder, "a");

  // Renewal by the holder extends it and keeps the original acquisition time.
  EXPECT_TRUE(*store->AcquireLease("a", kT0 + 500, 1000));
  auto lease = store->GetLease();
  EXPECT_EQ((*lease)->acquired_ms, kT0);
  EXPECT_EQ((*lease)->expires_ms, kT0 + 1500);
  EXPECT_FALSE(*store->AcquireLease("b", kT0 + 1499, 1000));

  // Expired: another holder takes it.
  EXPECT_TRUE(*store->AcquireLease("b", kT0 + 1500, 1000));
  lease = store->GetLease();
  EXPECT_EQ((*lease)->holder, "b");
  EXPECT_EQ((*lease)->acquired_ms, kT0 + 1500);
  EXPECT_FALSE(*store->AcquireLease("a", kT0 + 1600, 1000));

  // Releasing someone else's lease changes nothing; the holder's release frees it.
  EXPECT_TRUE(store->ReleaseLease("a").ok());
  EXPECT_EQ((*store->GetLease())->holder, "b");
  EXPECT_TRUE(store->ReleaseLease("b").ok());
  EXPECT_FALSE(store->GetLease()->has_value());
  EXPECT_TRUE(*store->AcquireLease("a", kT0 + 1600, 1000));

  EXPECT_EQ(store->AcquireLease("", kT0, 1000).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->AcquireLease("a", kT0, 0).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(StoreConformanceTest, LeaseIsExclusiveAcrossConnections) {
  auto one = Open();
  auto two = Open();
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  EXPECT_TRUE(*one->AcquireLease("daemon", kT0, 60000));
  EXPECT_FALSE(*two->AcquireLease("cron", kT0 + 1, 60000));
  EXPECT_EQ((*two->GetLease())->holder, "daemon");
}

TEST_P(StoreConformanceTest, CursorsSetGetAndList) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->GetCursor("hubspot", "tickets")->has_value());
  StateBatch batch;
  batch.SetCursor("hubspot", "tickets", "1000");
  batch.SetCursor("dynamics365", "accounts", "delta-token");
  ASSERT_TRUE(store->Apply(batch).ok());
  clock_.Advance(std::chrono::milliseconds(42));
  StateBatch advance;
  advance.SetCursor("hubspot", "tickets", "2000");
  ASSERT_TRUE(store->Apply(advance).ok());

  EXPECT_EQ(**store->GetCursor("hubspot", "tickets"), "2000");
  auto rows = store->ListCursors();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].system, "dynamics365");
  EXPECT_EQ((*rows)[0].cursor, "delta-token");
  EXPECT_EQ((*rows)[0].updated_ms, kT0);
  EXPECT_EQ((*rows)[1].object, "tickets");
  EXPECT_EQ((*rows)[1].updated_ms, kT0 + 42);
}

TEST_P(StoreConformanceTest, LinksAreFoundByNativeIdAndByCanonicalId) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.PutLink(MakeLink("c1", "hubspot", "101"));
  batch.PutLink(MakeLink("c1", "dynamics365", "guid-1"));
  batch.PutLink(MakeLink("c2", "hubspot", "202"));
  // Links still waiting for their create have no native id and must not collide.
  batch.PutLink(MakeLink("c3", "portal", ""));
  batch.PutLink(MakeLink("c4", "portal", ""));
  ASSERT_TRUE(store->Apply(batch).ok());

  auto by_native = store->FindLinkByNative("dynamics365", "company", "guid-1");
  ASSERT_TRUE(by_native.ok() && by_native->has_value());
  EXPECT_EQ((*by_native)->canonical_id, "c1");
  EXPECT_EQ((*by_native)->last_read_hash, "r-guid-1");
  EXPECT_FALSE(store->FindLinkByNative("hubspot", "contact", "101")->has_value());
  EXPECT_FALSE(store->FindLinkByNative("portal", "company", "")->has_value());

  auto by_canonical = store->FindLink("company", "c2", "hubspot");
  ASSERT_TRUE(by_canonical->has_value());
  EXPECT_EQ((*by_canonical)->native_id, "202");
  EXPECT_EQ((*store->FindLink("company", "c3", "portal"))->native_id, "");

  // PutLink replaces the link of (entity, canonical id, system).
  Link updated = MakeLink("c3", "portal", "p-3");
  updated.last_written_hash = "w-new";
  StateBatch update;
  update.PutLink(updated);
  ASSERT_TRUE(store->Apply(update).ok());
  auto link = store->FindLinkByNative("portal", "company", "p-3");
  ASSERT_TRUE(link->has_value());
  EXPECT_EQ((*link)->canonical_id, "c3");
  EXPECT_EQ((*link)->last_written_hash, "w-new");
}

// A system is settled when crmbridge knows what it holds: no value sent there in doubt, no
// unverified write there, the record not deleted. Its digest is that of the values it holds.
TEST_P(StoreConformanceTest, SnapshotDigestsNameTheSettledSystemsOnly) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Snapshot snap;
  snap.entity = "company";
  snap.canonical_id = "c1";
  snap.fields = {{"name", "Acme"}, {"city", "Lund"}};
  snap.seen = {{"hubspot", {{"name", "Acme"}, {"city", "Lund"}}},
               {"dynamics365", {{"name", "Acme"}}},
               {"totango", {{"name", "Old"}}},
               {"portal", json::object()}};
  snap.in_doubt = {{"dynamics365", {{"city", json::array({{{"value", "Lund"}, {"sent_ms", kT0}}})}}}};
  snap.unverified = {{"totango", {{"name", {{"sent", "Acme"}, {"before", "Old"}, {"attempts", 1}}}}}};
  const std::vector<std::pair<std::string, std::string>> natives = {
      {"hubspot", "101"}, {"dynamics365", "d-1"}, {"totango", "t-1"}, {"portal", "p-1"}};
  StateBatch batch;
  for (const auto& [system, native] : natives) batch.PutLink(MakeLink("c1", system, native));
  batch.PutSnapshot(snap);
  ASSERT_TRUE(store->Apply(batch).ok());

  // Each system's link carries its own digest only.
  auto digests_in = [&](const std::string& system) {
    std::string native;
    for (const auto& [s, n] : natives)
      if (s == system) native = n;
    auto loaded = store->LoadRecords("company", system, {native}, {});
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_EQ(loaded->digests.size(), 1u);
    return loaded->digests.at("c1");
  };
  SettledDigests d = digests_in("hubspot");
  EXPECT_TRUE(d.known);
  ASSERT_NE(d.Of("hubspot"), nullptr);
  EXPECT_EQ(*d.Of("hubspot"), ShortHash(HashJson(snap.seen["hubspot"])));
  EXPECT_EQ(d.by_system.size(), 1u);
  EXPECT_TRUE(digests_in("dynamics365").known);
  EXPECT_EQ(digests_in("dynamics365").Of("dynamics365"), nullptr);  // a value in doubt
  EXPECT_EQ(digests_in("totango").Of("totango"), nullptr);          // an unverified write
  EXPECT_EQ(digests_in("portal").Of("portal"), nullptr);            // holds nothing known

  // Settled once the doubt is: the digests follow every store of the snapshot.
  snap.in_doubt = json::object();
  StateBatch settle;
  settle.PutSnapshot(snap);
  ASSERT_TRUE(store->Apply(settle).ok());
  ASSERT_NE(digests_in("dynamics365").Of("dynamics365"), nullptr);
  EXPECT_EQ(*digests_in("dynamics365").Of("dynamics365"),
            ShortHash(HashJson(json{{"name", "Acme"}})));

  // A link stored again keeps its digest; a link added after the snapshot knows none until the
  // snapshot is stored again.
  StateBatch relink;
  Link moved = MakeLink("c1", "hubspot", "101");
  moved.last_read_hash = "r-moved";
  relink.PutLink(moved);
  relink.PutLink(MakeLink("c1", "zendesk", "z-1"));
  ASSERT_TRUE(store->Apply(relink).ok());
  EXPECT_NE(digests_in("hubspot").Of("hubspot"), nullptr);
  auto late = store->LoadRecords("company", "zendesk", {"z-1"}, {});
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(late->digests.at("c1").known);
  snap.seen["zendesk"] = {{"name", "Acme"}};
  StateBatch again;
  again.PutSnapshot(snap);
  ASSERT_TRUE(store->Apply(again).ok());
  late = store->LoadRecords("company", "zendesk", {"z-1"}, {});
  ASSERT_NE(late->digests.at("c1").Of("zendesk"), nullptr);

  // A deleted record is never settled: its copies coming back are merged.
  snap.deleted_ms = kT0;
  StateBatch del;
  del.PutSnapshot(snap);
  ASSERT_TRUE(store->Apply(del).ok());
  d = digests_in("hubspot");
  EXPECT_TRUE(d.known);
  EXPECT_TRUE(d.by_system.empty());
}

TEST_P(StoreConformanceTest, LoadRecordsReturnsLinksAndSnapshotsOfManyRecordsAtOnce) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.PutLink(MakeLink("c1", "hubspot", "101"));
  batch.PutLink(MakeLink("c1", "dynamics365", "guid-1"));
  batch.PutLink(MakeLink("c2", "hubspot", "202"));
  batch.PutLink(MakeLink("c3", "dynamics365", "guid-3"));
  batch.PutLink(MakeLink("c4", "portal", ""));
  Snapshot snap;
  snap.entity = "company";
  snap.canonical_id = "c1";
  snap.fields = {{"name", "Acme"}};
  snap.seen = {{"hubspot", {{"name", "Acme"}}}};
  snap.unverified = {{"totango", {{"name", {{"sent", "Acme"}, {"before", "Old"}, {"attempts", 1}}}}}};
  snap.changed_ms = {{"name", kT0}};
  snap.updated_ms = kT0 + 1;
  batch.PutSnapshot(snap);
  Snapshot other = snap;
  other.canonical_id = "c3";
  other.fields = {{"name", "Other"}};
  other.unverified = json::object();
  other.deleted_ms = kT0 + 2;
  batch.PutSnapshot(other);
  ASSERT_TRUE(store->Apply(batch).ok());

  // By native id (202 has a link but no snapshot; 999 has neither), plus c3 and an unknown c9 by
  // canonical id.
  auto loaded = store->LoadRecords("company", "hubspot", {"101", "202", "999", "101"}, {"c3", "c9"});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->by_native.size(), 2u);
  EXPECT_EQ(loaded->by_native.at("101").canonical_id, "c1");
  EXPECT_EQ(loaded->by_native.at("101").last_read_hash, "r-101");
  EXPECT_EQ(loaded->by_native.at("202").canonical_id, "c2");
  EXPECT_EQ(loaded->by_native.count("999"), 0u);

  // A canonical id asked for by id comes with its snapshot, whole; one found by native id with
  // the digest its link carries (c2's snapshot was never stored: not known), its snapshot read
  // on demand.
  ASSERT_EQ(loaded->snapshots.size(), 1u);
  EXPECT_EQ(loaded->snapshots.at("c3").fields, other.fields);
  EXPECT_EQ(loaded->snapshots.at("c3").deleted_ms, kT0 + 2);
  EXPECT_EQ(loaded->snapshots.at("c3").unverified, json::object());
  ASSERT_EQ(loaded->digests.size(), 2u);
  EXPECT_FALSE(loaded->digests.at("c2").known);
  const SettledDigests& d1 = loaded->digests.at("c1");
  EXPECT_TRUE(d1.known);
  ASSERT_NE(d1.Of("hubspot"), nullptr);
  EXPECT_EQ(*d1.Of("hubspot"), ShortHash(HashJson(json{{"name", "Acme"}})));
  EXPECT_EQ(d1.Of("totango"), nullptr);
  auto c1 = store->GetSnapshot("company", "c1");
  ASSERT_TRUE(c1.ok() && c1->has_value());
  EXPECT_EQ((*c1)->fields, snap.fields);
  EXPECT_EQ((*c1)->seen, snap.seen);
  EXPECT_EQ((*c1)->unverified, snap.unverified);
  EXPECT_EQ((*c1)->changed_ms, snap.changed_ms);
  EXPECT_EQ((*c1)->updated_ms, kT0 + 1);

  // Every canonical id asked for by id has its links in every system (none: an empty entry);
  // one found by native id, its link in the asked system (by_native), the others on demand.
  ASSERT_EQ(loaded->links.size(), 2u);
  EXPECT_EQ(loaded->links.count("c1"), 0u);
  EXPECT_EQ((*store->FindLink("company", "c1", "dynamics365"))->native_id, "guid-1");
  ASSERT_EQ(loaded->links.at("c3").size(), 1u);
  EXPECT_EQ(loaded->links.at("c3")[0].last_written_hash, "w-guid-3");
  EXPECT_TRUE(loaded->links.at("c9").empty());
  EXPECT_EQ(loaded->links.count("c4"), 0u);

  // Another entity or system finds nothing; nothing asked, nothing read.
  EXPECT_TRUE(store->LoadRecords("contact", "hubspot", {"101"}, {})->by_native.empty());
  EXPECT_TRUE(store->LoadRecords("company", "dynamics365", {"101"}, {})->by_native.empty());
  EXPECT_TRUE(store->LoadRecords("company", "hubspot", {}, {})->links.empty());

  // The store stays usable for writes afterwards (the read transaction ended).
  StateBatch after;
  after.PutLink(MakeLink("c5", "hubspot", "505"));
  EXPECT_TRUE(store->Apply(after).ok());
  EXPECT_TRUE(store->FindLinkByNative("hubspot", "company", "505")->has_value());
}

TEST_P(StoreConformanceTest, StageHistoryIsInOrder) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.AddStageTransition(
      StageTransition{"onboarding", "o1", "totango", "Kick Off", "Integration", kT0 + 200});
  batch.AddStageTransition(StageTransition{"onboarding", "o1", "hubspot", "", "Kick Off", kT0});
  batch.AddStageTransition(StageTransition{"onboarding", "o2", "hubspot", "", "Live", kT0 + 100});
  batch.AddStageTransition(
      StageTransition{"onboarding", "o1", "totango", "Integration", "Live", kT0 + 200});
  ASSERT_TRUE(store->Apply(batch).ok());
  auto history = store->StageHistory("onboarding", "o1");
  ASSERT_TRUE(history.ok());
  std::vector<std::string> stages;
  for (const StageTransition& t : *history) stages.push_back(t.from_stage + ">" + t.to_stage);
  EXPECT_THAT(stages, ElementsAre(">Kick Off", "Kick Off>Integration", "Integration>Live"));
  EXPECT_EQ((*history)[0].system, "hubspot");
  EXPECT_EQ((*history)[0].at_ms, kT0);
}

TEST_P(StoreConformanceTest, ImportedStageMovesAreKnownAsImported) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.AddStageTransition(StageTransition{"onboarding", "o1", "hubspot", "", "new", kT0, true});
  batch.AddStageTransition(
      StageTransition{"onboarding", "o1", "hubspot", "new", "onboarding", kT0 + 100, true});
  batch.AddStageTransition(
      StageTransition{"onboarding", "o1", "hubspot", "onboarding", "closed", kT0 + 200});
  ASSERT_TRUE(store->Apply(batch).ok());
  for (const auto& history : {store->StageHistory("onboarding", "o1"),
                              store->AllStageHistory("onboarding")}) {
    ASSERT_TRUE(history.ok());
    ASSERT_EQ(history->size(), 3u);
    EXPECT_TRUE((*history)[0].imported);
    EXPECT_TRUE((*history)[1].imported);
    EXPECT_FALSE((*history)[2].imported);
  }
}

TEST_P(StoreConformanceTest, AllStageHistoryGroupsByRecordInTimeOrder) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  // Recorded out of order, across records, systems and entities.
  batch.AddStageTransition(StageTransition{"onboarding", "o2", "totango", "new", "onboarding", kT0 + 300});
  batch.AddStageTransition(StageTransition{"onboarding", "o1", "hubspot", "onboarding", "closed", kT0 + 500});
  batch.AddStageTransition(StageTransition{"onboarding", "o2", "hubspot", "", "new", kT0 + 100});
  batch.AddStageTransition(StageTransition{"company", "c1", "hubspot", "", "lead", kT0});
  batch.AddStageTransition(StageTransition{"onboarding", "o1", "hubspot", "", "new", kT0 + 200});
  // Same time: the order they were recorded in decides.
  batch.AddStageTransition(StageTransition{"onboarding", "o1", "dynamics365", "new", "onboarding", kT0 + 200});
  ASSERT_TRUE(store->Apply(batch).ok());

  auto all = store->AllStageHistory("onboarding");
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  std::vector<std::string> rows;
  for (const StageTransition& t : *all)
    rows.push_back(t.canonical_id + ":" + t.system + ":" + t.from_stage + ">" + t.to_stage);
  EXPECT_THAT(rows, ElementsAre("o1:hubspot:>new", "o1:dynamics365:new>onboarding",
                                "o1:hubspot:onboarding>closed", "o2:hubspot:>new",
                                "o2:totango:new>onboarding"));
  EXPECT_EQ((*all)[2].at_ms, kT0 + 500);
  EXPECT_EQ((*all)[0].entity, "onboarding");
  // The per-record query agrees with the one-pass query.
  auto o2 = store->StageHistory("onboarding", "o2");
  ASSERT_TRUE(o2.ok());
  ASSERT_EQ(o2->size(), 2u);
  EXPECT_EQ((*o2)[1].to_stage, "onboarding");
  EXPECT_TRUE(store->AllStageHistory("task")->empty());
}

TEST_P(StoreConformanceTest, ListSnapshotsReturnsEveryRecordOfTheEntity) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  for (const char* id : {"o3", "o1", "o2"}) {
    Snapshot snap;
    snap.entity = "onboarding";
    snap.canonical_id = id;
    snap.fields = {{"title", std::string("Customer ") + id}, {"stage", "new"}};
    snap.changed_ms = {{"stage", kT0 + 1}};
    snap.updated_ms = kT0 + 2;
    if (std::string(id) == "o2") snap.deleted_ms = kT0 + 3;
    batch.PutSnapshot(snap);
  }
  Snapshot other;
  other.entity = "company";
  other.canonical_id = "c1";
  other.fields = {{"name", "Not an onboarding"}};
  batch.PutSnapshot(other);
  ASSERT_TRUE(store->Apply(batch).ok());

  auto snaps = store->ListSnapshots("onboarding");
  ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
  std::vector<std::string> ids;
  for (const Snapshot& s : *snaps) ids.push_back(s.canonical_id + "=" + s.fields["title"].get<std::string>());
  EXPECT_THAT(ids, ElementsAre("o1=Customer o1", "o2=Customer o2", "o3=Customer o3"));
  EXPECT_EQ((*snaps)[0].changed_ms["stage"], kT0 + 1);
  EXPECT_EQ((*snaps)[0].updated_ms, kT0 + 2);
  EXPECT_EQ((*snaps)[1].deleted_ms, kT0 + 3);
  EXPECT_EQ((*snaps)[0].deleted_ms, 0);
  EXPECT_TRUE(store->ListSnapshots("task")->empty());

  // A page at a time, in canonical-id order, each page after the last id of the one before.
  std::vector<std::string> paged;
  std::string after;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = store->ListSnapshotsAfter("onboarding", after, 2);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    if (page->empty()) break;
    EXPECT_LE(page->size(), 2u);
    for (const Snapshot& s : *page) paged.push_back(s.canonical_id);
    after = page->back().canonical_id;
  }
  EXPECT_THAT(paged, ElementsAre("o1", "o2", "o3"));
}

TEST_P(StoreConformanceTest, RunHistoryNewestFirst) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto first = store->BeginRun("backfill", kT0);
  auto second = store->BeginRun("sync", kT0 + 1000);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(*first, *second);

  RunRecord done;
  done.id = *first;
  done.mode = "backfill";
  done.started_ms = kT0;
  done.finished_ms = kT0 + 900;
  done.outcome = "dead-lettered";
  done.counts = {{"writes", 12}, {"dead_lettered", 1}};
  done.error = "";
  ASSERT_TRUE(store->FinishRun(done).ok());

  auto runs = store->RecentRuns(10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].id, *second);
  EXPECT_EQ((*runs)[0].mode, "sync");
  EXPECT_EQ((*runs)[0].outcome, "running");
  EXPECT_EQ((*runs)[0].finished_ms, 0);
  EXPECT_EQ((*runs)[1].id, *first);
  EXPECT_EQ((*runs)[1].outcome, "dead-lettered");
  EXPECT_EQ((*runs)[1].finished_ms, kT0 + 900);
  EXPECT_EQ((*runs)[1].counts, done.counts);
  EXPECT_EQ(store->RecentRuns(1)->size(), 1u);

  RunRecord unknown;
  unknown.id = 999;
  EXPECT_EQ(store->FinishRun(unknown).code(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, InvalidUtf8IsAnErrorNotAnException) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.SetCursor("hubspot", "companies", "kept-out");
  OutboxItem item = Item("portal", "c1", {{"name", "ok"}});
  item.payload["name"] = std::string("bad \xff byte");
  batch.Enqueue(item);
  Status s = store->Apply(batch);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(store->GetCursor("hubspot", "companies")->has_value());
}

TEST_P(StoreConformanceTest, ConcurrentAppliesFromThreadsAllLand) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 25; ++i) {
        StateBatch batch;
        batch.Enqueue(Item("hubspot", std::to_string(t) + "-" + std::to_string(i), {{"i", i}}));
        EXPECT_TRUE(store->Apply(batch).ok());
        EXPECT_TRUE(store->OutboxCounts().ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(*store->OutboxCounts(), (json{{"hubspot", 100}}));
}

// ---- contracts of state/store.h that the tests above leave out ----

TEST_P(StoreConformanceTest, ApplyRefusesAnIncompleteOpAndAppliesNothing) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Apply(StateBatch()).ok()) << "an empty batch is a no-op";

  Link no_system = MakeLink("c2", "", "202");
  OutboxItem no_object = Item("portal", "c1", {{"name", "Acme"}});
  no_object.object = "";
  for (int which = 0; which < 3; ++which) {
    StateBatch batch;
    batch.PutLink(MakeLink("c1", "hubspot", "101"));
    batch.SetCursor("hubspot", "companies", "advanced");
    if (which == 0) batch.PutLink(no_system);
    if (which == 1) batch.SetCursor("hubspot", "", "x");
    if (which == 2) batch.Enqueue(no_object);
    Status s = store->Apply(batch);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << which << ": " << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("op 3 of 3"));
    EXPECT_FALSE(store->FindLink("company", "c1", "hubspot")->has_value()) << which;
    EXPECT_FALSE(store->GetCursor("hubspot", "companies")->has_value()) << which;
    EXPECT_EQ(*store->OutboxCounts(), json::object()) << which;
  }
}

TEST_P(StoreConformanceTest, SnapshotsComeBackWholeAndPutReplacesEveryField) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->GetSnapshot("company", "c1")->has_value());

  Snapshot snap;
  snap.entity = "company";
  snap.canonical_id = "c1";
  snap.fields = {{"name", "Acme"}, {"tier", "A"}};
  snap.seen = {{"hubspot", {{"name", "Acme"}}}};
  snap.unverified = {
      {"totango", {{"name", {{"sent", "Acme"}, {"before", "Old"}, {"attempts", 1}}}}}};
  snap.in_doubt = {{"dynamics365", {{"name", json::array({{{"value", "Ac"}, {"sent_ms", kT0}}})}}}};
  snap.changed_ms = {{"name", kT0 - 5}};
  snap.deleted_ms = kT0 + 7;
  snap.updated_ms = kT0 + 9;
  StateBatch batch;
  batch.PutSnapshot(snap);
  ASSERT_TRUE(store->Apply(batch).ok());

  auto got = store->GetSnapshot("company", "c1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->entity, "company");
  EXPECT_EQ((*got)->canonical_id, "c1");
  EXPECT_EQ((*got)->fields, snap.fields);
  EXPECT_EQ((*got)->seen, snap.seen);
  EXPECT_EQ((*got)->unverified, snap.unverified);
  EXPECT_EQ((*got)->in_doubt, snap.in_doubt);
  EXPECT_EQ((*got)->changed_ms, snap.changed_ms);
  EXPECT_EQ((*got)->deleted_ms, kT0 + 7);
  EXPECT_EQ((*got)->updated_ms, kT0 + 9);
  EXPECT_FALSE(store->GetSnapshot("contact", "c1")->has_value()) << "snapshots are per entity";

  // A later put replaces every field, emptied ones included.
  Snapshot next;
  next.entity = "company";
  next.canonical_id = "c1";
  next.fields = {{"name", "Acme AB"}};
  next.updated_ms = kT0 + 10;
  StateBatch replace;
  replace.PutSnapshot(next);
  ASSERT_TRUE(store->Apply(replace).ok());
  got = store->GetSnapshot("company", "c1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->fields, next.fields);
  EXPECT_EQ((*got)->seen, json::object());
  EXPECT_EQ((*got)->unverified, json::object());
  EXPECT_EQ((*got)->in_doubt, json::object());
  EXPECT_EQ((*got)->changed_ms, json::object());
  EXPECT_EQ((*got)->deleted_ms, 0);
  EXPECT_EQ((*got)->updated_ms, kT0 + 10);
}

TEST_P(StoreConformanceTest, ListUnverifiedFindsOnlyTheSnapshotsAwaitingThatSystem) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const json awaiting = {{"stage", {{"sent", "live"}, {"before", "kickoff"}, {"attempts", 1}}}};
  StateBatch batch;
  auto put = [&](const std::string& entity, const std::string& id, json unverified) {
    Snapshot snap;
    snap.entity = entity;
    snap.canonical_id = id;
    snap.fields = {{"stage", "live"}};
    snap.unverified = std::move(unverified);
    batch.PutSnapshot(snap);
  };
  put("onboarding", "o3", {{"totango", awaiting}});
  put("onboarding", "o1", {{"totango", awaiting}, {"portal", awaiting}});
  put("onboarding", "o2", {{"portal", awaiting}});
  put("onboarding", "o4", json::object());
  put("company", "c1", {{"totango", awaiting}});
  ASSERT_TRUE(store->Apply(batch).ok());

  auto ids = [&](const std::string& system, const std::string& entity) {
    std::vector<std::string> out;
    auto listed = store->ListUnverified(system, entity);
    EXPECT_TRUE(listed.ok()) << listed.status().ToString();
    if (listed.ok())
      for (const Snapshot& s : *listed) out.push_back(s.canonical_id);
    return out;
  };
  EXPECT_THAT(ids("totango", "onboarding"), ElementsAre("o1", "o3"));
  EXPECT_THAT(ids("portal", "onboarding"), ElementsAre("o1", "o2"));
  EXPECT_THAT(ids("totango", "company"), ElementsAre("c1"));
  EXPECT_TRUE(ids("hubspot", "onboarding").empty());
  auto o1 = store->ListUnverified("totango", "onboarding");
  ASSERT_TRUE(o1.ok() && !o1->empty());
  EXPECT_EQ((*o1)[0].unverified["portal"], awaiting) << "whole: the other systems' entries too";
}

TEST_P(StoreConformanceTest, PendingOutboxFindsTheQueuedWriteDueOrNot) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->PendingOutbox("hubspot", "company", "c1")->has_value());
  StateBatch batch;
  OutboxItem item = Item("hubspot", "c1", {{"name", "Acme"}});
  item.native_id = "101";
  batch.Enqueue(item);
  batch.Enqueue(Item("portal", "c1", {{"name", "Other"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  const int64_t id = DueIds(store.get(), "hubspot", kT0).at(0);
  StateBatch later;
  later.RetryOutbox(id, "UNAVAILABLE", kT0 + 60000);
  ASSERT_TRUE(store->Apply(later).ok());

  auto pending = store->PendingOutbox("hubspot", "company", "c1");
  ASSERT_TRUE(pending.ok() && pending->has_value()) << "not due, still pending";
  EXPECT_EQ((*pending)->id, id);
  EXPECT_EQ((*pending)->payload, (json{{"name", "Acme"}}));
  EXPECT_EQ((*pending)->payload_hash, item.payload_hash);
  EXPECT_EQ((*pending)->native_id, "101");
  EXPECT_EQ((*pending)->attempts, 1);
  EXPECT_EQ((*pending)->next_attempt_ms, kT0 + 60000);
  EXPECT_EQ((*pending)->last_error, "UNAVAILABLE");
  EXPECT_FALSE(store->PendingOutbox("hubspot", "contact", "c1")->has_value());
  EXPECT_FALSE(store->PendingOutbox("hubspot", "company", "c2")->has_value());

  StateBatch done;
  done.CompleteOutbox(id);
  ASSERT_TRUE(store->Apply(done).ok());
  EXPECT_FALSE(store->PendingOutbox("hubspot", "company", "c1")->has_value());
  EXPECT_TRUE(store->PendingOutbox("portal", "company", "c1")->has_value());
}

TEST_P(StoreConformanceTest, EnqueuedItemsAreDueFromTheirNextAttemptAndKeepTheirPlace) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  OutboxItem first = Item("hubspot", "c1", {{"v", 1}});
  first.created_ms = kT0 + 30;
  first.next_attempt_ms = kT0 + 1000;
  OutboxItem second = Item("hubspot", "c2", {{"v", 1}});
  second.created_ms = kT0 + 10;  // callers' times play no part in the order
  StateBatch batch;
  batch.Enqueue(first);
  batch.Enqueue(second);
  ASSERT_TRUE(store->Apply(batch).ok());
  auto due = store->DueOutbox(OutboxFilter("hubspot", kT0 + 999, 0));
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].canonical_id, "c2");
  due = store->DueOutbox(OutboxFilter("hubspot", kT0 + 1000, 0));
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].canonical_id, "c1");
  EXPECT_EQ((*due)[0].created_ms, kT0 + 30);
  const int64_t c1_id = (*due)[0].id;
  const int64_t c2_id = (*due)[1].id;

  // Coalesced: the first item's id and created_ms stay, its due time is the newer write's.
  OutboxItem newer = Item("hubspot", "c1", {{"v", 2}});
  newer.created_ms = kT0 + 50;
  StateBatch coalesce;
  coalesce.Enqueue(newer);
  ASSERT_TRUE(store->Apply(coalesce).ok());
  due = store->DueOutbox(OutboxFilter("hubspot", kT0, 0));
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].id, c1_id);
  EXPECT_EQ((*due)[0].created_ms, kT0 + 30);
  EXPECT_EQ((*due)[0].payload, (json{{"v", 2}}));

  // Queued anew once delivered, a record's write goes last, under a new id.
  StateBatch done;
  done.CompleteOutbox(c1_id);
  ASSERT_TRUE(store->Apply(done).ok());
  StateBatch again;
  again.Enqueue(Item("hubspot", "c1", {{"v", 3}}));
  ASSERT_TRUE(store->Apply(again).ok());
  const std::vector<int64_t> ids = DueIds(store.get(), "hubspot", kT0);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], c2_id);
  EXPECT_NE(ids[1], c1_id);
  EXPECT_EQ(store->PendingOutbox("hubspot", "company", "c1")->value().id, ids[1]);
}

TEST_P(StoreConformanceTest, ARetryThatCountsNoAttemptOnlyWaits) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("hubspot", "c1", {{"name", "Acme"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  const int64_t id = DueIds(store.get(), "hubspot", kT0).at(0);

  StateBatch wait;
  wait.RetryOutbox(id, "waiting for company c0", kT0 + 2000, /*count_attempt=*/false);
  ASSERT_TRUE(store->Apply(wait).ok());
  EXPECT_TRUE(DueIds(store.get(), "hubspot", kT0 + 1999).empty());
  auto due = store->DueOutbox(OutboxFilter("hubspot", kT0 + 2000, 0));
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].attempts, 0);
  EXPECT_EQ((*due)[0].last_error, "waiting for company c0");
  EXPECT_EQ((*due)[0].next_attempt_ms, kT0 + 2000);

  StateBatch missing;
  missing.RetryOutbox(id + 1000, "x", kT0, /*count_attempt=*/false);
  EXPECT_EQ(store->Apply(missing).code(), StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, DeadLettersAreListedOldestFirstAndStamped) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("hubspot", "c1", {{"name", "first"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  StateBatch dead;
  dead.DeadLetterOutbox(DueIds(store.get(), "hubspot", kT0).at(0), "INVALID_ARGUMENT: 400", 400);
  ASSERT_TRUE(store->Apply(dead).ok());

  clock_.Advance(std::chrono::milliseconds(250));
  OutboxItem unapplied = Item("totango", "c2", {{"name", "second"}});
  unapplied.attempts = 3;
  unapplied.last_error = "before";
  StateBatch direct;
  direct.AddDeadLetter(unapplied, "acknowledged but not applied");
  ASSERT_TRUE(store->Apply(direct).ok());

  auto letters = store->ListDeadLetters(0);
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->size(), 2u);
  EXPECT_LT((*letters)[0].id, (*letters)[1].id);
  EXPECT_EQ((*letters)[0].item.payload, (json{{"name", "first"}}));
  EXPECT_EQ((*letters)[0].http_status, 400);
  EXPECT_EQ((*letters)[0].failed_ms, kT0);
  const DeadLetter& second = (*letters)[1];
  EXPECT_EQ(second.reason, "acknowledged but not applied");
  EXPECT_EQ(second.http_status, 0);
  EXPECT_EQ(second.failed_ms, kT0 + 250);
  EXPECT_EQ(second.item.system, "totango");
  EXPECT_EQ(second.item.attempts, 3);
  EXPECT_EQ(second.item.last_error, "acknowledged but not applied");

  auto one = store->ListDeadLetters(1);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].id, (*letters)[0].id);
}

// A write the system acknowledged but did not apply (given up on read-back) is dead-lettered
// without an outbox item: replayed, it is sent again, whatever was delivered for the record
// before it; a write queued after it replaces it.
TEST_P(StoreConformanceTest, AWriteGivenUpOnReadBackIsSentAgainWhenReplayed) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("totango", "c1", {{"name", "v1"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  StateBatch delivered;
  delivered.CompleteOutbox(DueIds(store.get(), "totango", kT0).at(0));
  ASSERT_TRUE(store->Apply(delivered).ok());
  StateBatch given_up;
  given_up.AddDeadLetter(Item("totango", "c1", {{"name", "v2"}}), "acknowledged but not applied");
  ASSERT_TRUE(store->Apply(given_up).ok());

  ASSERT_TRUE(store->ReplayDeadLetter(store->ListDeadLetters(1)->at(0).id, kT0).ok());
  auto due = store->DueOutbox(OutboxFilter("totango", kT0 + 1, 10));
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u) << "v1's delivery came before the write that was given up";
  EXPECT_EQ((*due)[0].payload, (json{{"name", "v2"}}));

  // Given up again, then a newer write queued: the replay leaves the newer one alone.
  StateBatch again;
  again.CompleteOutbox((*due)[0].id);
  again.AddDeadLetter(Item("totango", "c1", {{"name", "v2"}}), "acknowledged but not applied");
  ASSERT_TRUE(store->Apply(again).ok());
  StateBatch newer;
  newer.Enqueue(Item("totango", "c1", {{"name", "v3"}}));
  ASSERT_TRUE(store->Apply(newer).ok());
  ASSERT_TRUE(store->ReplayDeadLetter(store->ListDeadLetters(1)->at(0).id, kT0).ok());
  due = store->DueOutbox(OutboxFilter("totango", kT0 + 1, 10));
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].payload, (json{{"name", "v3"}}));
}

TEST_P(StoreConformanceTest, ReplayDropsAPayloadOlderThanOneAlreadyDelivered) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("hubspot", "c1", {{"name", "v1"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  StateBatch dead;
  dead.DeadLetterOutbox(DueIds(store.get(), "hubspot", kT0).at(0), "INVALID_ARGUMENT", 400);
  ASSERT_TRUE(store->Apply(dead).ok());
  StateBatch newer;
  newer.Enqueue(Item("hubspot", "c1", {{"name", "v2"}}));
  ASSERT_TRUE(store->Apply(newer).ok());
  StateBatch delivered;
  delivered.CompleteOutbox(DueIds(store.get(), "hubspot", kT0).at(0));
  ASSERT_TRUE(store->Apply(delivered).ok());

  ASSERT_TRUE(store->ReplayDeadLetter(store->ListDeadLetters(1)->at(0).id, kT0).ok());
  EXPECT_TRUE(store->ListDeadLetters(0)->empty());
  EXPECT_EQ(*store->OutboxCounts(), json::object()) << "v1 would overwrite the delivered v2";
}

// Sequence numbers follow the order of a batch's ops: a dead letter added between two writes of
// its record in one batch is older than the second, so replaying it never sends its payload over
// the newer write (delivered here).
TEST_P(StoreConformanceTest, ADeadLetterIsOlderThanAWriteQueuedAfterItInTheSameBatch) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("hubspot", "c2", {{"name", "other"}}));
  batch.Enqueue(Item("hubspot", "c1", {{"name", "v1"}}));
  batch.AddDeadLetter(Item("hubspot", "c1", {{"name", "v0"}}), "rejected on read-back");
  batch.Enqueue(Item("hubspot", "c1", {{"name", "v2"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  auto due = store->DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 2u);
  StateBatch delivered;
  for (const OutboxItem& item : *due) delivered.CompleteOutbox(item.id);
  ASSERT_TRUE(store->Apply(delivered).ok());
  ASSERT_TRUE(store->ReplayDeadLetter(store->ListDeadLetters(1)->at(0).id, kT0).ok());
  EXPECT_TRUE(store->ListDeadLetters(0)->empty());
  EXPECT_EQ(*store->OutboxCounts(), json::object()) << "v0 would overwrite the delivered v2";
}

TEST_P(StoreConformanceTest, AMatchKeyBelongsToTheFirstRecordToHoldIt) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->FindByMatchKey("company", "acme|se")->has_value());
  StateBatch batch;
  batch.PutMatchKey("company", "acme|se", "c1");
  batch.PutMatchKey("company", "acme|se", "c2");  // a later record with the same values
  batch.PutMatchKey("contact", "acme|se", "k1");
  ASSERT_TRUE(store->Apply(batch).ok());
  StateBatch later;
  later.PutMatchKey("company", "acme|se", "c3");
  later.PutMatchKey("company", "beta|no", "c3");
  ASSERT_TRUE(store->Apply(later).ok());

  EXPECT_EQ(**store->FindByMatchKey("company", "acme|se"), "c1");
  EXPECT_EQ(**store->FindByMatchKey("company", "beta|no"), "c3");
  EXPECT_EQ(**store->FindByMatchKey("contact", "acme|se"), "k1");
  EXPECT_FALSE(store->FindByMatchKey("onboarding", "acme|se")->has_value());
  EXPECT_FALSE(store->FindByMatchKey("company", "acme")->has_value());
}

TEST_P(StoreConformanceTest, TheAuditTrailIsReadFromATimeOnInOrder) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->ListAudit(0, 0)->empty());
  auto entry = [](int64_t at_ms, const std::string& action, const std::string& subject) {
    AuditEntry e;
    e.at_ms = at_ms;
    e.action = action;
    e.system = "portal";
    e.subject = subject;
    e.detail = {{"user", "u-" + subject}, {"property", "p1"}};
    return e;
  };
  StateBatch batch;
  batch.AddAudit(entry(kT0 + 200, "revoke", "k2"));
  batch.AddAudit(entry(kT0 + 100, "grant", "k1"));
  batch.AddAudit(entry(kT0 + 100, "reset", "k1"));  // same time: the order recorded
  batch.AddAudit(entry(kT0 + 300, "change", "k3"));
  ASSERT_TRUE(store->Apply(batch).ok());

  auto rows = [&](int64_t since_ms, int limit) {
    std::vector<std::string> out;
    auto listed = store->ListAudit(since_ms, limit);
    EXPECT_TRUE(listed.ok()) << listed.status().ToString();
    if (listed.ok())
      for (const AuditEntry& e : *listed) out.push_back(e.action + ":" + e.subject);
    return out;
  };
  EXPECT_THAT(rows(0, 0), ElementsAre("grant:k1", "reset:k1", "revoke:k2", "change:k3"));
  EXPECT_THAT(rows(kT0 + 200, 0), ElementsAre("revoke:k2", "change:k3"));
  EXPECT_THAT(rows(kT0 + 101, 0), ElementsAre("revoke:k2", "change:k3"));
  EXPECT_THAT(rows(0, 3), ElementsAre("grant:k1", "reset:k1", "revoke:k2"));
  EXPECT_TRUE(rows(kT0 + 301, 0).empty());

  auto all = store->ListAudit(0, 0);
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].at_ms, kT0 + 100);
  EXPECT_EQ((*all)[0].system, "portal");
  EXPECT_EQ((*all)[0].detail, (json{{"user", "u-k1"}, {"property", "p1"}}));
  EXPECT_NE((*all)[0].id, (*all)[1].id);
}

TEST_P(StoreConformanceTest, FinishingARunKeepsHowItBegan) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<int64_t> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(*store->BeginRun("sync", kT0 + i));
  EXPECT_LT(ids[0], ids[1]);
  EXPECT_LT(ids[1], ids[2]);

  RunRecord finished;
  finished.id = ids[1];
  finished.mode = "backfill";  // ignored: the mode is the one begun
  finished.started_ms = 1;     // ignored too
  finished.finished_ms = kT0 + 50;
  finished.outcome = "failed";
  finished.error = "UNAVAILABLE: hubspot";
  ASSERT_TRUE(store->FinishRun(finished).ok());

  auto runs = store->RecentRuns(0);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].id, ids[2]);
  EXPECT_EQ((*runs)[0].counts, json::object());
  EXPECT_EQ((*runs)[0].error, "");
  const RunRecord& run = (*runs)[1];
  EXPECT_EQ(run.id, ids[1]);
  EXPECT_EQ(run.mode, "sync");
  EXPECT_EQ(run.started_ms, kT0 + 1);
  EXPECT_EQ(run.finished_ms, kT0 + 50);
  EXPECT_EQ(run.outcome, "failed");
  EXPECT_EQ(run.error, "UNAVAILABLE: hubspot");
  EXPECT_EQ((*runs)[2].id, ids[0]);
}

TEST_P(StoreConformanceTest, GetLeaseShowsTheLeaseAsLastTakenUntilReleased) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(*store->AcquireLease("a", kT0, 1000));
  // GetLease takes no time: whether the lease has expired is the caller's comparison.
  auto lease = store->GetLease();
  ASSERT_TRUE(lease.ok() && lease->has_value());
  EXPECT_EQ((*lease)->holder, "a");
  EXPECT_EQ((*lease)->acquired_ms, kT0);
  EXPECT_EQ((*lease)->expires_ms, kT0 + 1000);
  EXPECT_TRUE(store->ReleaseLease("nobody").ok());
  EXPECT_TRUE(store->GetLease()->has_value());
  // Renewed by its holder once expired, the lease starts anew (a live renewal keeps acquired_ms).
  ASSERT_TRUE(*store->AcquireLease("a", kT0 + 5000, 1000));
  lease = store->GetLease();
  EXPECT_EQ((*lease)->acquired_ms, kT0 + 5000);
  EXPECT_EQ((*lease)->expires_ms, kT0 + 6000);
  EXPECT_TRUE(store->ReleaseLease("a").ok());
  EXPECT_FALSE(store->GetLease()->has_value());
}

WebhookEvent Announced(const std::string& record_id, const std::string& dedupe_key) {
  WebhookEvent e;
  e.system = "crm";
  e.object = "tickets";
  e.record_id = record_id;
  e.kind = "propertyChange";
  e.dedupe_key = dedupe_key;
  e.occurred_ms = kT0 - 10;
  e.received_ms = kT0;
  return e;
}

TEST_P(StoreConformanceTest, AWebhookEventDeliveredTwiceIsStoredOnce) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto added = store->AddWebhookEvents({Announced("7", "e1"), Announced("8", "e2")});
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(*added, 2);
  // The same delivery again, and one new event beside it.
  added = store->AddWebhookEvents({Announced("7", "e1"), Announced("9", "e3")});
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(*added, 1);
  auto pending = store->PendingWebhookEvents(0);
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  ASSERT_EQ(pending->size(), 3u);
  EXPECT_EQ((*pending)[0].record_id, "7");
  EXPECT_EQ((*pending)[0].kind, "propertyChange");
  EXPECT_EQ((*pending)[0].occurred_ms, kT0 - 10);
  EXPECT_EQ((*pending)[2].record_id, "9");
  EXPECT_LT((*pending)[0].id, (*pending)[1].id);
  EXPECT_EQ(store->PendingWebhookEvents(2)->size(), 2u);
  // An event that lacks what identifies it is refused, and nothing of its batch is stored.
  WebhookEvent blank = Announced("", "e4");
  auto refused = store->AddWebhookEvents({Announced("10", "e5"), blank});
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->PendingWebhookEvents(0)->size(), 3u);
}

TEST_P(StoreConformanceTest, ProcessedWebhookEventsStillDeduplicateUntilForgotten) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->AddWebhookEvents({Announced("7", "e1"), Announced("8", "e2")}).ok());
  auto pending = store->PendingWebhookEvents(0);
  ASSERT_TRUE(pending.ok() && pending->size() == 2u);
  // Events up to the first are done: the second stays pending.
  ASSERT_TRUE(store->FinishWebhookEvents((*pending)[0].id, kT0 + 100, 60000).ok());
  pending = store->PendingWebhookEvents(0);
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].record_id, "8");
  // A late repeat of the processed event is still known.
  EXPECT_EQ(*store->AddWebhookEvents({Announced("7", "e1")}), 0);
  // Once it is older than what is kept, it is forgotten: the same key is news again.
  ASSERT_TRUE(store->FinishWebhookEvents(0, kT0 + 100 + 60001, 60000).ok());
  EXPECT_EQ(*store->AddWebhookEvents({Announced("7", "e1")}), 1);
  EXPECT_EQ(store->PendingWebhookEvents(0)->size(), 2u);
}

TEST_P(StoreConformanceTest, EveryConnectionSeesTheSameSchemaVersion) {
  auto one = Open();
  ASSERT_NE(one, nullptr);
  auto version = one->SchemaVersion();
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_GE(*version, 1);
  auto two = Open();
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(*two->SchemaVersion(), *version);
}

// ---- backends ----

// SQLite: a file in a temporary directory of its own, removed with it.
class SqliteUnderTest : public StoreUnderTest {
 public:
  explicit SqliteUnderTest(Clock* clock) : clock_(clock) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "crmb-conf-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) dir_ = tmpl;
  }
  ~SqliteUnderTest() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  static std::unique_ptr<StoreUnderTest> Make(Clock* clock) {
    auto target = std::make_unique<SqliteUnderTest>(clock);
    if (target->dir_.empty()) return nullptr;
    return target;
  }

  Result<std::unique_ptr<Store>> Connect() override {
    SqliteStoreOptions options;
    options.clock = clock_;
    return OpenSqliteStore(dir_ + "/state.db", options);
  }

 private:
  Clock* const clock_;
  std::string dir_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
                         ::testing::Values(StoreBackend{"sqlite", &SqliteUnderTest::Make}));

}  // namespace
}  // namespace store_test
}  // namespace crmbridge
