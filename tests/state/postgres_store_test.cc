// What only the PostgreSQL backend does: its migrations and schema_version table, refusing a newer
// schema, login failures that never show the password, connections lost and locks waited for,
// two connections racing for the lease, a schema per tenant. The behaviour every backend shares
// is the conformance suite (store_conformance_test.cc), which this file instantiates for
// PostgreSQL. Each test gets a database of its own on one throwaway server per test binary
// (postgres_cluster.h); without PostgreSQL's server binaries, they are skipped, saying so.
#include "state/postgres_store.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "src/core/clock.h"
#include "src/core/redaction.h"
#include "state/store.h"
#include "tests/state/hash_upgrade.h"
#include "tests/state/postgres_cluster.h"
#include "tests/state/store_conformance.h"
#include "tests/state/store_test_data.h"

namespace crmbridge {
namespace store_test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

// The shared server, or the test skipped (no PostgreSQL installed) or failed (it did not start).
void GetCluster(PostgresCluster** cluster) {
  std::string why;
  bool missing = false;
  *cluster = PostgresCluster::Shared(&why, &missing);
  if (*cluster != nullptr) return;
  if (missing) GTEST_SKIP() << why;
  FAIL() << why;
}

// PostgreSQL in the conformance suite: a database of its own per test, dropped after it.
class PostgresUnderTest : public StoreUnderTest {
 public:
  PostgresUnderTest(PostgresCluster* cluster, std::string db, Clock* clock)
      : cluster_(cluster), db_(std::move(db)), clock_(clock) {}
  ~PostgresUnderTest() override {
    Status dropped = cluster_->DropDatabase(db_);
    EXPECT_TRUE(dropped.ok()) << dropped.ToString();
  }

  static std::unique_ptr<StoreUnderTest> Make(Clock* clock) {
    PostgresCluster* cluster = nullptr;
    GetCluster(&cluster);
    if (cluster == nullptr) return nullptr;
    auto db = cluster->CreateDatabase();
    if (!db.ok()) {
      ADD_FAILURE() << db.status().ToString();
      return nullptr;
    }
    return std::make_unique<PostgresUnderTest>(cluster, *db, clock);
  }

  Result<std::unique_ptr<Store>> Connect() override {
    PostgresStoreOptions options;
    options.clock = clock_;
    return OpenPostgresStore(cluster_->Url(db_), options);
  }

 private:
  PostgresCluster* const cluster_;
  const std::string db_;
  Clock* const clock_;
};

INSTANTIATE_TEST_SUITE_P(Postgres, StoreConformanceTest,
                         ::testing::Values(StoreBackend{"postgres", &PostgresUnderTest::Make}));

// A superuser connection to a test's database, for what the Store interface does not expose.
class RawPg {
 public:
  RawPg(const PostgresCluster& cluster, const std::string& db) : conn_(cluster.Admin(db)) {
    EXPECT_EQ(PQstatus(conn_), CONNECTION_OK) << PQerrorMessage(conn_);
  }
  ~RawPg() { PQfinish(conn_); }
  RawPg(const RawPg&) = delete;
  RawPg& operator=(const RawPg&) = delete;

  // The first value of the first row ("" for none or NULL).
  std::string Query(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    const ExecStatusType st = PQresultStatus(r);
    EXPECT_TRUE(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        << sql << ": " << PQerrorMessage(conn_);
    std::string out;
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0) out = PQgetvalue(r, 0, 0);
    PQclear(r);
    return out;
  }
  void Exec(const std::string& sql) { Query(sql); }

