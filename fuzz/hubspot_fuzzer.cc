// HubSpotConnector (connectors/hubspot/hubspot_connector.h) on scripted HubSpot answers
// (fuzz/connector_util.h): pipelines, searches with their paging and the search cursor,
// association reads, the key property check, batch upserts, updates and archives with their
// 207s and errors[], association writes, and the OAuth token endpoint (the word oauth).
//
// Whatever HubSpot answers: a read gives records with ids and a cursor DecodeCursor takes back,
// a write gives one outcome per op, and a write done names the record written. Whatever values
// the ops carry (the script's "fields" and "id" lines), every request stays on HubSpot's host,
// its URL holds no id unencoded, and its JSON body is JSON (CheckRequests).
#include "connectors/hubspot/hubspot_codec.h"
#include "connectors/hubspot/hubspot_connector.h"
#include "fuzz/connector_util.h"
#include "src/core/clock.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  crmbridge::fuzz::Quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crmbridge;
  using namespace crmbridge::fuzz;
  const Script script = ParseScript(Text(data, size));
  Call call;
  if (!ParseCall(script.call, {"oauth"}, &call)) return 0;
  if (!ObjectOfKind("hubspot", call.object.object)) return 0;

  SystemConfig config;
  config.name = "hubspot";
  config.kind = "hubspot";
  config.base_url = "https://api.hubapi.com";
  if (call.options.count("oauth"))
    config.auth = {{"client_id", "id"}, {"client_secret", "secret-0001"}, {"refresh_token", "r-0002"}};
  else
    config.auth = {{"token", "pat-na1-0003"}};
  FakeClock clock;
  const auto transport = ScriptedTransport(script);
  HubSpotConnector connector(config, transport, &clock);
  const std::vector<std::string> origins = {config.base_url};

  if (call.write) {
    const std::string ref = call.object.ref_fields.empty() ? "" : *call.object.ref_fields.begin();
    const auto fields =
        WriteFields(script, {{"subject", "SE Acme AB"}, {"hs_pipeline_stage", "Ny"}});
    if (!fields) return 0;
    const auto ops = Ops(call.ops, *fields, ref, IdText(script), call.merges);
    CheckOutcomes(connector.Write(call.object, ops), ops);
    CheckRequests(transport->requests(), origins, ops);
    return 0;
  }
  ReadPages(connector, call, [](const Cursor& next) {
    auto decoded = hubspot::DecodeCursor(next);
    FUZZ_CHECK(decoded.ok(), "a cursor the connector cannot read back: " + next);
  });
  CheckRequests(transport->requests(), origins);
  return 0;
}
