// The HubSpot mock is the ground truth of the connector tests: its paging, search cap, batch
// rules, unique values, auth and limits must be HubSpot's.
#include "mocks/hubspot/hubspot_mock.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <set>
#include <string>
#include <vector>

namespace crmbridge::mocks {
namespace {

using nlohmann::json;

class HubSpotMockTest : public ::testing::Test {
 protected:
  void StartMock(bool limits = false) {
    HubSpotMock::Options o;
    o.tokens = {"pat-t"};
    o.enforce_limits = limits;
    o.clock = &clock_;
    mock_ = std::make_unique<HubSpotMock>(o);
    ASSERT_TRUE(mock_->Start().ok());
    client_ = std::make_unique<httplib::Client>(mock_->base_url());
  }
  void TearDown() override {
    if (mock_) mock_->Stop();
  }
  std::pair<int, json> Call(const std::string& method, const std::string& path, const json& body = json()) {
    httplib::Headers h = {{"Authorization", "Bearer pat-t"}};
    httplib::Result r = method == "GET"    ? client_->Get(path.c_str(), h)
                        : method == "PUT"   ? client_->Put(path.c_str(), h, body.dump(), "application/json")
                        : method == "PATCH" ? client_->Patch(path.c_str(), h, body.dump(), "application/json")
                        : method == "DELETE" ? client_->Delete(path.c_str(), h)
                                            : client_->Post(path.c_str(), h, body.dump(), "application/json");
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  json Ticket(const std::string& subject) {
    return {{"properties", {{"subject", subject}, {"hs_pipeline", "0"}, {"hs_pipeline_stage", "1"}}}};
  }

  FakeClock clock_;
  std::unique_ptr<HubSpotMock> mock_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HubSpotMockTest, ListPagesToTheEndWithoutDuplicates) {
  StartMock();
  mock_->Seed(3, 30);
  std::set<std::string> seen;
  std::string after;
  int pages = 0;
  while (true) {
    auto [status, body] = Call("GET", "/crm/v3/objects/contacts?limit=7" + (after.empty() ? "" : "&after=" + after));
    ASSERT_EQ(status, 200);
    for (const json& r : body["results"]) EXPECT_TRUE(seen.insert(r["id"]).second);
    ++pages;
    if (!body.contains("paging")) break;
    after = body["paging"]["next"]["after"];
  }
  EXPECT_GE(seen.size(), 30u);
  EXPECT_EQ(pages, static_cast<int>((seen.size() + 6) / 7));
}

TEST_F(HubSpotMockTest, ListTakesRepeatedAndCommaSeparatedProperties) {
  StartMock();
  ASSERT_EQ(Call("POST", "/crm/v3/objects/tickets", Ticket("T")).first, 201);
  for (const char* query : {"properties=subject&properties=hs_pipeline_stage", "properties=subject,hs_pipeline_stage"}) {
    auto [status, body] = Call("GET", std::string("/crm/v3/objects/tickets?") + query);
    ASSERT_EQ(status, 200);
    ASSERT_EQ(body["results"].size(), 1u);
    EXPECT_EQ(body["results"][0]["properties"]["subject"], "T") << query;
    EXPECT_EQ(body["results"][0]["properties"]["hs_pipeline_stage"], "1") << query;
  }
}

TEST_F(HubSpotMockTest, SearchFiltersSortsAndStopsAtTheCap) {
  StartMock();
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(std::chrono::milliseconds(10));
    ASSERT_EQ(Call("POST", "/crm/v3/objects/tickets", Ticket("T" + std::to_string(i))).first, 201);
  }
  json q = {{"filterGroups", {{{"filters", {{{"propertyName", "subject"}, {"operator", "IN"}, {"values", {"t1", "t3", "t4"}}}}}}}},
            {"sorts", {{{"propertyName", "hs_lastmodifieddate"}, {"direction", "DESCENDING"}}}},
            {"properties", {"subject"}},
            {"limit", 2}};
  auto [status, body] = Call("POST", "/crm/v3/objects/tickets/search", q);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(body["total"], 3);
  ASSERT_EQ(body["results"].size(), 2u);
  EXPECT_EQ(body["results"][0]["properties"]["subject"], "T4");
  EXPECT_EQ(body["paging"]["next"]["after"], "2");
  q["limit"] = 201;
  EXPECT_EQ(Call("POST", "/crm/v3/objects/tickets/search", q).first, 400);
  q["limit"] = 10;
  q["after"] = "10000";
  auto [capped, err] = Call("POST", "/crm/v3/objects/tickets/search", q);
  EXPECT_EQ(capped, 400);
  EXPECT_EQ(err["category"], "VALIDATION_ERROR");
  json many = {{"filterGroups", {{{"filters", json::array()}}}}};
  for (int i = 0; i < 7; ++i)
    many["filterGroups"][0]["filters"].push_back({{"propertyName", "subject"}, {"operator", "HAS_PROPERTY"}});
  EXPECT_EQ(Call("POST", "/crm/v3/objects/tickets/search", many).first, 400) << "6 filters per group";
}

// Searches on the last-modified property are served from an index kept on every write; they must
// answer exactly as a scan of every object does. The same filters in two identical filter groups
// (an OR of a group with itself) take the scan, so each query is checked against it.
TEST_F(HubSpotMockTest, SearchByModifiedAnswersAsAScanAndSeesEveryWrite) {
  StartMock();
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    // Pairs share a timestamp, so ties are ordered by id.
    if (i % 2 == 0) clock_.Advance(std::chrono::milliseconds(10));
    json t = Ticket("T" + std::to_string(i));
    if (i % 3 == 0) t["properties"]["hs_pipeline_stage"] = "2";
    auto [status, body] = Call("POST", "/crm/v3/objects/tickets", t);
    ASSERT_EQ(status, 201);
    ids.push_back(body["id"]);
  }
  const int64_t t0 = clock_.NowMillis() - 50;  // the first timestamp
  auto search = [&](const json& filters, const json& sort, int limit, int after) {
    json q = {{"filterGroups", {{{"filters", filters}}}}, {"properties", {"subject"}},
              {"limit", limit}, {"after", std::to_string(after)}};
    if (!sort.is_null()) q["sorts"] = json::array({sort});
    auto fast = Call("POST", "/crm/v3/objects/tickets/search", q);
    q["filterGroups"].push_back(q["filterGroups"][0]);
    auto scan = Call("POST", "/crm/v3/objects/tickets/search", q);
    EXPECT_EQ(fast.first, 200);
    EXPECT_EQ(fast, scan) << q.dump();
    return fast.second;
  };
  auto subjects = [](const json& body) {
    std::vector<std::string> out;
    for (const json& r : body["results"]) out.push_back(r["properties"]["subject"]);
    return out;
  };
  const json asc = {{"propertyName", "hs_lastmodifieddate"}, {"direction", "ASCENDING"}};
  const json desc = {{"propertyName", "hs_lastmodifieddate"}, {"direction", "DESCENDING"}};
  const json by_id = {{"propertyName", "hs_object_id"}, {"direction", "ASCENDING"}};
  const json by_subject = {{"propertyName", "subject"}, {"direction", "DESCENDING"}};
  auto mod = [](const char* op, int64_t ms) {
    return json{{"propertyName", "hs_lastmodifieddate"}, {"operator", op}, {"value", std::to_string(ms)}};
  };
  const json pipeline = {{"propertyName", "hs_pipeline"}, {"operator", "EQ"}, {"value", "0"}};
  const json stage2 = {{"propertyName", "hs_pipeline_stage"}, {"operator", "EQ"}, {"value", "2"}};

