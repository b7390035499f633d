// What only the SQLite backend does: its file (mode 0600, WAL mode, refusing what it cannot read),
// its schema migrations, ":memory:", and what tampering with the file shows. The behaviour every
// backend shares is in the conformance suite (store_conformance_test.cc), run on SQLite too.
#include "state/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "src/core/clock.h"
#include "src/core/hash.h"
#include "state/store.h"
#include "tests/state/hash_upgrade.h"
#include "tests/state/sqlite_old_schema.h"
#include "tests/state/store_test_data.h"

namespace crmbridge {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;
using store_test::Item;
using store_test::kT0;
using store_test::MakeLink;

// Raw access to the file, for what the Store interface deliberately does not expose.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  }
  ~RawDb() { sqlite3_close(db_); }
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    std::string out;
    if (sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(st, 0);
      if (t != nullptr) out = reinterpret_cast<const char*>(t);
    }
    sqlite3_finalize(st);
    return out;
  }
  void Exec(const std::string& sql) {
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db_);
  }

 private:
  sqlite3* db_ = nullptr;
};

int FileMode(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "crmb-state-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/state.db";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::unique_ptr<Store> Open(const std::string& path) {
    SqliteStoreOptions options;
    options.clock = &clock_;
    auto store = OpenSqliteStore(path, options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return nullptr;
    return std::move(store).value();
  }
  std::unique_ptr<Store> Open() { return Open(path_); }

  FakeClock clock_;
  std::string dir_;
  std::string path_;
};

TEST_F(SqliteStoreTest, MakesANewFileAtTheLatestVersionAndEveryTableWorks) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto version = store->SchemaVersion();
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, SqliteSchemaVersionKnown());
  EXPECT_GE(*version, 1);

  StateBatch batch;
  batch.PutLink(MakeLink("c1", "hubspot", "101"));
  Snapshot snap;
  snap.entity = "company";
  snap.canonical_id = "c1";
  snap.fields = {{"name", "Acme"}};
  batch.PutSnapshot(snap);
  batch.SetCursor("hubspot", "companies", "cur-1");
  batch.Enqueue(Item("dynamics365", "c1", {{"name", "Acme"}}));
  batch.AddStageTransition(StageTransition{"onboarding", "o1", "hubspot", "", "Ny", kT0});
  ASSERT_TRUE(store->Apply(batch).ok());

  auto due = store->DueOutbox(OutboxFilter("dynamics365", kT0, 10));
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  StateBatch dead;
  dead.DeadLetterOutbox((*due)[0].id, "INVALID_ARGUMENT: bad", 400);
  ASSERT_TRUE(store->Apply(dead).ok());
  EXPECT_EQ(store->ListDeadLetters(10)->size(), 1u);
  EXPECT_TRUE(store->BeginRun("sync", kT0).ok());
  EXPECT_TRUE(*store->AcquireLease("w1", kT0, 1000));
  EXPECT_TRUE(store->FindLink("company", "c1", "hubspot")->has_value());
  EXPECT_TRUE(store->GetSnapshot("company", "c1")->has_value());
  EXPECT_EQ(store->StageHistory("onboarding", "o1")->size(), 1u);

  store.reset();
  RawDb raw(path_);
  for (const char* table : {"links", "snapshots", "cursors", "outbox", "dead_letters", "runs",
                            "stage_history", "lease"}) {
    EXPECT_EQ(raw.QueryText(std::string("SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "AND name = '") + table + "'"),
              table);
  }
  EXPECT_EQ(raw.QueryText("PRAGMA user_version"), std::to_string(SqliteSchemaVersionKnown()));
}

TEST_F(SqliteStoreTest, RefusesAFileFromANewerSchemaVersion) {
  ASSERT_NE(Open(), nullptr);
  const int newer = SqliteSchemaVersionKnown() + 1;
  {
    RawDb raw(path_);
    raw.Exec("PRAGMA user_version = " + std::to_string(newer));
  }
  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().message(),
            "state file " + path_ + " has schema version " + std::to_string(newer) +
                ", this crmbridge knows up to " + std::to_string(SqliteSchemaVersionKnown()));
  // Refused untouched.
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryText("PRAGMA user_version"), std::to_string(newer));
}

