#include "mappings/transforms.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

#include "src/core/time_util.h"
#include "src/core/utf8.h"

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

// yes/no, 1/0, true/false and friends, case-insensitively: the forms APIs send booleans in.
std::optional<bool> LooseBool(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) {
    if (v.get<int64_t>() == 1) return true;
    if (v.get<int64_t>() == 0) return false;
    return std::nullopt;
  }
  if (!v.is_string()) return std::nullopt;
  std::string s = Trimmed(v.get<std::string>());
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "true" || s == "yes" || s == "1" || s == "y" || s == "on") return true;
  if (s == "false" || s == "no" || s == "0" || s == "n" || s == "off") return false;
  return std::nullopt;
}

class BooleanTransform : public Transform {
 public:
  BooleanTransform(std::optional<json> yes, std::optional<json> no)
      : yes_(std::move(yes)), no_(std::move(no)) {}
  std::string Name() const override { return "boolean"; }
  Result<json> In(const json& v) const override {
    if (IsEmpty(v)) return json();
    if (yes_ && NativeEquals(*yes_, v)) return json(true);
    if (no_ && NativeEquals(*no_, v)) return json(false);
    if (!yes_) {
      if (auto b = LooseBool(v)) return json(*b);
    }
    return Status(StatusCode::kInvalidArgument,
                  "value " + v.dump() + " is not a boolean" +
                      (yes_ ? " (expected " + yes_->dump() + " or " + no_->dump() + ")" : ""));
  }
  Result<json> Out(const json& v) const override {
    if (v.is_null()) return v;
    auto b = LooseBool(v);
    if (!b) return Status(StatusCode::kInvalidArgument, "value " + v.dump() + " is not a boolean");
    if (yes_) return *b ? *yes_ : *no_;
    return json(*b);
  }

 private:
  std::optional<json> yes_, no_;
};

class NumberTransform : public Transform {
 public:
  explicit NumberTransform(NumberFormat f) : f_(std::move(f)) {}
  std::string Name() const override { return "number"; }
  Result<json> In(const json& v) const override {
    if (IsEmpty(v)) return json();
    if (v.is_number()) return v;
    if (!v.is_string()) return NotANumber(v);
    std::string text;
    for (char c : Trimmed(v.get<std::string>())) {
      if (!f_.thousands.empty() && std::string(1, c) == f_.thousands) continue;
      if (c == ' ' && f_.thousands == " ") continue;
      text += (!f_.decimal.empty() && std::string(1, c) == f_.decimal) ? '.' : c;
    }
    try {
      size_t used = 0;
      const double d = std::stod(text, &used);
      if (used != text.size()) return NotANumber(v);
      // A whole number an int64_t holds stays whole; larger ones (and inf, nan) stay doubles.
      if (std::fabs(d) < 9.2e18 && d == static_cast<double>(static_cast<int64_t>(d)) &&
          text.find('.') == std::string::npos)
        return json(static_cast<int64_t>(d));
      return json(d);
    } catch (const std::exception&) {
      return NotANumber(v);
    }
  }
  Result<json> Out(const json& v) const override {
    if (v.is_null()) return v;
    auto n = In(v);  // canonical numbers may arrive as text from another system
    if (!n.ok() || n->is_null()) return n;
    if (!f_.text) return *n;
    // Native text: fixed decimals, the configured separators.
    const double d = n->get<double>();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", f_.decimals < 0 ? (n->is_number_integer() ? 0 : 2) : f_.decimals, d);
    std::string plain = buf, out;
    const size_t dot = plain.find('.');
    const std::string whole = plain.substr(0, dot), frac = dot == std::string::npos ? "" : plain.substr(dot + 1);
    const size_t digits_from = (!whole.empty() && whole[0] == '-') ? 1 : 0;
    for (size_t i = 0; i < whole.size(); ++i) {
      out += whole[i];
      const size_t left = whole.size() - i - 1;
      if (!f_.thousands.empty() && i >= digits_from && left > 0 && left % 3 == 0) out += f_.thousands;
    }
    if (!frac.empty()) out += (f_.decimal.empty() ? "." : f_.decimal) + frac;
    return json(out);
  }

 private:
  static Status NotANumber(const json& v) {
    return Status(StatusCode::kInvalidArgument, "value " + v.dump() + " is not a number");
  }
  NumberFormat f_;
};