  // What the connector sends: the pipeline, GTE a time, sorted by it; paged.
  json page1 = search(json::array({pipeline, mod("GTE", t0 + 20)}), asc, 3, 0);
  EXPECT_EQ(page1["total"], 8);
  EXPECT_EQ(subjects(page1), (std::vector<std::string>{"T4", "T5", "T6"}));
  EXPECT_EQ(page1["paging"]["next"]["after"], "3");
  json page2 = search(json::array({pipeline, mod("GTE", t0 + 20)}), asc, 3, 3);
  EXPECT_EQ(subjects(page2), (std::vector<std::string>{"T7", "T8", "T9"}));
  // A tie paged by id, as the connector does for a timestamp that fills a window.
  const json id_after = {{"propertyName", "hs_object_id"}, {"operator", "GT"}, {"value", ids[6]}};
  json tie = search(json::array({pipeline, mod("EQ", t0 + 30), id_after}), by_id, 10, 0);
  EXPECT_EQ(subjects(tie), (std::vector<std::string>{"T7"}));
  // Every bound, other sorts, another filter, no sort at all: the same as a scan.
  for (const json& sort : {asc, desc, by_id, by_subject, json()}) {
    search(json::array({mod("GT", t0 + 10)}), sort, 5, 0);
    search(json::array({mod("GT", t0 + 10)}), sort, 5, 5);
    search(json::array({mod("LT", t0 + 30), stage2}), sort, 10, 0);
    search(json::array({mod("LTE", t0 + 30)}), sort, 10, 0);
    json between = mod("BETWEEN", t0 + 10);
    between["highValue"] = std::to_string(t0 + 40);
    search(json::array({between}), sort, 10, 0);
    search(json::array({mod("GTE", t0 + 20), mod("LTE", t0 + 20)}), sort, 10, 0);
    search(json::array({mod("GTE", t0 + 1000)}), sort, 10, 0);
  }

