// HubSpot connector against a scripted transport: what it sends (set-up calls, search bodies,
// batch sizes) and how it reads the answers (paging, the 10,000-result window, per-record
// failures).
#include "connectors/hubspot/hubspot_connector.h"

#include <gtest/gtest.h>

#include "connectors/hubspot/hubspot_codec.h"
#include "src/core/fake_transport.h"

namespace crmbridge {
namespace {

using nlohmann::json;

SystemConfig Config() {
  SystemConfig c;
  c.name = c.kind = "hubspot";
  c.base_url = "http://hubspot.test";
  c.auth = {{"token", "pat-test"}};
  return c;
}

ObjectRef Tickets() {
  ObjectRef r;
  r.object = "tickets";
  r.params = {{"pipeline", "Order/faktura"}, {"id_property", "crmbridge_id"}};
  r.fields = {"subject", "hs_pipeline_stage"};
  return r;
}

Response Json(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

json Ticket(int id, const std::string& stage, int64_t modified_ms) {
  return {{"id", std::to_string(id)},
          {"properties",
           {{"subject", "T" + std::to_string(id)},
            {"hs_pipeline_stage", stage},
            {"hs_lastmodifieddate", std::to_string(modified_ms)}}}};
}

json Filter(const std::string& property, const std::string& op, const std::string& value) {
  return {{"propertyName", property}, {"operator", op}, {"value", value}};
}

// Answers set-up calls (key property, pipelines) and hands searches and batches to `on_api`.
class ScriptedHubSpot {
 public:
  explicit ScriptedHubSpot(std::function<Response(const Request&, const json&)> on_api)
      : transport(std::make_shared<FakeTransport>()) {
    transport->SetFallback([on_api](const Request& r) -> Result<Response> {
      if (r.url.find("/crm/v3/properties/") != std::string::npos)
        return Json(200, {{"name", "crmbridge_id"}, {"hasUniqueValue", true}});
      if (r.url.find("/crm/v3/pipelines/tickets") != std::string::npos)
        return Json(
            200, {{"results",
                   {{{"id", "77"},
                     {"label", "Order/faktura"},
                     {"stages",
                      {{{"id", "1"}, {"label", "Ny"}}, {{"id", "2"}, {"label", "Avslutad"}}}}}}}});
      return on_api(r, json::parse(r.body, nullptr, false));
    });
  }
  // Object calls only (searches and batches), in order.
  std::vector<Request> Api() const {
    std::vector<Request> out;
    for (const Request& r : transport->requests())
      if (r.url.find("/objects/") != std::string::npos) out.push_back(r);
    return out;
  }
  json ApiBody(size_t i) const { return json::parse(Api().at(i).body); }
  std::shared_ptr<FakeTransport> transport;
};

// An associations batch read answers each input with a result, or with an error naming it in its
// context. An input answered by neither is unknown: read as "no company", the reference would be
// cleared in every other system, so the page is not read.
TEST(HubSpotConnectorTest, AnAssociationReadThatLeavesARecordUnansweredFailsThePage) {
  for (const bool answered_by_error : {true, false}) {
    SCOPED_TRACE(answered_by_error ? "ticket 2 in errors" : "ticket 2 nowhere");
    ScriptedHubSpot hs([&](const Request& r, const json&) {
      if (r.url.find("/associations/") != std::string::npos) {
        json out = {{"status", "COMPLETE"},
                    {"results", {{{"from", {{"id", "1"}}},
                                  {"to", {{{"toObjectId", 9}, {"associationTypes", json::array()}}}}}}}};
        if (answered_by_error)
          out["errors"] = {{{"status", "error"}, {"category", "OBJECT_NOT_FOUND"},
                            {"context", {{"ids", {"2"}}}}}};
        return Json(answered_by_error ? 207 : 200, out);
      }
      return Json(200, {{"total", 2}, {"results", {Ticket(1, "1", 1000), Ticket(2, "2", 2000)}}});
    });
    FakeClock clock;
    HubSpotConnector c(Config(), hs.transport, &clock);
    ObjectRef tickets = Tickets();
    tickets.ref_fields = {"companies"};
    ReadContext ctx;
    ctx.run_start_ms = 5000;
    auto page = c.ReadChanges(tickets, "", ctx);
    if (answered_by_error) {
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      ASSERT_EQ(page->records.size(), 2u);
      EXPECT_EQ(page->records[0].fields["companies"], "9");
      EXPECT_TRUE(page->records[1].fields["companies"].is_null()) << "answered: none";
    } else {
      ASSERT_FALSE(page.ok());
      EXPECT_EQ(page.status().code(), StatusCode::kUnavailable);
      EXPECT_EQ(page.status().message(),
                "hubspot: reading tickets associations to companies: the answer (HTTP 200) has "
                "neither a result nor an error for tickets 2 of the 2 asked for");
    }
  }
}

TEST(HubSpotConnectorTest, ReadsPagesWithStageLabelsAndEndsAtTheRunStart) {
  ScriptedHubSpot hs([](const Request& r, const json& body) {
    if (r.method == "GET")  // the sweep of archived tickets: one of another pipeline
      return Json(200, {{"results",
                         {{{"id", "4"}, {"archived", true}, {"archivedAt", "1970-01-01T00:00:03Z"},
                           {"properties", {{"hs_pipeline", "77"}}}},
                          {{"id", "5"}, {"archived", true}, {"archivedAt", "1970-01-01T00:00:03Z"},
                           {"properties", {{"hs_pipeline", "0"}}}}}}});
    const std::string after = body["after"];
    if (after == "0")
      return Json(200, {{"total", 3},
                        {"results", {Ticket(1, "1", 1000), Ticket(2, "2", 2000)}},
                        {"paging", {{"next", {{"after", "2"}}}}}});
    return Json(200, {{"total", 3}, {"results", {Ticket(3, "1", 9000)}}});
  });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  ReadContext ctx;
  ctx.run_start_ms = 5000;
  auto p1 = c.ReadChanges(Tickets(), "", ctx);
  ASSERT_TRUE(p1.ok()) << p1.status().ToString();
  ASSERT_EQ(p1->records.size(), 2u);
  EXPECT_EQ(p1->records[0].id, "1");
  EXPECT_EQ(p1->records[0].modified_ms, 1000);
  EXPECT_EQ(p1->records[0].fields["hs_pipeline_stage"], "Ny") << "stage ids become labels";
  EXPECT_EQ(p1->records[1].fields["hs_pipeline_stage"], "Avslutad");
  EXPECT_TRUE(p1->has_more);

  const Request search = hs.Api()[0];
  EXPECT_EQ(search.method, "POST");
  EXPECT_EQ(search.url, "http://hubspot.test/crm/v3/objects/tickets/search");
  EXPECT_TRUE(search.idempotent);
  EXPECT_EQ(search.system, "hubspot");
  EXPECT_EQ(*FindHeader(search.headers, "Authorization"), "Bearer pat-test");
  const json body = hs.ApiBody(0);
  EXPECT_EQ(body["limit"], 200);
  EXPECT_EQ(body["after"], "0");
  EXPECT_EQ(body["sorts"],
            json::array({{{"propertyName", "hs_lastmodifieddate"}, {"direction", "ASCENDING"}}}));
  EXPECT_EQ(
      body["filterGroups"][0]["filters"],
      json::array({Filter("hs_pipeline", "EQ", "77"), Filter("hs_lastmodifieddate", "GTE", "0")}));
  // hs_merged_object_ids: the ids a ticket absorbed by merges (read_merges.cc).
  EXPECT_EQ(body["properties"], json::array({"subject", "hs_pipeline_stage", "crmbridge_id",
                                             "hs_lastmodifieddate", "hs_pipeline",
                                             "hs_merged_object_ids"}));

  auto p2 = c.ReadChanges(Tickets(), p1->next, ctx);
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(hs.ApiBody(1)["after"], "2");
  EXPECT_EQ(hs.ApiBody(1)["filterGroups"], body["filterGroups"]) << "the same query, next page";
  EXPECT_TRUE(p2->has_more) << "the last search page; archived tickets come next";
  // Newest change seen is 9000, but the run started at 5000: the next run starts there, so a
  // record changed while this run read is read again.
  auto done = hubspot::DecodeCursor(p2->next);
  EXPECT_EQ(done->since_ms, 5000);
  EXPECT_EQ(done->window_ms, -1) << "a finished pass keeps only its position";
  EXPECT_TRUE(done->archived);

  // Archiving moves no modification time, so search never shows it: the archived listing does.
  auto p3 = c.ReadChanges(Tickets(), p2->next, ctx);
  ASSERT_TRUE(p3.ok()) << p3.status().ToString();
  EXPECT_EQ(hs.Api()[2].method, "GET");
  EXPECT_EQ(hs.Api()[2].url,
            "http://hubspot.test/crm/v3/objects/tickets?archived=true&limit=100&properties=hs_pipeline");
  ASSERT_EQ(p3->records.size(), 1u) << "the other pipeline's ticket is left out";
  EXPECT_EQ(p3->records[0].id, "4");
  EXPECT_TRUE(p3->records[0].deleted);
  EXPECT_FALSE(p3->has_more) << "the listing ended: the sweep is complete";
  auto swept = hubspot::DecodeCursor(p3->next);
  EXPECT_EQ(swept->since_ms, 5000);
  EXPECT_FALSE(swept->archived);
  EXPECT_EQ(swept->archived_mark_ms, 5000) << "the next sweep skips what this one returned";

  // A run soon after sweeps nothing; one five minutes later sweeps again, from the mark.
  auto end_of_search = [&](Cursor cursor) {  // the last search page of a pass
    for (int i = 0; i < 2; ++i) {
      auto page = c.ReadChanges(Tickets(), cursor, ctx);
      EXPECT_TRUE(page.ok());
      if (!page.ok()) break;
      cursor = page->next;
      if (i == 1) return *page;
    }
    return Page{};
  };
  const Page soon = end_of_search(p3->next);
  EXPECT_FALSE(soon.has_more) << "the last sweep began moments ago";
  ctx.run_start_ms = 5000 + 5 * 60 * 1000;
  const Page later = end_of_search(p3->next);
  EXPECT_TRUE(later.has_more);
  auto swept_again = c.ReadChanges(Tickets(), later.next, ctx);
  ASSERT_TRUE(swept_again.ok());
  EXPECT_EQ(hs.Api().back().method, "GET");
  // Archived at 3000, 2 s before the last sweep began at 5000: within the minute allowed for
  // HubSpot's clock and this one to differ, so listed again (the engine knows it is no new delete).
  EXPECT_EQ(swept_again->records.size(), 1u);
  // Five minutes on, the sweep that began at 305000 is the last complete one: 3000 is long before.
  ctx.run_start_ms = 5000 + 10 * 60 * 1000;
  const Page third = end_of_search(swept_again->next);
  ASSERT_TRUE(third.has_more);
  auto swept_third = c.ReadChanges(Tickets(), third.next, ctx);
  ASSERT_TRUE(swept_third.ok());
  EXPECT_TRUE(swept_third->records.empty()) << "archived before the last complete sweep began";
}

TEST(HubSpotConnectorTest, SetUpHappensOncePerObject) {
  ScriptedHubSpot hs([](const Request&, const json&) {
    return Json(200, {{"results", json::array()}});
  });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  ASSERT_TRUE(c.ReadChanges(Tickets(), "", ReadContext{}).ok());
  ASSERT_TRUE(c.ReadChanges(Tickets(), "", ReadContext{}).ok());
  EXPECT_EQ(hs.transport->request_count(), 3u) << "pipelines once, then two searches";
  WriteOp op;
  op.key = "k1";
  op.fields = {{"subject", "S"}};
  (void)c.Write(Tickets(), {op});
  (void)c.Write(Tickets(), {op});
  EXPECT_EQ(hs.transport->request_count(), 6u) << "the key property once, then two upserts";
}

// One upsert of a ticket, for the key-property tests: the property is checked before the first
// write, not on reads (an idle run then costs no metadata call for it).
WriteOp OneUpsert() {
  WriteOp op;
  op.key = "k1";
  op.fields = {{"subject", "S"}};
  return op;
}

TEST(HubSpotConnectorTest, CreatesTheKeyPropertyWhenItIsMissing) {
  auto transport = std::make_shared<FakeTransport>();
  transport
      ->Respond(404,
                R"({"status":"error","category":"OBJECT_NOT_FOUND","message":"no such property"})")
      .Respond(201, R"({"name":"crmbridge_id"})")
      .Respond(200, R"({"status":"COMPLETE","results":[]})");
  FakeClock clock;
  HubSpotConnector c(Config(), transport, &clock);
  ObjectRef tickets;
  tickets.object = "tickets";
  auto out = c.Write(tickets, {OneUpsert()});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const auto requests = transport->requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].url, "http://hubspot.test/crm/v3/properties/tickets/crmbridge_id");
  EXPECT_EQ(requests[1].method, "POST");
  EXPECT_EQ(requests[1].url, "http://hubspot.test/crm/v3/properties/tickets");
  const json def = json::parse(requests[1].body);
  EXPECT_EQ(def["name"], "crmbridge_id");
  EXPECT_EQ(def["type"], "string");
  EXPECT_EQ(def["fieldType"], "text");
  EXPECT_EQ(def["hasUniqueValue"], true);
  EXPECT_EQ(def["groupName"], "ticketinformation");
  EXPECT_EQ(requests[2].url, "http://hubspot.test/crm/v3/objects/tickets/batch/upsert");
}

// The key property's name goes into URLs as it is (GET /crm/v3/properties/{object}/{name}). A
// name that is not a property name (the mapping loader refuses it first) is refused by writes
// and reads, naming the param; nothing is sent.
TEST(HubSpotConnectorTest, AKeyPropertyThatIsNotAPropertyNameIsRefusedAndNeverSent) {
  for (const std::string name : {"crmbridge_id/../owners?x=0#", "a b", "1st"}) {
    SCOPED_TRACE(name);
    auto transport = std::make_shared<FakeTransport>();
    FakeClock clock;
    HubSpotConnector c(Config(), transport, &clock);
    ObjectRef tickets;
    tickets.object = "tickets";
    tickets.params = {{"id_property", name}};
    auto written = c.Write(tickets, {OneUpsert()});
    EXPECT_EQ(written.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(written.status().message().find("params.id_property '" + name +
                                              "' is not a property name"),
              std::string::npos)
        << written.status().message();
    auto page = c.ReadChanges(tickets, "", ReadContext{});
    EXPECT_EQ(page.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(transport->requests().empty()) << transport->requests()[0].url;
  }
}

TEST(HubSpotConnectorTest, AReadAsksForNoMetadataOutsidePipelines) {
  auto transport = std::make_shared<FakeTransport>();
  transport->Respond(200, R"({"total":0,"results":[]})");
  FakeClock clock;
  HubSpotConnector c(Config(), transport, &clock);
  ObjectRef contacts;
  contacts.object = "contacts";
  auto page = c.ReadChanges(contacts, "", ReadContext{});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(transport->requests().size(), 1u) << "the search alone";
  const json body = json::parse(transport->requests()[0].body);
  EXPECT_EQ(body["sorts"][0]["propertyName"], "lastmodifieddate") << "contacts' own property";
  EXPECT_EQ(body["filterGroups"][0]["filters"],
            json::array({Filter("lastmodifieddate", "GTE", "0")}))
      << "no pipeline filter outside pipelines";
}

TEST(HubSpotConnectorTest, AKeyPropertyCreatedMeanwhileIsFine) {
  auto transport = std::make_shared<FakeTransport>();
  transport->Respond(404, "{}")
      .Respond(409, R"({"status":"error","category":"CONFLICT","message":"exists"})")
      .Respond(200, R"({"status":"COMPLETE","results":[]})");
  FakeClock clock;
  HubSpotConnector c(Config(), transport, &clock);
  ObjectRef contacts;
  contacts.object = "contacts";
  auto out = c.Write(contacts, {OneUpsert()});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(transport->requests().size(), 3u);
  EXPECT_EQ(transport->requests()[2].url, "http://hubspot.test/crm/v3/objects/contacts/batch/upsert");
}

TEST(HubSpotConnectorTest, ANonUniqueKeyPropertyIsRefused) {
  auto transport = std::make_shared<FakeTransport>();
  transport->Respond(200, R"({"name":"crmbridge_id","hasUniqueValue":false})");
  FakeClock clock;
  HubSpotConnector c(Config(), transport, &clock);
  ObjectRef tickets;
  tickets.object = "tickets";
  auto out = c.Write(tickets, {OneUpsert()});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(transport->requests().size(), 1u) << "nothing is written by a key that is not unique";
}

TEST(HubSpotConnectorTest, OverlapAppliesOncePerPass) {
  ScriptedHubSpot hs([](const Request&, const json& body) {
    if (body["after"] == "0")
      return Json(200,
                  {{"results", {Ticket(1, "1", 9500)}}, {"paging", {{"next", {{"after", "1"}}}}}});
    return Json(200, {{"results", json::array()}});
  });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  ObjectRef ref = Tickets();
  ref.params["overlap_ms"] = "1000";
  hubspot::SearchCursor at;
  at.since_ms = 10000;
  auto p1 = c.ReadChanges(ref, hubspot::EncodeCursor(at), ReadContext{});
  ASSERT_TRUE(p1.ok());
  EXPECT_EQ(hs.ApiBody(0)["filterGroups"][0]["filters"][1],
            Filter("hs_lastmodifieddate", "GTE", "9000"));
  auto p2 = c.ReadChanges(ref, p1->next, ReadContext{});
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(hs.ApiBody(1)["filterGroups"][0]["filters"][1],
            Filter("hs_lastmodifieddate", "GTE", "9000"))
      << "the second page of the same query, not a second overlap";
  EXPECT_EQ(hubspot::DecodeCursor(p2->next)->since_ms, 10000)
      << "re-reading older records never moves the position back";

  ref.params["overlap_ms"] = "a minute";
  auto bad = c.ReadChanges(ref, "", ReadContext{});
  EXPECT_EQ(bad.status().code(), StatusCode::kFailedPrecondition);
}

TEST(HubSpotConnectorTest, NeverPagesPastTheSearchCap) {
  ScriptedHubSpot hs([](const Request&, const json& body) {
    if (body["after"] == "9600")
      return Json(200, {{"total", 20000},
                        {"results", {Ticket(9700, "1", 4242)}},
                        {"paging", {{"next", {{"after", "9800"}}}}}});
    return Json(200, {{"total", 0}, {"results", json::array()}});
  });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  hubspot::SearchCursor at;
  at.since_ms = 1000;
  at.window_ms = 1000;
  at.after = 9600;
  auto page = c.ReadChanges(Tickets(), hubspot::EncodeCursor(at), ReadContext{});
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->has_more);
  auto next = hubspot::DecodeCursor(page->next);
  EXPECT_EQ(next->after, 0) << "a new window instead of after=9800";
  EXPECT_EQ(next->window_ms, 4242) << "from the last timestamp seen, inclusive";
  EXPECT_EQ(next->since_ms, 1000);

  auto restarted = c.ReadChanges(Tickets(), page->next, ReadContext{});
  ASSERT_TRUE(restarted.ok());
  EXPECT_EQ(hs.ApiBody(1)["after"], "0");
  EXPECT_EQ(hs.ApiBody(1)["filterGroups"][0]["filters"][1],
            Filter("hs_lastmodifieddate", "GTE", "4242"));
  EXPECT_TRUE(restarted->has_more) << "the pass ended; the archived sweep comes next";
  EXPECT_EQ(hubspot::DecodeCursor(restarted->next)->since_ms, 4242);
  EXPECT_TRUE(hubspot::DecodeCursor(restarted->next)->archived);
}

TEST(HubSpotConnectorTest, AWindowOfOneTimestampIsPagedById) {
  // Every search answers a full window of records modified at t=1000.
  int calls = 0;
  ScriptedHubSpot hs([&calls](const Request&, const json& body) {
    ++calls;
    if (calls == 4) return Json(200, {{"total", 1}, {"results", {Ticket(99999, "1", 1000)}}});
    return Json(200, {{"total", 20000},
                      {"results", {Ticket(9800 + calls, "1", 1000)}},
                      {"paging", {{"next", {{"after", body["after"] == "0" ? "9800" : "9999"}}}}}});
  });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  hubspot::SearchCursor at;
  at.since_ms = 1000;
  auto page = c.ReadChanges(Tickets(), hubspot::EncodeCursor(at), ReadContext{});
  ASSERT_TRUE(page.ok());
  auto next = hubspot::DecodeCursor(page->next);
  EXPECT_EQ(next->tie_ms, 1000) << "restarting at t=1000 would read the same window forever";
  EXPECT_EQ(next->last_id, "")
      << "the window came in time order, not id order: start at the first id";

  auto tie = c.ReadChanges(Tickets(), page->next, ReadContext{});
  ASSERT_TRUE(tie.ok());
  EXPECT_EQ(hs.ApiBody(1)["sorts"][0]["propertyName"], "hs_object_id");
  EXPECT_EQ(hs.ApiBody(1)["filterGroups"][0]["filters"],
            json::array(
                {Filter("hs_pipeline", "EQ", "77"), Filter("hs_lastmodifieddate", "EQ", "1000")}));
  next = hubspot::DecodeCursor(tie->next);
  EXPECT_EQ(next->last_id, "9802") << "sorted by id, the last id read is a safe keyset bound";

  auto keyset = c.ReadChanges(Tickets(), tie->next, ReadContext{});
  ASSERT_TRUE(keyset.ok());
  EXPECT_EQ(hs.ApiBody(2)["filterGroups"][0]["filters"][2], Filter("hs_object_id", "GT", "9802"));
  EXPECT_EQ(hs.ApiBody(2)["after"], "0");

  auto last_of_tie = c.ReadChanges(Tickets(), keyset->next, ReadContext{});
  ASSERT_TRUE(last_of_tie.ok());
  EXPECT_TRUE(last_of_tie->has_more) << "the tie is done; records after it are not";
  next = hubspot::DecodeCursor(last_of_tie->next);
  EXPECT_EQ(next->tie_ms, -1);
  EXPECT_EQ(next->window_ms, 1001);
}

// Echoes an upsert batch back as HubSpot does (results in reverse order), failing the whole batch
// when it holds a bad key.
Response EchoUpsert(const json& body) {
  json results = json::array();
  for (const json& in : body["inputs"]) {
    if (in["id"] == "bad")
      return Json(
          400, {{"status", "error"}, {"category", "VALIDATION_ERROR"}, {"message", "bad value"}});
    const std::string key = in["id"];
    results.insert(
        results.begin(),
        json{{"id", "id-" + key}, {"new", key != "k0"}, {"properties", {{"crmbridge_id", key}}}});
  }
  return Json(200, {{"status", "COMPLETE"}, {"results", results}});
}

TEST(HubSpotConnectorTest, UpsertsInBatchesOfTheApiMaximum) {
  ScriptedHubSpot hs([](const Request&, const json& body) { return EchoUpsert(body); });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  std::vector<WriteOp> ops(250);
  for (size_t i = 0; i < ops.size(); ++i) {
    ops[i].key = "k" + std::to_string(i);
    ops[i].fields = {{"subject", "S"}, {"hs_pipeline_stage", "Ny"}, {"amount", 17}};
  }
  auto out = c.Write(Tickets(), ops);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(hs.Api().size(), 3u);
  EXPECT_EQ(hs.ApiBody(0)["inputs"].size(), 100u);
  EXPECT_EQ(hs.ApiBody(1)["inputs"].size(), 100u);
  EXPECT_EQ(hs.ApiBody(2)["inputs"].size(), 50u);
  const Request batch = hs.Api()[0];
  EXPECT_EQ(batch.url, "http://hubspot.test/crm/v3/objects/tickets/batch/upsert");
  EXPECT_TRUE(batch.idempotent);
  const json first = hs.ApiBody(0)["inputs"][0];
  EXPECT_EQ(first["idProperty"], "crmbridge_id");
  EXPECT_EQ(first["id"], "k0");
  EXPECT_EQ(first["properties"]["hs_pipeline_stage"], "1") << "labels become stage ids";
  EXPECT_EQ(first["properties"]["hs_pipeline"], "77");
  EXPECT_EQ(first["properties"]["amount"], "17") << "every value as a string";
  ASSERT_EQ(out->size(), 250u);
  for (size_t i = 0; i < ops.size(); ++i) {
    EXPECT_TRUE((*out)[i].status.ok());
    EXPECT_EQ((*out)[i].native_id, "id-k" + std::to_string(i)) << "correlated by key, not position";
    EXPECT_EQ((*out)[i].created, i != 0);
  }
}

TEST(HubSpotConnectorTest, ARejectedBatchIsSplitUntilOnlyTheBadRecordFails) {
  ScriptedHubSpot hs([](const Request&, const json& body) { return EchoUpsert(body); });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  std::vector<WriteOp> ops(8);
  for (size_t i = 0; i < ops.size(); ++i) {
    ops[i].key = i == 5 ? "bad" : "k" + std::to_string(i);
    ops[i].fields = {{"subject", "S"}};
  }
  auto out = c.Write(Tickets(), ops);
  ASSERT_TRUE(out.ok());
  for (size_t i = 0; i < ops.size(); ++i) {
    if (i == 5) {
      EXPECT_EQ((*out)[i].status.code(), StatusCode::kInvalidArgument);
      EXPECT_NE((*out)[i].status.message().find("bad value"), std::string::npos);
    } else {
      EXPECT_TRUE((*out)[i].status.ok()) << i << ": " << (*out)[i].status.ToString();
    }
  }
  // 8 -> 4+4 -> (2+2) of the bad half -> 1+1: 1 + 2 + 2 + 2 calls.
  EXPECT_EQ(hs.Api().size(), 7u);
}

TEST(HubSpotConnectorTest, PerInputErrorsOfA207AreRetryableUnlessTheDataIsAtFault) {
  // HubSpot's 207 names each failed input in errors[].context; the others landed.
  ScriptedHubSpot hs([](const Request&, const json& body) {
    json results = json::array(), errors = json::array();
    for (const json& in : body["inputs"]) {
      const std::string key = in["id"];
      if (key == "k1") {
        errors.push_back({{"status", "error"}, {"category", "INTERNAL_ERROR"}, {"message", "try again"},
                          {"correlationId", "c-1"}, {"context", {{"ids", {key}}}}});
      } else if (key == "k2") {
        errors.push_back({{"status", "error"}, {"category", "VALIDATION_ERROR"}, {"message", "bad email"},
                          {"context", {{"ids", {key}}}}});
      } else {
        results.push_back({{"id", "id-" + key}, {"new", true}, {"properties", {{"crmbridge_id", key}}}});
      }
    }
    return Json(207, {{"status", "COMPLETE"}, {"results", results}, {"numErrors", errors.size()},
                      {"errors", errors}});
  });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  std::vector<WriteOp> ops(3);
  for (size_t i = 0; i < ops.size(); ++i) {
    ops[i].key = "k" + std::to_string(i);
    ops[i].fields = {{"subject", "S"}};
  }
  auto out = c.Write(Tickets(), ops);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].status.ok());
  EXPECT_EQ((*out)[0].native_id, "id-k0");
  EXPECT_EQ((*out)[1].status.code(), StatusCode::kUnavailable) << (*out)[1].status.ToString();
  EXPECT_EQ((*out)[1].status.http_status(), 207) << "HubSpot answered: the input failed, not the system";
  EXPECT_NE((*out)[1].status.message().find("correlationId=c-1"), std::string::npos);
  EXPECT_NE((*out)[1].status.message().find("k1"), std::string::npos) << "names the record";
  EXPECT_EQ((*out)[2].status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE((*out)[2].status.message().find("bad email"), std::string::npos);
  EXPECT_EQ(hs.Api().size(), 1u) << "a 207 is not split: it already names its failures";
}

TEST(HubSpotConnectorTest, AnUnknownStageFailsOnlyItsOp) {
  ScriptedHubSpot hs([](const Request&, const json& body) { return EchoUpsert(body); });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  std::vector<WriteOp> ops(3);
  for (size_t i = 0; i < ops.size(); ++i) {
    ops[i].key = "k" + std::to_string(i);
    ops[i].fields = {{"hs_pipeline_stage", i == 1 ? "Nowhere" : "Avslutad"}};
  }
  auto out = c.Write(Tickets(), ops);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)[0].status.ok());
  EXPECT_EQ((*out)[1].status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE((*out)[1].status.message().find("Nowhere"), std::string::npos);
  EXPECT_TRUE((*out)[2].status.ok());
  ASSERT_EQ(hs.Api().size(), 1u);
  EXPECT_EQ(hs.ApiBody(0)["inputs"].size(), 2u) << "the bad op is never sent";
}

