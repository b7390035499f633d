// The systems the mapping tests name. This binary links the mapping library alone, so the traits
// of each kind are spelled out here as the connector registry declares them; tests/engine checks
// that MappingSystemsOf() gives exactly these.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mappings/mapping.h"

namespace crmbridge::testing {

inline SystemTraits Traits(std::string kind, bool references, bool bind, bool portal_access,
                           std::vector<std::string> objects, std::string other_objects,
                           std::vector<SystemTraits::Param> params,
                           std::map<std::string, std::vector<std::string>> reference_fields = {},
                           std::map<std::string, std::vector<std::string>> required_params = {}) {
  SystemTraits t;
  t.kind = std::move(kind);
  t.carries_references = references;
  t.binds_lookups = bind;
  t.provisions_portal_access = portal_access;
  t.objects = std::move(objects);
  t.other_objects = std::move(other_objects);
  t.params = std::move(params);
  t.reference_fields = std::move(reference_fields);
  t.required_params = std::move(required_params);
  return t;
}

// `p`, whose value (else `default_value`) names a native field the connector writes itself, or
// which makes it write `when_given` (ParamSpec::value_is_own_field, own_field_when_given).
inline SystemTraits::Param OwnField(SystemTraits::Param p, std::string default_value,
                                    std::string when_given = "") {
  p.default_value = std::move(default_value);
  p.value_is_own_field = when_given.empty();
  p.own_field_when_given = std::move(when_given);
  return p;
}

// `t` whose references name the referenced object (Capabilities::references_name_objects).
inline SystemTraits ReferencesNameObjects(SystemTraits t) {
  t.references_name_objects = true;
  return t;
}

// `t` whose native field names must be plain names (Capabilities::plain_field_names).
inline SystemTraits PlainFieldNames(SystemTraits t) {
  t.plain_field_names = true;
  return t;
}

// `t` with objects it writes and never reads (Capabilities::written_only).
inline SystemTraits WrittenOnly(std::vector<std::string> objects, SystemTraits t) {
  t.written_only = std::move(objects);
  return t;
}

inline std::vector<SystemTraits> RegistryKindTraits() {
  //             kind           references  bind   portal access
  return {ReferencesNameObjects(PlainFieldNames(Traits("hubspot",     true,       false, false,
                 {"tickets", "companies", "contacts", "deals", "notes", "tasks", "calls",
                  "emails", "meetings", "line_items", "products", "quotes"},
                 "2-[0-9]+|p[0-9]*_[a-z0-9_]+",
                 {OwnField({"pipeline", "string", {"tickets", "deals"}}, "", "hs_pipeline"),
                  OwnField({"id_property", "name", {}}, "crmbridge_id"),
                  {"overlap_ms", "number", {}},
                  {"archived_sweep_ms", "number", {}}}))),
          PlainFieldNames(Traits("dynamics365", true,       true,  false,
                 {"accounts", "contacts", "opportunities", "annotations", "tasks"},
                 "(?!(?:account|contact|opportunity|annotation|task)$)[a-z][a-z0-9_]*",
                 {OwnField({"key", "name", {}}, "crmb_externalid"),
                  {"primary_key", "name", {}},
                  {"change_tracking", "boolean", {}},
                  {"create_only", "boolean", {}}})),
          Traits("portal",      false,      false, true, {"properties", "users", "access"}, "", {}),
          WrittenOnly({"touchpoints", "tasks"}, Traits("totango",     true,       false, false,
                 {"accounts", "users", "touchpoints", "tasks"}, "",
                 {{"activity_type_id", "string", {"touchpoints", "tasks"}},
                  {"subject", "string", {"touchpoints"}},
                  {"priority", "number", {"tasks"}, {"1", "2", "3"}},
                  {"contact", "boolean", {"users"}}},
                 {{"users", {"account_id"}}, {"touchpoints", {"account_id"}},
                  {"tasks", {"account_id"}}},
                 {{"tasks", {"activity_type_id"}}}))};
}

// The registry's traits of `kind` with what it can carry replaced.
inline SystemTraits TraitsOf(const std::string& kind, bool references, bool bind,
                             bool portal_access) {
  for (SystemTraits t : RegistryKindTraits())
    if (t.kind == kind) {
      t.carries_references = references;
      t.binds_lookups = bind;
      t.provisions_portal_access = portal_access;
      return t;
    }
  return Traits(kind, references, bind, portal_access, {}, "", {});
}

// `kinds`: system name -> kind.
inline MappingSystems Systems(std::map<std::string, std::string> kinds) {
  return MappingSystems{std::move(kinds), RegistryKindTraits()};
}

}  // namespace crmbridge::testing
