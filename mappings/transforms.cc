#include "mappings/transforms.h"

#include <algorithm>
#include <cctype>

namespace crmbridge {

using nlohmann::json;

namespace {

std::string Trimmed(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// Applies a string function to strings and passes every other value through unchanged.
class StringTransform : public Transform {
 public:
  StringTransform(std::string name, std::function<std::string(const std::string&)> fn)
      : name_(std::move(name)), fn_(std::move(fn)) {}
  std::string Name() const override { return name_; }
  Result<json> In(const json& v) const override { return Apply(v); }
  Result<json> Out(const json& v) const override { return Apply(v); }

 private:
  json Apply(const json& v) const { return v.is_string() ? json(fn_(v.get<std::string>())) : v; }
  std::string name_;
  std::function<std::string(const std::string&)> fn_;
};

bool IsEmpty(const json& v) { return v.is_null() || (v.is_string() && v.get<std::string>().empty()); }

class DefaultTransform : public Transform {
 public:
  explicit DefaultTransform(json value) : value_(std::move(value)) {}
  std::string Name() const override { return "default"; }
  Result<json> In(const json& v) const override { return IsEmpty(v) ? value_ : v; }
  Result<json> Out(const json& v) const override { return IsEmpty(v) ? value_ : v; }

 private:
  json value_;
};

class TableTransform : public Transform {
 public:
  explicit TableTransform(std::shared_ptr<const ValueTable> table) : table_(std::move(table)) {}
  std::string Name() const override { return "table " + table_->name; }

  Result<json> In(const json& v) const override {
    if (v.is_null()) return v;
    const ValueTable::Row* hit = nullptr;
    for (const auto& row : table_->rows) {
      if (!NativeEquals(row.native, v)) continue;
      if (hit == nullptr || row.prefer) hit = &row;
    }
    if (hit == nullptr) return NotIn(v);
    return json(hit->canonical);
  }

  Result<json> Out(const json& v) const override {
    if (v.is_null()) return v;
    if (!v.is_string()) return NotIn(v);
    const std::string s = v.get<std::string>();
    const ValueTable::Row* hit = nullptr;
    for (const auto& row : table_->rows) {
      if (row.canonical != s) continue;
      if (hit == nullptr || row.prefer) hit = &row;
    }
    if (hit == nullptr) return NotIn(v);
    return hit->native;
  }

 private:
  Status NotIn(const json& v) const {
    return Status(StatusCode::kInvalidArgument,
                  "value " + v.dump() + " is not in table " + table_->name);
  }
  std::shared_ptr<const ValueTable> table_;
};

}  // namespace

bool NativeEquals(const json& a, const json& b) {
  if (a == b) return true;
  auto text = [](const json& v) -> std::optional<std::string> {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
    if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
    return std::nullopt;
  };
  auto ta = text(a), tb = text(b);
  return ta && tb && *ta == *tb;
}

std::shared_ptr<const Transform> NewTrim() {
  return std::make_shared<StringTransform>("trim", Trimmed);
}
std::shared_ptr<const Transform> NewLower() {
  return std::make_shared<StringTransform>("lower", [](const std::string& s) {
    std::string out = s;
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
  });
}
std::shared_ptr<const Transform> NewUpper() {
  return std::make_shared<StringTransform>("upper", [](const std::string& s) {
    std::string out = s;
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
  });
}
std::shared_ptr<const Transform> NewDefault(json value) {
  return std::make_shared<DefaultTransform>(std::move(value));
}
std::shared_ptr<const Transform> NewTableLookup(std::shared_ptr<const ValueTable> table) {
  return std::make_shared<TableTransform>(std::move(table));
}

const std::vector<TransformSpec>& TransformSpecs() {
  static const std::vector<TransformSpec> kSpecs = {
      {"trim", "", "removes leading and trailing white space (both directions)"},
      {"lower", "", "lower-cases ASCII letters (both directions)"},
      {"upper", "", "upper-cases ASCII letters (both directions)"},
      {"table", "table name", "looks the value up in a value table (native <-> canonical)"},
      {"default", "value", "replaces a missing, null or empty value"},
  };
  return kSpecs;
}

}  // namespace crmbridge
