#include "src/engine/portal_rules.h"

#include <algorithm>

namespace crmbridge {

namespace {

std::string Text(const nlohmann::json& fields, const std::string& name) {
  if (!fields.is_object()) return "";
  auto it = fields.find(name);
  if (it == fields.end() || !it->is_string()) return "";
  const std::string& v = it->get_ref<const std::string&>();
  const size_t b = v.find_first_not_of(" \t\r\n"), e = v.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : v.substr(b, e - b + 1);
}

bool Yes(const nlohmann::json& fields, const std::string& name) {
  if (!fields.is_object()) return false;
  auto it = fields.find(name);
  return it != fields.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

PortalDecision DecidePortalAccess(const PortalAccessFlow& flow, const nlohmann::json& contact,
                                  bool contact_deleted, const nlohmann::json& company) {
  PortalDecision d;
  d.email = Text(contact, flow.email);
  d.property = Text(contact, flow.property);
  if (contact_deleted) {
    d.reason = "the contact was deleted";
  } else if (!Yes(contact, flow.contact_flag)) {
    d.reason = flow.contact + "." + flow.contact_flag + " is not true";
  } else if (d.email.empty()) {
    d.reason = "no " + flow.contact + "." + flow.email;
  } else if (d.property.empty()) {
    d.reason = "no " + flow.contact + "." + flow.property;
  } else if (!company.is_object()) {
    d.reason = "no " + flow.contact + "." + flow.company;
  } else if (!Yes(company, flow.company_flag)) {
    d.reason = "its " + flow.company + "'s " + flow.company_flag + " is not true";
  } else {
    d.eligible = true;
    // A management company's account lists its properties (comma- or space-separated): its
    // contacts get each of them.
    const std::string listed = flow.company_properties.empty() ? "" : Text(company, flow.company_properties);
    std::string token;
    for (size_t i = 0; i <= listed.size(); ++i) {
      const char ch = i < listed.size() ? listed[i] : ',';
      if (ch == ',' || ch == ';' || ch == ' ' || ch == '\n' || ch == '\t') {
        if (!token.empty() && std::find(d.grants.begin(), d.grants.end(), token) == d.grants.end())
          d.grants.push_back(token);
        token.clear();
      } else {
        token += ch;
      }
    }
    if (d.grants.empty()) d.grants.push_back(d.property);
  }
  return d;
}

}  // namespace crmbridge