 private:
  PGconn* conn_;
};

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GetCluster(&cluster_);
    if (cluster_ == nullptr) return;
    auto db = cluster_->CreateDatabase();
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = *db;
  }
  void TearDown() override {
    if (cluster_ != nullptr && !db_.empty()) {
      Status dropped = cluster_->DropDatabase(db_);
      EXPECT_TRUE(dropped.ok()) << dropped.ToString();
    }
  }

  std::unique_ptr<Store> Open(const std::string& url, PostgresStoreOptions options = {}) {
    if (options.clock == nullptr) options.clock = &clock_;
    auto store = OpenPostgresStore(url, options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return nullptr;
    return std::move(store).value();
  }
  std::unique_ptr<Store> Open(PostgresStoreOptions options = {}) {
    return Open(cluster_->Url(db_), options);
  }

  FakeClock clock_;
  PostgresCluster* cluster_ = nullptr;
  std::string db_;
};

TEST_F(PostgresStoreTest, MigratesAnEmptyDatabaseOnceAndReportsTheVersion) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto version = store->SchemaVersion();
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_EQ(*version, PostgresSchemaVersionKnown());
  EXPECT_GE(*version, 1);

  RawPg raw(*cluster_, db_);
  const std::string known = std::to_string(PostgresSchemaVersionKnown());
  EXPECT_EQ(raw.Query("SELECT count(*) FROM schema_version"), known);
  EXPECT_EQ(raw.Query("SELECT max(version) FROM schema_version"), known);
  EXPECT_EQ(raw.Query("SELECT applied_ms FROM schema_version WHERE version = 1"),
            std::to_string(kT0));
  for (const char* table : {"links", "snapshots", "cursors", "outbox", "outbox_latest",
                            "dead_letters", "runs", "stage_history", "match_keys", "audit",
                            "lease", "counters", "write_lock"}) {
    EXPECT_EQ(raw.Query(std::string("SELECT to_regclass('") + table + "') IS NOT NULL"), "t")
        << table;
  }

  // Opened again, by a second connection beside the first and after it: nothing is applied twice.
  clock_.Advance(std::chrono::hours(1));
  auto second = Open();
  ASSERT_NE(second, nullptr);
  store.reset();
  second.reset();
  auto third = Open();
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(*third->SchemaVersion(), PostgresSchemaVersionKnown());
  EXPECT_EQ(raw.Query("SELECT count(*) FROM schema_version"), known);
  EXPECT_EQ(raw.Query("SELECT applied_ms FROM schema_version WHERE version = 1"),
            std::to_string(kT0));
}

TEST_F(PostgresStoreTest, RefusesADatabaseWithANewerSchemaUntouched) {
  ASSERT_NE(Open(), nullptr);
  const int newer = PostgresSchemaVersionKnown() + 1;
  RawPg raw(*cluster_, db_);
  raw.Exec("INSERT INTO schema_version (version, description, applied_ms) VALUES (" +
           std::to_string(newer) + ", 'from a newer crmbridge', 0)");

  auto store = OpenPostgresStore(cluster_->Url(db_));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.status().message(),
            "state store postgresql://127.0.0.1:" + std::to_string(cluster_->port()) + "/" + db_ +
                " has schema version " + std::to_string(newer) + ", this crmbridge knows up to " +
                std::to_string(PostgresSchemaVersionKnown()));
  EXPECT_EQ(raw.Query("SELECT max(version) FROM schema_version"), std::to_string(newer));
  EXPECT_EQ(raw.Query("SELECT count(*) FROM schema_version"),
            std::to_string(PostgresSchemaVersionKnown() + 1));
}

