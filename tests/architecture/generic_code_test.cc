// Generic layers never name a vendor. What differs between systems is declared by each connector
// kind (Capabilities, its HttpClassifier) and asked of the registry, so a new system touches
// connectors/ alone. Fails when the code of src/core, src/engine, src/report, mappings or state
// (comments aside) names a vendor, or a connector kind as a string literal.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "connectors/registry.h"

namespace crmbridge {
namespace {

const char* const kGenericFolders[] = {"src/core", "src/engine", "src/report", "mappings", "state"};
// Vendor names in any spelling the code could use, compared case-insensitively.
const char* const kVendorWords[] = {"hubspot", "dynamics365", "dynamics 365", "dataverse",
                                    "totango"};

bool IsIdentifierChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Whether a raw string literal (R"delim(...)delim", or with a u8, u, U or L prefix) starts at `i`.
bool StartsRawString(const std::string& s, size_t i) {
  if (s[i] != 'R' || i + 1 >= s.size() || s[i + 1] != '"') return false;
  size_t start = i;
  while (start > 0 && IsIdentifierChar(s[start - 1])) --start;
  const std::string prefix = s.substr(start, i - start);
  return prefix.empty() || prefix == "u8" || prefix == "u" || prefix == "U" || prefix == "L";
}

// `source` with its comments blanked out (newlines kept, so lines still count). String and
// character literals are kept: a kind named in a literal is what this test looks for, and a "//"
// inside one starts no comment.
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

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "<line>: <what>" for each vendor word, and each connector kind as a literal ("portal"), in the
// code of `source`.
std::vector<std::string> VendorMentions(const std::string& source) {
  std::vector<std::string> found;
  std::istringstream lines(WithoutComments(source));
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    const std::string lower = Lower(line);
    for (const char* word : kVendorWords)
      if (lower.find(word) != std::string::npos)
        found.push_back(std::to_string(number) + ": " + word);
    for (const std::string& kind : ConnectorKinds())
      if (line.find('"' + kind + '"') != std::string::npos)
        found.push_back(std::to_string(number) + ": \"" + kind + "\"");
  }
  return found;
}

TEST(GenericCodeTest, TheScannerSeesCodeAndLiteralsButNotComments) {
  EXPECT_TRUE(VendorMentions("// HubSpot's 423\n/* Totango\n  SDR */ int x = 1;\n").empty());
  EXPECT_EQ(VendorMentions("int a;\nif (kind == \"portal\") {}  // the portal kind\n"),
            std::vector<std::string>{"2: \"portal\""});
  EXPECT_EQ(VendorMentions("auto url = \"https://x\"; auto h = \"X-HubSpot-Limit\";\n"),
            std::vector<std::string>{"1: hubspot"})
      << "a // inside a string starts no comment";
  EXPECT_EQ(VendorMentions("char q = '\"'; int totango = 1'000;\n"),
            std::vector<std::string>{"1: totango"});
  EXPECT_EQ(VendorMentions("auto sql = R\"(-- \"dynamics365\" // )\"; // hubspot\n"),
            (std::vector<std::string>{"1: dynamics365", "1: \"dynamics365\""}));
  EXPECT_TRUE(VendorMentions("portal_access; PortalAccessFlow f; \"a portal system\";\n").empty())
      << "the mapping language's portal access is no kind";
}

TEST(GenericCodeTest, NoGenericFolderNamesAVendor) {
  size_t files = 0;
  for (const char* folder : kGenericFolders) {
    const std::filesystem::path root = std::filesystem::path(CRMBRIDGE_SOURCE_DIR) / folder;
    ASSERT_TRUE(std::filesystem::is_directory(root)) << root;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
      const std::string ext = entry.path().extension().string();
      if (!entry.is_regular_file() || (ext != ".cc" && ext != ".h")) continue;
      ++files;
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      for (const std::string& mention : VendorMentions(text.str()))
        ADD_FAILURE() << std::filesystem::relative(entry.path(), CRMBRIDGE_SOURCE_DIR).string()
                      << ":" << mention
                      << ": ask the connector registry (Capabilities, HttpClassifierOfKind) instead";
    }
  }
  EXPECT_GT(files, 20u);
}

}  // namespace
}  // namespace crmbridge
