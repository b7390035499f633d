// Dataverse JSON <-> NativeRecord, keys and URL encoding, as pure functions.
#include "connectors/dynamics365/dynamics365_codec.h"

#include <gtest/gtest.h>

namespace crmbridge::dynamics365 {
namespace {

using nlohmann::json;

TEST(Dynamics365CodecTest, PrimaryKeysOfTheEntitySets) {
  EXPECT_EQ(PrimaryKeyOf("accounts"), "accountid");
  EXPECT_EQ(PrimaryKeyOf("contacts"), "contactid");
  EXPECT_EQ(PrimaryKeyOf("opportunities"), "opportunityid");
  EXPECT_EQ(PrimaryKeyOf("annotations"), "annotationid");
  EXPECT_EQ(PrimaryKeyOf("tasks"), "activityid");
}

TEST(Dynamics365CodecTest, RowKeepsLookupsAndDropsAnnotations) {
  const json row = {{"@odata.etag", "W/\"915244\""},
                    {"opportunityid", "60c4e274-0d87-e711-80e5-00155db19e6d"},
                    {"name", "Onboarding"},
                    {"_parentaccountid_value", "11111111-0000-0000-0000-000000000000"},
                    {"_parentaccountid_value@OData.Community.Display.V1.FormattedValue", "Acme"},
                    {"crmb_externalid", "c-1"},
                    {"estimatedvalue", 1200.5},
                    {"modifiedon", "2026-01-01T00:00:00Z"}};
  auto r = RecordFromRow(row, "opportunityid", "crmb_externalid");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->id, "60c4e274-0d87-e711-80e5-00155db19e6d");
  // A lookup is given under its own name, as mappings name it.
  EXPECT_EQ(r->fields["parentaccountid"], "11111111-0000-0000-0000-000000000000");
  EXPECT_EQ(r->fields.count("_parentaccountid_value"), 0u);
  EXPECT_EQ(r->fields["estimatedvalue"], 1200.5);
  EXPECT_EQ(r->fields.count("@odata.etag"), 0u);
  EXPECT_EQ(r->fields.count("_parentaccountid_value@OData.Community.Display.V1.FormattedValue"),
            0u);
  EXPECT_EQ(r->key, "c-1");
  EXPECT_EQ(r->modified_ms, 1767225600000);
  EXPECT_FALSE(r->deleted);
}

TEST(Dynamics365CodecTest, DeletedEntityIsATombstone) {
  auto r = RecordFromRow(
      {{"@odata.context", "https://org/api/data/v9.0/$metadata#accounts/$deletedEntity"},
       {"id", "2e451703-c686-e711-80e5-00155db19e6d"},
       {"reason", "deleted"}},
      "accountid", "");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->deleted);
  EXPECT_EQ(r->id, "2e451703-c686-e711-80e5-00155db19e6d");
  EXPECT_EQ(RecordFromRow({{"@odata.context", "x#accounts/$deletedEntity"}}, "accountid", "")
                .status()
                .code(),
            StatusCode::kInvalidArgument)
      << "a tombstone without an id";
}