TEST(HubSpotConnectorTest, ARepeatedKeyGoesInTheNextRequest) {
  ScriptedHubSpot hs([](const Request&, const json& body) { return EchoUpsert(body); });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  std::vector<WriteOp> ops(3);
  ops[0].key = "k1";
  ops[1].key = "k2";
  ops[2].key = "k1";
  auto out = c.Write(Tickets(), ops);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(hs.Api().size(), 2u);
  EXPECT_EQ(hs.ApiBody(0)["inputs"].size(), 2u);
  EXPECT_EQ(hs.ApiBody(1)["inputs"][0]["id"], "k1");
  for (const WriteOutcome& o : *out) EXPECT_TRUE(o.status.ok());
}

TEST(HubSpotConnectorTest, UpdatesAndDeletesGoByNativeId) {
  ScriptedHubSpot hs([](const Request& r, const json& body) {
    if (r.url.find("/batch/archive") != std::string::npos) return Json(204, nullptr);
    json results = json::array();
    for (const json& in : body["inputs"])
      results.push_back({{"id", in["id"]}, {"properties", json::object()}});
    return Json(200, {{"status", "COMPLETE"}, {"results", results}});
  });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  std::vector<WriteOp> ops(2);
  ops[0].kind = WriteOp::Kind::kUpdate;
  ops[0].native_id = "512";
  ops[0].fields = {{"subject", "renamed"}};
  ops[1].kind = WriteOp::Kind::kDelete;
  ops[1].native_id = "513";
  auto out = c.Write(Tickets(), ops);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(hs.Api().size(), 2u);
  EXPECT_NE(hs.Api()[0].url.find("/batch/update"), std::string::npos);
  EXPECT_EQ(hs.ApiBody(0)["inputs"][0]["id"], "512");
  EXPECT_EQ(hs.ApiBody(0)["inputs"][0].count("idProperty"), 0u);
  EXPECT_NE(hs.Api()[1].url.find("/batch/archive"), std::string::npos);
  EXPECT_EQ(hs.ApiBody(1)["inputs"], json::array({{{"id", "513"}}}));
  EXPECT_TRUE((*out)[0].status.ok());
  EXPECT_EQ((*out)[0].native_id, "512");
  EXPECT_FALSE((*out)[0].created);
  EXPECT_TRUE((*out)[1].status.ok());
}

