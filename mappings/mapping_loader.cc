// LoadMappingPlan: mapping YAML -> validated, compiled MappingPlan. Every problem found is
// reported (not only the first), each with file:line:column and, where it helps, a hint.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <regex>
#include <set>
#include <string_view>
#include <tuple>

#include "mappings/mapping.h"
#include "mappings/transforms.h"
#include "src/core/did_you_mean.h"
#include "src/core/param_value.h"
#include "src/core/time_util.h"
#include "src/core/url.h"
#include "src/core/utf8.h"

namespace crmbridge {

using nlohmann::json;

namespace {

const std::set<std::string> kTopKeys = {"version", "entities", "tables", "systems", "portal_access"};
const std::set<std::string> kEntityKeys = {"fields", "on_delete", "on_merge"};
const std::set<std::string> kCanonicalFieldKeys = {"type",       "required", "values",
                                                   "end_values", "system_of_record", "entity"};
const std::set<std::string> kSystemEntityKeys = {"object", "params", "fields", "match", "create"};
const std::set<std::string> kFieldMapKeys = {"native",   "direction",   "transforms",
                                             "required", "create_only", "bind"};
const std::set<std::string> kRowKeys = {"native", "canonical", "prefer"};
// The longest native object name taken (vendors' limits are shorter: Dataverse 128, HubSpot 100).
constexpr size_t kMaxObjectName = 256;
const std::map<std::string, FieldType> kTypes = {{"string", FieldType::kString},
                                                 {"number", FieldType::kNumber},
                                                 {"boolean", FieldType::kBoolean},
                                                 {"datetime", FieldType::kDateTime},
                                                 {"ref", FieldType::kRef}};
std::string Join(const std::set<std::string>& words, const std::string& separator = ", ") {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : separator) + w;
  return out;
}

template <typename M>
std::set<std::string> Keys(const M& m) {
  std::set<std::string> out;
  for (const auto& kv : m) out.insert(kv.first);
  return out;
}

// A value as the lookups compare it: a string's own text, anything else its JSON text.
std::string TextOf(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// YAML scalars become typed JSON: numbers stay numbers so a table row `native: 100000000`
// matches an integer choice value.
json ScalarToJson(const YAML::Node& n) {
  if (!n.IsScalar()) return json();
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return json(s);  // quoted in the file: a string
  if (s == "true") return json(true);
  if (s == "false") return json(false);
  if (s == "null" || s == "~") return json();
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used == s.size()) return json(v);
  } catch (const std::exception&) {
  }
  return json(s);
}

class Loader {
 public:
  explicit Loader(const MappingSystems& systems)
      : known_systems_(systems.systems), kinds_(systems.kinds), any_system_(systems.any_system) {}

  void LoadFile(const std::string& file, const YAML::Node& root) {
    file_ = file;
    if (!root.IsMap()) {
      Error(root, "a mapping file must be a map", "top-level keys: " + Join(kTopKeys));
      return;
    }
    CheckKeys(root, kTopKeys, "the mapping file");
    if (!root["version"]) {
      Error(root, "missing 'version'", "version: 1");
    } else if (root["version"].Scalar() != "1") {
      Error(root["version"], "unsupported version '" + root["version"].Scalar() + "'",
            "this crmbridge reads version 1");
    }
    if (root["entities"]) Entities(root["entities"]);
    if (root["tables"]) Tables(root["tables"]);
    if (root["systems"]) Systems(root["systems"]);
    if (root["portal_access"]) PortalAccess(root["portal_access"]);
  }

  Diagnostics& diags() { return diags_; }
  std::optional<PortalAccessFlow>& portal() { return portal_; }
  std::vector<CanonicalEntity>& entities() { return entities_; }
  std::vector<SystemEntityMapping>& mappings() { return mappings_; }

  // Systems are resolved after every file is read, so tables and entities may live in any file.
  void ResolvePending() {
    for (auto& p : pending_) {
      SystemEntityMapping& m = mappings_[p.mapping];
      FieldMap& f = m.fields[p.field];
      const CanonicalEntity* e = FindEntity(m.entity);
      if (e == nullptr) continue;  // reported already
      const CanonicalField* cf = e->Find(f.canonical);
      if (cf == nullptr) {
        std::set<std::string> names;
        for (const auto& fld : e->fields) names.insert(fld.name);
        diags_.Error(f.pos, "entity '" + m.entity + "' has no field '" + f.canonical + "'",
                     "its fields: " + Join(names));
        continue;
      }
      f.type = cf->type;
      if (p.has_required_false && cf->required)
        Error(p.required_false,
              "required: false has no effect: " + m.entity + "." + f.canonical +
                  " is required in every system, as its entity declares it",
              "drop it, or drop required: true from the entity and give it per system");
      f.required = f.required || cf->required;
      f.ref_entity = cf->ref_entity;
      if (cf->type == FieldType::kRef) {
        if (!f.transforms.empty())
          diags_.Error(f.pos, m.entity + "." + f.canonical + " is a reference: it takes no transforms",
                       "the engine translates the referenced record's id between systems");
        CheckReferenceMapping(m, f);
      } else if (!f.bind.empty()) {
        diags_.Error(f.pos, "'bind' is for reference fields, and " + m.entity + "." + f.canonical +
                                " is a " + TypeName(cf->type),
                     "drop it, or declare the field {type: ref, entity: ...}");
      }
      for (const auto& [pos, name, gives] : p.typed) {
        // A date may live in a string field as well as a datetime one.
        const bool ok = gives == cf->type || (gives == FieldType::kDateTime && cf->type == FieldType::kString);
        if (!ok)
          diags_.Error(pos,
                       "transform '" + name + "' gives a " + TypeName(gives) + ", but " + m.entity +
                           "." + f.canonical + " is a " + TypeName(cf->type),
                       "declare the field {type: " + TypeName(gives) + "} or drop the transform");
      }
      for (const auto& [node_pos, name, slot] : p.tables) {
        auto t = tables_.find(name);
        if (t == tables_.end()) {
          diags_.Error(node_pos, "unknown table '" + name + "'",
                       tables_.empty() ? "declare it under tables:"
                                       : "tables: " + Join(Keys(tables_)));
          continue;
        }
        f.transforms[slot] = NewTableLookup(t->second);
        if (!cf->values.empty()) CheckTableCovers(*t->second, *cf, m.entity, node_pos);
      }
      if (p.has_default && p.default_slot + 1 == f.transforms.size())
        CheckDefault(m, *cf, p.default_node);
    }
    CheckSystemsOfRecord();
    CheckMatchKeys();
    CheckObjectsMappedOnce();
    OrderByReferences();
    if (portal_) CompilePortalAccess();
  }

 private:
  struct Pending {
    size_t mapping = 0;
    size_t field = 0;
    // Each {table: NAME} of the field: where it is, the table's name, its slot in the transforms.
    std::vector<std::tuple<SourcePos, std::string, size_t>> tables;
    // Typed transforms, checked against the canonical field's type once entities are known.
    std::vector<std::tuple<SourcePos, std::string, FieldType>> typed;
    // The field's last {default: X} and its slot: when it is the last transform, X is what the
    // canonical field is given, checked then against the field's type and values.
    // (A default-constructed YAML::Node is a defined null: `has_` says whether one was given.)
    bool has_default = false;
    YAML::Node default_node;
    size_t default_slot = 0;
    bool has_required_false = false;  // `required: false`, which cannot relax the entity's
    YAML::Node required_false;
  };