// Schema 11 keeps the newest-payload rows of records with a dead letter only. A file of schema
// 10 had one for every record written: upgraded, a replay still drops a dead letter that a newer
// delivered write made stale, and the rows of records that never failed are gone.
TEST_F(SqliteStoreTest, AnUpgradeKeepsWhatTellsAStaleDeadLetter) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    StateBatch batch;
    batch.Enqueue(Item("hubspot", "c1", {{"name", "v1"}}));
    batch.Enqueue(Item("hubspot", "c2", {{"name", "w1"}}));
    ASSERT_TRUE(store->Apply(batch).ok());
    auto due = store->DueOutbox(OutboxFilter("hubspot", kT0, 10));
    ASSERT_EQ(due->size(), 2u);
    StateBatch outcomes;
    outcomes.DeadLetterOutbox((*due)[0].id, "INVALID_ARGUMENT", 400);  // c1 v1
    outcomes.CompleteOutbox((*due)[1].id);                              // c2 w1
    ASSERT_TRUE(store->Apply(outcomes).ok());
    StateBatch newer;
    newer.Enqueue(Item("hubspot", "c1", {{"name", "v2"}}));
    ASSERT_TRUE(store->Apply(newer).ok());
    StateBatch delivered;
    delivered.CompleteOutbox(store->DueOutbox(OutboxFilter("hubspot", kT0, 10))->at(0).id);
    ASSERT_TRUE(store->Apply(delivered).ok());
  }
  {
    // Back to schema 10: stage history with its own ids, a newest-payload row per record, the
    // settled digests on the snapshots.
    RawDb raw(path_);
    raw.Exec(store_test::BackToSchema16Sql());
    raw.Exec(
        "DROP TABLE stage_history; CREATE TABLE stage_history (id INTEGER PRIMARY KEY "
        "AUTOINCREMENT, entity TEXT NOT NULL, canonical_id TEXT NOT NULL, system TEXT NOT NULL, "
        "from_stage TEXT NOT NULL DEFAULT '', to_stage TEXT NOT NULL, at_ms INTEGER NOT NULL); "
        "CREATE INDEX stage_history_by_record ON stage_history (entity, canonical_id, at_ms, id); "
        "INSERT INTO stage_history (entity, canonical_id, system, to_stage, at_ms) VALUES "
        "('onboarding', 'o1', 'hubspot', 'new', 5), ('onboarding', 'o1', 'hubspot', 'live', 5); "
        "INSERT OR REPLACE INTO outbox_latest VALUES ('hubspot', 'company', 'c2', 2); "
        "ALTER TABLE links DROP COLUMN settled; "
        "ALTER TABLE snapshots ADD COLUMN settled TEXT NOT NULL DEFAULT '?'; "
        "DROP TABLE webhook_events; "
        "PRAGMA user_version = 10;");
    EXPECT_EQ(raw.QueryText("SELECT count(*) FROM outbox_latest"), "2");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  {
    RawDb raw(path_);
    EXPECT_EQ(raw.QueryText("SELECT group_concat(canonical_id) FROM outbox_latest"), "c1");
  }
  auto history = store->StageHistory("onboarding", "o1");
  ASSERT_TRUE(history.ok()) << history.status().ToString();
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].to_stage, "new");
  EXPECT_EQ((*history)[1].to_stage, "live");
  ASSERT_TRUE(store->ReplayDeadLetter(store->ListDeadLetters(1)->at(0).id, kT0).ok());
  EXPECT_EQ(*store->OutboxCounts(), json::object()) << "v1 would overwrite the delivered v2";
}