TEST(HubSpotConnectorTest, AResultWithoutARecordIdIsNoWriteDone) {
  // A lone input's one result is taken without correlation; this one names no record.
  ScriptedHubSpot hs([](const Request&, const json&) {
    return Json(200, {{"status", "COMPLETE"},
                      {"results", {{{"from", {{"id", "1001"}}}, {"to", {{"id", "201"}}}}}}});
  });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  WriteOp op;
  op.key = "k1";
  op.fields = {{"subject", "S"}};
  auto out = c.Write(Tickets(), {op});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].status.code(), StatusCode::kUnavailable);
  EXPECT_EQ((*out)[0].status.ToString(),
            "UNAVAILABLE: hubspot: HTTP 200: hubspot: upsert of k1: its result carries no record id");
  EXPECT_TRUE((*out)[0].native_id.empty());
}

TEST(HubSpotConnectorTest, RefusedCredentialsFailTheWholeWrite) {
  ScriptedHubSpot hs([](const Request&, const json&) {
    return Json(
        401, {{"status", "error"}, {"category", "INVALID_AUTHENTICATION"}, {"message", "expired"}});
  });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  std::vector<WriteOp> ops(150);
  for (size_t i = 0; i < ops.size(); ++i) ops[i].key = "k" + std::to_string(i);
  auto out = c.Write(Tickets(), ops);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(hs.Api().size(), 1u) << "no second batch after the credentials were refused";
}

TEST(HubSpotConnectorTest, UnknownPipelineNamesThoseThatExist) {
  ScriptedHubSpot hs([](const Request&, const json&) { return Json(500, {}); });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  ObjectRef ref = Tickets();
  ref.params["pipeline"] = "Sales";
  auto r = c.ReadChanges(ref, "", ReadContext{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("Sales"), std::string::npos);
  EXPECT_NE(r.status().message().find("\"Order/faktura\" (77)"), std::string::npos);
  EXPECT_TRUE(hs.Api().empty());
}

TEST(HubSpotConnectorTest, PipelineMayBeNamedById) {
  ScriptedHubSpot hs([](const Request&, const json&) {
    return Json(200, {{"results", json::array()}});
  });
  FakeClock clock;
  HubSpotConnector c(Config(), hs.transport, &clock);
  ObjectRef ref = Tickets();
  ref.params["pipeline"] = "77";
  ASSERT_TRUE(c.ReadChanges(ref, "", ReadContext{}).ok());
  EXPECT_EQ(hs.ApiBody(0)["filterGroups"][0]["filters"][0], Filter("hs_pipeline", "EQ", "77"));
}

}  // namespace
}  // namespace crmbridge
