// HubSpot error bodies -> Status. The body is {"status":"error","message":…,"correlationId":…,
// "category":…} (every field optional, per HubSpot's own guidance); the HTTP status decides the
// code, the body adds the vendor's words and the correlation id support will ask for.
#pragma once

#include <string>

#include "src/core/transport.h"

namespace crmbridge::hubspot {

// OK for 2xx; otherwise StatusFromResponse() (the body excerpt carries HubSpot's category,
// message and correlationId). A 429 for the DAILY policy is kFailedPrecondition: it does not lift
// within a run, so retrying would be wrong.
Status StatusFromHubSpot(const Response& response, const std::string& what);

}  // namespace crmbridge::hubspot
