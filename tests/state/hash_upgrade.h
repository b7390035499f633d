// For the upgrade tests of 128-bit content hashes (SQLite schema 17, PostgreSQL schema 4): records
// whose hashes a backend's upgrade must cut to what HashJson gives now, and the check that it did.
#pragma once

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "src/core/hash.h"
#include "state/store.h"
#include "tests/state/store_test_data.h"

namespace crmbridge {
namespace store_test {

// The dead-lettered write's name: with a NUL, which JSON holds as \u0000 (and PostgreSQL's jsonb
// would refuse).
inline std::string FailedName() { return std::string("fail\0ed", 7); }

// A hubspot link (native id 101) with both hashes, a write queued (c2) and a dead-lettered one
// (c3), each hash HashJson's followed by `tail` (a schema before kept 256 bits: "" when the test
// lengthens them in the file itself).
inline void StoreRecordsWithHashes(Store& store, const std::string& tail) {
  Link link = MakeLink("c1", "hubspot", "101");
  link.last_read_hash = HashJson(nlohmann::json{{"name", "Acme"}}) + tail;
  link.last_written_hash = HashJson(nlohmann::json{{"accountname", "Acme"}}) + tail;
  OutboxItem queued = Item("hubspot", "c2", {{"name", "queued"}});
  queued.payload_hash = HashJson(queued.payload) + tail;
  OutboxItem failed = Item("hubspot", "c3", {{"name", FailedName()}});
  failed.payload_hash = HashJson(failed.payload) + tail;
  StateBatch batch;
  batch.PutLink(link);
  batch.Enqueue(queued);
  batch.Enqueue(failed);
  ASSERT_TRUE(store.Apply(batch).ok());
  auto due = store.DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_TRUE(due.ok() && due->size() == 2u);
  StateBatch outcome;
  outcome.DeadLetterOutbox((*due)[1].id, "INVALID_ARGUMENT", 400);
  ASSERT_TRUE(store.Apply(outcome).ok());
}

// Every hash StoreRecordsWithHashes stored is, after the upgrade, HashJson's of its value.
inline void ExpectHashesOfToday(Store& store) {
  auto link = store.FindLinkByNative("hubspot", "company", "101");
  ASSERT_TRUE(link.ok() && link->has_value()) << link.status().ToString();
  EXPECT_EQ((*link)->last_read_hash, HashJson(nlohmann::json{{"name", "Acme"}}));
  EXPECT_EQ((*link)->last_written_hash, HashJson(nlohmann::json{{"accountname", "Acme"}}));
  auto due = store.DueOutbox(OutboxFilter("hubspot", kT0, 10));
  ASSERT_TRUE(due.ok()) << due.status().ToString();
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].payload_hash, HashJson(nlohmann::json{{"name", "queued"}}));
  auto dead = store.ListDeadLetters(10);
  ASSERT_TRUE(dead.ok()) << dead.status().ToString();
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].item.payload_hash, HashJson(nlohmann::json{{"name", FailedName()}}));
  EXPECT_EQ((*dead)[0].item.payload, (nlohmann::json{{"name", FailedName()}}));
}

}  // namespace store_test
}  // namespace crmbridge
