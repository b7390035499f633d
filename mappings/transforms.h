// The named transforms of the mapping language, and the one registry that validation and
// docs/MAPPINGS.md share. Each transform is a small pure unit: In() native -> canonical,
// Out() canonical -> native; neither mutates its input, both are thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
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
// A web address or host name as its domain, lower-cased, without scheme, "www.", port or path
// ("https://www.Acme.se/about" is "acme.se"): how a company's website is compared across systems.
std::string DomainOf(const std::string& text);
std::shared_ptr<const Transform> NewDomain();
std::shared_ptr<const Transform> NewDefault(nlohmann::json value);
std::shared_ptr<const Transform> NewTableLookup(std::shared_ptr<const ValueTable> table);
// `yes`/`no`: the native values of true and false; unset, any common boolean form is read and a
// JSON boolean written.
std::shared_ptr<const Transform> NewBoolean(std::optional<nlohmann::json> yes,
                                            std::optional<nlohmann::json> no);
struct NumberFormat {
  bool text = false;      // the native value is text in this format (else a JSON number)
  std::string decimal = ".";
  std::string thousands;  // "" = none
  int decimals = -1;      // digits after the decimal mark when writing; -1 = as needed
};
std::shared_ptr<const Transform> NewNumber(NumberFormat format);
struct DateFormat {
  std::string pattern = "iso";  // epoch_ms, epoch_s, iso, date, or a %Y-%m-%d %H:%M pattern
  int offset_minutes = 0;       // the zone a pattern's local time is in (UTC+offset)
};
std::shared_ptr<const Transform> NewDate(DateFormat format);
// `pattern` holds exactly one "{}".
std::shared_ptr<const Transform> NewTemplate(std::string pattern);

// One line of documentation per transform, and whether it takes a parameter; the loader
// validates names against it and reports the list as a hint.
struct TransformSpec {
  std::string name;
  std::string parameter;  // empty when the transform takes none ("trim"), else e.g. "table name"
  std::string doc;
};
const std::vector<TransformSpec>& TransformSpecs();

}  // namespace crmbridge
