// PortalConnector (connectors/portal/portal_connector.h) on scripted portal answers
// (fuzz/connector_util.h): list pages of properties and users, the access scan (users, then each
// user's grants) with its cursor, property and user upserts with their conflicts and idempotency
// answers, grants with the password reset after them, and revokes.
//
// Whatever the portal answers: a read gives records with ids and a cursor to go on from (an access
// cursor DecodeAccessCursor takes back), a write gives one outcome per op, and a write done names
// the record written. Whatever values the ops carry (the script's "fields" and "id" lines), every
// request stays on the portal's host, its URL holds no id unencoded, and its JSON body is JSON
// (CheckRequests).
#include "connectors/portal/portal_codec.h"
#include "connectors/portal/portal_connector.h"
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
  if (!ObjectOfKind("portal", call.object.object)) return 0;

  SystemConfig config;
  config.name = "portal";
  config.kind = "portal";
  config.base_url = "https://portal.example.com";
  config.auth = {{"token", "portal-token-0001"}};
  FakeClock clock;
  const auto transport = ScriptedTransport(script);
  PortalConnector connector(config, transport, &clock);
  const std::vector<std::string> origins = {config.base_url};

  if (call.write) {
    const std::string& object = call.object.object;
    const nlohmann::json defaults =
        object == "users"  ? nlohmann::json{{"email", "ann@example.se"},
                                            {"first_name", "Ann"},
                                            {"last_name", nullptr},
                                            {"portal_access", "true"},
                                            {"main_property_id", ""}}
        : object == "access" ? nlohmann::json{{"property_external_id", "P-1"}}
                             : nlohmann::json{{"name", "Villa Ek"}, {"external_id", "P-1"}};
    const auto fields = WriteFields(script, defaults);
    if (!fields) return 0;
    const auto ops =
        Ops(call.ops, *fields, object == "access" ? "user_id" : "", IdText(script), call.merges);
    CheckOutcomes(connector.Write(call.object, ops), ops);
    CheckRequests(transport->requests(), origins, ops);
    return 0;
  }
  const bool access = call.object.object == "access";
  ReadPages(connector, call, [access](const Cursor& next) {
    if (!access) return;
    auto decoded = portal::DecodeAccessCursor(next);
    FUZZ_CHECK(decoded.ok(), "an access cursor the connector cannot read back: " + next);
  });
  CheckRequests(transport->requests(), origins);
  return 0;
}