TEST_F(PostgresStoreTest, AnUnreachableServerIsAFailedPreconditionThatHidesThePassword) {
  // A port held but not listened on, so that nothing else can take it meanwhile: connecting to
  // it is refused. The password is the server's own.
  const int held = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(held, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(held, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::getsockname(held, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string url = "postgresql://crmbridge:" + cluster_->password() + "@127.0.0.1:" +
                          std::to_string(ntohs(addr.sin_port)) + "/" + db_ + "?connect_timeout=5";
  auto store = OpenPostgresStore(url);
  ::close(held);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("cannot connect to the PostgreSQL state store"));
  EXPECT_THAT(store.status().message(), HasSubstr("127.0.0.1"));
  EXPECT_THAT(store.status().message(), Not(HasSubstr(cluster_->password())));
}

TEST_F(PostgresStoreTest, AWrongPasswordIsAFailedPreconditionThatHidesBothPasswords) {
  const std::string wrong = "not-the-password-7c41e9";
  for (const std::string& url :
       {cluster_->Url(db_, wrong),
        "host=127.0.0.1 port=" + std::to_string(cluster_->port()) + " dbname=" + db_ +
            " user=crmbridge password=" + wrong}) {
    auto store = OpenPostgresStore(url);
    ASSERT_FALSE(store.ok()) << url;
    EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_THAT(store.status().message(), HasSubstr("password authentication failed"));
    EXPECT_THAT(store.status().message(), HasSubstr("127.0.0.1"));
    EXPECT_THAT(store.status().message(), Not(HasSubstr(wrong)));
    EXPECT_THAT(store.status().message(), Not(HasSubstr(cluster_->password())));
  }
  // Known as a secret from the moment the url was read: every log line hides it.
  EXPECT_THAT(Redactor::Global().Redact("login with " + wrong), Not(HasSubstr(wrong)));
}

TEST(PostgresUrlTest, IsShownWithoutItsPassword) {
  EXPECT_EQ(RedactPostgresUrl("postgresql://crmb:s3cret-pw@db.internal:5433/state"),
            "postgresql://db.internal:5433/state");
  EXPECT_EQ(RedactPostgresUrl("postgresql://db.internal/state?password=s3cret-pw&sslmode=require"),
            "postgresql://db.internal/state?password=***&sslmode=require");
  EXPECT_EQ(RedactPostgresUrl("host=db.internal port=5433 dbname=state user=crmb "
                              "password='s3cret pw' sslmode=require"),
            "host=db.internal port=5433 dbname=state user=crmb");
  const std::string unparsable = RedactPostgresUrl("host=db.internal password s3cret-pw");
  EXPECT_THAT(unparsable, Not(HasSubstr("s3cret")));

  auto malformed = OpenPostgresStore("host=db.internal password s3cret-pw");
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(malformed.status().message(), Not(HasSubstr("s3cret")));
  EXPECT_EQ(OpenPostgresStore("").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PostgresStoreTest, TwoConnectionsRacingForTheLeaseOneWins) {
  auto one = Open();
  auto two = Open();
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  constexpr int kRounds = 30;
  constexpr int64_t kTtl = 60000;
  for (int round = 0; round < kRounds; ++round) {
    // Each round finds the lease free: released (even rounds) or expired (odd ones).
    const int64_t now = kT0 + round * 2 * kTtl;
    std::atomic<int> ready{0};
    Result<bool> got[2] = {Status(StatusCode::kInternal, "not run"),
                           Status(StatusCode::kInternal, "not run")};
    Store* stores[2] = {one.get(), two.get()};
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&, i] {
        ready.fetch_add(1);
        while (ready.load() < 2) std::this_thread::yield();  // both ask at once
        got[i] = stores[i]->AcquireLease("holder-" + std::to_string(i), now, kTtl);
      });
    }
    for (auto& t : threads) t.join();
    ASSERT_TRUE(got[0].ok()) << got[0].status().ToString();
    ASSERT_TRUE(got[1].ok()) << got[1].status().ToString();
    ASSERT_NE(*got[0], *got[1]) << "round " << round << ": exactly one wins";
    const int winner = *got[0] ? 0 : 1;
    auto lease = one->GetLease();
    ASSERT_TRUE(lease.ok() && lease->has_value());
    EXPECT_EQ((*lease)->holder, "holder-" + std::to_string(winner));
    EXPECT_EQ((*lease)->acquired_ms, now);
    if (round % 2 == 0) {
      ASSERT_TRUE(stores[winner]->ReleaseLease("holder-" + std::to_string(winner)).ok());
    }
  }
}

