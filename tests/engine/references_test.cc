// References, read side: a reference read to a record crmbridge has closed (merged into another,
// or deleted everywhere) is the system behind, not a change, and is dropped from the read; any
// other reference stays. Over a mock store: no SQLite, and a StrictMock fails on any lookup a
// reference equal to what the record holds should not make.
#include "src/engine/references.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/engine/mock_store.h"
#include "tests/engine/plan_from_text.h"

namespace crmbridge {
namespace {

using ::testing::Return;
using ::testing::StrictMock;
using nlohmann::json;
using testing::MockStore;

constexpr char kMapping[] = R"(version: 1
entities:
  company:
    fields:
      name: {type: string, required: true}
  contact:
    fields:
      email: {type: string}
      company: {type: ref, entity: company}
systems:
  alpha:
    company:
      object: companies
      fields:
        name: {native: name}
    contact:
      object: contacts
      fields:
        email: {native: email}
        company: {native: companies}
)";

class ReferencesReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto plan = testing::PlanFromText(kMapping, {{"alpha", "hubspot"}});
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
    references_ = std::make_unique<References>(plan_.get(), &store_);
    held_.entity = "contact";
    held_.canonical_id = "p1";
    held_.fields = {{"email", "a@x.example"}, {"company", "survivor"}};
  }
  const SystemEntityMapping& Contacts() const { return *plan_->Find("alpha", "contact"); }
  void CompanyIs(const std::string& cid, int64_t deleted_ms) {
    Snapshot s;
    s.entity = "company";
    s.canonical_id = cid;
    s.fields = {{"name", cid}};
    s.deleted_ms = deleted_ms;
    EXPECT_CALL(store_, GetSnapshot("company", cid))
        .WillOnce(Return(Result<std::optional<Snapshot>>(std::optional<Snapshot>(s))));
  }
  MappedRecord Read(const std::string& company) {
    MappedRecord r;
    r.fields = {{"email", "a@x.example"}, {"company", company}};
    return r;
  }

  std::shared_ptr<const MappingPlan> plan_;
  StrictMock<MockStore> store_;
  RecordView view_{&store_};
  std::unique_ptr<References> references_;
  Snapshot held_;  // the contact as crmbridge holds it: its company is `survivor`
};

TEST_F(ReferencesReadTest, AReferenceToARecordMergedAwayIsDroppedAndTheFieldKeepsItsValue) {
  CompanyIs("absorbed", /*deleted_ms=*/1767225600000);
  MappedRecord read = Read("absorbed");
  ASSERT_TRUE(references_->DropReferencesToClosed(&view_, Contacts(), held_, &read).ok());
  EXPECT_EQ(read.fields, (json{{"email", "a@x.example"}})) << "the rest of the read stays";
}

TEST_F(ReferencesReadTest, AReferenceToAnotherOpenRecordIsAChangeAndStays) {
  CompanyIs("other", /*deleted_ms=*/0);
  MappedRecord read = Read("other");
  ASSERT_TRUE(references_->DropReferencesToClosed(&view_, Contacts(), held_, &read).ok());
  EXPECT_EQ(read.fields["company"], "other");
}

TEST_F(ReferencesReadTest, AReferenceToWhatTheRecordHoldsLooksNothingUp) {
  MappedRecord read = Read("survivor");
  ASSERT_TRUE(references_->DropReferencesToClosed(&view_, Contacts(), held_, &read).ok());
  EXPECT_EQ(read.fields["company"], "survivor");
}

TEST_F(ReferencesReadTest, AReferenceToARecordCrmbridgeDoesNotHoldStays) {
  EXPECT_CALL(store_, GetSnapshot("company", "unknown"))
      .WillOnce(Return(Result<std::optional<Snapshot>>(std::optional<Snapshot>())));
  MappedRecord read = Read("unknown");
  ASSERT_TRUE(references_->DropReferencesToClosed(&view_, Contacts(), held_, &read).ok());
  EXPECT_EQ(read.fields["company"], "unknown");
}

}  // namespace
}  // namespace crmbridge