// Schema 15 keys links by canonical id first and indexes them by native id first. A file of
// schema 14 (keys led by entity and system) upgrades with every link as it was: ids, hashes, the
// settled digest, a link still waiting for its create, and the rule that one native id has one
// link.
TEST_F(SqliteStoreTest, AnUpgradeRekeysTheLinksAndKeepsEachOne) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    StateBatch batch;
    batch.PutLink(MakeLink("c1", "hubspot", "101"));
    batch.PutLink(MakeLink("c1", "dynamics365", ""));  // its create not confirmed yet
    batch.PutLink(MakeLink("c2", "hubspot", "102"));
    ASSERT_TRUE(store->Apply(batch).ok());
  }
  {
    RawDb raw(path_);
    raw.Exec(store_test::BackToSchema16Sql());
    raw.Exec(
        "CREATE TABLE links_14 (entity TEXT NOT NULL, canonical_id TEXT NOT NULL, system TEXT NOT "
        "NULL, native_id TEXT, last_read_hash TEXT NOT NULL DEFAULT '', last_written_hash TEXT NOT "
        "NULL DEFAULT '', updated_ms INTEGER NOT NULL DEFAULT 0, settled TEXT, PRIMARY KEY "
        "(entity, canonical_id, system), UNIQUE (system, entity, native_id)) WITHOUT ROWID; "
        "INSERT INTO links_14 SELECT entity, canonical_id, system, native_id, last_read_hash, "
        "last_written_hash, updated_ms, settled FROM links; DROP TABLE links; "
        "ALTER TABLE links_14 RENAME TO links; "
        "UPDATE links SET settled = '0123456789abcdef' WHERE native_id = '101'; "
        "PRAGMA user_version = 14;");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  {
    RawDb raw(path_);
    EXPECT_EQ(raw.QueryText("SELECT group_concat(name) FROM pragma_index_info((SELECT name FROM "
                            "pragma_index_list('links') WHERE origin = 'pk'))"),
              "canonical_id,entity,system");
    EXPECT_EQ(raw.QueryText("SELECT group_concat(name) FROM pragma_index_info((SELECT name FROM "
                            "pragma_index_list('links') WHERE origin = 'u'))"),
              "native_id,system,entity");
    // The digest as its 8 bytes (schema 20).
    EXPECT_EQ(raw.QueryText("SELECT typeof(settled) || length(settled) FROM links WHERE "
                            "native_id = '101'"),
              "blob8");
  }
  auto by_native = store->FindLinkByNative("hubspot", "company", "101");
  ASSERT_TRUE(by_native.ok() && by_native->has_value()) << by_native.status().ToString();
  EXPECT_EQ((*by_native)->canonical_id, "c1");
  EXPECT_EQ((*by_native)->last_read_hash, "r-101");
  EXPECT_EQ((*by_native)->last_written_hash, "w-101");
  EXPECT_EQ((*by_native)->updated_ms, kT0);
  auto pending = store->FindLink("company", "c1", "dynamics365");
  ASSERT_TRUE(pending.ok() && pending->has_value()) << pending.status().ToString();
  EXPECT_EQ((*pending)->native_id, "");
  auto page = store->LoadRecords("company", "hubspot", {"101", "102"}, {});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->by_native.at("102").canonical_id, "c2");
  ASSERT_NE(page->digests.at("c1").Of("hubspot"), nullptr);
  EXPECT_EQ(*page->digests.at("c1").Of("hubspot"), "0123456789abcdef");
  StateBatch more;
  more.PutLink(MakeLink("c2", "dynamics365", ""));  // a second link waiting for its create
  EXPECT_TRUE(store->Apply(more).ok());
  StateBatch clash;
  clash.PutLink(MakeLink("c3", "hubspot", "101"));
  EXPECT_EQ(store->Apply(clash).code(), StatusCode::kAlreadyExists);
}

// A record whose ids are of both kinds: UUIDs (its canonical id, Dynamics 365's GUID) and other
// text (HubSpot's number), in every table that holds a canonical id.
constexpr const char* kCid = "01a24b1f-a8bc-7000-a208-ba57f2a37be1";
constexpr const char* kGuid = "d3b1c9b7-0e4f-ed11-bba2-000d3a2b5c6f";

void StoreARecordOfEachKindOfId(Store& store) {
  StateBatch batch;
  batch.PutLink(MakeLink(kCid, "hubspot", "101"));
  batch.PutLink(MakeLink(kCid, "dynamics365", kGuid));
  batch.PutLink(MakeLink("c2", "hubspot", "102"));
  for (const char* cid : {kCid, "c2"}) {
    Snapshot snap;
    snap.entity = "company";
    snap.canonical_id = cid;
    snap.fields = {{"name", std::string("name of ") + cid}};
    batch.PutSnapshot(snap);
    batch.AddStageTransition(StageTransition{"company", cid, "hubspot", "", "new", kT0, false});
    batch.PutMatchKey("company", std::string("key of ") + cid, cid);
  }
  batch.Enqueue(Item("dynamics365", kCid, {{"name", "A"}}));
  batch.Enqueue(Item("dynamics365", "c2", {{"name", "B"}}));
  batch.Enqueue(Item("totango", kCid, {{"name", "A"}}));
  ASSERT_TRUE(store.Apply(batch).ok());
  // The write to the third system fails for good: a dead letter, and the newest payload noted.
  auto due = store.DueOutbox(OutboxFilter("totango", kT0, 10));
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  StateBatch failed;
  failed.DeadLetterOutbox((*due)[0].id, "rejected", 400);
  ASSERT_TRUE(store.Apply(failed).ok());
}

