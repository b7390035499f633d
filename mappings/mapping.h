// The mapping language: how each system's native objects map to crmbridge's canonical entities.
//
// Integration engineers write mapping YAML files (docs/MAPPINGS.md is the reference; the shipped
// example is mappings/presets/onboarding.yaml). LoadMappingPlan() parses and validates them,
// reporting every problem as "file:line:col: message", and compiles them once into an immutable
// MappingPlan shared by every worker (like Envoy's ConfigSharedPtr). Mapping code knows no vendor
// API: it turns JSON field maps into JSON field maps.
//
// Direction words are from crmbridge's point of view: `in` = native -> canonical (read from the
// system), `out` = canonical -> native (written to the system), `both`.
//
// Thread-safety: a MappingPlan and everything it owns is immutable after loading; transforms are
// pure and may run on many threads.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/core/status.h"
#include "src/core/yaml_source.h"

namespace crmbridge {

enum class Direction { kIn, kOut, kBoth };

// kRef: a reference to a record of another canonical entity (a contact's company). Its canonical
// value is that record's canonical id; natively, the referenced record's id in that system, which
// the engine translates through its links.
enum class FieldType { kString, kNumber, kBoolean, kDateTime, kRef };

// A small, pure transform step. In() runs native -> canonical, Out() canonical -> native.
// Errors are record-level (kInvalidArgument naming the value).
class Transform {
 public:
  virtual ~Transform() = default;
  virtual std::string Name() const = 0;
  virtual Result<nlohmann::json> In(const nlohmann::json& value) const = 0;
  virtual Result<nlohmann::json> Out(const nlohmann::json& value) const = 0;
};

struct CanonicalField {
  std::string name;
  FieldType type = FieldType::kString;
  bool required = false;
  // The values the field may hold (a stage's canonical stages), empty = any. Every value table
  // used on the field must then cover each of them, so no canonical stage lacks a native one.
  std::vector<std::string> values;
  // End values (a stage's end stages, e.g. [closed]): reaching one ends the process, so reports
  // stop counting days in stage there, and start again if the record leaves it. Each is one of
  // `values` when the field declares them.
  std::vector<std::string> end_values;
  // Conflict policy: the system whose value wins when several changed the field ("hubspot"); a
  // change elsewhere is not taken and is overwritten with that system's value. Empty: the most
  // recent change wins, by each record's modification time.
  std::string system_of_record;
  std::string ref_entity;  // kRef: the entity referred to ("company")
  SourcePos pos;
};

// What a record deleted (or archived) in one system does to the others.
struct DeletePolicy {
  enum class Kind {
    kIgnore,     // reported and counted; the other systems keep their records
    kPropagate,  // the linked records in the other systems are deleted too
    kMark,       // the canonical record gets `set` (e.g. stage: inactive), written everywhere
  };
  Kind kind = Kind::kIgnore;
  nlohmann::json set = nlohmann::json::object();  // kMark: canonical field -> value
};

// What two records of one system merged into one (a user merging duplicates) does to the others.
enum class MergePolicy {
  // The absorbed record's copy in each other system is merged into the survivor's there too,
  // where that system can merge; where it cannot, the copy meets the entity's on_delete.
  kMerge,
  // The copies in other systems are left as they are (reported): someone merges them by hand.
  kKeep,
};

struct CanonicalEntity {
  std::string name;  // "onboarding"
  std::vector<CanonicalField> fields;
  DeletePolicy on_delete;
  MergePolicy on_merge = MergePolicy::kMerge;
  const CanonicalField* Find(const std::string& field) const;
};

struct FieldMap {
  std::string canonical;  // canonical field name
  std::string native;     // native field name
  Direction direction = Direction::kBoth;
  FieldType type = FieldType::kString;  // the canonical field's type
  std::vector<std::shared_ptr<const Transform>> transforms;  // applied in order for In, reversed for Out
  bool required = false;     // a record missing it (after transforms) is rejected
  bool create_only = false;  // written only when the target record is created
  std::string ref_entity;    // kRef fields: the entity referred to (the canonical field's)
  std::string bind;          // kRef fields: Dynamics 365 navigation property, when not `native`
  SourcePos pos;