  // An update moves a ticket to the end, and the next page of a search already begun sees it.
  clock_.Advance(std::chrono::milliseconds(10));
  ASSERT_EQ(Call("PATCH", "/crm/v3/objects/tickets/" + ids[4], {{"properties", {{"subject", "T4b"}}}}).first, 200);
  const json window = json::array({pipeline, mod("GTE", t0 + 20)});
  EXPECT_EQ(subjects(search(window, asc, 3, 3)),
            (std::vector<std::string>{"T8", "T9", "T10"}));
  json moved = search(window, asc, 3, 6);
  EXPECT_EQ(subjects(moved), (std::vector<std::string>{"T11", "T4b"}));
  EXPECT_FALSE(moved.contains("paging"));
  // An archived ticket is no longer found; a new one is.
  ASSERT_EQ(Call("DELETE", "/crm/v3/objects/tickets/" + ids[11]).first, 204);
  ASSERT_EQ(Call("POST", "/crm/v3/objects/tickets/batch/archive", {{"inputs", {{{"id", ids[10]}}}}}).first, 204);
  ASSERT_EQ(Call("POST", "/crm/v3/objects/tickets", Ticket("T12")).first, 201);
  json after_writes = search(window, asc, 10, 0);
  EXPECT_EQ(after_writes["total"], 7);
  EXPECT_EQ(subjects(after_writes), (std::vector<std::string>{"T5", "T6", "T7", "T8", "T9", "T4b", "T12"}));
}

// Unique values are looked up through an index: it must follow every change of a value and every
// archive, as a scan would.
// A property as HubSpot's OpenAPI document has it: a create needs PropertyCreate's required
// fields, and the answer (and a read) carries every field Property requires.
TEST_F(HubSpotMockTest, PropertiesHaveTheShapesOfTheOpenApiDocument) {
  StartMock();
  json prop = {{"name", "crmbridge_id"}, {"label", "crmbridge id"}, {"type", "string"},
               {"fieldType", "text"}, {"groupName", "ticketinformation"},
               {"description", "Key crmbridge writes"}, {"hasUniqueValue", true}};
  for (const char* required : {"name", "label", "type", "fieldType", "groupName"}) {
    json partial = prop;
    partial.erase(required);
    auto [status, body] = Call("POST", "/crm/v3/properties/tickets", partial);
    EXPECT_EQ(status, 400) << "without " << required;
    EXPECT_NE(body.value("message", "").find(required), std::string::npos) << body.dump();
  }
  auto [status, created] = Call("POST", "/crm/v3/properties/tickets", prop);
  ASSERT_EQ(status, 201) << created.dump();
  auto [read_status, read] = Call("GET", "/crm/v3/properties/tickets/crmbridge_id");
  ASSERT_EQ(read_status, 200);
  auto [list_status, list] = Call("GET", "/crm/v3/properties/tickets");
  ASSERT_EQ(list_status, 200);
  for (const json& p : {created, read, list["results"][0]}) {
    for (const char* field : {"description", "fieldType", "groupName", "label", "name", "options", "type"})
      EXPECT_TRUE(p.contains(field)) << field << " missing from " << p.dump();
    EXPECT_TRUE(p["options"].is_array());
  }
  EXPECT_EQ(created["description"], "Key crmbridge writes");
  EXPECT_EQ(created["label"], "crmbridge id");
  EXPECT_EQ(read, created);
}

TEST_F(HubSpotMockTest, UniqueValuesFollowUpdatesAndArchives) {
  StartMock();
  json prop = {{"name", "crmbridge_id"}, {"label", "k"}, {"type", "string"}, {"fieldType", "text"},
               {"groupName", "ticketinformation"}, {"hasUniqueValue", true}};
  ASSERT_EQ(Call("POST", "/crm/v3/properties/tickets", prop).first, 201);
  auto with_key = [&](const std::string& subject, const std::string& key) {
    json t = Ticket(subject);
    t["properties"]["crmbridge_id"] = key;
    return Call("POST", "/crm/v3/objects/tickets", t);
  };
  auto lookup = [&](const std::string& key) {
    return Call("GET", "/crm/v3/objects/tickets/" + key + "?idProperty=crmbridge_id&properties=subject");
  };
  auto [s1, a] = with_key("A", "K1");
  ASSERT_EQ(s1, 201);
  const std::string a_id = a["id"];
  EXPECT_EQ(with_key("dup", "K1").first, 409);
  // A's key changes: K1 is free again, K2 is taken.
  ASSERT_EQ(Call("PATCH", "/crm/v3/objects/tickets/" + a_id, {{"properties", {{"crmbridge_id", "K2"}}}}).first, 200);
  EXPECT_EQ(lookup("K1").first, 404);
  EXPECT_EQ(lookup("K2").second["id"], a_id);
  auto [s2, b] = with_key("B", "K1");
  ASSERT_EQ(s2, 201);
  auto [s3, conflict] = with_key("dup", "K2");
  EXPECT_EQ(s3, 409);
  EXPECT_NE(conflict["message"].get<std::string>().find("Existing ID: " + a_id), std::string::npos);
  // Upserts by the key find what the index holds.
  json upsert = {{"inputs", {{{"idProperty", "crmbridge_id"}, {"id", "K1"}, {"properties", {{"subject", "B2"}}}},
                             {{"idProperty", "crmbridge_id"}, {"id", "K3"},
                              {"properties", {{"subject", "C"}, {"hs_pipeline_stage", "1"}}}}}}};
  auto [s4, up] = Call("POST", "/crm/v3/objects/tickets/batch/upsert", upsert);
  ASSERT_EQ(s4, 200) << up.dump();
  EXPECT_EQ(up["results"][0]["id"], b["id"]);
  EXPECT_EQ(up["results"][0]["new"], false);
  EXPECT_EQ(up["results"][1]["new"], true);
  EXPECT_EQ(lookup("K3").second["properties"]["subject"], "C");
  // A cleared value and an archived record hold nothing.
  ASSERT_EQ(Call("PATCH", "/crm/v3/objects/tickets/" + b["id"].get<std::string>(),
                 {{"properties", {{"crmbridge_id", ""}}}}).first, 200);
  EXPECT_EQ(lookup("K1").first, 404);
  ASSERT_EQ(Call("DELETE", "/crm/v3/objects/tickets/" + a_id).first, 204);
  EXPECT_EQ(lookup("K2").first, 404);
  EXPECT_EQ(with_key("A2", "K2").first, 201);
  // Contacts are upserted by email, which the index also holds.
  ASSERT_EQ(Call("POST", "/crm/v3/objects/contacts", {{"properties", {{"email", "a@example.se"}}}}).first, 201);
  json by_email = {{"inputs", {{{"idProperty", "email"}, {"id", "a@example.se"}, {"properties", {{"firstname", "Anna"}}}}}}};
  auto [s5, c] = Call("POST", "/crm/v3/objects/contacts/batch/upsert", by_email);
  ASSERT_EQ(s5, 200) << c.dump();
  EXPECT_EQ(c["results"][0]["new"], false);
  EXPECT_EQ(mock_->Dump()["contacts"].size(), 1u);
}

// A merge makes a new record with a new id: the primary's properties, an empty one taking the
// other record's; hs_merged_object_ids lists both ids and those they had absorbed; associations
// move; a GET by a merged id answers the merged record; neither is listed, archived or mergeable
// again. Refusals: one record, an unknown id, an object HubSpot does not merge.
TEST_F(HubSpotMockTest, MergeMakesANewRecordThatTheMergedIdsLeadTo) {
  StartMock();
  auto create = [&](const json& props) {
    auto [status, body] = Call("POST", "/crm/v3/objects/companies", {{"properties", props}});
    EXPECT_EQ(status, 201) << body.dump();
    return body.value("id", "");
  };
  const std::string a = create({{"name", "Acme"}, {"domain", "acme.example"}});
  const std::string b = create({{"name", "Acme AB"}, {"city", "Lund"}});
  const std::string c = create({{"name", "Acme Lund"}});
  auto [ts, ticket] = Call("POST", "/crm/v3/objects/tickets", Ticket("Onboarding Acme"));
  ASSERT_EQ(ts, 201);
  ASSERT_EQ(Call("PUT", "/crm/v4/objects/tickets/" + ticket["id"].get<std::string>() +
                            "/associations/default/companies/" + c).first, 200);

  auto merge = [&](const std::string& primary, const std::string& absorbed) {
    return Call("POST", "/crm/v3/objects/companies/merge",
                {{"primaryObjectId", primary}, {"objectIdToMerge", absorbed}});
  };
  auto [s1, first] = merge(b, c);
  ASSERT_EQ(s1, 200) << first.dump();
  const std::string bc = first["id"];
  EXPECT_NE(bc, b);
  EXPECT_NE(bc, c);
  auto [s2, second] = merge(a, bc);
  ASSERT_EQ(s2, 200) << second.dump();
  const std::string abc = second["id"];
  auto [gs, read] = Call("GET", "/crm/v3/objects/companies/" + abc +
                                    "?properties=name,city,hs_merged_object_ids&associations=tickets");
  ASSERT_EQ(gs, 200);
  EXPECT_EQ(read["properties"]["name"], "Acme") << "the primary's value stays";
  EXPECT_EQ(read["properties"]["city"], "Lund") << "an empty one takes the other record's";
  EXPECT_EQ(read["properties"]["hs_merged_object_ids"], a + ";" + bc + ";" + b + ";" + c);
  EXPECT_EQ(read["associations"]["tickets"]["results"][0]["id"], ticket["id"]);
  for (const std::string& old : {a, b, c, bc}) {
    auto [status, found] = Call("GET", "/crm/v3/objects/companies/" + old);
    EXPECT_EQ(status, 200) << old;
    EXPECT_EQ(found["id"], abc) << "a merged id leads to the merged record";
  }
  auto [ls, listed] = Call("GET", "/crm/v3/objects/companies?limit=100");
  ASSERT_EQ(ls, 200);
  EXPECT_EQ(listed["results"].size(), 1u);
  EXPECT_EQ(Call("GET", "/crm/v3/objects/companies?archived=true").second["results"].size(), 0u)
      << "a merged record is not archived";

  EXPECT_EQ(merge(abc, abc).first, 400);
  EXPECT_EQ(merge(abc, b).first, 404) << "a merged id is no record to merge";
  EXPECT_EQ(Call("POST", "/crm/v3/objects/notes/merge",
                 {{"primaryObjectId", "1"}, {"objectIdToMerge", "2"}}).first, 400);
}

TEST_F(HubSpotMockTest, BatchUpsertCreatesThenUpdatesByAUniqueProperty) {
  StartMock();
  json prop = {{"name", "crmbridge_id"}, {"label", "k"}, {"type", "string"}, {"fieldType", "text"},
               {"groupName", "ticketinformation"}, {"hasUniqueValue", true}};
  EXPECT_EQ(Call("POST", "/crm/v3/properties/tickets", prop).first, 201);
  EXPECT_EQ(Call("POST", "/crm/v3/properties/tickets", prop).first, 409);
  json upsert = {{"inputs", {{{"idProperty", "crmbridge_id"}, {"id", "K1"},
                              {"properties", {{"subject", "A"}, {"hs_pipeline_stage", "1"}}}}}}};
  auto [s1, b1] = Call("POST", "/crm/v3/objects/tickets/batch/upsert", upsert);
  ASSERT_EQ(s1, 200) << b1.dump();
  EXPECT_EQ(b1["results"][0]["new"], true);
  upsert["inputs"][0]["properties"]["subject"] = "B";
  auto [s2, b2] = Call("POST", "/crm/v3/objects/tickets/batch/upsert", upsert);
  ASSERT_EQ(s2, 200);
  EXPECT_EQ(b2["results"][0]["new"], false);
  EXPECT_EQ(b2["results"][0]["id"], b1["results"][0]["id"]);
  auto [s3, got] = Call("GET", "/crm/v3/objects/tickets/K1?idProperty=crmbridge_id&properties=subject");
  EXPECT_EQ(s3, 200);
  EXPECT_EQ(got["properties"]["subject"], "B");
  // Not a unique property: refused.
  upsert["inputs"][0]["idProperty"] = "subject";
  EXPECT_EQ(Call("POST", "/crm/v3/objects/tickets/batch/upsert", upsert).first, 400);
  // A plain create with a taken unique value: 409 naming the existing record.
  json dup = Ticket("C");
  dup["properties"]["crmbridge_id"] = "K1";
  auto [s4, conflict] = Call("POST", "/crm/v3/objects/tickets", dup);
  EXPECT_EQ(s4, 409);
  EXPECT_NE(conflict["message"].get<std::string>().find("Existing ID: " + b1["results"][0]["id"].get<std::string>()),
            std::string::npos);
}

TEST_F(HubSpotMockTest, BatchLimitsAndPartialResults) {
  StartMock();
  json inputs = json::array();
  for (int i = 0; i < 101; ++i) inputs.push_back(Ticket("T"));
  EXPECT_EQ(Call("POST", "/crm/v3/objects/tickets/batch/create", {{"inputs", inputs}}).first, 400);
  // With a trace id on every input, one bad input fails alone (207).
  json good = Ticket("ok"), bad = Ticket("bad");
  good["objectWriteTraceId"] = "t1";
  bad["objectWriteTraceId"] = "t2";
  bad["properties"]["no_such_property"] = "x";
  auto [status, body] = Call("POST", "/crm/v3/objects/tickets/batch/create", {{"inputs", {good, bad}}});
  EXPECT_EQ(status, 207);
  EXPECT_EQ(body["results"].size(), 1u);
  EXPECT_EQ(body["errors"][0]["context"]["objectWriteTraceId"][0], "t2");
  EXPECT_NE(body["errors"][0]["message"].get<std::string>().find("PROPERTY_DOESNT_EXIST"), std::string::npos);
  // Without trace ids the whole request fails and nothing is created.
  good.erase("objectWriteTraceId");
  bad.erase("objectWriteTraceId");
  auto [all, _] = Call("POST", "/crm/v3/objects/tickets/batch/create", {{"inputs", {good, bad}}});
  EXPECT_EQ(all, 400);
  EXPECT_EQ(mock_->Dump()["tickets"].size(), 1u);
}

TEST_F(HubSpotMockTest, RefusesMissingTokensAndStagesOutsideThePipeline) {
  StartMock();
  auto r = client_->Get("/crm/v3/objects/tickets");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["category"], "INVALID_AUTHENTICATION");
  json t = Ticket("x");
  t["properties"]["hs_pipeline_stage"] = "7340124";  // a stage of Order/faktura, not of pipeline 0
  EXPECT_EQ(Call("POST", "/crm/v3/objects/tickets", t).first, 400);
  auto [status, pipes] = Call("GET", "/crm/v3/pipelines/tickets");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(pipes["results"][1]["label"], "Order/faktura");
  EXPECT_EQ(pipes["results"][1]["stages"].size(), 6u);
  EXPECT_EQ(Call("GET", "/crm/v3/pipelines/tickets/999").first, 404);
}