void ExpectEveryIdFound(Store& store) {
  auto by_guid = store.FindLinkByNative("dynamics365", "company", kGuid);
  ASSERT_TRUE(by_guid.ok() && by_guid->has_value()) << by_guid.status().ToString();
  EXPECT_EQ((*by_guid)->canonical_id, kCid);
  EXPECT_EQ((*by_guid)->native_id, kGuid);
  auto page = store.LoadRecords("company", "hubspot", {"101", "102"}, {kCid});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->by_native.at("101").canonical_id, kCid);
  EXPECT_EQ(page->by_native.at("102").canonical_id, "c2");
  ASSERT_EQ(page->links.at(kCid).size(), 2u);
  ASSERT_EQ(page->snapshots.count(kCid), 1u);
  EXPECT_EQ(page->snapshots.at(kCid).fields["name"], std::string("name of ") + kCid);
  for (const char* cid : {kCid, "c2"}) {
    auto link = store.FindLink("company", cid, "hubspot");
    ASSERT_TRUE(link.ok() && link->has_value()) << cid;
    EXPECT_EQ((*link)->canonical_id, cid);
    auto snap = store.GetSnapshot("company", cid);
    ASSERT_TRUE(snap.ok() && snap->has_value()) << cid;
    EXPECT_EQ((*snap)->canonical_id, cid);
    auto history = store.StageHistory("company", cid);
    ASSERT_TRUE(history.ok());
    ASSERT_EQ(history->size(), 1u) << cid;
    EXPECT_EQ((*history)[0].canonical_id, cid);
    auto matched = store.FindByMatchKey("company", std::string("key of ") + cid);
    ASSERT_TRUE(matched.ok() && matched->has_value()) << cid;
    EXPECT_EQ(**matched, cid);
    auto pending = store.PendingOutbox("dynamics365", "company", cid);
    ASSERT_TRUE(pending.ok() && pending->has_value()) << cid;
    EXPECT_EQ((*pending)->canonical_id, cid);
  }
  // Listed in one order, and paged through in it: text ids, then UUIDs in their text order.
  auto all = store.ListSnapshots("company");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  auto after_first = store.ListSnapshotsAfter("company", (*all)[0].canonical_id, 10);
  ASSERT_TRUE(after_first.ok());
  ASSERT_EQ(after_first->size(), 1u);
  EXPECT_EQ((*after_first)[0].canonical_id, (*all)[1].canonical_id);
  auto history = store.AllStageHistory("company");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  // An id is matched exactly, as text always was: the same GUID in capitals is another id.
  std::string upper = kGuid;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto by_upper = store.FindLinkByNative("dynamics365", "company", upper);
  ASSERT_TRUE(by_upper.ok());
  EXPECT_FALSE(by_upper->has_value());
  // The dead letter names its record, and its replay queues the write for it again.
  auto dead = store.ListDeadLetters(10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].item.canonical_id, kCid);
  ASSERT_TRUE(store.ReplayDeadLetter((*dead)[0].id, kT0).ok());
  auto replayed = store.PendingOutbox("totango", "company", kCid);
  ASSERT_TRUE(replayed.ok() && replayed->has_value());
  EXPECT_EQ((*replayed)->payload, json({{"name", "A"}}));
}

// What each id column holds for the record with a UUID and for the other: "blob16" or "text2".
std::string StoredKinds(RawDb& raw) {
  std::string kinds;
  for (const char* table : {"links", "snapshots", "stage_history", "outbox", "match_keys",
                            "dead_letters", "outbox_latest"})
    kinds += raw.QueryText(std::string("SELECT group_concat(typeof(canonical_id) || "
                                       "length(canonical_id)) FROM (SELECT DISTINCT canonical_id "
                                       "FROM ") + table + " ORDER BY canonical_id)") + ";";
  // From schema 18 on, the system is its number in `names`.
  const bool numbered = raw.QueryText("SELECT count(*) FROM sqlite_schema WHERE name = 'names'") == "1";
  return kinds + raw.QueryText(std::string("SELECT typeof(native_id) || length(native_id) FROM "
                                           "links WHERE system = ") +
                               (numbered ? "(SELECT id FROM names WHERE name = 'dynamics365')"
                                         : "'dynamics365'"));
}

TEST_F(SqliteStoreTest, StoresAUuidAsItsSixteenBytesAndAnyOtherIdAsText) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StoreARecordOfEachKindOfId(*store);
  {
    RawDb raw(path_);
    EXPECT_EQ(StoredKinds(raw),
              "text2,blob16;text2,blob16;text2,blob16;text2,blob16;text2,blob16;blob16;blob16;blob16");
  }
  ExpectEveryIdFound(*store);
}

TEST_F(SqliteStoreTest, AnUpgradeStoresTheUuidsOfAnOlderFileAsBytesAndFindsEachId) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    StoreARecordOfEachKindOfId(*store);
  }
  {
    RawDb raw(path_);
    raw.Exec(store_test::BackToSchema15Sql());
    ASSERT_EQ(StoredKinds(raw),
              "text36,text2;text36,text2;text36,text2;text36,text2;text36,text2;text36;text36;text36");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  {
    RawDb raw(path_);
    EXPECT_EQ(StoredKinds(raw),
              "text2,blob16;text2,blob16;text2,blob16;text2,blob16;text2,blob16;blob16;blob16;blob16");
  }
  ExpectEveryIdFound(*store);
  // The UNIQUE keys still hold across the conversion: the GUID is taken.
  StateBatch clash;
  clash.PutLink(MakeLink("c3", "dynamics365", kGuid));
  EXPECT_EQ(store->Apply(clash).code(), StatusCode::kAlreadyExists);
}

