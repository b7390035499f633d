#include "connectors/totango/totango_errors.h"

#include <nlohmann/json.hpp>

#include "src/core/json_text.h"
#include "src/core/redaction.h"

namespace crmbridge::totango {

Status StatusFromTotango(const Response& response, const std::string& what) {
  if (response.status < 400) return Status::Ok();
  std::string text;
  const nlohmann::json body = ParseJsonOrDiscarded(response.body);
  if (body.is_object()) {
    for (const char* key : {"error", "message"}) {
      if (body.contains(key) && body[key].is_string()) {
        text = body[key].get<std::string>();
        break;
      }
    }
  }
  // Not JSON (or no message in it): StatusFromResponse quotes an excerpt of the body.
  if (text.empty()) return StatusFromResponse(response, "totango", what);
  Response headers_only;
  headers_only.status = response.status;
  headers_only.headers = response.headers;
  return StatusFromResponse(headers_only, "totango", Redactor::Global().Redact(what + ": " + text));
}

}  // namespace crmbridge::totango