TEST_F(HubSpotMockTest, TenSecondAndSearchLimitsAnswer429WithHubSpotsBody) {
  StartMock(/*limits=*/true);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(Call("GET", "/crm/v3/objects/tickets").first, 200) << i;
  httplib::Headers h = {{"Authorization", "Bearer pat-t"}};
  auto r = client_->Get("/crm/v3/objects/tickets", h);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  json body = json::parse(r->body);
  EXPECT_EQ(body["policyName"], "TEN_SECONDLY_ROLLING");
  EXPECT_EQ(body["message"], "You have reached your ten_secondly_rolling limit.");
  EXPECT_EQ(r->get_header_value("X-HubSpot-RateLimit-Max"), "100");
  clock_.Advance(std::chrono::seconds(10));
  EXPECT_EQ(Call("GET", "/crm/v3/objects/tickets").first, 200) << "the window rolled on";

  json q = {{"limit", 1}};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Call("POST", "/crm/v3/objects/tickets/search", q).first, 200);
  auto [status, limited] = Call("POST", "/crm/v3/objects/tickets/search", q);
  EXPECT_EQ(status, 429);
  EXPECT_EQ(limited["policyName"], "SECONDLY");
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(Call("POST", "/crm/v3/objects/tickets/search", q).first, 200);
}

