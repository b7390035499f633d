#include "src/core/json_text.h"

#include <array>
#include <charconv>
#include <cstdint>

#include "src/core/utf8.h"

namespace crmbridge {

namespace {

using Serializer = nlohmann::detail::serializer<nlohmann::json>;

// A string as dump() writes it, when that is the text itself between quotes: nothing to escape
// (no control character, quote or backslash) and valid UTF-8, which dump() copies as it is.
// Anything else is left to dump(), which escapes it or refuses it. The bytes are classed through a
// table and the classes or-ed together, so the common case costs a load and an or per byte.
bool AppendPlainString(const std::string& s, std::string* out) {
  constexpr unsigned char kEscaped = 1, kHigh = 2;
  static const auto kClass = [] {
    std::array<unsigned char, 256> c{};
    for (int b = 0; b < 0x20; ++b) c[b] = kEscaped;
    c['"'] = c['\\'] = kEscaped;
    for (int b = 0x80; b < 0x100; ++b) c[b] = kHigh;
    return c;
  }();
  unsigned char seen = 0;
  for (const char ch : s) seen |= kClass[static_cast<unsigned char>(ch)];
  if ((seen & kEscaped) != 0 || ((seen & kHigh) != 0 && !IsValidUtf8(s))) return false;
  out->push_back('"');
  out->append(s);
  out->push_back('"');
  return true;
}

// Objects, arrays, plain strings, integers, booleans and null are written here; floating-point
// numbers and strings to escape by `fallback`, dump()'s own serializer, into the same text.
void AppendValue(const nlohmann::json& v, std::string* out, Serializer* fallback) {
  using Type = nlohmann::json::value_t;
  switch (v.type()) {
    case Type::object: {
      out->push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out->push_back(',');
        first = false;
        if (!AppendPlainString(it.key(), out))
          fallback->dump(nlohmann::json(it.key()), false, false, 0);
        out->push_back(':');
        AppendValue(it.value(), out, fallback);
      }
      out->push_back('}');
      return;
    }
    case Type::array: {
      out->push_back('[');
      bool first = true;
      for (const nlohmann::json& item : v) {
        if (!first) out->push_back(',');
        first = false;
        AppendValue(item, out, fallback);
      }
      out->push_back(']');
      return;
    }
    case Type::string:
      if (AppendPlainString(v.get_ref<const std::string&>(), out)) return;
      break;
    case Type::boolean:
      out->append(v.get<bool>() ? "true" : "false");
      return;
    case Type::null:
      out->append("null");
      return;
    case Type::number_integer:
    case Type::number_unsigned: {
      char digits[24];
      const auto written =
          v.type() == Type::number_integer
              ? std::to_chars(digits, digits + sizeof digits, v.get<int64_t>())
              : std::to_chars(digits, digits + sizeof digits, v.get<uint64_t>());
      out->append(digits, written.ptr);
      return;
    }
    default:
      break;
  }
  fallback->dump(v, /*pretty_print=*/false, /*ensure_ascii=*/false, /*indent_step=*/0);
}

}  // namespace

void AppendCompactJson(const nlohmann::json& value, std::string* out) {
  Serializer fallback(nlohmann::detail::output_adapter<char, std::string>(*out), ' ');
  AppendValue(value, out, &fallback);
}

std::string CompactJson(const nlohmann::json& value) {
  std::string out;
  AppendCompactJson(value, &out);
  return out;
}

bool NestsDeeperThan(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character is skipped, a quote included
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

nlohmann::json ParseJsonOrDiscarded(std::string_view text) {
  if (NestsDeeperThan(text)) return nlohmann::json(nlohmann::json::value_t::discarded);
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

}  // namespace crmbridge