TEST_F(SqliteStoreTest, RefusesAFileThatIsNotADatabase) {
  {
    const int fd = ::open(path_.c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    const std::string junk(4096, 'x');
    ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
    ::close(fd);
  }
  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
}

TEST_F(SqliteStoreTest, MissingDirectoryIsAFailedPrecondition) {
  auto store = OpenSqliteStore(dir_ + "/no/such/dir/state.db");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(OpenSqliteStore("").ok());
}

TEST_F(SqliteStoreTest, CreatesTheFileAndItsCompanionsWithMode0600) {
  const mode_t old_umask = ::umask(0);  // the widest umask: the store itself must restrict
  auto store = Open();
  ::umask(old_umask);
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.SetCursor("hubspot", "tickets", "x");
  ASSERT_TRUE(store->Apply(batch).ok());
  EXPECT_EQ(FileMode(path_), 0600);
  ASSERT_EQ(FileMode(path_ + "-wal"), 0600);  // exists while the store is open (WAL mode)
  EXPECT_EQ(FileMode(path_ + "-shm"), 0600);
}

TEST_F(SqliteStoreTest, TightensTheModeOfAnExistingFile) {
  ASSERT_NE(Open(), nullptr);
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  ASSERT_NE(Open(), nullptr);
  EXPECT_EQ(FileMode(path_), 0600);
}

// An empty file where the store was (truncated by a failed copy, `> state.db`, a full disk) is
// not a new store: starting over would create every record again in every system.
TEST_F(SqliteStoreTest, RefusesAnEmptyFileAndLeavesItAsItIs) {
  {
    const int fd = ::open(path_.c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  auto store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr(path_ + " is empty (0 bytes)"));
  EXPECT_THAT(store.status().message(), HasSubstr("Restore it from a backup"));
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_NE(::access((path_ + "-wal").c_str(), F_OK), 0);
}

// A new store is made under another name and linked into place whole: nothing of the making is
// left beside it, and a second opening finds the schema (not an empty file).
TEST_F(SqliteStoreTest, ANewStoreIsMadeWholeAndLeavesNothingBeside) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
  }
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir_))
    names.push_back(entry.path().filename().string());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre(std::filesystem::path(path_).filename().string()));
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_GT(st.st_size, 0);
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryText("PRAGMA user_version"), std::to_string(SqliteSchemaVersionKnown()));
}

TEST_F(SqliteStoreTest, UsesWalMode) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryText("PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStoreTest, ALinkClashNamesTheUniqueConstraint) {
  // The conformance suite requires kAlreadyExists; SQLite's own words say which constraint.
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch first;
  first.PutLink(MakeLink("c1", "hubspot", "101"));
  ASSERT_TRUE(store->Apply(first).ok());
  StateBatch clash;
  clash.PutLink(MakeLink("c2", "hubspot", "101"));
  Status s = store->Apply(clash);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("UNIQUE"));
}

TEST_F(SqliteStoreTest, LoadRecordsReportsASnapshotThatDoesNotParse) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.PutLink(MakeLink("c1", "hubspot", "101"));
  Snapshot snap;
  snap.entity = "company";
  snap.canonical_id = "c1";
  batch.PutSnapshot(snap);
  ASSERT_TRUE(store->Apply(batch).ok());
  RawDb(path_).Exec("UPDATE snapshots SET seen = '{broken' WHERE canonical_id = 'c1'");
  // Asked for by canonical id (a record found by native id has its snapshot read with
  // GetSnapshot, when needed).
  auto loaded = store->LoadRecords("company", "hubspot", {}, {"c1"});
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr("company c1"));
  auto got = store->GetSnapshot("company", "c1");
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("company c1"));
  // And the failed read left no transaction open.
  StateBatch after;
  after.PutLink(MakeLink("c2", "hubspot", "202"));
  EXPECT_TRUE(store->Apply(after).ok());
}

