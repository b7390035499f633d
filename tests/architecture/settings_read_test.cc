// No setting without an effect. Every key crmbridge.yaml takes (ConfigKeys), every `auth` key,
// option and mapping `params` key a connector kind declares (Capabilities), and every key the
// mapping language takes is read by the code it configures, and the documents list exactly them.
// What this guards against: a key that is declared, parsed and documented, and that nothing reads,
// so setting it changes nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "connectors/registry.h"
#include "src/config/app_config.h"
#include "tests/architecture/source_scan.h"

namespace crmbridge {
namespace {

namespace fs = std::filesystem;

const fs::path kRoot(CRMBRIDGE_SOURCE_DIR);

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The code (comments blanked) of every .cc and .h under `folders`, by path relative to the root,
// leaving out those under `except`.
std::map<std::string, std::string> CodeUnder(const std::vector<std::string>& folders,
                                             const std::string& except = "") {
  std::map<std::string, std::string> code;
  for (const std::string& folder : folders) {
    for (const auto& entry : fs::recursive_directory_iterator(kRoot / folder)) {
      const std::string ext = entry.path().extension().string();
      if (!entry.is_regular_file() || (ext != ".cc" && ext != ".h")) continue;
      const std::string rel = fs::relative(entry.path(), kRoot).string();
      if (!except.empty() && rel.rfind(except, 0) == 0) continue;
      code[rel] = testing::WithoutComments(ReadFile(entry.path()));
    }
  }
  return code;
}

size_t CountOf(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Each crmbridge.yaml key fills a member that code outside the loader reads (`.member` or
// `->member`): the loader filling a member nobody reads is what an ignored setting looks like.
TEST(SettingsReadTest, EveryConfigKeyFillsAMemberThatIsRead) {
  const auto code = CodeUnder({"src", "connectors", "state", "mappings"}, "src/config/");
  ASSERT_GT(code.size(), 20u);
  for (const ConfigKey& key : ConfigKeys()) {
    const std::regex use(std::string("(\\.|->)") + key.member + "\\b");
    bool read = false;
    for (const auto& [file, text] : code) read = read || std::regex_search(text, use);
    EXPECT_TRUE(read) << ConfigKeyPath(key) << " fills " << key.member
                      << ", which no code outside src/config reads";
  }
}

// Each kind's auth keys, options and mapping params are read by its connector: the name appears
// in the connector's code besides the declaration (a ".*" option by its prefix).
TEST(SettingsReadTest, EveryKeyAKindDeclaresIsReadByItsConnector) {
  for (const std::string& kind : ConnectorKinds()) {
    const Capabilities& can = *CapabilitiesOfKind(kind);
    std::string code;
    for (const auto& [file, text] : CodeUnder({"connectors/" + kind})) code += text;
    ASSERT_FALSE(code.empty()) << "no code under connectors/" << kind;
    std::vector<std::pair<std::string, std::string>> declared;  // (what, name)
    for (const std::string& key : can.auth_keys) declared.emplace_back("auth key", key);
    for (const ParamSpec& o : can.options) declared.emplace_back("option", o.name);
    for (const ParamSpec& p : can.params) declared.emplace_back("param", p.name);
    for (const auto& [what, name] : declared) {
      const bool prefix = name.size() > 2 && name.compare(name.size() - 2, 2, ".*") == 0;
      const std::string literal =
          prefix ? "\"" + name.substr(0, name.size() - 1) : "\"" + name + "\"";
      EXPECT_GE(CountOf(code, literal), 2u)
          << kind << " declares " << what << " '" << name << "', which its connector never reads";
    }
  }
}

// The mapping language's keys (the loader's k...Keys sets) are each looked up in a node by the
// loader, and docs/MAPPINGS.md names or shows each of them.
TEST(SettingsReadTest, EveryMappingKeyIsReadAndDocumented) {
  const std::string loader = testing::WithoutComments(ReadFile(kRoot / "mappings/mapping_loader.cc"));
  const std::string doc = ReadFile(kRoot / "docs/MAPPINGS.md");
  const std::regex set_decl(R"(const std::set<std::string> k(\w+)Keys = \{([^}]*)\};)");
  const std::regex quoted(R"re("([a-z_]+)")re");
  size_t keys = 0;
  for (auto it = std::sregex_iterator(loader.begin(), loader.end(), set_decl);
       it != std::sregex_iterator(); ++it) {
    const std::string list = (*it)[2];
    for (auto q = std::sregex_iterator(list.begin(), list.end(), quoted);
         q != std::sregex_iterator(); ++q) {
      const std::string key = (*q)[1];
      ++keys;
      EXPECT_GE(CountOf(loader, "[\"" + key + "\"]"), 1u)
          << "mapping key '" << key << "' (k" << (*it)[1] << "Keys) is accepted and never read";
      // Named in the text (`key`) or shown in an example (key: value).
      const std::regex named("`" + key + "\\b|\\b" + key + ":");
      EXPECT_TRUE(std::regex_search(doc, named))
          << "docs/MAPPINGS.md never names mapping key '" << key << "'";
    }
  }
  EXPECT_GT(keys, 15u) << "the loader's key sets were not found";
}

// The rows of the Markdown table that follows `heading` in `doc`, each split into its cells
// (backquotes dropped).
std::vector<std::vector<std::string>> TableAfter(const std::string& doc, const std::string& heading) {
  std::vector<std::vector<std::string>> rows;
  const size_t at = doc.find(heading);
  if (at == std::string::npos) return rows;
  std::istringstream in(doc.substr(at + heading.size()));
  std::string line;
  bool in_table = false;
  while (std::getline(in, line)) {
    if (line.rfind("|", 0) != 0) {
      if (in_table) break;
      continue;
    }
    in_table = true;
    if (line.find("---") != std::string::npos) continue;
    std::vector<std::string> cells;
    std::stringstream cell_in(line.substr(1));
    for (std::string cell; std::getline(cell_in, cell, '|');) {
      std::string clean;
      for (char c : cell)
        if (c != '`') clean += c;
      const size_t b = clean.find_first_not_of(' '), e = clean.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : clean.substr(b, e - b + 1));
    }
    rows.push_back(cells);
  }
  if (!rows.empty()) rows.erase(rows.begin());  // the header
  return rows;
}

// docs/OPERATIONS.md lists exactly the keys crmbridge.yaml takes, and exactly each kind's auth
// keys and options.
TEST(SettingsReadTest, OperationsListsExactlyTheKeys) {
  const std::string doc = ReadFile(kRoot / "docs/OPERATIONS.md");
  std::set<std::string> documented, declared;
  for (const auto& row : TableAfter(doc, "### Every key")) documented.insert(row.at(0));
  for (const ConfigKey& key : ConfigKeys()) declared.insert(ConfigKeyPath(key));
  EXPECT_EQ(documented, declared) << "docs/OPERATIONS.md, \"### Every key\"";

  std::set<std::string> documented_kinds, declared_kinds;
  for (const auto& row : TableAfter(doc, "### Each kind's auth keys and options")) {
    ASSERT_GE(row.size(), 3u);
    documented_kinds.insert(row[0] + " " + row[1] + " " + row[2]);
  }
  for (const std::string& kind : ConnectorKinds()) {
    const Capabilities& can = *CapabilitiesOfKind(kind);
    for (const std::string& key : can.auth_keys) declared_kinds.insert(kind + " auth " + key);
    for (const ParamSpec& o : can.options) declared_kinds.insert(kind + " option " + o.name);
  }
  EXPECT_EQ(documented_kinds, declared_kinds)
      << "docs/OPERATIONS.md, \"### Each kind's auth keys and options\"";
}

}  // namespace
}  // namespace crmbridge