// The field a date pattern's %<spec> stands for: 0 to 5 for Y m d H M S, -1 for anything else
// (a NUL included, which std::strchr would find as the terminator).
int DateSlot(char spec) {
  const size_t at = std::string_view("YmdHMS").find(spec);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

// `n` seconds (scale 1000) or milliseconds (scale 1) as milliseconds; nullopt when that is more
// than an int64_t holds (a vendor's value, not a time).
std::optional<int64_t> Scaled(int64_t n, int64_t scale) {
  int64_t ms = 0;
  if (__builtin_mul_overflow(n, scale, &ms)) return std::nullopt;
  return ms;
}

// Date and time: canonical values are ISO-8601 in UTC ("2026-11-23T09:30:00Z"), or a plain date
// ("2026-11-23") when the native form has no time of day.
class DateTransform : public Transform {
 public:
  explicit DateTransform(DateFormat f) : f_(std::move(f)) {}
  std::string Name() const override { return "date " + f_.pattern; }

  Result<json> In(const json& v) const override {
    if (IsEmpty(v)) return json();
    std::optional<int64_t> ms;
    if (f_.pattern == "epoch_ms" || f_.pattern == "epoch_s") {
      const int64_t scale = f_.pattern == "epoch_ms" ? 1 : 1000;
      if (v.is_number_float()) {
        // Whole units, as before; a number no int64_t holds is no time.
        const double d = v.get<double>();
        if (std::isfinite(d) && d > -9.2e18 && d < 9.2e18)
          ms = Scaled(static_cast<int64_t>(d), scale);
      } else if (v.is_number_unsigned()) {
        if (v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))
          ms = Scaled(v.get<int64_t>(), scale);
      } else if (v.is_number()) {
        ms = Scaled(v.get<int64_t>(), scale);
      } else if (v.is_string()) {
        try {
          size_t used = 0;
          const std::string t = v.get<std::string>();
          const long long n = std::stoll(t, &used);
          if (used == t.size()) ms = Scaled(n, scale);
        } catch (const std::exception&) {
        }
      }
    } else if (v.is_string()) {
      ms = Parse(v.get<std::string>());
    }
    if (!ms) return Bad(v);
    if (DateOnly()) return json(FormatIsoUtc(*ms, false).substr(0, 10));
    return json(FormatIsoUtc(*ms, false));
  }

  Result<json> Out(const json& v) const override {
    if (v.is_null()) return v;
    if (!v.is_string()) return Bad(v);
    std::string text = v.get<std::string>();
    if (text.size() == 10) text += "T00:00:00Z";  // a canonical date
    auto ms = ParseIsoUtcMillis(text);
    if (!ms) return Bad(v);
    if (f_.pattern == "epoch_ms") return json(*ms);
    if (f_.pattern == "epoch_s") return json(*ms / 1000);
    if (f_.pattern == "iso") return json(FormatIsoUtc(*ms, false));
    return json(Format(*ms + f_.offset_minutes * 60000LL));
  }

 private:
  bool DateOnly() const {
    return f_.pattern == "date" || (f_.pattern.find("%H") == std::string::npos &&
                                    f_.pattern != "iso" && f_.pattern.rfind("epoch", 0) != 0);
  }
  std::string Pattern() const { return f_.pattern == "date" ? "%Y-%m-%d" : f_.pattern; }
  Status Bad(const json& v) const {
    return Status(StatusCode::kInvalidArgument,
                  "value " + v.dump() + " does not match date format '" + f_.pattern + "'");
  }
  // Parses text by the pattern (%Y %m %d %H %M %S, other characters literal), in the zone.
  std::optional<int64_t> Parse(const std::string& text) const {
    if (f_.pattern == "iso") return ParseIsoUtcMillis(text);
    const std::string p = Pattern();
    int fields[6] = {1970, 1, 1, 0, 0, 0};  // Y m d H M S
    size_t at = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i] != '%' || i + 1 == p.size()) {
        if (at >= text.size() || text[at] != p[i]) return std::nullopt;
        ++at;
        continue;
      }
      const char spec = p[++i];
      const int slot = DateSlot(spec);
      if (slot < 0) return std::nullopt;
      const size_t width = spec == 'Y' ? 4 : 2;
      if (at + width > text.size()) return std::nullopt;
      int value = 0;
      for (size_t k = 0; k < width; ++k) {
        if (!std::isdigit(static_cast<unsigned char>(text[at + k]))) return std::nullopt;
        value = value * 10 + (text[at + k] - '0');
      }
      fields[slot] = value;
      at += width;
    }
    if (at != text.size()) return std::nullopt;
    char iso[32];
    std::snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02dZ", fields[0], fields[1], fields[2],
                  fields[3], fields[4], fields[5]);
    auto ms = ParseIsoUtcMillis(iso);
    if (!ms) return std::nullopt;
    return *ms - f_.offset_minutes * 60000LL;  // local time in the zone -> UTC
  }
  std::string Format(int64_t local_ms) const {
    const std::string iso = FormatIsoUtc(local_ms, false);  // "YYYY-MM-DDTHH:MM:SSZ"
    const std::string parts[6] = {iso.substr(0, 4),  iso.substr(5, 2),  iso.substr(8, 2),
                                  iso.substr(11, 2), iso.substr(14, 2), iso.substr(17, 2)};
    const std::string p = Pattern();
    std::string out;
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i] == '%' && i + 1 < p.size()) {
        const int slot = DateSlot(p[++i]);
        out += slot >= 0 ? parts[slot] : "";
      } else {
        out += p[i];
      }
    }
    return out;
  }
  DateFormat f_;
};

