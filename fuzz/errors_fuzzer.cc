// Each vendor's error-body parser, called directly on one answer: StatusFromHubSpot (with
// ParseHubSpotError and the 423/429/477 readings), StatusFromDataverse and StatusFromTokenEndpoint
// (Dataverse's {"error":{...}} and Entra ID's token errors), StatusFromPortal and
// StatusFromTotango. The connector harnesses reach them too, but only after the requests before
// them; here every input is an error body.
//
// The input is a connector harness's script (fuzz/fuzz_util.h) whose first line names the parser
// (hubspot, dynamics365, token, portal, totango) and whose first answer is the one parsed.
//
// Whatever the answer: 1xx-3xx is OK (of the token endpoint's, any but a 200 is a failure) and
// anything else is a failure with a message that names what failed, carries the HTTP status,
// never shows a registered secret, and is valid UTF-8 whenever the body is (a vendor's words are
// quoted whole or cut between characters).
#include <optional>

#include "connectors/dynamics365/dynamics365_errors.h"
#include "connectors/hubspot/hubspot_errors.h"
#include "connectors/portal/portal_errors.h"
#include "connectors/totango/totango_errors.h"
#include "fuzz/fuzz_util.h"
#include "src/core/redaction.h"
#include "src/core/utf8.h"

namespace {

// A credential as crmbridge registers the ones it resolves; an input may echo it anywhere.
constexpr const char* kSecret = "fuzz-secret-0b7e4a91";
constexpr const char* kWhat = "the call under test";

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  crmbridge::fuzz::Quiet();
  crmbridge::Redactor::Global().AddSecret(kSecret);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crmbridge;
  using namespace crmbridge::fuzz;
  const Script script = ParseScript(Text(data, size));
  if (script.answers.empty() || !script.answers.front().ok()) return 0;
  const Response& response = *script.answers.front();
  const std::string& parser = script.call;

  std::optional<Status> status;
  bool names_what = true;
  if (parser == "hubspot") {
    (void)hubspot::ParseHubSpotError(response.body);
    (void)hubspot::ClassifyHubSpotHttp(response);
    status = hubspot::StatusFromHubSpot(response, kWhat);
  } else if (parser == "dynamics365") {
    (void)dynamics365::ParseDataverseError(response.body);
    status = dynamics365::StatusFromDataverse(response, kWhat);
  } else if (parser == "token") {
    // Called on every answer of the token endpoint but a 200, all of them failures.
    if (response.status == 200) return 0;
    status = dynamics365::StatusFromTokenEndpoint(response);
    names_what = false;
  } else if (parser == "portal") {
    (void)portal::ParsePortalError(response.body);
    status = portal::StatusFromPortal(response, kWhat);
  } else if (parser == "totango") {
    status = totango::StatusFromTotango(response, kWhat);
  } else {
    return 0;
  }

  if (response.status < 100) return 0;  // not an HTTP status at all
  const bool success = parser != "token" && response.status < 400;
  if (success) {
    FUZZ_CHECK(status->ok(), "a " + std::to_string(response.status) +
                                 " read as a failure: " + status->ToString());
    return 0;
  }
  FUZZ_CHECK(!status->ok(), "an HTTP " + std::to_string(response.status) + " read as success");
  const std::string& message = status->message();
  FUZZ_CHECK(!message.empty(), "a failure without a message");
  FUZZ_CHECK(status->http_status() == response.status, "HTTP " + std::to_string(response.status) +
                                                           " reported as " +
                                                           std::to_string(status->http_status()));
  if (names_what)
    FUZZ_CHECK(message.find(kWhat) != std::string::npos,
               "a message not naming the call: " + message);
  FUZZ_CHECK(message.find(kSecret) == std::string::npos, "a secret in a message: " + message);
  if (IsValidUtf8(response.body))
    FUZZ_CHECK(IsValidUtf8(message), "a message that is not UTF-8: " + PrintableText(message));
  return 0;
}
