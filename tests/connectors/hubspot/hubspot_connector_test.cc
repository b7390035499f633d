// HubSpot connector against a scripted transport: what it sends (search bodies, batch sizes) and
// how it reads the answers (paging, the 10,000-result window, per-record failures).
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

// Answers set-up calls (key property, pipelines) and hands searches and batches to `on_api`.
class ScriptedHubSpot {
 public:
  explicit ScriptedHubSpot(std::function<Response(const Request&, const json&)> on_api)
      : transport(std::make_shared<FakeTransport>()) {
    transport->SetFallback([on_api](const Request& r) -> Result<Response> {
      if (r.url.find("/crm/v3/properties/") != std::string::npos)
        return Json(200, {{"name", "crmbridge_id"}, {"hasUniqueValue", true}});
      if (r.url.find("/crm/v3/pipelines/tickets") != std::string::npos)
        return Json(200, {{"results",
                           {{{"id", "77"},
                             {"label", "Order/faktura"},
                             {"stages", {{{"id", "1"}, {"label", "Ny"}}, {{"id", "2"}, {"label", "Avslutad"}}}}}}}});
      return on_api(r, json::parse(r.body, nullptr, false));
    });
  }
  std::vector<Request> Api() const {
    std::vector<Request> out;
    for (const Request& r : transport->requests())
      if (r.url.find("/objects/") != std::string::npos) out.push_back(r);
    return out;
  }
  std::shared_ptr<FakeTransport> transport;
};

TEST(HubSpotCodecTest, CursorRoundTripsAndRejectsGarbage) {
  hubspot::SearchCursor c;
  c.since_ms = 1700000000000;
  c.after = 200;
  c.tie_ms = 1700000000001;
  c.last_id = "512";
  auto back = hubspot::DecodeCursor(hubspot::EncodeCursor(c));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->since_ms, c.since_ms);
  EXPECT_EQ(back->after, 200);
  EXPECT_EQ(back->tie_ms, c.tie_ms);
  EXPECT_EQ(back->last_id, "512");
  EXPECT_EQ(hubspot::DecodeCursor("{oops").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(hubspot::ParseTimestamp("2024-08-15T17:09:13.648Z"), 1723741753648);
  EXPECT_EQ(hubspot::ParseTimestamp("1723741753648"), 1723741753648);
}

TEST(HubSpotConnectorTest, ReadsPagesWithStageLabelsAndEndsAtTheRunStart) {
  ScriptedHubSpot hs([](const Request&, const json& body) {
    const std::string after = body["after"];
    if (after == "0")
      return Json(200, {{"total", 3},
                        {"results", {Ticket(1, "1", 1000), Ticket(2, "2", 2000)}},
                        {"paging", {{"next", {{"after", "2"}}}}}});
    return Json(200, {{"total", 3}, {"results", {Ticket(3, "1", 9000)}}});
  });
  HubSpotConnector c(Config(), hs.transport, Clock::Real());
  ReadContext ctx;
  ctx.run_start_ms = 5000;
  auto p1 = c.ReadChanges(Tickets(), "", ctx);
  ASSERT_TRUE(p1.ok()) << p1.status().ToString();
  ASSERT_EQ(p1->records.size(), 2u);
  EXPECT_EQ(p1->records[0].fields["hs_pipeline_stage"], "Ny") << "stage ids become labels";
  EXPECT_EQ(p1->records[1].fields["hs_pipeline_stage"], "Avslutad");
  EXPECT_TRUE(p1->has_more);

  const json body = json::parse(hs.Api()[0].body);
  EXPECT_EQ(body["limit"], 200);
  EXPECT_EQ(body["sorts"][0]["propertyName"], "hs_lastmodifieddate");
  EXPECT_EQ(body["filterGroups"][0]["filters"][0],
            json({{"propertyName", "hs_pipeline"}, {"operator", "EQ"}, {"value", "77"}}));
  EXPECT_EQ(body["filterGroups"][0]["filters"][1]["operator"], "GTE");

  auto p2 = c.ReadChanges(Tickets(), p1->next, ctx);
  ASSERT_TRUE(p2.ok());
  EXPECT_FALSE(p2->has_more);
  // Newest change seen is 9000, but the run started at 5000: the next run starts there, so a
  // record changed while this run read is read again.
  EXPECT_EQ(hubspot::DecodeCursor(p2->next)->since_ms, 5000);
}

