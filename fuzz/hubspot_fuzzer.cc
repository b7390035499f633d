// HubSpotConnector (connectors/hubspot/hubspot_connector.h) on scripted HubSpot answers
// (fuzz/connector_util.h): pipelines, searches with their paging and the search cursor,
// association reads, the key property check, batch upserts, updates and archives with their
// 207s and errors[], association writes, and the OAuth token endpoint (the word oauth).
//
// Whatever HubSpot answers: a read gives records with ids and a cursor DecodeCursor takes back,
// a write gives one outcome per op, and a write done names the record written.
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

  SystemConfig config;
  config.name = "hubspot";
  config.kind = "hubspot";
  config.base_url = "https://api.hubapi.com";
  if (call.options.count("oauth"))
    config.auth = {{"client_id", "id"}, {"client_secret", "secret-0001"}, {"refresh_token", "r-0002"}};
  else
    config.auth = {{"token", "pat-na1-0003"}};
  FakeClock clock;
  HubSpotConnector connector(config, ScriptedTransport(script), &clock);

  if (call.write) {
    const std::string ref = call.object.ref_fields.empty() ? "" : *call.object.ref_fields.begin();
    const auto ops = Ops(call.ops, {{"subject", "SE Acme AB"}, {"hs_pipeline_stage", "Ny"}}, ref);
    CheckOutcomes(connector.Write(call.object, ops), ops);
    return 0;
  }
  ReadPages(connector, call, [](const Cursor& next) {
    auto decoded = hubspot::DecodeCursor(next);
    FUZZ_CHECK(decoded.ok(), "a cursor the connector cannot read back: " + next);
  });
  return 0;
}