// A string template with one {} slot: "SE {} – onboarding". Out fills the slot; In takes the
// slot's text back out of a value that has the template's shape, and leaves other values as
// they are (records typed by hand need not follow it).
class TemplateTransform : public Transform {
 public:
  explicit TemplateTransform(std::string pattern) : pattern_(std::move(pattern)) {
    const size_t slot = pattern_.find("{}");
    prefix_ = pattern_.substr(0, slot);
    suffix_ = pattern_.substr(slot + 2);
  }
  std::string Name() const override { return "template"; }
  Result<json> In(const json& v) const override {
    if (!v.is_string()) return v;
    const std::string s = v.get<std::string>();
    if (s.size() >= prefix_.size() + suffix_.size() && s.compare(0, prefix_.size(), prefix_) == 0 &&
        s.compare(s.size() - suffix_.size(), suffix_.size(), suffix_) == 0)
      return json(s.substr(prefix_.size(), s.size() - prefix_.size() - suffix_.size()));
    return v;
  }
  Result<json> Out(const json& v) const override {
    if (v.is_null()) return v;
    return json(prefix_ + (v.is_string() ? v.get<std::string>() : v.dump()) + suffix_);
  }

 private:
  std::string pattern_, prefix_, suffix_;
};

}  // namespace

bool NativeEquals(const json& a, const json& b) {
  if (a == b) return true;
  // Two strings, or two values neither of which is a string, are equal as JSON or not at all
  // (JSON already compares 5 and 5u, or 1.0 and 1, as numbers). Only a string and a non-string
  // compare by text; the string is compared where it is, not copied (this runs for every row of
  // a value table, for each value read).
  if (a.is_string() == b.is_string()) return false;
  const std::string& text = (a.is_string() ? a : b).get_ref<const std::string&>();
  const json& other = a.is_string() ? b : a;
  if (other.is_number_integer()) return text == std::to_string(other.get<int64_t>());
  if (other.is_number_unsigned()) return text == std::to_string(other.get<uint64_t>());
  if (other.is_boolean()) return text == (other.get<bool>() ? "true" : "false");
  return false;
}

std::shared_ptr<const Transform> NewTrim() {
  return std::make_shared<StringTransform>("trim", Trimmed);
}
namespace {
}  // namespace

std::shared_ptr<const Transform> NewLower() {
  return std::make_shared<StringTransform>("lower", LowerAscii);
}
std::shared_ptr<const Transform> NewUpper() {
  return std::make_shared<StringTransform>("upper", [](const std::string& s) {
    std::string out = s;
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
  });
}
std::string DomainOf(const std::string& text) {
  std::string s = Trimmed(text);
  if (const size_t scheme = s.find("://"); scheme != std::string::npos) s = s.substr(scheme + 3);
  s = s.substr(0, s.find_first_of("/?#"));
  if (const size_t at = s.rfind('@'); at != std::string::npos) s = s.substr(at + 1);
  if (const size_t colon = s.find(':'); colon != std::string::npos) s = s.substr(0, colon);
  s = LowerAscii(std::move(s));
  while (!s.empty() && s.back() == '.') s.pop_back();
  if (s.rfind("www.", 0) == 0) s = s.substr(4);
  return s;
}

std::shared_ptr<const Transform> NewDomain() {
  return std::make_shared<StringTransform>("domain", DomainOf);
}
std::shared_ptr<const Transform> NewDefault(json value) {
  return std::make_shared<DefaultTransform>(std::move(value));
}
std::shared_ptr<const Transform> NewTableLookup(std::shared_ptr<const ValueTable> table) {
  return std::make_shared<TableTransform>(std::move(table));
}

std::shared_ptr<const Transform> NewBoolean(std::optional<json> yes, std::optional<json> no) {
  return std::make_shared<BooleanTransform>(std::move(yes), std::move(no));
}
std::shared_ptr<const Transform> NewNumber(NumberFormat format) {
  return std::make_shared<NumberTransform>(std::move(format));
}
std::shared_ptr<const Transform> NewDate(DateFormat format) {
  return std::make_shared<DateTransform>(std::move(format));
}
std::shared_ptr<const Transform> NewTemplate(std::string pattern) {
  return std::make_shared<TemplateTransform>(std::move(pattern));
}

const std::vector<TransformSpec>& TransformSpecs() {
  static const std::vector<TransformSpec> kSpecs = {
      {"trim", "", "removes leading and trailing white space (both directions)"},
      {"lower", "", "lower-cases ASCII letters (both directions)"},
      {"upper", "", "upper-cases ASCII letters (both directions)"},
      {"domain", "", "a web address or host name as its domain: https://www.Acme.se/x is acme.se (both directions)"},
      {"table", "table name", "looks the value up in a value table (native <-> canonical)"},
      {"default", "value", "replaces a missing, null or empty value"},
      {"boolean", "{true: X, false: Y} (optional)",
       "a boolean; native forms yes/no, 1/0, true/false unless given"},
      {"number", "{decimal: \",\", thousands: \" \", decimals: 2} (optional)",
       "a number; with a format, native text such as \"1 234,50\""},
      {"date", "epoch_ms | epoch_s | iso | date | pattern, or {format, zone}",
       "date and time, canonical ISO-8601 UTC; patterns use %Y %m %d %H %M %S"},
      {"template", "\"text {} text\"", "wraps the value in text on the way out, unwraps it on the way in"},
  };
  return kSpecs;
}

}  // namespace crmbridge