TEST_F(SqliteStoreTest, AnOutboxRowWithAnUnknownOpIsReportedNotGuessed) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("portal", "c1", {{"name", "Acme"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  RawDb(path_).Exec("UPDATE outbox SET op = 'transmogrify'");
  auto due = store->DueOutbox(OutboxFilter("portal", kT0 + 1000000, 10));
  ASSERT_FALSE(due.ok());
  EXPECT_THAT(due.status().message(), HasSubstr("unknown op 'transmogrify'"));
}

// What a snapshot repeats of its fields is stored once (schema 9); it reads back exactly as it was,
// and a row stored in full, as before, reads the same.
TEST_F(SqliteStoreTest, ASnapshotRepeatingItsFieldsIsStoredCompactlyAndReadBackExactly) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Snapshot snap;
  snap.entity = "company";
  snap.canonical_id = "c1";
  snap.fields = {{"name", "Acme"}, {"city", "Lund"}};
  snap.seen = {{"hubspot", snap.fields}, {"dynamics365", {{"name", "Acme"}}}, {"portal", json::object()}};
  snap.changed_ms = {{"name", kT0}, {"city", kT0}};
  Snapshot mixed = snap;
  mixed.canonical_id = "c2";
  mixed.changed_ms = {{"name", kT0}, {"city", kT0 + 1}};
  Snapshot partial = snap;
  partial.canonical_id = "c3";
  partial.changed_ms = {{"name", kT0}};
  Snapshot first_read = snap;  // every field changed when it was stored
  first_read.canonical_id = "c4";
  first_read.updated_ms = kT0;
  StateBatch batch;
  batch.PutSnapshot(snap);
  batch.PutSnapshot(mixed);
  batch.PutSnapshot(partial);
  batch.PutSnapshot(first_read);
  ASSERT_TRUE(store->Apply(batch).ok());

  // Field and system names as their numbers in `names` (schema 19).
  RawDb db(path_);
  auto n = [&](const std::string& name) {
    return db.QueryText("SELECT id FROM names WHERE name = '" + name + "'");
  };
  EXPECT_EQ(db.QueryText("SELECT fields FROM snapshots WHERE canonical_id = 'c1'"),
            "[" + n("city") + R"(,"Lund",)" + n("name") + R"(,"Acme"])");
  EXPECT_EQ(db.QueryText("SELECT seen FROM snapshots WHERE canonical_id = 'c1'"),
            "[" + n("dynamics365") + ",[" + n("name") + R"(,"Acme"],)" + n("hubspot") +
                R"(,"=",)" + n("portal") + ",{}]");
  EXPECT_EQ(db.QueryText("SELECT changed_ms FROM snapshots WHERE canonical_id = 'c1'"),
            std::to_string(kT0));
  EXPECT_EQ(db.QueryText("SELECT changed_ms FROM snapshots WHERE canonical_id = 'c4'"), "=");
  for (const Snapshot* want : {&snap, &mixed, &partial, &first_read}) {
    auto got = store->GetSnapshot("company", want->canonical_id);
    ASSERT_TRUE(got.ok() && got->has_value()) << want->canonical_id;
    EXPECT_EQ((*got)->fields, want->fields) << want->canonical_id;
    EXPECT_EQ((*got)->seen, want->seen) << want->canonical_id;
    EXPECT_EQ((*got)->changed_ms, want->changed_ms) << want->canonical_id;
  }

  // As stored before schema 9: in full, with names.
  db.Exec("UPDATE snapshots SET fields = '" + snap.fields.dump() + "', seen = '" +
          snap.seen.dump() + "', changed_ms = '" + snap.changed_ms.dump() +
          "' WHERE canonical_id = 'c1'");
  auto old = store->GetSnapshot("company", "c1");
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_EQ((*old)->fields, snap.fields);
  EXPECT_EQ((*old)->seen, snap.seen);
  EXPECT_EQ((*old)->changed_ms, snap.changed_ms);
}

// A link's hashes are stored as their 16 bytes, read back as the same hex text; a hash stored as
// text before, and a value that is no hash, read back as they were.
TEST_F(SqliteStoreTest, ALinksHashesAreStoredAsBytesAndReadBackAsTheSameText) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string hash = HashJson(json{{"name", "Acme"}});
  Link link = MakeLink("c1", "hubspot", "101");
  link.last_read_hash = hash;
  link.last_written_hash = "delete";
  StateBatch batch;
  batch.PutLink(link);
  ASSERT_TRUE(store->Apply(batch).ok());
  RawDb db(path_);
  EXPECT_EQ(db.QueryText("SELECT typeof(last_read_hash) || length(last_read_hash) FROM links"),
            "blob16");
  EXPECT_EQ(db.QueryText("SELECT typeof(last_written_hash) FROM links"), "text");
  auto got = store->FindLinkByNative("hubspot", "company", "101");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->last_read_hash, hash);
  EXPECT_EQ((*got)->last_written_hash, "delete");

  db.Exec("UPDATE links SET last_read_hash = '" + hash + "'");  // as stored before
  got = store->FindLinkByNative("hubspot", "company", "101");
  EXPECT_EQ((*got)->last_read_hash, hash);
}

// Schema 17 keeps 128-bit content hashes. A file of schema 16 held 256-bit ones: upgraded, every
// link hash, queued payload hash and dead letter's payload hash is its first half, which is what
// HashJson gives now for the same value, so nothing reads as changed and nothing is written again.
TEST_F(SqliteStoreTest, AnUpgradeKeepsTheFirstHalfOfEveryContentHash) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    store_test::StoreRecordsWithHashes(*store, "");
  }
  {
    RawDb raw(path_);
    raw.Exec(store_test::BackToSchema16Sql());
    ASSERT_EQ(raw.QueryText("SELECT length(last_read_hash) || ',' || length(last_written_hash) "
                            "FROM links"),
              "32,32");
    ASSERT_EQ(raw.QueryText("SELECT length(payload_hash) FROM outbox"), "64");
    ASSERT_EQ(raw.QueryText("SELECT length(json_extract(item, '$.payload_hash')) FROM "
                            "dead_letters"),
              "64");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  store_test::ExpectHashesOfToday(*store);
}