  bool reads() const { return direction != Direction::kOut; }
  bool writes() const { return direction != Direction::kIn; }
};

// How one canonical entity lives in one system.
struct SystemEntityMapping {
  std::string system;  // system name from crmbridge.yaml ("hubspot")
  std::string entity;  // canonical entity ("onboarding")
  std::string object;  // native object ("tickets", "opportunities")
  std::map<std::string, std::string> params;  // connector parameters (pipeline, key, ...)
  std::vector<FieldMap> fields;
  // Match keys: canonical fields that identify a record of this system crmbridge has never
  // linked (first-time identity resolution), e.g. [email]. A record with no link and no crmbridge
  // key adopts the canonical record holding the same values, compared trimmed and case-folded.
  // A match key's field may be mapped `out` only: it is then read for matching alone (through
  // its transforms, inward), never merged as that system's value.
  std::vector<std::string> match;
  SourcePos match_pos;
  // Whether this system receives records of the entity created elsewhere (`create: false`: it
  // keeps only the records it has, linked by match key or crmbridge key, and updates them).
  bool create = true;
  SourcePos pos;

  bool reads() const;   // any field maps in, or it has match keys
  bool writes() const;  // any field maps out
};

// A reference as it travels from ToNative to the engine's flush, before it is translated to the
// target system's id: {"$ref": "company", "id": "<canonical id>"}.
nlohmann::json RefPlaceholder(const std::string& entity, const std::string& canonical_id);
// The canonical id of a placeholder, or nullopt when `value` is not one.
std::optional<std::string> RefPlaceholderId(const nlohmann::json& value);

// A native record mapped to canonical fields, or why it could not be.
struct MappedRecord {
  nlohmann::json fields = nlohmann::json::object();  // canonical field -> value (only mapped-in fields)
  // Match keys mapped `out` only, read for matching alone (absent when empty or not readable).
  nlohmann::json match_only = nlohmann::json::object();
  // The values a match key is computed from: `fields` (or `values`, the record as merged), with
  // `match_only` where they lack a value.
  nlohmann::json MatchValues() const { return WithMatchOnly(fields); }
  nlohmann::json WithMatchOnly(const nlohmann::json& values) const;
};

// The portal access flow (docs/MAPPINGS.md "Portal access"): which canonical fields decide that a
// contact gets a portal user and access to its main property. The loader adds two internal
// entities for it, `portal_user` (keyed by the contact's canonical id) and `portal_access` (one per
// contact and property), mapped to the portal system's users and access objects.
struct PortalAccessFlow {
  std::string system;         // the portal system's name ("portal")
  std::string contact;        // the contact entity ("contact")
  std::string company;        // the contact's reference field to its company ("company")
  std::string company_flag;   // boolean field of the company: activate portal access
  std::string contact_flag;   // boolean field of the contact: portal access
  std::string email;          // the contact's portal email
  std::string property;       // the contact's main property: the portal property's external_id
  // Optional string field of the company: a management company's properties (external_ids,
  // comma-separated); when set, its contacts are granted each of them instead of the main one.
  std::string company_properties;
  std::string first_name, last_name;  // optional: copied to the portal user
  // Optional contact fields the portal's answer is written back to (and from there to every
  // system that maps them): the portal user's id, and "granted" or "revoked".
  std::string user_id_field, state_field;
  SourcePos pos;
};
inline constexpr const char* kPortalUserEntity = "portal_user";
inline constexpr const char* kPortalAccessEntity = "portal_access";

class MappingPlan {
 public:
  // Canonical entities in dependency order (referenced entities first).
  const std::vector<CanonicalEntity>& entities() const { return entities_; }
  const std::vector<SystemEntityMapping>& mappings() const { return mappings_; }
  const CanonicalEntity* FindEntity(const std::string& entity) const;
  const SystemEntityMapping* Find(const std::string& system, const std::string& entity) const;
  // Systems that appear in the plan.
  std::set<std::string> systems() const;