TEST_F(PostgresStoreTest, TwoConnectionsWritingAtOnceAllLandInOrder) {
  auto one = Open();
  auto two = Open();
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  constexpr int kBatches = 25;
  std::vector<std::thread> threads;
  Store* stores[2] = {one.get(), two.get()};
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      for (int b = 0; b < kBatches; ++b) {
        StateBatch batch;
        // Both write the same records (coalescing) and records of their own.
        batch.Enqueue(Item("hubspot", "shared-" + std::to_string(b % 5), {{"by", i}, {"b", b}}));
        batch.Enqueue(Item("hubspot", std::to_string(i) + "-" + std::to_string(b), {{"b", b}}));
        batch.AddStageTransition(
            StageTransition{"onboarding", "o1", "hubspot", "", std::to_string(i), kT0 + b});
        Status s = stores[i]->Apply(batch);
        EXPECT_TRUE(s.ok()) << s.ToString();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(*one->OutboxCounts(), (json{{"hubspot", 5 + 2 * kBatches}}));
  EXPECT_EQ(two->StageHistory("onboarding", "o1")->size(), 2u * kBatches);
  auto due = one->DueOutbox(OutboxFilter("hubspot", kT0, 0));
  ASSERT_TRUE(due.ok());
  for (size_t i = 1; i < due->size(); ++i) EXPECT_LT((*due)[i - 1].id, (*due)[i].id);
}

TEST_F(PostgresStoreTest, ALostConnectionIsUnavailableAndTheNextCallReconnects) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(*store->AcquireLease("w1", kT0, 60000));
  RawPg raw(*cluster_, db_);
  // Waits (up to 5 s) until the store's server process is gone.
  EXPECT_EQ(raw.Query("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
                      "FROM pg_stat_activity WHERE datname = current_database() "
                      "AND application_name = 'crmbridge'"),
            "1");

  auto lost = store->GetLease();
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.status().code(), StatusCode::kUnavailable) << lost.status().ToString();
  EXPECT_THAT(lost.status().message(), Not(HasSubstr(cluster_->password())));

  auto again = store->GetLease();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ((*again)->holder, "w1");
  StateBatch batch;
  batch.SetCursor("hubspot", "companies", "after-reconnect");
  EXPECT_TRUE(store->Apply(batch).ok()) << "statements are prepared again on the new connection";
  EXPECT_EQ(**store->GetCursor("hubspot", "companies"), "after-reconnect");
}

TEST_F(PostgresStoreTest, AWriterWaitingPastTheLockTimeoutIsUnavailableAndReadersDoNotWait) {
  PostgresStoreOptions options;
  options.lock_timeout_ms = 200;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  RawPg other(*cluster_, db_);  // another writer, in the middle of its transaction
  other.Exec("BEGIN");
  other.Exec("SELECT id FROM write_lock FOR UPDATE");

  StateBatch batch;
  batch.SetCursor("hubspot", "companies", "waited");
  Status s = store->Apply(batch);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("55P03"));
  auto cursor = store->GetCursor("hubspot", "companies");
  ASSERT_TRUE(cursor.ok()) << cursor.status().ToString();
  EXPECT_FALSE(cursor->has_value());

  other.Exec("COMMIT");
  EXPECT_TRUE(store->Apply(batch).ok());
  EXPECT_EQ(**store->GetCursor("hubspot", "companies"), "waited");
}

TEST_F(PostgresStoreTest, ALinkClashNamesTheUniqueConstraintAndItsSqlstate) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch first;
  first.PutLink(MakeLink("c1", "hubspot", "101"));
  ASSERT_TRUE(store->Apply(first).ok());
  StateBatch clash;
  clash.PutLink(MakeLink("c2", "hubspot", "101"));
  Status s = store->Apply(clash);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("op 1 of 1 (PutLink)"));
  EXPECT_THAT(s.message(), HasSubstr("links_system_entity_native_id_key"));
  EXPECT_THAT(s.message(), HasSubstr("SQLSTATE 23505"));
}

