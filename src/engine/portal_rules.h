// The portal access rules (docs/MAPPINGS.md "Portal access"), as a pure function so that each
// combination of conditions can be tested on its own.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mappings/mapping.h"

namespace crmbridge {

// What the flow's fields of one contact (and of its company, null when it has none or crmbridge
// does not hold it) say about its portal access.
struct PortalDecision {
  bool eligible = false;
  std::string reason;    // why not, when not eligible ("contact.portal_access is not true")
  std::string email;     // trimmed
  std::string property;  // trimmed: the portal property's external_id
  // The properties to grant: the main property, or, for a management company (its
  // PortalAccessFlow::company_properties lists several), each of those.
  std::vector<std::string> grants;
};

// A contact gets access only when its company's flag is true, its own flag is true, and it has a
// portal email and a main property; a deleted contact never does.
PortalDecision DecidePortalAccess(const PortalAccessFlow& flow, const nlohmann::json& contact,
                                  bool contact_deleted, const nlohmann::json& company);

}  // namespace crmbridge
