#include "tests/architecture/source_scan.h"

#include <cctype>

namespace crmbridge::testing {
namespace {

bool IsIdentifierChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Whether a raw string literal (R"delim(...)delim", or with a u8, u, U or L prefix) starts at `i`.
bool StartsRawString(const std::string& s, size_t i) {
  if (s[i] != 'R' || i + 1 >= s.size() || s[i + 1] != '"') return false;
  size_t start = i;
  while (start > 0 && IsIdentifierChar(s[start - 1])) --start;
  const std::string prefix = s.substr(start, i - start);
  return prefix.empty() || prefix == "u8" || prefix == "u" || prefix == "U" || prefix == "L";
}

}  // namespace

std::string WithoutComments(const std::string& source) {
  enum class State { kCode, kLineComment, kBlockComment, kString, kChar, kRawString };
  State state = State::kCode;
  std::string raw_end;  // )delimiter" of the raw string being read
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    const char c = source[i];
    const char next = i + 1 < source.size() ? source[i + 1] : '\0';
    switch (state) {
      case State::kCode:
        if (c == '/' && next == '/') {
          state = State::kLineComment;
          ++i;
        } else if (c == '/' && next == '*') {
          state = State::kBlockComment;
          ++i;
        } else if (StartsRawString(source, i)) {
          const size_t open = source.find('(', i + 2);
          if (open == std::string::npos) {
            out += c;
            break;
          }
          raw_end = ")" + source.substr(i + 2, open - i - 2) + "\"";
          out += source.substr(i, open - i + 1);
          i = open;
          state = State::kRawString;
        } else {
          if (c == '"') state = State::kString;
          // A quote after a digit is a digit separator (1'000), not a character literal.
          if (c == '\'' && !(i > 0 && std::isxdigit(static_cast<unsigned char>(source[i - 1]))))
            state = State::kChar;
          out += c;
        }
        break;
      case State::kLineComment:
        if (c == '\n') {
          state = State::kCode;
          out += c;
        }
        break;
      case State::kBlockComment:
        if (c == '*' && next == '/') {
          state = State::kCode;
          ++i;
        } else if (c == '\n') {
          out += c;
        }
        break;
      case State::kString:
      case State::kChar:
        out += c;
        if (c == '\\' && next != '\0') {
          out += next;
          ++i;
        } else if (c == (state == State::kString ? '"' : '\'')) {
          state = State::kCode;
        }
        break;
      case State::kRawString:
        if (source.compare(i, raw_end.size(), raw_end) == 0) {
          out += raw_end;
          i += raw_end.size() - 1;
          state = State::kCode;
        } else {
          out += c;
        }
        break;
    }
  }
  return out;
}

}  // namespace crmbridge::testing
