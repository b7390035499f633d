// The portal access rules as a pure function: every combination of the company flag, the contact
// flag, the email and the main property; deleted contacts; management companies.
#include "src/engine/portal_rules.h"

#include <gtest/gtest.h>

namespace crmbridge {
namespace {

using nlohmann::json;

TEST(PortalRulesTest, EveryCombinationOfTheFlagsAndTheEmail) {
  PortalAccessFlow flow;
  flow.contact = "contact";
  flow.company = "company";
  flow.company_flag = "activate_portal_access";
  flow.contact_flag = "portal_access";
  flow.email = "portal_email";
  flow.property = "main_property";
  int eligible = 0;
  for (int bits = 0; bits < 16; ++bits) {
    const bool company_on = bits & 1, contact_on = bits & 2, has_email = bits & 4, has_property = bits & 8;
    json contact = {{"portal_access", contact_on}};
    if (has_email) contact["portal_email"] = " anna@brf.se ";
    if (has_property) contact["main_property"] = "seed-prop-1";
    const json company = {{"activate_portal_access", company_on}};
    const PortalDecision d = DecidePortalAccess(flow, contact, false, company);
    EXPECT_EQ(d.eligible, company_on && contact_on && has_email && has_property) << bits;
    EXPECT_EQ(d.reason.empty(), d.eligible) << bits;
    if (d.eligible) {
      EXPECT_EQ(d.email, "anna@brf.se");
      ++eligible;
    }
    // A deleted contact, a contact without a company, or an empty email never gets access.
    EXPECT_FALSE(DecidePortalAccess(flow, contact, true, company).eligible);
    EXPECT_FALSE(DecidePortalAccess(flow, contact, false, json()).eligible);
  }
  EXPECT_EQ(eligible, 1);
  // A management company lists its properties: each is granted, once, instead of the main one.
  flow.company_properties = "managed_properties";
  const json contact = {{"portal_access", true}, {"portal_email", "a@b.se"}, {"main_property", "p1"}};
  EXPECT_EQ(DecidePortalAccess(flow, contact, false, {{"activate_portal_access", true}}).grants,
            std::vector<std::string>{"p1"});
  EXPECT_EQ(DecidePortalAccess(flow, contact, false,
                               {{"activate_portal_access", true}, {"managed_properties", "p2, p3;p2"}})
                .grants,
            (std::vector<std::string>{"p2", "p3"}));
  json blank = {{"portal_access", true}, {"portal_email", "   "}, {"main_property", "p"}};
  EXPECT_EQ(DecidePortalAccess(flow, blank, false, {{"activate_portal_access", true}}).reason,
            "no contact.portal_email");
}

}  // namespace
}  // namespace crmbridge