  SourcePos Pos(const YAML::Node& n) { return PosOf(n, file_); }
  void Error(const YAML::Node& n, std::string msg, std::string hint = "") {
    diags_.Error(Pos(n), std::move(msg), std::move(hint));
  }
  void CheckKeys(const YAML::Node& map, const std::set<std::string>& known, const std::string& in) {
    for (const auto& kv : map) {
      const std::string key = kv.first.Scalar();
      if (!known.count(key))
        Error(kv.first, "unknown key '" + key + "' in " + in, DidYouMean(key, known));
    }
  }
  // `object` and `params` of system.entity against what the system's kind declares it reads.
  void CheckAgainstKind(const std::string& system, const SystemEntityMapping& m,
                        const YAML::Node& body) {
    const SystemTraits* traits = TraitsOf(system);
    if (traits == nullptr) return;
    const std::set<std::string> objects(traits->objects.begin(), traits->objects.end());
    if (m.object.size() > kMaxObjectName) {
      // Not matched: std::regex recurses once per character, and tens of thousands of them
      // overflow the stack.
      Error(body["object"], "an object name of " + std::to_string(m.object.size()) +
                                " characters; no API names one longer than " +
                                std::to_string(kMaxObjectName));
    } else if (!m.object.empty() && !objects.count(m.object) &&
        (traits->other_objects.empty() ||
         !std::regex_match(m.object, std::regex(traits->other_objects)))) {
      Error(body["object"], "unknown object '" + m.object + "' for " + system + ", of kind " +
                                traits->kind,
            DidYouMean(m.object, objects) + " (crmbridge connectors describe " + traits->kind +
                ")");
    }
    if (!body["params"] || !body["params"].IsMap()) return;
    std::set<std::string> names;
    for (const SystemTraits::Param& p : traits->params) names.insert(p.name);
    for (const auto& kv : body["params"]) {
      const std::string key = kv.first.Scalar();
      const SystemTraits::Param* param = nullptr;
      for (const SystemTraits::Param& p : traits->params)
        if (p.name == key) param = &p;
      if (param == nullptr) {
        Error(kv.first, "unknown param '" + key + "' for " + traits->kind + " " + m.object,
              names.empty() ? traits->kind + " takes no params" : DidYouMean(key, names));
        continue;
      }
      if (!param->objects.empty() &&
          std::find(param->objects.begin(), param->objects.end(), m.object) ==
              param->objects.end()) {
        Error(kv.first, "param '" + key + "' is for " + Join(std::set<std::string>(
                            param->objects.begin(), param->objects.end())) + ", not " + m.object);
        continue;
      }
      const std::string value = kv.second.IsScalar() ? kv.second.Scalar() : "";
      if (!kv.second.IsScalar()) {
        Error(kv.second, "param '" + key + "' must be a single value");
      } else if (value.empty()) {
        // A connector reads "" as not given: the mapping would say something it does not do.
        Error(kv.second, "param '" + key + "' is empty",
              "leave it out for the connector's default (crmbridge connectors describe " +
                  traits->kind + ")");
      } else if (std::string problem = ParamValueProblem(param->type, param->values, value);
                 !problem.empty()) {
        Error(kv.second, "param '" + key + "' " + problem);
      }
    }
  }
  // The params system.entity's object needs when the mapping writes it (SystemTraits::
  // required_params), given or written by a field of the same native name.
  void CheckRequiredParams(const std::string& system, const SystemEntityMapping& m,
                           const YAML::Node& body) {
    const SystemTraits* traits = TraitsOf(system);
    if (traits == nullptr) return;
    auto required = traits->required_params.find(m.object);
    if (required == traits->required_params.end()) return;
    const auto writes = [&](const FieldMap& f) { return f.direction != Direction::kIn; };
    if (std::none_of(m.fields.begin(), m.fields.end(), writes)) return;
    for (const std::string& name : required->second) {
      if (auto given = m.params.find(name); given != m.params.end() && !given->second.empty())
        continue;  // an empty value is no value: connectors read "" as not given
      if (std::any_of(m.fields.begin(), m.fields.end(),
                      [&](const FieldMap& f) { return writes(f) && f.native == name; }))
        continue;
      Error(body, system + "." + m.entity + " writes " + traits->kind + " " + m.object +
                      ", which need params." + name + " (or a field written to " + name + ")",
            "params: {" + name + ": ...}; crmbridge connectors describe " + traits->kind);
    }
  }
  // A native field the connector writes itself on m.object (the key it upserts by, a pipeline it
  // files records into; SystemTraits::Param) cannot also be written by a field: one would
  // overwrite the other, or a record's key would become a field's value and its link break.
  void CheckOwnFields(const std::string& system, const SystemEntityMapping& m) {
    const SystemTraits* traits = TraitsOf(system);
    if (traits == nullptr) return;
    for (const SystemTraits::Param& p : traits->params) {
      if (!p.objects.empty() &&
          std::find(p.objects.begin(), p.objects.end(), m.object) == p.objects.end())
        continue;
      auto given = m.params.find(p.name);
      const bool is_given = given != m.params.end() && !given->second.empty();
      std::string own;
      if (p.value_is_own_field) own = is_given ? given->second : p.default_value;
      else if (is_given) own = p.own_field_when_given;
      if (own.empty()) continue;
      for (const FieldMap& f : m.fields) {
        if (f.direction == Direction::kIn || f.native != own) continue;
        diags_.Error(f.pos,
                     system + "." + m.entity + "." + f.canonical + " writes " + own + ", which " +
                         traits->kind + " sets itself on " + m.object + " (params." + p.name +
                         (is_given ? ": " + given->second : ", by default " + own) + ")",
                     "map the field to another native field, or read it alone (direction: in)");
      }
    }
  }
  // Two entities on one object of a system, with the same params (nothing that tells their
  // records apart): every record there would be read as both, or what one writes there read back
  // as the other, and copied on as a record of it.
  void CheckObjectsMappedOnce() {
    for (size_t j = 0; j < mappings_.size(); ++j) {
      const SystemEntityMapping& b = mappings_[j];
      for (size_t i = 0; i < j; ++i) {
        const SystemEntityMapping& a = mappings_[i];
        if (a.system != b.system || a.object != b.object || a.params != b.params) continue;
        if (!a.reads() && !b.reads()) continue;  // written alone, each its own records
        const std::string how =
            a.reads() && b.reads()
                ? "every record there would be read as both a " + a.entity + " and a " + b.entity
                : "what " + (a.reads() ? b.entity : a.entity) + " writes there would be read " +
                      "back as a " + (a.reads() ? a.entity : b.entity);
        diags_.Error(b.pos,
                     b.system + "." + b.entity + " maps " + b.object + ", as " + a.system + "." +
                         a.entity + " does (" + a.pos.ToString() + "): " + how,
                     "map each entity to an object of its own, or tell their records apart by "
                     "params");
        break;
      }
    }
  }
  // The text of a node that names something (a field, a system, an object, a value): one
  // non-empty scalar. A list, a map, a null or '' there is an error at the node, not "" read on
  // (yaml-cpp's Scalar() of anything but a scalar is "", which would silently mean "none").
  std::string Text(const YAML::Node& n, const std::string& what, const std::string& example) {
    if (n.IsScalar() && !n.Scalar().empty()) return n.Scalar();
    const std::string got = n.IsSequence() ? "a list"
                            : n.IsMap()    ? "a map"
                            : n.IsScalar() ? "empty"
                                           : "null";
    Error(n, what + " must be a single name or value, not " + got, example);
    return "";
  }
  // A scalar's value, or null for an explicit null; a list or a map is an error at the node.
  json Value(const YAML::Node& n, const std::string& what, const std::string& example) {
    if (n.IsScalar() || n.IsNull()) return ScalarToJson(n);
    Error(n, what + " must be a single value, not " + std::string(n.IsMap() ? "a map" : "a list"),
          example);
    return json();
  }
  // Whether `n` is a value on_delete can set `f` to: one scalar of its type, or null (cleared).
  static bool OnDeleteValueFits(const CanonicalField& f, const YAML::Node& n) {
    if (n.IsNull()) return f.type != FieldType::kRef;
    if (!n.IsScalar()) return false;
    const json v = ScalarToJson(n);
    switch (f.type) {
      case FieldType::kBoolean: return v.is_boolean();
      case FieldType::kNumber: {
        if (v.is_number()) return true;
        char* end = nullptr;
        const std::string& text = n.Scalar();
        std::strtod(text.c_str(), &end);
        return !text.empty() && end == text.c_str() + text.size();
      }
      case FieldType::kDateTime:
        return v.is_string() && ParseIsoUtcMillis(v.get<std::string>()).has_value();
      case FieldType::kRef: return false;
      default: return true;
    }
  }
  // A {default: X} last in a field's transforms gives the canonical field X (read in) and is
  // what the other transforms are given (written out): X must be a value the field can hold, as
  // an on_delete value must, or every record without the field fails where it is written.
  void CheckDefault(const SystemEntityMapping& m, const CanonicalField& cf, const YAML::Node& x) {
    if (!x.IsScalar()) return;  // a null default, or one refused where it was read
    if (!OnDeleteValueFits(cf, x)) {
      Error(x, "default '" + PrintableText(x.Scalar()) + "' cannot be a value of " + m.entity +
                   "." + cf.name + ", a " + TypeName(cf.type),
            cf.type == FieldType::kBoolean ? "true or false" : "a single value of the field's type");
    } else if (!cf.values.empty() &&
               std::find(cf.values.begin(), cf.values.end(), x.Scalar()) == cf.values.end()) {
      const std::set<std::string> values(cf.values.begin(), cf.values.end());
      Error(x, "default '" + PrintableText(x.Scalar()) + "' is not one of " + m.entity + "." +
                   cf.name + "'s values",
            DidYouMean(x.Scalar(), values));
    }
  }
  // A field read from an object its connector only writes would fail every run that reads it.
  void CheckWrittenOnly(const std::string& system, const SystemEntityMapping& m) {
    const SystemTraits* traits = TraitsOf(system);
    if (traits == nullptr || std::find(traits->written_only.begin(), traits->written_only.end(),
                                       m.object) == traits->written_only.end())
      return;
    for (const FieldMap& f : m.fields) {
      if (f.direction == Direction::kOut) continue;
      const std::string how =
          f.direction == Direction::kIn ? "direction: in" : "direction: both, the default";
      diags_.Error(f.pos, traits->kind + " " + m.object + " are written, not read, and " + system +
                              "." + m.entity + "." + f.canonical + " is read (" + how + ")",
                   "direction: out (crmbridge connectors describe " + traits->kind + ")");
    }
  }
  bool Bool(const YAML::Node& n, const std::string& what) {
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) return n.Scalar() == "true";
    Error(n, what + " must be true or false");
    return false;
  }
  const CanonicalEntity* FindEntity(const std::string& name) const {
    for (const auto& e : entities_)
      if (e.name == name) return &e;
    return nullptr;
  }

  void Entities(const YAML::Node& n) {
    if (!n.IsMap()) return Error(n, "entities must be a map of entity name to its fields");
    for (const auto& kv : n) {
      CanonicalEntity e;
      e.name = kv.first.Scalar();
      if (FindEntity(e.name) != nullptr) {
        Error(kv.first, "entity '" + e.name + "' is declared twice");
        continue;
      }
      const YAML::Node body = kv.second;
      if (body.IsMap()) CheckKeys(body, kEntityKeys, "entity '" + e.name + "'");
      if (!body.IsMap() || !body["fields"] || !body["fields"].IsMap()) {
        Error(kv.second, "entity '" + e.name + "' needs a map of fields",
              "fields: {title: {type: string}}");
        continue;
      }
      std::optional<YAML::Node> mark;  // checked against the fields once they are read
      if (const YAML::Node d = body["on_delete"]) {
        if (d.IsScalar() && d.Scalar() == "ignore") {
          e.on_delete.kind = DeletePolicy::Kind::kIgnore;
        } else if (d.IsScalar() && d.Scalar() == "propagate") {
          e.on_delete.kind = DeletePolicy::Kind::kPropagate;
        } else if (d.IsMap() && d.size() == 1 && d["set"] && d["set"].IsMap() && d["set"].size() > 0) {
          e.on_delete.kind = DeletePolicy::Kind::kMark;
          for (const auto& kv2 : d["set"]) e.on_delete.set[kv2.first.Scalar()] = ScalarToJson(kv2.second);
          mark = d["set"];
        } else {
          Error(d, "on_delete must be ignore, propagate, or {set: {field: value}}",
                "on_delete: {set: {stage: inactive}} marks the record inactive everywhere");
        }
      }
      if (const YAML::Node d = body["on_merge"]) {
        if (d.IsScalar() && d.Scalar() == "merge") {
          e.on_merge = MergePolicy::kMerge;
        } else if (d.IsScalar() && d.Scalar() == "keep") {
          e.on_merge = MergePolicy::kKeep;
        } else {
          Error(d, "on_merge must be merge or keep",
                "on_merge: merge carries a merge made in one system to the others");
        }
      }
      for (const auto& fkv : body["fields"]) {
        CanonicalField f;
        f.name = fkv.first.Scalar();
        const YAML::Node spec = fkv.second;
        if (spec.IsMap()) {
          CheckKeys(spec, kCanonicalFieldKeys, "field '" + f.name + "'");
          if (spec["type"]) {
            auto t = kTypes.find(spec["type"].Scalar());
            if (t == kTypes.end())
              Error(spec["type"], "unknown type '" + spec["type"].Scalar() + "'",
                    "types: " + Join(Keys(kTypes)));
            else
              f.type = t->second;
          }
          if (spec["required"]) f.required = Bool(spec["required"], "required");
          if (spec["entity"]) {
            f.ref_entity = Text(spec["entity"], "entity", "entity: company");
            ref_pos_[e.name + "." + f.name] = Pos(spec["entity"]);
          } else if (spec["type"]) {
            ref_pos_[e.name + "." + f.name] = Pos(spec["type"]);
          }
          if (spec["system_of_record"]) {
            f.system_of_record = Text(spec["system_of_record"], "system_of_record",
                                      "system_of_record: <a system's name>");
            f.pos = Pos(spec["system_of_record"]);
            if (!known_systems_.empty() && !Declared(f.system_of_record))
              Error(spec["system_of_record"], "unknown system '" + f.system_of_record + "'",
                    "systems declared in crmbridge.yaml: " + Join(Keys(known_systems_)));
          }
          if (spec["values"]) {
            ref_pos_[e.name + "." + f.name + "#values"] = Pos(spec["values"]);
            if (!spec["values"].IsSequence() || spec["values"].size() == 0) {
              Error(spec["values"], "values must be a list of the field's canonical values",
                    "values: [new, onboarding, closed]");
            } else {
              std::set<std::string> seen;
              for (const auto& v : spec["values"]) {
                const std::string value = Text(v, "a canonical value", "values: [new, closed]");
                if (value.empty()) continue;
                if (!seen.insert(value).second) Error(v, "value '" + value + "' is listed twice");
                f.values.push_back(value);
              }
            }
          }
          if (const YAML::Node ends = spec["end_values"]) {
            if (!ends.IsSequence() || ends.size() == 0) {
              Error(ends, "end_values must be a list of the field's end values",
                    "end_values: [closed]");
            } else {
              for (const auto& v : ends) {
                if (!v.IsScalar()) {
                  Error(v, "end_values must be a list of the field's end values",
                        "end_values: [closed]");
                } else if (std::find(f.end_values.begin(), f.end_values.end(), v.Scalar()) !=
                           f.end_values.end()) {
                  Error(v, "end value '" + v.Scalar() + "' is listed twice");
                } else if (!f.values.empty() && std::find(f.values.begin(), f.values.end(),
                                                          v.Scalar()) == f.values.end()) {
                  // A misspelt end stage would silently keep every clock running.
                  Error(v, "end value '" + v.Scalar() + "' is not one of " + e.name + "." + f.name +
                               "'s values",
                        "values: " + Join(std::set<std::string>(f.values.begin(), f.values.end())));
                } else {
                  f.end_values.push_back(v.Scalar());
                }
              }
            }
          }
        } else if (!spec.IsNull()) {
          Error(spec, "field '" + f.name + "' must be a map", "{type: string}");
        }
        e.fields.push_back(f);
      }
      if (mark) {
        for (const auto& kv2 : *mark) {
          const CanonicalField* f = e.Find(kv2.first.Scalar());
          if (f == nullptr)
            Error(kv2.first, "on_delete sets '" + kv2.first.Scalar() + "', which is not a field of " + e.name);
          else if (!OnDeleteValueFits(*f, kv2.second))
            Error(kv2.second, "on_delete sets " + e.name + "." + f->name + ", a " +
                                  TypeName(f->type) + ", to " +
                                  PrintableText(YAML::Dump(kv2.second)),
                  f->type == FieldType::kRef ? "a reference cannot be set to a value"
                                             : "a single value of the field's type");
          else if (!f->values.empty() &&
                   std::find(f->values.begin(), f->values.end(), kv2.second.Scalar()) == f->values.end())
            Error(kv2.second, "on_delete sets " + e.name + "." + f->name + " to '" + kv2.second.Scalar() +
                                  "', which is not one of its values");
        }
      }
      entities_.push_back(std::move(e));
    }
  }

  void Tables(const YAML::Node& n) {
    if (!n.IsMap()) return Error(n, "tables must be a map of table name to rows");
    for (const auto& kv : n) {
      auto table = std::make_shared<ValueTable>();
      table->name = kv.first.Scalar();
      table->pos = Pos(kv.first);
      if (tables_.count(table->name)) {
        Error(kv.first, "table '" + table->name + "' is declared twice");
        continue;
      }
      if (!kv.second.IsSequence() || kv.second.size() == 0) {
        Error(kv.second, "table '" + table->name + "' must be a list of rows",
              "- {native: \"Ny\", canonical: new}");
        continue;
      }
      for (const auto& row : kv.second) {
        if (!row.IsMap() || !row["native"] || !row["canonical"]) {
          Error(row, "a table row needs 'native' and 'canonical'",
                "- {native: \"Ny\", canonical: new}");
          continue;
        }
        CheckKeys(row, kRowKeys, "a table row");
        ValueTable::Row r;
        const char* example = "- {native: \"Ny\", canonical: new}";
        r.native = Value(row["native"], "a table row's native", example);
        r.canonical = Text(row["canonical"], "a table row's canonical", example);
        if (row["prefer"]) r.prefer = Bool(row["prefer"], "prefer");
        table->rows.push_back(std::move(r));
      }
      CheckManyToOne(*table, kv.first);
      tables_[table->name] = table;
    }
  }

  void PortalAccess(const YAML::Node& n) {
    if (!n.IsMap()) return Error(n, "portal_access must be a map", "portal_access: {system: portal, ...}");
    if (portal_) return Error(n, "portal_access is declared twice");
    PortalAccessFlow f;
    f.pos = Pos(n);
    // Every key of the section: where it goes, and whether it may be left out.
    const struct {
      const char* key;
      std::string* out;
      bool optional;
    } keys[] = {{"system", &f.system, false},
                {"contact", &f.contact, false},
                {"company", &f.company, false},
                {"company_flag", &f.company_flag, false},
                {"contact_flag", &f.contact_flag, false},
                {"email", &f.email, false},
                {"property", &f.property, false},
                {"first_name", &f.first_name, true},
                {"last_name", &f.last_name, true},
                {"user_id_field", &f.user_id_field, true},
                {"state_field", &f.state_field, true},
                {"company_properties", &f.company_properties, true}};
    std::set<std::string> known;
    for (const auto& k : keys) known.insert(k.key);
    CheckKeys(n, known, "portal_access");
    for (const auto& [key, out, optional] : keys) {
      if (n[key] && n[key].IsScalar() && !n[key].Scalar().empty()) {
        *out = n[key].Scalar();
        portal_pos_[key] = Pos(n[key]);
      } else if (n[key]) {
        Error(n[key], "portal_access." + std::string(key) + " must be a field name",
              std::string(key) + ": <a field of the entity>");
      } else if (!optional) {
        Error(n, "portal_access needs '" + std::string(key) + "'",
              "see docs/MAPPINGS.md \"Portal access\"");
      }
    }
    portal_ = f;
  }

  // Checks the flow's fields against the entities and adds the two portal entities and their
  // mappings to the plan, after every other entity (they refer to contacts).
  void CompilePortalAccess() {
    const PortalAccessFlow& f = *portal_;
    auto at = [&](const char* key) { return portal_pos_.count(key) ? portal_pos_[key] : f.pos; };
    if (!Declared(f.system)) {
      diags_.Error(at("system"), "unknown system '" + f.system + "'",
                   "systems declared in crmbridge.yaml: " + Join(Keys(known_systems_)));
      return;
    }
    const SystemTraits* traits = TraitsOf(f.system);
    if (traits != nullptr && !traits->provisions_portal_access)
      diags_.Error(at("system"),
                   "portal_access needs a portal system, and " + f.system + " is " + traits->kind,
                   "portal users and access are provisioned by: " +
                       Join(KindsThat(&SystemTraits::provisions_portal_access)));
    const CanonicalEntity* contact = FindEntity(f.contact);
    if (contact == nullptr) {
      diags_.Error(at("contact"), "unknown entity '" + f.contact + "'");
      return;
    }
    auto field = [&](const CanonicalEntity& e, const std::string& name, const char* key,
                     std::optional<FieldType> type) -> const CanonicalField* {
      if (name.empty()) return nullptr;  // its key is missing or not a name: reported already
      const CanonicalField* cf = e.Find(name);
      if (cf == nullptr) {
        std::set<std::string> names;
        for (const auto& fld : e.fields) names.insert(fld.name);
        diags_.Error(at(key), "entity '" + e.name + "' has no field '" + name + "'",
                     "its fields: " + Join(names));
      } else if (type && cf->type != *type) {
        diags_.Error(at(key), "portal_access." + std::string(key) + " must be a " + TypeName(*type) +
                                  " field, and " + e.name + "." + name + " is a " + TypeName(cf->type));
        return nullptr;
      }
      return cf;
    };
    const CanonicalField* ref = field(*contact, f.company, "company", FieldType::kRef);
    field(*contact, f.contact_flag, "contact_flag", FieldType::kBoolean);
    field(*contact, f.email, "email", FieldType::kString);
    field(*contact, f.property, "property", FieldType::kString);
    if (!f.first_name.empty()) field(*contact, f.first_name, "first_name", FieldType::kString);
    if (!f.last_name.empty()) field(*contact, f.last_name, "last_name", FieldType::kString);
    if (!f.user_id_field.empty()) field(*contact, f.user_id_field, "user_id_field", FieldType::kString);
    if (!f.state_field.empty()) field(*contact, f.state_field, "state_field", FieldType::kString);
    // The two fields the flow writes back must be fields of their own: one the flow reads would be
    // overwritten with the portal's user id or state (an email replaced by an id).
    const std::pair<const char*, const std::string*> read_fields[] = {
        {"company", &f.company},   {"contact_flag", &f.contact_flag}, {"email", &f.email},
        {"property", &f.property}, {"first_name", &f.first_name},     {"last_name", &f.last_name}};
    const std::pair<const char*, const std::string*> written_fields[] = {
        {"user_id_field", &f.user_id_field}, {"state_field", &f.state_field}};
    for (const auto& [written, name] : written_fields) {
      if (name->empty()) continue;
      for (const auto& [key, read] : read_fields)
        if (*read == *name)
          diags_.Error(at(written), "portal_access." + std::string(written) + " names " +
                                        f.contact + "." + *name + ", which portal_access." + key +
                                        " reads",
                       "it is written back by the flow: give it a field of its own");
    }
    if (!f.user_id_field.empty() && f.user_id_field == f.state_field)
      diags_.Error(at("state_field"), "portal_access.state_field and user_id_field both name " +
                                          f.contact + "." + f.state_field,
                   "the user's id and its access state each need a field of their own");
    const CanonicalEntity* company = ref != nullptr ? FindEntity(ref->ref_entity) : nullptr;
    if (company != nullptr) {
      field(*company, f.company_flag, "company_flag", FieldType::kBoolean);
      if (!f.company_properties.empty())
        field(*company, f.company_properties, "company_properties", FieldType::kString);
    }

    for (const char* generated : {kPortalUserEntity, kPortalAccessEntity}) {
      if (FindEntity(generated) != nullptr) {
        diags_.Error(f.pos, std::string("portal_access adds the entity '") + generated +
                                "', and the mapping declares an entity of that name",
                     "rename the mapping's entity");
        return;
      }
    }
    auto named = [](const std::string& name, FieldType type, const std::string& ref = "") {
      CanonicalField cf;
      cf.name = name;
      cf.type = type;
      cf.ref_entity = ref;
      return cf;
    };
    CanonicalEntity user;
    user.name = kPortalUserEntity;
    user.fields = {named("email", FieldType::kString), named("first_name", FieldType::kString),
                   named("last_name", FieldType::kString), named("portal_access", FieldType::kBoolean)};
    CanonicalEntity access;
    access.name = kPortalAccessEntity;
    access.fields = {named("user", FieldType::kRef, kPortalUserEntity),
                     named("property", FieldType::kString)};
    entities_.push_back(user);
    entities_.push_back(access);

    SystemEntityMapping users;
    users.system = f.system;
    users.entity = kPortalUserEntity;
    users.object = "users";
    users.pos = f.pos;
    for (const auto& [canonical, type] :
         std::vector<std::pair<std::string, FieldType>>{{"email", FieldType::kString},
                                                        {"first_name", FieldType::kString},
                                                        {"last_name", FieldType::kString},
                                                        {"portal_access", FieldType::kBoolean}}) {
      FieldMap fm;
      fm.canonical = fm.native = canonical;
      fm.type = type;
      fm.direction = Direction::kOut;
      fm.pos = f.pos;
      users.fields.push_back(fm);
    }
    SystemEntityMapping grants;
    grants.system = f.system;
    grants.entity = kPortalAccessEntity;
    grants.object = "access";
    grants.pos = f.pos;
    FieldMap to_user;
    to_user.canonical = "user";
    to_user.native = "user_id";
    to_user.type = FieldType::kRef;
    to_user.ref_entity = kPortalUserEntity;
    to_user.direction = Direction::kOut;
    FieldMap to_property;
    to_property.canonical = "property";
    to_property.native = "property_external_id";
    to_property.direction = Direction::kOut;
    grants.fields = {to_user, to_property};
    mappings_.push_back(users);
    mappings_.push_back(grants);
  }

  // A reference is written and read through the referenced entity's links in the same system, so
  // that system must map the referenced entity too, and its connector must carry references.
  void CheckReferenceMapping(const SystemEntityMapping& m, const FieldMap& f) {
    if (f.ref_entity.empty()) return;  // the canonical field's error is reported
    const SystemTraits* traits = TraitsOf(m.system);
    if (traits != nullptr && !traits->carries_references) {
      diags_.Error(f.pos, "system " + m.system + " is of kind " + traits->kind +
                              ", which does not carry references, so it cannot map " + m.entity +
                              "." + f.canonical,
                   "references are read and written by: " +
                       Join(KindsThat(&SystemTraits::carries_references)));
      return;
    }
    if (traits != nullptr && !traits->reference_fields.empty()) {
      auto fields = traits->reference_fields.find(m.object);
      if (fields == traits->reference_fields.end() ||
          std::find(fields->second.begin(), fields->second.end(), f.native) == fields->second.end()) {
        std::set<std::string> places;
        for (const auto& [object, natives] : traits->reference_fields)
          for (const std::string& native : natives) places.insert(object + "." + native);
        diags_.Error(f.pos, m.system + " " + m.object + " hold no reference in '" + f.native +
                                "', so it cannot map " + m.entity + "." + f.canonical,
                     "references on " + traits->kind + " go in: " + Join(places));
        return;
      }
    }
    if (!f.bind.empty() && traits != nullptr && !traits->binds_lookups) {
      const std::set<std::string> binding = KindsThat(&SystemTraits::binds_lookups);
      diags_.Error(f.pos, "'bind' names a " + (binding.empty() ? "" : Join(binding, " or ") + " ") +
                              "navigation property, and " + m.system + " is of kind " + traits->kind,
                   "drop it: " + traits->kind + " writes the reference by its field alone");
    }
    for (const SystemEntityMapping& other : mappings_) {
      if (other.system != m.system || other.entity != f.ref_entity) continue;
      if (traits != nullptr && traits->references_name_objects && f.native != other.object)
        diags_.Error(f.pos, m.system + "." + m.entity + "." + f.canonical + " names " + f.native +
                                ", but " + f.ref_entity + " is " + other.object + " in " +
                                m.system + " (" + other.pos.ToString() + ")",
                     "native: " + other.object + " (a " + traits->kind +
                         " reference names the object of the record it refers to)");
      return;
    }
    diags_.Error(f.pos, m.system + " maps " + m.entity + "." + f.canonical + ", a reference to " +
                            f.ref_entity + ", but does not map " + f.ref_entity,
                 "map " + f.ref_entity + " under systems: " + m.system + ": so its records are linked");
  }

  // Checks every reference's target and orders entities so that a referenced entity comes before
  // the entities referring to it (reads and writes go in that order). A cycle cannot be ordered.
  void OrderByReferences() {
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> refs;  // entity -> (field, target)
    for (const CanonicalEntity& e : entities_) {
      for (const CanonicalField& f : e.fields) {
        const std::string key = e.name + "." + f.name;
        const SourcePos pos = ref_pos_.count(key) ? ref_pos_[key] : f.pos;
        if (f.type == FieldType::kRef && f.ref_entity.empty()) {
          diags_.Error(pos, key + " is a reference and needs 'entity': the entity it refers to",
                       "{type: ref, entity: company}");
        } else if (f.type != FieldType::kRef && !f.ref_entity.empty()) {
          diags_.Error(pos, key + " names an entity, but is not a reference", "{type: ref, entity: " +
                                                                                  f.ref_entity + "}");
        } else if (f.type == FieldType::kRef && !f.values.empty()) {
          diags_.Error(ref_pos_.count(key + "#values") ? ref_pos_[key + "#values"] : pos,
                       key + " is a reference: its values are the referenced records' ids, so "
                                  "it takes no 'values'");
        } else if (f.type == FieldType::kRef && FindEntity(f.ref_entity) == nullptr) {
          std::set<std::string> names;
          for (const auto& known : entities_) names.insert(known.name);
          diags_.Error(pos, key + " refers to unknown entity '" + f.ref_entity + "'",
                       "entities: " + Join(names));
        } else if (f.type == FieldType::kRef) {
          refs[e.name].emplace_back(f.name, f.ref_entity);
        }
      }
    }
    // Depth-first, keeping the declared order where references allow it.
    std::vector<CanonicalEntity> ordered;
    std::map<std::string, int> state;  // 1 visiting, 2 placed
    std::vector<std::string> path;
    std::function<void(const std::string&)> visit = [&](const std::string& name) {
      if (state[name] == 2) return;
      state[name] = 1;
      path.push_back(name);
      for (const auto& [field, target] : refs[name]) {
        if (state[target] == 1) {
          std::string cycle;
          for (auto it = std::find(path.begin(), path.end(), target); it != path.end(); ++it)
            cycle += *it + " -> ";
          const std::string key = name + "." + field;
          diags_.Error(ref_pos_.count(key) ? ref_pos_[key] : SourcePos{},
                       "references form a cycle: " + cycle + target,
                       "one of them must not be a reference (crmbridge writes a referenced record "
                       "before the records that refer to it)");
          continue;
        }
        visit(target);
      }
      path.pop_back();
      state[name] = 2;
      for (CanonicalEntity& e : entities_)
        if (e.name == name) ordered.push_back(e);
    };
    for (const CanonicalEntity& e : entities_) visit(e.name);
    entities_ = std::move(ordered);
  }

  // Match keys must be values this system holds: fields it maps (a field mapped `out` only is
  // read for matching alone), and not references, whose ids differ from system to system.
  void CheckMatchKeys() {
    for (const SystemEntityMapping& m : mappings_) {
      for (const std::string& key : m.match) {
        const FieldMap* mapped = nullptr;
        for (const FieldMap& fm : m.fields)
          if (fm.canonical == key) mapped = &fm;
        if (mapped == nullptr)
          diags_.Error(m.match_pos,
                       "match key '" + key + "' is not a field " + m.system + "." + m.entity + " maps",
                       "match on fields this system holds, such as email");
        else if (!mapped->ref_entity.empty())
          diags_.Error(m.match_pos,
                       "match key '" + key + "' is a reference: its ids differ in each system",
                       "match on a value both systems hold, such as a domain or an email");
      }
    }
  }

  // A system of record must read the field, or its value could never win.
  void CheckSystemsOfRecord() {
    for (const CanonicalEntity& e : entities_) {
      for (const CanonicalField& f : e.fields) {
        if (f.system_of_record.empty()) continue;
        if (!known_systems_.empty() && !Declared(f.system_of_record)) continue;
        bool reads = false;
        for (const SystemEntityMapping& m : mappings_) {
          if (m.system != f.system_of_record || m.entity != e.name) continue;
          for (const FieldMap& fm : m.fields) reads = reads || (fm.canonical == f.name && fm.reads());
        }
        if (!reads)
          diags_.Error(f.pos,
                       f.system_of_record + " is the system of record of " + e.name + "." + f.name +
                           ", but no mapping reads that field from " + f.system_of_record,
                       "map it there with direction in or both, or name another system");
      }
    }
  }

  // A table on a field with declared values must give every value a native form, and name no
  // value the field does not have (a typo would otherwise only fail at run time, per record).
  void CheckTableCovers(const ValueTable& t, const CanonicalField& f, const std::string& entity,
                        const SourcePos& used_at) {
    std::set<std::string> in_table;
    for (const auto& r : t.rows) in_table.insert(r.canonical);
    std::vector<std::string> missing;
    for (const std::string& v : f.values)
      if (!in_table.count(v)) missing.push_back(v);
    if (!missing.empty()) {
      std::set<std::string> list(missing.begin(), missing.end());
      diags_.Error(used_at,
                   "table '" + t.name + "' has no row for " + entity + "." + f.name + " value" +
                       (missing.size() > 1 ? "s " : " ") + Join(list),
                   "add a row for each, e.g. - {native: ..., canonical: " + missing[0] + "}");
    }
    const std::set<std::string> allowed(f.values.begin(), f.values.end());
    for (const std::string& v : in_table)
      if (!allowed.count(v) && reported_.insert(t.name + "|" + v).second)
        diags_.Error(t.pos, "table '" + t.name + "' maps to '" + v + "', which is not a value of " +
                                entity + "." + f.name,
                     "values: " + Join(allowed));
  }

  // Where several rows share a value on one side, the lookup from that side is ambiguous
  // unless exactly one of them is marked `prefer: true`.
  void CheckManyToOne(const ValueTable& t, const YAML::Node& node) {
    auto check = [&](auto key_of, const char* side, const char* other) {
      std::map<std::string, std::pair<int, int>> groups;  // value -> (rows, preferred)
      for (const auto& r : t.rows) {
        auto& g = groups[key_of(r)];
        ++g.first;
        g.second += r.prefer;
      }
      for (const auto& [value, g] : groups) {
        if (g.first > 1 && g.second != 1)
          Error(node,
                "table '" + t.name + "' maps " + side + " value " + value + " to " +
                    std::to_string(g.first) + " " + other + " values; mark exactly one of those rows " +
                    "prefer: true",
                "the preferred row is used when reading or writing that value");
      }
    };
    // By text: the lookups match a string and a number of the same text (1 and "1") as one value.
    check([](const ValueTable::Row& r) { return TextOf(r.native); }, "native", "canonical");
    check([](const ValueTable::Row& r) { return "'" + r.canonical + "'"; }, "canonical", "native");
    // `prefer` picks among rows sharing a value: on a row that shares none, it picks nothing.
    std::map<std::string, int> natives, canonicals;
    for (const auto& r : t.rows) ++natives[TextOf(r.native)], ++canonicals[r.canonical];
    for (const auto& r : t.rows)
      if (r.prefer && natives[TextOf(r.native)] == 1 && canonicals[r.canonical] == 1)
        Error(node,
              "table '" + t.name + "' marks the row " + TextOf(r.native) + " -> " + r.canonical +
                  " prefer: true, and no other row shares its native or canonical value",
              "drop it: prefer picks one of several rows that share a value");
  }

  void Systems(const YAML::Node& n) {
    if (!n.IsMap()) return Error(n, "systems must be a map of system name to entities");
    for (const auto& skv : n) {
      const std::string system = skv.first.Scalar();
      if (!Declared(system)) {
        Error(skv.first, "unknown system '" + system + "'",
              "systems declared in crmbridge.yaml: " + Join(Keys(known_systems_)));
        continue;
      }
      if (!skv.second.IsMap()) {
        Error(skv.second, "system '" + system + "' must map entity names to objects");
        continue;
      }
      for (const auto& ekv : skv.second) SystemEntity(system, ekv.first, ekv.second);
    }
  }

  void SystemEntity(const std::string& system, const YAML::Node& key, const YAML::Node& body) {
    SystemEntityMapping m;
    m.system = system;
    m.entity = key.Scalar();
    m.pos = Pos(key);
    if (FindEntity(m.entity) == nullptr) {
      std::set<std::string> names;
      for (const auto& e : entities_) names.insert(e.name);
      Error(key, "unknown entity '" + m.entity + "'",
            names.empty() ? "declare it under entities:" : "entities: " + Join(names));
    }
    if (!body.IsMap()) return Error(body, system + "." + m.entity + " must be a map");
    CheckKeys(body, kSystemEntityKeys, system + "." + m.entity);
    for (const auto& existing : mappings_)
      if (existing.system == system && existing.entity == m.entity)
        return Error(key, system + "." + m.entity + " is mapped twice");
    if (!body["object"] || !body["object"].IsScalar()) {
      Error(body, system + "." + m.entity + " needs 'object': the native object",
            "object: tickets");
    } else {
      m.object = Text(body["object"], "object", "object: tickets");
    }
    if (body["match"]) {
      m.match_pos = Pos(body["match"]);
      if (!body["match"].IsSequence() || body["match"].size() == 0)
        Error(body["match"], "match must be a list of canonical fields", "match: [email]");
      else
        for (const auto& f : body["match"])
          m.match.push_back(Text(f, "a match field", "match: [email]"));
    }
    if (body["create"]) m.create = Bool(body["create"], "create");
    if (body["params"]) {
      if (!body["params"].IsMap()) {
        Error(body["params"], "params must be a map of strings");
      } else {
        for (const auto& p : body["params"]) m.params[p.first.Scalar()] = p.second.Scalar();
      }
    }
    CheckAgainstKind(system, m, body);
    std::vector<Pending> pending;
    if (!body["fields"] || !body["fields"].IsMap()) {
      Error(body, system + "." + m.entity + " needs a map of fields",
            "fields: {title: {native: subject}}");
    } else if (body["fields"].size() == 0) {
      // Its records would be read with no values, or created there empty.
      Error(body["fields"], system + "." + m.entity + " maps no fields",
            "fields: {title: {native: subject}}");
    } else {
      std::set<std::string> natives;
      for (const auto& fkv : body["fields"]) {
        FieldMap f;
        f.canonical = fkv.first.Scalar();
        f.pos = Pos(fkv.first);
        const YAML::Node spec = fkv.second;
        // Unknown keys first: `natve: subject` is a typo to name, not only a missing `native`.
        if (spec.IsMap()) CheckKeys(spec, kFieldMapKeys, "field '" + f.canonical + "'");
        if (!spec.IsMap() || !spec["native"]) {
          Error(spec, "field '" + f.canonical + "' needs 'native': the native field name",
                "{native: subject}");
          continue;
        }
        f.native = Text(spec["native"], "native", "{native: subject}");
        // An empty name has had its error above.
        if (const SystemTraits* traits = TraitsOf(system); traits != nullptr &&
            traits->plain_field_names && !f.native.empty() && !IsPlainName(f.native))
          Error(spec["native"], "native field '" + PrintableText(f.native) + "' is no field name " +
                                    system + " takes: letters, digits and _, starting with a "
                                    "letter or _ (crmbridge connectors describe " + traits->kind + ")");
        if (!natives.insert(f.native).second)
          Error(spec["native"], "native field '" + f.native + "' is mapped twice in " + system +
                                    "." + m.entity);
        if (spec["direction"]) {
          const std::string d = spec["direction"].Scalar();
          if (d == "in") f.direction = Direction::kIn;
          else if (d == "out") f.direction = Direction::kOut;
          else if (d == "both") f.direction = Direction::kBoth;
          else Error(spec["direction"], "unknown direction '" + d + "'", "in, out or both");
        }
        if (spec["required"]) f.required = Bool(spec["required"], "required");
        if (spec["create_only"]) f.create_only = Bool(spec["create_only"], "create_only");
        if (spec["bind"]) f.bind = Text(spec["bind"], "bind", "bind: parentcustomerid_account");
        // Keys that say how a field is written, on a field never written, would do nothing.
        const auto only_read = [&](const char* key) {
          Error(spec[key], std::string(key) + " says how " + m.entity + "." + f.canonical +
                               " is written, and it is only read (direction: in)",
                "drop it, or give direction: both");
        };
        if (f.direction == Direction::kIn && f.create_only) only_read("create_only");
        if (f.direction == Direction::kIn && spec["bind"]) only_read("bind");
        if (f.create_only && !m.create && spec["create_only"])
          Error(spec["create_only"],
                "create_only writes " + m.entity + "." + f.canonical + " when " + system +
                    " creates the record, and " + system + "." + m.entity + " has create: false",
                "drop one of them");
        Pending p;
        p.mapping = mappings_.size();
        p.field = m.fields.size();
        if (spec["required"] && spec["required"].IsScalar() &&
            spec["required"].Scalar() == "false") {
          p.has_required_false = true;
          p.required_false = spec["required"];
        }
        if (spec["transforms"]) Transforms(spec["transforms"], &f, &p);
        pending.push_back(std::move(p));
        m.fields.push_back(std::move(f));
      }
    }
    for (auto& p : pending) pending_.push_back(std::move(p));
    CheckRequiredParams(system, m, body);
    CheckOwnFields(system, m);
    CheckWrittenOnly(system, m);
    mappings_.push_back(std::move(m));
  }

  void Transforms(const YAML::Node& list, FieldMap* f, Pending* p) {
    if (!list.IsSequence()) return Error(list, "transforms must be a list", "[trim, lower]");
    std::set<std::string> known;
    for (const auto& spec : TransformSpecs()) known.insert(spec.name);
    for (const auto& t : list) {
      std::string name;
      YAML::Node arg;
      bool has_arg = false;
      if (t.IsScalar()) {
        name = t.Scalar();
      } else if (t.IsMap() && t.size() == 1) {
        name = t.begin()->first.Scalar();
        arg = t.begin()->second;
        has_arg = true;
      } else {
        Error(t, "a transform is a name or a one-key map", "trim, or {table: stage_map}");
        continue;
      }
      if (name == "trim" || name == "lower" || name == "upper" || name == "domain") {
        if (has_arg) Error(t, "transform '" + name + "' takes no parameter");
        f->transforms.push_back(name == "trim"    ? NewTrim()
                                : name == "lower" ? NewLower()
                                : name == "upper" ? NewUpper()
                                                  : NewDomain());
      } else if (name == "default") {
        if (!has_arg) {
          Error(t, "transform 'default' needs a value", "{default: \"n/a\"}");
          continue;
        }
        f->transforms.push_back(
            NewDefault(Value(arg, "transform 'default'", "{default: \"n/a\"}")));
        p->has_default = true;
        p->default_node = arg;
        p->default_slot = f->transforms.size() - 1;
      } else if (name == "table") {
        if (!has_arg || !arg.IsScalar()) {
          Error(t, "transform 'table' needs a table name", "{table: stage_map}");
          continue;
        }
        // Filled in by ResolvePending once every table is known.
        p->tables.emplace_back(Pos(arg), arg.Scalar(), f->transforms.size());
        f->transforms.push_back(nullptr);
      } else if (name == "boolean") {
        std::optional<json> yes, no;
        if (has_arg) {
          if (!arg.IsMap() || !arg["true"] || !arg["false"] || arg.size() != 2) {
            Error(t, "transform 'boolean' takes the native values of true and false",
                  "{boolean: {true: \"yes\", false: \"no\"}}, or plain boolean");
            continue;
          }
          const char* example = "{boolean: {true: \"yes\", false: \"no\"}}";
          yes = Value(arg["true"], "the native value of true", example);
          no = Value(arg["false"], "the native value of false", example);
          // One native value for both would write false as true's value and read it back true.
          if (TextOf(*yes) == TextOf(*no))
            Error(arg["false"],
                  "transform 'boolean' gives true and false the same native value " + yes->dump(),
                  example);
        }
        p->typed.emplace_back(Pos(t), name, FieldType::kBoolean);
        f->transforms.push_back(NewBoolean(yes, no));
      } else if (name == "number") {
        NumberFormat format;
        if (has_arg) {
          if (!arg.IsMap()) {
            Error(arg, "transform 'number' takes a format map",
                  "{number: {decimal: \",\", thousands: \" \", decimals: 2}}");
            continue;
          }
          CheckKeys(arg, {"decimal", "thousands", "decimals"}, "transform 'number'");
          format.text = true;
          if (arg["decimal"]) format.decimal = Text(arg["decimal"], "decimal", "decimal: \",\"");
          if (arg["thousands"]) {
            // '' is a number written without a thousands mark.
            if (arg["thousands"].IsScalar()) format.thousands = arg["thousands"].Scalar();
            else Text(arg["thousands"], "thousands", "thousands: \" \"");
          }
          if (arg["decimals"]) {
            const json d = ScalarToJson(arg["decimals"]);
            if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > 12)
              Error(arg["decimals"], "decimals must be a whole number from 0 to 12");
            else
              format.decimals = static_cast<int>(d.get<int64_t>());
          }
          // A mark that can be part of a number itself would be read as the mark: with
          // `decimal: 0`, "-9309" would read back as -93.9.
          const auto part_of_a_number = [](const std::string& mark) {
            return mark.size() == 1 && std::string("0123456789+-eE").find(mark[0]) != std::string::npos;
          };
          if (format.decimal.size() != 1 || format.thousands.size() > 1 ||
              format.decimal == format.thousands)
            Error(arg, "the decimal mark must be one character, the thousands separator at most "
                       "one, and they must differ");
          else if (part_of_a_number(format.decimal) || part_of_a_number(format.thousands))
            Error(arg, "a decimal mark or thousands separator cannot be a digit, a sign or an "
                       "exponent's e: it would be read as part of the number",
                  "{number: {decimal: \",\", thousands: \" \"}}");
        }
        p->typed.emplace_back(Pos(t), name, FieldType::kNumber);
        f->transforms.push_back(NewNumber(format));
      } else if (name == "date") {
        if (!has_arg) {
          Error(t, "transform 'date' needs the native form",
                "{date: epoch_ms}, {date: iso}, {date: \"%d/%m/%Y\"} or {date: {format: ..., zone: \"+01:00\"}}");
          continue;
        }
        DateFormat format;
        // Constructed, never assigned: assigning one YAML::Node to another rewrites the node
        // both refer to.
        const YAML::Node pattern = arg.IsMap() ? arg["format"] : arg;
        if (arg.IsMap()) {
          CheckKeys(arg, {"format", "zone"}, "transform 'date'");
          if (arg["zone"] && !ParseZone(arg["zone"], &format.offset_minutes)) continue;
        }
        if (!pattern || !pattern.IsScalar()) {
          Error(arg, "transform 'date' needs a format", "{date: {format: \"%Y-%m-%d %H:%M\"}}");
          continue;
        }
        format.pattern = pattern.Scalar();
        if (!ValidDatePattern(format.pattern)) {
          Error(pattern, "date format '" + format.pattern + "' is not epoch_ms, epoch_s, iso, date, "
                         "or a pattern with %Y, %m and %d",
                "only %Y %m %d %H %M %S are understood, e.g. \"%d.%m.%Y %H:%M\"");
          continue;
        }
        p->typed.emplace_back(Pos(t), name, FieldType::kDateTime);
        f->transforms.push_back(NewDate(format));
      } else if (name == "template") {
        if (!has_arg || !arg.IsScalar()) {
          Error(t, "transform 'template' needs a text with one {} for the value", "{template: \"SE {} AB\"}");
          continue;
        }
        const std::string text = arg.Scalar();
        const size_t slot = text.find("{}");
        if (slot == std::string::npos || text.find("{}", slot + 2) != std::string::npos) {
          Error(arg, "template '" + text + "' must hold exactly one {} for the value",
                "{template: \"SE {} AB\"}");
          continue;
        }
        f->transforms.push_back(NewTemplate(text));
      } else {
        Error(t, "unknown transform '" + name + "'", "transforms: " + Join(known));
      }
    }
  }

  // "UTC", "Z" or "+HH:MM" / "-HH:MM": minutes east of UTC. Reports and returns false otherwise.
  bool ParseZone(const YAML::Node& n, int* minutes) {
    const std::string z = n.Scalar();
    if (z == "UTC" || z == "Z") {
      *minutes = 0;
      return true;
    }
    if (z.size() == 6 && (z[0] == '+' || z[0] == '-') && z[3] == ':' && std::isdigit(z[1]) &&
        std::isdigit(z[2]) && std::isdigit(z[4]) && std::isdigit(z[5])) {
      const int h = (z[1] - '0') * 10 + (z[2] - '0'), m = (z[4] - '0') * 10 + (z[5] - '0');
      if (h <= 14 && m < 60) {
        *minutes = (z[0] == '-' ? -1 : 1) * (h * 60 + m);
        return true;
      }
    }
    Error(n, "zone '" + z + "' is not UTC or an offset such as +01:00",
          "named zones (Europe/Stockholm) are not supported: give the offset the data is in");
    return false;
  }

  static bool ValidDatePattern(const std::string& p) {
    if (p == "epoch_ms" || p == "epoch_s" || p == "iso" || p == "date") return true;
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i] == '%' && (i + 1 == p.size() ||
                          std::string_view("YmdHMS").find(p[++i]) == std::string_view::npos))
        return false;
    return p.find("%Y") != std::string::npos && p.find("%m") != std::string::npos &&
           p.find("%d") != std::string::npos;
  }

  static std::string TypeName(FieldType t) {
    for (const auto& [name, type] : kTypes)
      if (type == t) return name;
    return "?";
  }

  // Whether a mapping may name `system`.
  bool Declared(const std::string& system) const {
    return any_system_ || known_systems_.count(system) > 0;
  }

  // The traits of `system`'s kind; nullptr when it is checked for nothing (unknown system, or a
  // kind no connector declares).
  const SystemTraits* TraitsOf(const std::string& system) const {
    auto kind = known_systems_.find(system);
    if (kind == known_systems_.end()) return nullptr;
    for (const SystemTraits& t : kinds_)
      if (t.kind == kind->second) return &t;
    return nullptr;
  }

  // The kinds that can do what `trait` says, for an error's hint.
  std::set<std::string> KindsThat(bool SystemTraits::*trait) const {
    std::set<std::string> out;
    for (const SystemTraits& t : kinds_)
      if (t.*trait) out.insert(t.kind);
    return out;
  }

  const std::map<std::string, std::string>& known_systems_;  // system name -> kind
  const std::vector<SystemTraits>& kinds_;
  const bool any_system_;
  std::string file_;
  Diagnostics diags_;
  std::vector<CanonicalEntity> entities_;
  std::map<std::string, std::shared_ptr<const ValueTable>> tables_;
  std::vector<SystemEntityMapping> mappings_;
  std::vector<Pending> pending_;
  std::set<std::string> reported_;  // table|value errors already reported once
  std::map<std::string, SourcePos> ref_pos_;  // entity.field -> its `entity:` (or `type:`) key
  std::optional<PortalAccessFlow> portal_;
  std::map<std::string, SourcePos> portal_pos_;  // portal_access key -> its value
};

}  // namespace

