// The PostgreSQL implementation of Store (state/store.h), internal to state/ and its tests: the
// same contract as the SQLite store and the same conformance suite, for state kept on a database
// server that several hosts can reach.
//
// How it differs from SQLite in operation:
//   - Connections: one libpq connection per store, guarded by a mutex (every Store call is atomic
//     and the store may be shared by threads). Every process opening the same database has its
//     own connection. A connection lost mid-call fails that call with kUnavailable; the next call
//     reconnects.
//   - Locking: Apply() and ReplayDeadLetter() each run in one transaction (READ COMMITTED) that
//     first takes the store's write lock, a row lock on `write_lock`, so writing transactions
//     follow one another as SQLite's do and each sees all that the ones before it committed.
//     Readers never wait for writers; LoadRecords reads one snapshot (REPEATABLE READ, read only).
//     A call that waits for a lock longer than lock_timeout_ms fails with kUnavailable, as a
//     SQLite call does after its busy timeout; so do deadlocks and serialization failures.
//     AcquireLease is one INSERT ... ON CONFLICT statement: of two connections asking at once,
//     one gets the lease.
//   - Where: the tables live in the connection's current schema (its search_path, e.g.
//     `?options=-csearch_path%3Dtenant1`), versioned by `schema_version`, one row per migration
//     applied, migrations serialised across processes by an advisory lock.
//   - Values: text keys are COLLATE "C", so orders by canonical id compare bytes as SQLite does;
//     JSON columns are of type `json` (checked, kept as written). PostgreSQL text cannot hold a
//     NUL byte or invalid UTF-8: such a value is refused with kInvalidArgument, never cut short.
//   - Secrets: the password in the URL never appears in an error or a log line; the URL is shown
//     without it (RedactPostgresUrl), and the password is registered with the global Redactor.
#pragma once

#include <memory>
#include <string>

#include "src/core/clock.h"
#include "src/core/status.h"
#include "state/store.h"

namespace crmbridge {

struct PostgresStoreOptions {
  // Stamps the times the Store API does not pass in: cursor updates and dead letters. nullptr
  // means Clock::Real(). Not owned; must outlive the store.
  Clock* clock = nullptr;
  // How long a call waits for a lock held by another connection before failing with
  // kUnavailable (PostgreSQL's lock_timeout).
  int lock_timeout_ms = 5000;
  // How long opening (or reopening) the connection may take, unless `url` says otherwise.
  int connect_timeout_s = 10;
  // The schema the store's tables live in, created when missing: one tenant's state beside the
  // others' in one database (state/tenant_registry.h). Empty: the connection's search_path. A
  // lowercase SQL identifier (letters, digits, _), else OpenPostgresStore refuses it.
  std::string schema;
  // Fencing (state/tenant_registry.h). When `fence.tenant` is set, every writing transaction first
  // reads that tenant's epoch in the registry of this database, under a share lock held to its
  // commit, and is refused (kFailedPrecondition, nothing written) unless it is still `epoch`: a
  // worker paused past its lease can never write over the tenant's next holder. AcquireLease then
  // answers by the epoch alone: the tenant's claim already makes one worker its holder.
  struct Fence {
    std::string tenant;
    int64_t epoch = 0;
  } fence;
  // When > 0, the server ends this connection's transaction once it has sat idle in it this long
  // (idle_in_transaction_session_timeout): a worker paused mid-transaction releases its share
  // lock on the tenant's registry row, so that another worker can take the tenant over.
  int idle_in_transaction_timeout_ms = 0;
};

// Opens a store in the PostgreSQL database `url` names, a libpq connection string
// ("postgresql://user:password@host:port/db" or "host=... dbname=..."), and applies the schema
// migrations it lacks. Errors: kInvalidArgument for an empty or malformed url;
// kFailedPrecondition when the server cannot be reached, refuses the login, or holds a schema
// newer than PostgresSchemaVersionKnown(), each with the reason and the url without its password.
Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                 const PostgresStoreOptions& options);
Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url);

// The schema version this build migrates to (the number of its last migration).
int PostgresSchemaVersionKnown();

// Whether `location` is a PostgreSQL URL ("postgresql://..." or "postgres://...").
bool IsPostgresUrl(const std::string& location);

// Whether the connection string `url` holds a password (user:password@ or password=).
bool PostgresUrlHasPassword(const std::string& url);

// `url` as errors and logs show it: a postgresql:// URL without its user info and credential
// parameters (RedactUrlForLog), a "key=value" string as its host, port, database and user only.
std::string RedactPostgresUrl(const std::string& url);

}  // namespace crmbridge
