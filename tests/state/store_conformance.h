// The Store conformance suite: the behaviour every backend of state/store.h must have, run
// against each backend by value-parameterized GoogleTest (store_conformance_test.cc). What only
// one backend does (SQLite's WAL mode, file mode, migrations) is tested beside it instead
// (sqlite_store_test.cc).
//
// How a backend joins:
//   1. A StoreUnderTest subclass: its constructor makes a fresh, empty store location (SQLite: a
//      temporary directory; a server: a database or schema of its own) and its destructor removes
//      it; Connect() opens a connection to that location, stamping times with the clock given to
//      the factory.
//   2. One line, in store_conformance_test.cc beside the others or in the backend's own test file
//      linked into the same binary:
//        INSTANTIATE_TEST_SUITE_P(
//            Postgres, StoreConformanceTest,
//            ::testing::Values(StoreBackend{"postgres", &PostgresUnderTest::Make}));
// Every TEST_P of the suite then runs against it as Postgres/StoreConformanceTest.<name>/0.
// A factory may GTEST_SKIP() (and return nullptr) when its server is not installed on this
// machine; any other failure to make a location fails the test.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "src/core/clock.h"
#include "src/core/status.h"
#include "state/store.h"

namespace crmbridge {
namespace store_test {

// One test's store location.
class StoreUnderTest {
 public:
  virtual ~StoreUnderTest() = default;
  // A new connection to this location. The first finds an empty store; every later one, whether
  // or not earlier connections are still open, finds what they committed (reopening, and two
  // connections at once, as two processes on one store).
  virtual Result<std::unique_ptr<Store>> Connect() = 0;
};

// A backend under test: its name and the factory of a fresh location per test. `clock` stamps
// the times the Store API does not pass in (cursor updates, dead letters); it outlives every
// store connected.
struct StoreBackend {
  const char* name;
  std::unique_ptr<StoreUnderTest> (*make)(Clock* clock);
};

inline void PrintTo(const StoreBackend& backend, std::ostream* os) { *os << backend.name; }

class StoreConformanceTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override {
    target_ = GetParam().make(&clock_);
    // A backend whose server is not installed here skips, saying so (GTEST_SKIP in its factory).
    if (IsSkipped()) return;
    ASSERT_NE(target_, nullptr) << GetParam().name << ": no store location";
  }

  // The first call opens a fresh store; later calls reopen the same one.
  std::unique_ptr<Store> Open() {
    auto store = target_->Connect();
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return nullptr;
    return std::move(store).value();
  }

  // The ids of every due item for `system`, oldest first.
  std::vector<int64_t> DueIds(Store* store, const std::string& system, int64_t now_ms) {
    std::vector<int64_t> ids;
    auto due = store->DueOutbox(OutboxFilter(system, now_ms, 0));
    EXPECT_TRUE(due.ok()) << due.status().ToString();
    if (due.ok())
      for (const OutboxItem& item : *due) ids.push_back(item.id);
    return ids;
  }

  FakeClock clock_;  // declared first: outlives the location and every store
  std::unique_ptr<StoreUnderTest> target_;
};

}  // namespace store_test
}  // namespace crmbridge
