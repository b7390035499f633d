// throwaway_postgres: a PostgreSQL server for the end-to-end scripts, as the C++ tests have one
// (tests/state/postgres_cluster.h): initdb into a temporary folder, a free port, never a system
// service. Prints the URL of a fresh database (its password in it) on stdout, then serves until
// SIGTERM or SIGINT, and removes everything on the way out.
//
// Exit codes: 0 after a stop signal; 77 when PostgreSQL's server binaries are not installed (the
// script skips, as ctest's SKIP_RETURN_CODE); 1 when the server did not start.
#include <csignal>
#include <iostream>
#include <string>

#include <unistd.h>

#include "tests/state/postgres_cluster.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
extern "C" void OnStop(int) { g_stop = 1; }
}  // namespace

int main() {
  std::string why;
  bool missing = false;
  auto* cluster = crmbridge::store_test::PostgresCluster::Shared(&why, &missing);
  if (cluster == nullptr) {
    std::cerr << "throwaway_postgres: " << why << "\n";
    return missing ? 77 : 1;
  }
  auto db = cluster->CreateDatabase();
  if (!db.ok()) {
    std::cerr << "throwaway_postgres: " << db.status().ToString() << "\n";
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = OnStop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::cout << cluster->Url(*db) << std::endl;
  while (!g_stop) pause();
  return 0;  // the cluster stops and its folder goes with the static that holds it
}
