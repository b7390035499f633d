// Identity: by link, by the crmbridge key a record carries, by match key, else new; a second
// record with a linked match key is a duplicate, reported and never merged. Over a mock store.
#include "src/engine/identity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>


#include "src/engine/bootstrap.h"
#include "tests/engine/mock_store.h"
#include "tests/engine/plan_from_text.h"

namespace crmbridge {
namespace {

using ::testing::_;
using ::testing::Return;
using ::testing::StrictMock;
using nlohmann::json;
using testing::MockStore;

constexpr char kMapping[] = R"(version: 1
entities:
  contact:
    fields:
      email: {type: string}
      name: {type: string}
systems:
  alpha:
    contact:
      object: contacts
      match: [email]
      fields:
        email: {native: email}
        name: {native: name}
  beta:
    contact:
      object: contacts
      match: [email]
      fields:
        email: {native: emailaddress1}
        name: {native: fullname}
)";

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto plan = testing::PlanFromText(kMapping, {{"alpha", "hubspot"}, {"beta", "dynamics365"}});
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    plan_ = *plan;
  }
  const SystemEntityMapping& Beta() const { return *plan_->Find("beta", "contact"); }
  static NativeRecord Rec(const std::string& id, const std::string& key = "") {
    NativeRecord r;
    r.id = id;
    r.key = key;
    return r;
  }
  static MappedRecord Mapped(json fields) {
    MappedRecord m;
    m.fields = std::move(fields);
    return m;
  }
  // The page: beta's records `natives`, of which those in `linked` have links.
  void Page(std::vector<std::string> natives, std::map<std::string, std::string> linked = {}) {
    RecordStates r;
    for (const auto& [native, cid] : linked) {
      Link l;
      l.entity = "contact";
      l.canonical_id = cid;
      l.system = "beta";
      l.native_id = native;
      r.by_native[native] = l;
      r.links[cid] = {l};
    }
    EXPECT_CALL(store_, LoadRecords("contact", "beta", natives, _))
        .WillOnce(Return(Result<RecordStates>(r)));
    ASSERT_TRUE(view_.Load("beta", "contact", natives).ok());
  }

  std::shared_ptr<const MappingPlan> plan_;
  StrictMock<MockStore> store_;
  RecordView view_{&store_};
};

TEST_F(IdentityTest, ALinkedRecordIsItsLinksAndACarriedKeyIsCrmbridgesOwnCreate) {
  Page({"b1", "b2"}, {{"b1", "c1"}});
  Identity identity(plan_.get(), &view_);
  auto linked = identity.Resolve(Beta(), Rec("b1"), MappedRecord{});
  ASSERT_TRUE(linked.ok());
  EXPECT_EQ(linked->kind, Identified::Kind::kLinked);
  EXPECT_EQ(linked->canonical_id, "c1");
  auto keyed = identity.Resolve(Beta(), Rec("b2", "c9"), MappedRecord{});
  ASSERT_TRUE(keyed.ok());
  EXPECT_EQ(keyed->kind, Identified::Kind::kKeyed) << "created by crmbridge, link lost";
  EXPECT_EQ(keyed->canonical_id, "c9");
}

TEST_F(IdentityTest, AMatchKeyLinksTheSameCustomerAndASecondRecordWithItIsADuplicate) {
  Page({"b1", "b2"});
  // Anna came from alpha first; beta has no record of her yet.
  EXPECT_CALL(store_, FindByMatchKey("contact", "email=anna@acme.se"))
      .WillRepeatedly(Return(Result<std::optional<std::string>>(std::optional<std::string>("c1"))));
  EXPECT_CALL(store_, FindLink("contact", "c1", "beta"))
      .WillOnce(Return(Result<std::optional<Link>>(std::optional<Link>())));
  Identity identity(plan_.get(), &view_);
  auto first = identity.Resolve(Beta(), Rec("b1"), Mapped({{"email", "  Anna@ACME.se "}}));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->kind, Identified::Kind::kMatched);
  EXPECT_EQ(first->canonical_id, "c1");

  // b1 is now linked to c1 (pending, as the page commits it): b2 with the same email is not Anna.
  Link l;
  l.entity = "contact";
  l.canonical_id = "c1";
  l.system = "beta";
  l.native_id = "b1";
  view_.PutLink(l);
  auto second = identity.Resolve(Beta(), Rec("b2"), Mapped({{"email", "anna@acme.se"}}));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->kind, Identified::Kind::kDuplicate);
  EXPECT_TRUE(second->canonical_id.empty());
  EXPECT_NE(second->duplicate_of.find("b1"), std::string::npos) << second->duplicate_of;
}

TEST_F(IdentityTest, ARecordSeenForTheFirstTimeGetsANewIdWhoseStateNeedsNoLookup) {
  Page({"b3"});
  EXPECT_CALL(store_, FindByMatchKey("contact", "email=new@acme.se"))
      .WillOnce(Return(Result<std::optional<std::string>>(std::optional<std::string>())));
  Identity identity(plan_.get(), &view_);
  auto id = identity.Resolve(Beta(), Rec("b3"), Mapped({{"email", "new@acme.se"}}));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->kind, Identified::Kind::kNew);
  EXPECT_EQ(id->canonical_id.size(), 36u);
  // The strict mock fails on any store call: none is made for a new record's link or snapshot.
  EXPECT_FALSE(view_.LinkOf(RecordKey{"contact", id->canonical_id}, "alpha")->has_value());
  EXPECT_FALSE(view_.SnapshotOf(RecordKey{"contact", id->canonical_id})->has_value());
}

TEST_F(IdentityTest, MatchKeysAreTrimmedAndCaseFoldedAndEmptyWhenAFieldIsMissing) {
  EXPECT_EQ(Identity::MatchKey({"email"}, {{"email", " Anna@Acme.SE\t"}}), "email=anna@acme.se");
  EXPECT_EQ(Identity::MatchKey({"email", "name"}, {{"email", "a@b.se"}, {"name", "Anna"}}),
            "email=a@b.se&name=anna");
  EXPECT_EQ(Identity::MatchKey({"email"}, {{"email", "   "}}), "");
  EXPECT_EQ(Identity::MatchKey({"email"}, {{"email", nullptr}}), "");
  EXPECT_EQ(Identity::MatchKey({"email"}, json::object()), "");
}

TEST_F(IdentityTest, EachDeclaredMatchKeyIsRecordedOnceTheFirstRecordKeepsIt) {
  Identity identity(plan_.get(), &view_);
  StateBatch batch;
  identity.PutMatchKeys("contact", "c1", {{"email", "a@b.se"}}, &batch);
  identity.PutMatchKeys("contact", "c2", {{"email", "A@B.se"}}, &batch);
  ASSERT_EQ(batch.ops().size(), 1u) << "alpha and beta declare the same key; c2's is c1's";
  EXPECT_EQ(batch.ops()[0].kind, StateBatch::Op::Kind::kPutMatchKey);
}

}  // namespace
}  // namespace crmbridge