Result<std::shared_ptr<const MappingPlan>> LoadMappingPlan(const std::vector<std::string>& files,
                                                           const MappingSystems& systems) {
  if (files.empty())
    return Status(StatusCode::kInvalidArgument,
                  "no mapping files: list them under 'mappings:' in crmbridge.yaml");
  // A file given twice would declare each of its entities twice, and say so of every one.
  for (size_t i = 0; i < files.size(); ++i)
    for (size_t j = 0; j < i; ++j) {
      std::error_code ec;
      if (files[i] == files[j] || std::filesystem::equivalent(files[i], files[j], ec))
        return Status(StatusCode::kInvalidArgument,
                      files[i] + ": this mapping file is given twice (as file " +
                          std::to_string(j + 1) + " and " + std::to_string(i + 1) +
                          " of the list): give it once");
    }
  // Every file is read before any is checked, so that each file's YAML errors are reported at
  // once; the checks wait for all of them to read, as a later file may use what an earlier one
  // declares, and would only report that file's entities as unknown.
  std::vector<YAML::Node> docs;
  Status unread;
  std::string unread_messages;
  for (const std::string& file : files) {
    auto doc = LoadYamlFile(file);
    if (doc.ok()) {
      docs.push_back(std::move(*doc));
      continue;
    }
    if (unread.ok()) unread = doc.status();
    unread_messages += (unread_messages.empty() ? "" : "\n") + doc.status().message();
  }
  if (!unread.ok()) return Status(unread.code(), unread_messages);
  Loader loader(systems);
  for (size_t i = 0; i < files.size(); ++i) loader.LoadFile(files[i], docs[i]);
  loader.ResolvePending();
  if (!loader.diags().empty()) return loader.diags().ToStatus();
  // Unresolved table slots only remain where an error was reported above.
  return std::make_shared<const MappingPlan>(std::move(loader.entities()),
                                             std::move(loader.mappings()), loader.portal());
}

}  // namespace crmbridge
