// Dynamics365Connector (connectors/dynamics365/dynamics365_connector.h) on scripted Dataverse
// answers (fuzz/connector_util.h): the token endpoint's, OData collections and delta pages, a
// table read by modifiedon (params change_tracking=false) with its JSON watermark cursor, single
// upserts, and $batch answers (ops=2 and more), create-only tables (create_only=true) included,
// and a column's audit history (history=<column>).
//
// Whatever Dataverse answers: a read gives records with ids and a cursor to go on from, a write
// gives one outcome per op, and a write done names the row written. Whatever the answers' paging
// links and the ops' values (the script's "fields" and "id" lines), every request goes to the
// organisation or the token endpoint, its URL holds no id unencoded, and its JSON body is JSON
// (CheckRequests).
#include "connectors/dynamics365/dynamics365_connector.h"
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
  if (!ParseCall(script.call, {"batch_size", "history"}, &call)) return 0;
  if (!ObjectOfKind("dynamics365", call.object.object)) return 0;

  SystemConfig config;
  config.name = "dynamics365";
  config.kind = "dynamics365";
  config.base_url = "https://org.crm.dynamics.com";
  config.auth = {{"token_url", "https://login.example/tenant/oauth2/v2.0/token"},
                 {"client_id", "id"},
                 {"client_secret", "secret-0001"},
                 {"scope", "https://org.crm.dynamics.com/.default"}};
  if (call.options.count("batch_size")) config.options["batch_size"] = call.options["batch_size"];
  if (!Dynamics365Connector::ValidateConfig(config).ok()) return 0;
  FakeClock clock;
  const auto transport = ScriptedTransport(script);
  Dynamics365Connector connector(config, transport, &clock);
  const std::vector<std::string> origins = {config.base_url, "https://login.example"};

  if (call.options.count("history")) {
    // A column's past values from the audit history ("read <object> history=<column>"): dated,
    // oldest first, and only for the rows asked about.
    const std::vector<std::string> ids = {"6f2a1c3e-0000-4000-8000-000000000001",
                                          "6f2a1c3e-0000-4000-8000-000000000002"};
    auto history = connector.ReadFieldHistory(call.object, call.options["history"], ids);
    if (history.ok()) {
      for (const auto& [id, changes] : *history) {
        FUZZ_CHECK(std::find(ids.begin(), ids.end(), id) != ids.end(), "history of a row not asked for: " + id);
        for (size_t i = 0; i < changes.size(); ++i) {
          FUZZ_CHECK(changes[i].at_ms > 0, "an undated change of " + id);
          FUZZ_CHECK(i == 0 || changes[i - 1].at_ms <= changes[i].at_ms, "history out of order: " + id);
        }
      }
    }
    CheckRequests(transport->requests(), origins);
    return 0;
  }
  if (call.write) {
    const std::string ref = call.object.ref_fields.empty() ? "" : *call.object.ref_fields.begin();
    const auto fields = WriteFields(script, {{"name", "Acme AB"}, {"revenue", 1200.5}});
    if (!fields) return 0;
    const auto ops = Ops(call.ops, *fields, ref, IdText(script), call.merges);
    CheckOutcomes(connector.Write(call.object, ops), ops);
    CheckRequests(transport->requests(), origins, ops);
    return 0;
  }
  const bool by_modifiedon = call.object.params.count("change_tracking") &&
                             call.object.params.at("change_tracking") == "false";
  ReadPages(connector, call, [&](const Cursor& next) {
    if (!by_modifiedon) return;
    // The watermark cursor the connector reads back.
    const auto state = nlohmann::json::parse(next, nullptr, false);
    FUZZ_CHECK(state.is_object() && state.contains("w") && state["w"].is_number_integer(),
               "an unreadable watermark cursor: " + next);
  });
  CheckRequests(transport->requests(), origins);
  return 0;
}