TEST_F(PostgresStoreTest, TextPostgresCannotHoldIsRefusedNotCutShort) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (const std::string& id : {std::string("c1\0tail", 7), std::string("c1 \xff")}) {
    StateBatch batch;
    batch.SetCursor("hubspot", "companies", "kept-out");
    batch.PutLink(MakeLink(id, "hubspot", "101"));
    Status s = store->Apply(batch);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("op 2 of 2 (PutLink)"));
    EXPECT_FALSE(store->GetCursor("hubspot", "companies")->has_value());
    EXPECT_FALSE(store->FindLink("company", "c1", "hubspot")->has_value());
  }
}

TEST_F(PostgresStoreTest, AnOutboxRowWithAnUnknownOpIsReportedNotGuessed) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StateBatch batch;
  batch.Enqueue(Item("portal", "c1", {{"name", "Acme"}}));
  ASSERT_TRUE(store->Apply(batch).ok());
  RawPg(*cluster_, db_).Exec("UPDATE outbox SET op = 'transmogrify'");
  auto due = store->DueOutbox(OutboxFilter("portal", kT0 + 1000000, 10));
  ASSERT_FALSE(due.ok());
  EXPECT_EQ(due.status().code(), StatusCode::kInternal);
  EXPECT_THAT(due.status().message(), HasSubstr("unknown op 'transmogrify'"));
}

// Schema 4 keeps 128-bit content hashes (32 hex digits). A database of schema 3 held 64 digits:
// upgraded, every link hash, queued payload hash and dead letter's payload hash is its first half,
// which is what HashJson gives now for the same value.
TEST_F(PostgresStoreTest, AnUpgradeKeepsTheFirstHalfOfEveryContentHash) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    StoreRecordsWithHashes(*store, std::string(32, 'e'));  // the second half schema 3 kept
  }
  RawPg(*cluster_, db_).Exec("DELETE FROM schema_version WHERE version >= 4");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->SchemaVersion(), PostgresSchemaVersionKnown());
  ExpectHashesOfToday(*store);
}

TEST_F(PostgresStoreTest, OpenStoreOpensAPostgresUrlAsAPostgresStore) {
  for (const char* scheme : {"postgresql://", "postgres://"}) {
    std::string url = cluster_->Url(db_);
    url.replace(0, url.find("://") + 3, scheme);
    auto store = OpenStore(url);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    StateBatch batch;
    batch.SetCursor("hubspot", "companies", scheme);
    ASSERT_TRUE((*store)->Apply(batch).ok());
    EXPECT_EQ(RawPg(*cluster_, db_).Query("SELECT cursor FROM cursors"), scheme);
  }
  auto refused = OpenStore(cluster_->Url(db_, "not-the-password-5d0b"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), Not(HasSubstr("not-the-password-5d0b")));
}

TEST_F(PostgresStoreTest, EachSchemaOfADatabaseIsAStoreOfItsOwn) {
  RawPg raw(*cluster_, db_);
  raw.Exec("CREATE SCHEMA tenant_a");
  raw.Exec("CREATE SCHEMA tenant_b");
  auto a = Open(cluster_->Url(db_) + "?options=-csearch_path%3Dtenant_a");
  auto b = Open(cluster_->Url(db_) + "?options=-csearch_path%3Dtenant_b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  StateBatch batch;
  batch.SetCursor("hubspot", "companies", "a's");
  ASSERT_TRUE(a->Apply(batch).ok());
  ASSERT_TRUE(*a->AcquireLease("worker-a", kT0, 60000));
  EXPECT_TRUE(*b->AcquireLease("worker-b", kT0, 60000)) << "each tenant has its own lease";
  EXPECT_FALSE(b->GetCursor("hubspot", "companies")->has_value());
  EXPECT_EQ(**a->GetCursor("hubspot", "companies"), "a's");
  EXPECT_EQ(raw.Query("SELECT to_regclass('tenant_a.links') IS NOT NULL"), "t");
  EXPECT_EQ(raw.Query("SELECT to_regclass('public.links') IS NULL"), "t");
}

}  // namespace
}  // namespace store_test
}  // namespace crmbridge
