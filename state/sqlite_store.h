// The SQLite implementation of Store (state/store.h), internal to state/ and its tests. Everyone
// else opens a store with OpenSqliteStore(path) from store.h and sees only the Store interface.
//
// One connection per store, guarded by a mutex: every Store call is atomic and the store may be
// shared by threads. Several processes may open the same file (an admin command beside a daemon):
// SQLite's locking plus a busy timeout serialise them, and the lease keeps runs from overlapping.
//
// On-disk contract: the file and its -wal/-shm companions are mode 0600; WAL journal,
// synchronous=NORMAL, foreign keys on; PRAGMA user_version is the number of the last schema
// migration applied. The migrations themselves live in one ordered list in sqlite_store.cc.
#pragma once

#include <memory>
#include <string>

#include "src/core/clock.h"
#include "src/core/status.h"
#include "state/store.h"

namespace crmbridge {

struct SqliteStoreOptions {
  // Stamps the times the Store API does not pass in: cursor updates and dead letters. nullptr means
  // Clock::Real(). Not owned; must outlive the store.
  Clock* clock = nullptr;
  // How long a call waits for another connection's lock before failing with kUnavailable.
  int busy_timeout_ms = 5000;
};

// OpenSqliteStore(path) with options. Errors: kInvalidArgument for an empty path;
// kFailedPrecondition when the file cannot be created, opened or made 0600, is empty (a new store
// is made whole under another name and linked into place, so an empty file was truncated or
// replaced), is not a SQLite database, cannot use WAL, or has a schema version newer than
// SqliteSchemaVersionKnown().
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const SqliteStoreOptions& options);

// The schema version this build migrates to (the number of its last migration).
int SqliteSchemaVersionKnown();

}  // namespace crmbridge
