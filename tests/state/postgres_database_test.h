// A test fixture with a database of its own on the shared throwaway server (postgres_cluster.h),
// dropped after the test. Skips where PostgreSQL is not installed and fails where it would not
// start. A fixture deriving from it calls PostgresDatabaseTest::SetUp() first and returns when
// that skipped or failed.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "tests/state/postgres_cluster.h"

namespace crmbridge {
namespace store_test {

class PostgresDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    bool missing = false;
    cluster_ = PostgresCluster::Shared(&why, &missing);
    if (cluster_ == nullptr) {
      if (missing) GTEST_SKIP() << why;
      FAIL() << why;
    }
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
  // Whether SetUp() left the test to go on.
  bool Ready() const { return !IsSkipped() && !HasFailure() && !db_.empty(); }
  std::string Url() const { return cluster_->Url(db_); }

  PostgresCluster* cluster_ = nullptr;
  std::string db_;
};

}  // namespace store_test
}  // namespace crmbridge
