// TotangoConnector (connectors/totango/totango_connector.h) on scripted Totango answers
// (fuzz/connector_util.h): Search API pages of accounts and users, the scan cursor with its
// Create Date windows split past 10,000 hits, SDR gateway writes, and touchpoint and task creates
// with the look-up a retried create makes first; the account of a user, touchpoint or task given
// as a field or, as the engine gives it, as a reference.
//
// Whatever Totango answers: a read gives records with ids and a cursor to go on from, a write
// gives one outcome per op, and a write done names the record written. Whatever values the ops
// carry (the script's "fields" and "id" lines), every request goes to the API or the SDR gateway of
// the region, its URL holds no id unencoded, and its JSON body is JSON (CheckRequests).
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
  if (!ObjectOfKind("totango", call.object.object)) return 0;

  SystemConfig config;
  config.name = "totango";
  config.kind = "totango";
  config.base_url = "https://api-eu1.totango.com";
  config.auth = {{"app_token", "totango-token-0001"}};
  config.options = {{"service_id", "SP-0000-11"},
                    {"region", "eu"},
                    {"allowed.Status", "Trial|Onboarding|Paying"}};
  FakeClock clock;
  const auto transport = ScriptedTransport(script);
  TotangoConnector connector(config, transport, &clock);
  const std::vector<std::string> origins = {config.base_url, "https://sdr-eu1.totango.com"};

  if (call.write) {
    const std::string& object = call.object.object;
    const nlohmann::json defaults =
        object == "users"     ? nlohmann::json{{"account_id", "crmb_k1"},
                                               {"email", "ann@example.se"},
                                               {"name", "Ann"},
                                               {"Contact", "yes"}}
        : object == "accounts" ? nlohmann::json{{"display_name", "Acme AB"}, {"Status", "Paying"}}
                               : nlohmann::json{{"account_id", "crmb_k1"},
                                                {"subject", "Kick-off"},
                                                {"content", "Booked"},
                                                {"title", "Call Ann"}};
    const auto fields = WriteFields(script, defaults);
    if (!fields) return 0;
    auto ops = Ops(call.ops, *fields, "", IdText(script), call.merges);
    // Every other op names its account as the engine does, by reference, the rest by a field.
    for (size_t i = 1; i < ops.size(); i += 2) {
      auto account = ops[i].fields.find("account_id");
      if (object == "accounts" || account == ops[i].fields.end() || !account->is_string()) continue;
      ops[i].refs["account_id"] = NativeRef{"accounts", account->get<std::string>(), "", ""};
      ops[i].fields.erase(account);
    }
    CheckOutcomes(connector.Write(call.object, ops), ops);
    CheckRequests(transport->requests(), origins, ops);
    return 0;
  }
  ReadPages(connector, call, [](const Cursor&) {});
  CheckRequests(transport->requests(), origins);
  return 0;
}
