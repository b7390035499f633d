// TotangoConnector (connectors/totango/totango_connector.h) on scripted Totango answers
// (fuzz/connector_util.h): Search API pages of accounts and users, the scan cursor with its
// Create Date windows split past 10,000 hits, SDR gateway writes, and touchpoint and task creates
// with the look-up a retried create makes first.
//
// Whatever Totango answers: a read gives records with ids and a cursor to go on from, a write
// gives one outcome per op, and a write done names the record written.
#include "connectors/totango/totango_connector.h"
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
  if (!ParseCall(script.call, {}, &call)) return 0;

  SystemConfig config;
  config.name = "totango";
  config.kind = "totango";
  config.base_url = "https://api-eu1.totango.com";
  config.auth = {{"app_token", "totango-token-0001"}};
  config.options = {{"service_id", "SP-0000-11"},
                    {"region", "eu"},
                    {"allowed.Status", "Trial|Onboarding|Paying"}};
  FakeClock clock;
  TotangoConnector connector(config, ScriptedTransport(script), &clock);

  if (call.write) {
    const std::string& object = call.object.object;
    const nlohmann::json fields =
        object == "users"     ? nlohmann::json{{"account_id", "crmb_k1"},
                                               {"email", "ann@example.se"},
                                               {"name", "Ann"},
                                               {"Contact", "yes"}}
        : object == "accounts" ? nlohmann::json{{"display_name", "Acme AB"}, {"Status", "Paying"}}
                               : nlohmann::json{{"account_id", "crmb_k1"},
                                                {"subject", "Kick-off"},
                                                {"content", "Booked"},
                                                {"title", "Call Ann"}};
    const auto ops = Ops(call.ops, fields, "");
    CheckOutcomes(connector.Write(call.object, ops), ops);
    return 0;
  }
  ReadPages(connector, call, [](const Cursor&) {});
  return 0;
}
