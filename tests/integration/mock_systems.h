// The SystemConfig of each in-process mock, as the integration tests point crmbridge at them.
#pragma once

#include <string>

#include "src/config/app_config.h"

namespace crmbridge::testing_systems {

inline SystemConfig HubSpot(const std::string& base_url, const std::string& token) {
  SystemConfig h;
  h.name = h.kind = "hubspot";
  h.base_url = base_url;
  h.auth = {{"token", token}};
  return h;
}

// Client credentials against the mock's own token endpoint.
inline SystemConfig Dynamics365(const std::string& base_url, const std::string& client_id,
                                const std::string& client_secret) {
  SystemConfig m;
  m.name = m.kind = "dynamics365";
  m.base_url = base_url;
  m.auth = {{"token_url", base_url + "/tenant/oauth2/v2.0/token"},
            {"client_id", client_id},
            {"client_secret", client_secret},
            {"scope", base_url + "/.default"}};
  return m;
}

inline SystemConfig Portal(const std::string& base_url, const std::string& token) {
  SystemConfig q;
  q.name = q.kind = "portal";
  q.base_url = base_url;
  q.auth = {{"token", token}};
  return q;
}

}  // namespace crmbridge::testing_systems