Link EntityLink(const std::string& entity, const std::string& cid, const std::string& native) {
  Link link = MakeLink(cid, "hubspot", native);
  link.entity = entity;
  return link;
}

// Links store their entity's and system's numbers in `names` (schema 18). A name first used by a
// batch that is rolled back is forgotten with it: its number may go to the next new name, and
// the rolled-back name must not keep it.
TEST_F(SqliteStoreTest, ANameAddedByABatchRolledBackKeepsNoNumber) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch first;
  first.PutLink(EntityLink("company", "c1", "101"));
  ASSERT_TRUE(store->Apply(first).ok());
  StateBatch clash;
  clash.PutLink(EntityLink("invoice", "i1", "201"));
  clash.PutLink(EntityLink("company", "c2", "101"));  // 101 is c1's: the batch is refused
  ASSERT_EQ(store->Apply(clash).code(), StatusCode::kAlreadyExists);
  StateBatch next;
  next.PutLink(EntityLink("ticket", "t1", "301"));
  next.PutLink(EntityLink("invoice", "i1", "201"));
  ASSERT_TRUE(store->Apply(next).ok());
  for (const auto& [entity, cid] : {std::pair<std::string, std::string>{"ticket", "t1"},
                                    {"invoice", "i1"}, {"company", "c1"}}) {
    auto link = store->FindLink(entity, cid, "hubspot");
    ASSERT_TRUE(link.ok() && link->has_value()) << entity << " " << link.status().ToString();
    EXPECT_EQ((*link)->entity, entity);
  }
  auto none = store->FindLink("ticket", "i1", "hubspot");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryText("SELECT group_concat(name, ',') FROM (SELECT name FROM names ORDER BY "
                          "name)"),
            "company,hubspot,invoice,ticket");
}

// Any text is a name, the empty one included: a snapshot whose fields have an empty key, or
// values that are arrays and objects, reads back as stored.
TEST_F(SqliteStoreTest, ASnapshotWithAnEmptyFieldNameReadsBackAsStored) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Snapshot snap;
  snap.entity = "company";
  snap.canonical_id = "c1";
  snap.fields = {{"", "blank"}, {"tags", {"a", "b"}}, {"address", {{"city", "Lund"}}}};
  snap.seen = {{"hubspot", {{"", "blank"}}}, {"", json::object()}};
  StateBatch batch;
  batch.PutSnapshot(snap);
  ASSERT_TRUE(store->Apply(batch).ok());
  auto reopened = Open();
  ASSERT_NE(reopened, nullptr);
  for (Store* s : {store.get(), reopened.get()}) {
    auto got = s->GetSnapshot("company", "c1");
    ASSERT_TRUE(got.ok() && got->has_value()) << got.status().ToString();
    EXPECT_EQ((*got)->fields, snap.fields);
    EXPECT_EQ((*got)->seen, snap.seen);
  }
}

// Two processes on one file: names one adds are found by the other, reading and writing.
TEST_F(SqliteStoreTest, NamesAddedByAnotherConnectionAreFound) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  StateBatch batch;
  batch.PutLink(EntityLink("invoice", "i1", "201"));
  ASSERT_TRUE(a->Apply(batch).ok());
  auto link = b->FindLinkByNative("hubspot", "invoice", "201");
  ASSERT_TRUE(link.ok() && link->has_value()) << link.status().ToString();
  EXPECT_EQ((*link)->canonical_id, "i1");
  auto loaded = b->LoadRecords("invoice", "hubspot", {}, {"i1"});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ASSERT_EQ(loaded->links.at("i1").size(), 1u);
  EXPECT_EQ(loaded->links.at("i1")[0].entity, "invoice");
  StateBatch more;
  more.PutLink(EntityLink("invoice", "i2", "202"));
  ASSERT_TRUE(b->Apply(more).ok());
  auto other = a->FindLink("invoice", "i2", "hubspot");
  ASSERT_TRUE(other.ok() && other->has_value()) << other.status().ToString();
  EXPECT_EQ((*other)->native_id, "202");
}