TEST(HubSpotConnectorTest, NeverPagesPastTheSearchCap) {
  ScriptedHubSpot hs([](const Request&, const json& body) {
    if (body["after"] == "9600")
      return Json(200, {{"total", 20000},
                        {"results", {Ticket(9700, "1", 4242)}},
                        {"paging", {{"next", {{"after", "9800"}}}}}});
    return Json(200, {{"total", 0}, {"results", json::array()}});
  });
  HubSpotConnector c(Config(), hs.transport, Clock::Real());
  hubspot::SearchCursor at;
  at.since_ms = 1000;
  at.after = 9600;
  auto page = c.ReadChanges(Tickets(), hubspot::EncodeCursor(at), ReadContext{});
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->has_more);
  auto next = hubspot::DecodeCursor(page->next);
  EXPECT_EQ(next->after, 0) << "a new window instead of after=9800";
  EXPECT_EQ(next->since_ms, 4242) << "from the last timestamp seen, inclusive";
}

TEST(HubSpotConnectorTest, AWindowOfOneTimestampIsPagedById) {
  ScriptedHubSpot hs([](const Request&, const json& body) {
    return Json(200, {{"total", 20000},
                      {"results", {Ticket(9800, "1", 1000)}},
                      {"paging", {{"next", {{"after", body["after"] == "0" ? "9800" : "9999"}}}}}});
  });
  HubSpotConnector c(Config(), hs.transport, Clock::Real());
  hubspot::SearchCursor at;
  at.since_ms = 1000;
  auto page = c.ReadChanges(Tickets(), hubspot::EncodeCursor(at), ReadContext{});
  ASSERT_TRUE(page.ok());
  auto next = hubspot::DecodeCursor(page->next);
  EXPECT_EQ(next->tie_ms, 1000);
  EXPECT_EQ(next->last_id, "9800");
  auto tie = c.ReadChanges(Tickets(), page->next, ReadContext{});
  ASSERT_TRUE(tie.ok());
  const json body = json::parse(hs.Api().back().body);
  EXPECT_EQ(body["sorts"][0]["propertyName"], "hs_object_id");
  EXPECT_EQ(body["filterGroups"][0]["filters"][2],
            json({{"propertyName", "hs_object_id"}, {"operator", "GT"}, {"value", "9800"}}));
}

// Echoes an upsert batch back as HubSpot does, failing the whole batch when it holds a bad key.
Response EchoUpsert(const json& body) {
  json results = json::array();
  int n = 0;
  for (const json& in : body["inputs"]) {
    if (in["id"] == "bad")
      return Json(400, {{"status", "error"}, {"category", "VALIDATION_ERROR"}, {"message", "bad value"}});
    results.push_back({{"id", std::to_string(100 + n++)},
                       {"new", true},
                       {"properties", {{"crmbridge_id", in["id"]}}}});
  }
  return Json(200, {{"status", "COMPLETE"}, {"results", results}});
}

TEST(HubSpotConnectorTest, UpsertsInBatchesOfTheApiMaximum) {
  ScriptedHubSpot hs([](const Request&, const json& body) { return EchoUpsert(body); });
  HubSpotConnector c(Config(), hs.transport, Clock::Real());
  std::vector<WriteOp> ops(250);
  for (size_t i = 0; i < ops.size(); ++i) {
    ops[i].key = "k" + std::to_string(i);
    ops[i].fields = {{"subject", "S"}, {"hs_pipeline_stage", "Ny"}};
  }
  auto out = c.Write(Tickets(), ops);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(hs.Api().size(), 3u);
  EXPECT_EQ(json::parse(hs.Api()[0].body)["inputs"].size(), 100u);
  EXPECT_EQ(json::parse(hs.Api()[2].body)["inputs"].size(), 50u);
  const json first = json::parse(hs.Api()[0].body)["inputs"][0];
  EXPECT_EQ(first["idProperty"], "crmbridge_id");
  EXPECT_EQ(first["properties"]["hs_pipeline_stage"], "1") << "labels become stage ids";
  EXPECT_EQ(first["properties"]["hs_pipeline"], "77");
  for (const WriteOutcome& o : *out) EXPECT_TRUE(o.status.ok() && o.created);
}

TEST(HubSpotConnectorTest, ARejectedBatchIsSplitUntilOnlyTheBadRecordFails) {
  ScriptedHubSpot hs([](const Request&, const json& body) { return EchoUpsert(body); });
  HubSpotConnector c(Config(), hs.transport, Clock::Real());
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
}

TEST(HubSpotConnectorTest, UnknownPipelineNamesThoseThatExist) {
  ScriptedHubSpot hs([](const Request&, const json&) { return Json(500, {}); });
  HubSpotConnector c(Config(), hs.transport, Clock::Real());
  ObjectRef ref = Tickets();
  ref.params["pipeline"] = "Sales";
  auto r = c.ReadChanges(ref, "", ReadContext{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("\"Order/faktura\" (77)"), std::string::npos);
}

}  // namespace
}  // namespace crmbridge