TEST_F(HubSpotMockTest, AssociationsV4UseTheDefaultTypeIds) {
  StartMock();
  auto [s1, ticket] = Call("POST", "/crm/v3/objects/tickets", Ticket("T"));
  auto [s2, company] = Call("POST", "/crm/v3/objects/companies", {{"properties", {{"name", "Acme AB"}}}});
  ASSERT_EQ(s1, 201);
  ASSERT_EQ(s2, 201);
  const std::string t = ticket["id"], c = company["id"];
  httplib::Headers h = {{"Authorization", "Bearer pat-t"}};
  auto put = client_->Put(("/crm/v4/objects/tickets/" + t + "/associations/default/companies/" + c).c_str(), h, "",
                          "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 200);
  EXPECT_EQ(json::parse(put->body)["results"][0]["associationSpec"]["associationTypeId"], 339);
  // Seen from the company, the reverse type.
  auto [s3, listed] = Call("GET", "/crm/v4/objects/companies/" + c + "/associations/tickets");
  ASSERT_EQ(s3, 200);
  EXPECT_EQ(listed["results"][0]["toObjectId"], std::stoll(t));
  EXPECT_EQ(listed["results"][0]["associationTypes"][0]["typeId"], 340);
  // Batch create with one missing record: 207, the rest is created.
  auto [s4, note] = Call("POST", "/crm/v3/objects/notes",
                         {{"properties", {{"hs_note_body", "Ny kund"}, {"hs_timestamp", "2026-01-01T00:00:00Z"}}}});
  ASSERT_EQ(s4, 201);
  const json types = {{{"associationCategory", "HUBSPOT_DEFINED"}, {"associationTypeId", 228}}};
  json batch = {{"inputs", {{{"from", {{"id", note["id"]}}}, {"to", {{"id", t}}}, {"types", types}},
                            {{"from", {{"id", "999999"}}}, {"to", {{"id", t}}}, {"types", types}}}}};
  auto [s5, created] = Call("POST", "/crm/v4/associations/notes/tickets/batch/create", batch);
  EXPECT_EQ(s5, 207);
  EXPECT_EQ(created["results"].size(), 1u);
  EXPECT_EQ(created["numErrors"], 1);
  EXPECT_EQ(created["results"][0]["fromObjectTypeId"], "0-46");
  EXPECT_EQ(created["results"][0]["toObjectTypeId"], "0-5");
  EXPECT_EQ(created["results"][0]["labels"], json::array());
  EXPECT_EQ(created["errors"][0]["category"], "OBJECT_NOT_FOUND");
  EXPECT_EQ(created["errors"][0]["context"]["ids"], json::array({"999999"}));
  // Without types, or with a type that does not exist between the two: 400, nothing created.
  json untyped = {{"inputs", {{{"from", {{"id", note["id"]}}}, {"to", {{"id", t}}}}}}};
  EXPECT_EQ(Call("POST", "/crm/v4/associations/notes/tickets/batch/create", untyped).first, 400);
  json wrong = {{"inputs", {{{"from", {{"id", note["id"]}}}, {"to", {{"id", t}}},
                             {"types", {{{"associationCategory", "HUBSPOT_DEFINED"}, {"associationTypeId", 339}}}}}}}};
  EXPECT_EQ(Call("POST", "/crm/v4/associations/notes/tickets/batch/create", wrong).first, 400);
  auto [s6, read] = Call("POST", "/crm/v4/associations/tickets/notes/batch/read", {{"inputs", {{{"id", t}}}}});
  ASSERT_EQ(s6, 200);
  EXPECT_EQ(read["results"][0]["to"][0]["toObjectId"], std::stoll(note["id"].get<std::string>()));
  EXPECT_EQ(read["results"][0]["to"][0]["associationTypes"][0]["typeId"], 227);
  auto [s7, got] = Call("GET", "/crm/v3/objects/tickets/" + t + "?associations=companies,notes");
  ASSERT_EQ(s7, 200);
  EXPECT_EQ(got["associations"]["companies"]["results"][0]["id"], c);
}

TEST_F(HubSpotMockTest, AssociationTypeNamesAreSingular) {
  StartMock();
  mock_->Seed(5, 1);  // a company, its contacts, an onboarding ticket and its note
  const json dump = mock_->Dump();
  const std::string company = dump["companies"][0]["id"], ticket = dump["tickets"][0]["id"];
  const std::string contact = dump["contacts"][0]["id"], note = dump["notes"][0]["id"];
  auto type_of = [&](const std::string& path, const std::string& to) {
    auto [status, got] = Call("GET", path + "?associations=" + to);
    EXPECT_EQ(status, 200) << path;
    return got["associations"][to]["results"][0].value("type", "");
  };
  EXPECT_EQ(type_of("/crm/v3/objects/tickets/" + ticket, "companies"), "ticket_to_company");
  EXPECT_EQ(type_of("/crm/v3/objects/companies/" + company, "tickets"), "company_to_ticket");
  EXPECT_EQ(type_of("/crm/v3/objects/companies/" + company, "contacts"), "company_to_contact");
  EXPECT_EQ(type_of("/crm/v3/objects/contacts/" + contact, "companies"), "contact_to_company");
  EXPECT_EQ(type_of("/crm/v3/objects/tickets/" + ticket, "contacts"), "ticket_to_contact");
  EXPECT_EQ(type_of("/crm/v3/objects/contacts/" + contact, "tickets"), "contact_to_ticket");
  EXPECT_EQ(type_of("/crm/v3/objects/notes/" + note, "tickets"), "note_to_ticket");
  EXPECT_EQ(type_of("/crm/v3/objects/tickets/" + ticket, "notes"), "ticket_to_note");
  // The property groups too.
  auto [status, prop] = Call("GET", "/crm/v3/properties/companies/name");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(prop["groupName"], "companyinformation");
}

TEST_F(HubSpotMockTest, LabelledAssociationsAreSetListedAndRemoved) {
  StartMock();
  auto [s1, contact] = Call("POST", "/crm/v3/objects/contacts", {{"properties", {{"email", "a@acme.example.se"}}}});
  auto [s2, company] = Call("POST", "/crm/v3/objects/companies", {{"properties", {{"name", "Acme AB"}}}});
  ASSERT_EQ(s1, 201);
  ASSERT_EQ(s2, 201);
  const std::string p = contact["id"], c = company["id"];
  const std::string path = "/crm/v4/objects/contacts/" + p + "/associations/companies/" + c;
  auto spec = [](const std::string& category, int id) {
    return json{{"associationCategory", category}, {"associationTypeId", id}};
  };

  // The primary company (1) and the default (279): 201 with LabelsBetweenObjectPair.
  auto [s3, pair] = Call("PUT", path, json::array({spec("HUBSPOT_DEFINED", 1), spec("HUBSPOT_DEFINED", 279)}));
  ASSERT_EQ(s3, 201) << pair.dump();
  EXPECT_EQ(pair["fromObjectTypeId"], "0-1");
  EXPECT_EQ(pair["fromObjectId"], std::stoll(p));
  EXPECT_EQ(pair["toObjectTypeId"], "0-2");
  EXPECT_EQ(pair["toObjectId"], std::stoll(c));
  EXPECT_EQ(pair["labels"], json::array({"Primary"}));

  // Listed both ways, the default type first, the label with the reverse id (2) from the company.
  auto [s4, listed] = Call("GET", "/crm/v4/objects/contacts/" + p + "/associations/companies");
  ASSERT_EQ(s4, 200);
  ASSERT_EQ(listed["results"].size(), 1u);
  EXPECT_EQ(listed["results"][0]["associationTypes"],
            json::parse(R"([{"category":"HUBSPOT_DEFINED","typeId":279,"label":null},
                            {"category":"HUBSPOT_DEFINED","typeId":1,"label":"Primary"}])"));
  auto [s5, back] = Call("POST", "/crm/v4/associations/companies/contacts/batch/read", {{"inputs", {{{"id", c}}}}});
  ASSERT_EQ(s5, 200);
  EXPECT_EQ(back["results"][0]["to"][0]["toObjectId"], std::stoll(p));
  EXPECT_EQ(back["results"][0]["to"][0]["associationTypes"][1]["typeId"], 2);

  // Setting the default type alone replaces the labels.
  auto [s6, plain] = Call("PUT", path, json::array({spec("HUBSPOT_DEFINED", 279)}));
  ASSERT_EQ(s6, 201);
  EXPECT_EQ(plain["labels"], json::array());

  // Unknown types, categories without such a label, and malformed bodies: 400 with HubSpot's body.
  for (const json& bad : {json::array({spec("HUBSPOT_DEFINED", 999)}), json::array({spec("USER_DEFINED", 1)}),
                          json::array({spec("HUBSPOT_DEFINED", 339)}), json::array(), json{{"associationTypeId", 1}},
                          json::array({{{"associationCategory", "SOMETHING"}, {"associationTypeId", 1}}})}) {
    auto [status, err] = Call("PUT", path, bad);
    EXPECT_EQ(status, 400) << bad.dump();
    EXPECT_EQ(err["status"], "error");
    EXPECT_EQ(err["category"], "VALIDATION_ERROR");
    EXPECT_TRUE(err.contains("correlationId"));
  }
  // A record that does not exist: 404.
  EXPECT_EQ(Call("PUT", "/crm/v4/objects/contacts/" + p + "/associations/companies/999999",
                 json::array({spec("HUBSPOT_DEFINED", 279)})).first, 404);

  // DELETE removes every type, both ways: 204.
  auto [s7, gone] = Call("DELETE", path);
  EXPECT_EQ(s7, 204);
  EXPECT_EQ(Call("GET", "/crm/v4/objects/contacts/" + p + "/associations/companies").second["results"], json::array());
  EXPECT_EQ(Call("GET", "/crm/v4/objects/companies/" + c + "/associations/contacts").second["results"], json::array());
}

TEST_F(HubSpotMockTest, BatchAssociateDefaultAnswers200WithPublicDefaultAssociations) {
  StartMock();
  auto [s1, ticket] = Call("POST", "/crm/v3/objects/tickets", Ticket("T"));
  auto [s2, company] = Call("POST", "/crm/v3/objects/companies", {{"properties", {{"name", "Acme AB"}}}});
  ASSERT_EQ(s1, 201);
  ASSERT_EQ(s2, 201);
  const std::string t = ticket["id"], c = company["id"];
  auto [status, got] = Call("POST", "/crm/v4/associations/tickets/companies/batch/associate/default",
                            {{"inputs", {{{"from", {{"id", t}}}, {"to", {{"id", c}}}}}}});
  ASSERT_EQ(status, 200);
  EXPECT_EQ(got["status"], "COMPLETE");
  EXPECT_EQ(got["results"], json::parse(R"([{"from":{"id":")" + t + R"("},"to":{"id":")" + c +
                                        R"("},"associationSpec":{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":339}}])"));
  // batch/archive takes a list of targets per input.
  auto archived = client_->Post("/crm/v4/associations/tickets/companies/batch/archive",
                                {{"Authorization", "Bearer pat-t"}},
                                json{{"inputs", {{{"from", {{"id", t}}}, {"to", {{{"id", c}}}}}}}}.dump(),
                                "application/json");
  ASSERT_TRUE(archived);
  EXPECT_EQ(archived->status, 204);
  EXPECT_EQ(Call("GET", "/crm/v4/objects/tickets/" + t + "/associations/companies").second["results"], json::array());
}