TEST(Dynamics365CodecTest, RowWithoutItsPrimaryKeyIsRejected) {
  EXPECT_EQ(RecordFromRow({{"name", "x"}}, "accountid", "").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(RecordFromRow(json::array(), "accountid", "").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(RecordFromRow({{"accountid", ""}}, "accountid", "").status().code(),
            StatusCode::kInvalidArgument)
      << "an empty primary key is none";
}

// A row the Merge action absorbed is read as a pointer to its master; a master, or a row
// never merged, is not.
TEST(Dynamics365CodecTest, AMergedRowPointsAtItsMaster) {
  const std::string master = "a18203fc-fada-45cd-b044-3c496e7c950a";
  auto absorbed = RecordFromRow({{"accountid", "b1"}, {"merged", true}, {"_masterid_value", master},
                                 {"statecode", 1}},
                                "accountid", "");
  ASSERT_TRUE(absorbed.ok());
  EXPECT_EQ(absorbed->merged_into, master);
  auto live = RecordFromRow({{"accountid", "b2"}, {"merged", false}, {"_masterid_value", nullptr}},
                            "accountid", "");
  ASSERT_TRUE(live.ok());
  EXPECT_TRUE(live->merged_into.empty());
}

TEST(Dynamics365CodecTest, AlternateKeyIsQuotedAndEncoded) {
  EXPECT_EQ(AlternateKeySegment("opportunities", "crmb_externalid", "O'Brien & Co"),
            "opportunities(crmb_externalid='O''Brien%20%26%20Co')");
  EXPECT_EQ(PercentEncode("a/b?c=d"), "a%2Fb%3Fc%3Dd");
  EXPECT_EQ(PercentEncode("\xC3\xA5"), "%C3%A5") << "UTF-8 bytes one by one";
}

TEST(Dynamics365CodecTest, ABatchAnswerThatBrokeOffGivesOnlyItsWholeParts) {
  const std::string type = "multipart/mixed; boundary=batchresponse_1";
  const std::string delimiter = "--batchresponse_1";
  const std::string first = delimiter +
                            "\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: "
                            "binary\r\n\r\nHTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n\r\n";
  const std::string second = delimiter +
                             "\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: "
                             "binary\r\n\r\nHTTP/1.1 201 Created\r\nContent-Type: "
                             "application/json\r\n\r\n{\"opportunityid\":\"o-2\"}\r\n";
  const std::string whole = first + second + delimiter + "--\r\n";
  auto all = ParseBatchResponse(type, whole);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].status, 204);
  EXPECT_EQ((*all)[1].status, 201);
  EXPECT_EQ((*all)[1].body, R"({"opportunityid":"o-2"})");

  // Broken off anywhere inside the second part (its status line "HTTP/1.1 2", half its row), the
  // second part is not there; the first is whole once the delimiter after it is.
  for (size_t cut = 0; cut < first.size() + second.size() + delimiter.size(); ++cut) {
    auto parts = ParseBatchResponse(type, whole.substr(0, cut));
    ASSERT_TRUE(parts.ok()) << cut << ": " << parts.status().ToString();
    const size_t want = cut >= first.size() + second.size() + delimiter.size() ? 2
                        : cut >= first.size() + delimiter.size()                 ? 1
                                                                                 : 0;
    ASSERT_EQ(parts->size(), want) << "cut after " << cut << " bytes";
    if (want > 0) {
      EXPECT_EQ((*parts)[0].status, 204);
    }
  }
  auto closed = ParseBatchResponse(type, whole.substr(0, first.size() + second.size() + delimiter.size()));
  ASSERT_TRUE(closed.ok());
  EXPECT_EQ(closed->size(), 2u) << "the delimiter after the second part makes it whole";
}

TEST(Dynamics365CodecTest, APartWhoseStatusIsNotOneIsRefusedNotTakenAsASuccess) {
  const std::string type = "multipart/mixed; boundary=b";
  for (const char* line : {"HTTP/1.1 2", "HTTP/1.1 2 OK", "HTTP/1.1 -204 No Content",
                           "HTTP/1.1 99999999999", "HTTP/1.1 2040 No Content", "HTTP/1.1 099",
                           "HTTP/1.1 600 Made Up", "204 No Content"}) {
    const std::string body = "--b\r\nContent-Type: application/http\r\n\r\n" + std::string(line) +
                             "\r\n\r\n{\"opportunityid\":\"o-1\"}\r\n--b--\r\n";
    auto parts = ParseBatchResponse(type, body);
    ASSERT_FALSE(parts.ok()) << line << " read as " << (*parts)[0].status;
    EXPECT_EQ(parts.status().message(),
              "a $batch part without an HTTP status line (HTTP/1.1 100..599)");
  }
  auto parts = ParseBatchResponse(
      type, "--b\r\n\r\nHTTP/1.1 204\r\n\r\n\r\n--b\r\n\r\nHTTP/1.1 412 Precondition Failed\r\n\r\n--b--");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].status, 204);
  EXPECT_EQ((*parts)[1].status, 412);
}

TEST(Dynamics365CodecTest, ParsesDataverseTimes) {
  EXPECT_EQ(ParseDataverseTime("2024-01-01T00:00:00Z"), 1704067200000);
  EXPECT_EQ(ParseDataverseTime("soon"), 0);
}

}  // namespace
}  // namespace crmbridge::dynamics365
