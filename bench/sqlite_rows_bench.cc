// What one row write costs in SQLite on this machine, set up as the state store sets it up (WAL,
// synchronous=NORMAL, a 16 MB page cache, prepared statements, one transaction per 200 records):
// the floor under the engine's cost per new record, which writes several rows for each. It
// measures SQLite itself, so it holds SQL of its own; crmbridge's SQL stays in state/.
//
//   crmbridge_bench_sqlite_rows [--records N] [--rows-per-record 1,7,10]
//
// For each count K, N records are written as K rows each, one row per table, every table keyed
// like a link (entity, a time-ordered canonical id, system) and holding a 150-byte JSON value, in
// key order as crmbridge mints its ids. Reported per K: CPU time (user + system) per record and
// per row. Exits 1 when a table does not end with N rows (ctest runs it with --records 200).
#include <sqlite3.h>

#include <cinttypes>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"

namespace crmbridge::bench {
namespace {

constexpr const char* kValue =
    R"({"description":"Signed contract received from Dealbuilder; 5 licences.",)"
    R"("priority":"low","stage":"new","title":"SE Bygg Stockholm 1 AB – onboarding"})";

bool Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) == SQLITE_OK) return true;
  std::fprintf(stderr, "%s: %s\n", sql.c_str(), err ? err : "?");
  sqlite3_free(err);
  return false;
}

// Writes n records of k rows each into a fresh file; returns the CPU seconds, or -1 on failure.
double WriteRows(const std::string& path, int64_t n, int k, Checks* checks) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return -1;
  bool ok = Exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                     "PRAGMA cache_size=-16384;");
  std::vector<sqlite3_stmt*> inserts(static_cast<size_t>(k), nullptr);
  for (int t = 0; ok && t < k; ++t) {
    const std::string table = "t" + std::to_string(t);
    ok = Exec(db, "CREATE TABLE " + table +
                      " (entity TEXT NOT NULL, canonical_id TEXT NOT NULL, system TEXT NOT NULL, "
                      "value TEXT NOT NULL, updated_ms INTEGER NOT NULL, "
                      "PRIMARY KEY (entity, canonical_id, system)) WITHOUT ROWID") &&
         sqlite3_prepare_v2(db, ("INSERT INTO " + table + " VALUES (?1, ?2, ?3, ?4, ?5)").c_str(),
                            -1, &inserts[static_cast<size_t>(t)], nullptr) == SQLITE_OK;
  }
  const Sample before = Sample::Now();
  char cid[64];
  for (int64_t i = 0; ok && i < n; i += 200) {
    ok = Exec(db, "BEGIN");
    for (int64_t r = i; ok && r < std::min<int64_t>(n, i + 200); ++r) {
      // A UUIDv7-shaped id: the counter in front, so ids arrive in key order.
      std::snprintf(cid, sizeof cid, "%08" PRIx64 "-deb7-7000-a182-d737426a1281", r);
      for (sqlite3_stmt* st : inserts) {
        sqlite3_bind_text(st, 1, "onboarding", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, cid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, "hubspot", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, kValue, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, r);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_reset(st);
        if (!ok) std::fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db));
      }
    }
    ok = ok && Exec(db, "COMMIT");
  }
  const Sample after = Sample::Now();
  for (sqlite3_stmt* st : inserts) sqlite3_finalize(st);
  for (int t = 0; ok && t < k; ++t) {
    sqlite3_stmt* count = nullptr;
    sqlite3_prepare_v2(db, ("SELECT count(*) FROM t" + std::to_string(t)).c_str(), -1, &count,
                       nullptr);
    const int64_t rows = sqlite3_step(count) == SQLITE_ROW ? sqlite3_column_int64(count, 0) : -1;
    sqlite3_finalize(count);
    checks->Expect(rows == n, "table t%d holds %" PRId64 " rows, not %" PRId64, t, rows, n);
  }
  sqlite3_close(db);
  return ok ? after.cpu_s() - before.cpu_s() : -1;
}

int Main(int argc, char** argv) {
  Flags flags(argc, argv,
              "What one row write costs in SQLite, set up as crmbridge's state store.");
  const int64_t n = flags.Int("records", 30000, "records written for each count of rows");
  const std::string list_text =
      flags.Text("rows-per-record", "1,7,10", "the counts of rows per record to measure",
                 "K,K,...");
  if (const int rc = flags.Done(); rc >= 0) return rc;
  std::vector<int> counts;
  {
    std::stringstream list(list_text);
    for (std::string item; std::getline(list, item, ',');) {
      char* end = nullptr;
      const long k = std::strtol(item.c_str(), &end, 10);
      if (item.empty() || *end != '\0' || k < 1 || k > 100) {
        std::fprintf(stderr, "--rows-per-record takes counts from 1 to 100, not '%s'\n",
                     item.c_str());
        return 2;
      }
      counts.push_back(static_cast<int>(k));
    }
  }
  TempDir dir("crmbridge-bench-sqlite-rows");
  std::printf("SQLite row writes, set up as crmbridge's state store\n");
  std::printf("  reproduce: %s\n", CommandLine(argc, argv).c_str());
  std::printf("  machine:   %s\n", Machine().c_str());
  std::printf("  records:   %" PRId64 ", 200 per transaction, SQLite %s\n\n", n, sqlite3_libversion());
  Checks checks;
  for (int k : counts) {
    const double cpu = WriteRows(dir.path() + "/rows-" + std::to_string(k) + ".db", n, k, &checks);
    checks.Expect(cpu >= 0, "writing %d row(s) per record failed", k);
    if (cpu < 0) continue;
    std::printf("%2d row(s) per record: CPU %.2f s, %.1f us per record, %.2f us per row\n", k, cpu,
                cpu * 1e6 / static_cast<double>(n), cpu * 1e6 / static_cast<double>(n * k));
    std::printf("JSON {\"records\":%" PRId64 ",\"rows_per_record\":%d,\"cpu_s\":%.3f,"
                "\"us_per_row\":%.3f}\n",
                n, k, cpu, cpu * 1e6 / static_cast<double>(n * k));
  }
  return checks.ExitCode();
}

}  // namespace
}  // namespace crmbridge::bench

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  return crmbridge::bench::Main(argc, argv);
}