// The end of a run empties the WAL into the file, so between runs the state takes its own size
// on disk; a reader still holding an older view keeps the WAL, and the run ends all the same.
TEST_F(SqliteStoreTest, TheEndOfARunEmptiesTheWalUnlessAReaderHoldsIt) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto wal_size = [&] { return std::filesystem::file_size(path_ + "-wal"); };
  auto run = [&] {
    StateBatch batch;
    for (int i = 0; i < 50; ++i)
      batch.PutLink(MakeLink("c" + std::to_string(i), "hubspot", std::to_string(100 + i)));
    EXPECT_TRUE(store->Apply(batch).ok());
    auto id = store->BeginRun("sync", kT0);
    EXPECT_TRUE(id.ok());
    RunRecord rec;
    rec.id = *id;
    rec.finished_ms = kT0 + 1;
    rec.outcome = "ok";
    EXPECT_TRUE(store->FinishRun(rec).ok());
  };
  run();
  EXPECT_EQ(wal_size(), 0u);
  EXPECT_EQ(store->FindLinkByNative("hubspot", "company", "149")->value().canonical_id, "c49");

  RawDb reader(path_);
  reader.Exec("BEGIN; SELECT count(*) FROM links;");  // a read transaction left open
  run();
  EXPECT_GT(wal_size(), 0u);
  reader.Exec("COMMIT");
  run();
  EXPECT_EQ(wal_size(), 0u);
}

// A link's settled digest that is the start of its last read hash, as it is for a record read
// and not changed since, is stored as 1 (schema 20) and read back as those digits; when the link
// is read again with other values before its snapshot is stored again, it keeps the digest it
// had, now as its 8 bytes.
TEST_F(SqliteStoreTest, ADigestThatStartsTheReadHashTakesNoBytesAndOutlivesANewRead) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const json values = {{"name", "Acme"}};
  const std::string read_hash = HashJson(values);
  Link link = MakeLink("c1", "hubspot", "101");
  link.last_read_hash = read_hash;
  Snapshot snap;
  snap.entity = "company";
  snap.canonical_id = "c1";
  snap.fields = values;
  snap.seen = {{"hubspot", values}};
  StateBatch batch;
  batch.PutLink(link);
  batch.PutSnapshot(snap);
  ASSERT_TRUE(store->Apply(batch).ok());
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryText("SELECT typeof(settled) || ':' || settled FROM links"), "integer:1");
  auto digest_of = [&]() -> std::string {
    auto loaded = store->LoadRecords("company", "hubspot", {"101"}, {});
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    if (!loaded.ok() || !loaded->digests.count("c1")) return "(none)";
    const std::string* d = loaded->digests.at("c1").Of("hubspot");
    return d == nullptr ? "(not settled)" : *d;
  };
  EXPECT_EQ(digest_of(), read_hash.substr(0, 16));

  link.last_read_hash = HashJson(json{{"name", "Acme AB"}});  // read again, changed
  StateBatch reread;
  reread.PutLink(link);
  ASSERT_TRUE(store->Apply(reread).ok());
  EXPECT_EQ(raw.QueryText("SELECT typeof(settled) || length(settled) FROM links"), "blob8");
  EXPECT_EQ(digest_of(), read_hash.substr(0, 16)) << "the values the system was settled on";

  snap.seen = {{"hubspot", {{"name", "Acme Inc"}}}};  // settled on values it was not read with
  StateBatch stored;
  stored.PutSnapshot(snap);
  ASSERT_TRUE(store->Apply(stored).ok());
  EXPECT_EQ(raw.QueryText("SELECT typeof(settled) || length(settled) FROM links"), "blob8");
  EXPECT_EQ(digest_of(), HashJson(json{{"name", "Acme Inc"}}).substr(0, 16));
}

TEST_F(SqliteStoreTest, InMemoryStoreWorks) {
  auto store = Open(":memory:");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->SchemaVersion(), SqliteSchemaVersionKnown());
  StateBatch batch;
  batch.PutLink(MakeLink("c1", "hubspot", "101"));
  batch.Enqueue(Item("portal", "c1", {{"name", "Acme"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  EXPECT_TRUE(store->FindLinkByNative("hubspot", "company", "101")->has_value());
  EXPECT_EQ(*store->OutboxCounts(), (json{{"portal", 1}}));
  EXPECT_TRUE(*store->AcquireLease("t", kT0, 10));
  EXPECT_FALSE(std::filesystem::exists(":memory:"));
  // Each ":memory:" store is private.
  auto other = Open(":memory:");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(*other->OutboxCounts(), json::object());
}

// OpenStore takes anything but a PostgreSQL URL for a SQLite path (the URL is
// postgres_store_test.cc's), a file whose name merely looks like a connection string included.
TEST_F(SqliteStoreTest, OpenStoreOpensAnythingButAPostgresUrlAsASqliteFile) {
  for (const std::string name : {"state.db", "host=db port=5432", "postgresql:not-a-url"}) {
    const std::string path = dir_ + "/" + name;
    auto store = OpenStore(path);
    ASSERT_TRUE(store.ok()) << name << ": " << store.status().ToString();
    StateBatch batch;
    batch.SetCursor("hubspot", "companies", name);
    ASSERT_TRUE((*store)->Apply(batch).ok());
    store->reset();  // closed before the file is read
    RawDb raw(path);
    EXPECT_EQ(raw.QueryText("SELECT cursor FROM cursors"), name);
  }
}

}  // namespace
}  // namespace crmbridge
