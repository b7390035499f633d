// A throwaway PostgreSQL server for the tests, never a system service: initdb into a temporary
// directory, a server on a free TCP port of 127.0.0.1 (and a unix socket in that directory),
// stopped and removed when the test binary exits. One per test binary, started by the first test
// that asks for it and shared by the rest, each test in a database of its own.
//
// Run as root, the server binaries run as the `postgres` system user (PostgreSQL refuses to run
// as root), in a directory chowned to it; run as anyone else, as that user. The superuser
// `crmbridge` logs in with a random password over TCP (scram-sha-256), so the tests exercise a
// real password login; the unix socket, used only for administration, trusts local users.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <sys/types.h>

#include "src/core/status.h"

typedef struct pg_conn PGconn;

namespace crmbridge {
namespace store_test {

class PostgresCluster {
 public:
  // The cluster shared by this binary's tests, started on first use. nullptr when there is none,
  // with the reason in `why`; `missing` tells that PostgreSQL's server binaries are not installed
  // (the caller skips) rather than that they failed (the caller fails).
  static PostgresCluster* Shared(std::string* why, bool* missing);

  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  // A fresh, empty database of its own (t_1, t_2, ...), and dropping it.
  Result<std::string> CreateDatabase();
  Status DropDatabase(const std::string& name);

  // The URL of database `db` over TCP, logging in with `password` (the right one by default).
  std::string Url(const std::string& db) const { return Url(db, password_); }
  std::string Url(const std::string& db, const std::string& password) const;
  const std::string& password() const { return password_; }
  int port() const { return port_; }

  // A superuser connection to `db` over the unix socket, for what the Store interface does not
  // expose (the schema_version table, tampering); the caller PQfinish()es it.
  PGconn* Admin(const std::string& db) const;

 private:
  PostgresCluster() = default;
  Status Start(const std::string& bindir);
  Status RunInitdb(const std::string& bindir);
  Status StartServer(const std::string& bindir);
  void Stop();
  std::string LogTail() const;

  std::string dir_;       // the temporary directory: data/, the socket, logs
  std::string password_;
  int port_ = 0;
  pid_t server_ = -1;
  std::mutex mu_;         // guards admin_ and next_db_
  PGconn* admin_ = nullptr;
  int next_db_ = 0;
};

}  // namespace store_test
}  // namespace crmbridge