  // native -> canonical through every `in`/`both` field of `m`. Missing native fields are absent
  // from the result (not null). kInvalidArgument names the field and value at fault. Reference
  // fields come out as they went in (a native id, or a placeholder): the engine resolves them.
  static Result<MappedRecord> ToCanonical(const SystemEntityMapping& m, const nlohmann::json& native);
  // One native value of field `f` through its transforms, inward (before its canonical type is
  // checked): what ToCanonical does to each field, for a value read apart from its record (a
  // match-only value, a past value from the field's history).
  static Result<nlohmann::json> FieldIn(const FieldMap& f, nlohmann::json value);
  // canonical -> native through every `out`/`both` field of `m`; create_only fields are written
  // only when `creating`. Canonical fields absent from `canonical` are not written. A reference
  // field's canonical id comes out as a RefPlaceholder.
  static Result<nlohmann::json> ToNative(const SystemEntityMapping& m, const nlohmann::json& canonical,
                                         bool creating);

  // The portal access flow, when a mapping file declares one.
  const std::optional<PortalAccessFlow>& portal_access() const { return portal_access_; }

  // Built by the loader only.
  MappingPlan(std::vector<CanonicalEntity> entities, std::vector<SystemEntityMapping> mappings,
              std::optional<PortalAccessFlow> portal_access = std::nullopt)
      : entities_(std::move(entities)),
        mappings_(std::move(mappings)),
        portal_access_(std::move(portal_access)) {}

 private:
  std::vector<CanonicalEntity> entities_;
  std::vector<SystemEntityMapping> mappings_;
  std::optional<PortalAccessFlow> portal_access_;
};

// What the mapping language needs to know of a system kind: whether its connector can do what a
// mapping asks of it. The callers fill it in from the connector registry (mapping code depends on
// no connector, and names no kind).
struct SystemTraits {
  std::string kind;                       // as in crmbridge.yaml
  bool carries_references = false;        // `ref` fields may be mapped to it
  // Per object, the native fields a `ref` may map to (an object not listed takes none); empty:
  // any field of any object.
  std::map<std::string, std::vector<std::string>> reference_fields;
  // Per object, params a mapping writing it must give unless a field writes the native field of
  // that name (Capabilities::required_params).
  std::map<std::string, std::vector<std::string>> required_params;
  bool binds_lookups = false;             // its `ref` fields may name a navigation property (`bind`)
  // A `ref` field's native is the referenced entity's object there (an association type).
  bool references_name_objects = false;
  bool provisions_portal_access = false;  // it can be the portal_access flow's system
  // What a mapping may name under it (its connector's declaration, connectors/connector.h):
  // `object` one of `objects` or matching `other_objects` (ECMAScript; "" none), and `params`
  // keys among `params`, each of its type and for its objects.
  struct Param {
    Param() = default;
    Param(std::string name, std::string type, std::vector<std::string> objects,
          std::vector<std::string> values = {})
        : name(std::move(name)), type(std::move(type)), objects(std::move(objects)),
          values(std::move(values)) {}

    std::string name;
    std::string type;                  // "string", "boolean", "number" or "name"
    std::vector<std::string> objects;  // empty: every object
    std::vector<std::string> values;   // the values it takes; empty: any of its type
    // The native field the connector writes itself (ParamSpec::value_is_own_field and
    // own_field_when_given, connectors/connector.h): a mapping writing it is refused.
    std::string default_value;
    bool value_is_own_field = false;
    std::string own_field_when_given;
  };
  std::vector<std::string> objects;
  std::string other_objects;
  std::vector<std::string> written_only;  // objects written and never read: no field maps `in`
  std::vector<Param> params;
  bool plain_field_names = false;  // each `native` a name of letters, digits and _ (IsPlainName)
};

// The systems a mapping may name, and what their kinds can do.
struct MappingSystems {
  // Each system name declared in crmbridge.yaml -> its kind. A kind not in `kinds` ("" when no
  // configuration says) is checked for nothing.
  std::map<std::string, std::string> systems;
  // Every kind crmbridge has a connector for: a system's traits, and the kinds an error names
  // as able to do what the system's kind cannot.
  std::vector<SystemTraits> kinds;
  // No configuration says which systems exist (`mappings validate FILE...`): any system name is
  // taken, and its kind is checked for nothing.
  bool any_system = false;
};

// Loads, validates and compiles mapping files. A mapping that names a system not in
// `systems.systems`, or asks of a system what its kind cannot do, is an error. On failure,
// kInvalidArgument listing every diagnostic, one per line.
Result<std::shared_ptr<const MappingPlan>> LoadMappingPlan(const std::vector<std::string>& files,
                                                           const MappingSystems& systems);

}  // namespace crmbridge
