// The named transforms of the mapping language, and the one registry that validation and
// docs/MAPPINGS.md share. Each transform is a small pure unit: In() native -> canonical,
// Out() canonical -> native; neither mutates its input, both are thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mappings/mapping.h"

namespace crmbridge {

// A value table: rows of native <-> canonical values. Where several rows share a value on one
// side, exactly one of them is marked preferred and gives the reverse lookup.
struct ValueTable {
  struct Row {
    nlohmann::json native;
    std::string canonical;
    bool prefer = false;
  };
  std::string name;
  std::vector<Row> rows;
  SourcePos pos;
};

// Native values compare as JSON, except that a string and a number with the same text match
// ("100000000" and 100000000), because APIs disagree on how they send choice values.
bool NativeEquals(const nlohmann::json& a, const nlohmann::json& b);

std::shared_ptr<const Transform> NewTrim();
std::shared_ptr<const Transform> NewLower();
std::shared_ptr<const Transform> NewUpper();
std::shared_ptr<const Transform> NewDefault(nlohmann::json value);
std::shared_ptr<const Transform> NewTableLookup(std::shared_ptr<const ValueTable> table);

// One line of documentation per transform, and whether it takes a parameter; the loader
// validates names against it and reports the list as a hint.
struct TransformSpec {
  std::string name;
  std::string parameter;  // empty when the transform takes none ("trim"), else e.g. "table name"
  std::string doc;
};
const std::vector<TransformSpec>& TransformSpecs();

}  // namespace crmbridge