TEST_F(HubSpotMockTest, AssociationListPagesByLimitAndAfter) {
  StartMock();
  auto [s1, ticket] = Call("POST", "/crm/v3/objects/tickets", Ticket("T"));
  ASSERT_EQ(s1, 201);
  const std::string t = ticket["id"];
  std::set<std::string> notes;
  for (int i = 0; i < 5; ++i) {
    auto [s, note] = Call("POST", "/crm/v3/objects/notes",
                          {{"properties", {{"hs_note_body", "n"}, {"hs_timestamp", "2026-01-01T00:00:00Z"}}}});
    ASSERT_EQ(s, 201);
    notes.insert(note["id"].get<std::string>());
    ASSERT_EQ(Call("PUT", "/crm/v4/objects/tickets/" + t + "/associations/default/notes/" + note["id"].get<std::string>()).first, 200);
  }
  std::set<std::string> seen;
  std::string after;
  int pages = 0;
  while (true) {
    auto [status, page] = Call("GET", "/crm/v4/objects/tickets/" + t + "/associations/notes?limit=2" +
                                          (after.empty() ? "" : "&after=" + after));
    ASSERT_EQ(status, 200);
    for (const json& r : page["results"]) EXPECT_TRUE(seen.insert(std::to_string(r["toObjectId"].get<int64_t>())).second);
    ++pages;
    if (!page.contains("paging")) break;
    after = page["paging"]["next"]["after"];
  }
  EXPECT_EQ(seen, notes);
  EXPECT_EQ(pages, 3);
}

}  // namespace
}  // namespace crmbridge::mocks
